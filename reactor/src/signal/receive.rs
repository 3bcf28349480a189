//! Awaiting signals: [`unix`] for any signal, [`ctrl_c`] for the next SIGINT.
//!
//! # Ground rules
//!
//! - Both are treeloop await points: the region's cancellation first (budgeted, through
//!   `poll_cancelled`), then the pipe's count. A cancelled receive takes nothing (R7): the
//!   delivery is still there for the next receive.
//! - A receiver is a count it last saw, nothing more: the pipe holds the count and the
//!   waiters, so dropping a receiver needs no bookkeeping (a waker it left is woken once,
//!   spuriously, at the next delivery, and dropped).

use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use treeloop_executor::{coop, poll_cancelled};

use super::SignalKind;
use super::pipe::Purpose;
use crate::context::{ReactorCore, expect_reactor, with_reactor};

/// Receives `kind`, a Unix signal: [`Signal::recv`] completes for deliveries that arrive
/// after this call, so a server can reload its configuration on SIGHUP, rotate logs on
/// SIGUSR2, or run its own shutdown.
///
/// ```no_run
/// use treeloop::signal::{self, SignalKind};
///
/// treeloop::block_on(async {
///     let mut hangups = signal::unix(SignalKind::hangup())?;
///     // Ends with Err(Cancelled) when the task is cancelled (a Ctrl-C shutdown, say).
///     while hangups.recv().await.is_ok() {
///         println!("reloading the configuration");
///     }
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
///
/// - Watching a signal replaces its default action (most signals terminate the process):
///   from this call on, the signal does only what the program makes of it, for as long as
///   the process lives (even after the receiver and the runtime are gone).
/// - Several receivers of one signal each see every delivery.
/// - Deliveries that arrive while nobody receives are merged: one `recv` completes for all
///   of them, as the OS itself merges a signal that arrives while one is pending. So a
///   `recv` means "at least one delivery since the last one", not a count of `kill` calls.
/// - A signal in the runtime's shutdown set (`Builder::shutdown_on_signal`) does both: its
///   first delivery cancels the root and wakes the receivers, which are then in a cancelled
///   region, so an unshielded `recv` reports that cancellation (`Err`, reason `Shutdown`),
///   not the delivery. The delivery is not lost: a `recv` inside a [`shield`] completes with
///   it at once. The second delivery exits the process, receivers or not.
/// - With `Builder::dump_on_signal`, SIGUSR1 both dumps the tree and reaches its receivers.
///
/// # Errors
///
/// - `InvalidInput` for the signals that cannot be caught (SIGKILL, SIGSTOP) and the fault
///   signals (SIGSEGV, SIGBUS, SIGILL, SIGFPE), and whatever the OS says of a number it
///   does not know;
/// - outside a treeloop runtime.
///
/// [`shield`]: treeloop_executor::shield
pub fn unix(kind: SignalKind) -> io::Result<Signal> {
    let seen = with_reactor(|reactor| watch(reactor, kind)).unwrap_or_else(|| {
        Err(io::Error::other(
            "signal::unix must be called inside a treeloop runtime: call it inside \
             `treeloop::block_on` (or a task spawned from it)",
        ))
    })?;
    Ok(Signal { kind, seen })
}

/// A receiver of one signal, made by [`unix`]. It belongs to the runtime it was made in.
#[derive(Debug)]
pub struct Signal {
    /// The signal.
    kind: SignalKind,
    /// The pipe's count at the last completion (or at creation).
    seen: u64,
}

impl Signal {
    /// The signal this receives.
    pub fn kind(&self) -> SignalKind {
        self.kind
    }

    /// Waits for a delivery of the signal since the last `recv` completed (or since
    /// [`unix`]).
    ///
    /// A treeloop await point: in a cancelled region it fails with an `io::Error` wrapping
    /// `Cancelled`, even if a delivery is waiting (the delivery stays for the next `recv`).
    pub async fn recv(&mut self) -> io::Result<()> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// [`recv`](Self::recv) as a poll function, for hand-written futures and streams.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(cancelled) = poll_cancelled(cx) {
            return cancelled.map(|cancelled| Err(cancelled.into()));
        }
        let polled = with_reactor(|reactor| poll_delivery(reactor, self.kind, &mut self.seen, cx));
        polled.unwrap_or_else(|| {
            Poll::Ready(Err(io::Error::other(
                "a signal receiver was polled outside the treeloop runtime it was made in: \
                 make it with `signal::unix` inside the runtime that awaits it",
            )))
        })
    }
}

/// Waits for the next Ctrl-C (SIGINT) after the first poll.
///
/// A treeloop await point: in a cancelled region it fails with an `io::Error` wrapping
/// `Cancelled`. The first poll starts watching SIGINT for the whole runtime, which replaces
/// the default action (terminating the process). `unix(SignalKind::interrupt())` is the same
/// signal as a reusable receiver, watching from the call rather than from the first poll.
///
/// ```
/// use std::time::Duration;
/// use treeloop::signal::ctrl_c;
/// use treeloop::time::{Instant, sleep, timeout};
/// use treeloop::{Builder, spawn};
///
/// let runtime = Builder::new().start_paused(true).build().unwrap();
/// runtime.block_on(async {
///     let server = spawn(sleep(Duration::MAX)); // serves until cancelled
///     // Wait for Ctrl-C, then stop the server. Nobody presses it in this example, so
///     // the wait gives up after a minute of virtual time.
///     let start = Instant::now();
///     let pressed = timeout(Duration::from_secs(60), ctrl_c()).await;
///     assert_eq!(pressed.unwrap_err().deadline(), start + Duration::from_secs(60));
///     server.cancel();
///     assert!(server.await.unwrap().is_err());
/// });
/// ```
pub fn ctrl_c() -> CtrlC {
    CtrlC { seen: None }
}

/// The future of [`ctrl_c`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct CtrlC {
    /// The SIGINT count at the first poll.
    seen: Option<u64>,
}

impl Future for CtrlC {
    type Output = io::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(cancelled) = poll_cancelled(cx) {
            return cancelled.map(|cancelled| Err(cancelled.into()));
        }
        let kind = SignalKind::interrupt();
        let seen = &mut self.seen;
        expect_reactor("ctrl_c", |reactor| {
            let seen = match seen {
                Some(seen) => seen,
                None => match watch(reactor, kind) {
                    Ok(count) => seen.insert(count),
                    Err(err) => return Poll::Ready(Err(err)),
                },
            };
            poll_delivery(reactor, kind, seen, cx)
        })
    }
}

/// Watches `kind` for receiving; the count of deliveries so far.
fn watch(reactor: &ReactorCore, kind: SignalKind) -> io::Result<u64> {
    reactor
        .signals
        .borrow_mut()
        .watch(&reactor.registry, kind, Purpose::Receive)
}

/// Completes (and takes every delivery up to now) if `kind` arrived since `seen`; otherwise
/// waits for the next delivery. Not cancellation-aware: the caller checked.
fn poll_delivery(
    reactor: &ReactorCore,
    kind: SignalKind,
    seen: &mut u64,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    let mut signals = reactor.signals.borrow_mut();
    let Some(count) = signals.count(kind) else {
        return Poll::Ready(Err(io::Error::other(format!(
            "this runtime does not watch {kind}: the receiver was made in another runtime"
        ))));
    };
    if count <= *seen {
        signals.wake_on_next(kind, cx.waker());
        return Poll::Pending;
    }
    // A completion costs budget, so a task that always finds a delivery still yields.
    drop(signals);
    if coop::poll_proceed(cx).is_pending() {
        return Poll::Pending;
    }
    *seen = count;
    Poll::Ready(Ok(()))
}
