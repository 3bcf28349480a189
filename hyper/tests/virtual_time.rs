//! hyper on a seeded runtime: over `treeloop::sim::duplex` streams (real sockets would make
//! the run non-deterministic), hyper's timers run on virtual time through `TreeloopTimer`,
//! so a 30 s header read timeout is exact and takes no real time, a request, a response
//! and a drain replay identically under a seed, and the whole `serve` loop runs over the
//! in-memory `treeloop::sim::listener`.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use treeloop::sim::duplex;
use treeloop::time::Instant;
use treeloop::{Builder, FutureExt, shield, spawn};
use treeloop_hyper::{ConnectionError, Server, Summary, client, serve};

async fn hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from("hello world"))))
}

#[test]
fn hypers_header_read_timeout_fires_on_virtual_time() {
    let runtime = Builder::new().seed(7).build().unwrap();
    let (outcome, took) = runtime.block_on(async {
        let start = Instant::now();
        let (server_end, client_end) = duplex(4096);
        let mut server = Server::new().http1_only();
        server.http1().header_read_timeout(Duration::from_secs(30));
        let connection =
            spawn(async move { server.serve_connection(server_end, service_fn(hello)).await });
        client_end
            .write_all(b"GET / HTTP/1.1\r\nHost: loc")
            .await
            .unwrap();
        // Nothing more is sent: the loop idles and virtual time jumps to hyper's deadline.
        let outcome = connection.await.unwrap();
        drop(client_end);
        (outcome, start.elapsed())
    });
    match outcome {
        Err(ConnectionError::Http(err)) => assert!(err.is_timeout(), "{err}"),
        other => panic!("expected hyper's header timeout, got {other:?}"),
    }
    assert_eq!(
        took,
        Duration::from_secs(30),
        "exactly hyper's timeout, on virtual time"
    );
}

/// One request and a drain over in-memory streams under `seed`; returns the body, the
/// runtime's trace hash and the virtual time it took.
fn request_and_drain(seed: u64) -> (String, u64, Duration) {
    let runtime = Builder::new()
        .seed(seed)
        .record_trace(true)
        .build()
        .unwrap();
    let (body, took) = runtime.block_on(async {
        let start = Instant::now();
        let (server_end, client_end) = duplex(4096);
        let connection = spawn(async move {
            Server::new()
                .serve_connection(server_end, service_fn(hello))
                .await
        });
        let mut client = client::handshake(client_end).await.unwrap();
        let request = Request::get("/")
            .header("host", "localhost")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let response = client.send(request).await.unwrap();
        let body = response
            .into_body()
            .collect()
            .or_cancel()
            .await
            .unwrap()
            .unwrap();
        // The keep-alive connection is idle: cancelled, it drains at once.
        connection.cancel();
        shield(connection).await.unwrap().unwrap();
        (
            String::from_utf8(body.to_bytes().to_vec()).unwrap(),
            start.elapsed(),
        )
    });
    (body, runtime.trace().hash, took)
}

#[test]
fn a_request_and_a_drain_over_in_memory_streams_replay_identically_under_a_seed() {
    let first = request_and_drain(42);
    assert_eq!(first.0, "hello world");
    assert_eq!(first.2, Duration::ZERO, "nothing waited on a timer");
    for _ in 0..3 {
        assert_eq!(request_and_drain(42), first, "same seed, same trace");
    }
}

/// `serve` over `sim::listener` under `seed`: three clients each get a response on a
/// keep-alive connection, then the server is cancelled and drains them. Returns the
/// bodies, the summary and the trace hash.
fn serve_in_memory(seed: u64) -> (Vec<String>, Summary, u64) {
    let runtime = Builder::new()
        .seed(seed)
        .record_trace(true)
        .build()
        .unwrap();
    let (bodies, summary) = runtime.block_on(async {
        let (listener, connector) = treeloop::sim::listener(4096);
        let server = spawn(serve(listener, service_fn(hello)));
        let mut clients = Vec::new();
        for n in 0..3 {
            let mut client = client::handshake(connector.connect().await.unwrap())
                .await
                .unwrap();
            let request = Request::get(format!("/{n}"))
                .header("host", "localhost")
                .body(Empty::<Bytes>::new())
                .unwrap();
            let response = client.send(request).await.unwrap();
            let body = response.into_body().collect().or_cancel().await.unwrap();
            clients.push((client, body.unwrap().to_bytes()));
        }
        server.cancel();
        let summary = shield(server).await.unwrap().unwrap();
        let bodies = clients
            .into_iter()
            .map(|(_client, body)| String::from_utf8(body.to_vec()).unwrap())
            .collect();
        (bodies, summary)
    });
    (bodies, summary, runtime.trace().hash)
}

#[test]
fn serve_runs_over_the_in_memory_listener_and_replays_under_a_seed() {
    let (bodies, summary, hash) = serve_in_memory(9);
    assert_eq!(bodies, ["hello world"; 3]);
    assert_eq!(
        summary,
        Summary {
            served: 3,
            completed: 0,
            drained: 3,
            aborted: 0,
            failed: 0
        }
    );
    assert_eq!(serve_in_memory(9).2, hash, "same seed, same trace");
}
