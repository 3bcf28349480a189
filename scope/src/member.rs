//! Members of a scope: the wrapper their futures run in, and the handle to join them.
//!
//! A member's future returns `Result<R, E>`. The wrapper runs it in a task spawned into the
//! scope's region and catches what the scope must hear about: an `Err` that is a real
//! failure and a panic go to the scope's [`ScopeState`]; the member's handle then only says
//! "failed" ([`MemberError::Failed`]), since the error itself now belongs to the scope.

use std::fmt;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use treeloop_executor::{Cancelled, JoinHandle, SpawnRefused, TaskId};

use crate::error::Cancellation;
use crate::state::ScopeState;

pin_project! {
    /// The future a member task runs: the user's future, with failures reported to the scope.
    ///
    /// The user's future is dropped here, under `catch_unwind`, as soon as it returns (or,
    /// if the member is aborted or torn down first, when the wrapper is dropped): a panic in
    /// its `Drop` is a failure of the member and goes to the scope like any other panic.
    pub(crate) struct Member<F, E>
    where
        E: Cancellation,
    {
        #[pin]
        future: Option<F>,
        // The scope to report to.
        state: Rc<ScopeState<E>>,
    }

    impl<F, E> PinnedDrop for Member<F, E>
    where
        E: Cancellation,
    {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let mut future = this.future;
            if future.is_some() {
                if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| future.set(None))) {
                    this.state.panicked(payload);
                }
            }
        }
    }
}

impl<F, E: Cancellation> Member<F, E> {
    pub(crate) fn new(future: F, state: Rc<ScopeState<E>>) -> Self {
        Member {
            future: Some(future),
            state,
        }
    }
}

impl<F, R, E> Future for Member<F, E>
where
    F: Future<Output = Result<R, E>>,
    E: Cancellation,
{
    /// `None` when the member failed (its error or panic went to the scope).
    type Output = Option<R>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<R>> {
        let this = self.project();
        let mut future = this.future;
        let polled = panic::catch_unwind(AssertUnwindSafe(|| {
            let inner = future.as_mut().as_pin_mut();
            inner.expect("a member polled after it returned").poll(cx)
        }));
        let result = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(result)) => Ok(result),
            Err(payload) => Err(payload),
        };
        let dropped = panic::catch_unwind(AssertUnwindSafe(|| future.set(None)));
        let value = match result {
            Ok(Ok(value)) => Some(value),
            Ok(Err(error)) => {
                this.state.fail(error);
                None
            }
            Err(payload) => {
                this.state.panicked(payload);
                None
            }
        };
        match dropped {
            Ok(()) => Poll::Ready(value),
            Err(payload) => {
                this.state.panicked(payload);
                Poll::Ready(None)
            }
        }
    }
}

/// Why a scope refused to spawn (the future was dropped without running).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpawnError {
    /// The scope has ended: its body and all its members finished (or its future was
    /// dropped). Spawn while the scope is still running.
    ScopeEnded,
    /// No treeloop runtime runs on this thread: the scope's runtime is gone.
    NoRuntime,
}

impl From<SpawnRefused> for SpawnError {
    fn from(refused: SpawnRefused) -> Self {
        match refused {
            SpawnRefused::Closed => SpawnError::ScopeEnded,
            SpawnRefused::NoRuntime => SpawnError::NoRuntime,
        }
    }
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SpawnError::ScopeEnded => {
                "cannot spawn into a scope that has ended: spawn while its body or members \
                 still run, or open a new scope"
            }
            SpawnError::NoRuntime => {
                "cannot spawn into a scope outside its runtime: the scope's `block_on` has \
                 returned"
            }
        })
    }
}

impl std::error::Error for SpawnError {}

/// So `s.spawn(..)?` works in a body whose error type is `io::Error`.
impl From<SpawnError> for std::io::Error {
    fn from(err: SpawnError) -> std::io::Error {
        std::io::Error::other(err)
    }
}

/// Why a [`ScopedJoinHandle`] did not return the member's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberError {
    /// The member returned an error or panicked. The error went to the scope, whose
    /// `.await` reports it (a panic is re-raised there).
    Failed,
    /// The join itself was cancelled (the awaiting region is cancelled); the member is
    /// untouched and a later join (inside a shield) still gets its value.
    Cancelled(Cancelled),
    /// The member was aborted before it returned.
    Aborted,
}

impl fmt::Display for MemberError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemberError::Failed => f.write_str("scope member failed; its scope reports the error"),
            MemberError::Cancelled(cancelled) => write!(f, "join interrupted: {cancelled}"),
            MemberError::Aborted => f.write_str("scope member was aborted"),
        }
    }
}

impl std::error::Error for MemberError {}

/// A handle to a scope member: await its value, cancel or abort it.
///
/// Dropping it neither detaches nor cancels the member; the scope waits for it regardless.
/// So, like `JoinHandle`, it is not `#[must_use]`: spawning and forgetting is the common
/// way to use a scope.
pub struct ScopedJoinHandle<R> {
    /// The member task.
    inner: JoinHandle<Option<R>>,
}

impl<R> ScopedJoinHandle<R> {
    pub(crate) fn new(inner: JoinHandle<Option<R>>) -> Self {
        ScopedJoinHandle { inner }
    }

    /// The member's task id.
    pub fn id(&self) -> TaskId {
        self.inner.id()
    }

    /// Whether the member and its descendants have finished.
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }

    /// Cancels this member's subtree only (not the scope, R10).
    pub fn cancel(&self) {
        self.inner.cancel();
    }

    /// Cancels this member and drops its future at its next poll.
    pub fn abort(&self) {
        self.inner.abort();
    }
}

impl<R> Future for ScopedJoinHandle<R> {
    type Output = Result<R, MemberError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.inner)
            .poll(cx)
            .map(|joined| match joined {
                Ok(Some(value)) => Ok(value),
                Ok(None) => Err(MemberError::Failed),
                Err(err) => match err.as_cancelled() {
                    Some(cancelled) => Err(MemberError::Cancelled(cancelled)),
                    // A member's panic is caught by its wrapper; only a panicking Drop of its
                    // future reaches here, and it is a failure like any other.
                    None if err.is_aborted() => Err(MemberError::Aborted),
                    None => Err(MemberError::Failed),
                },
            })
    }
}

impl<R> fmt::Debug for ScopedJoinHandle<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedJoinHandle")
            .field("id", &self.id())
            .field("finished", &self.is_finished())
            .finish()
    }
}
