//! The byte-stream half shared by TCP and Unix streams: reads and writes as await points,
//! `futures-io` traits, and split halves.
//!
//! Each stream type is a thin newtype over [`IoSource`]; the `impl_stream!` macro gives it
//! `read`/`write`/`flush`, `AsyncRead`/`AsyncWrite` for the stream and for `&stream` (so a
//! reader and a writer can share it), and `into_split`. A cancelled read consumes no bytes
//! and a cancelled write writes nothing: the cancellation check comes before the syscall.

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
}

impl<S> WriteHalf<S> {
    /// The stream both halves share.
    pub fn stream(&self) -> &S {
        &self.stream
    }
}

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

/// Implements the stream API for a newtype `$name(IoSource<$mio>)`.
macro_rules! impl_stream {
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
            pub async fn write_all(&self, mut buf: &[u8]) -> std::io::Result<()> {
                while !buf.is_empty() {
                    let n = self.write(buf).await?;
                    if n == 0 {
                        return Err(std::io::ErrorKind::WriteZero.into());
                    }
                    buf = &buf[n..];
                }
                Ok(())
            }

            /// Shuts down the read, write, or both halves of the connection.
            pub fn shutdown(&self, how: std::net::Shutdown) -> std::io::Result<()> {
                self.0.get_ref().shutdown(how)
            }

            /// Splits the stream into halves two tasks can use at once.
            pub fn into_split(
                self,
            ) -> (
                crate::net::stream::ReadHalf<Self>,
                crate::net::stream::WriteHalf<Self>,
            ) {
                crate::net::stream::split(self)
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

            /// Half-closes the connection (sends FIN). A connection the peer has already
            /// torn down (`NotConnected`) has nothing left to close: that is success, as
            /// protocol stacks closing after a goodbye expect (hyper's HTTP/2 after
            /// GOAWAY, whose client may hang up first).
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

pub(crate) use impl_stream;
