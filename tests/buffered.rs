//! Buffered I/O (`treeloop::io`): lines, `read_until`, `read_line`, `BufReader` and
//! `BufWriter` over duplexes, scripted streams and loopback TCP, with exact lines, byte
//! counts, buffer contents and counts of the reads and writes that reached the stream.
//! Cancelled or dropped midway, nothing is lost (R7): a half line stays in the `Lines`, the
//! bytes `read_until` took stay in the caller's `buf`, a flush keeps what it did not write
//! and a later one delivers every byte once, in order. In a cancelled region every operation
//! fails before touching anything, even with data buffered (R6). Two witnesses measure why
//! treeloop has its own: futures-lite's `Lines` and `read_line` lose a half line.
//!
//! Virtual time (`start_paused`) or no time at all; the TCP tests use loopback and wait only
//! on events.

mod common;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::string::FromUtf8Error;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use treeloop::io::{AsyncBufReadExt, BufReader, BufWriter};
use treeloop::net::{TcpListener, TcpStream};
use treeloop::sim::{DuplexStream, duplex};
use treeloop::time::{Instant, sleep, timeout};
use treeloop::{CancelReason, Cancelled, block_on, cancelled, shield, spawn, yield_now};

/// The error every operation returns in a region cancelled with `cancel()`.
fn assert_cancelled(err: &io::Error) {
    assert_eq!(err.kind(), io::ErrorKind::Other, "{err}");
    assert_eq!(
        Cancelled::from_io(err),
        Some(Cancelled::new(CancelReason::Explicit)),
        "not a cancellation: {err}"
    );
}

/// Polls `future` once, then drops it: a race it lost, a select that took another branch.
async fn poll_once_then_drop<F: Future>(future: F) -> Poll<F::Output> {
    let mut future = pin!(future);
    poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await
}

/// Reads `server` to its end.
async fn read_to_end(server: &mut DuplexStream) -> Vec<u8> {
    let mut got = Vec::new();
    server.read_to_end(&mut got).await.unwrap();
    got
}

/// What reached the stream under a [`Counted`], shared with the test.
#[derive(Clone, Default)]
struct Tally(Rc<Counts>);

/// The operations that completed on a stream.
#[derive(Default)]
struct Counts {
    /// Reads that returned `Ok`.
    reads: Cell<usize>,
    /// The size of each write that returned `Ok`, in order.
    writes: RefCell<Vec<usize>>,
    /// Flushes that returned `Ok`.
    flushes: Cell<usize>,
}

impl Tally {
    fn reads(&self) -> usize {
        self.0.reads.get()
    }
    fn writes(&self) -> Vec<usize> {
        self.0.writes.borrow().clone()
    }
    fn flushes(&self) -> usize {
        self.0.flushes.get()
    }
}

/// A stream that counts, in its [`Tally`], the operations that completed on it.
struct Counted<S> {
    inner: S,
    tally: Tally,
}

impl<S> Counted<S> {
    fn new(inner: S, tally: &Tally) -> Counted<S> {
        Counted {
            inner,
            tally: tally.clone(),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(_)) = polled {
            self.tally.0.reads.set(self.tally.reads() + 1);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.tally.0.writes.borrow_mut().push(n);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        if let Poll::Ready(Ok(())) = polled {
            self.tally.0.flushes.set(self.tally.flushes() + 1);
        }
        polled
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// A reader that plays a script, one step per read: bytes, or an error; then end of stream.
struct Script(VecDeque<io::Result<&'static [u8]>>);

impl Script {
    fn new(steps: impl IntoIterator<Item = io::Result<&'static [u8]>>) -> Script {
        Script(steps.into_iter().collect())
    }
}

impl AsyncRead for Script {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(match self.0.pop_front() {
            None => Ok(0),
            Some(Err(err)) => Err(err),
            Some(Ok(bytes)) => {
                buf[..bytes.len()].copy_from_slice(bytes);
                Ok(bytes.len())
            }
        })
    }
}

/// An error of the stream that is not a cancellation.
fn reset() -> io::Error {
    io::ErrorKind::ConnectionReset.into()
}

// ---- Lines ----

#[test]
fn lines_over_a_duplex_split_across_many_small_writes() {
    const TEXT: &[u8] = b"alpha\nbeta\r\ngamma delta\n\nepsilon\n";
    let tally = Tally::default();
    let lines = common::paused().block_on({
        let tally = tally.clone();
        async move {
            let (client, server) = duplex(64);
            let reader = spawn(async move {
                let mut lines = BufReader::new(Counted::new(server, &tally)).lines();
                let mut got = Vec::new();
                while let Some(line) = lines.next_line().await.unwrap() {
                    got.push(line);
                }
                got
            });
            // Three bytes at a time ("\r" and "\n" land in different writes), the reader
            // running after each.
            for chunk in TEXT.chunks(3) {
                client.write_all(chunk).await.unwrap();
                yield_now().await.unwrap();
            }
            drop(client);
            reader.await.unwrap()
        }
    });
    assert_eq!(lines, ["alpha", "beta", "gamma delta", "", "epsilon"]);
    // One read per write, and one for the end of the stream.
    assert_eq!(tally.reads(), TEXT.len().div_ceil(3) + 1);
}

#[test]
fn lines_strip_newline_and_crlf_but_keep_a_lone_cr() {
    let lines = block_on(async {
        let (client, server) = duplex(64);
        client.write_all(b"a\r\nb\n\r\nc\rd\ne\r").await.unwrap();
        drop(client);
        let mut lines = BufReader::new(server).lines();
        let mut got = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            got.push(line);
        }
        got
    });
    assert_eq!(lines, ["a", "b", "", "c\rd", "e\r"]);
}

#[test]
fn a_last_line_without_newline_is_returned_then_the_end_for_good() {
    block_on(async {
        let (client, server) = duplex(64);
        client.write_all(b"one\ntwo").await.unwrap();
        drop(client);
        let mut lines = BufReader::new(server).lines();
        assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("one"));
        assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("two"));
        assert_eq!(lines.next_line().await.unwrap(), None);
        assert_eq!(lines.next_line().await.unwrap(), None);
    });
}

#[test]
fn a_next_line_cancelled_between_the_halves_of_a_line_keeps_the_first_half() {
    block_on(async {
        let (client, server) = duplex(64);
        let tally = Tally::default();
        let lines = BufReader::new(Counted::new(server, &tally)).lines();
        // The reader task hands its `Lines` back after seeing its cancellation.
        let reader = spawn(async move {
            let mut lines = lines;
            let err = lines.next_line().await.unwrap_err();
            (err, lines)
        });
        client.write_all(b"hello ").await.unwrap();
        yield_now().await.unwrap(); // the reader takes "hello " and waits for the rest
        assert_eq!(tally.reads(), 1);
        reader.cancel();
        let (err, mut lines) = reader.await.unwrap();
        assert_cancelled(&err);
        assert_eq!(lines.pending(), b"hello ");
        assert_eq!(lines.get_ref().buffer(), b"");
        assert_eq!(tally.reads(), 1, "the cancelled poll read nothing");

        client.write_all(b"world\n").await.unwrap();
        let line = lines.next_line().await.unwrap();
        assert_eq!(line.as_deref(), Some("hello world"));
        assert_eq!(lines.pending(), b"");
        assert_eq!(tally.reads(), 2);
    });
}

#[test]
fn a_dropped_next_line_future_keeps_the_first_half_of_the_line() {
    block_on(async {
        let (client, server) = duplex(64);
        let mut lines = BufReader::new(server).lines();
        client.write_all(b"hello ").await.unwrap();
        assert!(poll_once_then_drop(lines.next_line()).await.is_pending());
        assert_eq!(lines.pending(), b"hello ");
        client.write_all(b"world\n").await.unwrap();
        let line = lines.next_line().await.unwrap();
        assert_eq!(line.as_deref(), Some("hello world"));
    });
}

#[test]
fn a_next_line_cut_off_by_a_timeout_keeps_the_first_half_of_the_line() {
    common::paused().block_on(async {
        let start = Instant::now();
        let (client, server) = duplex(64);
        spawn(async move {
            client.write_all(b"hel").await?;
            sleep(Duration::from_secs(2)).await?;
            client.write_all(b"lo\n").await
        });
        let mut lines = BufReader::new(server).lines();
        let elapsed = timeout(Duration::from_secs(1), lines.next_line()).await;
        assert!(elapsed.is_err());
        assert_eq!(common::ms_since(start), 1000);
        assert_eq!(lines.pending(), b"hel");
        assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("hello"));
        assert_eq!(common::ms_since(start), 2000);
    });
}

#[test]
fn in_a_cancelled_region_lines_and_buf_reader_take_nothing_even_with_a_whole_line_buffered() {
    let (first, errors, buffered, second) = block_on(async {
        let (client, server) = duplex(64);
        client.write_all(b"first\nsecond\n").await.unwrap();
        let reader = spawn(async move {
            let mut lines = BufReader::new(server).lines();
            let first = lines.next_line().await.unwrap();
            let _ = cancelled().await;
            // Level-triggered: every time, and through the `BufReader` too.
            let mut errors = Vec::new();
            for _ in 0..3 {
                errors.push(lines.next_line().await.unwrap_err());
            }
            let mut byte = [0; 1];
            errors.push(lines.get_mut().read(&mut byte).await.unwrap_err());
            let mut until = Vec::new();
            let read_until = lines.get_mut().read_until(b'\n', &mut until);
            errors.push(read_until.await.unwrap_err());
            assert_eq!(until, b"");
            let buffered = lines.get_ref().buffer().to_vec();
            // Cleanup can still read, inside a shield.
            let second = shield(lines.next_line()).await.unwrap();
            (first, errors, buffered, second)
        });
        yield_now().await.unwrap(); // the reader has its first line and waits
        reader.cancel();
        reader.await.unwrap()
    });
    assert_eq!(first.as_deref(), Some("first"));
    assert_eq!(errors.len(), 5);
    errors.iter().for_each(assert_cancelled);
    assert_eq!(buffered, b"second\n");
    assert_eq!(second.as_deref(), Some("second"));
}

#[test]
fn over_a_reader_that_knows_nothing_of_treeloop_they_still_fail_in_a_cancelled_region() {
    // `&[u8]` is an `AsyncBufRead` that never returns `Cancelled` itself.
    let (errors, line, field, text) = block_on(async {
        let task = spawn(async {
            let _ = cancelled().await;
            let mut lines = (&b"one\n"[..]).lines();
            let mut bytes: &[u8] = b"two;three\n";
            let (mut field, mut text) = (Vec::new(), String::new());
            let errors = [
                lines.next_line().await.unwrap_err(),
                bytes.read_until(b';', &mut field).await.unwrap_err(),
                bytes.read_line(&mut text).await.unwrap_err(),
            ];
            assert_eq!((field.len(), text.len(), bytes.len()), (0, 0, 10));
            let line = shield(lines.next_line()).await.unwrap();
            shield(bytes.read_until(b';', &mut field)).await.unwrap();
            shield(bytes.read_line(&mut text)).await.unwrap();
            (errors, line, field, text)
        });
        task.cancel();
        task.await.unwrap()
    });
    errors.iter().for_each(assert_cancelled);
    assert_eq!(line.as_deref(), Some("one"));
    assert_eq!(field, b"two;");
    assert_eq!(text, "three\n");
}

#[test]
fn an_error_of_the_stream_mid_line_loses_nothing() {
    block_on(async {
        let script = Script::new([Ok(&b"hel"[..]), Err(reset()), Ok(b"lo\nwor"), Ok(b"ld\n")]);
        let mut lines = BufReader::new(script).lines();
        let err = lines.next_line().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(lines.pending(), b"hel");
        assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("hello"));
        assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("world"));
        assert_eq!(lines.next_line().await.unwrap(), None);

        let script = Script::new([Ok(&b"a,b"[..]), Err(reset()), Ok(b"c;d")]);
        let mut reader = BufReader::new(script);
        let mut field = Vec::new();
        let err = reader.read_until(b';', &mut field).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(field, b"a,b");
        assert_eq!(reader.read_until(b';', &mut field).await.unwrap(), 2);
        assert_eq!(field, b"a,bc;");
        assert_eq!(reader.buffer(), b"d");
    });
}

#[test]
fn a_line_that_is_not_utf8_is_an_error_holding_its_bytes_and_the_next_line_follows() {
    block_on(async {
        let (client, server) = duplex(64);
        client.write_all(b"bad\xFF\r\ngood\n").await.unwrap();
        drop(client);
        let mut lines = BufReader::new(server).lines();
        let err = lines.next_line().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let bad = err
            .into_inner()
            .unwrap()
            .downcast::<FromUtf8Error>()
            .unwrap();
        assert_eq!(bad.into_bytes(), b"bad\xFF");
        assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("good"));
        assert_eq!(lines.next_line().await.unwrap(), None);
    });
}

// ---- read_until and read_line ----

#[test]
fn a_cancelled_read_until_leaves_the_bytes_it_took_in_the_callers_buf() {
    block_on(async {
        let (client, server) = duplex(64);
        client.write_all(b"key=val").await.unwrap();
        let reader = spawn(async move {
            let mut reader = BufReader::new(server);
            let mut field = Vec::new();
            let err = reader.read_until(b';', &mut field).await.unwrap_err();
            (err, reader, field)
        });
        yield_now().await.unwrap(); // the reader appends "key=val" and waits for ';'
        reader.cancel();
        let (err, mut reader, mut field) = reader.await.unwrap();
        assert_cancelled(&err);
        assert_eq!(field, b"key=val");
        assert_eq!(reader.buffer(), b"");

        client.write_all(b"ue;next").await.unwrap();
        assert_eq!(reader.read_until(b';', &mut field).await.unwrap(), 3);
        assert_eq!(field, b"key=value;");
        assert_eq!(reader.buffer(), b"next");
    });
}

#[test]
fn a_dropped_read_until_leaves_the_bytes_it_took_in_the_callers_buf() {
    block_on(async {
        let (client, server) = duplex(64);
        let mut reader = BufReader::new(server);
        let mut field = Vec::new();
        client.write_all(b"key=val").await.unwrap();
        let polled = poll_once_then_drop(reader.read_until(b';', &mut field)).await;
        assert!(polled.is_pending());
        assert_eq!(field, b"key=val");
        client.write_all(b"ue;").await.unwrap();
        assert_eq!(reader.read_until(b';', &mut field).await.unwrap(), 3);
        assert_eq!(field, b"key=value;");
    });
}

#[test]
fn a_cancelled_read_line_keeps_the_characters_it_read_in_buf() {
    block_on(async {
        let (client, server) = duplex(64);
        client.write_all("héllo ".as_bytes()).await.unwrap();
        let reader = spawn(async move {
            let mut reader = BufReader::new(server);
            let mut line = String::new();
            let err = reader.read_line(&mut line).await.unwrap_err();
            (err, reader, line)
        });
        yield_now().await.unwrap(); // the reader appends "héllo " and waits for "\n"
        reader.cancel();
        let (err, mut reader, mut line) = reader.await.unwrap();
        assert_cancelled(&err);
        assert_eq!(line, "héllo ");

        client.write_all("wörld\n".as_bytes()).await.unwrap();
        assert_eq!(reader.read_line(&mut line).await.unwrap(), 7);
        assert_eq!(line, "héllo wörld\n");
    });
}

#[test]
fn read_line_joins_a_character_split_between_two_fills() {
    block_on(async {
        let (client, server) = duplex(64);
        let mut reader = BufReader::new(server);
        let mut line = String::from("> ");
        client.write_all(b"caf\xC3").await.unwrap();
        {
            let mut read = pin!(reader.read_line(&mut line));
            let polled = poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await;
            assert!(polled.is_pending());
            client.write_all(b"\xA9!\n").await.unwrap();
            assert_eq!(read.await.unwrap(), 7);
        }
        assert_eq!(line, "> café!\n");
    });
}

#[test]
fn a_read_line_dropped_inside_a_split_character_loses_only_that_characters_first_bytes() {
    // The one window spelt out on `read_line`: "\xC3" waits in the future for "\xA9".
    block_on(async {
        let (client, server) = duplex(64);
        let mut reader = BufReader::new(server);
        let mut line = String::new();
        client.write_all(b"ab\xC3").await.unwrap();
        let polled = poll_once_then_drop(reader.read_line(&mut line)).await;
        assert!(polled.is_pending());
        assert_eq!(line, "ab");
        client.write_all(b"\xA9\n").await.unwrap();
        let err = reader.read_line(&mut line).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(line, "ab");
        let mut rest = Vec::new();
        assert_eq!(reader.read_until(b'\n', &mut rest).await.unwrap(), 2);
        assert_eq!(rest, b"\xA9\n");
    });
}

#[test]
fn read_line_stops_at_bytes_that_are_not_utf8_and_leaves_them_in_the_reader() {
    block_on(async {
        let (client, server) = duplex(64);
        client.write_all(b"ok\xFFmore\nx\xE2\x82").await.unwrap();
        drop(client);
        let mut reader = BufReader::new(server);
        let mut line = String::new();
        for _ in 0..2 {
            let err = reader.read_line(&mut line).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            assert_eq!(line, "ok");
            assert_eq!(reader.buffer(), b"\xFFmore\nx\xE2\x82");
        }
        let mut raw = Vec::new();
        assert_eq!(reader.read_until(b'\n', &mut raw).await.unwrap(), 6);
        assert_eq!(raw, b"\xFFmore\n");
        // Cut off by the end of the stream inside a character.
        line.clear();
        let err = reader.read_line(&mut line).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(err.to_string(), "stream ended inside a UTF-8 character");
        assert_eq!(line, "x");
        assert_eq!(reader.read_line(&mut line).await.unwrap(), 0);
    });
}

// ---- BufReader ----

#[test]
fn buf_reader_reads_the_stream_one_buffer_at_a_time() {
    block_on(async {
        let (client, server) = duplex(64);
        let tally = Tally::default();
        let mut reader = BufReader::with_capacity(8, Counted::new(server, &tally));
        client.write_all(b"abcdefghijklmnop").await.unwrap();
        let mut got = [0; 3];
        let mut reads = Vec::new();
        for _ in 0..4 {
            let n = reader.read(&mut got).await.unwrap();
            reads.push((got[..n].to_vec(), tally.reads()));
        }
        assert_eq!(
            reads,
            [
                (b"abc".to_vec(), 1),
                (b"def".to_vec(), 1),
                (b"gh".to_vec(), 1), // only what is buffered, no second read
                (b"ijk".to_vec(), 2),
            ]
        );
        assert_eq!(reader.buffer(), b"lmnop");
        let mut rest = [0; 5];
        reader.read_exact(&mut rest).await.unwrap();
        assert_eq!(tally.reads(), 2);
        // Nothing buffered and a read as big as the buffer: straight from the stream.
        client.write_all(b"0123456789").await.unwrap();
        let mut big = [0; 16];
        assert_eq!(reader.read(&mut big).await.unwrap(), 10);
        assert_eq!(&big[..10], b"0123456789");
        assert_eq!(reader.buffer(), b"");
        assert_eq!(tally.reads(), 3);
    });
}

// ---- BufWriter ----

#[test]
fn small_writes_coalesce_into_one_write_of_the_stream() {
    block_on(async {
        let (client, mut server) = duplex(1024);
        let tally = Tally::default();
        let mut out = BufWriter::with_capacity(64, Counted::new(client, &tally));
        let bytes: Vec<u8> = (0..=229).collect();
        for chunk in bytes[..50].chunks(5) {
            out.write_all(chunk).await.unwrap();
        }
        assert_eq!(tally.writes(), Vec::<usize>::new());
        assert_eq!(out.buffer(), &bytes[..50]);
        out.flush().await.unwrap();
        assert_eq!(tally.writes(), [50]);
        assert_eq!(tally.flushes(), 1);
        assert_eq!(out.buffer(), b"");
        // 60 fit; 10 more would not, so the 60 go first; 110 are too many to buffer and go
        // straight to the stream, after the 10.
        out.write_all(&bytes[50..110]).await.unwrap();
        out.write_all(&bytes[110..120]).await.unwrap();
        assert_eq!(tally.writes(), [50, 60]);
        assert_eq!(out.buffer(), &bytes[110..120]);
        out.write_all(&bytes[120..]).await.unwrap();
        assert_eq!(tally.writes(), [50, 60, 10, 110]);
        out.close().await.unwrap();
        assert_eq!(tally.writes(), [50, 60, 10, 110]);
        assert_eq!(read_to_end(&mut server).await, bytes);
    });
}

#[test]
fn flush_writes_everything_when_the_stream_takes_a_little_at_a_time() {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
    let tally = Tally::default();
    let got = block_on({
        let tally = tally.clone();
        async move {
            let (client, mut server) = duplex(4);
            let reader = spawn(async move { read_to_end(&mut server).await });
            let mut out = BufWriter::new(Counted::new(client, &tally));
            out.write_all(ALPHABET).await.unwrap();
            out.flush().await.unwrap();
            assert_eq!(out.buffer(), b"");
            out.close().await.unwrap();
            reader.await.unwrap()
        }
    });
    assert_eq!(got, ALPHABET);
    assert_eq!(tally.writes(), [4, 4, 4, 4, 4, 4, 2]);
    assert_eq!(tally.flushes(), 1);
}

#[test]
fn a_cancelled_flush_keeps_the_rest_and_a_shielded_close_delivers_every_byte_once_in_order() {
    const MESSAGE: &[u8] = b"0123456789abcdefghij";
    let tally = Tally::default();
    let (got, seen) = block_on({
        let tally = tally.clone();
        async move {
            let (client, mut server) = duplex(8);
            let writer = spawn(async move {
                let mut out = BufWriter::new(Counted::new(client, &tally));
                out.write_all(MESSAGE).await.unwrap();
                // Writes 8 bytes, then waits for room: cancelled there.
                let err = out.flush().await.unwrap_err();
                let mut seen = vec![(err, out.buffer().to_vec())];
                // Again and again; and a write accepts nothing.
                let err = out.flush().await.unwrap_err();
                seen.push((err, out.buffer().to_vec()));
                let err = out.write_all(b"late").await.unwrap_err();
                seen.push((err, out.buffer().to_vec()));
                shield(out.close()).await.unwrap();
                seen
            });
            yield_now().await.unwrap(); // the writer fills the duplex and waits
            writer.cancel();
            let got = read_to_end(&mut server).await;
            (got, writer.await.unwrap())
        }
    });
    for (err, buffered) in &seen {
        assert_cancelled(err);
        assert_eq!(buffered, b"89abcdefghij");
    }
    assert_eq!(got, MESSAGE);
    assert_eq!(tally.writes(), [8, 8, 4]);
}

#[test]
fn a_write_in_a_cancelled_region_accepts_nothing_and_the_owner_flushes_later() {
    block_on(async {
        let (client, mut server) = duplex(64);
        let tally = Tally::default();
        let out = BufWriter::new(Counted::new(client, &tally));
        let writer = spawn(async move {
            let mut out = out;
            out.write_all(b"kept").await.unwrap();
            let _ = cancelled().await;
            let err = out.write_all(b" dropped").await.unwrap_err();
            (err, out)
        });
        yield_now().await.unwrap();
        writer.cancel();
        let (err, mut out) = writer.await.unwrap();
        assert_cancelled(&err);
        assert_eq!(out.buffer(), b"kept");
        assert_eq!(tally.writes(), Vec::<usize>::new());
        // Outside the cancelled region, the flush delivers it.
        out.flush().await.unwrap();
        drop(out);
        assert_eq!(read_to_end(&mut server).await, b"kept");
        assert_eq!(tally.writes(), [4]);
    });
}

#[test]
fn close_writes_the_buffer_out_then_closes_the_stream() {
    block_on(async {
        let (client, mut server) = duplex(64);
        let mut out = BufWriter::new(client);
        out.write_all(b"bye\n").await.unwrap();
        out.close().await.unwrap();
        // The peer reads the bytes, then the end of the stream, with `out` still alive.
        assert_eq!(read_to_end(&mut server).await, b"bye\n");
        assert_eq!(out.into_parts().1, b"");
    });
}

#[test]
fn dropping_a_buf_writer_loses_what_it_still_holds() {
    block_on(async {
        let (client, mut server) = duplex(64);
        let mut out = BufWriter::new(client);
        out.write_all(b"lost").await.unwrap();
        assert_eq!(out.buffer(), b"lost");
        drop(out);
        assert_eq!(read_to_end(&mut server).await, b"");
    });
}

// ---- TCP on loopback ----

#[test]
fn buf_reader_reads_lines_from_a_tcp_client_on_loopback() {
    let lines = block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        spawn(async move {
            let client = TcpStream::connect(addr).await?;
            for part in ["GET / HT", "TP/1.1\r\nHost: tree", "loop\r\n\r\n"] {
                client.write_all(part.as_bytes()).await?;
                yield_now().await?;
            }
            client.shutdown(std::net::Shutdown::Write)
        });
        let (stream, _) = listener.accept().await.unwrap();
        let mut lines = BufReader::new(stream).lines();
        let mut got = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            got.push(line);
        }
        got
    });
    assert_eq!(lines, ["GET / HTTP/1.1", "Host: treeloop", ""]);
}

#[test]
fn a_line_echo_over_tcp_halves_and_a_borrowed_stream() {
    let echoed = block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = spawn(async move {
            let (stream, _) = listener.accept().await?;
            let (read, write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            let mut out = BufWriter::new(write);
            while let Some(line) = lines.next_line().await? {
                out.write_all(line.to_uppercase().as_bytes()).await?;
                out.write_all(b"\n").await?;
            }
            out.close().await
        });
        let client = TcpStream::connect(addr).await.unwrap();
        client.write_all(b"one\ntwo\nthree\n").await.unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let mut lines = BufReader::new(&client).lines();
        let mut got = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            got.push(line);
        }
        server.await.unwrap().unwrap();
        got
    });
    assert_eq!(echoed, ["ONE", "TWO", "THREE"]);
}

// ---- Witnesses: why treeloop has its own ----

/// Polls futures-lite's `Lines` once, catching a panic (its debug assertions).
fn poll_lite_lines<R: futures_lite::AsyncBufRead + Unpin>(
    lines: &mut futures_lite::io::Lines<R>,
    cx: &mut Context<'_>,
) -> Result<Poll<Option<io::Result<String>>>, String> {
    catch_unwind(AssertUnwindSafe(|| {
        futures_lite::Stream::poll_next(Pin::new(lines), cx)
    }))
    .map_err(|payload| common::message(&*payload))
}

#[test]
fn futures_lite_lines_is_not_cancel_safe() {
    block_on(async {
        let (client, server) = duplex(64);
        let mut lines =
            futures_lite::AsyncBufReadExt::lines(futures_lite::io::BufReader::new(server));
        client.write_all(b"hello ").await.unwrap();
        let reader = spawn(async move {
            let first = poll_fn(|cx| Poll::Ready(poll_lite_lines(&mut lines, cx))).await;
            assert!(matches!(first, Ok(Poll::Pending)));
            let _ = cancelled().await;
            let cancelled = poll_fn(|cx| Poll::Ready(poll_lite_lines(&mut lines, cx))).await;
            (cancelled, lines)
        });
        yield_now().await.unwrap(); // it took "hello " and waits for the rest
        reader.cancel();
        let (cancelled, mut lines) = reader.await.unwrap();
        if cfg!(debug_assertions) {
            // `debug_assert_eq!(*read, 0)` in its `read_line_internal`.
            let panic = cancelled.unwrap_err();
            assert!(panic.contains("left: 6\n right: 0"), "{panic}");
        } else {
            match cancelled {
                Ok(Poll::Ready(Some(Err(err)))) => assert_cancelled(&err),
                other => panic!("expected the cancellation, got {other:?}"),
            }
        }
        client.write_all(b"world\n").await.unwrap();
        drop(client);
        let next = poll_fn(|cx| Poll::Ready(poll_lite_lines(&mut lines, cx))).await;
        // "hello " is gone.
        assert_eq!(
            next.unwrap().map(|line| line.map(Result::unwrap)),
            Poll::Ready(Some("world".into()))
        );
    });
}

#[test]
fn futures_lite_read_line_dropped_midway_loses_the_half_line() {
    block_on(async {
        let (client, server) = duplex(64);
        let mut reader = futures_lite::io::BufReader::new(server);
        let mut line = String::new();
        client.write_all(b"hello ").await.unwrap();
        let read = futures_lite::AsyncBufReadExt::read_line(&mut reader, &mut line);
        assert!(poll_once_then_drop(read).await.is_pending());
        assert_eq!(line, "");
        client.write_all(b"world\n").await.unwrap();
        let read = futures_lite::AsyncBufReadExt::read_line(&mut reader, &mut line);
        assert_eq!(read.await.unwrap(), 6);
        assert_eq!(line, "world\n");
    });
}

/// A stream that reads and writes only through `&mut self`, as a TLS stream does: what
/// `treeloop::io::split` is for.
#[derive(Debug)]
struct MutOnly(DuplexStream);

impl AsyncRead for MutOnly {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for MutOnly {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

#[test]
fn split_gives_a_reader_task_and_a_writer_task_one_mut_only_stream_and_reunites() {
    block_on(async {
        let (near, far) = duplex(4);
        let (reader, writer) = treeloop::io::split(MutOnly(near));
        // The writer sends 12 bytes through a 4-byte pipe while the reader, in another
        // task, waits for the far end's reply: both halves are in use at once.
        let writing = spawn(async move {
            writer.write_all(b"abcdefghijkl").await.unwrap();
            writer.flush().await.unwrap();
            writer
        });
        let reading = spawn(async move {
            let mut lines = BufReader::new(reader).lines();
            let line = lines.next_line().await.unwrap();
            (line, lines.into_inner().into_inner())
        });
        let mut got = [0; 12];
        let mut n = 0;
        while n < 12 {
            n += far.read(&mut got[n..]).await.unwrap();
        }
        assert_eq!(&got, b"abcdefghijkl");
        far.write_all(b"ok\n").await.unwrap();
        let writer = writing.await.unwrap();
        let (line, reader) = reading.await.unwrap();
        assert_eq!(line.as_deref(), Some("ok"));
        let MutOnly(near) = reader.reunite(writer).expect("halves of one stream");
        near.write_all(b"!").await.unwrap();
        let mut bang = [0; 1];
        assert_eq!(far.read(&mut bang).await.unwrap(), 1);
        assert_eq!(&bang, b"!");
    });
}

#[test]
fn split_halves_of_two_streams_do_not_reunite_and_close_is_a_half_close() {
    block_on(async {
        let (a, a_far) = duplex(8);
        let (b, _b_far) = duplex(8);
        let (read_a, write_a) = treeloop::io::split(MutOnly(a));
        let (_read_b, write_b) = treeloop::io::split(MutOnly(b));
        let err = read_a.reunite(write_b).unwrap_err();
        assert_eq!(
            err.to_string(),
            "tried to reunite the halves of two different streams"
        );
        let treeloop::io::ReuniteError(read_a, _write_b) = err;
        // Closing the write half: the far end reads end of stream, the read half still reads.
        write_a.write_all(b"bye").await.unwrap();
        write_a.close().await.unwrap();
        let mut got = Vec::new();
        let mut far = a_far;
        far.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"bye");
        far.write_all(b"still").await.unwrap();
        let mut buf = [0; 8];
        assert_eq!(read_a.read(&mut buf).await.unwrap(), 5);
        assert_eq!(&buf[..5], b"still");
    });
}
