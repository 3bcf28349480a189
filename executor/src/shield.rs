//! Shields: regions that cancellation from outside cannot enter, so cleanup can await.
//!
//! A shield is a node of the tree, opened under the current node the first time the
//! [`Shield`] future is polled. While its inner future is polled the shield is the current
//! node, so await points read *its* mark (unset, unless something inside cancelled it) and
//! tasks spawned inside become its children. [`Tree::cancel`](crate::tree::Tree::cancel)
//! stops at shields, which is all "hidden from outside cancellation" means (R11).
//!
//! # Ground rules
//!
//! - The shield's node outlives the future if tasks spawned inside are still running: it
//!   enters the completing phase and leaves the tree with its last child. Those children stay
//!   shielded for their whole life (R11: "children spawned inside a shield are shielded").
//! - Leaving the shield restores the previous current node, so the first await point after
//!   it sees the outer mark again.
//!
//! Rejected alternative: a shield *depth* counter per task. It cannot express tasks spawned
//! inside a shield, nor a deadline opened inside one (issue: "its own deadlines still
//! apply"); a node can, with the same O(1) check at await points.

use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::region::{Region, RegionKind};

/// Runs `future` with cancellation from outside hidden, so cleanup can await (R11).
///
/// Inside, treeloop await points behave as if the enclosing region were not cancelled;
/// cancellation that starts inside (a deadline set inside, a task spawned inside being
/// cancelled through its handle) still applies. Right after the shield, the outer
/// cancellation is visible again.
///
/// ```
/// use treeloop_executor::{checkpoint, shield, spawn};
/// # treeloop_executor::block_on(async {
/// let task = spawn(async {
///     loop {
///         if checkpoint().await.is_err() {
///             // Cancelled: this await would fail at once without the shield.
///             return shield(async { checkpoint().await }).await;
///         }
///     }
/// });
/// task.cancel();
/// assert_eq!(task.await.unwrap(), Ok(()));
/// # });
/// ```
#[track_caller]
pub fn shield<F: Future>(future: F) -> Shield<F> {
    Shield {
        inner: future,
        region: None,
        location: Location::caller(),
    }
}

pin_project! {
    /// The future of [`shield`].
    #[must_use = "futures do nothing unless awaited"]
    pub struct Shield<F> {
        #[pin]
        inner: F,
        // Opened at the first poll (it needs the runtime), closed on completion or drop.
        region: Option<Region>,
        // Where `shield` was called.
        location: &'static Location<'static>,
    }
}

impl<F: Future> Future for Shield<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let location = *this.location;
        let region = this
            .region
            .get_or_insert_with(|| Region::open_at(RegionKind::Shield, location));
        let inner = this.inner;
        let polled = region.enter(cx.waker(), || inner.poll(cx));
        if polled.is_ready() {
            // Close the region now, not when the Shield is dropped.
            *this.region = None;
        }
        polled
    }
}
