//! In-memory streams for deterministic simulations: `duplex()`.
//!
//! Real sockets make a seeded run unreproducible (the OS decides when bytes arrive). A
//! duplex is two connected byte streams in memory: what one writes the other reads, in the
//! order the scheduler runs them, so a seed replays exactly. Both ends implement
//! `futures-io`'s `AsyncRead`/`AsyncWrite` and are treeloop await points: in a cancelled
//! region a read fails without consuming anything and a write fails without writing.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use futures_io::{AsyncRead, AsyncWrite};
use treeloop_executor::{coop, poll_cancelled};

/// Whether an end of a pipe is still there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// Open.
    Open,
    /// Closed (dropped, or the writer shut down): the reader sees end of stream, the writer
    /// `BrokenPipe`.
    Closed,
}

/// One direction: bytes written by one end, waiting to be read by the other.
#[derive(Debug)]
struct Pipe {
    /// Bytes in flight.
    buffer: VecDeque<u8>,
    /// Most bytes in flight before a writer waits.
    capacity: usize,
    /// The writing end.
    writer: End,
    /// The reading end.
    reader: End,
    /// A reader waiting for bytes.
    read_waker: Option<Waker>,
    /// A writer waiting for room.
    write_waker: Option<Waker>,
}

impl Pipe {
    fn new(capacity: usize) -> Rc<RefCell<Pipe>> {
        Rc::new(RefCell::new(Pipe {
            buffer: VecDeque::new(),
            capacity,
            writer: End::Open,
            reader: End::Open,
            read_waker: None,
            write_waker: None,
        }))
    }
}

/// One end of an in-memory duplex stream; see [`duplex`].
#[derive(Debug)]
pub struct DuplexStream {
    /// What the peer writes to us.
    incoming: Rc<RefCell<Pipe>>,
    /// What we write to the peer.
    outgoing: Rc<RefCell<Pipe>>,
}

/// Two connected in-memory streams, each direction buffering up to `capacity` bytes.
///
/// # Panics
///
/// If `capacity` is zero (nothing could ever be written).
pub fn duplex(capacity: usize) -> (DuplexStream, DuplexStream) {
    assert!(capacity > 0, "duplex capacity must be at least 1 byte");
    let (a_to_b, b_to_a) = (Pipe::new(capacity), Pipe::new(capacity));
    (
        DuplexStream {
            incoming: b_to_a.clone(),
            outgoing: a_to_b.clone(),
        },
        DuplexStream {
            incoming: a_to_b,
            outgoing: b_to_a,
        },
    )
}

impl DuplexStream {
    /// Reads into `buf`; `Ok(0)` once the peer closed its writing side and all was read.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_read(cx, buf)).await
    }

    /// Writes some of `buf`, waiting for room; `BrokenPipe` once the peer is gone.
    pub async fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_write(cx, buf)).await
    }

    /// Writes all of `buf`.
    pub async fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = self.write(buf).await?;
            buf = &buf[n..];
        }
        Ok(())
    }
}

/// Polls `op` on `pipe` as an await point: the cancellation check first, then the budget.
fn await_point<R>(
    cx: &mut Context<'_>,
    op: impl FnOnce(&mut Context<'_>) -> Poll<io::Result<R>>,
) -> Poll<io::Result<R>> {
    if let Some(cancelled) = poll_cancelled(cx) {
        return cancelled.map(|cancelled| Err(cancelled.into()));
    }
    if coop::poll_proceed(cx).is_pending() {
        return Poll::Pending;
    }
    let polled = op(cx);
    if polled.is_pending() {
        coop::refund();
    }
    polled
}

impl AsyncRead for DuplexStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        await_point(cx, |cx| {
            let mut pipe = self.incoming.borrow_mut();
            if pipe.buffer.is_empty() {
                if pipe.writer == End::Closed || buf.is_empty() {
                    return Poll::Ready(Ok(0));
                }
                pipe.read_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let n = buf.len().min(pipe.buffer.len());
            for (slot, byte) in buf.iter_mut().zip(pipe.buffer.drain(..n)) {
                *slot = byte;
            }
            let waker = pipe.write_waker.take();
            drop(pipe);
            if let Some(waker) = waker {
                waker.wake();
            }
            Poll::Ready(Ok(n))
        })
    }
}

impl AsyncWrite for DuplexStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        await_point(cx, |cx| {
            let mut pipe = self.outgoing.borrow_mut();
            if pipe.reader == End::Closed || pipe.writer == End::Closed {
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
            let room = pipe.capacity - pipe.buffer.len();
            if room == 0 {
                pipe.write_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let n = room.min(buf.len());
            pipe.buffer.extend(&buf[..n]);
            let waker = pipe.read_waker.take();
            drop(pipe);
            if let Some(waker) = waker {
                waker.wake();
            }
            Poll::Ready(Ok(n))
        })
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Shuts down the writing direction: the peer reads end of stream.
    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        close(&self.outgoing, |pipe| &mut pipe.writer);
        Poll::Ready(Ok(()))
    }
}

/// Marks one end of `pipe` closed and wakes both sides to notice.
fn close(pipe: &Rc<RefCell<Pipe>>, end: impl FnOnce(&mut Pipe) -> &mut End) {
    let wakers = {
        let mut pipe = pipe.borrow_mut();
        *end(&mut pipe) = End::Closed;
        [pipe.read_waker.take(), pipe.write_waker.take()]
    };
    treeloop_executor::wake_all(wakers.into_iter().flatten());
}

impl Drop for DuplexStream {
    fn drop(&mut self) {
        close(&self.outgoing, |pipe| &mut pipe.writer);
        close(&self.incoming, |pipe| &mut pipe.reader);
    }
}
