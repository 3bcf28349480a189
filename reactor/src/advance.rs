//! `advance`: moving virtual time by hand, for tests.
//!
//! Virtual time jumps by itself only when the loop is idle. A test in which some task is
//! always runnable (one that ignores its cancellation, say) never lets it be idle, so its
//! timers and the stall watchdog would never see time pass. `advance(d).await` moves the
//! clock by `d`, then waits for the loop's next turn: by the time it returns, every timer due
//! by the new time has fired and the watchdog has looked at the tree, as if the loop had
//! really spent `d` between two turns. Like tokio's `time::advance`.
//!
//! # Ground rules
//!
//! - Only virtual time moves: on the system clock `advance` panics, naming the fix.
//! - It is an await point: in a cancelled region it fails at once and moves nothing (R7).
//!   Once the clock has moved, it completes at the next turn whatever happens meanwhile:
//!   the move cannot be taken back.
//! - The wait for the turn is a timer due at the new time: the reactor fires it, with every
//!   other timer due by then, after the tick in which the clock moved.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use treeloop_executor::{Cancelled, poll_cancelled};

use crate::context::{expect_reactor, with_reactor};
use crate::timers::TimerKey;

/// Moves the running runtime's virtual time forward by `duration`, then waits for the
/// loop's next turn, when the timers due by the new time fire (see the module docs).
///
/// ```
/// use std::time::Duration;
/// use treeloop::time::{Instant, advance, sleep};
///
/// let runtime = treeloop::Builder::new().start_paused(true).build().unwrap();
/// runtime.block_on(async {
///     let start = Instant::now();
///     let nap = treeloop::spawn(sleep(Duration::from_secs(5)));
///     treeloop::yield_now().await.unwrap(); // the nap starts: due at 5 s
///     advance(Duration::from_secs(5)).await.unwrap();
///     assert!(nap.is_finished());
///     assert_eq!(start.elapsed(), Duration::from_secs(5));
/// });
/// ```
///
/// # Panics
///
/// When polled outside a runtime, or on a runtime that runs on the system clock: build it
/// with `Builder::start_paused(true)` (or a seed).
pub fn advance(duration: Duration) -> Advance {
    Advance {
        state: State::Start(duration),
    }
}

/// The future of [`advance`].
#[derive(Debug)]
#[must_use = "advance does nothing unless awaited"]
pub struct Advance {
    /// Where it is.
    state: State,
}

/// What an [`Advance`] has done so far.
#[derive(Debug)]
enum State {
    /// Not polled yet: the clock is still to move by this much.
    Start(Duration),
    /// The clock moved; this timer, due at the new time, fires at the loop's next turn.
    Waiting(TimerKey),
    /// Completed.
    Done,
}

impl Future for Advance {
    type Output = Result<(), Cancelled>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.state {
            State::Start(duration) => {
                if let Some(cancelled) = poll_cancelled(cx) {
                    return cancelled.map(Err);
                }
                let key = expect_reactor("time::advance", |reactor| {
                    let Some(now) = reactor.clock.advance_by(duration) else {
                        panic!(
                            "time::advance on a runtime that runs on the system clock: only \
                             virtual time can be moved; build the runtime with \
                             `Builder::start_paused(true)`"
                        )
                    };
                    reactor.timers.borrow_mut().insert(now, cx.waker().clone())
                });
                self.state = State::Waiting(key);
                Poll::Pending
            }
            State::Waiting(key) => {
                let fired = expect_reactor("time::advance", |reactor| {
                    !reactor.timers.borrow_mut().set_waker(key, cx.waker())
                });
                if !fired {
                    return Poll::Pending;
                }
                self.state = State::Done;
                Poll::Ready(Ok(()))
            }
            State::Done => panic!("time::advance polled after it completed"),
        }
    }
}

impl Drop for Advance {
    fn drop(&mut self) {
        if let State::Waiting(key) = self.state {
            with_reactor(|reactor| reactor.timers.borrow_mut().remove(key));
        }
    }
}
