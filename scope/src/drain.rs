//! `on_cancel`: graceful shutdown for foreign futures that have their own.
//!
//! Protocol crates already know how to stop nicely: hyper's connections have
//! `graceful_shutdown()` (finish the requests in flight, close idle keep-alive connections),
//! a WebSocket can send a close frame, a TLS stream a `close_notify`. What they cannot know
//! is treeloop's cancellation: it reaches them, if at all, as an I/O error on their socket
//! (their reads fail with `Cancelled`), which cuts them off mid-request. `on_cancel` turns
//! the cancellation into the protocol's own shutdown instead:
//!
//! ```text
//!   poll inside a shield ──region cancelled──> hook(future, why), once ──> keep polling
//!        (the future sees no Cancelled)          (e.g. graceful_shutdown)   to completion
//!                                                      │ with a grace period: when it runs
//!                                                      └─out, drop the future, Err(GraceExpired)
//! ```
//!
//! # Ground rules
//!
//! - The inner future runs in a shield of its own: its await points, and the socket reads
//!   and writes it makes, never see the cancellation from outside (R11). Cancellation that
//!   starts inside still applies, as in any shield.
//! - The hook is called at most once, the first time the drain is polled while the region
//!   it is polled in is cancelled (the task is woken by the cancel, so that is promptly), and
//!   never when it is not cancelled. It runs before the inner future's next poll, inside the
//!   shield (tasks it spawns are the drain's children), and gets the cancellation so it can
//!   say why. A panicking hook unwinds like any panic of the task (R17): the inner future is
//!   dropped with the task's future.
//! - Without a grace period the drain waits for the future however long it takes (the
//!   stall watchdog reports it as shielded and waiting if it never ends). With one
//!   ([`OnCancel::grace`]), the clock starts when the hook is called; when it runs out the
//!   future is dropped, whatever is left inside the shield (tasks the future spawned) is
//!   cancelled, and the drain returns `Err(GraceExpired)`, so the caller can tell "drained"
//!   from "cut off". The grace period is a raw timer on the runtime's clock: virtual under
//!   `start_paused`, and not stopped by the cancellation it bounds.
//! - Nested drains: a drain inside another drain's future is inside its shield, so it never
//!   sees the outer cancellation; what reaches it is the outer hook's shutdown, and, if the
//!   outer grace period runs out, the drop of everything. The outer drain decides.

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::io;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use treeloop_executor::{Cancelled, Region, RegionKind, cancelled_here};
use treeloop_reactor::time::{Instant, Timer};

/// Runs `future` with cancellation from outside hidden, and calls `hook` on it, once, when
/// the region it runs in is cancelled: a protocol's own graceful shutdown (a hyper
/// connection's `graceful_shutdown()`, a WebSocket's close frame) instead of being cut off
/// mid-request. The method form is `treeloop::FutureExt::on_cancel`.
///
/// - The future runs in a shield of its own: its await points, and the socket reads and
///   writes it makes, never see the cancellation from outside. Cancellation that starts
///   inside it still applies.
/// - The hook is called at most once, the first time the drain is polled in a cancelled
///   region, before the future's next poll, with the cancellation (so it can say why).
/// - Without a grace period the drain waits for the future however long it takes. With one
///   ([`OnCancel::grace`]) the clock starts when the hook is called; when it runs out the
///   future is dropped, what it spawned is cancelled, and the drain returns
///   `Err(GraceExpired)`.
///
/// ```
/// use std::pin::Pin;
/// use std::time::Duration;
/// use treeloop::time::sleep;
/// use treeloop::FutureExt;
///
/// /// A foreign future with a graceful shutdown of its own: a job of ten steps that, asked
/// /// to stop, finishes the step under way instead of all ten.
/// struct Job { steps: u32, stopping: bool, step: Option<Pin<Box<treeloop::time::Sleep>>> }
///
/// impl Job {
///     fn graceful_shutdown(self: Pin<&mut Self>) {
///         self.get_mut().stopping = true;
///     }
/// }
///
/// impl std::future::Future for Job {
///     type Output = u32;
///     fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<u32> {
///         loop {
///             let step = self.step.get_or_insert_with(|| Box::pin(sleep(Duration::from_millis(10))));
///             // The job's sleeps do not see the task's cancellation: it is hidden.
///             std::task::ready!(step.as_mut().poll(cx)).unwrap();
///             self.step = None;
///             self.steps += 1;
///             if self.stopping || self.steps == 10 {
///                 return std::task::Poll::Ready(self.steps);
///             }
///         }
///     }
/// }
///
/// let runtime = treeloop::Builder::new().start_paused(true).build().unwrap();
/// runtime.block_on(async {
///     let job = Job { steps: 0, stopping: false, step: None };
///     let task = treeloop::spawn(job.on_cancel(|job, _why| job.graceful_shutdown()));
///     sleep(Duration::from_millis(25)).await.unwrap();
///     task.cancel();
///     // Steps 1 and 2 were done at the cancel; step 3 was under way, and finished.
///     assert_eq!(treeloop::shield(task).await.unwrap(), 3);
/// });
/// ```
#[track_caller]
pub fn on_cancel<F, H>(future: F, hook: H) -> OnCancel<F, H>
where
    F: Future,
    H: FnOnce(Pin<&mut F>, Cancelled),
{
    OnCancel {
        inner: Some(future),
        hook: Some(hook),
        grace: None,
        region: None,
        deadline: None,
        why: None,
        location: Location::caller(),
    }
}

pin_project! {
    /// The future of [`on_cancel`]: the inner future's output.
    #[must_use = "futures do nothing unless awaited"]
    pub struct OnCancel<F, H> {
        // The future; `None` once the grace period ran out and it was dropped.
        #[pin]
        inner: Option<F>,
        // The hook, until it is called.
        hook: Option<H>,
        // How long the future may take once the hook was called (`Graceful` only).
        grace: Option<Duration>,
        // The shield the future runs in: opened at the first poll, closed at the end.
        region: Option<Region>,
        // When the grace period runs out, from the hook's call on.
        deadline: Option<Timer>,
        // The cancellation that called the hook.
        why: Option<Cancelled>,
        // Where `on_cancel` was called.
        location: &'static Location<'static>,
    }
}

impl<F, H> OnCancel<F, H> {
    /// Bounds the drain: once the hook has been called, the future has `grace` to finish;
    /// then it is dropped and the drain returns `Err(GraceExpired)`.
    pub fn grace(mut self, grace: Duration) -> Graceful<F, H> {
        self.grace = Some(grace);
        Graceful { drain: self }
    }
}

impl<F, H> OnCancel<F, H>
where
    F: Future,
    H: FnOnce(Pin<&mut F>, Cancelled),
{
    /// One poll, in four steps: open the shield, notice the cancellation (hook and grace
    /// clock), enforce the grace period, poll the future in the shield.
    fn poll_drain(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<F::Output, GraceExpired>> {
        let mut this = self.project();
        let location = *this.location;
        // 1. The shield, under the node polled now.
        let region = this
            .region
            .get_or_insert_with(|| Region::open_at(RegionKind::Shield, location));
        // 2. The first poll in a cancelled region calls the hook. `cancelled_here` reads
        //    the region this drain is polled in (not its own shield), and is `None` inside
        //    an enclosing shield, so a nested drain leaves the decision to the outer one.
        if this.hook.is_some() {
            if let Some(why) = cancelled_here() {
                let hook = this.hook.take().expect("checked just above");
                if let Some(grace) = *this.grace {
                    let at = Instant::now().saturating_add(grace);
                    *this.deadline = Some(Timer::at(at).named("on_cancel grace period"));
                }
                *this.why = Some(why);
                let inner = this.inner.as_mut().as_pin_mut();
                let inner = inner.expect("the future is present until the grace period ends");
                region.enter(cx.waker(), || hook(inner, why));
            }
        }
        // 3. The grace period, once it runs: out of time means cut off.
        if let Some(deadline) = this.deadline.as_mut() {
            if deadline.poll_expired(cx).is_ready() {
                let why = this
                    .why
                    .expect("the hook's cancellation is kept with the deadline");
                let grace = this
                    .grace
                    .expect("a deadline is armed only with a grace period");
                this.inner.set(None);
                // Whatever the future left running in the shield is cut off too; the task
                // still waits for it (R2), but the caller hears now.
                region.cancel(why.reason());
                *this.region = None;
                *this.deadline = None;
                return Poll::Ready(Err(GraceExpired { why, grace }));
            }
        }
        // 4. The future, with the outside's cancellation hidden.
        let inner = this.inner.as_mut().as_pin_mut();
        let inner = inner.expect("the drain is not polled after it completed");
        let polled = region.enter(cx.waker(), || inner.poll(cx));
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(output) => {
                this.inner.set(None);
                *this.region = None;
                *this.deadline = None;
                Poll::Ready(Ok(output))
            }
        }
    }
}

impl<F, H> Future for OnCancel<F, H>
where
    F: Future,
    H: FnOnce(Pin<&mut F>, Cancelled),
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.poll_drain(cx).map(|drained| match drained {
            Ok(output) => output,
            Err(_) => unreachable!("without a grace period the future is never cut off"),
        })
    }
}

pin_project! {
    /// The future of [`OnCancel::grace`]: the inner future's output, or `Err(GraceExpired)`
    /// when it did not finish within the grace period after the hook.
    #[must_use = "futures do nothing unless awaited"]
    pub struct Graceful<F, H> {
        #[pin]
        drain: OnCancel<F, H>,
    }
}

impl<F, H> Future for Graceful<F, H>
where
    F: Future,
    H: FnOnce(Pin<&mut F>, Cancelled),
{
    type Output = Result<F::Output, GraceExpired>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().drain.poll_drain(cx)
    }
}

/// A drain's grace period ran out before its future finished: the future was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GraceExpired {
    /// The cancellation that started the drain.
    why: Cancelled,
    /// The grace period it had.
    grace: Duration,
}

impl GraceExpired {
    /// The cancellation that started the drain.
    pub fn cancelled(&self) -> Cancelled {
        self.why
    }

    /// The grace period that ran out.
    pub fn grace(&self) -> Duration {
        self.grace
    }
}

impl fmt::Display for GraceExpired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "graceful shutdown did not finish within its grace period of {:?} ({}); the rest \
             was cut off",
            self.grace, self.why
        )
    }
}

impl Error for GraceExpired {}

/// A cut-off drain as an I/O error of kind `TimedOut`.
impl From<GraceExpired> for io::Error {
    fn from(expired: GraceExpired) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, expired)
    }
}
