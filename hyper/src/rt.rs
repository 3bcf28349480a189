//! hyper's runtime hooks on treeloop: an executor that spawns into the task tree, and a
//! timer on treeloop's clock.
//!
//! # Ground rules
//!
//! - [`TreeloopExecutor`] spawns with `treeloop::spawn`, so a future hyper hands it (an
//!   HTTP/2 stream, a client connection's background work) becomes a child of the node
//!   being polled: the connection's task, or the shield it drains in. It is cancelled with
//!   the connection's subtree and awaited by it (R2); nothing outlives the server.
//! - [`TreeloopTimer`] sleeps on the runtime's clock, with no cancellation check of its own:
//!   hyper's timers (header read timeouts, keep-alive pings) belong to the protocol, and in
//!   a seeded or paused test they run on virtual time. `now()` is the runtime's clock too, so
//!   hyper's deadlines and treeloop's agree.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use treeloop::time::Timer;

/// hyper's `rt::Executor` for treeloop: spawns into the task tree (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct TreeloopExecutor;

impl<F> hyper::rt::Executor<F> for TreeloopExecutor
where
    F: Future + 'static,
    F::Output: 'static,
{
    #[track_caller]
    fn execute(&self, future: F) {
        // The handle is dropped: the task stays its parent's child all the same.
        drop(treeloop::spawn(future));
    }
}

/// hyper's `rt::Timer` on treeloop's clock (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct TreeloopTimer;

impl hyper::rt::Timer for TreeloopTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        let now = treeloop::time::Instant::now();
        Box::pin(TreeloopSleep(
            Timer::at(now.saturating_add(duration)).named("hyper timer"),
        ))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        let deadline = treeloop::time::Instant::from_std(deadline);
        Box::pin(TreeloopSleep(Timer::at(deadline).named("hyper timer")))
    }

    fn now(&self) -> Instant {
        treeloop::time::Instant::now().into_std()
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<TreeloopSleep>() {
            Some(mut ours) => ours
                .0
                .reset(treeloop::time::Instant::from_std(new_deadline)),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// A hyper sleep: a raw treeloop timer (no cancellation check, no budget).
struct TreeloopSleep(Timer);

impl Future for TreeloopSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.get_mut().0.poll_expired(cx)
    }
}

impl hyper::rt::Sleep for TreeloopSleep {}
