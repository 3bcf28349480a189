//! hyper 1.x on treeloop and on tokio, side by side: one HTTP service, the same hyper
//! options, two runtimes, for wrk to load. `benches/http/run.sh` drives it and prints the
//! tables; what it measures and the latest results: `benches/README.md`.
//!
//! - `serve treeloop PORT`: `treeloop_hyper::Server` under `Builder::shutdown_on_signal`.
//! - `serve tokio PORT`: a tokio `current_thread` runtime, hyper's `http1` connections over
//!   hyper-util's `TokioIo`, and the graceful shutdown a tokio user writes on SIGINT: stop
//!   accepting and close the listener, then hyper-util's `GracefulShutdown` drains the
//!   connections.
//!
//!   Both listen on 127.0.0.1:PORT (0 picks a port), print `listening on http://ADDR` once
//!   ready, drain on SIGINT within a 10 s grace period, print one line saying what they
//!   drained and exit 0. The service: `GET /` answers `hello world`; `POST /upload` reads
//!   the body and answers its length (`16384 bytes`); anything else is a 404. Both run
//!   hyper's HTTP/1.1 with keep-alive and a timer (so hyper's 30 s header read timeout is
//!   armed on both, as `treeloop_hyper::Server` always does).
//! - `client ADDR REQUESTS [BODY_BYTES]`: that many requests, one after the other on one
//!   keep-alive connection (`GET /`, or `POST /upload` with a body), each response checked.
//!   A fixed amount of work, for instruction counts under callgrind.
//! - No arguments (`cargo test --benches`), or only `--bench` (`cargo bench --bench http`):
//!   a smoke check, in about a second and without wrk: each runtime's server in a child
//!   process answers GETs and POSTs, then shuts down on SIGINT with exit status 0.
//!
//! Run with: `benches/http/run.sh` (about 8 minutes; `--help` for its options), or
//! `cargo bench --bench http` for the smoke check alone.

use std::convert::Infallible;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::pin::pin;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};

/// How long connections may take to finish their requests once SIGINT arrives.
const GRACE: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    // `cargo bench` adds `--bench`; it changes nothing here.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| arg != "--bench")
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        [] => smoke(),
        ["serve", runtime, port] => match (*runtime, port.parse::<u16>()) {
            ("treeloop", Ok(port)) => serve_treeloop(port),
            ("tokio", Ok(port)) => serve_tokio(port),
            _ => usage(),
        },
        ["client", addr, requests, rest @ ..] if rest.len() <= 1 => {
            let body_bytes = rest.first().map_or(Ok(0), |bytes| bytes.parse::<usize>());
            match (requests.parse::<u64>(), body_bytes) {
                (Ok(requests), Ok(body_bytes)) => match client(addr, requests, body_bytes) {
                    Ok(()) => {
                        println!("client: {requests} requests answered");
                        ExitCode::SUCCESS
                    }
                    Err(err) => {
                        eprintln!("client: {err}");
                        ExitCode::FAILURE
                    }
                },
                _ => usage(),
            }
        }
        _ => usage(),
    }
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: http serve treeloop|tokio PORT | http client ADDR REQUESTS [BODY_BYTES] | \
         http (no arguments: the smoke check). The benchmark itself: benches/http/run.sh"
    );
    ExitCode::from(2)
}

// ---------------------------------------------------------------------------------------
// The service, the same on both runtimes.

/// `GET /` -> `hello world`; `POST /upload` -> the body's length; else 404.
async fn handle(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = match (request.method(), request.uri().path()) {
        (&Method::GET, "/") => Response::new(Full::new(Bytes::from_static(b"hello world"))),
        (&Method::POST, "/upload") => match body_length(request.into_body()).await {
            Ok(length) => Response::new(Full::new(Bytes::from(format!("{length} bytes")))),
            Err(err) => text(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {err}"),
            ),
        },
        _ => text(StatusCode::NOT_FOUND, "not found".to_owned()),
    };
    Ok(response)
}

/// Reads a body to its end, frame by frame (no copy into one buffer), and counts its bytes.
async fn body_length(mut body: Incoming) -> Result<usize, hyper::Error> {
    let mut length = 0;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            length += data.len();
        }
    }
    Ok(length)
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// The line the bench script and the smoke check wait for.
fn announce(runtime: &str, addr: SocketAddr) {
    println!("{runtime}: listening on http://{addr}");
    // A pipe's stdout is block-buffered: the reader must see the line now.
    let _ = io::stdout().flush();
}

// ---------------------------------------------------------------------------------------
// The servers.

/// treeloop: `treeloop_hyper::Server` does the accept loop, the task per connection and the
/// drain on cancel; the first SIGINT cancels the root.
fn serve_treeloop(port: u16) -> ExitCode {
    let runtime = match treeloop::Builder::new().shutdown_on_signal(true).build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("treeloop: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(async {
        let listener = treeloop::net::TcpListener::bind(loopback(port))?;
        announce("treeloop", listener.local_addr()?);
        treeloop_hyper::Server::new()
            .grace_period(GRACE)
            .serve(listener, service_fn(handle))
            .await
    });
    match served {
        Ok(summary) => {
            println!("treeloop: shut down gracefully: {summary}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("treeloop: {err}");
            ExitCode::FAILURE
        }
    }
}

/// tokio: what a tokio user writes for the same server, after hyper-util's graceful
/// shutdown example: accept until Ctrl-C, then close the listener, then tell every
/// connection to shut down gracefully and wait for them, at most the grace period.
fn serve_tokio(port: u16) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("tokio: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(loopback(port)).await?;
        announce("tokio", listener.local_addr()?);
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1.timer(hyper_util::rt::TokioTimer::new());
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let mut ctrl_c = pin!(tokio::signal::ctrl_c());
        let mut served = 0u64;
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _peer)) => {
                        served += 1;
                        let io = hyper_util::rt::TokioIo::new(stream);
                        let connection = http1.serve_connection(io, service_fn(handle));
                        let connection = graceful.watch(connection);
                        tokio::spawn(async move {
                            // A client that resets or times out ends its own connection.
                            let _ = connection.await;
                        });
                    }
                    // Out of descriptors, or a connection aborted before it was accepted:
                    // back off a little and go on.
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                },
                signalled = &mut ctrl_c => {
                    signalled?;
                    break;
                }
            }
        }
        drop(listener);
        let open = graceful.count();
        let drained = tokio::time::timeout(GRACE, graceful.shutdown())
            .await
            .is_ok();
        io::Result::Ok((served, open, drained))
    });
    match served {
        Ok((served, open, true)) => {
            println!(
                "tokio: shut down gracefully: {served} connections served, {open} drained at \
                 shutdown"
            );
            ExitCode::SUCCESS
        }
        Ok((served, open, false)) => {
            println!(
                "tokio: {served} connections served; the grace period ended before the {open} \
                 open at shutdown had drained"
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("tokio: {err}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------
// A blocking client with a fixed amount of work.

/// Sends `requests` requests on one keep-alive connection, one at a time, and checks every
/// response: `GET /` when `body_bytes` is 0, else `POST /upload` with that many bytes.
fn client(addr: &str, requests: u64, body_bytes: usize) -> io::Result<()> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let (request, expected) = if body_bytes == 0 {
        let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes();
        (request, "hello world".to_owned())
    } else {
        let mut request = format!(
            "POST /upload HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {body_bytes}\r\n\r\n"
        )
        .into_bytes();
        request.resize(request.len() + body_bytes, b'x');
        (request, format!("{body_bytes} bytes"))
    };
    let mut responses = BufReader::new(stream.try_clone()?);
    for sent in 0..requests {
        stream.write_all(&request)?;
        let body = read_response(&mut responses)?;
        if body != expected.as_bytes() {
            return Err(io::Error::other(format!(
                "response {sent}: expected {expected:?}, got {:?}",
                String::from_utf8_lossy(&body)
            )));
        }
    }
    Ok(())
}

/// Reads one `200 OK` response with a `content-length` and returns its body.
fn read_response(responses: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut line = String::new();
    let mut status = None;
    let mut length = None;
    loop {
        line.clear();
        if responses.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end();
        if status.is_none() {
            status = Some(line.to_owned());
        } else if line.is_empty() {
            break;
        } else if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<usize>().ok();
            }
        }
    }
    let status = status.unwrap_or_default();
    if !status.starts_with("HTTP/1.1 200") {
        return Err(io::Error::other(format!(
            "unexpected status line {status:?}"
        )));
    }
    let length = length.ok_or_else(|| io::Error::other("a response without content-length"))?;
    let mut body = vec![0; length];
    responses.read_exact(&mut body)?;
    Ok(body)
}

// ---------------------------------------------------------------------------------------
// The smoke check.

/// Each server in a child process: it answers, then drains on SIGINT and exits 0.
fn smoke() -> ExitCode {
    for runtime in ["treeloop", "tokio"] {
        let started = Instant::now();
        match smoke_one(runtime) {
            Ok(last_line) => println!(
                "http smoke: {runtime} answered and shut down on SIGINT in {:?} ({last_line})",
                started.elapsed()
            ),
            Err(err) => {
                eprintln!("http smoke: {runtime}: {err}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

/// Runs `serve RUNTIME 0` in a child, makes a few requests, sends SIGINT; returns the
/// child's last line.
fn smoke_one(runtime: &str) -> io::Result<String> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["serve", runtime, "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()?;
    let checked = check_child(&mut child);
    if checked.is_err() {
        let _ = child.kill();
        let _ = child.wait();
    }
    checked
}

fn check_child(child: &mut Child) -> io::Result<String> {
    // Lines from the child's stdout, read on a thread so every wait has a deadline.
    let stdout = child.stdout.take().expect("stdout is piped");
    let (lines, received) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = || match received.recv_timeout(Duration::from_secs(10)) {
        Ok(line) => line,
        Err(_) => Err(io::Error::other("no line from the server within 10 s")),
    };
    let first = next_line()?;
    let addr = first
        .split_once("listening on http://")
        .map(|(_, addr)| addr.to_owned())
        .ok_or_else(|| io::Error::other(format!("unexpected first line {first:?}")))?;
    client(&addr, 20, 0)?;
    client(&addr, 3, 100_000)?;

    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()?;
    if !status.success() {
        return Err(io::Error::other(format!("kill -INT: {status}")));
    }
    let last = next_line()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait()? {
            Some(status) if status.success() => return Ok(last),
            Some(status) => return Err(io::Error::other(format!("exited with {status}"))),
            None if Instant::now() > deadline => {
                return Err(io::Error::other("still running 10 s after SIGINT"));
            }
            None => thread::sleep(Duration::from_millis(10)),
        }
    }
}
