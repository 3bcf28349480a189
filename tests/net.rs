//! Sockets: TCP, UDP and Unix round trips with exact bytes; cancelled socket operations have
//! no effect (R6, R7): a cancelled accept drops no connection, a cancelled read consumes no
//! bytes, a cancelled write or send writes nothing, a cancelled connect reaches no listener;
//! peer close and reset surface as `io` results, never panics; an address in use is
//! `AddrInUse`; split halves work from two tasks at once; sockets outside a runtime fail with
//! an error naming the fix.
//!
//! Loopback only (127.0.0.1, ::1, Unix socket files under the temp dir). Real time, but no
//! test sleeps and none asserts how long anything took: every wait is on an event, and every
//! loop has a bound.

mod common;

use std::future::poll_fn;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::Counters;
use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use treeloop::net::{TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream};
use treeloop::{CancelReason, Cancelled, block_on, cancelled, shield, spawn, yield_now};

/// The most reads, writes or yields any loop in this file makes before giving up.
const MAX_STEPS: usize = 100_000;

/// The error every socket operation returns in a region cancelled with `cancel()`.
fn assert_cancelled(err: &io::Error) {
    assert_eq!(err.kind(), io::ErrorKind::Other, "{err}");
    assert_eq!(
        Cancelled::from_io(err),
        Some(Cancelled::new(CancelReason::Explicit)),
        "not a cancellation: {err}"
    );
}

/// What the stream tests need of TCP and Unix streams alike.
trait Stream {
    async fn read(&self, buf: &mut [u8]) -> io::Result<usize>;
    async fn write_all(&self, buf: &[u8]) -> io::Result<()>;
}

impl Stream for TcpStream {
    async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        TcpStream::read(self, buf).await
    }
    async fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        TcpStream::write_all(self, buf).await
    }
}

impl Stream for UnixStream {
    async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        UnixStream::read(self, buf).await
    }
    async fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        UnixStream::write_all(self, buf).await
    }
}

/// Reads exactly `len` bytes; fails on an early end of stream.
async fn read_exactly(stream: &impl Stream, len: usize) -> io::Result<Vec<u8>> {
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

/// Reads until the end of the stream.
async fn read_to_end(stream: &impl Stream) -> io::Result<Vec<u8>> {
    let mut all = Vec::new();
    let mut buf = [0; 16 * 1024];
    for _ in 0..MAX_STEPS {
        match stream.read(&mut buf).await? {
            0 => return Ok(all),
            n => all.extend_from_slice(&buf[..n]),
        }
    }
    panic!("no end of stream after {MAX_STEPS} reads");
}

/// Echoes everything it reads until the end of the stream, then shuts its write side.
async fn echo(stream: &impl Stream) -> io::Result<usize> {
    let mut buf = vec![0; 64 * 1024];
    let mut total = 0;
    for _ in 0..MAX_STEPS {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(total);
        }
        stream.write_all(&buf[..n]).await?;
        total += n;
    }
    panic!("echo did not see the end of the stream after {MAX_STEPS} reads");
}

/// The next datagram on a connected Unix datagram socket.
async fn next_datagram(socket: &UnixDatagram) -> Vec<u8> {
    let mut buf = [0; 64];
    let n = socket.recv(&mut buf).await.unwrap();
    buf[..n].to_vec()
}

/// `len` bytes of a pattern that does not repeat with any small period.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

/// Yields until `ready()` holds (another task or the kernel has caught up).
async fn yield_until(what: &str, mut ready: impl FnMut() -> bool) {
    for _ in 0..MAX_STEPS {
        if ready() {
            return;
        }
        yield_now().await.unwrap();
    }
    panic!("{what}: not after {MAX_STEPS} yields");
}

/// Peeks (without consuming) until the socket has `len` bytes queued.
async fn until_queued(peeker: &std::net::TcpStream, len: usize) {
    peeker.set_nonblocking(true).unwrap();
    let mut buf = vec![0; len + 1];
    yield_until("bytes queued at the peer", || match peeker.peek(&mut buf) {
        Ok(n) => n >= len,
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => false,
        Err(err) => panic!("peek failed: {err}"),
    })
    .await;
}

/// A connected pair: a treeloop client, and the server end as a standard stream (blocking
/// accept: the client's connect has already completed the handshake).
async fn tcp_pair_with_std_server() -> (TcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, peer) = listener.accept().unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    (client, server)
}

/// A connected pair of treeloop streams, plus a second handle on the server's socket to
/// peek at what is queued there without consuming it.
async fn tcp_pair_with_peeker() -> (TcpStream, TcpStream, std::net::TcpStream) {
    let (client, server) = tcp_pair_with_std_server().await;
    let peeker = server.try_clone().unwrap();
    (client, TcpStream::from_std(server).unwrap(), peeker)
}

/// A socket file path under the temp dir, unique to this process and call, removed on drop.
struct SocketPath(PathBuf);

impl SocketPath {
    fn new(name: &str) -> SocketPath {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let file = format!("treeloop-{}-{n}-{name}.sock", std::process::id());
        let path = std::env::temp_dir().join(file);
        let _ = std::fs::remove_file(&path);
        SocketPath(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for SocketPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

// ---------------------------------------------------------------------------------------
// Round trips

/// Connects to an echo server on `bind` and checks that each message comes back exactly.
async fn tcp_echo_round_trips(bind: &str) {
    let listener = TcpListener::bind(bind).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = spawn(async move {
        let (stream, peer) = listener.accept().await.unwrap();
        (echo(&stream).await.unwrap(), peer)
    });
    let client = TcpStream::connect(addr).await.unwrap();
    assert_eq!(client.peer_addr().unwrap(), addr);
    let messages = [
        b"hello".to_vec(),
        b"x".to_vec(),
        pattern(16 * 1024, 7),
        b"bye\n".to_vec(),
    ];
    for message in &messages {
        client.write_all(message).await.unwrap();
        let back = read_exactly(&client, message.len()).await.unwrap();
        assert_eq!(&back, message);
    }
    client.shutdown(Shutdown::Write).unwrap();
    let mut buf = [0; 8];
    assert_eq!(
        client.read(&mut buf).await.unwrap(),
        0,
        "echo end of stream"
    );
    let (echoed, peer) = server.await.unwrap();
    assert_eq!(echoed, messages.iter().map(Vec::len).sum::<usize>());
    assert_eq!(peer, client.local_addr().unwrap());
}

#[test]
fn tcp_echo_round_trips_exact_bytes_over_ipv4() {
    block_on(tcp_echo_round_trips("127.0.0.1:0"));
}

#[test]
fn tcp_echo_round_trips_exact_bytes_over_ipv6() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: this machine has no IPv6 loopback");
        return;
    }
    block_on(tcp_echo_round_trips("[::1]:0"));
}

#[test]
fn tcp_stream_addresses_and_nodelay_are_the_sockets_own() {
    block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert_ne!(addr.port(), 0, "port 0 means the OS picks one");
        let accepting = spawn(async move { listener.accept().await.unwrap() });
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, peer) = accepting.await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        assert_eq!(server.peer_addr().unwrap(), client.local_addr().unwrap());
        assert_eq!(server.local_addr().unwrap(), client.peer_addr().unwrap());
        client.set_nodelay(true).unwrap();
        assert!(client.nodelay().unwrap());
        client.set_nodelay(false).unwrap();
        assert!(!client.nodelay().unwrap());
    });
}

/// A request/response over UDP on `bind`, unconnected then connected.
async fn udp_request_response(bind: &str) {
    let server = UdpSocket::bind(bind).unwrap();
    let client = UdpSocket::bind(bind).unwrap();
    let server_addr = server.local_addr().unwrap();
    let client_addr = client.local_addr().unwrap();
    let responder = spawn(async move {
        let mut peers = Vec::new();
        for _ in 0..2 {
            let mut buf = [0; 64];
            let (n, peer) = server.recv_from(&mut buf).await.unwrap();
            let mut reply = b"re: ".to_vec();
            reply.extend_from_slice(&buf[..n]);
            assert_eq!(
                server.send_to(&reply, peer).await.unwrap(),
                reply.len(),
                "a datagram is sent whole"
            );
            peers.push(peer);
        }
        peers
    });
    let mut buf = [0; 64];
    assert_eq!(client.send_to(b"ping", server_addr).await.unwrap(), 4);
    let (n, from) = client.recv_from(&mut buf).await.unwrap();
    assert_eq!((&buf[..n], from), (&b"re: ping"[..], server_addr));

    client.connect(server_addr).unwrap();
    assert_eq!(client.peer_addr().unwrap(), server_addr);
    assert_eq!(client.send(b"second").await.unwrap(), 6);
    let n = client.recv(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"re: second");
    assert_eq!(responder.await.unwrap(), [client_addr, client_addr]);
}

#[test]
fn udp_request_gets_its_response_from_the_right_peer_over_ipv4() {
    block_on(udp_request_response("127.0.0.1:0"));
}

#[test]
fn udp_request_gets_its_response_from_the_right_peer_over_ipv6() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("skipped: this machine has no IPv6 loopback");
        return;
    }
    block_on(udp_request_response("[::1]:0"));
}

#[test]
fn unix_stream_round_trips_through_a_socket_file() {
    let file = SocketPath::new("stream");
    block_on(async {
        let listener = UnixListener::bind(file.path()).unwrap();
        assert_eq!(
            listener.local_addr().unwrap().as_pathname(),
            Some(file.path())
        );
        let server = spawn(async move {
            let (stream, peer) = listener.accept().await.unwrap();
            assert!(peer.is_unnamed(), "the client did not bind: {peer:?}");
            echo(&stream).await.unwrap()
        });
        let client = UnixStream::connect(file.path()).await.unwrap();
        assert_eq!(client.peer_addr().unwrap().as_pathname(), Some(file.path()));
        for message in [b"hello".to_vec(), pattern(40_000, 3), b"!".to_vec()] {
            client.write_all(&message).await.unwrap();
            assert_eq!(read_exactly(&client, message.len()).await.unwrap(), message);
        }
        client.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_to_end(&client).await.unwrap(), b"");
        assert_eq!(server.await.unwrap(), 5 + 40_000 + 1);
    });
    assert!(file.path().exists(), "the socket file was made by bind");
}

#[test]
fn unix_stream_pair_round_trips_both_ways() {
    block_on(async {
        let (a, b) = UnixStream::pair().unwrap();
        a.write_all(b"from a").await.unwrap();
        assert_eq!(read_exactly(&b, 6).await.unwrap(), b"from a");
        b.write_all(b"from b").await.unwrap();
        assert_eq!(read_exactly(&a, 6).await.unwrap(), b"from b");
        drop(a);
        assert_eq!(read_to_end(&b).await.unwrap(), b"");
    });
}

#[test]
fn unix_datagrams_round_trip_by_path_as_a_pair_and_from_an_unbound_socket() {
    let file_a = SocketPath::new("dgram-a");
    let file_b = SocketPath::new("dgram-b");
    block_on(async {
        let a = UnixDatagram::bind(file_a.path()).unwrap();
        let b = UnixDatagram::bind(file_b.path()).unwrap();
        let mut buf = [0; 64];

        assert_eq!(a.send_to(b"to b", file_b.path()).await.unwrap(), 4);
        let (n, from) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!(
            (&buf[..n], from.as_pathname()),
            (&b"to b"[..], Some(file_a.path()))
        );
        assert_eq!(b.send_to(b"to a", file_a.path()).await.unwrap(), 4);
        let (n, from) = a.recv_from(&mut buf).await.unwrap();
        assert_eq!(
            (&buf[..n], from.as_pathname()),
            (&b"to a"[..], Some(file_b.path()))
        );

        a.connect(file_b.path()).unwrap();
        assert_eq!(a.send(b"connected").await.unwrap(), 9);
        assert_eq!(next_datagram(&b).await, b"connected");

        let unbound = UnixDatagram::unbound().unwrap();
        assert_eq!(unbound.send_to(b"anon", file_b.path()).await.unwrap(), 4);
        let (n, from) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"anon");
        assert!(from.is_unnamed(), "{from:?}");

        let (x, y) = UnixDatagram::pair().unwrap();
        assert_eq!(x.send(b"one").await.unwrap(), 3);
        assert_eq!(x.send(b"two").await.unwrap(), 3);
        assert_eq!(next_datagram(&y).await, b"one");
        assert_eq!(next_datagram(&y).await, b"two");
    });
}

// ---------------------------------------------------------------------------------------
// A cancelled operation has no effect (R6, R7)

#[test]
fn cancelled_accept_drops_no_connection_a_shielded_accept_then_takes_it() {
    block_on(async {
        let listener = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let addr = listener.local_addr().unwrap();
        let polls = Counters::new();
        let acceptor = spawn({
            let listener = listener.clone();
            let polls = polls.clone();
            async move {
                let first = polls
                    .probe(listener.accept())
                    .await
                    .map(|_| ())
                    .unwrap_err();
                // Level-triggered: the connection is queued, the accept still fails.
                let again = listener.accept().await.map(|_| ()).unwrap_err();
                let (stream, peer) = shield(listener.accept()).await.unwrap();
                (first, again, stream, peer)
            }
        });
        yield_until("the acceptor waits in accept", || polls.polls() >= 1).await;
        // In one step of the root: a client connects (the handshake completes in the
        // kernel's backlog), then the acceptor is cancelled before it runs again.
        let client = std::net::TcpStream::connect(addr).unwrap();
        acceptor.cancel();
        let (first, again, stream, peer) = acceptor.await.unwrap();
        assert_cancelled(&first);
        assert_cancelled(&again);
        assert_eq!(
            peer,
            client.local_addr().unwrap(),
            "the very same connection"
        );
        let client = TcpStream::from_std(client).unwrap();
        stream.write_all(b"it is you").await.unwrap();
        assert_eq!(read_exactly(&client, 9).await.unwrap(), b"it is you");
    });
}

#[test]
fn connection_arriving_after_a_cancelled_accept_goes_to_the_next_acceptor() {
    block_on(async {
        let listener = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let addr = listener.local_addr().unwrap();
        let polls = Counters::new();
        let first = spawn({
            let listener = listener.clone();
            polls.probe(async move { listener.accept().await.map(|(_, peer)| peer) })
        });
        yield_until("the first acceptor waits", || polls.polls() >= 1).await;
        first.cancel();
        assert_cancelled(&first.await.unwrap().unwrap_err());

        let second = spawn({
            let listener = listener.clone();
            async move { listener.accept().await.unwrap() }
        });
        let client = TcpStream::connect(addr).await.unwrap();
        let (stream, peer) = second.await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        client.write_all(b"ok").await.unwrap();
        assert_eq!(read_exactly(&stream, 2).await.unwrap(), b"ok");
    });
}

#[test]
fn cancelled_read_while_waiting_consumes_no_bytes_a_shielded_read_gets_them_all() {
    block_on(async {
        let (client, server, peeker) = tcp_pair_with_peeker().await;
        let polls = Counters::new();
        let reader = spawn({
            let polls = polls.clone();
            async move {
                let mut buf = [0; 64];
                let cancelled = polls.probe(server.read(&mut buf)).await.unwrap_err();
                let got = shield(read_exactly(&server, 5)).await.unwrap();
                (cancelled, got)
            }
        });
        yield_until("the reader waits in read", || polls.polls() >= 1).await;
        // In one step of the root: the bytes land in the reader's socket, and the reader is
        // cancelled before it runs again.
        client.write_all(b"hello").await.unwrap();
        reader.cancel();
        let (cancelled, got) = reader.await.unwrap();
        assert_cancelled(&cancelled);
        assert_eq!(got, b"hello");
        drop(peeker);
    });
}

#[test]
fn cancelled_read_with_bytes_queued_consumes_none_a_shielded_read_gets_exactly_them() {
    block_on(async {
        let (client, server, peeker) = tcp_pair_with_peeker().await;
        let reader = spawn(async move {
            let why = cancelled().await;
            let mut buf = [0; 64];
            let first = server.read(&mut buf).await.unwrap_err();
            let second = server.read(&mut buf).await.unwrap_err();
            let got = shield(async {
                let n = server.read(&mut buf).await?;
                io::Result::Ok(buf[..n].to_vec())
            })
            .await
            .unwrap();
            (why, first, second, got)
        });
        client.write_all(b"hello").await.unwrap();
        until_queued(&peeker, 5).await;
        reader.cancel();
        let (why, first, second, got) = reader.await.unwrap();
        assert_eq!(why.reason(), CancelReason::Explicit);
        assert_cancelled(&first);
        assert_cancelled(&second);
        assert_eq!(got, b"hello", "one shielded read gets all five bytes");
    });
}

#[test]
fn cancelled_write_writes_nothing_only_the_shielded_write_arrives() {
    block_on(async {
        let (client, server, _peeker) = tcp_pair_with_peeker().await;
        let writer = spawn(async move {
            cancelled().await;
            let write = client.write(b"lost").await.unwrap_err();
            let write_all = client.write_all(b"lost too").await.unwrap_err();
            shield(client.write_all(b"kept")).await.unwrap();
            client.shutdown(Shutdown::Write).unwrap();
            (write, write_all)
        });
        yield_now().await.unwrap();
        writer.cancel();
        let (write, write_all) = writer.await.unwrap();
        assert_cancelled(&write);
        assert_cancelled(&write_all);
        assert_eq!(read_to_end(&server).await.unwrap(), b"kept");
    });
}

#[test]
fn cancelled_udp_recv_loses_no_datagram_and_cancelled_send_sends_nothing() {
    block_on(async {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = receiver.local_addr().unwrap();
        let from = sender.local_addr().unwrap();
        let task = spawn(async move {
            cancelled().await;
            let mut buf = [0; 64];
            let recv = receiver.recv_from(&mut buf).await.unwrap_err();
            let send = receiver.send_to(b"lost", from).await.unwrap_err();
            let got = shield(async {
                let (n, peer) = receiver.recv_from(&mut buf).await?;
                receiver.send_to(b"kept", from).await?;
                receiver.send_to(b"end", from).await?;
                io::Result::Ok((buf[..n].to_vec(), peer))
            })
            .await
            .unwrap();
            (recv, send, got)
        });
        assert_eq!(sender.send_to(b"first", to).await.unwrap(), 5);
        task.cancel();
        let (recv, send, got) = task.await.unwrap();
        assert_cancelled(&recv);
        assert_cancelled(&send);
        assert_eq!(
            got,
            (b"first".to_vec(), from),
            "the datagram was still queued"
        );
        let mut buf = [0; 64];
        let (n, peer) = sender.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], peer), (&b"kept"[..], to));
        let (n, _) = sender.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"end", "nothing between the shielded sends");
    });
}

#[test]
fn cancelled_unix_datagram_recv_loses_nothing_and_send_sends_nothing() {
    block_on(async {
        let (a, b) = UnixDatagram::pair().unwrap();
        let task = spawn(async move {
            cancelled().await;
            let mut buf = [0; 64];
            let recv = b.recv(&mut buf).await.unwrap_err();
            let send = b.send(b"lost").await.unwrap_err();
            let got = shield(async {
                let n = b.recv(&mut buf).await?;
                b.send(b"kept").await?;
                io::Result::Ok(buf[..n].to_vec())
            })
            .await
            .unwrap();
            (recv, send, got)
        });
        assert_eq!(a.send(b"first").await.unwrap(), 5);
        task.cancel();
        let (recv, send, got) = task.await.unwrap();
        assert_cancelled(&recv);
        assert_cancelled(&send);
        assert_eq!(got, b"first");
        assert_eq!(next_datagram(&a).await, b"kept");
    });
}

#[test]
fn cancelled_tcp_connect_reaches_no_listener() {
    block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let task = spawn(async move {
            cancelled().await;
            let refused = TcpStream::connect(addr).await.map(|_| ()).unwrap_err();
            let client = shield(TcpStream::connect(addr)).await.unwrap();
            (refused, client)
        });
        yield_now().await.unwrap();
        task.cancel();
        let (refused, client) = task.await.unwrap();
        assert_cancelled(&refused);
        // The accept queue is FIFO: had the cancelled connect sent a SYN, its connection
        // would come out first.
        let (_, peer) = listener.accept().await.unwrap();
        assert_eq!(
            peer,
            client.local_addr().unwrap(),
            "the first connection accepted"
        );
    });
}

#[test]
fn cancelled_unix_connect_reaches_no_listener() {
    let file = SocketPath::new("connect");
    block_on(async {
        let listener = UnixListener::bind(file.path()).unwrap();
        let path = file.path().to_path_buf();
        let task = spawn(async move {
            cancelled().await;
            let refused = UnixStream::connect(&path).await.map(|_| ()).unwrap_err();
            let client = shield(UnixStream::connect(&path)).await.unwrap();
            shield(client.write_all(b"hi")).await.unwrap();
            (refused, client)
        });
        yield_now().await.unwrap();
        task.cancel();
        let (refused, _client) = task.await.unwrap();
        assert_cancelled(&refused);
        // The first connection accepted is the shielded one, which sent "hi" (a connection
        // left by the cancelled connect would read as an immediate end of stream).
        let (stream, _) = listener.accept().await.unwrap();
        assert_eq!(read_exactly(&stream, 2).await.unwrap(), b"hi");
    });
}

// ---------------------------------------------------------------------------------------
// Peers that go away

#[test]
fn read_after_the_peer_closes_returns_end_of_stream() {
    block_on(async {
        let (client, server) = tcp_pair_with_std_server().await;
        let polls = Counters::new();
        let reader = spawn({
            let polls = polls.clone();
            async move {
                let mut buf = [0; 16];
                let n = polls.probe(client.read(&mut buf)).await;
                (n.map_err(|e| e.kind()), client)
            }
        });
        yield_until("the reader waits in read", || polls.polls() >= 1).await;
        server.shutdown(Shutdown::Both).unwrap();
        drop(server);
        let (n, client) = reader.await.unwrap();
        assert_eq!(n, Ok(0));
        let mut buf = [0; 16];
        assert_eq!(client.read(&mut buf).await.unwrap(), 0, "and again");
    });
}

/// The reader waits in `read`; then, in one step of the root, the peer's last bytes and its
/// close land together, so the OS reports them in a single event. The first read is short
/// (3 bytes into 64); the end of stream must still be seen, although no further event will
/// ever come. Each yield of the root makes the loop poll the OS once without blocking.
#[test]
fn end_of_stream_arriving_with_the_last_bytes_is_seen_after_a_short_read() {
    block_on(async {
        let (client, server) = tcp_pair_with_std_server().await;
        let polls = Counters::new();
        let reader = spawn(polls.probe(async move {
            let mut buf = [0; 64];
            let n = client.read(&mut buf).await.unwrap();
            let last = buf[..n].to_vec();
            (last, client.read(&mut buf).await.unwrap())
        }));
        yield_until("the reader waits in read", || polls.polls() >= 1).await;
        io::Write::write_all(&mut &server, b"bye").unwrap();
        drop(server);
        yield_until("the reader saw the end of stream", || reader.is_finished()).await;
        assert_eq!(reader.await.unwrap(), (b"bye".to_vec(), 0));
    });
}

#[test]
fn unix_end_of_stream_arriving_with_the_last_bytes_is_seen_after_a_short_read() {
    block_on(async {
        let (a, b) = UnixStream::pair().unwrap();
        let polls = Counters::new();
        let reader = spawn(polls.probe(async move {
            let mut buf = [0; 64];
            let n = b.read(&mut buf).await.unwrap();
            let last = buf[..n].to_vec();
            (last, b.read(&mut buf).await.unwrap())
        }));
        yield_until("the reader waits in read", || polls.polls() >= 1).await;
        a.write_all(b"bye").await.unwrap();
        drop(a);
        yield_until("the reader saw the end of stream", || reader.is_finished()).await;
        assert_eq!(reader.await.unwrap(), (b"bye".to_vec(), 0));
    });
}

#[test]
fn peer_reset_mid_read_fails_the_read_with_connection_reset() {
    block_on(async {
        let (client, server) = tcp_pair_with_std_server().await;
        // A socket closed with unread bytes in its receive queue resets the connection
        // (RST instead of FIN): the way to reset without SO_LINGER.
        client.write_all(b"never read").await.unwrap();
        until_queued(&server, 10).await;
        let polls = Counters::new();
        let reader = spawn({
            let polls = polls.clone();
            async move {
                let mut buf = [0; 16];
                polls.probe(client.read(&mut buf)).await
            }
        });
        yield_until("the reader waits in read", || polls.polls() >= 1).await;
        drop(server);
        let err = reader.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
    });
}

#[test]
fn writing_to_a_closed_peer_eventually_fails_with_broken_pipe_or_reset() {
    block_on(async {
        let (client, server) = tcp_pair_with_std_server().await;
        drop(server);
        let mut buf = [0; 4];
        assert_eq!(client.read(&mut buf).await.unwrap(), 0);
        let mut accepted = 0;
        let err = 'writes: {
            for _ in 0..MAX_STEPS {
                match client.write(b"ping").await {
                    Ok(n) => {
                        assert_eq!(n, 4);
                        accepted += 1;
                        yield_now().await.unwrap();
                    }
                    Err(err) => break 'writes err,
                }
            }
            panic!("{MAX_STEPS} writes to a closed peer all succeeded");
        };
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "after {accepted} accepted writes: {err} ({:?})",
            err.kind()
        );
        assert_eq!(Cancelled::from_io(&err), None);
    });
}

// ---------------------------------------------------------------------------------------
// Binding

#[test]
fn binding_a_tcp_port_in_use_gives_addr_in_use() {
    block_on(async {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = TcpListener::bind(addr).map(|_| ()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");

        // Also when treeloop bound first (its SO_REUSEADDR does not allow two listeners).
        let ours = TcpListener::bind("127.0.0.1:0").unwrap();
        let err = TcpListener::bind(ours.local_addr().unwrap())
            .map(|_| ())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
    });
}

#[test]
fn binding_a_udp_port_in_use_gives_addr_in_use() {
    block_on(async {
        let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = UdpSocket::bind(taken.local_addr().unwrap())
            .map(|_| ())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
    });
}

#[test]
fn binding_a_unix_socket_path_in_use_gives_addr_in_use() {
    let file = SocketPath::new("in-use");
    block_on(async {
        let _first = UnixListener::bind(file.path()).unwrap();
        let err = UnixListener::bind(file.path()).map(|_| ()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
        let err = UnixDatagram::bind(file.path()).map(|_| ()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
    });
}

// ---------------------------------------------------------------------------------------
// Split halves

#[test]
fn split_halves_read_and_write_at_once_from_two_tasks() {
    // 4 MiB each way through an echo server: more than the socket buffers hold, so the
    // writer waits for writability while the reader waits for readability on one socket.
    const LEN: usize = 4 * 1024 * 1024;
    block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            echo(&stream).await.unwrap()
        });
        let (read_half, write_half) = TcpStream::connect(addr).await.unwrap().into_split();
        let sent = pattern(LEN, 0x5a);
        let writer = spawn({
            let sent = sent.clone();
            async move {
                for chunk in sent.chunks(100_000) {
                    write_half.stream().write_all(chunk).await.unwrap();
                }
                write_half.stream().shutdown(Shutdown::Write).unwrap();
            }
        });
        let reader = spawn(async move { read_to_end(read_half.stream()).await.unwrap() });
        let received = reader.await.unwrap();
        writer.await.unwrap();
        assert_eq!(received.len(), LEN);
        assert!(
            received == sent,
            "the echoed bytes differ from the sent ones"
        );
        assert_eq!(server.await.unwrap(), LEN);
    });
}

#[test]
fn split_halves_share_one_socket() {
    block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepting = spawn(async move { listener.accept().await.unwrap() });
        let client = TcpStream::connect(addr).await.unwrap();
        let local = client.local_addr().unwrap();
        let (server, _) = accepting.await.unwrap();
        let (read_half, write_half) = client.into_split();
        assert_eq!(read_half.stream().local_addr().unwrap(), local);
        assert_eq!(write_half.stream().local_addr().unwrap(), local);
        drop(write_half);
        // Dropping the write half does not shut the stream: the read half still works both
        // ways.
        server.write_all(b"still open").await.unwrap();
        assert_eq!(
            read_exactly(read_half.stream(), 10).await.unwrap(),
            b"still open"
        );
        read_half.stream().write_all(b"yes").await.unwrap();
        assert_eq!(read_exactly(&server, 3).await.unwrap(), b"yes");
    });
}

// ---------------------------------------------------------------------------------------
// futures-io traits

#[test]
fn futures_io_poll_methods_read_write_flush_and_close_a_tcp_stream() {
    block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepting = spawn(async move { listener.accept().await.unwrap() });
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = accepting.await.unwrap();

        let written = poll_fn(|cx| Pin::new(&mut client).poll_write(cx, b"polled")).await;
        assert_eq!(written.unwrap(), 6);
        poll_fn(|cx| Pin::new(&mut client).poll_flush(cx))
            .await
            .unwrap();
        let mut buf = [0; 16];
        let mut reader = &server;
        let n = poll_fn(|cx| Pin::new(&mut reader).poll_read(cx, &mut buf))
            .await
            .unwrap();
        assert_eq!(&buf[..n], b"polled");
        // poll_close shuts the write side: the peer reads the end of stream.
        poll_fn(|cx| Pin::new(&mut client).poll_close(cx))
            .await
            .unwrap();
        let n = poll_fn(|cx| Pin::new(&mut reader).poll_read(cx, &mut buf))
            .await
            .unwrap();
        assert_eq!(n, 0);
        // The other direction still works.
        server.write_all(b"back").await.unwrap();
        let n = poll_fn(|cx| Pin::new(&mut client).poll_read(cx, &mut buf))
            .await
            .unwrap();
        assert_eq!(&buf[..n], b"back");
    });
}

#[test]
fn futures_lite_copy_echoes_through_shared_references_to_one_stream() {
    block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // `&TcpStream` is both the reader and the writer of the copy.
        let server = spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let copied = futures_lite::io::copy(&stream, &mut &stream).await;
            stream.shutdown(Shutdown::Write).unwrap();
            copied.unwrap()
        });
        let client = TcpStream::connect(addr).await.unwrap();
        let sent = pattern(200_000, 9);
        let (mut reader, mut writer) = (&client, &client);
        let writing = async {
            AsyncWriteExt::write_all(&mut writer, &sent).await?;
            AsyncWriteExt::close(&mut writer).await
        };
        let mut received = Vec::new();
        let reading = AsyncReadExt::read_to_end(&mut reader, &mut received);
        let (written, read) = futures_lite::future::zip(writing, reading).await;
        written.unwrap();
        assert_eq!(read.unwrap(), sent.len());
        assert!(
            received == sent,
            "the echoed bytes differ from the sent ones"
        );
        assert_eq!(server.await.unwrap(), sent.len() as u64);
    });
}

#[test]
fn futures_lite_ext_methods_work_on_split_halves_and_unix_streams() {
    block_on(async {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut read_half, mut write_half) = a.into_split();
        let mut b_ref = &b;
        AsyncWriteExt::write_all(&mut b_ref, b"to the read half")
            .await
            .unwrap();
        let mut got = [0; 16];
        AsyncReadExt::read_exact(&mut read_half, &mut got)
            .await
            .unwrap();
        assert_eq!(&got, b"to the read half");
        AsyncWriteExt::write_all(&mut write_half, b"from the write half")
            .await
            .unwrap();
        AsyncWriteExt::close(&mut write_half).await.unwrap();
        let mut all = Vec::new();
        AsyncReadExt::read_to_end(&mut b_ref, &mut all)
            .await
            .unwrap();
        assert_eq!(all, b"from the write half");
    });
}

#[test]
fn futures_io_reads_and_writes_in_a_cancelled_region_fail_with_cancelled() {
    block_on(async {
        let (a, b) = UnixStream::pair().unwrap();
        let task = spawn(async move {
            cancelled().await;
            let mut buf = [0; 8];
            let read = AsyncReadExt::read(&mut &b, &mut buf).await.unwrap_err();
            let write = AsyncWriteExt::write(&mut &b, b"lost").await.unwrap_err();
            (read, write, b)
        });
        a.write_all(b"queued").await.unwrap();
        task.cancel();
        let (read, write, b) = task.await.unwrap();
        assert_cancelled(&read);
        assert_cancelled(&write);
        drop(a);
        assert_eq!(read_to_end(&b).await.unwrap(), b"queued");
    });
}

// ---------------------------------------------------------------------------------------
// Outside a runtime

fn assert_names_the_fix(result: io::Result<()>, what: &str) {
    let err = result.expect_err(what);
    assert!(
        err.to_string().contains("inside a treeloop runtime"),
        "{what}: {err}"
    );
}

#[test]
fn sockets_created_outside_a_runtime_fail_with_an_error_naming_the_fix() {
    let file = SocketPath::new("outside");
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    assert_names_the_fix(TcpListener::bind(any).map(drop), "TcpListener::bind");
    assert_names_the_fix(UdpSocket::bind(any).map(drop), "UdpSocket::bind");
    assert_names_the_fix(
        UnixListener::bind(file.path()).map(drop),
        "UnixListener::bind",
    );
    assert_names_the_fix(UnixStream::pair().map(drop), "UnixStream::pair");
    assert_names_the_fix(UnixDatagram::pair().map(drop), "UnixDatagram::pair");
    assert_names_the_fix(UnixDatagram::unbound().map(drop), "UnixDatagram::unbound");
    let std_listener = std::net::TcpListener::bind(any).unwrap();
    assert_names_the_fix(
        TcpListener::from_std(std_listener).map(drop),
        "TcpListener::from_std",
    );
}

#[test]
fn connects_outside_a_runtime_fail_with_an_error_naming_the_fix() {
    let file = SocketPath::new("outside-connect");
    let unix_listener = std::os::unix::net::UnixListener::bind(file.path()).unwrap();
    let tcp_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = tcp_listener.local_addr().unwrap();
    // Polled by a foreign executor: no treeloop runtime on this thread.
    let connect = futures_lite::future::block_on(TcpStream::connect(addr));
    assert_names_the_fix(connect.map(drop), "TcpStream::connect");
    let connect = futures_lite::future::block_on(UnixStream::connect(file.path()));
    assert_names_the_fix(connect.map(drop), "UnixStream::connect");
    drop(unix_listener);
}

/// A misuse is reported before the OS is asked for anything: a failed connect outside a
/// runtime sends no SYN, so the listener has nothing to accept.
#[test]
fn a_connect_outside_a_runtime_reaches_no_listener() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let connect =
        futures_lite::future::block_on(TcpStream::connect(listener.local_addr().unwrap()));
    assert_names_the_fix(connect.map(drop), "TcpStream::connect");
    let accepted = listener.accept().map(|(_, peer)| peer);
    assert_eq!(
        accepted.map_err(|e| e.kind()),
        Err(io::ErrorKind::WouldBlock),
        "the failed connect left a connection in the listener's queue"
    );
}

/// A misuse is reported before the OS is asked for anything: a failed bind outside a runtime
/// leaves no socket file behind (which would make the corrected bind fail with `AddrInUse`).
#[test]
fn a_unix_bind_outside_a_runtime_leaves_no_socket_file() {
    let file = SocketPath::new("outside-bind");
    assert_names_the_fix(
        UnixListener::bind(file.path()).map(drop),
        "UnixListener::bind",
    );
    assert!(
        !file.path().exists(),
        "{} was left behind",
        file.path().display()
    );
    assert_names_the_fix(
        UnixDatagram::bind(file.path()).map(drop),
        "UnixDatagram::bind",
    );
    assert!(
        !file.path().exists(),
        "{} was left behind",
        file.path().display()
    );
    let rebound = block_on(async { UnixListener::bind(file.path()).map(drop) });
    assert!(rebound.is_ok(), "the corrected bind: {rebound:?}");
}

#[test]
fn sockets_work_in_successive_block_on_calls_of_one_runtime() {
    let runtime = treeloop::Builder::new().build().unwrap();
    for round in 0..3u8 {
        let got = runtime.block_on(async {
            let (a, b) = UnixStream::pair().unwrap();
            let writer = spawn(async move { a.write_all(&[round; 3]).await.unwrap() });
            writer.await.unwrap();
            read_exactly(&b, 3).await.unwrap()
        });
        assert_eq!(got, [round; 3]);
    }
}
