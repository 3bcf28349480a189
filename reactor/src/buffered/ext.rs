//! `AsyncBufReadExt`: `lines`, `read_until` and `read_line` for every `AsyncBufRead`.
//!
//! # Ground rules
//!
//! - What these methods take from the reader is, in the same step, in the caller's hands:
//!   appended to `buf` (`read_until`, `read_line`) or held by the `Lines`. Their futures
//!   hold only counts, and, for `read_line`, the first bytes of a character split between
//!   two fills (at most 3): the one place where a dropped future loses bytes.
//! - Blanket-implemented for every `AsyncBufRead + Unpin`, so nobody else can implement it
//!   (sealed in effect).

use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::str;
use std::task::{Poll, ready};

use futures_io::AsyncBufRead;

use super::{Lines, cancelled};

/// Cancel-safe line and delimiter reading for any `AsyncBufRead` (such as
/// [`BufReader`](super::BufReader)); see the [module docs](super) for the ground rules.
pub trait AsyncBufReadExt: AsyncBufRead + Unpin {
    /// The lines of this reader: see [`Lines::next_line`], fully cancel-safe.
    fn lines(self) -> Lines<Self>
    where
        Self: Sized,
    {
        Lines::new(self)
    }

    /// Appends bytes to `buf` up to and including `byte`, or to the end of the stream;
    /// returns how many it appended (0 at the end of the stream).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe. Every byte taken from the reader is already in `buf` when the future
    /// returns an error (a cancellation included) or is dropped: call again with the same
    /// `buf` to continue, and the delimited chunk is everything appended since the first
    /// call. The count returned covers only the last call. In a cancelled region it fails
    /// before taking anything.
    ///
    /// ```
    /// use treeloop::io::{AsyncBufReadExt, BufReader};
    ///
    /// treeloop::block_on(async {
    ///     let (client, server) = treeloop::sim::duplex(64);
    ///     client.write_all(b"key=value;rest").await.unwrap();
    ///     let mut reader = BufReader::new(server);
    ///     let mut field = Vec::new();
    ///     assert_eq!(reader.read_until(b';', &mut field).await.unwrap(), 10);
    ///     assert_eq!(field, b"key=value;");
    /// });
    /// ```
    fn read_until(
        &mut self,
        byte: u8,
        buf: &mut Vec<u8>,
    ) -> impl Future<Output = io::Result<usize>> {
        let mut appended = 0;
        poll_fn(move |cx| {
            if let Some(cancelled) = cancelled(cx) {
                return cancelled;
            }
            loop {
                let (ended, used) = {
                    let available = ready!(Pin::new(&mut *self).poll_fill_buf(cx))?;
                    match available.iter().position(|&b| b == byte) {
                        Some(at) => {
                            buf.extend_from_slice(&available[..=at]);
                            (true, at + 1)
                        }
                        None => {
                            buf.extend_from_slice(available);
                            (available.is_empty(), available.len())
                        }
                    }
                };
                Pin::new(&mut *self).consume(used);
                appended += used;
                if ended {
                    return Poll::Ready(Ok(appended));
                }
            }
        })
    }

    /// Appends a line to `buf`, including its `"\n"` if it has one; returns how many bytes
    /// it appended (0 at the end of the stream). Like std's, it appends: clear `buf` between
    /// lines.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe but for one case. Bytes are appended to `buf` as they are taken from the
    /// reader, whole characters at a time, so an error (a cancellation included) or a dropped
    /// future leaves every character read so far in `buf`, and calling again with the same
    /// `buf` continues the line. The exception: a multi-byte character whose bytes arrive in
    /// two different fills of the reader. Its first bytes (1 to 3) wait in the future for
    /// the rest, and are lost if the future returns an error or is dropped before they come.
    /// [`lines`](Self::lines) has no such case (it keeps raw bytes): prefer it where that
    /// matters. In a cancelled region it fails before taking anything.
    ///
    /// # Errors
    ///
    /// The stream's errors, and `InvalidData` when the bytes are not UTF-8: `buf` then holds
    /// the line's valid characters before the bad bytes, and the reader is left at the first
    /// bad byte ([`read_until`](Self::read_until) can take the rest raw), except that the
    /// first bytes of a split character found bad, or cut off by the end of the stream, were
    /// already taken. Calling `read_line` again at a bad byte fails again.
    fn read_line(&mut self, buf: &mut String) -> impl Future<Output = io::Result<usize>> {
        let mut appended = 0;
        // The first bytes of a character split between two fills, until it is whole.
        let mut split = Vec::new();
        poll_fn(move |cx| {
            if let Some(cancelled) = cancelled(cx) {
                return cancelled;
            }
            loop {
                let (step, used) = {
                    let available = ready!(Pin::new(&mut *self).poll_fill_buf(cx))?;
                    line_step(available, &mut split, buf)
                };
                Pin::new(&mut *self).consume(used);
                appended += used;
                match step {
                    Step::More => {}
                    Step::Ended => return Poll::Ready(Ok(appended)),
                    Step::Invalid(why) => {
                        return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, why)));
                    }
                }
            }
        })
    }
}

impl<R: AsyncBufRead + Unpin + ?Sized> AsyncBufReadExt for R {}

/// What one step of `read_line` leads to.
#[derive(Debug)]
enum Step {
    /// The line goes on: fill again.
    More,
    /// The line ended (its "\n", or the end of the stream).
    Ended,
    /// The bytes are not UTF-8.
    Invalid(&'static str),
}

/// One step of `read_line` over what the reader has: appends the whole characters of the
/// line in `available` to `buf`, keeps a trailing split character in `split`, and returns
/// what happened and how many bytes of `available` to consume.
fn line_step(available: &[u8], split: &mut Vec<u8>, buf: &mut String) -> (Step, usize) {
    if available.is_empty() {
        if split.is_empty() {
            return (Step::Ended, 0);
        }
        return (Step::Invalid("stream ended inside a UTF-8 character"), 0);
    }
    let (chunk, ends_line) = match available.iter().position(|&byte| byte == b'\n') {
        Some(newline) => (&available[..=newline], true),
        None => (available, false),
    };
    let mut used = 0;
    // Finish a character split by the last fill, a byte at a time (it needs at most 3).
    while !split.is_empty() {
        let Some(&byte) = chunk.get(used) else {
            return (Step::More, used);
        };
        split.push(byte);
        match str::from_utf8(split) {
            Ok(whole) => {
                buf.push_str(whole);
                split.clear();
            }
            // Still incomplete: take the byte and look at the next.
            Err(err) if err.error_len().is_none() => {}
            // The reader stays at this byte: only the split bytes before it were taken.
            Err(_) => {
                split.clear();
                return (Step::Invalid("stream did not contain valid UTF-8"), used);
            }
        }
        used += 1;
    }
    let rest = &chunk[used..];
    let valid = match str::from_utf8(rest) {
        Ok(text) => text,
        Err(err) => {
            let (text, tail) = rest.split_at(err.valid_up_to());
            let text = str::from_utf8(text).expect("valid_up_to ends at a character boundary");
            buf.push_str(text);
            used += text.len();
            if err.error_len().is_some() {
                return (Step::Invalid("stream did not contain valid UTF-8"), used);
            }
            // A character cut off by the end of this fill (never by "\n", which cannot be
            // part of one): hold its first bytes until the next fill.
            split.extend_from_slice(tail);
            return (Step::More, used + tail.len());
        }
    };
    buf.push_str(valid);
    used += valid.len();
    if ends_line {
        (Step::Ended, used)
    } else {
        (Step::More, used)
    }
}
