//! Torture load on real sockets: 1,000 concurrent loopback connections that misbehave
//! (random disconnects mid-stream, half-closed sockets, slow readers), then a root cancel
//! (`treeloop::shutdown()`): every connection task runs its cleanup (exactly one per accepted
//! connection), no file descriptor is leaked, and the server never stopped accepting (every
//! client that connected was accepted).
//!
//! # The script
//!
//! A fixed-seed [`SplitMix64`] writes every client's script before the runtime starts, so
//! the exact counts the test expects (connections, disconnects, half-closes, slow readers)
//! are known up front, and nothing is bounded by wall-clock time: each of the 1,000 client
//! *slots* holds one connection at a time and plays [`ROUNDS`] rounds, each an echo of random
//! bytes or (one round in [`DISCONNECT_ONE_IN`]) a disconnect mid-stream, after which it
//! reconnects:
//!
//! - *mid-request*: the client sends part of an echo frame, then drops its socket (the server
//!   reads the end of the stream inside the frame);
//! - *mid-response*: the client asks for a 256 KiB response, reads a few bytes of it, and
//!   drops its socket (the server's write or its next read fails with a reset, or reads the
//!   end of the stream, depending on what the kernel had queued).
//!
//! Then the slot's last connection ends in one of three states, where it stays until the
//! shutdown: *idle* (waits with nothing in flight), *half-closed* (the client says so in a
//! frame, `shutdown(Write)`s, reads the server's acknowledgement and keeps reading), or
//! *slow reader* (the client asks for a 64 MiB flood, reads a few bytes, and stalls while the
//! server writes; the server is parked on a full socket buffer; one slot in eight, since the
//! kernel buffers about 4 MiB of flood per stalled loopback connection under the default
//! `tcp_wmem`, all of it drained after the cancel). Only when every slot is in
//! its last state, every disconnect has ended its server task, and every flood's writer has
//! been seen pending does the test measure the descriptors and call `treeloop::shutdown()`.
//!
//! On the root cancel, each server connection task's pending await (a read, a flood write,
//! or the half-closed task's wait) fails with `Cancelled(Shutdown)`, and its cleanup writes a
//! goodbye inside a `shield`. Each client's pending await fails too, and its cleanup reads,
//! inside a `shield`, to the end of the stream: exactly the goodbye (after the rest of the
//! flood, for a slow reader). A slow reader's server can finish its goodbye only because its
//! client drains in its own shielded cleanup: both sides' cleanups do real I/O after the
//! cancel, on 2,000 sockets at once.
//!
//! # Why the clients run in the same runtime
//!
//! Clients on another thread with blocking std sockets would need a thread per connection
//! (or a hand-written poll loop) to hold 1,000 connections open and stalled at once. In the
//! runtime, both ends of every connection are treeloop sockets: the reactor holds 2,000
//! registered sources, sees readiness in both directions on both ends, and the root cancel
//! reaches 2,000 tasks parked on I/O (reads, a full-buffer write, waits) at once. The
//! runtime waiting on a foreign peer is covered by `tests/net.rs`.
//!
//! # Descriptors and pacing
//!
//! At the peak both ends of every slot's connection are open (about 2,000 descriptors, plus
//! a dropped connection's server end until the server sees it go). Under a soft limit too
//! low for that (1,024 is common) the test runs as many slots as fit and says so on stderr;
//! `.ci/run` raises the limit. `TcpListener::bind` listens with mio's backlog of 128, so, as
//! in `tests/load.rs`, at most [`CONNECTING`] clients are between `connect` and their first
//! echo (which proves the server accepted them) at any moment: a burst would overflow the
//! accept queue, and the kernel would drop handshakes for the clients to retry seconds later.
//!
//! This file holds a single test on purpose: it counts the process's open descriptors, so no
//! other test may open sockets in the same process at the same time.
//!
//! The test, its parameters and the [`Goal`] counts it waits on are here; its parts live in
//! `tests/torture_load/`: the seeded scripts (`script.rs`), the frames both sides speak
//! (`wire.rs`), the server (`server.rs`), the clients (`client.rs`), and the descriptor counts
//! (`fds.rs`).

mod client;
mod fds;
mod script;
mod server;
mod wire;

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;

use client::{Clients, client};
use fds::{open_fds, slots};
use script::{Last, Round, Script, scripts};
use server::{Ending, Server, serve};
use treeloop::net::TcpListener;
use treeloop::sync::{Event, Semaphore};
use treeloop::{Builder, CancelReason, ScopeError, scope, shield, spawn};

/// Client slots (concurrent connections) wanted.
const WANTED: usize = 1_000;

/// Rounds each slot plays before settling in its last state.
const ROUNDS: usize = 4;

/// One round in this many is a disconnect (then a reconnect).
const DISCONNECT_ONE_IN: u64 = 8;

/// The seed of the script.
const SEED: u64 = 0x7e1e_100b;

/// Clients between `connect` and their first echo at any moment (below the backlog of 128).
const CONNECTING: usize = 64;

/// The largest echo payload.
const MAX_ECHO: usize = 2_048;

/// The response a mid-response disconnect asks for, then abandons.
const RESPONSE: usize = 256 * 1024;

/// The flood a slow reader asks for: more than loopback socket buffers hold for a reader
/// that does not read, so the server's write is still parked when the shutdown comes.
const FLOOD: usize = 64 * 1024 * 1024;

/// The most frames a connection serves, and reads or writes a loop makes, before panicking.
const MAX_STEPS: usize = 1_000_000;

/// A count with a target: its event is set when the count reaches the target.
struct Goal {
    /// The count so far.
    count: Cell<usize>,
    /// The count the waiters wait for.
    target: usize,
    /// Set when `count` reaches `target`.
    reached: Event,
}

impl Goal {
    fn new(target: usize) -> Goal {
        let goal = Goal {
            count: Cell::new(0),
            target,
            reached: Event::new(),
        };
        if target == 0 {
            goal.reached.set();
        }
        goal
    }

    fn add(&self) {
        self.count.set(self.count.get() + 1);
        if self.count.get() == self.target {
            self.reached.set();
        }
    }
}

#[test]
fn a_thousand_misbehaving_connections_then_a_root_cancel_clean_up_every_task_and_fd() {
    let started = std::time::Instant::now();
    let slots = slots();
    let scripts = scripts(slots);
    let disconnects: usize = scripts.iter().map(Script::disconnects).sum();
    let mid_request = scripts
        .iter()
        .flat_map(|s| &s.rounds)
        .filter(|r| matches!(r, Round::DropMidRequest { .. }))
        .count();
    let count_last = |f: fn(&Last) -> bool| scripts.iter().filter(|s| f(&s.last)).count();
    let half_closed = count_last(|l| *l == Last::HalfClosed);
    let slow_readers = count_last(|l| matches!(l, Last::SlowReader { .. }));
    let connections = slots + disconnects; // each disconnect is followed by a reconnect

    let fds_before = open_fds();
    let server = Rc::new(Server {
        accepted: Cell::new(0),
        endings: RefCell::default(),
        dropped: Cell::new(0),
        peer_gone: Goal::new(disconnects),
        stalled: Goal::new(slow_readers),
    });
    let runtime = Builder::new().build().unwrap();
    let (fds_at_peak, farewells, connected) = runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let clients = Rc::new(Clients {
            addr: listener.local_addr().unwrap(),
            connecting: Semaphore::new(CONNECTING),
            connected: Cell::new(0),
            settled: Goal::new(slots),
        });
        let accepting = spawn({
            let server = server.clone();
            scope(move |s| async move {
                // Accepts until the shutdown cancels the accept (the bound is never reached).
                for _ in 0..MAX_STEPS {
                    let (stream, _) = listener.accept().await?;
                    server.accepted.set(server.accepted.get() + 1);
                    let server = server.clone();
                    s.spawn(async move {
                        serve(stream, server).await;
                        Ok(())
                    })
                    .unwrap();
                }
                Ok::<_, io::Error>(())
            })
        });
        let handles: Vec<_> = scripts
            .into_iter()
            .enumerate()
            .map(|(slot, script)| spawn(client(slot, script, clients.clone())))
            .collect();

        clients.settled.reached.wait().await.unwrap();
        server.peer_gone.reached.wait().await.unwrap();
        server.stalled.reached.wait().await.unwrap();
        let fds_at_peak = open_fds();
        let ended = server.endings.borrow().len();
        assert_eq!(
            ended, disconnects,
            "only the dropped connections ended before the cancel"
        );

        treeloop::shutdown();
        // The root is cancelled too: its joins need a shield.
        let outcome = shield(accepting).await.unwrap();
        assert!(
            matches!(
                &outcome,
                Err(ScopeError::Cancelled(c)) if c.reason() == CancelReason::Shutdown
            ),
            "the server must stop only on the shutdown: {outcome:?}"
        );
        let mut farewells = Vec::new();
        for handle in handles {
            farewells.push(shield(handle).await.unwrap());
        }
        (fds_at_peak, farewells, clients.connected.get())
    });
    assert_eq!(runtime.live_nodes(), 0, "the whole tree finished");
    drop(runtime);
    let fds_after = open_fds();
    let endings = server.endings.take();
    let count = |f: fn(&Ending) -> bool| endings.iter().filter(|e| f(e)).count();
    let peer_closed = count(|e| *e == Ending::PeerClosed);
    let peer_failed = count(|e| matches!(e, Ending::PeerFailed(_)));
    let cancelled_cleanups = count(|e| matches!(e, Ending::Cancelled { .. }));
    let drained: usize = farewells.iter().map(|f| f.drained).sum();
    eprintln!(
        "{slots} slots, {connections} connections ({disconnects} disconnects: {mid_request} \
         mid-request, {} mid-response), {half_closed} half-closed, {slow_readers} slow readers \
         ({drained} flood bytes drained after the cancel); server endings: {peer_closed} peer \
         closed, {peer_failed} peer reset, {cancelled_cleanups} cancelled; open fds: \
         {fds_before} before, {fds_at_peak} at the peak, {fds_after} after; {:?}",
        disconnects - mid_request,
        started.elapsed()
    );

    assert_eq!(connected, connections, "every scripted connect completed");
    assert_eq!(
        server.accepted.get(),
        connections,
        "the server accepted every client that connected"
    );
    assert_eq!(
        endings.len(),
        connections,
        "one cleanup per connection task"
    );
    assert_eq!(
        server.dropped.get(),
        connections,
        "every task's state dropped"
    );
    assert_eq!(
        peer_closed + peer_failed,
        disconnects,
        "exactly the dropped connections ended by their peer: {endings:?}"
    );
    assert!(
        endings.iter().all(|e| match *e {
            Ending::PeerFailed(kind) => matches!(
                kind,
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            ),
            Ending::Cancelled { reason, goodbye } => reason == CancelReason::Shutdown && goodbye,
            Ending::PeerClosed => true,
        }),
        "{endings:?}"
    );
    assert_eq!(
        cancelled_cleanups, slots,
        "one open connection per slot at the shutdown"
    );
    assert_eq!(farewells.len(), slots);
    assert_eq!(
        farewells
            .iter()
            .filter(|f| f.last == Last::HalfClosed)
            .count(),
        half_closed
    );
    assert!(
        fds_at_peak >= fds_before + 2 * slots,
        "both ends of every slot's connection were open at once: {fds_before} before, \
         {fds_at_peak} at the peak"
    );
    assert_eq!(
        fds_after, fds_before,
        "every socket, the listener and the runtime's own descriptors were closed"
    );
}
