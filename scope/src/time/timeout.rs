//! `timeout`: a cancel region with a deadline (R16).
//!
//! The body runs in its own region of the tree. When the deadline passes, the region is
//! cancelled (reason `Deadline`): every treeloop await point in the body and in tasks spawned
//! inside it returns `Err(Cancelled)`. The body and those tasks then run their cleanup, and
//! only when all of them have finished does the timeout return `Err(Elapsed)`.
//!
//! # Ground rules
//!
//! - **The deadline is checked *before* the body is polled**, so `timeout(0, body)` runs the
//!   body until its first await point, which fails, and a body that becomes ready exactly
//!   at the deadline loses: its await point fails with `Cancelled` (reason `Deadline`)
//!   before it takes anything, so nothing is lost (a message due at the deadline stays in
//!   its channel for the next receive), and the timeout returns `Err(Elapsed)`. tokio polls
//!   the body first, so there a reply arriving at the deadline is returned. Rejected here
//!   because the outcome would then depend on the order in which the tasks woken at that
//!   instant run: a body that sleeps until the deadline would win, the same body waiting
//!   for a child task that sleeps until the deadline could lose, and a seed would decide.
//!   Deadline-first gives one answer for "at the deadline" whatever the shape of the body,
//!   the one the torture tests' oracle (tests/torture_trees) predicts.
//! - Once the deadline has fired, the timeout returns `Err(Elapsed)` whatever the body
//!   returns (its value may be the result of being cut short), unless an enclosing cancel
//!   wins (below).
//! - **An enclosing cancel wins over the deadline** (R15, as in trio). The outcome is
//!   decided when the timeout completes, after the region's cleanup: if at that moment the
//!   node that awaits the timeout is cancelled (not hidden by a shield), the timeout
//!   returns `Ok(output)`, the body's own result, which is the cancellation as the body saw
//!   it (its await points failed with `Cancelled`, reason `Deadline` if the deadline came
//!   first), instead of `Err(Elapsed)`. So `timeout(d, op).await??` unwinds a shutdown
//!   instead of treating it as a timeout to retry. In either order: the deadline fired and
//!   then the outside was cancelled during the cleanup, or the other way round. An
//!   enclosing cancel that comes only after the timeout returned is seen by the enclosing
//!   code's next await point (R6); the timeout has already reported `Elapsed` then.
//! - The region is done when the body has returned *and* every task spawned inside it has
//!   finished: the timeout waits for them, and the deadline keeps applying to them meanwhile
//!   (a task spawned through a `Scope` handle belongs to its scope instead, R1).
//! - Nested timeouts: an outer deadline cancels the inner region too (it is a subtree), but
//!   only the timeout whose own deadline fired reports `Elapsed`; the inner one returns the
//!   body's (cancelled) result to it. If both fired, the outer one is reported: for the
//!   inner one, the outer deadline is an enclosing cancel, which wins (below).
//! - The timer is the reactor's raw [`Timer`], not a `sleep`: a cancelled region around the
//!   timeout must not stop the deadline, and inside a shield the deadline still fires (R11).

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::io;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use treeloop_executor::{CancelReason, Region, RegionKind};
use treeloop_reactor::time::{Instant, Timer};

/// The error of a [`timeout`] whose deadline passed. Distinct from `Cancelled`, which is what
/// the await points *inside* the timed-out region returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed {
    /// The deadline that passed.
    deadline: Instant,
}

impl Elapsed {
    /// The deadline that passed.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline elapsed")
    }
}

impl Error for Elapsed {}

/// A timeout as an I/O error of kind `TimedOut`.
impl From<Elapsed> for io::Error {
    fn from(elapsed: Elapsed) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, elapsed)
    }
}

/// Runs `future` with a deadline `duration` from its first poll: `Ok(output)` if it finishes
/// first, else the region is cancelled, the future finishes its cleanup, and `Err(Elapsed)`.
///
/// ```
/// use std::time::Duration;
/// use treeloop::Builder;
/// use treeloop::time::{Instant, sleep, timeout};
///
/// let runtime = Builder::new().start_paused(true).build().unwrap();
/// runtime.block_on(async {
///     let start = Instant::now();
///     let quick = timeout(Duration::from_secs(5), async {
///         sleep(Duration::from_secs(1)).await.map(|()| "reply")
///     });
///     assert_eq!(quick.await, Ok(Ok("reply")));
///     let slow = timeout(Duration::from_secs(5), sleep(Duration::from_secs(60))).await;
///     // The deadline, 5 s after the second timeout started, cut the sleep short.
///     assert_eq!(slow.unwrap_err().deadline(), start + Duration::from_secs(6));
///     assert_eq!(start.elapsed(), Duration::from_secs(6));
/// });
/// ```
///
/// **An outside cancel is not a timeout.** When the code awaiting the timeout is cancelled
/// (its task, its scope, a shutdown) while the body runs, the body's await points fail with
/// that `Cancelled`, and the timeout returns `Ok(output)`, the body's own result: for a body
/// that propagates the cancellation, `Ok(Err(Cancelled))`, never `Err(Elapsed)`. This holds
/// even if the deadline passed too, in either order, as long as the outside cancel has
/// arrived (and no shield between hides it) by the time the body and the tasks spawned in
/// it have finished their cleanup. So
/// `timeout(d, op).await??` unwinds a shutdown instead of treating it as a timeout to retry.
///
/// ```
/// use std::time::Duration;
/// use treeloop::time::{sleep, timeout};
/// use treeloop::{Builder, CancelReason, Cancelled, spawn};
///
/// let runtime = Builder::new().start_paused(true).build().unwrap();
/// let result = runtime.block_on(async {
///     let request = spawn(timeout(Duration::from_secs(10), sleep(Duration::from_secs(60))));
///     sleep(Duration::from_secs(1)).await.unwrap();
///     request.cancel(); // from outside, long before the deadline
///     request.await.unwrap()
/// });
/// // The body's own result, handed up: not `Err(Elapsed)`.
/// assert_eq!(result, Ok(Err(Cancelled::new(CancelReason::Explicit))));
/// ```
#[track_caller]
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout::new(Deadline::After(duration), future, Location::caller())
}

/// Like [`timeout`], with an absolute deadline.
///
/// ```
/// use std::time::Duration;
/// use treeloop::Builder;
/// use treeloop::time::{Instant, sleep, timeout_at};
///
/// let runtime = Builder::new().start_paused(true).build().unwrap();
/// runtime.block_on(async {
///     // One deadline for two steps: the second gets what the first left of it.
///     let deadline = Instant::now() + Duration::from_secs(10);
///     let first = timeout_at(deadline, sleep(Duration::from_secs(4))).await;
///     assert_eq!(first, Ok(Ok(())));
///     let second = timeout_at(deadline, sleep(Duration::from_secs(8))).await;
///     assert_eq!(second.unwrap_err().deadline(), deadline);
///     assert_eq!(Instant::now(), deadline);
/// });
/// ```
#[track_caller]
pub fn timeout_at<F: Future>(deadline: Instant, future: F) -> Timeout<F> {
    Timeout::new(Deadline::At(deadline), future, Location::caller())
}

/// When the deadline is.
#[derive(Clone, Copy, Debug)]
enum Deadline {
    /// This long after the first poll (the runtime's clock is read then).
    After(Duration),
    /// At this instant.
    At(Instant),
}

/// Where a timeout is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The body runs; the deadline has not passed.
    BeforeDeadline,
    /// The deadline passed and the region was cancelled; the body is cleaning up.
    Expired,
}

pin_project! {
    /// The future of [`timeout`] and [`timeout_at`].
    #[must_use = "futures do nothing unless awaited"]
    pub struct Timeout<F: Future> {
        #[pin]
        future: F,
        // The deadline, until the first poll fixes the timer.
        deadline: Deadline,
        // The region and its timer, from the first poll until the region is done.
        armed: Option<(Region, Timer)>,
        // The body's output, kept while tasks spawned in the region finish.
        output: Option<F::Output>,
        // Before the deadline, or expired.
        phase: Phase,
        // Where `timeout` was called.
        location: &'static Location<'static>,
    }
}

impl<F: Future> Timeout<F> {
    fn new(deadline: Deadline, future: F, location: &'static Location<'static>) -> Self {
        Timeout {
            future,
            deadline,
            armed: None,
            output: None,
            phase: Phase::BeforeDeadline,
            location,
        }
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let (deadline, location) = (*this.deadline, *this.location);
        let (region, timer) = this.armed.get_or_insert_with(|| {
            let at = match deadline {
                Deadline::After(duration) => Instant::now().saturating_add(duration),
                Deadline::At(at) => at,
            };
            let region = Region::open_at(RegionKind::Region, location);
            (region, Timer::at(at).named("timeout"))
        });
        // The deadline first: a zero timeout cancels before the body runs at all.
        if *this.phase == Phase::BeforeDeadline && timer.poll_expired(cx).is_ready() {
            *this.phase = Phase::Expired;
            region.cancel(CancelReason::Deadline);
        }
        if this.output.is_none() {
            let future = this.future;
            match region.enter(cx.waker(), || future.poll(cx)) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(output) => *this.output = Some(output),
            }
        }
        // The region is done when tasks spawned in it have finished too: the deadline
        // still applies to them, and the timeout returns after their cleanup (R16).
        if region.has_children() {
            region.set_waker(cx.waker());
            return Poll::Pending;
        }
        let deadline = timer.deadline();
        // An enclosing cancel wins over the deadline (R15): the body's own, cancelled
        // result goes up instead of `Elapsed`, so the enclosing code unwinds rather than
        // treating it as a timeout (and, say, retrying).
        let outside = region.enclosing_cancellation().is_some();
        *this.armed = None;
        let output = this.output.take().expect("set when the body returned");
        Poll::Ready(match this.phase {
            Phase::Expired if !outside => Err(Elapsed { deadline }),
            Phase::BeforeDeadline | Phase::Expired => Ok(output),
        })
    }
}
