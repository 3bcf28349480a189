//! In-memory networking (`treeloop::sim`): the listener and connector accept in connect
//! order, a cancelled accept or connect has no effect (R7), a listener that goes resets
//! what it had queued and refuses later connects; `DuplexStream` has the sockets' shape
//! (reads and writes through `&self`, `shutdown`, `into_split`, `reunite`); and one accept
//! loop written against `net::Listener` serves loopback TCP and in-memory clients alike,
//! the in-memory run replaying under its seed.

use std::io;
use std::net::Shutdown;

use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use treeloop::net::{Listener, TcpListener, TcpStream};
use treeloop::sim::{self, ConnectionId, DuplexStream};
use treeloop::{Builder, CancelReason, Cancelled, Runtime, spawn, yield_now};

/// A seeded runtime, where real sockets are refused and only `sim` can be used.
fn seeded(seed: u64) -> Runtime {
    Builder::new().seed(seed).build().expect("runtime")
}

/// The error every operation returns in a region cancelled with `cancel()`.
fn assert_cancelled(err: &io::Error) {
    assert_eq!(
        Cancelled::from_io(err),
        Some(Cancelled::new(CancelReason::Explicit)),
        "not a cancellation: {err}"
    );
}

/// Reads until end of stream (bounded: in-memory streams here carry a few bytes).
async fn read_to_end(stream: &DuplexStream) -> io::Result<Vec<u8>> {
    let mut all = Vec::new();
    let mut buf = [0; 16];
    for _ in 0..1_000 {
        match stream.read(&mut buf).await? {
            0 => return Ok(all),
            n => all.extend_from_slice(&buf[..n]),
        }
    }
    panic!("no end of stream after 1,000 reads")
}

#[test]
fn connections_are_accepted_in_connect_order_with_their_numbers() {
    let accepted = seeded(1).block_on(async {
        let (listener, connector) = sim::listener(64);
        let mut clients = Vec::new();
        for n in 0..3u8 {
            let client = connector.connect().await.unwrap();
            client.write_all(&[n]).await.unwrap();
            clients.push(client);
        }
        let mut accepted = Vec::new();
        for _ in 0..3 {
            let (stream, id) = listener.accept().await.unwrap();
            let mut byte = [0; 1];
            assert_eq!(stream.read(&mut byte).await.unwrap(), 1);
            accepted.push((id, byte[0]));
        }
        accepted
    });
    assert_eq!(
        accepted,
        [
            (ConnectionId(1), 0),
            (ConnectionId(2), 1),
            (ConnectionId(3), 2)
        ]
    );
}

#[test]
fn a_waiting_accept_is_woken_by_a_connect_from_another_task() {
    let (id, greeting) = seeded(2).block_on(async {
        let (listener, connector) = sim::listener(64);
        let client = spawn(async move {
            yield_now().await.unwrap();
            let stream = connector.connect().await.unwrap();
            stream.write_all(b"hi").await.unwrap();
        });
        let (stream, id) = listener.accept().await.unwrap();
        client.await.unwrap();
        (id, read_to_end(&stream).await.unwrap())
    });
    assert_eq!(id, ConnectionId(1));
    assert_eq!(greeting, b"hi");
}

#[test]
fn a_cancelled_accept_takes_no_connection_off_the_queue() {
    seeded(3).block_on(async {
        let (listener, connector) = sim::listener(64);
        let listener = std::rc::Rc::new(listener);
        let client = connector.connect().await.unwrap();
        // Cancelled before its first poll: its accept is reached in a cancelled region.
        let l = listener.clone();
        let acceptor = spawn(async move { l.accept().await.map(|(_, id)| id) });
        acceptor.cancel();
        assert_cancelled(&acceptor.await.unwrap().unwrap_err());
        // The connection is still there for the next accept.
        let (stream, id) = listener.accept().await.unwrap();
        assert_eq!(id, ConnectionId(1));
        client.write_all(b"still here").await.unwrap();
        drop(client);
        assert_eq!(read_to_end(&stream).await.unwrap(), b"still here");
    });
}

#[test]
fn a_pending_accept_cancelled_while_waiting_leaves_the_next_connection_to_the_next_accept() {
    seeded(4).block_on(async {
        let (listener, connector) = sim::listener(64);
        let listener = std::rc::Rc::new(listener);
        let l = listener.clone();
        let acceptor = spawn(async move { l.accept().await.map(|(_, id)| id) });
        yield_now().await.unwrap(); // the acceptor now waits
        acceptor.cancel();
        assert_cancelled(&acceptor.await.unwrap().unwrap_err());
        let _client = connector.connect().await.unwrap();
        let (_stream, id) = listener.accept().await.unwrap();
        assert_eq!(id, ConnectionId(1));
    });
}

#[test]
fn a_cancelled_connect_queues_nothing() {
    seeded(5).block_on(async {
        let (listener, connector) = sim::listener(64);
        let c = connector.clone();
        let connecting = spawn(async move { c.connect().await.map(drop) });
        connecting.cancel();
        assert_cancelled(&connecting.await.unwrap().unwrap_err());
        // The first connection the listener sees is the next one: number 1.
        let _client = connector.connect().await.unwrap();
        let (_stream, id) = listener.accept().await.unwrap();
        assert_eq!(id, ConnectionId(1));
    });
}

#[test]
fn a_dropped_listener_resets_what_it_queued_and_refuses_new_connects() {
    seeded(6).block_on(async {
        let (listener, connector) = sim::listener(64);
        let first = connector.connect().await.unwrap();
        let queued = connector.connect().await.unwrap();
        let (accepted, id) = listener.accept().await.unwrap();
        assert_eq!(id, ConnectionId(1));
        drop(first);
        drop(listener);
        // The queued connection was reset, read and write alike.
        let mut buf = [0; 4];
        let read = queued.read(&mut buf).await.unwrap_err();
        assert_eq!(read.kind(), io::ErrorKind::ConnectionReset, "{read}");
        let write = queued.write(b"x").await.unwrap_err();
        assert_eq!(write.kind(), io::ErrorKind::ConnectionReset, "{write}");
        // The accepted one is unaffected: its client is gone, so it reads end of stream.
        assert_eq!(accepted.read(&mut buf).await.unwrap(), 0);
        let refused = connector.connect().await.unwrap_err();
        assert_eq!(
            refused.kind(),
            io::ErrorKind::ConnectionRefused,
            "{refused}"
        );
    });
}

#[test]
fn shutdown_write_is_a_half_close_and_shutdown_read_refuses_the_peer() {
    seeded(7).block_on(async {
        let (a, b) = sim::duplex(64);
        a.write_all(b"last words").await.unwrap();
        a.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_to_end(&b).await.unwrap(), b"last words");
        // `a` still reads what `b` sends.
        b.write_all(b"reply").await.unwrap();
        let mut buf = [0; 8];
        assert_eq!(a.read(&mut buf).await.unwrap(), 5);
        assert_eq!(&buf[..5], b"reply");
        // A write after shutting down writing fails.
        let err = a.write(b"more").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");

        b.shutdown(Shutdown::Read).unwrap();
        assert_eq!(b.read(&mut buf).await.unwrap(), 0);
        let err = a.write(b"x").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
    });
}

#[test]
fn poll_close_half_closes_a_duplex_stream_like_a_socket() {
    seeded(8).block_on(async {
        let (mut a, b) = sim::duplex(64);
        AsyncWriteExt::write_all(&mut a, b"bye").await.unwrap();
        a.close().await.unwrap();
        assert_eq!(read_to_end(&b).await.unwrap(), b"bye");
        b.write_all(b"ok").await.unwrap();
        let mut reply = Vec::new();
        drop(b);
        a.read_to_end(&mut reply).await.unwrap();
        assert_eq!(reply, b"ok");
    });
}

#[test]
fn split_halves_work_from_two_tasks_and_reunite() {
    seeded(9).block_on(async {
        let (a, b) = sim::duplex(4);
        let (read_half, write_half) = a.into_split();
        let writer = spawn(async move {
            for chunk in [b"ab".as_slice(), b"cd", b"ef"] {
                write_half.write_all(chunk).await.unwrap();
            }
            write_half
        });
        let echo = spawn(async move {
            // Echo six bytes back through the other end.
            let mut buf = [0; 6];
            let mut got = 0;
            while got < 6 {
                got += b.read(&mut buf[got..]).await.unwrap();
            }
            b.write_all(&buf).await.unwrap();
            b
        });
        let mut buf = [0; 6];
        let mut got = 0;
        while got < 6 {
            got += read_half.read(&mut buf[got..]).await.unwrap();
        }
        assert_eq!(&buf, b"abcdef");
        let write_half = writer.await.unwrap();
        let b = echo.await.unwrap();
        let a = read_half.reunite(write_half).expect("halves of one stream");
        a.write_all(b"back").await.unwrap();
        drop(a);
        assert_eq!(read_to_end(&b).await.unwrap(), b"back");
    });
}

#[test]
fn halves_of_two_streams_do_not_reunite() {
    seeded(10).block_on(async {
        let (a, _peer_a) = sim::duplex(4);
        let (b, _peer_b) = sim::duplex(4);
        let (read_a, _write_a) = a.into_split();
        let (_read_b, write_b) = b.into_split();
        let err = read_a.reunite(write_b).unwrap_err();
        assert_eq!(
            err.to_string(),
            "tried to reunite the halves of two different streams"
        );
    });
}

#[test]
fn a_cancelled_read_on_a_duplex_consumes_nothing() {
    seeded(11).block_on(async {
        let (a, b) = sim::duplex(64);
        a.write_all(b"kept").await.unwrap();
        let b = std::rc::Rc::new(b);
        let reader = {
            let b = b.clone();
            spawn(async move {
                let mut buf = [0; 4];
                b.read(&mut buf).await
            })
        };
        reader.cancel();
        assert_cancelled(&reader.await.unwrap().unwrap_err());
        drop(a);
        assert_eq!(read_to_end(&b).await.unwrap(), b"kept");
    });
}

/// An echo server written once, against `net::Listener`: accepts `clients` connections,
/// echoes each until its client half-closes, and returns what each connection carried.
async fn echo_server<L: Listener>(listener: L, clients: usize) -> Vec<Vec<u8>> {
    let mut connections = Vec::new();
    for _ in 0..clients {
        let (mut stream, _peer) = listener.accept().await.unwrap();
        connections.push(spawn(async move {
            let mut carried = Vec::new();
            let mut buf = [0; 16];
            loop {
                let n = stream.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                carried.extend_from_slice(&buf[..n]);
                stream.write_all(&buf[..n]).await.unwrap();
            }
            stream.close().await.unwrap();
            carried
        }));
    }
    let mut carried = Vec::new();
    for connection in connections {
        carried.push(connection.await.unwrap());
    }
    carried
}

/// A client written once, generic over the stream: sends `message`, half-closes, and
/// returns the echo.
async fn echo_client<S>(mut stream: S, message: &[u8]) -> Vec<u8>
where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin,
{
    stream.write_all(message).await.unwrap();
    stream.close().await.unwrap();
    let mut echoed = Vec::new();
    stream.read_to_end(&mut echoed).await.unwrap();
    echoed
}

#[test]
fn one_accept_loop_serves_tcp_and_in_memory_clients_alike() {
    let messages: [&[u8]; 3] = [b"one", b"two two", b"three three three"];

    let over_tcp = treeloop::block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = spawn(echo_server(listener, 3));
        let mut echoes = Vec::new();
        for message in messages {
            let stream = TcpStream::connect(addr).await.unwrap();
            echoes.push(echo_client(stream, message).await);
        }
        (server.await.unwrap(), echoes)
    });

    let in_memory = |seed| {
        let runtime = Builder::new()
            .seed(seed)
            .strategy(treeloop::Strategy::Random)
            .build()
            .unwrap();
        let result = runtime.block_on(async {
            let (listener, connector) = sim::listener(8);
            let server = spawn(echo_server(listener, 3));
            let mut clients = Vec::new();
            for message in messages {
                let stream = connector.connect().await.unwrap();
                clients.push(spawn(echo_client(stream, message)));
            }
            let mut echoes = Vec::new();
            for client in clients {
                echoes.push(client.await.unwrap());
            }
            (server.await.unwrap(), echoes)
        });
        (result, runtime.trace().hash)
    };

    let expected: Vec<Vec<u8>> = messages.iter().map(|m| m.to_vec()).collect();
    assert_eq!(over_tcp, (expected.clone(), expected.clone()));
    let (first, first_hash) = in_memory(42);
    assert_eq!(first, (expected.clone(), expected));
    // The in-memory run replays exactly under its seed.
    let (again, again_hash) = in_memory(42);
    assert_eq!(again, first);
    assert_eq!(again_hash, first_hash);
}
