//! A WebSocket echo server on async-tungstenite whose clients are told "going away" when it
//! shuts down: on SIGINT or SIGTERM every connection gets a Close frame with code 1001 and a
//! reason, as RFC 6455 asks of a server that goes down, instead of being cut off.
//!
//! - Every text or binary message comes back as it was sent. One task per connection, each
//!   a member of the server's `scope`. async-tungstenite runs as it is: treeloop's sockets
//!   are futures-io `AsyncRead`/`AsyncWrite`, which is all its runtime-agnostic API needs.
//! - **How the shutdown reaches a WebSocket.** The signal cancels the root, so the scope and
//!   every connection in it. Left alone, the cancellation arrives as an *I/O error*: the
//!   socket read under async-tungstenite's `next()` fails with `Cancelled`, async-tungstenite
//!   ends the stream, the connection is dropped with no Close frame sent, and the client
//!   sees 1006 (abnormal closure). Sending a Close by hand after that error comes too late:
//!   the stream has ended, so the client's Close reply can no longer be read, and when it
//!   arrives at the closed socket the kernel answers with a reset.
//! - So each connection runs as a *drain* instead: `on_cancel` hides the cancellation from
//!   the WebSocket (its reads never fail with `Cancelled`) and calls a hook, once, that
//!   tells the echo loop through a oneshot channel. The loop then sends Close 1001 with a
//!   reason, reads (and drops) what the client still sends until the client's own Close
//!   arrives, and drops the socket with nothing left unread: a FIN, no reset. `.grace(..)`
//!   bounds the wait for that answer; a client silent for [`GRACE`] is cut off.
//! - Meanwhile the accept loop, cancelled in the same instant, stops and closes the
//!   listener: new clients are refused while the open connections close.
//! - The server prints how each connection ended and, once every connection task has
//!   finished, a summary, and exits 0. A second signal exits at once.
//! - Out of file descriptors, `AcceptBackoff` waits and accepts again once connections have
//!   closed (see examples/echo_server.rs).
//!
//! Run with: cargo run --example ws_echo -- PORT   (default 9001; 0 picks one)
//! Try it:   websocat ws://127.0.0.1:9001/   (type a line: it comes back; Ctrl-C the
//!           server and the client is told 1001 "server shutting down")

use std::cell::Cell;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use async_tungstenite::tungstenite::Message;
use async_tungstenite::tungstenite::error::Error as WsError;
use async_tungstenite::tungstenite::protocol::CloseFrame;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::{WebSocketStream, accept_async};
use futures_lite::StreamExt;
use futures_lite::future::or;
use treeloop::net::{AcceptBackoff, TcpListener, TcpStream};
use treeloop::sync::oneshot;
use treeloop::{Builder, Cancelled, FutureExt, GraceExpired, Scope, ScopeError, scope};

/// How long a client has, once the shutdown starts, to answer our Close frame.
const GRACE: Duration = Duration::from_secs(5);

/// The reason sent with close code 1001.
const REASON: &str = "server shutting down";

/// A WebSocket over one of treeloop's TCP streams.
type WebSocket = WebSocketStream<TcpStream>;

/// Totals over the server's life (one thread: `Cell` is enough).
#[derive(Default)]
struct Totals {
    /// Connections accepted.
    accepted: Cell<u64>,
    /// Connections still open.
    open: Cell<u64>,
    /// Text and binary messages echoed, over all connections.
    echoed: Cell<u64>,
    /// Connections the shutdown closed with 1001 and whose client answered with its Close.
    went_away: Cell<u64>,
    /// Connections whose client did not answer within [`GRACE`]: dropped, perhaps with a reset.
    cut_off: Cell<u64>,
}

/// How a connection's WebSocket ended (when it ended within the grace period).
enum Ended {
    /// The client closed it (a Close frame, which tungstenite answers, or a plain hang-up).
    ByClient,
    /// The shutdown closed it: our Close 1001 went out and the client's Close came back;
    /// `dropped` messages arrived in between and were not echoed.
    WentAway { why: Cancelled, dropped: u64 },
    /// The handshake or the WebSocket failed (a protocol error, a broken TCP connection).
    Failed(WsError),
}

/// What the echo loop waits for: the next message, or the shutdown, whichever comes first.
enum Event {
    /// The drain's hook said the shutdown has come.
    GoingAway(Cancelled),
    /// The next message from the client; `None` once the WebSocket has closed.
    Message(Option<Result<Message, WsError>>),
}

/// The shutdown notice the hook sends. The hook holds the sender until it runs, and it
/// lives as long as the drain, so the channel cannot close while this waits; and inside the
/// drain's shield the wait is never cancelled.
async fn going_away(notice: &mut oneshot::Receiver<Cancelled>) -> Cancelled {
    match notice.recv().await {
        Ok(why) => why,
        Err(_) => std::future::pending().await,
    }
}

/// One WebSocket from the handshake on: echoes until the client closes it, or until the
/// shutdown notice comes, and then closes it with 1001. Runs inside the connection's drain,
/// so none of its socket reads and writes ever fails with `Cancelled`.
async fn serve(
    stream: TcpStream,
    mut notice: oneshot::Receiver<Cancelled>,
    totals: &Totals,
) -> Ended {
    let mut ws = match accept_async(stream).await {
        Ok(ws) => ws,
        Err(err) => return Ended::Failed(err),
    };
    loop {
        // The notice is polled first, so a client that sends without pause cannot keep the
        // loop from seeing it. Dropping the losing `next()` loses nothing: tungstenite keeps
        // a partly read frame in its buffer for the next call.
        let event = or(
            async { Event::GoingAway(going_away(&mut notice).await) },
            async { Event::Message(ws.next().await) },
        )
        .await;
        let message = match event {
            Event::GoingAway(why) => return go_away(&mut ws, why).await,
            Event::Message(None) => return Ended::ByClient,
            Event::Message(Some(Err(err))) => return Ended::Failed(err),
            Event::Message(Some(Ok(message))) => message,
        };
        // Pings are answered by tungstenite itself, and a Close from the client too (the
        // stream then ends): only data comes back.
        if message.is_text() || message.is_binary() {
            if let Err(err) = ws.send(message).await {
                return Ended::Failed(err);
            }
            totals.echoed.set(totals.echoed.get() + 1);
        }
    }
}

/// The shutdown's close, by the book (RFC 6455, section 7): send Close 1001 with a reason,
/// then read until the client's Close comes back, dropping whatever the client sent before
/// it saw ours. tungstenite ends the stream right after that reply, and the reply is the
/// client's last frame, so the socket is dropped with nothing unread in it.
async fn go_away(ws: &mut WebSocket, why: Cancelled) -> Ended {
    let frame = CloseFrame {
        code: CloseCode::Away,
        reason: REASON.into(),
    };
    if let Err(err) = ws.close(Some(frame)).await {
        return Ended::Failed(err);
    }
    let mut dropped = 0;
    while let Some(message) = ws.next().await {
        match message {
            Ok(Message::Close(_)) => {} // the client's answer; the stream ends next
            Ok(_) => dropped += 1,
            Err(err) => return Ended::Failed(err),
        }
    }
    Ended::WentAway { why, dropped }
}

/// One connection's task: the WebSocket as a drain, then a line saying how it ended.
async fn connection(stream: TcpStream, peer: SocketAddr, totals: Rc<Totals>) -> io::Result<()> {
    let (shutdown, notice) = oneshot::channel();
    // `on_cancel` polls `serve` in a shield and, the first time the connection's region is
    // cancelled, calls the hook. The hook only passes the news on: it runs synchronously and
    // the WebSocket lives inside `serve`, so `serve` does the closing, with awaits.
    let ended: Result<Ended, GraceExpired> = serve(stream, notice, &totals)
        .on_cancel(move |_serve, why| {
            let _ = shutdown.send(why); // fails only if `serve` has ended: nothing to close
        })
        .grace(GRACE)
        .await;
    let how = match ended {
        Ok(Ended::ByClient) => "the client closed the connection".to_owned(),
        Ok(Ended::WentAway { why, dropped }) => {
            totals.went_away.set(totals.went_away.get() + 1);
            format!(
                "closed with 1001 at the shutdown ({why}); the client answered \
                 ({dropped} messages dropped)"
            )
        }
        Ok(Ended::Failed(err)) => format!("failed: {err}"),
        Err(expired) => {
            totals.cut_off.set(totals.cut_off.get() + 1);
            format!("cut off: {expired}")
        }
    };
    totals.open.set(totals.open.get() - 1);
    println!("ws_echo: {peer}: {how}");
    // Not an error even when it failed: in a scope, a member's error would cancel every
    // other connection.
    Ok(())
}

/// The scope's body: accepts connections until cancelled, one member each. Returning drops
/// the listener, so the shutdown closes it at once, while the connections close.
async fn accept_loop(
    s: Scope<io::Error>,
    listener: TcpListener,
    totals: Rc<Totals>,
) -> io::Result<()> {
    let mut backoff = AcceptBackoff::new();
    loop {
        let (stream, peer) = match backoff.accept(&listener).await {
            Ok(accepted) => accepted,
            Err(err) => {
                let why = Cancelled::from_io(&err).ok_or(err)?;
                let open = totals.open.get();
                println!("ws_echo: {why}: no more accepts; closing {open} connections");
                return Ok(());
            }
        };
        stream.set_nodelay(true)?;
        totals.accepted.set(totals.accepted.get() + 1);
        totals.open.set(totals.open.get() + 1);
        println!("ws_echo: {peer}: connected ({} open)", totals.open.get());
        s.spawn(connection(stream, peer, totals.clone()))?;
    }
}

fn main() -> ExitCode {
    let port = match std::env::args().nth(1).map(|arg| arg.parse::<u16>()) {
        None => 9001,
        Some(Ok(port)) => port,
        Some(Err(err)) => {
            eprintln!("ws_echo: the argument must be a port number: {err}");
            return ExitCode::from(2);
        }
    };
    match run(port) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ws_echo: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(port: u16) -> io::Result<()> {
    let runtime = Builder::new().shutdown_on_signal(true).build()?;
    let totals = Rc::new(Totals::default());
    runtime.block_on(async {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
        println!("ws_echo: listening on ws://{}", listener.local_addr()?);
        match scope(|s| accept_loop(s, listener, totals.clone())).await {
            // The signal cancelled the root, so the scope too: the normal way to stop.
            Ok(_) | Err(ScopeError::Cancelled(_)) => Ok(()),
            Err(failed) => Err(failed.into_first()),
        }
    })?;
    println!(
        "ws_echo: shut down gracefully: served {} connections, echoed {} messages; at the \
         shutdown {} closed with 1001 (going away) and answered, {} cut off after {GRACE:?}",
        totals.accepted.get(),
        totals.echoed.get(),
        totals.went_away.get(),
        totals.cut_off.get(),
    );
    Ok(())
}
