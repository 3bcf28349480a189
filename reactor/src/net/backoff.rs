//! `AcceptBackoff`: keeps an accept loop alive through errors that are about the moment, not
//! about the listener.
//!
//! `accept` fails for two kinds of reasons. Most say nothing about the listener: the process
//! or the system ran out of descriptors (`EMFILE`, `ENFILE`), the kernel ran out of buffers or
//! memory (`ENOBUFS`, `ENOMEM`), or a peer gave up before its connection was taken off the
//! queue (`ECONNABORTED`, and on Linux the network errors `accept(2)` says to "treat like
//! `EAGAIN`"). The listener is fine and the other connections still wait in its backlog. A
//! loop that stops there takes the whole server down for a spike of load; a loop that
//! retries at once spins at full CPU, because the backlog stays readable and every retry
//! fails the same way until some connection closes and frees a descriptor. The rest
//! (`EBADF`, `EINVAL`, …) mean the listener itself is broken: no retry can help, so they
//! go back to the caller, which should stop.
//!
//! ```no_run
//! use std::io;
//! use treeloop::net::{AcceptBackoff, TcpListener};
//!
//! async fn serve(listener: TcpListener) -> io::Result<()> {
//!     let mut backoff = AcceptBackoff::new();
//!     loop {
//!         // Waits out transient errors; a fatal one, or the cancellation, ends the loop.
//!         let (stream, _peer) = backoff.accept(&listener).await?;
//!         treeloop::spawn(async move { drop(stream) }); // serve it
//!     }
//! }
//! ```
//!
//! [`AcceptBackoff::accept`] is this loop's step: `accept`, then [`reset`](AcceptBackoff::reset)
//! after a connection or [`wait`](AcceptBackoff::wait) after an error. A loop that must see
//! each error itself (to count them, say) calls those two:
//!
//! ```no_run
//! # use std::io;
//! # use treeloop::net::{AcceptBackoff, TcpListener};
//! # async fn serve(listener: TcpListener) -> io::Result<()> {
//! let mut backoff = AcceptBackoff::new();
//! loop {
//!     match listener.accept().await {
//!         Ok((stream, _peer)) => {
//!             backoff.reset();
//!             treeloop::spawn(async move { drop(stream) }); // serve it
//!         }
//!         Err(err) => {
//!             eprintln!("accept: {err}");
//!             backoff.wait(err).await?;
//!         }
//!     }
//! }
//! # }
//! ```
//!
//! # The delays: 5 ms, doubling, at most 500 ms
//!
//! The first wait is short because descriptors usually come back within milliseconds (a
//! connection closing), and a server at its limit should pick up the next connection about
//! as soon as it can be served. Each further error in a row doubles the wait, so lasting
//! exhaustion costs two failed `accept` calls a second instead of a busy loop, and the cap
//! bounds how late the loop notices that the shortage is over. The numbers are those of
//! Go's `net/http` (5 ms doubling, capped at 1 s) with the cap of actix-server, which pauses
//! accepting for 510 ms after an error; hyper 0.14's `AddrIncoming` and axum's `serve`
//! wait a fixed second. So the servers Rust users know wait at most half a second to a second
//! before trying again, and keep going however long the shortage lasts: this does the same,
//! a little faster to recover.
//!
//! # Ground rules
//!
//! - One `AcceptBackoff` per accept loop, and [`reset`](AcceptBackoff::reset) after every
//!   accepted connection: the delay measures how long the errors have lasted *in a row*.
//! - [`wait`](AcceptBackoff::wait) is a treeloop await point: it sleeps on the runtime's
//!   clock (so it costs nothing under virtual time), and in a cancelled region it returns the
//!   `Cancelled` error at once, with no effect (no report, the delay unchanged), so a server
//!   shutting down while out of descriptors does not wait out its backoff.
//! - The first transient error is reported once through the runtime's report sink, never
//!   again by this `AcceptBackoff`: under lasting exhaustion the loop retries twice a second,
//!   and a line per retry would bury the one line the operator needs.

use std::io;
use std::time::Duration;

use treeloop_executor::report::report;

use super::Listener;
use crate::sleep::sleep;

/// The first wait after a success (or after [`AcceptBackoff::new`]).
const MIN_DELAY: Duration = Duration::from_millis(5);
/// The longest wait: how late, at most, the loop notices that the shortage is over.
const MAX_DELAY: Duration = Duration::from_millis(500);

/// Waits out transient `accept` errors (out of descriptors, buffers or memory; a peer that
/// gave up) with a delay that doubles while they last: 5 ms after a success, at most
/// 500 ms. The first transient error is reported once through the runtime's report sink;
/// fatal errors and the cancellation come back from [`wait`](AcceptBackoff::wait) at once.
/// One per accept loop; [`reset`](AcceptBackoff::reset) after every accepted connection.
#[derive(Debug)]
pub struct AcceptBackoff {
    /// How long the next transient error waits: [`MIN_DELAY`] after `new` and `reset`,
    /// doubled by each wait up to [`MAX_DELAY`].
    delay: Duration,
    /// Whether this backoff still owes the report sink its one line.
    first_error: FirstError,
}

/// Whether the first transient error has been reported yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FirstError {
    /// No transient error has come through `wait` yet: the next one is reported.
    Unreported,
    /// One was reported; later ones are waited out silently.
    Reported,
}

/// Why an `accept` failed with the listener not at fault (the two halves of the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transient {
    /// The process or the system ran out of something a new connection needs.
    OutOfResources,
    /// The connection failed before it was taken off the queue.
    PeerGaveUp,
}

impl AcceptBackoff {
    /// A backoff whose first wait is the shortest, with its report still due.
    pub fn new() -> AcceptBackoff {
        AcceptBackoff {
            delay: MIN_DELAY,
            first_error: FirstError::Unreported,
        }
    }

    /// Called with an accept error. A transient one (EMFILE, ENFILE, ENOBUFS, ENOMEM,
    /// ECONNABORTED, and similar: the listener is fine, a resource ran out or the peer gave
    /// up; see [`is_transient_accept_error`]) is waited out: sleeps the current delay on the
    /// runtime's clock, doubles the delay up to a cap (5 ms doubling to 500 ms), and returns
    /// `Ok(())` so the caller accepts again. The first transient error of this
    /// `AcceptBackoff` is reported once through the runtime's report sink, saying what
    /// happened and that the loop retries. Any other error is returned as is (the caller
    /// should stop), including the `Cancelled` error of a cancelled `accept`.
    ///
    /// An await point: in a cancelled region it returns the `Cancelled` `io::Error` at once
    /// (recognise it with `Cancelled::from_io`), without reporting or doubling.
    pub async fn wait(&mut self, err: io::Error) -> io::Result<()> {
        let Some(cause) = transient_cause(&err) else {
            return Err(err);
        };
        // Before any effect: a cancelled wait neither reports nor moves the delay.
        super::not_cancelled().await?;
        let delay = self.delay;
        if self.first_error == FirstError::Unreported {
            self.first_error = FirstError::Reported;
            report(format_args!(
                "treeloop: accept failed: {err}. {} The accept loop waits {delay:?} and \
                 accepts again, doubling the wait up to {MAX_DELAY:?} while such errors last; \
                 this is reported once.",
                cause.explanation()
            ));
        }
        self.delay = delay.saturating_mul(2).min(MAX_DELAY);
        sleep(delay).await?;
        Ok(())
    }

    /// Called after a successful accept: the next transient error starts from the shortest
    /// delay again. (The report stays made: it is once per `AcceptBackoff`.)
    pub fn reset(&mut self) {
        self.delay = MIN_DELAY;
    }

    /// Accepts the next connection on `listener`: the step of an accept loop. A transient
    /// error is waited out and the accept tried again ([`wait`](Self::wait)); a connection
    /// resets the delay ([`reset`](Self::reset)) and is returned. A fatal error comes back
    /// as it is, and so does the cancellation: an await point, which in a cancelled region
    /// fails with the `Cancelled` `io::Error` and takes no connection (checked here too, so
    /// that a listener of your own whose `accept` does not look needs not).
    pub async fn accept<L: Listener>(&mut self, listener: &L) -> io::Result<(L::Io, L::Addr)> {
        loop {
            super::not_cancelled().await?;
            match listener.accept().await {
                Ok(accepted) => {
                    self.reset();
                    return Ok(accepted);
                }
                Err(err) => self.wait(err).await?,
            }
        }
    }
}

impl Default for AcceptBackoff {
    fn default() -> AcceptBackoff {
        AcceptBackoff::new()
    }
}

impl Transient {
    /// What the operator should know, and do, about it.
    fn explanation(self) -> &'static str {
        match self {
            Transient::OutOfResources => {
                "The listener is fine, but the process ran out of something a connection \
                 needs (descriptors, buffers or memory); if this lasts, raise the limit \
                 (`ulimit -n` for descriptors) or serve fewer connections at once."
            }
            Transient::PeerGaveUp => {
                "The listener is fine: a client gave up before its connection was accepted."
            }
        }
    }
}

/// Whether `err`, returned by `accept`, is transient: the listener is fine, a resource ran
/// out or the peer gave up, and accepting again later may succeed. What
/// [`AcceptBackoff::wait`] waits out; everything else (`EBADF`, `EINVAL`, a `Cancelled`
/// error, …) is fatal to an accept loop.
pub fn is_transient_accept_error(err: &io::Error) -> bool {
    transient_cause(err).is_some()
}

/// The [`Transient`] cause of `err`, if it is one. By `io::ErrorKind` where std decodes the
/// errno to a stable kind, by the errno itself where it does not.
fn transient_cause(err: &io::Error) -> Option<Transient> {
    use io::ErrorKind as Kind;
    match err.kind() {
        Kind::OutOfMemory => return Some(Transient::OutOfResources),
        Kind::ConnectionAborted
        | Kind::ConnectionReset
        | Kind::ConnectionRefused
        | Kind::TimedOut
        | Kind::NetworkDown
        | Kind::NetworkUnreachable
        | Kind::HostUnreachable => return Some(Transient::PeerGaveUp),
        _ => {}
    }
    match err.raw_os_error()? {
        errno::EMFILE | errno::ENFILE | errno::ENOBUFS => Some(Transient::OutOfResources),
        code if errno::PENDING_NETWORK_ERRORS.contains(&code) => Some(Transient::PeerGaveUp),
        _ => None,
    }
}

/// The errno values of transient accept errors that std decodes to no stable
/// `io::ErrorKind` (they are `Uncategorized`), so that only the number tells them apart.
/// Numbers rather than the `libc` crate: each is fixed by its OS's ABI, and the reactor's
/// dependencies are the ones SPEC.md names.
mod errno {
    /// Too many open files in this process (the same number on every Unix).
    pub(super) const EMFILE: i32 = 24;
    /// Too many open files in the system (the same number on every Unix).
    pub(super) const ENFILE: i32 = 23;
    /// No buffer space available.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(super) const ENOBUFS: i32 = 105;
    /// No buffer space available (the BSDs and Apple's systems).
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub(super) const ENOBUFS: i32 = 55;
    /// Linux hands a new connection's pending network error to `accept` itself, and
    /// `accept(2)` says to treat these "like `EAGAIN` by retrying": EPROTO, ENOPROTOOPT,
    /// EHOSTDOWN, ENONET, EOPNOTSUPP (the others have an `ErrorKind`), and EPERM when
    /// firewall rules forbid the connection.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(super) const PENDING_NETWORK_ERRORS: &[i32] = &[71, 92, 112, 64, 95, 1];
    /// Elsewhere such errors come later, on the connected socket.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub(super) const PENDING_NETWORK_ERRORS: &[i32] = &[];
}

/// On virtual time, with the reports collected: exact delays, and no real sleep.
#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::future::Future;
    use std::rc::Rc;

    use treeloop_executor::diag::Diagnostics;
    use treeloop_executor::{CancelReason, Cancelled, Executor, Options, shield, spawn};

    use super::*;
    use crate::clock::Instant;
    use crate::{ClockMode, Reactor, ReactorOptions};

    /// Runs `body` as the root of a runtime on virtual time; returns its output and every
    /// report the runtime made, as text.
    fn on_virtual_time<F: Future>(body: F) -> (F::Output, Vec<String>) {
        let mut reactor = Reactor::new(ReactorOptions {
            clock: ClockMode::Paused,
            ..ReactorOptions::default()
        })
        .expect("a reactor");
        let reports = Rc::new(RefCell::new(Vec::new()));
        let sink = reports.clone();
        let options = Options {
            diagnostics: Diagnostics {
                clock: Some(reactor.clock_source()),
                ..Diagnostics::default()
            },
            sink: Some(Rc::new(move |report| {
                sink.borrow_mut().push(report.to_string())
            })),
            ..Options::default()
        };
        let executor = Executor::with_options(reactor.unparker(), options);
        let _entered = reactor.enter();
        let output = executor.block_on(body, &mut reactor);
        drop(executor);
        (output, reports.take())
    }

    fn os_error(errno: i32) -> io::Error {
        io::Error::from_raw_os_error(errno)
    }

    fn emfile() -> io::Error {
        os_error(errno::EMFILE)
    }

    /// How long `backoff.wait(err)` took on the runtime's clock, and what it returned.
    async fn timed_wait(backoff: &mut AcceptBackoff, err: io::Error) -> (Duration, io::Result<()>) {
        let start = Instant::now();
        let waited = backoff.wait(err).await;
        (start.elapsed(), waited)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn resource_and_peer_errors_are_transient_the_rest_are_not() {
        // EMFILE, ENFILE, ENOBUFS, ENOMEM, ECONNABORTED, ECONNRESET (Linux numbers).
        for errno in [24, 23, 105, 12, 103, 104] {
            assert!(is_transient_accept_error(&os_error(errno)), "errno {errno}");
        }
        // EBADF, EINVAL, ENOTSOCK, EFAULT: the listener itself is broken.
        for errno in [9, 22, 88, 14] {
            assert!(
                !is_transient_accept_error(&os_error(errno)),
                "errno {errno}"
            );
        }
        let cancelled = io::Error::from(Cancelled::new(CancelReason::Shutdown));
        assert!(!is_transient_accept_error(&cancelled));
        assert!(!is_transient_accept_error(&io::Error::other(
            "not an OS error"
        )));
    }

    #[test]
    fn delays_double_from_5_ms_up_to_500_ms() {
        let (waits, _) = on_virtual_time(async {
            let mut backoff = AcceptBackoff::new();
            let mut waits = Vec::new();
            for _ in 0..9 {
                let (waited, result) = timed_wait(&mut backoff, emfile()).await;
                result.expect("a transient error is waited out");
                waits.push(waited);
            }
            waits
        });
        let expected = [5, 10, 20, 40, 80, 160, 320, 500, 500].map(ms);
        assert_eq!(waits, expected);
    }

    #[test]
    fn reset_starts_again_from_the_shortest_delay() {
        let (waits, _) = on_virtual_time(async {
            let mut backoff = AcceptBackoff::default();
            let mut waits = Vec::new();
            for _ in 0..3 {
                waits.push(timed_wait(&mut backoff, emfile()).await.0);
            }
            backoff.reset();
            for errno in [errno::ENFILE, 103] {
                waits.push(timed_wait(&mut backoff, os_error(errno)).await.0);
            }
            waits
        });
        assert_eq!(waits, [5, 10, 20, 5, 10].map(ms));
    }

    #[test]
    fn fatal_errors_come_back_as_they_are_at_once_and_change_nothing() {
        let ((fatal, next), reports) = on_virtual_time(async {
            let mut backoff = AcceptBackoff::new();
            let (waited, fatal) = timed_wait(&mut backoff, os_error(9)).await; // EBADF
            assert_eq!(waited, Duration::ZERO);
            let cancelled = io::Error::from(Cancelled::new(CancelReason::Shutdown));
            let passed = backoff.wait(cancelled).await.expect_err("not transient");
            assert!(Cancelled::from_io(&passed).is_some(), "{passed}");
            // The delay did not move: the first transient error still waits 5 ms.
            (fatal, timed_wait(&mut backoff, emfile()).await.0)
        });
        let fatal = fatal.expect_err("EBADF is fatal");
        assert_eq!(fatal.raw_os_error(), Some(9));
        assert_eq!(next, ms(5));
        assert_eq!(reports.len(), 1, "only the transient error: {reports:?}");
    }

    #[test]
    fn the_first_transient_error_is_reported_once_saying_the_loop_retries() {
        let (_, reports) = on_virtual_time(async {
            let mut backoff = AcceptBackoff::new();
            for _ in 0..5 {
                backoff.wait(emfile()).await.unwrap();
            }
            backoff.reset();
            backoff.wait(os_error(103)).await.unwrap(); // ECONNABORTED
        });
        assert_eq!(reports.len(), 1, "{reports:?}");
        let report = &reports[0];
        for says in [
            "accept failed",
            "Too many open files",
            "waits 5ms and accepts again",
            "up to 500ms",
            "ulimit -n",
            "reported once",
        ] {
            assert!(report.contains(says), "{says:?} missing from {report:?}");
        }
    }

    #[test]
    fn each_backoff_reports_its_own_first_error() {
        let (_, reports) = on_virtual_time(async {
            AcceptBackoff::new().wait(emfile()).await.unwrap();
            AcceptBackoff::new().wait(os_error(103)).await.unwrap();
        });
        assert_eq!(reports.len(), 2, "{reports:?}");
        assert!(reports[1].contains("a client gave up"), "{reports:?}");
    }

    /// A listener whose accepts fail with these errors in turn, then connect.
    struct Scripted {
        errors: RefCell<Vec<io::Error>>,
        accepts: Cell<usize>,
    }

    impl Scripted {
        fn failing(errors: impl IntoIterator<Item = io::Error>) -> Scripted {
            let mut errors: Vec<_> = errors.into_iter().collect();
            errors.reverse();
            Scripted {
                errors: RefCell::new(errors),
                accepts: Cell::new(0),
            }
        }
    }

    impl Listener for Scripted {
        type Io = crate::sim::DuplexStream;
        type Addr = usize;

        async fn accept(&self) -> io::Result<(Self::Io, usize)> {
            self.accepts.set(self.accepts.get() + 1);
            match self.errors.borrow_mut().pop() {
                Some(err) => Err(err),
                None => Ok((crate::sim::duplex(64).0, self.accepts.get())),
            }
        }
    }

    #[test]
    fn accept_waits_out_transient_errors_and_resets_on_the_connection() {
        let ((waited, peer, accepts, next), reports) = on_virtual_time(async {
            let listener = Scripted::failing([emfile(), os_error(103), emfile()]);
            let mut backoff = AcceptBackoff::new();
            let start = Instant::now();
            let (_stream, peer) = backoff.accept(&listener).await.expect("a connection");
            let waited = start.elapsed();
            // The connection reset the delay: the next transient error waits 5 ms again.
            let next = timed_wait(&mut backoff, emfile()).await.0;
            (waited, peer, listener.accepts.get(), next)
        });
        assert_eq!(waited, ms(5 + 10 + 20), "three waits, doubling");
        assert_eq!((peer, accepts), (4, 4), "the fourth accept connected");
        assert_eq!(next, ms(5));
        assert_eq!(reports.len(), 1, "reported once: {reports:?}");
    }

    #[test]
    fn accept_returns_a_fatal_error_at_once_and_takes_nothing_when_cancelled() {
        let ((fatal, waited, cancelled, accepts), _) = on_virtual_time(async {
            let listener = Scripted::failing([os_error(9)]); // EBADF
            let mut backoff = AcceptBackoff::new();
            let start = Instant::now();
            let fatal = backoff.accept(&listener).await.map(|_| ());
            let waited = start.elapsed();
            let task = spawn(async move {
                let taken = AcceptBackoff::new().accept(&listener).await.map(|_| ());
                (taken, listener.accepts.get())
            });
            task.cancel();
            let (cancelled, accepts) = task.await.expect("the task returns");
            (fatal, waited, cancelled, accepts)
        });
        let fatal = fatal.expect_err("EBADF is fatal");
        assert_eq!(fatal.raw_os_error(), Some(9));
        assert_eq!(waited, Duration::ZERO);
        let cancelled = cancelled.expect_err("cancelled");
        assert!(Cancelled::from_io(&cancelled).is_some(), "{cancelled}");
        assert_eq!(
            accepts, 1,
            "only the fatal accept: the cancelled one never reached the listener"
        );
    }

    #[test]
    fn a_wait_in_a_cancelled_region_fails_at_once_with_no_effect() {
        let ((waited, result, next), reports) = on_virtual_time(async {
            let task = spawn(async {
                let mut backoff = AcceptBackoff::new();
                let (waited, result) = timed_wait(&mut backoff, emfile()).await;
                // Shielded, the same backoff still starts from 5 ms: nothing moved.
                let next = shield(timed_wait(&mut backoff, emfile())).await;
                (waited, result, next.0)
            });
            task.cancel(); // before its first poll: the task starts cancelled
            task.await.expect("the task returns")
        });
        let err = result.expect_err("cancelled");
        assert!(Cancelled::from_io(&err).is_some(), "{err}");
        assert_eq!(waited, Duration::ZERO);
        assert_eq!(next, ms(5));
        assert_eq!(
            reports.len(),
            1,
            "only the shielded wait reports: {reports:?}"
        );
    }

    #[test]
    fn a_wait_cancelled_while_sleeping_returns_at_once() {
        let ((waited, result), _) = on_virtual_time(async {
            let task = spawn(async {
                let mut backoff = AcceptBackoff::new();
                for _ in 0..8 {
                    backoff.wait(emfile()).await.unwrap(); // up to the 500 ms cap
                }
                timed_wait(&mut backoff, emfile()).await
            });
            let start = Instant::now();
            crate::sleep::sleep(ms(5 + 10 + 20 + 40 + 80 + 160 + 320 + 500 + 100))
                .await
                .unwrap();
            task.cancel(); // 100 ms into the 500 ms wait
            let waited = task.await.expect("the task returns");
            assert_eq!(
                start.elapsed(),
                ms(1235),
                "the cancel ended the wait at once"
            );
            waited
        });
        assert_eq!(waited, ms(100));
        let err = result.expect_err("cancelled");
        assert!(Cancelled::from_io(&err).is_some(), "{err}");
    }
}
