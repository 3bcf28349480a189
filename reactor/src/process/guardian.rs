//! The guardian: the task that owns a child process, reaps it, and stops it when its region
//! is cancelled.
//!
//! ```text
//!   Running ──exit seen──────────────────────────────────────────> record, return
//!      │ cancelled, or the handle asked (StopAsked)
//!      v               (in a shield from here on)
//!   SIGTERM ──exit seen within the grace period──────────────────> record, return
//!      │ grace period over
//!      v
//!   SIGKILL ──exit seen──────────────────────────────────────────> record, return
//! ```
//!
//! # Ground rules
//!
//! - A child of the task (or region) that called `Command::spawn`, so it is cancelled with
//!   it, and that task finishes only after the guardian returned, i.e. after the reap (R2).
//! - The stop sequence runs in a `shield`: its awaits (the exit watch, the grace timer)
//!   work in the cancelled region, and nothing from outside can cut it short.
//! - The grace period is measured on the runtime's clock. With the pidfd watch a live
//!   child counts as I/O, so a paused clock waits for it in real time (see `reactor.rs`):
//!   the grace period a test sets is a real one.
//! - Dropped before the reap (aborted, or the runtime torn down by a panic), it SIGKILLs
//!   and reaps with a blocking `wait` (see [`Guardian`]'s `Drop`).

use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::pin;
use std::process::ExitStatus;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustix::process::Signal;
use treeloop_executor::{poll_cancelled, shield};

use super::child::{Lifecycle, Shared};
use super::exit::ExitWatch;
use crate::time::sleep;

/// How the first phase, running, ended.
enum Ended {
    /// The process exited by itself (or was killed through the handle).
    Exited(io::Result<ExitStatus>),
    /// The region was cancelled, or the handle asked for the stop.
    Stop,
}

/// The state of one guardian task.
pub(crate) struct Guardian {
    /// The process, shared with its handle.
    shared: Rc<RefCell<Shared>>,
    /// How the exit is seen.
    watch: ExitWatch,
    /// How long SIGTERM has before SIGKILL.
    grace: Duration,
}

impl Guardian {
    pub(crate) fn new(shared: Rc<RefCell<Shared>>, watch: ExitWatch, grace: Duration) -> Self {
        Guardian {
            shared,
            watch,
            grace,
        }
    }

    /// The guardian's task: wait for the exit; if cancelled (or asked) first, stop the
    /// process; either way, record the exit and return once it was reaped.
    pub(crate) async fn run(mut self) {
        let exit = match poll_fn(|cx| self.poll_running(cx)).await {
            Ended::Exited(exit) => exit,
            Ended::Stop => shield(self.stop()).await,
        };
        let wake = self.shared.borrow_mut().record(&exit);
        treeloop_executor::wake_all(wake);
    }

    /// Phase one: `Ready` when the process exits, or when it must be stopped.
    fn poll_running(&mut self, cx: &mut Context<'_>) -> Poll<Ended> {
        if let Some(cancelled) = poll_cancelled(cx) {
            return cancelled.map(|_| Ended::Stop);
        }
        let mut shared = self.shared.borrow_mut();
        if matches!(shared.lifecycle, Lifecycle::StopAsked) {
            return Poll::Ready(Ended::Stop);
        }
        // Exited already if the handle's `try_wait` reaped it: `poll_exit` gets the status
        // std cached.
        match self.watch.poll_exit(&mut shared.child, cx) {
            Poll::Ready(exit) => Poll::Ready(Ended::Exited(exit)),
            Poll::Pending => {
                shared.guardian = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// Phase two, in a shield: SIGTERM, the grace period, SIGKILL; returns the exit.
    async fn stop(&mut self) -> io::Result<ExitStatus> {
        // A signal that cannot be sent (EPERM: the child became a setuid program) is not
        // the end: the exit is still waited for, so the reap still happens.
        let _ = self.shared.borrow().send(Signal::TERM);
        let mut grace = pin!(sleep(self.grace));
        let exited = poll_fn(|cx| {
            if let Poll::Ready(exit) = self.poll_exit(cx) {
                return Poll::Ready(Some(exit));
            }
            // In the shield the sleep cannot fail: ready means the grace period is over.
            grace.as_mut().poll(cx).map(|_| None)
        })
        .await;
        if let Some(exit) = exited {
            return exit;
        }
        let _ = self.shared.borrow().send(Signal::KILL);
        poll_fn(|cx| self.poll_exit(cx)).await
    }

    /// `Ready` once the process exited and was reaped.
    fn poll_exit(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<ExitStatus>> {
        let mut shared = self.shared.borrow_mut();
        self.watch.poll_exit(&mut shared.child, cx)
    }
}

impl Drop for Guardian {
    /// The last resort when the task is dropped before the reap: SIGKILL, then a blocking
    /// wait (short: SIGKILL cannot be caught), so no zombie is left either way.
    fn drop(&mut self) {
        let Ok(mut shared) = self.shared.try_borrow_mut() else {
            return;
        };
        if matches!(shared.lifecycle, Lifecycle::Exited(_)) {
            return;
        }
        let _ = shared.child.kill();
        let exit = shared.child.wait();
        let wake = shared.record(&exit);
        drop(shared);
        treeloop_executor::wake_all(wake);
    }
}
