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
    let cancelled = context::with_core(|core| {
        let tree = core.tree.borrow();
        let current = core.current.get();
        tree.get(current)
            .and_then(|node| node.cancel)
            .map(Cancelled::new)
    })
    .flatten();
    if cancelled.is_some() {
        seen_cancelled();
    }
    cancelled
}

/// The task being polled has seen its cancellation: progress, for the watchdog. Out of line,
/// so the common "not cancelled" path stays as small as it was before diagnostics.
#[cold]
fn seen_cancelled() {
    context::with_core(|core| core.note_progress());
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
        assert!(
            context::in_runtime(),
            "checkpoint/yield_now polled outside a treeloop runtime: await it inside \
             `treeloop::block_on` (or a task spawned from it)"
        );
        if let Some(cancelled) = cancelled_here() {
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
        assert!(
            context::in_runtime(),
            "cancelled() polled outside a treeloop runtime: await it inside \
             `treeloop::block_on` (or a task spawned from it)"
        );
        match cancelled_here() {
            Some(cancelled) => Poll::Ready(cancelled),
            None => Poll::Pending,
        }
    }
}
