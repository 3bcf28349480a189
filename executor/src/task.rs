//! Spawning, and the wrapper every spawned future runs inside.
//!
//! `async-task` allocates the task and hands us a `Runnable` (to poll it) and a `Task` (to
//! await its output). What it polls is not the user's future but a [`TaskFuture`] around it,
//! which adds what the tree needs:
//!
//! ```text
//!   Future ───future returned / panicked / aborted──> Completing ──last child finished──> done
//!   (polls the future with the            (future already dropped;      (node removed,
//!    task as the current node)             waits for its children)       output to the handle)
//! ```
//!
//! So async-task's notion of "complete" *is* the tree's notion of "finished" (R2): the
//! `JoinHandle` resolves only when the whole subtree is gone.
//!
//! # Ground rules
//!
//! - Every panic from the user's future, in `poll` or in its `Drop`, is caught here; the
//!   runtime never unwinds through async-task and never aborts.
//! - The future is dropped as soon as it returns, on the loop thread, before the task waits
//!   for its children: its resources (sockets, locks) are released promptly.
//!
//! Read next: [`crate::wake`], what the waker made in [`spawn_in`] does when it is woken.

use std::future::Future;
use std::panic::{self, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::cancel::CancelReason;
use crate::context;
use crate::coop;
use crate::core::Core;
use crate::join::{JoinHandle, Outcome, Panicked};
use crate::panic::Payload;
use crate::queue::Job;
use crate::registry::TaskMeta;
use crate::tree::{JoinInterest, Key, NodeKind};

pin_project! {
    /// The future async-task polls for every spawned task.
    ///
    /// It does not store its node's key: the key is the task's async-task metadata, and
    /// the loop hands it over in [`Core::task_to_poll`] just before it runs the task. Stored
    /// twice, it made the allocation 168 bytes (a 176-byte malloc chunk, with the
    /// spawn_memory benchmark's 88-byte future); it was 152 then (a 160-byte chunk), and is
    /// 144 now that the schedule function captures nothing ([`crate::registry`]).
    pub(crate) struct TaskFuture<F: Future> {
        #[pin]
        stage: Stage<F>,
    }
}

pin_project! {
    #[project = StageProj]
    enum Stage<F: Future> {
        // The user's future has not returned: it is polled at each turn.
        Future { #[pin] future: F },
        // The future is gone; the outcome waits here for the children to finish (`None`
        // while the future is being dropped, and after the outcome was returned).
        Completing { outcome: Option<Outcome<F::Output>> },
    }
}

/// Spawns `future` as a child of `parent` (the caller's current node).
pub(crate) fn spawn_in<F>(
    core: &Core,
    parent: Key,
    future: F,
    location: &'static Location<'static>,
    name: Option<Box<str>>,
) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let node = core.insert(Some(parent), NodeKind::Task, location, name);
    #[cfg(feature = "tracing")]
    {
        // Copied out first: a subscriber may call back into the runtime.
        let parent_id = core.tree().node(parent).id;
        let name = core.tree().name(node.key).map(str::to_owned);
        crate::events::spawned(node.id, name.as_deref(), parent_id, location);
    }
    let wrapped = TaskFuture {
        stage: Stage::Future { future },
    };
    // The task's key rides on the runnable: the loop passes it to the task's poll. So do
    // its runtime's tag, so that the schedule function needs no `Arc` of its own, and its
    // number, which traces and seeded strategies name it by (see `TaskMeta`).
    let meta = TaskMeta::new(node.key, core.shared().tag, node.id.number());
    let (runnable, task) = async_task::Builder::new()
        .metadata(meta)
        .spawn_local(move |_| wrapped, crate::wake::schedule);
    core.set_waker(node.key, runnable.waker());
    core.push_job(Job::Task(runnable));
    JoinHandle::new(task.fallible(), node)
}

impl<F: Future> Future for TaskFuture<F> {
    type Output = Outcome<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut stage = self.project().stage;
        // Clone the Rc out of the thread-local so no borrow of it spans the user's poll.
        let core: Rc<Core> = context::with_core(Rc::clone)
            .expect("a treeloop task was polled outside its runtime (runtime bug)");
        // Read before anything else runs: only `Runnable::run` polls this future, and the
        // loop set this just before calling it.
        let key = core.task_to_poll();
        debug_assert!(
            core.tree()
                .get(key)
                .is_some_and(|node| node.kind == NodeKind::Task),
            "a task was polled without the loop naming it in Core::task_to_poll (runtime bug)"
        );
        let start = start(&core, key);
        match stage.as_mut().project() {
            StageProj::Future { future } => {
                let ended = match start {
                    Start::Abort | Start::TearDown => Ended::Aborted,
                    Start::Poll => {
                        let _current = core.enter_node(key);
                        let _budget = coop::fresh_budget();
                        #[cfg(feature = "tracing")]
                        let _span = {
                            let id = core.tree().node(key).id;
                            crate::events::poll_span(id)
                        };
                        let polled = match core.diag() {
                            // Diagnostics off: the poll and nothing around it (the hot path).
                            None => panic::catch_unwind(AssertUnwindSafe(|| future.poll(cx))),
                            Some(_) => core.observe_poll(key, || {
                                panic::catch_unwind(AssertUnwindSafe(|| future.poll(cx)))
                            }),
                        };
                        match polled {
                            Ok(Poll::Pending) => return Poll::Pending,
                            Ok(Poll::Ready(value)) => Ended::Returned(value),
                            Err(payload) => Ended::Panicked(payload),
                        }
                    }
                };
                let ended = drop_future(&core, key, stage.as_mut(), ended);
                // (Read again: the drop ran user code.)
                if core.is_tearing_down() {
                    return Poll::Ready(for_handle(&core, key, ended));
                }
                let outcome = returned(&core, key, ended);
                if core.tree().has_children(key) {
                    // Woken again by `Tree::finish` when the last child goes.
                    stage.set(Stage::Completing {
                        outcome: Some(outcome),
                    });
                    return Poll::Pending;
                }
                // The common case: nothing left to wait for.
                Poll::Ready(finish(&core, key, outcome))
            }
            StageProj::Completing { outcome } => {
                let tearing_down = start == Start::TearDown;
                if !tearing_down && core.tree().has_children(key) {
                    // A spurious wake: still waiting for the children.
                    return Poll::Pending;
                }
                let outcome = outcome
                    .take()
                    .expect("a finished task is never polled again");
                if tearing_down {
                    // The handle may have been dropped while the children ran.
                    return Poll::Ready(route_unobserved_panic(&core, key, outcome));
                }
                Poll::Ready(finish(&core, key, outcome))
            }
        }
    }
}

/// What a task's turn starts with: the first decision of its poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Start {
    /// Poll the future (or, once it returned, see whether the children are done).
    Poll,
    /// The task was aborted (`JoinHandle::abort`, the watchdog): drop the future unpolled
    /// and complete as `Aborted`, after any children.
    Abort,
    /// The runtime is being torn down: drop the future unpolled and complete at once,
    /// children or not (they are being dropped too).
    TearDown,
}

/// Decides how the task at `key` starts its turn.
#[inline]
fn start(core: &Core, key: Key) -> Start {
    if core.is_tearing_down() {
        Start::TearDown
    } else if core.is_aborting(key) {
        Start::Abort
    } else {
        Start::Poll
    }
}

/// How the user's future ended, before the node's facts are added for the handle.
enum Ended<T> {
    /// It returned this value.
    Returned(T),
    /// It panicked, in `poll` or while being dropped.
    Panicked(Payload),
    /// It was dropped unpolled (`abort()`, teardown).
    Aborted,
}

/// Drops the task's future now, catching a panicking `Drop`, and returns the ending that
/// counts. The task is still the current node: a `Drop` that spawns makes a child of this
/// task (which then waits for it), never an orphan.
fn drop_future<F: Future>(
    core: &Core,
    key: Key,
    mut stage: Pin<&mut Stage<F>>,
    ended: Ended<F::Output>,
) -> Ended<F::Output> {
    let dropped = {
        let _current = core.enter_node(key);
        panic::catch_unwind(AssertUnwindSafe(|| {
            stage.set(Stage::Completing { outcome: None });
        }))
    };
    match (ended, dropped) {
        (ended, Ok(())) => ended,
        (Ended::Panicked(first), Err(second)) => {
            crate::report::report(format_args!(
                "treeloop: a task's future panicked again while being dropped: {}",
                crate::panic::panic_message(&second)
            ));
            Ended::Panicked(first)
        }
        (_, Err(payload)) => Ended::Panicked(payload),
    }
}

/// The task and all its children are done: route a panic whose handle went away meanwhile,
/// and remove the node (which wakes whoever waits for it to go).
fn finish<T>(core: &Core, key: Key, outcome: Outcome<T>) -> Outcome<T> {
    // The handle may have been dropped while the children finished.
    let outcome = route_unobserved_panic(core, key, outcome);
    #[cfg(feature = "tracing")]
    {
        let id = core.tree().node(key).id;
        let how = match &outcome {
            Outcome::Returned(_) => "returned",
            Outcome::Panicked(_) | Outcome::Reported => "panicked",
            Outcome::Aborted(_) => "aborted",
        };
        crate::events::completed(id, how);
    }
    core.finish_task(key);
    outcome
}

/// The task's future is gone: enter the completing phase. A failed or aborted task cancels
/// its own children (nobody is left to use what they compute); a panic nobody can take from
/// a handle is reported and cancels the parent's region (R17).
fn returned<T>(core: &Core, key: Key, ended: Ended<T>) -> Outcome<T> {
    core.begin_completing(key);
    match ended {
        Ended::Returned(_) => {}
        Ended::Panicked(_) => core.cancel(key, CancelReason::Failure),
        Ended::Aborted => core.cancel(key, CancelReason::Explicit),
    }
    for_handle(core, key, ended)
}

/// The outcome for the handle, with the node's facts it will need once the node is gone; a
/// panic whose handle is gone goes to the runtime (R17). At teardown the runtime reports it
/// at the teardown's end, so a `Drop` that panics there is not lost with the task.
fn for_handle<T>(core: &Core, key: Key, ended: Ended<T>) -> Outcome<T> {
    match ended {
        Ended::Returned(value) => Outcome::Returned(value),
        Ended::Panicked(payload) => route_panic(core, key, panicked(core, key, payload)),
        Ended::Aborted => Outcome::Aborted(core.tree().node(key).location),
    }
}

/// [`route_panic`] for an outcome that may be a panic: when the task finishes, and at
/// teardown, since the handle may have been dropped after the future ended.
#[inline]
fn route_unobserved_panic<T>(core: &Core, key: Key, outcome: Outcome<T>) -> Outcome<T> {
    match outcome {
        Outcome::Panicked(panicked) => route_panic(core, key, panicked),
        outcome => outcome,
    }
}

/// A panic of the task at `key`, with where it was spawned and the parent it would cancel.
#[cold]
fn panicked(core: &Core, key: Key, payload: Payload) -> Box<Panicked> {
    let tree = core.tree();
    Box::new(Panicked {
        payload,
        parent: tree.parent(key).map(|p| tree.node_ref(p)),
        spawned_at: tree.node(key).location,
    })
}

/// A panic whose `JoinHandle` is gone has nobody to go to: the runtime takes it, and it
/// cancels the parent's region (R17). Checked when the task panics and again when it
/// finishes (or is torn down), since the handle may be dropped in between.
#[cold]
fn route_panic<T>(core: &Core, key: Key, panicked: Box<Panicked>) -> Outcome<T> {
    let tree = core.tree();
    let node = tree.node(key);
    if node.join == JoinInterest::Handle {
        return Outcome::Panicked(panicked);
    }
    let task = match tree.name(key) {
        Some(name) => format!("task {name:?} spawned at {}", node.location),
        None => format!("task spawned at {}", node.location),
    };
    drop(tree);
    let Panicked {
        payload, parent, ..
    } = *panicked;
    // At teardown every region goes anyway: there is nothing left to cancel.
    let parent = parent.filter(|_| !core.is_tearing_down());
    core.report_unhandled(parent, payload, task);
    Outcome::Reported
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte table in benches/README.md ("Where an idle task's bytes go") counts these.
    #[test]
    fn the_wrapper_adds_a_tag_to_the_future_and_the_metadata_is_twelve_bytes() {
        let payload = [0u8; 64];
        let counter = Rc::new(());
        let i = 0usize;
        let future = async move {
            let _ = (i, &counter);
            std::future::pending::<()>().await;
            std::hint::black_box(payload);
        };
        // 64 bytes of payload, the `Rc`, `i`, the state: 88 bytes.
        assert_eq!(size_of_val(&future), 88);
        let wrapped = TaskFuture {
            stage: Stage::Future { future },
        };
        // A compiler-made future has no niche for the stage's tag: 8 more bytes.
        assert_eq!(size_of_val(&wrapped), 96);
        assert_eq!(size_of::<TaskMeta>(), 12);
    }
}
