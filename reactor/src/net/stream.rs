//! The byte-stream surface shared by TCP, Unix and in-memory streams: reads and writes as
//! await points through `&self`, the `futures-io` traits, and split halves.
//!
//! Every stream type implements `AsyncRead`/`AsyncWrite` for `&Stream` (a socket through
//! [`IoSource`], `sim::DuplexStream` through its in-memory pipes) and gets the rest from
//! `impl_stream_api!`: inherent `read`/`write`/`write_all`, the traits on the owned stream
//! (delegating to `&Stream`, so a reader and a writer can share one), and `into_split`.
//! So `TcpStream`, `UnixStream` and `DuplexStream` have the same method shapes, and code
//! written against one reads the same against the others. A cancelled read consumes no
//! bytes and a cancelled write writes nothing: the cancellation check comes before the
//! transfer.
//!
//! [`IoSource`]: crate::io::source::IoSource

use std::fmt;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};

/// The read half of a stream split with `into_split`: owns a share of the stream.
#[derive(Debug)]
pub struct ReadHalf<S> {
    /// The stream, shared with the write half.
    stream: Rc<S>,
}

/// The write half of a stream split with `into_split`. Dropping it does not shut the
/// stream down; call `shutdown` on it (or on the stream) for that.
#[derive(Debug)]
pub struct WriteHalf<S> {
    /// The stream, shared with the read half.
    stream: Rc<S>,
}

/// Splits `stream` into halves that can be used by two tasks at once.
pub(crate) fn split<S>(stream: S) -> (ReadHalf<S>, WriteHalf<S>) {
    let stream = Rc::new(stream);
    (
        ReadHalf {
            stream: stream.clone(),
        },
        WriteHalf { stream },
    )
}

impl<S> ReadHalf<S> {
    /// The stream both halves share.
    pub fn stream(&self) -> &S {
        &self.stream
    }

    /// Reads into `buf`, like the stream's own `read` (an await point; a cancelled read
    /// consumes nothing).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize>
    where
        for<'a> &'a S: AsyncRead,
    {
        std::future::poll_fn(|cx| Pin::new(&mut &*self.stream).poll_read(cx, buf)).await
    }

    /// Puts the stream back together from the two halves it was split into.
    ///
    /// # Errors
    ///
    /// [`ReuniteError`], holding both halves, if `write` came from another stream.
    pub fn reunite(self, write: WriteHalf<S>) -> Result<S, ReuniteError<Self, WriteHalf<S>>> {
        if !Rc::ptr_eq(&self.stream, &write.stream) {
            return Err(ReuniteError(self, write));
        }
        drop(write);
        Ok(Rc::into_inner(self.stream).expect("the two halves held the only shares"))
    }
}

impl<S> WriteHalf<S> {
    /// The stream both halves share.
    pub fn stream(&self) -> &S {
        &self.stream
    }

    /// Writes from `buf`, like the stream's own `write` (a cancelled write writes nothing).
    pub async fn write(&self, buf: &[u8]) -> io::Result<usize>
    where
        for<'a> &'a S: AsyncWrite,
    {
        std::future::poll_fn(|cx| Pin::new(&mut &*self.stream).poll_write(cx, buf)).await
    }

    /// Writes all of `buf`, like the stream's own `write_all`.
    pub async fn write_all(&self, buf: &[u8]) -> io::Result<()>
    where
        for<'a> &'a S: AsyncWrite,
    {
        write_all(&*self.stream, buf).await
    }
}

/// The halves given to a `reunite` ([`ReadHalf::reunite`], or that of
/// `treeloop::io::split`'s halves) came from two different streams; both are handed back.
pub struct ReuniteError<R, W>(pub R, pub W);

impl<R, W> fmt::Debug for ReuniteError<R, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReuniteError(..)")
    }
}

impl<R, W> fmt::Display for ReuniteError<R, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tried to reunite the halves of two different streams")
    }
}

impl<R, W> std::error::Error for ReuniteError<R, W> {}

impl<S> AsyncRead for ReadHalf<S>
where
    for<'a> &'a S: AsyncRead,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.stream).poll_read(cx, buf)
    }
}

impl<S> AsyncWrite for WriteHalf<S>
where
    for<'a> &'a S: AsyncWrite,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.stream).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.stream).poll_close(cx)
    }
}

/// The method shapes every treeloop byte stream shares (TCP, Unix, `sim::DuplexStream`):
/// `read`, `write`, `write_all` through `&self`, `into_split`, and the futures-io traits on
/// the owned stream, all in terms of the stream's `AsyncRead`/`AsyncWrite` for `&Stream`
/// (which each type implements itself, with its own `shutdown`).
macro_rules! impl_stream_api {
    ($name:ident) => {
        impl $name {
            /// Reads into `buf`; `Ok(0)` at end of stream. A treeloop await point: in a
            /// cancelled region it fails with an `io::Error` wrapping `Cancelled` and reads
            /// nothing.
            pub async fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
                std::future::poll_fn(|cx| {
                    futures_io::AsyncRead::poll_read(std::pin::Pin::new(&mut &*self), cx, buf)
                })
                .await
            }

            /// Writes from `buf`, returning how much was written. A cancelled write writes
            /// nothing.
            pub async fn write(&self, buf: &[u8]) -> std::io::Result<usize> {
                std::future::poll_fn(|cx| {
                    futures_io::AsyncWrite::poll_write(std::pin::Pin::new(&mut &*self), cx, buf)
                })
                .await
            }

            /// Writes all of `buf`. If cancelled midway, returns the error; what was written
            /// before stays written.
            pub async fn write_all(&self, buf: &[u8]) -> std::io::Result<()> {
                crate::net::stream::write_all(self, buf).await
            }

            /// Splits the stream into halves two tasks can use at once (each half shares
            /// the stream; [`ReadHalf::reunite`](crate::net::ReadHalf::reunite) puts it
            /// back together).
            pub fn into_split(
                self,
            ) -> (
                crate::net::stream::ReadHalf<Self>,
                crate::net::stream::WriteHalf<Self>,
            ) {
                crate::net::stream::split(self)
            }
        }

        impl futures_io::AsyncRead for $name {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut &*self).poll_read(cx, buf)
            }
        }

        impl futures_io::AsyncWrite for $name {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut &*self).poll_write(cx, buf)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut &*self).poll_flush(cx)
            }

            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut &*self).poll_close(cx)
            }
        }
    };
}

/// Implements the stream API for a socket newtype `$name(IoSource<$mio>)`: the futures-io
/// traits for `&$name` through the reactor, `shutdown`, and [`impl_stream_api`].
macro_rules! impl_socket_stream {
    ($name:ident) => {
        crate::net::stream::impl_stream_api!($name);

        impl $name {
            /// Shuts down the read, write, or both halves of the connection.
            /// `Shutdown::Write` sends FIN: the peer reads end of stream, and this side can
            /// still read what the peer sends (the descriptor stays open until the stream
            /// is dropped).
            pub fn shutdown(&self, how: std::net::Shutdown) -> std::io::Result<()> {
                self.0.get_ref().shutdown(how)
            }
        }

        impl futures_io::AsyncRead for &$name {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let len = buf.len();
                self.0.poll_transfer(cx, Direction::Read, len, |s| {
                    std::io::Read::read(&mut &*s, buf)
                })
            }
        }

        impl futures_io::AsyncWrite for &$name {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.0.poll_transfer(cx, Direction::Write, buf.len(), |s| {
                    std::io::Write::write(&mut &*s, buf)
                })
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                // Sockets have no user-space buffer to flush.
                std::task::Poll::Ready(Ok(()))
            }

            /// Half-closes the connection: `shutdown(Shutdown::Write)`, which sends FIN.
            /// It does not close the descriptor (dropping the stream does) and reading
            /// goes on. A connection the peer has already torn down (`NotConnected`) has
            /// nothing left to close: that is success, as protocol stacks closing after a
            /// goodbye expect (hyper's HTTP/2 after GOAWAY, whose client may hang up
            /// first).
            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(match self.shutdown(std::net::Shutdown::Write) {
                    Err(err) if err.kind() == std::io::ErrorKind::NotConnected => Ok(()),
                    closed => closed,
                })
            }
        }
    };
}

/// `write_all` for every stream: writes until `buf` is gone; `WriteZero` if a write takes
/// nothing.
pub(crate) async fn write_all<S: ?Sized>(stream: &S, mut buf: &[u8]) -> io::Result<()>
where
    for<'a> &'a S: AsyncWrite,
{
    while !buf.is_empty() {
        let n = std::future::poll_fn(|cx| Pin::new(&mut &*stream).poll_write(cx, buf)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
    }
    Ok(())
}

pub(crate) use impl_socket_stream;
pub(crate) use impl_stream_api;
