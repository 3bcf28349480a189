//! The `block_on` future's side of the loop: the root takes its turn like a task (its own
//! waker queues a `Job::Root`), is polled with panics caught, and is dropped as soon as it
//! returns, so a panicking `Drop` is caught rather than met while unwinding. Also here: what
//! happens when `block_on` unwinds (teardown), and waking in bulk without losing wakes.
//!
//! # Ground rules
//!
//! - The root future is pinned in a box the [`RootTask`] owns (it may borrow from the
//!   caller of `block_on` or `Executor::start`); it is dropped under `catch_unwind`: when it
//!   returns, or, if the run is abandoned first (`block_on` unwinds, a `Stepper` is
//!   dropped), when the `RootTask` is dropped (before the teardown runs).
//! - No panic may escape while unwinding: everything dropped or reported on that path is
//!   behind `catch_unwind`.

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

use crate::cancel::CancelReason;
use crate::core::Core;
use crate::panic::Payload;
use crate::tree::{Key, Phase};
use crate::wake::RootWaker;

/// The `block_on` future and what it needs to take its turn like a task.
pub(crate) struct RootTask<'a, F: Future> {
    /// The runtime.
    pub(crate) core: &'a Core,
    /// The root node.
    pub(crate) key: Key,
    /// The root waker's state (its "a `Job::Root` is queued" flag).
    pub(crate) queued: Arc<RootWaker>,
    /// The root waker.
    pub(crate) waker: Waker,
    /// The future; `None` once it returned or panicked: it is dropped right then, under
    /// `catch_unwind`.
    pub(crate) future: Pin<Box<Option<F>>>,
    /// Its value, or its panic, once it has returned.
    pub(crate) outcome: Option<Result<F::Output, Payload>>,
}

impl<F: Future> RootTask<'_, F> {
    /// The root's turn: poll it like a task (current node, fresh budget, panics caught).
    pub(crate) fn poll(&mut self) {
        self.queued.queued.store(false, Ordering::SeqCst);
        if self.outcome.is_some() {
            return;
        }
        let mut cx = Context::from_waker(&self.waker);
        let polled = {
            let _current = self.core.enter_node(self.key);
            let _budget = crate::coop::fresh_budget();
            #[cfg(feature = "tracing")]
            let _span = {
                let id = self.core.tree.borrow().node(self.key).id;
                crate::events::poll_span(id)
            };
            let future = &mut self.future;
            let mut poll = || {
                panic::catch_unwind(AssertUnwindSafe(|| {
                    let future = future.as_mut().as_pin_mut();
                    future.expect("polled after it returned").poll(&mut cx)
                }))
            };
            match &self.core.diag {
                None => poll(),
                Some(_) => self.core.observe_poll(self.key, poll),
            }
        };
        let outcome = match polled {
            Ok(Poll::Pending) => return,
            Ok(Poll::Ready(value)) => Ok(value),
            Err(payload) => Err(payload),
        };
        // Drop the future now, as a task's is dropped when it returns: its resources go at
        // once, and a panicking `Drop` is caught here rather than while unwinding.
        let outcome = match (outcome, self.drop_future()) {
            (outcome, Ok(())) => outcome,
            (Err(first), Err(second)) => {
                crate::report::report(format_args!(
                    "treeloop: the block_on future panicked again while being dropped: {}",
                    crate::panic::panic_message(&second)
                ));
                Err(first)
            }
            (Ok(_), Err(payload)) => Err(payload),
        };
        // Like a task whose future returned, the root now only waits for its children.
        self.core.tree.borrow_mut().node_mut(self.key).phase = Phase::Completing;
        if outcome.is_err() {
            // The root failed: its children are cancelled; it re-raises after them.
            self.core.cancel(self.key, CancelReason::Failure);
        }
        self.outcome = Some(outcome);
    }

    /// Drops the root future under `catch_unwind`, with the root as the current node (so a
    /// `Drop` that spawns makes a child of the root).
    fn drop_future(&mut self) -> std::thread::Result<()> {
        let _current = self.core.enter_node(self.key);
        panic::catch_unwind(AssertUnwindSafe(|| self.future.set(None)))
    }
}

impl<F: Future> RootTask<'_, F> {
    /// The run is abandoned with the root future still alive (a deadlock report, a
    /// panicking park, sink or foreign waker, a `Stepper` dropped early): drops the future
    /// under `catch_unwind`, rather than let a panicking `Drop` meet an unwind and abort the
    /// process.
    pub(crate) fn abandon(&mut self) {
        if self.future.is_none() {
            return;
        }
        if let Err(payload) = self.drop_future() {
            crate::report::report(format_args!(
                "treeloop: the block_on future panicked while being dropped as its run was \
                 abandoned: {}",
                crate::panic::panic_message(&payload)
            ));
        }
    }
}

impl<F: Future> Drop for RootTask<'_, F> {
    fn drop(&mut self) {
        self.abandon();
    }
}

/// Panics beyond the first one `block_on` re-raises: not lost, reported.
pub(crate) fn report_extra_panics(rest: impl Iterator<Item = (Payload, String)>) {
    for (payload, task) in rest {
        crate::report::report(format_args!(
            "treeloop: the {task} panicked too (block_on re-raises the first panic): {}",
            crate::panic::panic_message(&payload)
        ));
    }
}
