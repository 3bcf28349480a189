//! `duplex()`: two connected in-memory byte streams.
//!
//! Each direction is a `Pipe`: a bounded buffer, the state of its two ends, and the
//! waker of a blocked reader and of a blocked writer. Both ends implement `futures-io`'s
//! `AsyncRead`/`AsyncWrite` for `&DuplexStream` and get the rest of the stream surface
//! (`read`/`write`/`write_all` through `&self`, `into_split`) from the macro the sockets
//! use, so the shapes cannot drift apart.
//!
//! Invariants: the buffer never holds more than `capacity` bytes; an end only moves from
//! `Open` to `Closed` or `Reset`, never back; a reset end reports `ConnectionReset` to the
//! other side before any buffered byte (as TCP discards on RST).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use futures_io::{AsyncRead, AsyncWrite};
use treeloop_executor::{coop, poll_cancelled};

use crate::net::stream::impl_stream_api;

/// Whether an end of a pipe is still there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// Open.
    Open,
    /// Closed (dropped, or shut down): a reader sees end of stream, a writer `BrokenPipe`.
    Closed,
    /// Torn down abruptly (a connection that was never accepted when its listener went
    /// away): the other side sees `ConnectionReset`.
    Reset,
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
/// ```
/// use std::net::Shutdown;
/// use treeloop::sim::duplex;
/// use treeloop::spawn;
///
/// treeloop::block_on(async {
///     let (client, server) = duplex(4);
///     // 4 bytes fit in the buffer: the writer waits for the reader to make room.
///     let writer = spawn(async move {
///         client.write_all(b"ping pong").await.unwrap();
///         client.shutdown(Shutdown::Write).unwrap();
///     });
///     let mut received = Vec::new();
///     let mut buf = [0; 16];
///     loop {
///         let n = server.read(&mut buf).await.unwrap();
///         if n == 0 {
///             break; // the writer's half-close
///         }
///         assert!(n <= 4);
///         received.extend_from_slice(&buf[..n]);
///     }
///     assert_eq!(received, b"ping pong");
///     writer.await.unwrap();
/// });
/// ```
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

impl_stream_api!(DuplexStream);

impl DuplexStream {
    /// Shuts down the read, write, or both directions. `Shutdown::Write` is a half-close:
    /// the peer reads end of stream once it has read what was sent, and this end can still
    /// read. `Shutdown::Read`: this end reads end of stream, and the peer's writes fail
    /// with `BrokenPipe` (stricter than TCP, where they would vanish unread).
    pub fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        use std::net::Shutdown;
        if matches!(how, Shutdown::Write | Shutdown::Both) {
            end_pipe(&self.outgoing, End::Closed, |pipe| &mut pipe.writer);
        }
        if matches!(how, Shutdown::Read | Shutdown::Both) {
            end_pipe(&self.incoming, End::Closed, |pipe| &mut pipe.reader);
        }
        Ok(())
    }

    /// Tears the connection down abruptly: the peer's next read and write fail with
    /// `ConnectionReset`.
    pub(crate) fn reset(self) {
        end_pipe(&self.outgoing, End::Reset, |pipe| &mut pipe.writer);
        end_pipe(&self.incoming, End::Reset, |pipe| &mut pipe.reader);
    }
}

/// Polls `op` on `pipe` as an await point: the cancellation check first, then the budget.
pub(super) fn await_point<R>(
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

impl AsyncRead for &DuplexStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        await_point(cx, |cx| {
            let mut pipe = self.incoming.borrow_mut();
            if pipe.writer == End::Reset {
                return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
            }
            if pipe.reader != End::Open {
                return Poll::Ready(Ok(0));
            }
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

impl AsyncWrite for &DuplexStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        await_point(cx, |cx| {
            let mut pipe = self.outgoing.borrow_mut();
            if pipe.reader == End::Reset {
                return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
            }
            if pipe.reader != End::Open || pipe.writer != End::Open {
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

    /// Half-closes: `shutdown(Shutdown::Write)`, so the peer reads end of stream.
    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.shutdown(std::net::Shutdown::Write))
    }
}

/// Moves one end of `pipe` from `Open` to `to` (an end that is already closed or reset
/// stays as it is) and wakes both sides to notice.
fn end_pipe(pipe: &Rc<RefCell<Pipe>>, to: End, end: impl FnOnce(&mut Pipe) -> &mut End) {
    let wakers = {
        let mut pipe = pipe.borrow_mut();
        let end = end(&mut pipe);
        if *end == End::Open {
            *end = to;
        }
        [pipe.read_waker.take(), pipe.write_waker.take()]
    };
    treeloop_executor::wake_all(wakers.into_iter().flatten());
}

impl Drop for DuplexStream {
    fn drop(&mut self) {
        end_pipe(&self.outgoing, End::Closed, |pipe| &mut pipe.writer);
        end_pipe(&self.incoming, End::Closed, |pipe| &mut pipe.reader);
    }
}
