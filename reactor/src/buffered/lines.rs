//! `Lines`: the lines of a buffered reader, one `next_line` at a time, safe to cancel.
//!
//! # Ground rules
//!
//! - The line being read lives in the `Lines` (`line`), never in a future: bytes move from
//!   the reader's buffer to `line` and are consumed in the same step, and leave `line` only
//!   when a whole line is returned. A `next_line` that fails or is dropped midway leaves
//!   them there for the next call.
//! - A line ends at `"\n"`, or at the end of the stream if it has bytes; `"\n"` and
//!   `"\r\n"` are stripped (a `"\r"` alone is kept), as in tokio.

use std::io;
use std::mem;
use std::pin::Pin;
use std::string::FromUtf8Error;
use std::task::{Context, Poll, ready};

use futures_io::AsyncBufRead;

use super::cancelled;

/// The lines of a reader, from [`AsyncBufReadExt::lines`](super::AsyncBufReadExt::lines).
///
/// [`next_line`](Self::next_line) is fully cancel-safe: cancelled, failed or dropped while a
/// line is half-read, it keeps the half in the `Lines`, and the next call returns the whole
/// line.
///
/// ```
/// use std::time::Duration;
/// use treeloop::io::{AsyncBufReadExt, BufReader};
/// use treeloop::time::{sleep, timeout};
///
/// let runtime = treeloop::Builder::new().start_paused(true).build().unwrap();
/// runtime.block_on(async {
///     let (client, server) = treeloop::sim::duplex(64);
///     treeloop::spawn(async move {
///         client.write_all(b"hel").await?;
///         sleep(Duration::from_secs(2)).await?;
///         client.write_all(b"lo\n").await
///     });
///     let mut lines = BufReader::new(server).lines();
///     // The timeout cancels the read after "hel" arrived...
///     assert!(timeout(Duration::from_secs(1), lines.next_line()).await.is_err());
///     assert_eq!(lines.pending(), b"hel");
///     // ...and the next read returns the whole line.
///     assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("hello"));
/// });
/// ```
#[derive(Debug)]
#[must_use = "`Lines` reads nothing until `next_line` is awaited"]
pub struct Lines<R> {
    /// The reader the lines come from.
    reader: R,
    /// The bytes of the line being read: consumed from `reader`, not yet returned.
    line: Vec<u8>,
}

impl<R> Lines<R> {
    /// The lines of `reader`.
    pub(crate) fn new(reader: R) -> Lines<R> {
        Lines {
            reader,
            line: Vec::new(),
        }
    }

    /// The reader.
    pub fn get_ref(&self) -> &R {
        &self.reader
    }

    /// The reader. Consuming from it directly takes bytes from the middle of the current
    /// line (see [`pending`](Self::pending)).
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.reader
    }

    /// The bytes of the line being read: taken from the reader, not yet returned (a line
    /// whose read was cut off).
    pub fn pending(&self) -> &[u8] {
        &self.line
    }

    /// Gives back the reader. The [`pending`](Self::pending) bytes are dropped: copy them
    /// first if they matter.
    pub fn into_inner(self) -> R {
        self.reader
    }
}

impl<R: AsyncBufRead + Unpin> Lines<R> {
    /// The next line, without its `"\n"` or `"\r\n"`; `Ok(None)` at the end of the stream.
    /// A last line without `"\n"` is returned too.
    ///
    /// # Cancel safety
    ///
    /// Fully cancel-safe. If it returns an error (a cancellation included) or its future is
    /// dropped, the bytes of the line read so far stay in the `Lines`: the next call
    /// returns the whole line. In a cancelled region it fails before taking anything, even
    /// with a whole line buffered.
    ///
    /// # Errors
    ///
    /// The stream's errors, and `InvalidData` for a line that is not UTF-8. That line is
    /// consumed (the next call reads the one after it), but not lost: the error's inner error
    /// is a [`FromUtf8Error`] holding the line's bytes without the line ending
    /// (`err.into_inner()`, downcast, `into_bytes()`).
    pub async fn next_line(&mut self) -> io::Result<Option<String>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next_line(cx)).await
    }

    /// [`next_line`](Self::next_line) as a poll function, with `Stream::poll_next`'s shape.
    pub fn poll_next_line(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<Option<String>>> {
        if let Some(cancelled) = cancelled(cx) {
            return cancelled;
        }
        let this = self.get_mut();
        loop {
            // Move what has arrived, up to the first "\n", into `line`, and consume it in
            // the same step: the bytes are always in exactly one place.
            let (ended, used) = {
                let available = ready!(Pin::new(&mut this.reader).poll_fill_buf(cx))?;
                match available.iter().position(|&byte| byte == b'\n') {
                    Some(newline) => {
                        this.line.extend_from_slice(&available[..=newline]);
                        (true, newline + 1)
                    }
                    None => {
                        this.line.extend_from_slice(available);
                        (available.is_empty(), available.len())
                    }
                }
            };
            Pin::new(&mut this.reader).consume(used);
            if ended {
                if this.line.is_empty() {
                    return Poll::Ready(Ok(None));
                }
                let line = into_line(mem::take(&mut this.line));
                return Poll::Ready(line.map(Some));
            }
        }
    }
}

/// A whole line's bytes as a `String`, without its `"\n"` or `"\r\n"`.
fn into_line(mut bytes: Vec<u8>) -> io::Result<String> {
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    String::from_utf8(bytes)
        .map_err(|err: FromUtf8Error| io::Error::new(io::ErrorKind::InvalidData, err))
}
