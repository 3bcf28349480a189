//! `split`: a read half and a write half, for two tasks, out of any futures-io stream.
//!
//! treeloop's own streams split with `into_split` (both halves share the stream through an
//! `Rc`, since their reads and writes go through `&self`). A stream of another library (a
//! TLS stream, a compression layer) reads and writes through `&mut self`; this split shares
//! it through an `Rc<RefCell<_>>` instead. Everything runs on one thread and a half borrows
//! the stream only inside one `poll_*` call, never across an await, so the two halves never
//! hold the borrow at the same time.

use std::cell::RefCell;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};

pub use crate::net::ReuniteError;

/// Splits `stream` into a [`ReadHalf`] and a [`WriteHalf`] that two tasks can use at once
/// (a reader task and a writer task per connection, say).
///
/// ```
/// use treeloop::io::{AsyncBufReadExt, BufReader};
///
/// treeloop::block_on(async {
///     let (client, server) = treeloop::sim::duplex(64);
///     let (reader, writer) = treeloop::io::split(server);
///     let echo = treeloop::spawn(async move {
///         let mut lines = BufReader::new(reader).lines();
///         while let Some(line) = lines.next_line().await? {
///             writer.write_all(format!("{line}!\n").as_bytes()).await?;
///         }
///         writer.close().await
///     });
///     client.write_all(b"hi\n").await?;
///     client.shutdown(std::net::Shutdown::Write)?;
///     let mut reply = [0; 8];
///     let n = client.read(&mut reply).await?;
///     assert_eq!(&reply[..n], b"hi!\n");
///     echo.await.unwrap()
/// })
/// .unwrap();
/// ```
pub fn split<S>(stream: S) -> (ReadHalf<S>, WriteHalf<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let stream = Rc::new(RefCell::new(stream));
    (
        ReadHalf {
            stream: stream.clone(),
        },
        WriteHalf { stream },
    )
}

/// The reading half of a stream split with [`split`].
pub struct ReadHalf<S> {
    /// The stream, shared with the write half.
    stream: Rc<RefCell<S>>,
}

/// The writing half of a stream split with [`split`]. Dropping it does not close the
/// stream; call [`close`](WriteHalf::close) for that.
pub struct WriteHalf<S> {
    /// The stream, shared with the read half.
    stream: Rc<RefCell<S>>,
}

impl<S: AsyncRead + Unpin> ReadHalf<S> {
    /// Reads into `buf`; `Ok(0)` at end of stream. Cancellation is the stream's: treeloop's
    /// streams fail in a cancelled region and read nothing.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| Pin::new(&mut *self.stream.borrow_mut()).poll_read(cx, buf)).await
    }

    /// Puts the stream back together.
    ///
    /// # Errors
    ///
    /// [`ReuniteError`], holding both halves, if `write` came from another stream.
    pub fn reunite(self, write: WriteHalf<S>) -> Result<S, ReuniteError<Self, WriteHalf<S>>> {
        if !Rc::ptr_eq(&self.stream, &write.stream) {
            return Err(ReuniteError(self, write));
        }
        drop(write);
        let stream = Rc::into_inner(self.stream).expect("the two halves held the only shares");
        Ok(stream.into_inner())
    }
}

impl<S: AsyncWrite + Unpin> WriteHalf<S> {
    /// Writes from `buf`, returning how much was written.
    pub async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| Pin::new(&mut *self.stream.borrow_mut()).poll_write(cx, buf)).await
    }

    /// Writes all of `buf`; cut off midway, what was written stays written.
    pub async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write(buf).await? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => buf = &buf[n..],
            }
        }
        Ok(())
    }

    /// Flushes the stream.
    pub async fn flush(&self) -> io::Result<()> {
        poll_fn(|cx| Pin::new(&mut *self.stream.borrow_mut()).poll_flush(cx)).await
    }

    /// Closes the stream's writing side (for treeloop's streams, a half-close: the peer
    /// reads end of stream, and the read half goes on reading).
    pub async fn close(&self) -> io::Result<()> {
        poll_fn(|cx| Pin::new(&mut *self.stream.borrow_mut()).poll_close(cx)).await
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadHalf<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.stream.borrow_mut()).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteHalf<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.stream.borrow_mut()).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.stream.borrow_mut()).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.stream.borrow_mut()).poll_close(cx)
    }
}

impl<S> fmt::Debug for ReadHalf<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReadHalf(..)")
    }
}

impl<S> fmt::Debug for WriteHalf<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WriteHalf(..)")
    }
}
