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
use std::panic::{self, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use crate::cancel::CancelReason;
use crate::core::Core;
use crate::panic::Payload;
use crate::queue::Job;
use crate::tree::Key;
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

impl<'a, F: Future> RootTask<'a, F> {
    /// Opens the root node of a run of `future`, started at `location`, with the root's
    /// waker, and queues the root's first turn.
    pub(crate) fn open(
        core: &'a Core,
        future: F,
        location: &'static Location<'static>,
    ) -> RootTask<'a, F> {
        let key = core.open_root(location);
        let queued = Arc::new(RootWaker {
            queued: AtomicBool::new(true),
            shared: core.shared().clone(),
        });
        core.push_job(Job::Root);
        let waker = futures_task::waker(queued.clone());
        core.set_waker(key, waker.clone());
        RootTask {
            core,
            key,
            queued,
            waker,
            future: Box::pin(Some(future)),
            outcome: None,
        }
    }

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
                let id = self.core.tree().node(self.key).id;
                crate::events::poll_span(id)
            };
            let future = &mut self.future;
            let mut poll = || {
                panic::catch_unwind(AssertUnwindSafe(|| {
                    let future = future.as_mut().as_pin_mut();
                    future.expect("polled after it returned").poll(&mut cx)
                }))
            };
            match self.core.diag() {
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
        self.core.begin_completing(self.key);
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

/// What a finished run raises, R17: the root future's panic, else the first panic nobody
/// took from a handle; every other one is reported (not lost). Settled inside the last turn,
/// where the runtime's report sink is current.
pub(crate) fn settle<T>(root: Result<T, Payload>, core: &Core) -> Result<T, Payload> {
    let mut panics = core.take_unhandled().into_iter();
    let raised = match root {
        Ok(value) => match panics.next() {
            None => Ok(value),
            Some((first, _)) => Err(first),
        },
        Err(root_panic) => Err(root_panic),
    };
    report_extra_panics(panics);
    raised
}

/// Panics with the deadlock report: the park found that nothing can ever wake a task again
/// (deterministic mode), yet tasks remain. `root` is the root future's outcome, if it has one.
pub(crate) fn deadlock<T>(core: &Core, root: &Option<Result<T, Payload>>) -> ! {
    let tree = core.dump();
    let root_panic = match root {
        Some(Err(payload)) => format!(
            "\n(the block_on future had panicked before: {})",
            crate::panic::panic_message(payload)
        ),
        _ => String::new(),
    };
    panic!(
        "treeloop deadlock: no task can make progress (nothing is runnable, no timer is \
         pending, no I/O or other thread can wake a task), yet tasks remain:\n{tree}{root_panic}"
    );
}
