//! `examples/http_server.rs` against python's `http.client` over loopback, as a child
//! process stopped with real signals:
//!
//! - it answers `GET /`, `POST /echo` and `GET /slow` on one keep-alive connection;
//! - a `/slow` request in flight when SIGTERM (or SIGINT) arrives still gets its
//!   `slow done`, new connections are refused meanwhile (the listener closed first), and the
//!   server exits 0, saying it drained that connection.
//!
//! Every wait is for a line of output, a client's answer or an exit, bounded by
//! [`PATIENCE`]. `/slow` itself takes 2 s of the example's real time: it is the request in
//! flight under test, not a wait of the test's.

#[path = "common/examples.rs"]
mod examples;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use examples::{PATIENCE, Pipe, Running};

/// Runs `script` with python3 (its `ADDR` is `host:port`) in a thread, and sends its stdout
/// lines on the returned channel as they come.
fn python(addr: SocketAddr, script: &str) -> mpsc::Receiver<String> {
    let script = script.replace("ADDR", &addr.to_string());
    let (lines, received) = mpsc::channel();
    thread::spawn(move || {
        let mut child = Command::new("python3")
            .args(["-u", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs the client (install python3)");
        let stdout = child.stdout.take().expect("piped");
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
        let status = child.wait().expect("wait for python3");
        let _ = lines.send(format!("exit: {}", status.code().unwrap_or(-1)));
    });
    received
}

/// The next line of a python client, bounded by [`PATIENCE`].
fn next(lines: &mpsc::Receiver<String>, server: &mut Running) -> String {
    lines.recv_timeout(PATIENCE).unwrap_or_else(|err| {
        panic!(
            "the python client said nothing ({err}):\n{}",
            server.transcript()
        )
    })
}

fn start() -> (Running, SocketAddr) {
    let mut server = Running::start("http_server", &["0"], &[], None);
    let addr = server.listening_on("listening on http://");
    (server, addr)
}

#[test]
fn python_http_client_gets_hello_echo_and_slow_on_one_keep_alive_connection() {
    let (mut server, addr) = start();
    let client = python(
        addr,
        r#"
import http.client
host, port = "ADDR".split(":")
conn = http.client.HTTPConnection(host, int(port), timeout=20)
for method, path, body in [("GET", "/", None), ("POST", "/echo", b"ping pong"), ("GET", "/slow", None)]:
    conn.request(method, path, body=body)
    response = conn.getresponse()
    print(response.status, response.read().decode())
"#,
    );
    assert_eq!(next(&client, &mut server), "200 hello world");
    assert_eq!(next(&client, &mut server), "200 ping pong");
    assert_eq!(next(&client, &mut server), "200 slow done");
    assert_eq!(next(&client, &mut server), "exit: 0");
    server.terminate();
    let status = server.finish();
    assert!(status.success(), "{status}\n{}", server.transcript());
    server.wait_for(Pipe::Stdout, "1 connections served: 1 completed");
}

/// A `/slow` request in flight when `signal` arrives.
fn a_request_in_flight_completes_across(signal: &str) {
    let (mut server, addr) = start();
    let client = python(
        addr,
        r#"
import http.client
host, port = "ADDR".split(":")
conn = http.client.HTTPConnection(host, int(port), timeout=20)
conn.request("GET", "/slow")
response = conn.getresponse()
print(response.status, response.getheader("connection"), response.read().decode())
"#,
    );
    server.wait_for(Pipe::Stdout, "GET /slow");
    server.signal(signal);
    // The listener closes first: new clients are refused while /slow is still running. (A
    // connect racing the close may be reset instead, from the closing backlog: try again.)
    let deadline = Instant::now() + PATIENCE;
    loop {
        match TcpStream::connect(addr) {
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => break,
            _ if Instant::now() < deadline => continue,
            other => panic!(
                "still accepting after SIG{signal} ({other:?}):\n{}",
                server.transcript()
            ),
        }
    }
    // hyper answers the request in flight, asking the client to close.
    assert_eq!(next(&client, &mut server), "200 close slow done");
    assert_eq!(next(&client, &mut server), "exit: 0");
    let status = server.finish();
    assert!(status.success(), "{status}\n{}", server.transcript());
    let summary = server.wait_for(Pipe::Stdout, "shut down gracefully");
    assert!(
        summary.contains("1 drained at shutdown, 0 cut off, 0 failed"),
        "{summary}"
    );
}

#[test]
fn a_request_in_flight_completes_across_sigterm_and_the_server_exits_0() {
    a_request_in_flight_completes_across("TERM");
}

#[test]
fn a_request_in_flight_completes_across_sigint_and_the_server_exits_0() {
    a_request_in_flight_completes_across("INT");
}

/// Opens `count` connections at once, sends each an HTTP/1.1 request that asks the server
/// to close, then reads every response to the end.
fn fetch_all_at_once(addr: SocketAddr, count: usize) -> Vec<String> {
    use std::io::{Read, Write};
    let mut streams: Vec<TcpStream> = (0..count)
        .map(|_| TcpStream::connect(addr).expect("connect to http_server"))
        .collect();
    for stream in &mut streams {
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
    }
    streams
        .iter_mut()
        .map(|stream| {
            let mut response = String::new();
            stream
                .read_to_string(&mut response)
                .expect("the response, up to the close");
            response
        })
        .collect()
}

#[test]
fn the_server_keeps_serving_through_descriptor_exhaustion() {
    // Under `ulimit -n 64`, 200 clients, 100 of them connected at once (the listener's
    // backlog holds those the server cannot accept yet): accept fails with EMFILE while the
    // server holds all it may, backs off, and accepts the rest as connections close. Every
    // client gets its answer; the failure is reported once.
    let mut server = Running::start("http_server", &["0"], &[], Some(64));
    let addr = server.listening_on("listening on http://");
    let mut answered = fetch_all_at_once(addr, 100);
    answered.extend(fetch_all_at_once(addr, 100));
    assert_eq!(answered.len(), 200);
    for response in &answered {
        assert!(
            response.starts_with("HTTP/1.1 200 OK") && response.ends_with("hello world"),
            "{response}"
        );
    }
    let report = server.wait_for(Pipe::Stderr, "accept failed");
    assert!(report.contains("Too many open files"), "{report}");
    assert!(server.is_alive(), "{}", server.transcript());
    server.terminate();
    let status = server.finish();
    assert!(status.success(), "{status}\n{}", server.transcript());
    let reports = server
        .lines_of(Pipe::Stderr)
        .filter(|line| line.contains("accept failed"))
        .count();
    assert_eq!(reports, 1, "reported once:\n{}", server.transcript());
    server.wait_for(Pipe::Stdout, "200 connections served");
}
