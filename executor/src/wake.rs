//! What a wake does: queue the job on the loop's own queue when the wake happens on the loop
//! thread, else push it to the injector and unpark the loop.
//!
//! # Ground rules
//!
//! - A wake never polls, never touches the tree and never blocks: it moves a job into a
//!   queue. On the loop thread that is a push onto the [`RunQueue`](crate::queue::RunQueue)
//!   (a wake may happen inside a borrow of the tree, never inside one of the queue, which
//!   is borrowed only for a push or a pop); elsewhere, [`Shared::push_remote`].
//! - A runtime's tasks and its root are woken the same way: the root's job is
//!   [`Job::Root`], queued at most once at a time, as async-task queues a task.
//!
//! Read next: [`crate::queue`], where a woken job waits for its turn.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_task::Runnable;

use crate::context;
use crate::queue::{Job, Shared};
use crate::registry::{self, RuntimeTag, TaskMeta};

/// The schedule function every task is created with: the hot path of every wake. It
/// captures nothing: the task's runtime is the tag in its metadata ([`crate::registry`]).
pub(crate) fn schedule(runnable: Runnable<TaskMeta>) {
    let tag = runnable.metadata().runtime();
    push(tag, Job::Task(runnable), |job| match registry::find(tag) {
        Some(shared) => shared.push_remote(job),
        // The runtime is gone, and with it the task's future: free the allocation.
        None => drop(job),
    });
}

/// Queues `job` locally when called on this runtime's loop thread, else injects it (the
/// root's waker, which holds its runtime's `Shared`).
pub(crate) fn schedule_job(shared: &Arc<Shared>, job: Job) {
    push(shared.tag, job, |job| shared.push_remote(job));
}

/// Queues `job` on the local run queue if the runtime tagged `tag` is current on this
/// thread (a tag names one live runtime: [`crate::registry`]); otherwise hands it to
/// `remote` (another thread, or a runtime that is not current on this thread any more).
#[inline(always)]
fn push(tag: RuntimeTag, job: Job, remote: impl FnOnce(Job)) {
    let mut pending = Some(job);
    context::with_core(|core| {
        if core.shared().tag == tag {
            if let Some(job) = pending.take() {
                core.push_job(job);
            }
        }
    });
    if let Some(job) = pending {
        remote(job);
    }
}

/// The waker of the `block_on` future: queues a [`Job::Root`] like a task's waker queues its
/// runnable. `Send + Sync`, since the root may hand its waker to another thread.
pub(crate) struct RootWaker {
    /// A `Job::Root` is queued: set by a wake, cleared right before the root is polled, so
    /// the root is queued at most once at a time (as async-task does for tasks).
    pub(crate) queued: AtomicBool,
    /// Where to queue it.
    pub(crate) shared: Arc<Shared>,
}

impl futures_task::ArcWake for RootWaker {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        if !arc_self.queued.swap(true, Ordering::SeqCst) {
            schedule_job(&arc_self.shared, Job::Root);
        }
    }
}
