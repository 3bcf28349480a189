//! The two TCP examples against real clients on loopback, run as child processes (the
//! built `examples/echo_server` and `examples/graceful_shutdown`):
//!
//! - **Out of descriptors, they keep serving.** Under `ulimit -n 64`, 200 clients (100
//!   connected at a time, each sending a line and closing once it got its echo) all get their
//!   echo: `accept` fails with `EMFILE` while the server holds as many connections as it may,
//!   `AcceptBackoff` waits and accepts again once clients have closed. The failure is reported
//!   once on stderr, and afterwards the server still serves a new client and stops cleanly.
//! - **The shutdown resets nobody.** 300 clients keep two requests in flight each when
//!   SIGINT arrives; every one of them reads the end of the stream (FIN), none a reset (RST):
//!   the server stops reading, half-closes, and drains what the client still sends until it
//!   hangs up, so no unread byte is left in a receive buffer when a socket closes.
//! - **A failed server ends the program.** With `TREELOOP_DEMO_FAIL_ACCEPT=1`,
//!   `graceful_shutdown`'s accept fails for good after its first connection: the server closes
//!   that connection gracefully, the failure ends the program with exit status 1 and a
//!   message saying what failed, without any signal.
//!
//! Nothing waits on the clock to let something happen: every wait is for a line of output,
//! an echo, the end of a stream or a process exit, each bounded by [`PATIENCE`]. The stop
//! mechanism is `kill -INT` (`graceful_shutdown` runs with `TREELOOP_DEMO_WAIT_FOR_CTRL_C=1`,
//! so its own 3 s stand-in for Ctrl-C stays out of the way).
//!
//! The examples are built (or found up to date) by `cargo build` on first use, into this
//! test binary's target directory and profile: `cargo test --test examples` does not build
//! them, and a binary left by an earlier build may be stale.

#[path = "common/examples.rs"]
mod examples;

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier, mpsc};
use std::thread;

use examples::{PATIENCE, Pipe, Running};

/// A blocking client socket with a bounded wait on every read and write.
fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr)
        .unwrap_or_else(|err| panic!("connect to the example on {addr}: {err}"));
    stream.set_nodelay(true).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.set_write_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// Reads until `want` bytes came or the stream ended.
fn read_up_to(stream: &mut TcpStream, want: usize) -> io::Result<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0; 256];
    while got.len() < want {
        match stream.read(&mut buf)? {
            0 => break,
            n => got.extend_from_slice(&buf[..n]),
        }
    }
    Ok(got)
}

/// One client's round: sends a line, reads the echo, hangs up.
fn echo_once(addr: SocketAddr, line: &str) {
    let mut stream = connect(addr);
    stream.write_all(line.as_bytes()).unwrap();
    let echo = read_up_to(&mut stream, line.len()).unwrap();
    assert_eq!(String::from_utf8_lossy(&echo), line);
}

/// Clients in all; and at most this many connected at once. Far more than the server can
/// hold under `ulimit -n 64` (fewer than 64), and less than the listener's backlog (128, as std
/// and mio set it), so the ones waiting for an `accept` are queued by the kernel, not
/// dropped into SYN retransmits that would take a second each.
const EMFILE_CLIENTS: usize = 200;
const EMFILE_AT_ONCE: usize = 100;

/// 200 clients against `server` running under `ulimit -n 64`: every client gets its echo;
/// `accept`'s EMFILE was reported once; the server is still serving afterwards, and stops
/// with status 0 on SIGINT.
fn serves_through_descriptor_exhaustion(mut server: Running) {
    let addr = server.listening_on("echo server on ");
    let mut connected = VecDeque::new();
    let mut echoed = 0;
    let mut finish_oldest = |connected: &mut VecDeque<(String, TcpStream)>| {
        let (line, mut stream): (String, TcpStream) = connected.pop_front().expect("a client");
        let echo = read_up_to(&mut stream, line.len())
            .unwrap_or_else(|err| panic!("waiting for the echo of {line:?}: {err}"));
        assert_eq!(String::from_utf8_lossy(&echo), line, "an echo");
        echoed += 1;
    };
    for id in 0..EMFILE_CLIENTS {
        let line = format!("client {id}\n");
        let mut stream = connect(addr);
        stream.write_all(line.as_bytes()).unwrap();
        connected.push_back((line, stream));
        if connected.len() == EMFILE_AT_ONCE {
            finish_oldest(&mut connected);
        }
    }
    while !connected.is_empty() {
        finish_oldest(&mut connected);
    }
    assert_eq!(echoed, EMFILE_CLIENTS);
    let report = server.wait_for(Pipe::Stderr, "accept failed");
    assert!(report.contains("Too many open files"), "{report}");
    assert!(server.is_alive(), "{}", server.transcript());
    echo_once(addr, "still there?\n");

    server.interrupt();
    let status = server.finish();
    assert!(status.success(), "{status}\n{}", server.transcript());
    let reports = server
        .lines_of(Pipe::Stderr)
        .filter(|line| line.contains("accept failed"));
    assert_eq!(
        reports.count(),
        1,
        "reported once:\n{}",
        server.transcript()
    );
}

#[test]
fn echo_server_serves_200_clients_through_emfile_under_ulimit_64() {
    let server = Running::start("echo_server", &["127.0.0.1:0"], &[], Some(64));
    serves_through_descriptor_exhaustion(server);
}

#[test]
fn graceful_shutdown_serves_200_clients_through_emfile_under_ulimit_64() {
    let env = [("TREELOOP_DEMO_WAIT_FOR_CTRL_C", "1")];
    let server = Running::start("graceful_shutdown", &[], &env, Some(64));
    serves_through_descriptor_exhaustion(server);
}

/// How a client saw its connection end.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// It read the end of the stream (the server's FIN) and then hung up.
    EndOfStream,
    /// A read or write failed with a reset (RST) or a broken pipe (a write after one).
    Reset,
    /// Anything else (a timeout, say).
    Other(String),
}

/// Connections in the reset test and the size of one request.
const RST_CLIENTS: usize = 300;
const REQUEST: usize = 64;

/// A client that makes one round trip, says so on `ready`, waits at `start` for every other
/// client, then keeps two requests in flight until the server ends the stream (saying on
/// `busy` once it has written them). Hangs up once it has read the end of the stream, so
/// nothing is left unread on its side either.
fn busy_client(
    addr: SocketAddr,
    ready: mpsc::Sender<()>,
    start: &Barrier,
    busy: mpsc::Sender<()>,
) -> Ended {
    let mut stream = connect(addr);
    match keep_busy(&mut stream, &ready, start, &busy) {
        Ok(()) => Ended::EndOfStream,
        Err(err) => classify(err),
    }
}

/// The busy client's loop; `Ok` once it read the end of the stream.
fn keep_busy(
    stream: &mut TcpStream,
    ready: &mpsc::Sender<()>,
    start: &Barrier,
    busy: &mpsc::Sender<()>,
) -> io::Result<()> {
    let request = [b'x'; REQUEST];
    let mut buf = [0; 4096];
    // 1. One round trip, then wait for the others: clients that kept the server busy while
    //    the last ones still connected starved those (the demo logs every echo) on a loaded
    //    2-core machine.
    stream.write_all(&request)?;
    let (mut sent, mut received) = (REQUEST, 0);
    while received < REQUEST {
        match stream.read(&mut buf)? {
            0 => return Ok(()),
            n => received += n,
        }
    }
    let _ = ready.send(());
    start.wait();
    // 2. Busy: two requests unanswered at all times, so the server always has bytes to
    //    read. (`received` may pass `sent`: graceful_shutdown's goodbye comes on top.)
    let mut said_busy = false;
    loop {
        while sent < received + 2 * REQUEST {
            stream.write_all(&request)?;
            sent += REQUEST;
        }
        if !said_busy {
            said_busy = true;
            let _ = busy.send(());
        }
        match stream.read(&mut buf)? {
            0 => return Ok(()),
            n => received += n,
        }
    }
}

fn classify(err: io::Error) -> Ended {
    match err.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => Ended::Reset,
        _ => Ended::Other(err.to_string()),
    }
}

/// 300 busy clients against `server`; SIGINT once each has had an echo and then written its
/// two requests in flight; every client must see the end of the stream, none a reset; the
/// server exits 0. Returns the server, exited.
fn shuts_down_without_resets(mut server: Running) -> Running {
    let addr = server.listening_on("echo server on ");
    let (ready, readiness) = mpsc::channel();
    let (busy, busyness) = mpsc::channel();
    let (done, outcomes) = mpsc::channel();
    // Every client and this thread: the clients turn busy together, once all are connected.
    let start = Arc::new(Barrier::new(RST_CLIENTS + 1));
    for _ in 0..RST_CLIENTS {
        let (ready, busy, done, start) = (ready.clone(), busy.clone(), done.clone(), start.clone());
        thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || done.send(busy_client(addr, ready, &start, busy)))
            .expect("start a client thread");
    }
    drop(done);
    // 300 clients at once on a loaded 2-core machine: more patience than a single wait.
    for n in 0..RST_CLIENTS {
        if readiness.recv_timeout(3 * PATIENCE).is_err() {
            panic!(
                "only {n} of {RST_CLIENTS} clients got an echo\n{}",
                server.transcript()
            );
        }
    }
    start.wait();
    for n in 0..RST_CLIENTS {
        if busyness.recv_timeout(PATIENCE).is_err() {
            panic!("only {n} of {RST_CLIENTS} clients have requests in flight");
        }
    }
    server.interrupt();
    let mut ended = Vec::new();
    for _ in 0..RST_CLIENTS {
        match outcomes.recv_timeout(PATIENCE) {
            Ok(outcome) => ended.push(outcome),
            Err(err) => panic!("a client never saw its connection end ({err}): {ended:?}"),
        }
    }
    let resets = ended.iter().filter(|e| **e == Ended::Reset).count();
    let others: Vec<_> = ended
        .iter()
        .filter(|e| matches!(e, Ended::Other(_)))
        .collect();
    assert_eq!(
        resets, 0,
        "{resets} of {RST_CLIENTS} connections were reset"
    );
    assert!(others.is_empty(), "{others:?}");
    let status = server.finish();
    assert!(status.success(), "{status}\n{}", server.transcript());
    server
}

#[test]
fn echo_server_shutdown_with_300_requests_in_flight_resets_no_connection() {
    let server = Running::start("echo_server", &["127.0.0.1:0"], &[], None);
    let server = shuts_down_without_resets(server);
    let summary = server
        .lines_of(Pipe::Stdout)
        .find(|line| line.starts_with("stopped:"))
        .expect("the summary line")
        .to_owned();
    let closed = format!("closed {RST_CLIENTS} at the shutdown without a reset");
    assert!(summary.contains(&closed), "{summary}");
}

#[test]
fn graceful_shutdown_with_300_requests_in_flight_resets_no_connection() {
    let env = [("TREELOOP_DEMO_WAIT_FOR_CTRL_C", "1")];
    let server = Running::start("graceful_shutdown", &[], &env, None);
    shuts_down_without_resets(server);
}

#[test]
fn graceful_shutdown_exits_with_the_error_when_its_server_fails() {
    // Waiting for a Ctrl-C that never comes: only the failure can end it.
    let env = [
        ("TREELOOP_DEMO_WAIT_FOR_CTRL_C", "1"),
        ("TREELOOP_DEMO_FAIL_ACCEPT", "1"),
    ];
    let mut server = Running::start("graceful_shutdown", &[], &env, None);
    let status = server.finish();
    assert_eq!(status.code(), Some(1), "{status}\n{}", server.transcript());
    let said = server.wait_for(Pipe::Stderr, "graceful_shutdown: ");
    assert_eq!(
        said,
        "graceful_shutdown: the server failed: accept failed for good (injected by \
         TREELOOP_DEMO_FAIL_ACCEPT=1)"
    );
    // The failure closed the one connection gracefully before the program ended.
    server.wait_for(
        Pipe::Stdout,
        "conn 1: the client hung up after the goodbye; closed",
    );
    server.wait_for(
        Pipe::Stdout,
        "1 connections closed cleanly, 1 goodbyes sent and 1 received",
    );
}
