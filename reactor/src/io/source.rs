//! `IoSource`: a mio source registered with the running reactor, and the one loop every
//! socket operation goes through.
//!
//! ```text
//!   cancelled? ──yes──> Err(io::Error wrapping Cancelled)   (nothing attempted: R7)
//!      │ no
//!   budget left? ──no──> yield
//!      │
//!   ready (cached)? ──no──> store waker, Pending
//!      │ yes
//!   try the syscall ──WouldBlock──> clear the cached readiness, look again
//!      │ done
//!   Ready(result)
//! ```

use std::io;
use std::task::{Context, Poll};

use mio::Interest;
use mio::event::Source;
use treeloop_executor::{coop, poll_cancelled};

use crate::context::{RealIo, with_reactor};
use crate::io::slots::{Direction, Refuted, SlotKey};

/// A non-blocking I/O object registered with the reactor of the runtime it was created in.
#[derive(Debug)]
pub(crate) struct IoSource<T: Source> {
    /// The mio object; `None` only while being dropped.
    io: Option<T>,
    /// Its readiness slot.
    key: SlotKey,
}

impl<T: Source> IoSource<T> {
    /// Registers `io` for reading and writing, once, edge-triggered.
    pub(crate) fn new(mut io: T) -> io::Result<IoSource<T>> {
        sockets_allowed()?;
        let registered = with_reactor(|reactor| {
            let key = reactor.io.borrow_mut().insert();
            let interest = Interest::READABLE | Interest::WRITABLE;
            match reactor.registry.register(&mut io, key.token(), interest) {
                Ok(()) => Ok(key),
                Err(err) => {
                    reactor.io.borrow_mut().remove(key);
                    Err(err)
                }
            }
        });
        let key = registered.unwrap_or_else(|| Err(no_runtime()))?;
        Ok(IoSource { io: Some(io), key })
    }

    pub(crate) fn get_ref(&self) -> &T {
        self.io.as_ref().expect("present until drop")
    }

    /// Runs `op` when `dir` is ready, as a treeloop await point (see the module docs).
    pub(crate) fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        if let Some(cancelled) = poll_cancelled(cx) {
            return cancelled.map(|cancelled| Err(cancelled.into()));
        }
        if coop::poll_proceed(cx).is_pending() {
            return Poll::Pending;
        }
        loop {
            let ready = with_reactor(|reactor| {
                reactor
                    .io
                    .borrow_mut()
                    .poll_ready(self.key, dir, cx.waker())
            })
            .unwrap_or(true);
            if !ready {
                coop::refund();
                return Poll::Pending;
            }
            match op(self.get_ref()) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    with_reactor(|reactor| {
                        reactor
                            .io
                            .borrow_mut()
                            .clear(self.key, dir, Refuted::WouldBlock)
                    });
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                done => return Poll::Ready(done),
            }
        }
    }

    /// [`poll_io`](Self::poll_io) for a byte-stream read or write of `len` bytes.
    ///
    /// Optimisation: a short transfer (`0 < n < len`) means the socket buffer was drained (or
    /// filled) at that moment, so the cached readiness is cleared at once: the next operation
    /// waits for the next edge instead of paying a syscall to learn `WouldBlock` (one
    /// `read` or `write` saved per message on a request/response connection, as in the
    /// tcp_echo benchmark). Safe with edge-triggered epoll: anything that arrives after the
    /// short read raises a new edge, and a close that already arrived is remembered apart
    /// (see `Ready`), since it raises no further edge. The model without it is
    /// [`poll_io`](Self::poll_io) alone: a reader may skip this one.
    pub(crate) fn poll_transfer(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        len: usize,
        op: impl FnMut(&T) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        let polled = self.poll_io(cx, dir, op);
        if let Poll::Ready(Ok(n)) = polled {
            if n > 0 && n < len {
                with_reactor(|reactor| {
                    reactor
                        .io
                        .borrow_mut()
                        .clear(self.key, dir, Refuted::ShortTransfer)
                });
            }
        }
        polled
    }

    /// [`poll_io`](Self::poll_io) as a future.
    pub(crate) async fn io<R>(
        &self,
        dir: Direction,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> io::Result<R> {
        std::future::poll_fn(|cx| self.poll_io(cx, dir, &mut op)).await
    }
}

/// Whether a socket may be created here: inside a runtime, and not a seeded one that
/// refuses real I/O. Checked *before* the OS call that makes the socket, so a refused
/// connect reaches no listener and a refused Unix bind leaves no socket file.
pub(crate) fn sockets_allowed() -> io::Result<()> {
    match with_reactor(|reactor| reactor.real_io) {
        Some(RealIo::Allowed) => Ok(()),
        Some(RealIo::Refused) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "real sockets make a seeded (deterministic) run unreproducible: use \
             `treeloop::sim::duplex()` or `treeloop::sim::listener()` for in-memory \
             streams, or `Builder::allow_real_io(true)` to accept a non-reproducible run",
        )),
        None => Err(no_runtime()),
    }
}

/// The error for a socket made outside a runtime, naming the fix.
fn no_runtime() -> io::Error {
    io::Error::other(
        "treeloop sockets must be created inside a treeloop runtime: call this inside \
         `treeloop::block_on` (or a task spawned from it)",
    )
}

impl<T: Source> Drop for IoSource<T> {
    fn drop(&mut self) {
        let Some(mut io) = self.io.take() else { return };
        let key = self.key;
        // Outside the runtime (dropped after it) the fd's close removes it from epoll.
        with_reactor(|reactor| {
            let _ = reactor.registry.deregister(&mut io);
            reactor.io.borrow_mut().remove(key);
        });
    }
}
