//! The simplest await points: look at the cancellation mark, and yield.
//!
//! Every treeloop await point starts with [`cancelled_here`]: one thread-local read and one
//! slab lookup of the current node's mark (the tree keeps marks pushed down to every node, so
//! nothing is walked). Leaf futures of other crates (timers, sockets, channels) call it too.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::cancel::Cancelled;
use crate::context;

/// The cancellation of the region being polled right now, if it is cancelled.
///
/// `None` outside a runtime (there is no tree to be cancelled in) and inside a shield whose
/// own region is not cancelled (R11).
pub fn cancelled_here() -> Option<Cancelled> {
    look().ok().flatten()
}

/// [`cancelled_here`] for an await point that only works inside a runtime: `Err` outside
/// one, so the caller can panic naming itself. One look at the thread-local where
/// `in_runtime()` followed by `cancelled_here()` would take two (this is on the path of every
/// treeloop await point).
pub fn cancelled_or_outside() -> Result<Option<Cancelled>, OutsideRuntime> {
    look()
}

/// [`cancelled_or_outside`] was called outside a treeloop runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutsideRuntime;

fn look() -> Result<Option<Cancelled>, OutsideRuntime> {
    if context::lazy_shield().is_some() {
        // Inside a shield that has no node (so inside a runtime): nothing started inside
        // it, so nothing inside it can have been cancelled.
        return Ok(None);
    }
    context::with_core(|core| {
        let cancel = core.tree.borrow().get(core.current.get())?.cancel;
        if cancel.is_some() {
            // The task has seen its cancellation: progress, for the watchdog.
            core.note_progress();
        }
        cancel.map(Cancelled::new)
    })
    .ok_or(OutsideRuntime)
}

/// Yields once to the other tasks; `Err(Cancelled)` in a cancelled region, before and after
/// the yield (R6). The way for a long computation to be both fair and cancellable.
///
/// ```
/// # treeloop_executor::block_on(async {
/// for _chunk in 0..3 {
///     // ... a slice of synchronous work ...
///     treeloop_executor::checkpoint().await?;
/// }
/// # Ok::<(), treeloop_executor::Cancelled>(())
/// # }).unwrap();
/// ```
#[must_use = "a checkpoint does nothing unless awaited"]
pub fn checkpoint() -> Checkpoint {
    Checkpoint { yielded: false }
}

/// Another name for [`checkpoint`], for readers coming from tokio or smol.
#[must_use = "yield_now does nothing unless awaited"]
pub fn yield_now() -> Checkpoint {
    checkpoint()
}

/// The future of [`checkpoint`] and [`yield_now`].
#[derive(Debug)]
pub struct Checkpoint {
    /// Returned `Pending` once already.
    yielded: bool,
}

impl Future for Checkpoint {
    type Output = Result<(), Cancelled>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Ok(cancelled) = look() else {
            panic!(
                "checkpoint/yield_now polled outside a treeloop runtime: await it inside \
                 `treeloop::block_on` (or a task spawned from it)"
            )
        };
        if let Some(cancelled) = cancelled {
            return Poll::Ready(Err(cancelled));
        }
        if self.yielded {
            return Poll::Ready(Ok(()));
        }
        self.yielded = true;
        // To the back of the run queue.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Waits until the region being polled is cancelled, and returns how: the way for a task
/// that only serves until shutdown to wait for it.
///
/// It needs no waker registration of its own: marking a subtree wakes every task in it.
///
/// ```
/// # treeloop_executor::block_on(async {
/// let server = treeloop_executor::spawn(async {
///     let why = treeloop_executor::cancelled().await;
///     format!("stopping: {why}")
/// });
/// server.cancel();
/// assert_eq!(server.await.unwrap(), "stopping: operation cancelled: cancel was requested");
/// # });
/// ```
#[must_use = "futures do nothing unless awaited"]
pub fn cancelled() -> WaitCancelled {
    WaitCancelled { _private: () }
}

/// The future of [`cancelled`].
#[derive(Debug)]
pub struct WaitCancelled {
    _private: (),
}

impl Future for WaitCancelled {
    type Output = Cancelled;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Cancelled> {
        match look() {
            Ok(Some(cancelled)) => Poll::Ready(cancelled),
            Ok(None) => Poll::Pending,
            Err(OutsideRuntime) => panic!(
                "cancelled() polled outside a treeloop runtime: await it inside \
                 `treeloop::block_on` (or a task spawned from it)"
            ),
        }
    }
}
