//! `sleep` and `sleep_until`: the timer await points.
//!
//! Like every treeloop await point, a sleep answers cancellation first (R6): in a cancelled
//! region it returns `Err(Cancelled)` at once, even if its deadline has passed, and it
//! unregisters its timer, so a cancelled sleep leaves nothing behind.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use treeloop_executor::{Cancelled, cancelled_here, coop};

use crate::clock::Instant;
use crate::driver::{expect_reactor, with_reactor};
use crate::timers::TimerKey;

/// Waits until `duration` has passed on the runtime's clock.
///
/// Returns `Err(Cancelled)` as soon as the region is cancelled. `Duration::MAX` sleeps
/// until cancelled.
pub fn sleep(duration: Duration) -> Sleep {
    Sleep {
        deadline: None,
        duration,
        timer: None,
    }
}

/// Waits until `deadline` on the runtime's clock; see [`sleep`].
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline: Some(deadline),
        duration: Duration::ZERO,
        timer: None,
    }
}

/// The future of [`sleep`] and [`sleep_until`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    /// When it is due; for `sleep`, fixed at the first poll (the runtime's clock is only
    /// known inside the runtime).
    deadline: Option<Instant>,
    /// For `sleep`: how long, from the first poll.
    duration: Duration,
    /// The registered timer, while pending.
    timer: Option<TimerKey>,
}

impl Sleep {
    /// The deadline, once known (after the first poll, or from `sleep_until`).
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    fn unregister(&mut self) {
        if let Some(timer) = self.timer.take() {
            with_reactor(|reactor| reactor.timers.borrow_mut().remove(timer));
        }
    }
}

impl Future for Sleep {
    type Output = Result<(), Cancelled>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(cancelled) = cancelled_here() {
            self.unregister();
            return Poll::Ready(Err(cancelled));
        }
        let this = &mut *self;
        let done = expect_reactor("sleep", |reactor| {
            let now = reactor.now();
            let deadline = *this
                .deadline
                .get_or_insert_with(|| now.saturating_add(this.duration));
            if now >= deadline {
                return true;
            }
            let mut timers = reactor.timers.borrow_mut();
            match this.timer {
                Some(timer) => timers.set_waker(timer, cx.waker()),
                None => this.timer = Some(timers.insert(deadline, cx.waker().clone())),
            }
            false
        });
        if !done {
            return Poll::Pending;
        }
        if coop::poll_proceed(cx).is_pending() {
            return Poll::Pending;
        }
        self.unregister();
        Poll::Ready(Ok(()))
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.unregister();
    }
}
