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

use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::pin::pin;
use std::rc::Rc;

use treeloop::net::{TcpListener, TcpStream};
use treeloop::sync::{Event, Semaphore};
use treeloop::{Builder, CancelReason, Cancelled, ScopeError, cancelled, scope, shield, spawn};

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

/// The byte responses and floods are made of (the goodbye has none of it).
const FILL: u8 = b'.';

/// What a half-closed connection's server writes once it has seen the end of the stream.
const HALF_CLOSE_ACK: &[u8] = b"half-close seen";

/// What every server connection task still open at the shutdown writes in its cleanup.
const GOODBYE: &[u8] = b"server shutting down";

// A frame is an op byte and a big-endian `u32` argument, then (for an echo) the payload.

/// Op: echo the payload that follows (the argument is its length).
const ECHO: u8 = b'E';
/// Op: send back as many FILL bytes as the argument says.
const RESPOND: u8 = b'R';
/// Op: the same, and the server reports when its write is pending (the flood of a slow
/// reader).
const FLOOD_ME: u8 = b'F';
/// Op: the client shuts its write side after this frame and keeps reading.
const HALF_CLOSE: u8 = b'H';

/// Frame header length.
const HEADER: usize = 5;

/// The most frames a connection serves, and reads or writes a loop makes, before panicking.
const MAX_STEPS: usize = 1_000_000;

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, fixed-seed, good-enough generator.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `1..=n`.
    fn one_to(&mut self, n: usize) -> usize {
        1 + (self.next() % n as u64) as usize
    }
}

/// One scripted round of a client slot.
#[derive(Clone, Copy, Debug)]
enum Round {
    /// Echo `len` bytes generated from `seed`.
    Echo { len: usize, seed: u64 },
    /// Send an echo header and `sent` of its `len` payload bytes, then drop the socket.
    DropMidRequest { len: usize, sent: usize },
    /// Ask for [`RESPONSE`] bytes, read `read` of them, then drop the socket.
    DropMidResponse { read: usize },
}

/// Where a slot's last connection stays until the shutdown.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Last {
    /// Waits with nothing in flight.
    Idle,
    /// Half-closed: shut its write side, keeps reading.
    HalfClosed,
    /// Asked for a flood, read `prefix` bytes, stalls.
    SlowReader { prefix: usize },
}

/// One client slot's script.
struct Script {
    /// The rounds, in order.
    rounds: Vec<Round>,
    /// The last state.
    last: Last,
}

impl Script {
    fn disconnects(&self) -> usize {
        let drops = |r: &&Round| !matches!(r, Round::Echo { .. });
        self.rounds.iter().filter(drops).count()
    }
}

/// Every slot's script, from one seed.
fn scripts(slots: usize) -> Vec<Script> {
    let mut rng = SplitMix64(SEED);
    (0..slots)
        .map(|_| {
            let rounds = (0..ROUNDS)
                .map(|_| {
                    if rng.next() % DISCONNECT_ONE_IN != 0 {
                        Round::Echo {
                            len: rng.one_to(MAX_ECHO),
                            seed: rng.next(),
                        }
                    } else if rng.next() % 2 == 0 {
                        let len = 2 + rng.one_to(MAX_ECHO - 2);
                        Round::DropMidRequest {
                            len,
                            sent: rng.one_to(len - 1),
                        }
                    } else {
                        Round::DropMidResponse {
                            read: rng.one_to(8 * 1024),
                        }
                    }
                })
                .collect();
            // Few slow readers: each holds megabytes of kernel buffers until the cancel.
            let last = match rng.next() % 8 {
                0 => Last::SlowReader {
                    prefix: rng.one_to(64),
                },
                1 | 2 => Last::HalfClosed,
                _ => Last::Idle,
            };
            Script { rounds, last }
        })
        .collect()
}

/// Client slots run: `WANTED`, unless the soft descriptor limit cannot hold both ends of that
/// many plus the dropped connections not yet closed by the server (then as many as fit, said
/// on stderr; `.ci/run` raises the limit).
fn slots() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse::<usize>().ok()
        })
        .unwrap_or(usize::MAX);
    let fit = soft.saturating_sub(256) / 3;
    if fit < WANTED {
        eprintln!("descriptor limit {soft}: running {fit} slots instead of {WANTED}");
    }
    WANTED.min(fit)
}

/// Open file descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd (Linux)")
        .count()
}

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

/// How a server connection task ended.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Ending {
    /// The peer closed (end of stream, inside a frame or between frames).
    PeerClosed,
    /// The peer reset the connection (a read or write failed).
    PeerFailed(io::ErrorKind),
    /// Cancelled; then the cleanup wrote the goodbye (`true`) or failed to.
    Cancelled { reason: CancelReason, goodbye: bool },
}

/// What the server side shares with the test.
struct Server {
    /// Connections accepted.
    accepted: Cell<usize>,
    /// How each connection task ended, one entry per task.
    endings: RefCell<Vec<Ending>>,
    /// Connection tasks whose state was dropped (the stream with it).
    dropped: Cell<usize>,
    /// Connection tasks ended by their peer (reaches the number of scripted disconnects).
    peer_gone: Goal,
    /// Flood writers seen pending on a full socket buffer (reaches the number of slow readers).
    stalled: Goal,
}

/// Counts the drop of a connection task's state, whatever ends the task.
struct DropCount(Rc<Server>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.dropped.set(self.0.dropped.get() + 1);
    }
}

/// Reads exactly `buf.len()` bytes; an end of stream is `UnexpectedEof`.
async fn read_exact(stream: &TcpStream, buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match stream.read(&mut buf[filled..]).await? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => filled += n,
        }
    }
    Ok(())
}

/// Reads the next frame header; `None` at an end of stream between frames.
async fn read_header(stream: &TcpStream) -> io::Result<Option<(u8, usize)>> {
    let mut header = [0; HEADER];
    if stream.read(&mut header[..1]).await? == 0 {
        return Ok(None);
    }
    read_exact(stream, &mut header[1..]).await?;
    let arg = u32::from_be_bytes(header[1..].try_into().unwrap());
    Ok(Some((header[0], arg as usize)))
}

/// A frame header.
fn header(op: u8, arg: usize) -> [u8; HEADER] {
    let mut header = [op; HEADER];
    header[1..].copy_from_slice(&u32::try_from(arg).unwrap().to_be_bytes());
    header
}

/// Writes `len` FILL bytes; if `stalled` is given, counts it once when a write is pending
/// (the peer's receive buffer and ours are full).
async fn send_fill(stream: &TcpStream, len: usize, stalled: Option<&Goal>) -> io::Result<()> {
    let chunk = [FILL; 64 * 1024];
    let mut noted = stalled.is_none();
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len());
        let mut write = pin!(stream.write_all(&chunk[..n]));
        poll_fn(|cx| {
            let poll = write.as_mut().poll(cx);
            if poll.is_pending() && !noted {
                noted = true;
                stalled.unwrap().add();
            }
            poll
        })
        .await?;
        left -= n;
    }
    Ok(())
}

/// The server's side of one connection until the peer leaves or a cancellation comes.
/// Returns `Ok` when the peer closed between frames.
async fn converse(stream: &TcpStream, server: &Server) -> io::Result<()> {
    let mut payload = vec![0; MAX_ECHO];
    for _ in 0..MAX_STEPS {
        let Some((op, arg)) = read_header(stream).await? else {
            return Ok(());
        };
        match op {
            ECHO => {
                read_exact(stream, &mut payload[..arg]).await?;
                stream.write_all(&payload[..arg]).await?;
            }
            RESPOND => send_fill(stream, arg, None).await?,
            FLOOD_ME => send_fill(stream, arg, Some(&server.stalled)).await?,
            HALF_CLOSE => {
                let mut byte = [0];
                let n = stream.read(&mut byte).await?;
                assert_eq!(n, 0, "a half-closing client sent more");
                stream.write_all(HALF_CLOSE_ACK).await?;
                // Half-closed: nothing more to read; the write side waits for the end.
                return Err(cancelled().await.into());
            }
            op => panic!("unknown frame op {op}"),
        }
    }
    panic!("a connection sent more than {MAX_STEPS} frames");
}

/// One connection task of the server: converse, then clean up (a goodbye, shielded, when
/// cancelled).
async fn serve(stream: TcpStream, server: Rc<Server>) {
    let _dropped = DropCount(server.clone());
    let ending = match converse(&stream, &server).await {
        Ok(()) => Ending::PeerClosed,
        Err(err) => match Cancelled::from_io(&err) {
            Some(cancelled) => Ending::Cancelled {
                reason: cancelled.reason(),
                goodbye: shield(stream.write_all(GOODBYE)).await.is_ok(),
            },
            None if err.kind() == io::ErrorKind::UnexpectedEof => Ending::PeerClosed,
            None => Ending::PeerFailed(err.kind()),
        },
    };
    if !matches!(ending, Ending::Cancelled { .. }) {
        server.peer_gone.add();
    }
    server.endings.borrow_mut().push(ending);
}

/// What the clients share with the test.
struct Clients {
    /// Where the server listens.
    addr: SocketAddr,
    /// Paces connects below the listen backlog.
    connecting: Semaphore,
    /// Connects that completed (and whose first echo came back).
    connected: Cell<usize>,
    /// Slots settled in their last state.
    settled: Goal,
}

/// The bytes of an echo payload.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = SplitMix64(seed);
    (0..len).map(|_| rng.next() as u8).collect()
}

/// Sends an echo frame and checks that exactly its payload comes back.
async fn echo(stream: &TcpStream, len: usize, seed: u64) {
    let sent = payload(len, seed);
    stream.write_all(&header(ECHO, len)).await.unwrap();
    stream.write_all(&sent).await.unwrap();
    let mut back = vec![0; len];
    read_exact(stream, &mut back).await.unwrap();
    assert!(back == sent, "an echo came back different");
}

/// Connects, paced, and echoes once: the echo proves the server accepted the connection.
async fn connect(clients: &Clients, slot: usize) -> TcpStream {
    let _permit = clients.connecting.acquire().await.unwrap();
    let stream = TcpStream::connect(clients.addr).await.unwrap();
    echo(&stream, 8, slot as u64).await;
    clients.connected.set(clients.connected.get() + 1);
    stream
}

/// Reads exactly `len` bytes and checks they are FILL.
async fn read_fill(stream: &TcpStream, len: usize) {
    let mut got = vec![0; len];
    read_exact(stream, &mut got).await.unwrap();
    assert!(got.iter().all(|&b| b == FILL), "a response is not all FILL");
}

/// Reads to the end of the stream: how many FILL bytes came first, then what followed.
async fn read_to_end(stream: &TcpStream) -> (usize, Vec<u8>) {
    let mut fill = 0;
    let mut tail = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    for _ in 0..MAX_STEPS {
        let n = stream.read(&mut buf).await.unwrap();
        if n == 0 {
            return (fill, tail);
        }
        let mut got = &buf[..n];
        if tail.is_empty() {
            let fills = got.iter().take_while(|&&b| b == FILL).count();
            fill += fills;
            got = &got[fills..];
        }
        tail.extend_from_slice(got);
        assert!(tail.len() <= GOODBYE.len(), "more than a goodbye: {tail:?}");
    }
    panic!("no end of stream after {MAX_STEPS} reads");
}

/// What a slot saw after the shutdown.
#[derive(Debug)]
struct Farewell {
    /// The slot's last state.
    last: Last,
    /// FILL bytes read after the cancel (the rest of a slow reader's flood).
    drained: usize,
}

/// One client slot: its rounds, its last state, then (on the shutdown) its shielded cleanup.
async fn client(slot: usize, script: Script, clients: Rc<Clients>) -> Farewell {
    let mut stream = connect(&clients, slot).await;
    for round in script.rounds {
        match round {
            Round::Echo { len, seed } => echo(&stream, len, seed).await,
            Round::DropMidRequest { len, sent } => {
                stream.write_all(&header(ECHO, len)).await.unwrap();
                stream.write_all(&payload(sent, 0)).await.unwrap();
                drop(stream);
                stream = connect(&clients, slot).await;
            }
            Round::DropMidResponse { read } => {
                stream.write_all(&header(RESPOND, RESPONSE)).await.unwrap();
                read_fill(&stream, read).await;
                drop(stream);
                stream = connect(&clients, slot).await;
            }
        }
    }
    let cancel = match script.last {
        Last::Idle => {
            clients.settled.add();
            cancelled().await
        }
        Last::HalfClosed => {
            stream.write_all(&header(HALF_CLOSE, 0)).await.unwrap();
            stream.shutdown(Shutdown::Write).unwrap();
            let mut ack = [0; HALF_CLOSE_ACK.len()];
            read_exact(&stream, &mut ack).await.unwrap();
            assert_eq!(ack, HALF_CLOSE_ACK);
            clients.settled.add();
            // Keeps reading: nothing comes until the server's goodbye, after the cancel.
            let err = stream.read(&mut [0; 16]).await.unwrap_err();
            Cancelled::from_io(&err).expect("a half-closed read fails only with the cancel")
        }
        Last::SlowReader { prefix } => {
            stream.write_all(&header(FLOOD_ME, FLOOD)).await.unwrap();
            read_fill(&stream, prefix).await;
            clients.settled.add();
            cancelled().await // stalls: reads nothing until the cancel
        }
    };
    assert_eq!(cancel.reason(), CancelReason::Shutdown);
    let (drained, tail) = shield(read_to_end(&stream)).await;
    assert_eq!(tail, GOODBYE, "slot {slot} ({:?})", script.last);
    if let Last::SlowReader { prefix } = script.last {
        assert!(
            prefix + drained < FLOOD,
            "the flood was written whole: the server was never stalled at the cancel"
        );
    } else {
        assert_eq!(drained, 0);
    }
    Farewell {
        last: script.last,
        drained,
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
    assert_eq!(runtime.live_tasks(), 0, "the whole tree finished");
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
