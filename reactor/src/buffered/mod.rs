//! I/O helpers that are safe to cancel: [`BufReader`], [`BufWriter`], and [`Lines`],
//! [`read_until`](AsyncBufReadExt::read_until) and [`read_line`](AsyncBufReadExt::read_line)
//! from [`AsyncBufReadExt`], over any `futures-io` stream (treeloop's sockets, their split
//! halves, `&TcpStream`, [`sim`](crate::sim) duplexes, your own types); [`split()`] for
//! streams of other libraries; and the futures-io traits themselves ([`AsyncRead`],
//! [`AsyncWrite`], [`AsyncBufRead`]), so generic code needs no extra dependency.
//!
//! Protocols are lines and frames, not single reads: a reader wants the next whole line and
//! a writer wants ten small writes to become one syscall. In treeloop a read or a write can
//! be cut off at any await point, by a cancellation (R6) or by a dropped future (a lost
//! `treeloop::race`, a timeout); this module is the buffering that survives that.
//!
//! ```
//! use treeloop::io::{AsyncBufReadExt, BufReader, BufWriter};
//!
//! treeloop::block_on(async {
//!     let (client, server) = treeloop::sim::duplex(64);
//!     let mut out = BufWriter::new(client);
//!     // Three small writes into the buffer; `close` writes them out, then closes.
//!     out.write_all(b"hello\n").await?;
//!     out.write_all(b"wor").await?;
//!     out.write_all(b"ld\r\nno newline at the end").await?;
//!     out.close().await?;
//!
//!     let mut lines = BufReader::new(server).lines();
//!     assert_eq!(lines.next_line().await?.as_deref(), Some("hello"));
//!     assert_eq!(lines.next_line().await?.as_deref(), Some("world"));
//!     assert_eq!(lines.next_line().await?.as_deref(), Some("no newline at the end"));
//!     assert_eq!(lines.next_line().await?, None);
//!     Ok::<_, std::io::Error>(())
//! })
//! .unwrap();
//! ```
//!
//! # Ground rules
//!
//! - **Every operation is a treeloop await point.** In a cancelled region (outside a
//!   [`shield`](treeloop_executor::shield)) each poll of a `BufReader`, a `BufWriter`, a
//!   `Lines` or a `read_until`/`read_line` future fails at once with an `io::Error` wrapping
//!   `Cancelled` (recognise it with `Cancelled::from_io`), before touching anything: no
//!   byte is taken from a buffer or the stream, none is accepted into a buffer, nothing is
//!   written, flushed or closed. It does so again and again, even with a whole line
//!   buffered (R6); failing spends the poll's budget, so a task that ignores the error in a
//!   loop still yields. Inside a shield they work as usual (R11): that is how cleanup
//!   flushes.
//! - **Cut off midway, nothing is lost (R7).** When an operation ends early, by an error of
//!   the stream, a cancellation, or its future being dropped, what it already took is where
//!   the next call finds it:
//!   - [`Lines::next_line`]: the part of the line read so far stays in the `Lines` (see
//!     [`Lines::pending`]); the next call returns the whole line.
//!   - [`read_until`](AsyncBufReadExt::read_until): every byte taken from the reader is
//!     already appended to the caller's `buf`; calling again with the same `buf` continues
//!     the same line.
//!   - [`read_line`](AsyncBufReadExt::read_line): the same, appending whole characters; with
//!     one exception, a multi-byte character split between two fills of the reader, spelt
//!     out on the method.
//!   - [`BufWriter`]: bytes accepted stay in its buffer until the inner writer has taken
//!     them; a write that returned `Err` accepted nothing; a flush cut off midway has removed
//!     from the buffer exactly what the inner writer took, so the next flush sends the rest:
//!     every byte once, in order.
//! - **Dropping a `BufWriter` loses what it still holds**, as in std and tokio: a destructor
//!   cannot await. During cleanup, flush or close it inside `treeloop::shield`.
//! - **Streams must be `Unpin`** to be wrapped. All of treeloop's are; put any other in
//!   `Box::pin`. Why not pin projection: it would take a dependency or `unsafe` for the rare
//!   `!Unpin` stream, where one box serves.
//! - **No `Stream` impl** for `Lines`: `futures-core` is not a dependency of treeloop.
//!   [`Lines::poll_next_line`] has `Stream::poll_next`'s shape, for wrapping.
//! - The extension trait has the names of futures-lite's and tokio's (`lines`,
//!   `read_until`, `read_line`): import one of them, not both.
//!
//! # Why treeloop has its own
//!
//! futures-lite's `Lines` (2.6.1) is not safe against an error from the stream, and a
//! treeloop stream returns one when it is cancelled. Measured (`tests/buffered.rs`,
//! `futures_lite_lines_is_not_cancel_safe`): a line `"hello world\n"` arrives as `"hello "`
//! then `"world\n"`, and the reading task is cancelled in between. On the cancelled poll its
//! `read_line_internal` turns the half line into its pending `String` although the read
//! failed, and keeps its count of bytes read (6). In a debug build its
//! `debug_assert_eq!(*read, 0)` panics on that very poll (`left: 6, right: 0`); in a
//! release build the poll returns the error and the next one overwrites the pending string
//! (`*buf = s`): the line it returns is `"world"`, and `"hello "` is gone. Its `read_line`
//! keeps the half line in the future, so a dropped one loses it
//! (`futures_lite_read_line_dropped_midway_loses_the_half_line`); tokio documents its own
//! `read_line` as not cancel safe (its `Lines` is, over tokio's traits). Here every partial
//! result lives in the `Lines`, the caller's `buf` or the `BufWriter`, never in a future
//! (but for `read_line`'s split character).

mod ext;
mod lines;
mod reader;
mod split;
mod writer;

pub use ext::AsyncBufReadExt;
pub use lines::Lines;
pub use reader::BufReader;
pub use split::{ReadHalf, ReuniteError, WriteHalf, split};
pub use writer::BufWriter;

/// The futures-io traits every treeloop stream implements, for writing code generic over
/// the stream (`S: AsyncRead + AsyncWrite + Unpin`) without depending on futures-io.
pub use futures_io::{AsyncBufRead, AsyncRead, AsyncWrite};

use std::io;
use std::task::{Context, Poll};

use treeloop_executor::poll_cancelled;

/// The buffer size of `BufReader::new` and `BufWriter::new`, as in std.
const DEFAULT_CAPACITY: usize = 8 * 1024;

/// The first step of every poll in this module: `Some` in a cancelled region, to be returned
/// as is (`Err(Cancelled)`, or `Pending` when this poll's budget is spent).
fn cancelled<T>(cx: &mut Context<'_>) -> Option<Poll<io::Result<T>>> {
    poll_cancelled(cx).map(|polled| polled.map(|cancelled| Err(cancelled.into())))
}
