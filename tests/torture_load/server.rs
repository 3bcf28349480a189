//! The server: one connection task per accepted connection, serving frames until its peer
//! leaves or the shutdown comes, then writing a goodbye inside a `shield`; and [`Server`], what
//! it shares with the test.
//!
//! Ground rule: every connection task records exactly one [`Ending`] and drops its state
//! exactly once (counted by [`DropCount`]), whatever ends it; the test counts on both.

use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::io;
use std::pin::pin;
use std::rc::Rc;

use crate::wire::{
    ECHO, FILL, FLOOD_ME, GOODBYE, HALF_CLOSE, HALF_CLOSE_ACK, RESPOND, read_exact, read_header,
};
use crate::{Goal, MAX_ECHO, MAX_STEPS};
use treeloop::net::TcpStream;
use treeloop::{CancelReason, Cancelled, cancelled, shield};

/// How a server connection task ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Ending {
    /// The peer closed (end of stream, inside a frame or between frames).
    PeerClosed,
    /// The peer reset the connection (a read or write failed).
    PeerFailed(io::ErrorKind),
    /// Cancelled; then the cleanup wrote the goodbye (`true`) or failed to.
    Cancelled { reason: CancelReason, goodbye: bool },
}

/// What the server side shares with the test.
pub struct Server {
    /// Connections accepted.
    pub accepted: Cell<usize>,
    /// How each connection task ended, one entry per task.
    pub endings: RefCell<Vec<Ending>>,
    /// Connection tasks whose state was dropped (the stream with it).
    pub dropped: Cell<usize>,
    /// Connection tasks ended by their peer (reaches the number of scripted disconnects).
    pub peer_gone: Goal,
    /// Flood writers seen pending on a full socket buffer (reaches the number of slow readers).
    pub stalled: Goal,
}

/// Counts the drop of a connection task's state, whatever ends the task.
struct DropCount(Rc<Server>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.dropped.set(self.0.dropped.get() + 1);
    }
}

/// Writes `len` FILL bytes; if `stalled` is given, counts it once when a write is pending
/// (the peer's receive buffer and ours are full).
async fn send_fill(stream: &TcpStream, len: usize, stalled: Option<&Goal>) -> io::Result<()> {
    let chunk = [FILL; 64 * 1024];
    let mut noted = stalled.is_none();
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len());
        let mut write = pin!(stream.write_all(&chunk[..n]));
        poll_fn(|cx| {
            let poll = write.as_mut().poll(cx);
            if poll.is_pending() && !noted {
                noted = true;
                stalled.unwrap().add();
            }
            poll
        })
        .await?;
        left -= n;
    }
    Ok(())
}

/// The server's side of one connection until the peer leaves or a cancellation comes.
/// Returns `Ok` when the peer closed between frames.
async fn converse(stream: &TcpStream, server: &Server) -> io::Result<()> {
    let mut payload = vec![0; MAX_ECHO];
    for _ in 0..MAX_STEPS {
        let Some((op, arg)) = read_header(stream).await? else {
            return Ok(());
        };
        match op {
            ECHO => {
                read_exact(stream, &mut payload[..arg]).await?;
                stream.write_all(&payload[..arg]).await?;
            }
            RESPOND => send_fill(stream, arg, None).await?,
            FLOOD_ME => send_fill(stream, arg, Some(&server.stalled)).await?,
            HALF_CLOSE => {
                let mut byte = [0];
                let n = stream.read(&mut byte).await?;
                assert_eq!(n, 0, "a half-closing client sent more");
                stream.write_all(HALF_CLOSE_ACK).await?;
                // Half-closed: nothing more to read; the write side waits for the end.
                return Err(cancelled().await.into());
            }
            op => panic!("unknown frame op {op}"),
        }
    }
    panic!("a connection sent more than {MAX_STEPS} frames");
}

/// One connection task of the server: converse, then clean up (a goodbye, shielded, when
/// cancelled).
pub async fn serve(stream: TcpStream, server: Rc<Server>) {
    let _dropped = DropCount(server.clone());
    let ending = match converse(&stream, &server).await {
        Ok(()) => Ending::PeerClosed,
        Err(err) => match Cancelled::from_io(&err) {
            Some(cancelled) => Ending::Cancelled {
                reason: cancelled.reason(),
                goodbye: shield(stream.write_all(GOODBYE)).await.is_ok(),
            },
            None if err.kind() == io::ErrorKind::UnexpectedEof => Ending::PeerClosed,
            None => Ending::PeerFailed(err.kind()),
        },
    };
    if !matches!(ending, Ending::Cancelled { .. }) {
        server.peer_gone.add();
    }
    server.endings.borrow_mut().push(ending);
}
