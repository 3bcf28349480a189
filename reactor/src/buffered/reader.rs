//! `BufReader`: reads the inner stream a buffer at a time, so `fill_buf`/`consume` users
//! (lines, frames) see the bytes without a read per byte.
//!
//! # Ground rules
//!
//! - `buf[pos..filled]` is what has been read and not yet consumed; the inner stream is
//!   read only when that is empty, and a read that fails leaves it empty (nothing to lose).
//! - A read at least as big as the buffer, with nothing buffered, goes straight to the inner
//!   stream: copying through the buffer would only cost a copy.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_io::{AsyncBufRead, AsyncRead};

use super::{DEFAULT_CAPACITY, cancelled};

/// Adds a buffer to a reader: implements `AsyncBufRead`, which [`Lines`](super::Lines),
/// [`read_until`](super::AsyncBufReadExt::read_until) and
/// [`read_line`](super::AsyncBufReadExt::read_line) need.
///
/// Each poll is a treeloop await point (see the [module docs](super)): in a cancelled region
/// it fails before handing out a buffered byte or reading the stream.
///
/// ```
/// use treeloop::io::{AsyncBufReadExt, BufReader};
///
/// treeloop::block_on(async {
///     let (client, server) = treeloop::sim::duplex(64);
///     client.write_all(b"one\ntwo\n").await.unwrap();
///     let mut reader = BufReader::new(server);
///     let mut line = Vec::new();
///     assert_eq!(reader.read_until(b'\n', &mut line).await.unwrap(), 4);
///     assert_eq!(line, b"one\n");
///     // One read of the duplex took both lines: the second waits in the buffer.
///     assert_eq!(reader.buffer(), b"two\n");
/// });
/// ```
pub struct BufReader<R> {
    /// The stream the bytes come from.
    inner: R,
    /// The buffer; its length is the capacity.
    buf: Box<[u8]>,
    /// Where the bytes read and not yet consumed start.
    pos: usize,
    /// Where they end: `buf[pos..filled]` is what `poll_fill_buf` returns.
    filled: usize,
}

impl<R> BufReader<R> {
    /// A reader with an 8 KiB buffer.
    pub fn new(inner: R) -> BufReader<R> {
        BufReader::with_capacity(DEFAULT_CAPACITY, inner)
    }

    /// A reader with a buffer of `capacity` bytes.
    ///
    /// # Panics
    ///
    /// If `capacity` is zero (every fill would read nothing and look like end of stream).
    pub fn with_capacity(capacity: usize, inner: R) -> BufReader<R> {
        assert!(
            capacity > 0,
            "BufReader capacity must be at least 1 byte (a zero-size one reads only end of stream)"
        );
        BufReader {
            inner,
            buf: vec![0; capacity].into_boxed_slice(),
            pos: 0,
            filled: 0,
        }
    }

    /// The inner stream.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The inner stream. Reading from it directly skips what is buffered (see
    /// [`buffer`](Self::buffer)): those bytes would then come out of order.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The bytes read from the stream and not yet consumed.
    pub fn buffer(&self) -> &[u8] {
        &self.buf[self.pos..self.filled]
    }

    /// The buffer's size.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Gives back the inner stream. What is still buffered is dropped: copy
    /// [`buffer`](Self::buffer) first if it matters.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: AsyncRead + Unpin> BufReader<R> {
    /// The buffered bytes, reading the stream first if there are none. No cancellation check:
    /// the callers make it.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        if self.pos == self.filled {
            let n = ready!(Pin::new(&mut self.inner).poll_read(cx, &mut self.buf))?;
            self.pos = 0;
            self.filled = n;
        }
        Poll::Ready(Ok(&self.buf[self.pos..self.filled]))
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for BufReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(cancelled) = cancelled(cx) {
            return cancelled;
        }
        let this = self.get_mut();
        if this.pos == this.filled && out.len() >= this.buf.len() {
            return Pin::new(&mut this.inner).poll_read(cx, out);
        }
        let available = ready!(this.poll_fill(cx))?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        this.pos += n;
        Poll::Ready(Ok(n))
    }
}

impl<R: AsyncRead + Unpin> AsyncBufRead for BufReader<R> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        if let Some(cancelled) = cancelled(cx) {
            return cancelled;
        }
        self.get_mut().poll_fill(cx)
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        this.pos = (this.pos + amt).min(this.filled);
    }
}

/// Shows how full the buffer is, not its bytes (as std does).
impl<R: fmt::Debug> fmt::Debug for BufReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufReader")
            .field("inner", &self.inner)
            .field(
                "buffer",
                &format_args!("{}/{}", self.filled - self.pos, self.buf.len()),
            )
            .finish()
    }
}
