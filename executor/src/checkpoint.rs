//! The simplest await points: look at the cancellation mark, and yield.
//!
//! Every treeloop await point starts with [`poll_cancelled`]: one thread-local read and one
//! slab lookup of the current node's mark (the tree keeps marks pushed down to every node, so
//! nothing is walked). Leaf futures of other crates (timers, sockets, channels) call it too.
//!
//! # The cancelled path spends budget too
//!
//! In a cancelled region an await point completes at once with `Err(Cancelled)` (R6). A task
//! that catches the error and carries on (`loop { let _ = checkpoint().await; }`) would then
//! never return `Pending`: its poll would never end, and with it nothing else would run,
//! `abort()` and the watchdog included. So the cancelled path is a completion like any other:
//! it spends one unit of the per-poll budget ([`coop`]), and with the budget
//! gone it wakes the task and returns `Pending` instead. On the path that is not cancelled
//! this costs nothing (the mark is read anyway); on the cancelled path, one more
//! thread-local load. [`checkpoint`] and [`yield_now`] go further: they always yield once,
//! cancelled or not, and report the cancellation when they complete.
//!
//! The rejected alternative was to leave the budget to the operation behind the check (a
//! cancelled sleep spends nothing, it never reaches its timer): correct for well-behaved
//! tasks, but a task ignoring its cancellation is exactly the case the tree must survive.
//!
//! Read next: [`crate::join`], how a task's outcome reaches whoever awaits it: the end of
//! the path. Then, off it: [`crate::frame`] (the poll frame and the lazy-shield
//! optimisation), `shield.rs`, `region.rs`, `diag/`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::cancel::Cancelled;
use crate::{context, coop};

/// The cancellation of the region being polled right now, if it is cancelled.
///
/// `None` outside a runtime (there is no tree to be cancelled in) and inside a shield whose
/// own region is not cancelled (R11).
pub fn cancelled_here() -> Option<Cancelled> {
    look().ok().flatten()
}

/// The first step of every treeloop await point: the region's cancellation, budgeted (see
/// the module docs).
///
/// - `None`: the region is not cancelled (or this is not a runtime); go on with the
///   operation.
/// - `Some(Poll::Ready(cancelled))`: complete with `Err(cancelled)`.
/// - `Some(Poll::Pending)`: cancelled, but this poll's budget is spent; the task has been
///   woken to run again after the others, so return `Pending`.
///
/// ```
/// use std::pin::Pin;
/// use std::task::{Context, Poll};
/// use treeloop::Cancelled;
/// // Not in the facade: the building block of the runtime's own leaf futures.
/// use treeloop_executor::poll_cancelled;
///
/// /// An await point that is ready at once unless its region is cancelled.
/// struct Ready;
///
/// impl std::future::Future for Ready {
///     type Output = Result<(), Cancelled>;
///
///     fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
///         if let Some(cancelled) = poll_cancelled(cx) {
///             return cancelled.map(Err);
///         }
///         Poll::Ready(Ok(()))
///     }
/// }
///
/// let aborted = treeloop::block_on(async {
///     let stubborn = treeloop::spawn(async {
///         // Ignores its cancellation, but still yields to the others when its budget is
///         // spent: abort() below reaches it.
///         loop {
///             let _ = Ready.await;
///         }
///     });
///     stubborn.cancel();
///     treeloop::yield_now().await.unwrap();
///     stubborn.abort();
///     stubborn.await.unwrap_err().is_aborted()
/// });
/// assert!(aborted);
/// ```
#[inline]
pub fn poll_cancelled(cx: &mut Context<'_>) -> Option<Poll<Cancelled>> {
    let cancelled = cancelled_here()?;
    Some(spend(cx, cancelled))
}

/// The cancelled path of [`poll_cancelled`], out of line: the hot path is the other one.
#[cold]
fn spend(cx: &mut Context<'_>, cancelled: Cancelled) -> Poll<Cancelled> {
    coop::poll_proceed(cx).map(|()| cancelled)
}

/// [`poll_cancelled`] for an await point that only works inside a runtime: `Err` outside
/// one, so the caller can panic naming itself. One look at the thread-local where
/// `in_runtime()` followed by `poll_cancelled()` would take two.
#[inline]
pub fn poll_cancelled_or_outside(
    cx: &mut Context<'_>,
) -> Result<Option<Poll<Cancelled>>, OutsideRuntime> {
    Ok(look()?.map(|cancelled| spend(cx, cancelled)))
}

/// [`poll_cancelled_or_outside`] was called outside a treeloop runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutsideRuntime;

fn look() -> Result<Option<Cancelled>, OutsideRuntime> {
    if crate::frame::lazy_shield().is_some() {
        // Inside a shield that has no node (so inside a runtime): nothing started inside
        // it, so nothing inside it can have been cancelled.
        return Ok(None);
    }
    context::with_core(|core| {
        let cancel = core.current_mark();
        if cancel.is_some() {
            // The task is told of its cancellation: the first time, that is progress for
            // the watchdog; again and again, it is not (a task that swallows it).
            core.note_saw_cancel();
        }
        cancel.map(Cancelled::new)
    })
    .ok_or(OutsideRuntime)
}

/// Yields once to the other tasks, then completes: `Err(Cancelled)` if the region is
/// cancelled by then (R6), `Ok(())` otherwise. It yields in a cancelled region too, so a loop
/// that ignores the error cannot starve the loop. The way for a long computation to be both
/// fair and cancellable.
///
/// ```
/// # treeloop::block_on(async {
/// for _chunk in 0..3 {
///     // ... a slice of synchronous work ...
///     treeloop::checkpoint().await?;
/// }
/// # Ok::<(), treeloop::Cancelled>(())
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
        if !self.yielded {
            if !context::in_runtime() {
                panic!(
                    "checkpoint/yield_now polled outside a treeloop runtime: await it inside \
                     `treeloop::block_on` (or a task spawned from it)"
                )
            }
            // Yield first, cancelled or not: a task that swallows the `Cancelled` of a
            // checkpoint in a loop still lets the others run (see the module docs).
            self.yielded = true;
            // To the back of the run queue.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        // Level-triggered (R6): the mark as it is now, when the checkpoint completes.
        match look() {
            Ok(Some(cancelled)) => Poll::Ready(Err(cancelled)),
            _ => Poll::Ready(Ok(())),
        }
    }
}

/// Waits until the region being polled is cancelled, and returns how: the way for a task
/// that only serves until shutdown to wait for it.
///
/// It needs no waker registration of its own: marking a subtree wakes every task in it.
///
/// ```
/// # treeloop::block_on(async {
/// let server = treeloop::spawn(async {
///     let why = treeloop::cancelled().await;
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

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Cancelled> {
        match look() {
            // A completion: it spends budget, so `loop { cancelled().await; }` yields too.
            Ok(Some(cancelled)) => spend(cx, cancelled),
            Ok(None) => Poll::Pending,
            Err(OutsideRuntime) => panic!(
                "cancelled() polled outside a treeloop runtime: await it inside \
                 `treeloop::block_on` (or a task spawned from it)"
            ),
        }
    }
}
