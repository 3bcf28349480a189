//! The child's pipes: [`ChildStdin`] (futures-io `AsyncWrite`), [`ChildStdout`] and
//! [`ChildStderr`] (`AsyncRead`).
//!
//! # Ground rules
//!
//! - Each pipe is a mio pipe end made non-blocking and registered once as an [`IoSource`],
//!   so reads and writes go through the same loop as a socket's: the cancellation check
//!   first (a cancelled read consumes nothing, a cancelled write writes nothing: R7), then
//!   the budget, readiness, the syscall.
//! - Closing stdin (`close`, `AsyncWrite::poll_close`, or dropping it) closes the
//!   descriptor, which is how the child sees the end of its input. A pipe has no buffer in
//!   user space: flushing does nothing.
//! - A child that exited (or was stopped) closes its ends as usual: reads see the end of
//!   the stream once the data written before is read, writes fail with `BrokenPipe`
//!   (treeloop does not change how a Rust program takes SIGPIPE: ignored, so `EPIPE`).

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::process;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};
use mio::unix::pipe::{Receiver, Sender};

use crate::io::slots::Direction;
use crate::io::source::IoSource;

/// The writing end of a child's stdin: `child.stdin.take()` after
/// `Command::stdin(Stdio::piped())`. Implements futures-io `AsyncWrite`; close it (or drop
/// it) to send the end of input.
///
/// ```
/// use treeloop::process::{Command, Stdio};
///
/// treeloop::block_on(async {
///     let mut cat = Command::new("cat")
///         .stdin(Stdio::piped())
///         .stdout(Stdio::piped())
///         .spawn()?;
///     let mut stdin = cat.stdin.take().unwrap();
///     stdin.write_all(b"hello\n").await?;
///     stdin.close(); // cat sees the end of its input
///     let output = cat.wait_with_output().await?;
///     assert_eq!(output.stdout, b"hello\n");
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
#[derive(Debug)]
pub struct ChildStdin {
    /// The pipe, until closed.
    pipe: Option<IoSource<Sender>>,
}

impl ChildStdin {
    pub(crate) fn new(stdin: process::ChildStdin) -> io::Result<ChildStdin> {
        let sender = Sender::from(stdin);
        sender.set_nonblocking(true)?;
        Ok(ChildStdin {
            pipe: Some(IoSource::new(sender)?),
        })
    }

    /// Writes from `buf`, returning how much was written. A treeloop await point: in a
    /// cancelled region it fails with an `io::Error` wrapping `Cancelled` and writes
    /// nothing.
    pub async fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_write(cx, buf)).await
    }

    /// Writes all of `buf`. If cancelled midway it returns the error; what was written
    /// before stays written.
    pub async fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = self.write(buf).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            buf = &buf[n..];
        }
        Ok(())
    }

    /// Closes the pipe: the child reads the end of its input. Writes after this fail.
    pub fn close(&mut self) {
        self.pipe = None;
    }
}

impl AsyncWrite for ChildStdin {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let Some(pipe) = &self.pipe else {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "write to a child's stdin after it was closed: write everything before \
                 `close` (or before `Child::wait`, which closes it)",
            )));
        };
        pipe.poll_transfer(cx, Direction::Write, buf.len(), |sender| {
            (&*sender).write(buf)
        })
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A pipe has no user-space buffer to flush.
        Poll::Ready(Ok(()))
    }

    fn poll_close(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.close();
        Poll::Ready(Ok(()))
    }
}

/// The pipes of a new child, as `Child` holds them: stdin, stdout, stderr.
pub(crate) type Pipes = (Option<ChildStdin>, Option<ChildStdout>, Option<ChildStderr>);

/// Implements a reading pipe end, `$name(IoSource<Receiver>)`.
macro_rules! reading_pipe {
    ($name:ident, $std:ty) => {
        impl $name {
            pub(crate) fn new(std: $std) -> io::Result<$name> {
                let receiver = Receiver::from(std);
                receiver.set_nonblocking(true)?;
                Ok($name(IoSource::new(receiver)?))
            }

            /// Reads into `buf`; `Ok(0)` at the end (the child closed it, or exited). A
            /// treeloop await point: in a cancelled region it fails with an `io::Error`
            /// wrapping `Cancelled` and reads nothing.
            pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                std::future::poll_fn(|cx| Pin::new(&mut *self).poll_read(cx, buf)).await
            }

            /// Reads to the end into `buf`, returning how many bytes were added. If
            /// cancelled midway it returns the error; what was read stays in `buf`.
            pub async fn read_to_end(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
                let start = buf.len();
                let mut chunk = [0u8; 8 * 1024];
                loop {
                    match self.read(&mut chunk).await? {
                        0 => return Ok(buf.len() - start),
                        n => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            }
        }

        impl AsyncRead for $name {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                self.0
                    .poll_transfer(cx, Direction::Read, buf.len(), |receiver| {
                        (&*receiver).read(buf)
                    })
            }
        }
    };
}

/// The reading end of a child's stdout: `child.stdout.take()` after
/// `Command::stdout(Stdio::piped())`. Implements futures-io `AsyncRead`.
///
/// ```
/// use treeloop::process::{Command, Stdio};
///
/// treeloop::block_on(async {
///     let mut child = Command::new("echo").arg("hi").stdout(Stdio::piped()).spawn()?;
///     let mut out = Vec::new();
///     child.stdout.take().unwrap().read_to_end(&mut out).await?;
///     assert_eq!(out, b"hi\n");
///     assert!(child.wait().await?.success());
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
#[derive(Debug)]
pub struct ChildStdout(IoSource<Receiver>);

/// The reading end of a child's stderr: `child.stderr.take()` after
/// `Command::stderr(Stdio::piped())`. Implements futures-io `AsyncRead`; reads like
/// [`ChildStdout`].
#[derive(Debug)]
pub struct ChildStderr(IoSource<Receiver>);

reading_pipe!(ChildStdout, process::ChildStdout);
reading_pipe!(ChildStderr, process::ChildStderr);
