//! `BufWriter`: collects small writes and hands them to the inner stream in large ones.
//!
//! # Ground rules
//!
//! - `buf` holds the bytes accepted and not yet taken by the inner stream, oldest first. A
//!   write is accepted whole or not at all: it returns `Ok(len)` once its bytes are in the
//!   buffer (or, too big to buffer, what the inner stream took of them), `Err` or `Pending`
//!   having accepted nothing.
//! - Writing the buffer out removes from it exactly what the inner stream took, on every
//!   way out (done, `Pending`, an error): a flush that was cut off and retried sends each
//!   byte once, in order.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_io::AsyncWrite;

use super::{DEFAULT_CAPACITY, cancelled};

/// Adds a buffer to a writer: small writes are collected and written out together when the
/// buffer is full, on [`flush`](Self::flush) and on [`close`](Self::close).
///
/// Each poll is a treeloop await point (see the [module docs](super)): in a cancelled region
/// a write accepts nothing, and a flush or a close writes nothing and keeps the buffer. Flush
/// or close in a [`shield`](treeloop_executor::shield) during cleanup: **dropping a `BufWriter`
/// loses the bytes it still holds** (as in std and tokio; a destructor cannot await).
///
/// ```
/// use treeloop::io::BufWriter;
/// use treeloop::{shield, spawn};
///
/// treeloop::block_on(async {
///     let (client, server) = treeloop::sim::duplex(64);
///     let writer = spawn(async move {
///         let mut out = BufWriter::new(client);
///         out.write_all(b"bye\n").await?;
///         // Cancelled here: the flush keeps the buffer...
///         let _ = treeloop::cancelled().await;
///         let err = out.flush().await.unwrap_err();
///         assert!(treeloop::Cancelled::from_io(&err).is_some());
///         assert_eq!(out.buffer(), b"bye\n");
///         // ...and a shielded flush, as cleanup, delivers it.
///         shield(out.flush()).await
///     });
///     treeloop::yield_now().await.unwrap(); // it buffers "bye\n" and waits
///     writer.cancel();
///     writer.await.unwrap().unwrap();
///     let mut got = [0; 4];
///     assert_eq!(server.read(&mut got).await.unwrap(), 4);
///     assert_eq!(&got, b"bye\n");
/// });
/// ```
pub struct BufWriter<W> {
    /// The stream the bytes go to.
    inner: W,
    /// Bytes accepted and not yet taken by `inner`, oldest first.
    buf: Vec<u8>,
    /// The most bytes `buf` holds: a write that would pass it writes the buffer out first.
    capacity: usize,
}

impl<W> BufWriter<W> {
    /// A writer with an 8 KiB buffer.
    pub fn new(inner: W) -> BufWriter<W> {
        BufWriter::with_capacity(DEFAULT_CAPACITY, inner)
    }

    /// A writer with a buffer of `capacity` bytes.
    ///
    /// # Panics
    ///
    /// If `capacity` is zero (use the stream itself for unbuffered writes).
    pub fn with_capacity(capacity: usize, inner: W) -> BufWriter<W> {
        assert!(
            capacity > 0,
            "BufWriter capacity must be at least 1 byte: write to the stream itself to not buffer"
        );
        BufWriter {
            inner,
            buf: Vec::with_capacity(capacity),
            capacity,
        }
    }

    /// The inner stream.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The bytes accepted and not yet written to the inner stream.
    pub fn buffer(&self) -> &[u8] {
        &self.buf
    }

    /// The buffer's size.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Gives back the inner stream, **dropping what is still buffered**: flush first, or use
    /// [`into_parts`](Self::into_parts) to keep those bytes.
    pub fn into_inner(self) -> W {
        self.inner
    }

    /// Gives back the inner stream and the bytes not yet written to it.
    pub fn into_parts(self) -> (W, Vec<u8>) {
        (self.inner, self.buf)
    }
}

impl<W: AsyncWrite + Unpin> BufWriter<W> {
    /// Writes `buf` whole into the buffer, writing the buffer out as it fills. Cut off
    /// midway (an error, a cancellation, a dropped future), what was accepted before stays
    /// accepted and the rest was not: as with the streams' `write_all`, the count is not
    /// reported, so treat the connection as broken or write the message in one piece that
    /// is smaller than the buffer (such a write is accepted whole or not at all).
    pub async fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = poll_fn(|cx| Pin::new(&mut *self).poll_write(cx, buf)).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            buf = &buf[n..];
        }
        Ok(())
    }

    /// Writes the buffer out, then flushes the inner stream. Cut off midway, the buffer
    /// holds exactly what was not written yet: flush again to send it.
    pub async fn flush(&mut self) -> io::Result<()> {
        poll_fn(|cx| Pin::new(&mut *self).poll_flush(cx)).await
    }

    /// Writes the buffer out, then closes the inner stream (for a socket, sends FIN).
    pub async fn close(&mut self) -> io::Result<()> {
        poll_fn(|cx| Pin::new(&mut *self).poll_close(cx)).await
    }

    /// Writes the buffer to the inner stream until it is empty. No cancellation check: the
    /// callers make it.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut written = 0;
        let outcome = loop {
            if written == self.buf.len() {
                break Poll::Ready(Ok(()));
            }
            match Pin::new(&mut self.inner).poll_write(cx, &self.buf[written..]) {
                Poll::Ready(Ok(0)) => break Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => written += n,
                Poll::Ready(Err(err)) => break Poll::Ready(Err(err)),
                Poll::Pending => break Poll::Pending,
            }
        };
        // On every way out: what the stream took leaves the buffer, so no byte goes twice.
        self.buf.drain(..written);
        outcome
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for BufWriter<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(cancelled) = cancelled(cx) {
            return cancelled;
        }
        let this = self.get_mut();
        if this.buf.len() + data.len() > this.capacity {
            ready!(this.poll_write_out(cx))?;
        }
        if data.len() >= this.capacity {
            // Too big to buffer, and the buffer is empty: straight to the stream, in order.
            Pin::new(&mut this.inner).poll_write(cx, data)
        } else {
            this.buf.extend_from_slice(data);
            Poll::Ready(Ok(data.len()))
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(cancelled) = cancelled(cx) {
            return cancelled;
        }
        let this = self.get_mut();
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(cancelled) = cancelled(cx) {
            return cancelled;
        }
        let this = self.get_mut();
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.inner).poll_close(cx)
    }
}

/// Shows how full the buffer is, not its bytes (as std does).
impl<W: fmt::Debug> fmt::Debug for BufWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufWriter")
            .field("inner", &self.inner)
            .field(
                "buffer",
                &format_args!("{}/{}", self.buf.len(), self.capacity),
            )
            .finish()
    }
}
