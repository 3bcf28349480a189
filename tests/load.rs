//! Load: 1,000 concurrent loopback connections in one runtime, then a cancel of the server
//! task: every connection task runs its cleanup (exactly 1,000), every client sees it, and no
//! file descriptor is leaked.
//!
//! The test needs about 2,000 descriptors at its peak (both ends of every connection); the
//! soft limit (`ulimit -n`) was 20,000 where it was written, so it ran at full scale. Under a
//! lower limit (1,024 is common) it runs as many connections as fit and says so on stderr;
//! `.ci/run` raises the limit so that CI runs all 1,000.
//!
//! The clients connect at most [`CONNECTING`] at a time (a connection counts as connecting
//! until its first echo came back, i.e. until the server has accepted it): `TcpListener::bind`
//! listens with mio's backlog of 128, and a burst of 1,000 connects overflows the accept
//! queue, so the kernel drops handshakes and the clients retransmit after 1 s, 3 s, 7 s...
//! All 1,000 connections are still open at the same time: none is closed before the cancel.
//!
//! This file holds a single test on purpose: it counts the process's open descriptors, so no
//! other test may open sockets in the same process at the same time.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;

use treeloop::net::{TcpListener, TcpStream};
use treeloop::sync::{Event, Semaphore};
use treeloop::{Builder, CancelReason, Cancelled, ScopeError, scope, shield, spawn};

/// Concurrent connections wanted.
const WANTED: usize = 1_000;

/// Concurrent connections run: `WANTED`, unless the soft descriptor limit cannot hold both
/// ends of that many (then as many as fit, said on stderr; `.ci/run` raises the limit).
fn connections() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse::<usize>().ok()
        })
        .unwrap_or(usize::MAX);
    let fit = soft.saturating_sub(128) / 2;
    if fit < WANTED {
        eprintln!("descriptor limit {soft}: running {fit} connections instead of {WANTED}");
    }
    WANTED.min(fit)
}

/// Connections between `connect` and their first echo at any moment (below the backlog).
const CONNECTING: usize = 64;

/// Request/response exchanges per connection before the cancel.
const MESSAGES: usize = 5;

/// What the server's connection tasks write in their (shielded) cleanup.
const GOODBYE: &[u8] = b"server shutting down";

/// Open file descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd (Linux)")
        .count()
}

/// Reads exactly `len` bytes.
async fn read_exactly(stream: &TcpStream, len: usize) -> io::Result<Vec<u8>> {
    let mut got = vec![0; len];
    let mut filled = 0;
    while filled < len {
        match stream.read(&mut got[filled..]).await? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => filled += n,
        }
    }
    Ok(got)
}

/// Reads until the end of the stream (at most `limit` bytes).
async fn read_to_end(stream: &TcpStream, limit: usize) -> io::Result<Vec<u8>> {
    let mut all = Vec::new();
    let mut buf = [0; 256];
    while all.len() <= limit {
        match stream.read(&mut buf).await? {
            0 => return Ok(all),
            n => all.extend_from_slice(&buf[..n]),
        }
    }
    panic!(
        "more than {limit} bytes: {:?}",
        String::from_utf8_lossy(&all)
    );
}

/// One connection on the server side: echo until cancelled, then say goodbye (shielded).
/// Returns the reason of the cancellation that ended it.
async fn serve(stream: TcpStream) -> io::Result<CancelReason> {
    let mut buf = [0; 256];
    // Bounded: a client sends MESSAGES requests, then waits for the goodbye.
    for _ in 0..=MESSAGES {
        let n = match stream.read(&mut buf).await {
            Ok(0) => panic!("a client closed before the server said goodbye"),
            Ok(n) => n,
            Err(err) => match Cancelled::from_io(&err) {
                Some(cancelled) => {
                    shield(stream.write_all(GOODBYE)).await?;
                    return Ok(cancelled.reason());
                }
                None => return Err(err),
            },
        };
        stream.write_all(&buf[..n]).await?;
    }
    panic!("a client sent more than {MESSAGES} requests");
}

#[test]
fn a_thousand_connections_echo_then_a_cancel_runs_every_cleanup_and_leaks_no_fd() {
    let connections = connections();
    let fds_before = open_fds();
    let cleanups: Rc<RefCell<Vec<CancelReason>>> = Rc::default();
    let exchanged = Rc::new(Cell::new(0));
    let goodbyes = Rc::new(Cell::new(0));
    let fds_at_peak = {
        let runtime = Builder::new().build().unwrap();
        runtime.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let server = spawn({
                let cleanups = cleanups.clone();
                scope(move |s| async move {
                    for _ in 0..connections {
                        let (stream, _) = listener.accept().await?;
                        let cleanups = cleanups.clone();
                        s.spawn(async move {
                            let reason = serve(stream).await?;
                            cleanups.borrow_mut().push(reason);
                            Ok(())
                        })
                        .unwrap();
                    }
                    // The body ends; the scope waits for its 1,000 members.
                    Ok::<_, io::Error>(())
                })
            });

            let all_exchanged = Event::new();
            let connecting = Rc::new(Semaphore::new(CONNECTING));
            let clients: Vec<_> = (0..connections)
                .map(|i| {
                    let exchanged = exchanged.clone();
                    let goodbyes = goodbyes.clone();
                    let all_exchanged = all_exchanged.clone();
                    let connecting = connecting.clone();
                    spawn(async move {
                        let mut permit = Some(connecting.acquire().await.unwrap());
                        let stream = TcpStream::connect(addr).await.unwrap();
                        for k in 0..MESSAGES {
                            let request = format!("client {i} request {k}");
                            stream.write_all(request.as_bytes()).await.unwrap();
                            let echoed = read_exactly(&stream, request.len()).await.unwrap();
                            assert_eq!(echoed, request.as_bytes());
                            drop(permit.take()); // accepted: let the next client connect
                        }
                        exchanged.set(exchanged.get() + 1);
                        if exchanged.get() == connections {
                            all_exchanged.set();
                        }
                        let rest = read_to_end(&stream, GOODBYE.len()).await.unwrap();
                        assert_eq!(rest, GOODBYE);
                        goodbyes.set(goodbyes.get() + 1);
                    })
                })
                .collect();

            all_exchanged.wait().await.unwrap();
            let fds_at_peak = open_fds();
            assert!(cleanups.borrow().is_empty(), "no cleanup before the cancel");
            server.cancel();
            let outcome = server.await.unwrap();
            assert!(
                matches!(
                    outcome,
                    Err(ScopeError::Cancelled(c)) if c.reason() == CancelReason::Explicit
                ),
                "{outcome:?}"
            );
            for client in clients {
                client.await.unwrap();
            }
            fds_at_peak
        })
    };
    eprintln!(
        "open fds: {fds_before} before, {fds_at_peak} at the peak, {} after",
        open_fds()
    );
    assert_eq!(exchanged.get(), connections);
    let cleanups = cleanups.take();
    assert_eq!(
        cleanups.len(),
        connections,
        "one cleanup per connection task"
    );
    assert!(cleanups.iter().all(|&r| r == CancelReason::Explicit));
    assert_eq!(goodbyes.get(), connections, "every client got the goodbye");
    assert!(
        fds_at_peak >= fds_before + 2 * connections,
        "both ends of every connection were open at once: {fds_before} before, \
         {fds_at_peak} at the peak"
    );
    assert_eq!(
        open_fds(),
        fds_before,
        "every socket, the listener and the runtime's own descriptors were closed"
    );
}
