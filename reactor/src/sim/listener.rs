//! `listener()`: an in-memory listener and the connector that reaches it.
//!
//! A [`Connector::connect`] makes a [`duplex`] pair, queues the server's end in the
//! listener's backlog and returns the client's end at once (as a TCP connect completes once
//! the kernel has queued the connection, before any `accept`). [`Listener::accept`] takes
//! the oldest queued connection.
//!
//! Invariants: a connection is in exactly one place — the backlog, or the hands of the
//! task that accepted it; a cancelled accept leaves the backlog as it was, and a cancelled
//! connect queues nothing (R7). When the listener goes, every connection still in its
//! backlog is reset (its client's next read or write fails with `ConnectionReset`, as for
//! a TCP connection the kernel had queued), and later connects fail with
//! `ConnectionRefused`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::rc::{Rc, Weak};
use std::task::{Poll, Waker};

use treeloop_executor::{coop, poll_cancelled};

use super::duplex::{DuplexStream, duplex};

/// The connection number a [`Listener`] gives each accepted peer, counting from 1 in
/// connect order (the in-memory counterpart of a peer's socket address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionId(pub u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sim connection {}", self.0)
    }
}

/// What the listener and its connectors share.
#[derive(Debug)]
struct Backlog {
    /// Server ends of connections not yet accepted, oldest first.
    queued: VecDeque<(DuplexStream, ConnectionId)>,
    /// Connections made so far (the last `ConnectionId` given).
    connections: u64,
    /// Buffer size of each direction of a new connection.
    capacity: usize,
    /// Tasks waiting in `accept`, one waker per task (a task's newer waker replaces its
    /// older one, so a loop of cancelled accepts leaves nothing behind).
    acceptors: Vec<Waker>,
}

/// An in-memory listener; see [`listener`]. Dropping it resets every connection still
/// queued and refuses later connects.
#[derive(Debug)]
pub struct Listener {
    /// The backlog; connectors hold it weakly, so it goes when the listener does.
    backlog: Rc<RefCell<Backlog>>,
}

/// Connects to the [`Listener`] it was made with; cheap to clone, one per client.
#[derive(Clone, Debug)]
pub struct Connector {
    /// The listener's backlog, while the listener is alive.
    backlog: Weak<RefCell<Backlog>>,
}

/// An in-memory listener and a connector to reach it; each connection is a [`duplex`]
/// pair buffering up to `capacity` bytes in each direction.
///
/// # Panics
///
/// If `capacity` is zero (nothing could ever be written).
pub fn listener(capacity: usize) -> (Listener, Connector) {
    assert!(
        capacity > 0,
        "sim::listener capacity must be at least 1 byte"
    );
    let backlog = Rc::new(RefCell::new(Backlog {
        queued: VecDeque::new(),
        connections: 0,
        capacity,
        acceptors: Vec::new(),
    }));
    let connector = Connector {
        backlog: Rc::downgrade(&backlog),
    };
    (Listener { backlog }, connector)
}

impl Listener {
    /// Waits for a connection and takes the oldest one queued. A cancelled accept takes
    /// nothing: the next `accept` gets the connection (R7).
    pub async fn accept(&self) -> io::Result<(DuplexStream, ConnectionId)> {
        poll_fn(|cx| {
            if let Some(cancelled) = poll_cancelled(cx) {
                return cancelled.map(|cancelled| Err(cancelled.into()));
            }
            let mut backlog = self.backlog.borrow_mut();
            if backlog.queued.is_empty() {
                if !backlog.acceptors.iter().any(|w| w.will_wake(cx.waker())) {
                    backlog.acceptors.push(cx.waker().clone());
                }
                return Poll::Pending;
            }
            drop(backlog);
            if coop::poll_proceed(cx).is_pending() {
                return Poll::Pending;
            }
            let accepted = self.backlog.borrow_mut().queued.pop_front();
            Poll::Ready(Ok(accepted.expect("checked above, nothing ran since")))
        })
        .await
    }

    /// A new connector to this listener.
    pub fn connector(&self) -> Connector {
        Connector {
            backlog: Rc::downgrade(&self.backlog),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let queued = std::mem::take(&mut self.backlog.borrow_mut().queued);
        for (stream, _) in queued {
            stream.reset();
        }
    }
}

impl Connector {
    /// Connects: queues a new connection for the listener to accept and returns this end
    /// of it. A treeloop await point: in a cancelled region it fails before connecting.
    ///
    /// # Errors
    ///
    /// `ConnectionRefused` once the listener is gone; the `io::Error` wrapping
    /// `Cancelled` in a cancelled region.
    pub async fn connect(&self) -> io::Result<DuplexStream> {
        crate::net::not_cancelled().await?;
        let backlog = self.backlog.upgrade().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "sim::Connector::connect: the listener is gone",
            )
        })?;
        let (client, acceptors) = {
            let mut backlog = backlog.borrow_mut();
            let (client, server) = duplex(backlog.capacity);
            backlog.connections += 1;
            let id = ConnectionId(backlog.connections);
            backlog.queued.push_back((server, id));
            (client, std::mem::take(&mut backlog.acceptors))
        };
        treeloop_executor::wake_all(acceptors);
        Ok(client)
    }
}
