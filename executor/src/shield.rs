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
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use pin_project_lite::pin_project;

use crate::context;
use crate::executor::Core;
use crate::tree::{NodeKind, NodeRef, Phase};

/// An open region node owned by a future (for now: a shield).
pub(crate) struct Region {
    /// The region's node.
    node: NodeRef,
}

impl Region {
    /// Opens a region of `kind` under the node being polled.
    #[track_caller]
    pub(crate) fn open(kind: NodeKind, location: &'static Location<'static>) -> Region {
        context::expect_core("shield", |core| {
            let parent = core.current.get();
            let node = core.tree.borrow_mut().insert(Some(parent), kind, location);
            Region { node }
        })
    }

    /// Polls `f` with this region as the current node, and remembers `waker` as the one to
    /// wake when the region is cancelled.
    pub(crate) fn enter<R>(&self, waker: &Waker, f: impl FnOnce() -> R) -> R {
        let core: Rc<Core> = context::with_core(Rc::clone)
            .expect("a treeloop shield was polled outside its runtime");
        {
            let mut tree = core.tree.borrow_mut();
            let node = tree.node_mut(self.node.key);
            if !node.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
                node.waker = Some(waker.clone());
            }
        }
        let _current = core.enter_node(self.node.key);
        f()
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        context::with_core(|core| {
            let key = core.tree.borrow().resolve(self.node);
            let Some(key) = key else { return };
            let has_children = {
                let mut tree = core.tree.borrow_mut();
                let node = tree.node_mut(key);
                node.waker = None;
                node.phase = Phase::Completing;
                tree.has_children(key)
            };
            if !has_children {
                core.finish(key);
            }
        });
    }
}

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
            .get_or_insert_with(|| Region::open(NodeKind::Shield, location));
        let inner = this.inner;
        let polled = region.enter(cx.waker(), || inner.poll(cx));
        if polled.is_ready() {
            // Close the region now, not when the Shield is dropped.
            *this.region = None;
        }
        polled
    }
}
