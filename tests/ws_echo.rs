//! `examples/ws_echo.rs` against blocking tungstenite clients in std threads over loopback
//! (the `tungstenite` that async-tungstenite re-exports, so both ends are one version), the
//! server a child process stopped with real signals:
//!
//! - text and binary messages come back as sent, and a client's own close is answered;
//! - with several clients connected and idle, SIGTERM (or SIGINT) gives every one a Close
//!   frame with code 1001 (going away) and the server's reason; each answers with its own
//!   Close and then sees the server's FIN, not a reset; the server exits 0 and its summary
//!   counts every one of them as closed with 1001.
//!
//! Every wait is for a line of output, a client's report, a frame or an exit, bounded by
//! [`PATIENCE`] (the clients' sockets have read and write timeouts of that length): nothing
//! sleeps to let something happen.

#[path = "common/examples.rs"]
mod examples;

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;

use async_tungstenite::tungstenite::protocol::CloseFrame;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::{self, Message, WebSocket};
use examples::{PATIENCE, Pipe, Running};

/// The reason the example sends with 1001.
const REASON: &str = "server shutting down";

/// A blocking WebSocket client.
type Client = WebSocket<TcpStream>;

fn start() -> (Running, SocketAddr) {
    let mut server = Running::start("ws_echo", &["0"], &[], None);
    let addr = server.listening_on("listening on ws://");
    (server, addr)
}

/// A client connected to `addr`, its handshake done; every read and write on it gives up
/// after [`PATIENCE`].
fn connect(addr: SocketAddr) -> Result<Client, String> {
    let stream = TcpStream::connect(addr).map_err(|err| format!("connect to {addr}: {err}"))?;
    for timeout in [
        stream.set_read_timeout(Some(PATIENCE)),
        stream.set_write_timeout(Some(PATIENCE)),
    ] {
        timeout.map_err(|err| format!("set a socket timeout: {err}"))?;
    }
    let (client, _response) = tungstenite::client(format!("ws://{addr}/"), stream)
        .map_err(|err| format!("the WebSocket handshake failed: {err}"))?;
    Ok(client)
}

/// Sends `message` and returns the server's next message.
fn round_trip(client: &mut Client, message: Message) -> Result<Message, String> {
    client.send(message).map_err(|err| format!("send: {err}"))?;
    client.read().map_err(|err| format!("read the echo: {err}"))
}

/// How the TCP connection ended once the WebSocket had closed.
#[derive(Debug, PartialEq, Eq)]
enum TcpEnd {
    /// The server closed it with a FIN: the client read end-of-stream.
    Fin,
    /// The server reset it (it closed with bytes unread, say).
    Reset,
    /// Anything else: more bytes, or another error.
    Other(String),
}

/// What the server told a client at the shutdown.
#[derive(Debug)]
struct Goodbye {
    /// The server's Close frame.
    close: Option<CloseFrame>,
    /// How the TCP connection ended after the client answered.
    tcp: TcpEnd,
}

/// Reads the raw socket under `client` to its end. tungstenite itself reports a reset after
/// a Close as a clean `ConnectionClosed`, so a reset is looked for below it.
fn tcp_end(client: &mut Client) -> TcpEnd {
    let mut rest = [0; 256];
    match client.get_mut().read(&mut rest) {
        Ok(0) => TcpEnd::Fin,
        Ok(n) => TcpEnd::Other(format!("{n} more bytes after the close handshake")),
        Err(err) if err.kind() == ErrorKind::ConnectionReset => TcpEnd::Reset,
        Err(err) => TcpEnd::Other(err.to_string()),
    }
}

/// An idle client at the shutdown: waits for the server's Close, answers it (tungstenite
/// queued the answer when the Close came in; `flush` sends it), then reads how the TCP
/// connection ends.
fn goodbye(mut client: Client) -> Result<Goodbye, String> {
    let close = match client.read() {
        Ok(Message::Close(close)) => close,
        Ok(other) => return Err(format!("expected the server's Close, got {other:?}")),
        Err(err) => return Err(format!("expected the server's Close: {err}")),
    };
    client
        .flush()
        .map_err(|err| format!("answer the server's Close: {err}"))?;
    let tcp = tcp_end(&mut client);
    Ok(Goodbye { close, tcp })
}

#[test]
fn text_and_binary_messages_come_back_as_sent_and_a_client_close_is_answered() {
    let (mut server, addr) = start();
    let mut client = connect(addr).unwrap_or_else(|err| panic!("{err}\n{}", server.transcript()));
    let messages = [
        Message::text("hello, treeloop"),
        Message::binary(vec![0u8, 1, 2, 254, 255]),
        Message::text(""),
        // Larger than one socket read.
        Message::binary((0..200_000u32).map(|i| i as u8).collect::<Vec<u8>>()),
    ];
    for message in messages {
        let echoed = round_trip(&mut client, message.clone())
            .unwrap_or_else(|err| panic!("{err}\n{}", server.transcript()));
        assert_eq!(echoed, message);
    }
    // The client closes: the server answers with its Close, then closes the TCP connection.
    client.close(None).expect("send the client's Close");
    match client.read() {
        Ok(Message::Close(_)) => {}
        other => panic!("expected the server's answer to our Close, got {other:?}"),
    }
    assert_eq!(tcp_end(&mut client), TcpEnd::Fin);
    server.wait_for(Pipe::Stdout, "the client closed the connection");
    server.terminate();
    let status = server.finish();
    assert!(status.success(), "{status}\n{}", server.transcript());
    let summary = server.wait_for(Pipe::Stdout, "shut down gracefully");
    assert!(
        summary.contains("served 1 connections, echoed 4 messages; at the shutdown 0 closed"),
        "{summary}"
    );
}

/// `clients` clients connect, each proves it is being served with one round trip and goes
/// idle; then `signal`.
fn every_idle_client_is_told_going_away_on(signal: &str, clients: usize) {
    let (mut server, addr) = start();
    let (ready_tx, ready) = mpsc::channel();
    let (done_tx, done) = mpsc::channel();
    for i in 0..clients {
        let (ready_tx, done_tx) = (ready_tx.clone(), done_tx.clone());
        thread::spawn(move || {
            let session = || {
                let mut client = connect(addr)?;
                let hello = Message::text(format!("client {i} is here"));
                let echoed = round_trip(&mut client, hello.clone())?;
                if echoed != hello {
                    return Err(format!("client {i}: sent {hello:?}, got back {echoed:?}"));
                }
                let _ = ready_tx.send(i);
                // Idle now: the next thing from the server is its Close.
                goodbye(client)
            };
            let _ = done_tx.send((i, session()));
        });
    }
    drop((ready_tx, done_tx));
    for _ in 0..clients {
        if ready.recv_timeout(PATIENCE).is_err() {
            let early = done.try_iter().collect::<Vec<_>>();
            panic!(
                "not every client got its echo: {early:?}\n{}",
                server.transcript()
            );
        }
    }
    server.signal(signal);
    for _ in 0..clients {
        let (i, session) = done.recv_timeout(PATIENCE).unwrap_or_else(|err| {
            panic!("a client said nothing ({err}):\n{}", server.transcript())
        });
        let goodbye =
            session.unwrap_or_else(|err| panic!("client {i}: {err}\n{}", server.transcript()));
        let close = goodbye
            .close
            .unwrap_or_else(|| panic!("client {i}: a Close frame without a code"));
        assert_eq!(close.code, CloseCode::Away, "client {i}: {close:?}");
        assert_eq!(close.reason.as_str(), REASON, "client {i}");
        assert_eq!(
            goodbye.tcp,
            TcpEnd::Fin,
            "client {i}\n{}",
            server.transcript()
        );
    }
    let status = server.finish();
    assert!(
        status.success(),
        "SIG{signal}: {status}\n{}",
        server.transcript()
    );
    let went_away = server
        .lines_of(Pipe::Stdout)
        .filter(|line| line.contains("closed with 1001 at the shutdown"))
        .count();
    assert_eq!(went_away, clients, "{}", server.transcript());
    let summary = server.wait_for(Pipe::Stdout, "shut down gracefully");
    let counts = format!(
        "served {clients} connections, echoed {clients} messages; at the shutdown {clients} \
         closed with 1001 (going away) and answered, 0 cut off"
    );
    assert!(summary.contains(&counts), "{summary}\nexpected: {counts}");
}

#[test]
fn sigterm_closes_every_idle_client_with_1001_and_the_reason_without_a_reset() {
    every_idle_client_is_told_going_away_on("TERM", 4);
}

#[test]
fn sigint_closes_every_idle_client_with_1001_and_the_reason_without_a_reset() {
    every_idle_client_is_told_going_away_on("INT", 2);
}
