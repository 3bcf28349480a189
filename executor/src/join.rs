//! `JoinHandle`: await a task's outcome, cancel or abort it.
//!
//! # Ground rules
//!
//! - The handle resolves when the task has *finished*: its future returned and every
//!   descendant finished (R2). It is a treeloop await point: in a cancelled region it returns
//!   `Err(JoinError)` with [`JoinError::is_cancelled`], and leaves the task's outcome (a panic
//!   payload included) in place for a later join (R6, R17).
//! - Dropping the handle neither detaches nor cancels: the task stays its parent's child and
//!   its parent still waits for it. Its panic, now unobservable, is reported to the runtime.
//!   That is why the handle is not `#[must_use]`: dropping it is the fire-and-forget spawn.
//! - The outcome can be taken once. Polling again after that is a bug in the caller and
//!   panics saying so.
//!
//! Read next: this is the end of the reading path (ARCHITECTURE.md, "Read in this order");
//! what lies off it is listed there.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::Location;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Mutex;
use std::task::{Context, Poll};

use async_task::FallibleTask;

use crate::cancel::{CancelReason, Cancelled};
use crate::context;
use crate::coop;
use crate::panic::{Payload, panic_message};
use crate::registry::TaskMeta;
use crate::tree::{NodeRef, TaskId};

/// How a task ended, as its `JoinHandle` receives it.
///
/// The failures carry where the task was spawned, and a panic also the parent whose region
/// it cancels if nobody takes it: facts of the node, which is gone by the time the handle
/// reads them. So the handle itself holds only async-task's handle and the task's node
/// (see [`JoinHandle`]'s optimisation note).
pub(crate) enum Outcome<T> {
    /// The future returned this value.
    Returned(T),
    /// The future panicked (in `poll` or while being dropped). Boxed: a panic is rare, and
    /// the box keeps the outcome, which async-task stores in every task, one word wide.
    Panicked(Box<Panicked>),
    /// `abort()` or runtime teardown dropped the future before it returned; where the task
    /// was spawned.
    Aborted(&'static Location<'static>),
    /// It panicked with no handle alive; the payload went to the runtime (R17).
    Reported,
}

/// A panic waiting in its task for the handle to take it.
pub(crate) struct Panicked {
    /// What the future panicked with.
    pub(crate) payload: Payload,
    /// The node the task was spawned in, whose region a panic nobody takes cancels (R17).
    pub(crate) parent: Option<NodeRef>,
    /// Where the task was spawned, for the error and the report.
    pub(crate) spawned_at: &'static Location<'static>,
}

/// An owned permission to await a spawned task's outcome, and to cancel it.
///
/// ```
/// # treeloop::block_on(async {
/// let handle = treeloop::spawn(async { 6 * 7 });
/// assert_eq!(handle.await.unwrap(), 42);
/// # });
/// ```
///
/// **Fire and forget** is dropping the handle, and needs no `let _ =`: the task runs
/// regardless (it was scheduled by `spawn`, not by the handle), stays a child of the task
/// that spawned it, is cancelled with it, and is waited for by it (R2). So the handle is not
/// `#[must_use]`: a statement `spawn(fut);` is neither a leak nor a lost task.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
///
/// let ran = Rc::new(Cell::new(false));
/// let flag = ran.clone();
/// treeloop::block_on(async move {
///     treeloop::spawn(async move { flag.set(true) }); // no handle kept
/// });
/// // block_on returned only after the detached child finished.
/// assert!(ran.get());
/// ```
// Optimisation: the model's handle would hold what it needs to know after the task has
// finished: its node, its parent, where it was spawned (48 bytes). The handle holds only
// async-task's handle and the task's node (24 bytes): the facts needed after the node is
// gone travel in the task's `Outcome`, built while the node is still there. Measured: a
// spawn_join batch keeps 100,000 handles in a `Vec`: a handle 48 bytes larger made it 161
// -> 199 ns per task, and this one, 24 bytes smaller than the model's, 160-162 -> 140. (16
// bytes would need the node's key from the task's metadata, which async-task's
// `FallibleTask` does not give out.) Costs a reader: the outcome carries the node's facts.
pub struct JoinHandle<T> {
    /// async-task's handle; `None` once the outcome was taken.
    task: Option<FallibleTask<Outcome<T>, TaskMeta>>,
    /// The task's node (its key is stale once the task finished).
    node: NodeRef,
    /// Tied to the loop thread, like the task.
    _local: PhantomData<Rc<()>>,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(task: FallibleTask<Outcome<T>, TaskMeta>, node: NodeRef) -> Self {
        JoinHandle {
            task: Some(task),
            node,
            _local: PhantomData,
        }
    }

    /// The task's id, unique within its runtime.
    pub fn id(&self) -> TaskId {
        self.node.id
    }

    /// Whether the task and all its descendants have finished.
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|task| task.is_finished())
    }

    /// Cancels the task's subtree cooperatively: every treeloop await point in it returns
    /// `Err(Cancelled)` from now on; the tasks run their cleanup and finish (R5). Calling it
    /// twice, or on a finished task, does nothing.
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use std::time::Duration;
    /// use treeloop::time::sleep;
    /// use treeloop::{Builder, CancelReason, Cancelled, spawn, yield_now};
    ///
    /// let runtime = Builder::new().start_paused(true).build().unwrap();
    /// runtime.block_on(async {
    ///     let cleaned_up = Rc::new(Cell::new(false));
    ///     let flag = cleaned_up.clone();
    ///     let download = spawn(async move {
    ///         let slept = sleep(Duration::from_secs(60)).await;
    ///         flag.set(true); // the cleanup, after the await point that failed
    ///         slept
    ///     });
    ///     yield_now().await.unwrap(); // the download starts its sleep
    ///     download.cancel();
    ///     // The task ran its cleanup and returned what its await point returned.
    ///     let outcome = download.await.unwrap();
    ///     assert_eq!(outcome, Err(Cancelled::new(CancelReason::Explicit)));
    ///     assert!(cleaned_up.get());
    /// });
    /// ```
    pub fn cancel(&self) {
        self.with_live_node(|core, key| core.cancel(key, CancelReason::Explicit));
    }

    /// Cancels the subtree like [`cancel`](Self::cancel), and also drops the task's future at
    /// its next poll without running it again: the escalation for a task that ignores
    /// cancellation (R20). Its children are cancelled, not aborted; the handle then resolves
    /// to a [`JoinError`] with [`JoinError::is_aborted`] once they have finished.
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use std::time::Duration;
    /// use treeloop::time::{Instant, sleep};
    /// use treeloop::{Builder, shield, spawn, yield_now};
    ///
    /// let runtime = Builder::new().start_paused(true).build().unwrap();
    /// runtime.block_on(async {
    ///     let start = Instant::now();
    ///     let finished = Rc::new(Cell::new(false));
    ///     let flag = finished.clone();
    ///     let stubborn = spawn(async move {
    ///         // Deaf to cancellation: an hour of shielded work.
    ///         shield(sleep(Duration::from_secs(3600))).await.unwrap();
    ///         flag.set(true);
    ///     });
    ///     yield_now().await.unwrap();
    ///     stubborn.abort();
    ///     assert!(stubborn.await.unwrap_err().is_aborted());
    ///     // Its future was dropped at once: nothing after its await point ran.
    ///     assert!(!finished.get());
    ///     assert_eq!(start.elapsed(), Duration::ZERO);
    /// });
    /// ```
    pub fn abort(&self) {
        self.with_live_node(|core, key| core.abort(key));
    }

    /// Aborts the task *and every task under it*, shielded ones included: none of them is
    /// polled again, each future is dropped at its next poll without running its cleanup (a
    /// crash, where [`abort`](Self::abort) drops only this task's future and lets its
    /// children clean up). The handle resolves to a [`JoinError`] with
    /// [`JoinError::is_aborted`] once they are all gone. `treeloop::sim` crashes a host
    /// with it.
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    ///
    /// let cleaned = Rc::new(Cell::new(0));
    /// let seen = cleaned.clone();
    /// treeloop::block_on(async move {
    ///     let parent = treeloop::spawn(async move {
    ///         treeloop::spawn(async move {
    ///             // Cancellation would run this cleanup; a crash does not.
    ///             let _ = treeloop::cancelled().await;
    ///             seen.set(seen.get() + 1);
    ///         });
    ///         std::future::pending::<()>().await
    ///     });
    ///     treeloop::yield_now().await.unwrap();
    ///     parent.abort_subtree();
    ///     assert!(parent.await.unwrap_err().is_aborted());
    /// });
    /// assert_eq!(cleaned.get(), 0);
    /// ```
    pub fn abort_subtree(&self) {
        self.with_live_node(|core, key| core.abort_subtree(key));
    }

    /// Runs `f` on the task's node if the task has not finished. A task that has not
    /// finished belongs to the runtime current on this thread: `block_on` finishes every
    /// task before it returns, and handles cannot leave the thread.
    fn with_live_node(&self, f: impl FnOnce(&crate::core::Core, crate::tree::Key)) {
        if self.is_finished() {
            return;
        }
        context::with_core(|core| {
            let key = core.tree().resolve(self.node);
            if let Some(key) = key {
                f(core, key);
            }
        });
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(task) = self.task.as_mut() else {
            panic!(
                "JoinHandle polled after it returned its output: a task's outcome can be taken \
                 once; keep the Result of the first `.await`"
            );
        };
        // A join is an await point: level-triggered cancellation comes first (R6).
        if let Some(cancelled) = crate::poll_cancelled(cx) {
            return cancelled.map(|cancelled| Err(JoinError::cancelled(cancelled)));
        }
        // Spend budget before taking the outcome: once taken from async-task it cannot be
        // put back, so a task out of budget must yield first.
        if coop::poll_proceed(cx).is_pending() {
            return Poll::Pending;
        }
        match Pin::new(task).poll(cx) {
            Poll::Pending => {
                coop::refund();
                Poll::Pending
            }
            Poll::Ready(outcome) => {
                self.task = None;
                Poll::Ready(into_result(outcome))
            }
        }
    }
}

fn into_result<T>(outcome: Option<Outcome<T>>) -> Result<T, JoinError> {
    match outcome {
        Some(Outcome::Returned(value)) => Ok(value),
        Some(Outcome::Panicked(panicked)) => Err(JoinError {
            repr: Repr::Panicked(Mutex::new(panicked.payload)),
            spawned_at: Some(panicked.spawned_at),
        }),
        Some(Outcome::Aborted(spawned_at)) => Err(JoinError {
            repr: Repr::Aborted,
            spawned_at: Some(spawned_at),
        }),
        // async-task closed the task without an outcome: its runnable was dropped unrun,
        // which only a runtime gone before the task could finish does.
        None => Err(JoinError {
            repr: Repr::Aborted,
            spawned_at: None,
        }),
        Some(Outcome::Reported) => {
            unreachable!("a panic is reported to the runtime only when no handle is alive")
        }
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        let Some(mut task) = self.task.take() else {
            return;
        };
        if !task.is_finished() {
            // The task lives on; only its panic now has nowhere to go but the runtime.
            context::with_core(|core| core.handle_dropped(self.node));
            task.detach();
            return;
        }
        // Finished with an outcome nobody took: a panic must not vanish with the handle.
        let mut cx = Context::from_waker(futures_task::noop_waker_ref());
        if let Poll::Ready(Some(Outcome::Panicked(panicked))) = Pin::new(&mut task).poll(&mut cx) {
            let Panicked {
                payload,
                parent,
                spawned_at,
            } = *panicked;
            let mut payload = Some(payload);
            context::with_core(|core| {
                if let Some(payload) = payload.take() {
                    core.report_unhandled(parent, payload, format!("task spawned at {spawned_at}"));
                }
            });
            if let Some(payload) = payload {
                crate::report::report(format_args!(
                    "treeloop: the task spawned at {spawned_at} panicked, and its JoinHandle \
                     was dropped after the runtime ended: {}",
                    panic_message(&payload)
                ));
            }
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.node.id)
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Why a [`JoinHandle`] did not return the task's value.
pub struct JoinError {
    /// Which of the three.
    repr: Repr,
    /// Where the task was spawned (for a panic or an abort: the task's own failure).
    spawned_at: Option<&'static Location<'static>>,
}

enum Repr {
    /// The join itself was cancelled (R6); the task and its outcome are untouched.
    Cancelled(Cancelled),
    /// The task panicked; the payload. In a `Mutex` only so that `JoinError` is `Sync`
    /// (a payload is `Send` but not `Sync`) and fits `Box<dyn Error + Send + Sync>` and
    /// `io::Error`; it is never contended.
    Panicked(Mutex<Payload>),
    /// The task's future was dropped by `abort()` (or runtime teardown) before returning.
    Aborted,
}

impl JoinError {
    fn cancelled(cancelled: Cancelled) -> Self {
        JoinError {
            repr: Repr::Cancelled(cancelled),
            spawned_at: None,
        }
    }

    /// The join was interrupted because the *awaiting* region is cancelled. The task was
    /// not touched; a later join (e.g. inside a shield) still gets its outcome.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled(_))
    }

    /// The cancellation that interrupted the join, if that is what happened.
    pub fn as_cancelled(&self) -> Option<Cancelled> {
        match self.repr {
            Repr::Cancelled(cancelled) => Some(cancelled),
            _ => None,
        }
    }

    /// The task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panicked(_))
    }

    /// The task was aborted before its future returned.
    pub fn is_aborted(&self) -> bool {
        matches!(self.repr, Repr::Aborted)
    }

    /// Where the task was spawned, when the error is the task's own (a panic or an abort);
    /// `None` when the join itself was interrupted by cancellation, and for the abort of a
    /// task whose runtime went away before the task could finish (its future dropped
    /// unpolled with the runtime, so it left no outcome to carry the location).
    pub fn spawned_at(&self) -> Option<&'static Location<'static>> {
        self.spawned_at
    }

    /// The panic payload, to inspect or re-raise with `std::panic::resume_unwind`.
    ///
    /// # Panics
    ///
    /// If the error is not a panic; check [`is_panic`](Self::is_panic) or use
    /// [`try_into_panic`](Self::try_into_panic).
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        self.try_into_panic().unwrap_or_else(|err| {
            panic!("JoinError::into_panic on an error that is not a panic: {err}")
        })
    }

    /// The panic payload, or the error back if it is not a panic.
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self.repr {
            Repr::Panicked(payload) => Ok(payload
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner)),
            repr => Err(JoinError {
                repr,
                spawned_at: self.spawned_at,
            }),
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled(cancelled) => write!(f, "join interrupted: {cancelled}"),
            Repr::Panicked(payload) => {
                f.write_str("task ")?;
                if let Some(location) = self.spawned_at {
                    write!(f, "spawned at {location} ")?;
                }
                write!(f, "panicked: {}", panic_message(&lock(payload)))
            }
            Repr::Aborted => {
                f.write_str("task ")?;
                if let Some(location) = self.spawned_at {
                    write!(f, "spawned at {location} ")?;
                }
                f.write_str("was aborted before it returned")
            }
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled(cancelled) => f.debug_tuple("Cancelled").field(cancelled).finish(),
            Repr::Panicked(payload) => f
                .debug_tuple("Panicked")
                .field(&panic_message(&lock(payload)))
                .finish(),
            Repr::Aborted => f.write_str("Aborted"),
        }
    }
}

impl std::error::Error for JoinError {}

/// So that `handle.await??` works in a function returning `io::Result`. An interrupted join
/// becomes the cancellation's own `io::Error` (`Cancelled::from_io` recognises it, and a
/// scope filters it out like any cancellation); a panic or an abort becomes an `io::Error`
/// of kind `Other` wrapping the `JoinError` (`into_inner` and a downcast give it back, the
/// panic payload with it).
impl From<JoinError> for std::io::Error {
    fn from(err: JoinError) -> std::io::Error {
        match err.repr {
            Repr::Cancelled(cancelled) => cancelled.into(),
            _ => std::io::Error::other(err),
        }
    }
}

/// The payload, even if a panic while it was locked poisoned the mutex.
fn lock(payload: &Mutex<Payload>) -> std::sync::MutexGuard<'_, Payload> {
    payload
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The handle's optimisation note and the byte table in benches/README.md count these.
    #[test]
    fn a_handle_is_three_words_and_an_outcome_one_word_more_than_its_value() {
        assert_eq!(size_of::<JoinHandle<u64>>(), 24);
        assert_eq!(size_of::<JoinHandle<[u8; 256]>>(), 24);
        // The tag and the widest of a `u64`, a box and a location: async-task keeps this in
        // every task, in place of the future once it is done.
        assert_eq!(size_of::<Outcome<u64>>(), 16);
        assert_eq!(size_of::<Outcome<()>>(), 16);
    }
}
