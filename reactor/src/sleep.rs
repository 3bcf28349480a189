//! `sleep` and `sleep_until`: the timer await points.
//!
//! Like every treeloop await point, a sleep answers cancellation first (R6): in a cancelled
//! region it returns `Err(Cancelled)` at once, even if its deadline has passed, and it
//! unregisters its timer, so a cancelled sleep leaves nothing behind.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use treeloop_executor::{Cancelled, coop, poll_cancelled};

use crate::clock::Instant;
use crate::timer::Timer;

/// Waits until `duration` has passed on the runtime's clock.
///
/// Returns `Err(Cancelled)` as soon as the region is cancelled. `Duration::MAX` sleeps
/// until cancelled.
///
/// ```
/// use std::time::Duration;
/// use treeloop::time::{Instant, sleep};
/// use treeloop::{Builder, CancelReason, Cancelled, spawn};
///
/// // Virtual time: the half minute passes at once, and exactly.
/// let runtime = Builder::new().start_paused(true).build().unwrap();
/// runtime.block_on(async {
///     let start = Instant::now();
///     sleep(Duration::from_secs(30)).await.unwrap();
///     assert_eq!(start.elapsed(), Duration::from_secs(30));
///     // In a cancelled task a sleep returns `Err(Cancelled)` instead of waiting.
///     let forever = spawn(sleep(Duration::MAX));
///     forever.cancel();
///     let slept = forever.await.unwrap();
///     assert_eq!(slept, Err(Cancelled::new(CancelReason::Explicit)));
///     assert_eq!(start.elapsed(), Duration::from_secs(30));
/// });
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    Sleep {
        start: Start::After(duration),
    }
}

/// Waits until `deadline` on the runtime's clock; see [`sleep`].
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        start: Start::Timer(Timer::at(deadline).named("sleep")),
    }
}

/// When a sleep's deadline is known.
#[derive(Debug)]
enum Start {
    /// `sleep(duration)`: the deadline is fixed at the first poll, when the runtime's clock
    /// (real or virtual) can be read.
    After(Duration),
    /// The deadline is known.
    Timer(Timer),
}

/// The future of [`sleep`] and [`sleep_until`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    /// The duration before the first poll, the timer after.
    start: Start,
}

impl Sleep {
    /// The deadline, once known (after the first poll, or from `sleep_until`).
    pub fn deadline(&self) -> Option<Instant> {
        match &self.start {
            Start::After(_) => None,
            Start::Timer(timer) => Some(timer.deadline()),
        }
    }
}

impl Future for Sleep {
    type Output = Result<(), Cancelled>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(cancelled) = poll_cancelled(cx) {
            if let Start::Timer(timer) = &mut self.start {
                timer.unregister();
            }
            return cancelled.map(Err);
        }
        let polled = match &mut self.start {
            Start::Timer(timer) => timer.poll_expired(cx),
            Start::After(duration) => {
                // The first poll: the deadline is fixed by the clock read now, and the same
                // reading says whether it has passed.
                let now = Instant::now();
                let mut timer = Timer::at(now.saturating_add(*duration)).named("sleep");
                let polled = timer.poll_expired_from(cx, now);
                self.start = Start::Timer(timer);
                polled
            }
        };
        if polled.is_pending() {
            return Poll::Pending;
        }
        // Due: a completion, so it costs budget (an always-due sleep loop must yield).
        if coop::poll_proceed(cx).is_pending() {
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }
}

/// Waits until `duration` has passed, or until the region is cancelled: a sleep whose
/// output is `()`, for a user API that takes a delay as a `Future<Output = ()>` (a retry
/// helper, a rate limiter).
///
/// It ends at the deadline, or at once when its region is cancelled, so the code after it
/// gets to its next await point without waiting, and that await point reports the
/// cancellation (level-triggered, R6). Use [`sleep`] to hear it here, and always in a loop:
/// `loop { tick(); delay(d).await }` has no other await point, so once cancelled it spins
/// (the per-poll budget keeps the other tasks running, and the stall watchdog names it as
/// ignoring its cancellation); `sleep(d).await?` ends it.
///
/// Protocol timers that must keep time while their connection drains (hyper's `Timer`)
/// want the opposite, no cancellation at all: [`Timer`].
///
/// ```
/// use std::future::Future;
/// use std::time::Duration;
/// use treeloop::time::{delay, Instant};
///
/// fn after(wait: impl Future<Output = ()>) -> impl Future<Output = &'static str> {
///     async move {
///         wait.await;
///         "done"
///     }
/// }
///
/// let runtime = treeloop::Builder::new().start_paused(true).build().unwrap();
/// runtime.block_on(async {
///     let start = Instant::now();
///     assert_eq!(after(delay(Duration::from_secs(3))).await, "done");
///     assert_eq!(start.elapsed(), Duration::from_secs(3));
/// });
/// ```
pub fn delay(duration: Duration) -> Delay {
    Delay {
        sleep: sleep(duration),
    }
}

/// Waits until `deadline`, or until the region is cancelled; see [`delay`].
pub fn delay_until(deadline: Instant) -> Delay {
    Delay {
        sleep: sleep_until(deadline),
    }
}

/// The future of [`delay`] and [`delay_until`]: a [`Sleep`] whose output is `()`.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Delay {
    /// The sleep, whose cancellation is dropped.
    sleep: Sleep,
}

impl Delay {
    /// The deadline, once known (after the first poll, or from `delay_until`).
    pub fn deadline(&self) -> Option<Instant> {
        self.sleep.deadline()
    }
}

impl Future for Delay {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Cancelled, the sleep fails at once (spending budget like any completion): `()`.
        Pin::new(&mut self.sleep).poll(cx).map(|_| ())
    }
}
