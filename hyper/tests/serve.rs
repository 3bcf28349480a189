//! `serve` with real clients over loopback: hyper's own client (HTTP/1.1 through
//! `treeloop_hyper::client`, HTTP/2 through hyper's `client::conn::http2` on the crate's
//! executor and I/O adapter) and raw sockets. Nothing waits on real time to "let something
//! happen": handlers block on events the test sets, and the only real-time waits are the
//! grace periods under test (100 ms).

use std::cell::RefCell;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use treeloop::diag::Report;
use treeloop::net::{TcpListener, TcpStream};
use treeloop::sync::Event;
use treeloop::{Builder, FutureExt, JoinHandle, shield, spawn, yield_now};
use treeloop_hyper::{HyperIo, Server, Summary, TreeloopExecutor, client};

/// What the test service saw and lets the test control.
#[derive(Clone, Default)]
struct Control {
    /// Set when `/slow` has started.
    slow_started: Rc<Event>,
    /// `/slow` answers once this is set.
    release: Rc<Event>,
}

/// `GET /` -> "hello world"; `POST /echo` -> the body; `GET /slow` -> "slow done" once
/// released; `GET /panic` panics.
async fn handle(
    control: Control,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = match request.uri().path() {
        "/" => Bytes::from("hello world"),
        "/echo" => request
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default(),
        "/slow" => {
            control.slow_started.set();
            // Shielded from nothing: the connection drains, it is not cancelled.
            control
                .release
                .wait()
                .await
                .expect("a draining request is not cancelled");
            Bytes::from("slow done")
        }
        "/panic" => panic!("the handler broke"),
        _ => {
            let mut response = Response::new(Full::new(Bytes::from("not found")));
            *response.status_mut() = StatusCode::NOT_FOUND;
            return Ok(response);
        }
    };
    Ok(Response::new(Full::new(body)))
}

/// Starts a server on an ephemeral loopback port as a task of its own.
fn start(server: Server, control: &Control) -> (SocketAddr, JoinHandle<io::Result<Summary>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let control = control.clone();
    let service = service_fn(move |request| handle(control.clone(), request));
    (addr, spawn(server.serve(listener, service)))
}

/// A runtime whose reports are collected.
fn runtime() -> (treeloop::Runtime, Rc<RefCell<Vec<String>>>) {
    let reports = Rc::new(RefCell::new(Vec::new()));
    let sink = reports.clone();
    let runtime = Builder::new()
        .report_sink(move |report: &Report| sink.borrow_mut().push(report.to_string()))
        .build()
        .unwrap();
    (runtime, reports)
}

fn get(path: &str) -> Request<Empty<Bytes>> {
    Request::get(path)
        .header("host", "localhost")
        .body(Empty::new())
        .unwrap()
}

async fn text(response: Response<Incoming>) -> String {
    let body = response
        .into_body()
        .collect()
        .or_cancel()
        .await
        .unwrap()
        .unwrap();
    String::from_utf8(body.to_bytes().to_vec()).unwrap()
}

#[test]
fn http1_keep_alive_serves_several_requests_on_one_connection_and_the_idle_connection_drains() {
    let (runtime, _) = runtime();
    let summary = runtime.block_on(async {
        let (addr, server) = start(Server::new(), &Control::default());
        let mut client = client::handshake(TcpStream::connect(addr).await.unwrap())
            .await
            .unwrap();
        for _ in 0..3 {
            let response = client.send(get("/")).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(text(response).await, "hello world");
        }
        let mut echo = client::handshake(TcpStream::connect(addr).await.unwrap())
            .await
            .unwrap();
        let request = Request::post("/echo")
            .header("host", "localhost")
            .body(Full::new(Bytes::from("ping")))
            .unwrap();
        assert_eq!(text(echo.send(request).await.unwrap()).await, "ping");
        // Both connections idle in keep-alive: the shutdown closes them at once.
        server.cancel();
        let summary = shield(server).await.unwrap().unwrap();
        // The server closed the idle connection: the client's connection task sees the end.
        for _ in 0..1_000 {
            if client.is_closed() {
                break;
            }
            yield_now().await.unwrap();
        }
        assert!(client.is_closed(), "the server closed the idle connection");
        summary
    });
    assert_eq!(
        summary,
        Summary {
            served: 2,
            completed: 0,
            drained: 2,
            aborted: 0,
            failed: 0
        }
    );
}

#[test]
fn http2_with_prior_knowledge_is_served_and_its_streams_drain() {
    let (runtime, _) = runtime();
    let summary = runtime.block_on(async {
        let (addr, server) = start(Server::new(), &Control::default());
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http2::Builder::new(TreeloopExecutor)
            .handshake::<_, Empty<Bytes>>(HyperIo::new(stream))
            .await
            .unwrap();
        let connection = spawn(connection);
        for _ in 0..2 {
            let response = sender
                .send_request(get("http://localhost/"))
                .or_cancel()
                .await
                .unwrap()
                .unwrap();
            assert_eq!(response.version(), http::Version::HTTP_2);
            assert_eq!(text(response).await, "hello world");
        }
        server.cancel();
        let summary = shield(server).await.unwrap().unwrap();
        // GOAWAY, then the end: the client's connection task finishes too.
        drop(sender);
        let _ = shield(connection).await.unwrap();
        summary
    });
    assert_eq!(summary.served, 1, "{summary}");
    assert_eq!(summary.drained, 1, "{summary}");
    assert_eq!(summary.aborted + summary.failed, 0, "{summary}");
}

#[test]
fn an_in_flight_request_finishes_after_the_listener_was_closed() {
    let (runtime, _) = runtime();
    let control = Control::default();
    let summary = runtime.block_on({
        let control = control.clone();
        async move {
            let (addr, server) = start(Server::new(), &control);
            let mut client = client::handshake(TcpStream::connect(addr).await.unwrap())
                .await
                .unwrap();
            let in_flight = spawn(async move {
                let response = client.send(get("/slow")).await.unwrap();
                text(response).await
            });
            control.slow_started.wait().await.unwrap();
            server.cancel();
            // The server stops accepting first: a new client is refused while the
            // request in flight is still being served.
            yield_now().await.unwrap();
            let refused = TcpStream::connect(addr).await.unwrap_err();
            assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
            assert!(!in_flight.is_finished());
            control.release.set();
            assert_eq!(in_flight.await.unwrap(), "slow done");
            shield(server).await.unwrap().unwrap()
        }
    });
    assert_eq!(
        summary,
        Summary {
            served: 1,
            completed: 0,
            drained: 1,
            aborted: 0,
            failed: 0
        }
    );
}

#[test]
fn a_half_sent_request_header_is_closed_after_the_grace_period() {
    let (runtime, _) = runtime();
    let summary = runtime.block_on(async {
        let (addr, server) = start(
            Server::new().grace_period(Duration::from_millis(100)),
            &Control::default(),
        );
        let stalled = TcpStream::connect(addr).await.unwrap();
        stalled
            .write_all(b"GET / HTTP/1.1\r\nHost: loc")
            .await
            .unwrap();
        // A full request on a second connection: once it is answered, the first has been
        // accepted too (the listener accepts in order).
        let mut client = client::handshake(TcpStream::connect(addr).await.unwrap())
            .await
            .unwrap();
        assert_eq!(
            text(client.send(get("/")).await.unwrap()).await,
            "hello world"
        );
        server.cancel();
        let summary = shield(server).await.unwrap().unwrap();
        // The stalled connection was closed by the server: its client reads the end.
        let mut buf = [0u8; 64];
        let read = shield(stalled.read(&mut buf)).await;
        assert!(matches!(read, Ok(0)) || read.is_err(), "closed: {read:?}");
        summary
    });
    assert_eq!(summary.served, 2);
    assert_eq!(summary.drained, 1, "the idle keep-alive connection");
    assert_eq!(
        summary.aborted, 1,
        "the half-sent header, cut off after 100 ms"
    );
}

#[test]
fn a_panicking_service_closes_its_connection_and_the_server_goes_on() {
    let (runtime, reports) = runtime();
    let summary = runtime.block_on(async {
        let (addr, server) = start(Server::new(), &Control::default());
        let mut broken = client::handshake(TcpStream::connect(addr).await.unwrap())
            .await
            .unwrap();
        assert!(
            broken.send(get("/panic")).await.is_err(),
            "no response from a panic"
        );
        let mut client = client::handshake(TcpStream::connect(addr).await.unwrap())
            .await
            .unwrap();
        assert_eq!(
            text(client.send(get("/")).await.unwrap()).await,
            "hello world"
        );
        server.cancel();
        shield(server).await.unwrap().unwrap()
    });
    assert_eq!(
        summary,
        Summary {
            served: 2,
            completed: 0,
            drained: 1,
            aborted: 0,
            failed: 1
        }
    );
    let reports = reports.borrow();
    assert!(
        reports
            .iter()
            .any(|r| r.contains("panicked") && r.contains("the handler broke")),
        "{reports:?}"
    );
}

#[test]
fn the_client_connection_is_a_child_of_the_caller_and_ends_with_the_client() {
    let (runtime, _) = runtime();
    runtime.block_on(async {
        let (addr, server) = start(Server::new(), &Control::default());
        let connected = Rc::new(Event::new());
        let hang_up = Rc::new(Event::new());
        let caller = spawn({
            let (connected, hang_up) = (connected.clone(), hang_up.clone());
            async move {
                let mut client = client::handshake(TcpStream::connect(addr).await.unwrap())
                    .await
                    .unwrap();
                let body = text(client.send(get("/")).await.unwrap()).await;
                connected.set();
                hang_up.wait().await.unwrap();
                drop(client);
                body
            }
        });
        connected.wait().await.unwrap();
        let dump = treeloop::dump();
        let connection = dump
            .entries
            .iter()
            .find(|entry| entry.location.file().ends_with("client.rs"))
            .expect("the client connection's task is in the tree");
        assert_eq!(
            connection.parent,
            Some(caller.id()),
            "a child of the caller:\n{dump}"
        );
        hang_up.set();
        assert_eq!(caller.await.unwrap(), "hello world");
        server.cancel();
        let summary = shield(server).await.unwrap().unwrap();
        // The client hung up just before the shutdown: whether the server saw that first
        // or drained the connection, it ended cleanly.
        assert_eq!(summary.served, 1);
        assert_eq!(summary.completed + summary.drained, 1, "{summary}");
    });
}

#[test]
fn a_client_send_in_a_cancelled_task_fails_with_cancelled() {
    let (runtime, _) = runtime();
    let control = Control::default();
    runtime.block_on({
        let control = control.clone();
        async move {
            let (addr, server) = start(
                Server::new().grace_period(Duration::from_millis(100)),
                &control,
            );
            let caller = spawn(async move {
                let mut client = client::handshake(TcpStream::connect(addr).await.unwrap())
                    .await
                    .unwrap();
                client.send(get("/slow")).await.map(|_| ())
            });
            control.slow_started.wait().await.unwrap();
            caller.cancel();
            // The caller waits for its connection task (R2), which ends once the request
            // it abandoned is answered.
            control.release.set();
            let err = caller.await.unwrap().unwrap_err();
            assert!(treeloop::Cancelled::from_io(&err).is_some(), "{err}");
            server.cancel();
            shield(server).await.unwrap().unwrap();
        }
    });
}

#[test]
fn serve_runs_on_a_unix_listener_too() {
    let (runtime, _) = runtime();
    let path = std::env::temp_dir().join(format!("treeloop-hyper-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let summary = runtime.block_on(async {
        let listener = treeloop::net::UnixListener::bind(&path).unwrap();
        let control = Control::default();
        let service = service_fn(move |request| handle(control.clone(), request));
        let server = spawn(Server::new().serve(listener, service));
        let stream = treeloop::net::UnixStream::connect(&path).await.unwrap();
        let mut client = client::handshake(stream).await.unwrap();
        assert_eq!(
            text(client.send(get("/")).await.unwrap()).await,
            "hello world"
        );
        server.cancel();
        shield(server).await.unwrap().unwrap()
    });
    let _ = std::fs::remove_file(&path);
    assert_eq!(
        summary,
        Summary {
            served: 1,
            completed: 0,
            drained: 1,
            aborted: 0,
            failed: 0
        }
    );
}
