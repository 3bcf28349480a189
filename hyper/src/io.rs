//! `HyperIo`: any futures-io stream as hyper's `rt::Read` and `rt::Write`.
//!
//! treeloop's sockets (and `sim` streams, and TLS streams from futures-rustls) speak
//! futures-io; hyper 1.x has traits of its own. The adapter forwards writes as they are and
//! reads through a small buffer of its own.
//!
//! # Why reads copy
//!
//! hyper hands a read a `ReadBufCursor` over memory that may be uninitialised; writing into
//! it directly needs `unsafe` (that is what hyper-util's `TokioIo` does). treeloop forbids
//! `unsafe`, so the adapter reads into an initialised scratch buffer of its own and copies
//! what arrived into hyper's buffer with the safe `put_slice`: one `memcpy` of the bytes
//! read, no zeroing per read. The scratch grows, once per connection, to the room hyper
//! offers (16 KiB on a GET connection, 32 KiB on one receiving 16 KiB bodies), up to
//! [`SCRATCH`].
//!
//! Measured with `benches/http/` (hyper on treeloop and on tokio under wrk, see
//! benches/README.md, "The read copy and the read size"): for `GET /` the copy is 11 of
//! about 9,000 instructions per request; for 16 KiB POST bodies it is 4.3% of the server's
//! CPU (perf), hidden in the noise of requests/s (1.02x and 1.14x tokio in two runs). What
//! did cost was the first cap of 8 KiB per read: three `recvfrom` calls per 16 KiB request
//! where tokio makes one, 0.79x-0.87x tokio; with [`SCRATCH`] at 64 KiB, one, as on tokio.
//! Zero-copy would need `unsafe` for those 4%: not done.
//!
//! # Ground rules
//!
//! - Bytes given to [`HyperIo::with_prefix`] (read already, e.g. to sniff the protocol) are
//!   returned by the first reads, before anything is read from the stream.
//! - A cancelled read or write fails with the `io::Error` wrapping `Cancelled`, as treeloop
//!   sockets do; hyper then fails the connection. `serve` runs connections where the
//!   outside's cancellation is hidden, and drains them instead (see `serve`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};
use hyper::rt::{Read, ReadBufCursor, Write};

/// The most one read of the adapter asks the stream for: 64 KiB, so a request body of
/// a few KiB arrives in one `recvfrom`, as it does when hyper reads into its own buffer.
pub const SCRATCH: usize = 64 * 1024;

/// A futures-io stream as a hyper connection's I/O.
#[derive(Debug)]
pub struct HyperIo<T> {
    /// The stream.
    io: T,
    /// Bytes to return before reading from the stream, and how many of them were returned.
    prefix: Option<(Vec<u8>, usize)>,
    /// Where reads land before they are copied into hyper's buffer; grows to the room
    /// hyper offers, at most [`SCRATCH`] bytes.
    scratch: Vec<u8>,
}

impl<T> HyperIo<T> {
    /// Wraps `io`.
    pub fn new(io: T) -> HyperIo<T> {
        HyperIo {
            io,
            prefix: None,
            scratch: Vec::new(),
        }
    }

    /// Wraps `io`, whose first bytes, `prefix`, were read already.
    pub fn with_prefix(io: T, prefix: Vec<u8>) -> HyperIo<T> {
        HyperIo {
            io,
            prefix: (!prefix.is_empty()).then_some((prefix, 0)),
            scratch: Vec::new(),
        }
    }

    /// The stream.
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// The stream, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.io
    }

    /// The stream, unwrapped (any prefix not read yet is lost).
    pub fn into_inner(self) -> T {
        self.io
    }
}

impl<T: AsyncRead + Unpin> Read for HyperIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some((prefix, taken)) = &mut this.prefix {
            let n = buf.remaining().min(prefix.len() - *taken);
            buf.put_slice(&prefix[*taken..*taken + n]);
            *taken += n;
            if *taken == prefix.len() {
                this.prefix = None;
            }
            return Poll::Ready(Ok(()));
        }
        let want = buf.remaining().min(SCRATCH);
        if this.scratch.len() < want {
            this.scratch.resize(want, 0);
        }
        match Pin::new(&mut this.io).poll_read(cx, &mut this.scratch[..want]) {
            Poll::Ready(Ok(n)) => {
                buf.put_slice(&this.scratch[..n]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> Write for HyperIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_close(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}
