//! tcp_echo: `connections` loopback TCP connections, each doing `round_trips` echoes of a
//! 64-byte message.
//!
//! The server runs on the runtime under test, one task per connection. The client is the
//! same for every runtime: one std thread with blocking sockets that, round after round,
//! writes a message on every connection and then reads every echo back, so all connections
//! are in flight at once. The client times the rounds (connect and accept are excluded).
//! Unit: ns per round trip (of one connection).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use super::{Runtime, per_unit, tokio_runtime, treeloop_runtime};

/// The size of one message.
const MESSAGE: usize = 64;

/// Runs one sample; returns ns per round trip.
pub fn run(runtime: Runtime, connections: usize, round_trips: usize) -> f64 {
    let expected = connections * round_trips * MESSAGE;
    let (client, echoed) = match runtime {
        Runtime::Treeloop => treeloop_runtime().block_on(async {
            let listener = treeloop::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("local address");
            let client = thread::spawn(move || client(addr, connections, round_trips));
            let mut servers = Vec::new();
            for _ in 0..connections {
                let (stream, _) = listener.accept().await.expect("accept");
                stream.set_nodelay(true).expect("nodelay");
                servers.push(treeloop::spawn(async move {
                    let mut buf = [0; 1024];
                    let mut echoed = 0;
                    loop {
                        let n = stream.read(&mut buf).await.expect("server read");
                        if n == 0 {
                            return echoed;
                        }
                        stream.write_all(&buf[..n]).await.expect("server write");
                        echoed += n;
                    }
                }));
            }
            let mut echoed = 0;
            for server in servers {
                echoed += server.await.expect("a server task failed");
            }
            (client, echoed)
        }),
        Runtime::Tokio => tokio_runtime().block_on(async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("local address");
            let client = thread::spawn(move || client(addr, connections, round_trips));
            let mut servers = Vec::new();
            for _ in 0..connections {
                let (mut stream, _) = listener.accept().await.expect("accept");
                stream.set_nodelay(true).expect("nodelay");
                servers.push(tokio::spawn(async move {
                    let mut buf = [0; 1024];
                    let mut echoed = 0;
                    loop {
                        let n = stream.read(&mut buf).await.expect("server read");
                        if n == 0 {
                            return echoed;
                        }
                        stream.write_all(&buf[..n]).await.expect("server write");
                        echoed += n;
                    }
                }));
            }
            let mut echoed = 0;
            for server in servers {
                echoed += server.await.expect("a server task failed");
            }
            (client, echoed)
        }),
        Runtime::AsyncExecutor => {
            use futures_lite::{AsyncReadExt, AsyncWriteExt};
            let executor = async_executor::LocalExecutor::new();
            async_io::block_on(executor.run(async {
                let listener = async_io::Async::<std::net::TcpListener>::bind(([127, 0, 0, 1], 0))
                    .expect("bind");
                let addr = listener.get_ref().local_addr().expect("local address");
                let client = thread::spawn(move || client(addr, connections, round_trips));
                let mut servers = Vec::new();
                for _ in 0..connections {
                    let (mut stream, _) = listener.accept().await.expect("accept");
                    stream.get_ref().set_nodelay(true).expect("nodelay");
                    servers.push(executor.spawn(async move {
                        let mut buf = [0; 1024];
                        let mut echoed = 0;
                        loop {
                            let n = stream.read(&mut buf).await.expect("server read");
                            if n == 0 {
                                return echoed;
                            }
                            stream.write_all(&buf[..n]).await.expect("server write");
                            echoed += n;
                        }
                    }));
                }
                let mut echoed = 0;
                for server in servers {
                    echoed += server.await;
                }
                (client, echoed)
            }))
        }
        Runtime::Floor => unreachable!("no floor without a reactor (Workload::has_floor)"),
    };
    let elapsed = client.join().expect("the client thread panicked");
    assert_eq!(
        echoed, expected,
        "tcp_echo: the server echoed a wrong count"
    );
    per_unit(elapsed, connections * round_trips)
}

/// The blocking client: connects, runs the rounds (timed), checks every echo, hangs up.
fn client(addr: SocketAddr, connections: usize, round_trips: usize) -> Duration {
    let mut streams: Vec<_> = (0..connections)
        .map(|_| {
            let stream = std::net::TcpStream::connect(addr).expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            stream
        })
        .collect();
    let mut echo = [0; MESSAGE];
    let start = Instant::now();
    for round in 0..round_trips {
        for (i, stream) in streams.iter_mut().enumerate() {
            stream
                .write_all(&[(round + i) as u8; MESSAGE])
                .expect("client write");
        }
        for (i, stream) in streams.iter_mut().enumerate() {
            stream.read_exact(&mut echo).expect("client read");
            assert_eq!(echo, [(round + i) as u8; MESSAGE], "tcp_echo: wrong echo");
        }
    }
    start.elapsed()
}
