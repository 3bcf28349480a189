//! An HTTP service on treeloop, written the way a production one should be: hyper 1.x
//! through `treeloop-hyper`, a graceful shutdown on SIGINT and SIGTERM, and a summary of
//! what the shutdown drained.
//!
//! - `GET /` answers `hello world`; `POST /echo` answers the request's body; `GET /slow`
//!   answers `slow done` after 2 s (a request still in flight when the shutdown comes).
//! - HTTP/1.1 with keep-alive, and HTTP/2 with prior knowledge (`curl --http2-prior-knowledge`).
//! - SIGINT (Ctrl-C) or SIGTERM (`kill`, systemd, `docker stop`) cancels the root. The server
//!   stops accepting and closes its listener first, then asks every connection to shut down
//!   gracefully: requests in flight finish (a `/slow` one gets its `slow done`), idle
//!   keep-alive connections close. Connections still open after the grace period (10 s) are
//!   cut off. The program prints what it drained and exits 0. A second signal exits at once.
//! - Out of file descriptors, the server keeps accepting once descriptors free up again.
//!
//! Run with: cargo run --release --example http_server -- PORT   (default 8080; 0 picks one)
//! Try it:   curl 127.0.0.1:8080/   curl -d hi 127.0.0.1:8080/echo   curl 127.0.0.1:8080/slow
//!           (then Ctrl-C while /slow runs: the response still arrives)

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use treeloop::net::TcpListener;
use treeloop::time::sleep;
use treeloop::{Builder, FutureExt};
use treeloop_hyper::Server;

/// How long requests in flight may take to finish once the shutdown starts.
const GRACE: Duration = Duration::from_secs(10);

/// How long `GET /slow` takes.
const SLOW: Duration = Duration::from_secs(2);

/// The largest request body `POST /echo` takes.
const MAX_BODY: usize = 1 << 20;

fn main() -> ExitCode {
    let port = match std::env::args().nth(1).map(|arg| arg.parse::<u16>()) {
        None => 8080,
        Some(Ok(port)) => port,
        Some(Err(err)) => {
            eprintln!("http_server: the argument must be a port number: {err}");
            return ExitCode::from(2);
        }
    };
    let runtime = match Builder::new().shutdown_on_signal(true).build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("http_server: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(async {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
        println!(
            "http_server: listening on http://{}",
            listener.local_addr()?
        );
        Server::new()
            .grace_period(GRACE)
            .serve(listener, service_fn(handle))
            .await
    });
    match served {
        Ok(summary) => {
            println!("http_server: shut down gracefully: {summary}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("http_server: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The service: one request in, one response out. Each request runs in its connection's
/// task, which drains on shutdown, so a handler never sees the shutdown's `Cancelled`: its
/// sleeps and reads just go on until the response is sent (or the grace period ends).
async fn handle(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    println!("http_server: {method} {path}");
    let response = match (method, path.as_str()) {
        (Method::GET, "/") => text(StatusCode::OK, "hello world"),
        (Method::POST, "/echo") => echo(request).await,
        (Method::GET, "/slow") => match sleep(SLOW).await {
            Ok(()) => text(StatusCode::OK, "slow done"),
            // Not reached while draining (the connection's shield hides the shutdown); only
            // a cut-off at the end of the grace period would stop this sleep.
            Err(cancelled) => text(StatusCode::SERVICE_UNAVAILABLE, &cancelled.to_string()),
        },
        _ => text(StatusCode::NOT_FOUND, "not found"),
    };
    Ok(response)
}

/// `POST /echo`: the body back, up to [`MAX_BODY`] bytes.
async fn echo(request: Request<Incoming>) -> Response<Full<Bytes>> {
    let limited = http_body_util::Limited::new(request.into_body(), MAX_BODY);
    // A foreign future: `or_cancel` makes the wait for the body cancellable.
    match limited.collect().or_cancel().await {
        Ok(Ok(body)) => Response::new(Full::new(body.to_bytes())),
        Ok(Err(err)) => text(
            StatusCode::BAD_REQUEST,
            &format!("cannot read the body: {err}"),
        ),
        Err(cancelled) => text(StatusCode::SERVICE_UNAVAILABLE, &cancelled.to_string()),
    }
}

/// A plain-text response.
fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response
}
