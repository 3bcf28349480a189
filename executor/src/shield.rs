//! Shields: regions that cancellation from outside cannot enter, so cleanup can await.
//!
//! A shield is a node of the tree, under the node being polled. While its inner future is
//! polled the shield is the current node, so await points read *its* mark (unset, unless
//! something inside cancelled it) and tasks spawned inside become its children.
//! [`Tree::cancel`](crate::tree::Tree::cancel) stops at shields, which is all "hidden from
//! outside cancellation" means (R11).
//!
//! # The node is opened lazily
//!
//! Most shields wrap a short cleanup (a flush, a goodbye message, a sleep) that spawns
//! nothing and opens no region. Such a shield needs no node: all it must do is hide the
//! outer mark from the await points polled inside it. So a shield starts *lazy*: while its
//! inner future is polled, a `lazy_shield` flag is set (the current node stays the
//! enclosing one), and [`cancelled_here`](crate::cancelled_here) answers "not cancelled"
//! while it is. The flag is a thread-local of its own (see `context`), so a lazy shield's
//! poll and the await points inside it never reach for the core.
//!
//! The first thing inside that needs a node as its parent (a `spawn`, a scope, a timeout,
//! a nested shield's node) makes the core open the shield's node right then, with the
//! location where `shield` was called, and *where an eager node would be*: under the node
//! that was being polled when the shield was first polled, which the shield remembers from
//! that first poll (a shield first polled outside a timeout and later awaited inside it
//! must not put its children under the timeout's region). If that node is gone (the
//! shield future was moved to another task, and the first one finished), the node goes
//! under the node polled now. The shield adopts its node when the poll ends and from then
//! on is an ordinary region. Nested lazy shields are equivalent to one: the innermost that
//! needs a node gets it.
//!
//! This saves a slab insert, two link updates, a waker clone and a removal per shield: in
//! the cancel_tree benchmark, about a fifth of the instructions per cancelled leaf (2,210
//! -> 1,733 when it was introduced; remembering where the shield was first polled gives
//! about 80 of them back; see benches/README.md). The price is visibility: a lazy shield is not in a
//! [`TreeDump`](crate::TreeDump), so its task shows as cancelled instead of shielded.
//! Any diagnostic turns laziness off ([`crate::diag::Diagnostics::shield_nodes`]), so the
//! dump and the watchdog (which tells "shielded and waiting" from "ignores cancellation")
//! always see shields as nodes.
//!
//! # Numbering
//!
//! A lazy shield takes its id (its number within the runtime) when it is first polled,
//! exactly when an eager one opens its node, whether or not it ever gets a node. Ids are
//! never reused, so a gap costs nothing, and every task created after the shield has the
//! same number with diagnostics on or off: traces name tasks by that number, so turning a
//! diagnostic on can never change a seeded run's trace. The price is one counter increment
//! per shield, under the borrow its first poll takes anyway.
//!
//! # Ground rules
//!
//! - The shield's node outlives the future if tasks spawned inside are still running: it
//!   enters the completing phase and leaves the tree with its last child. Those children stay
//!   shielded for their whole life (R11: "children spawned inside a shield are shielded").
//! - Leaving the shield restores the previous current node (and the enclosing lazy shield,
//!   if any), so the first await point after it sees the outer mark again.
//! - A node opened for a lazy shield is adopted even if the inner poll panics: the guard
//!   that restores the frame hands it over while unwinding, so it is closed with the shield.
//!
//! Rejected alternative: a shield *depth* counter per task. It cannot express tasks spawned
//! inside a shield, nor a deadline opened inside one, which must still fire (R11); a node
//! can, with the same O(1) check at await points. The lazy flag keeps that
//! property: anything that needs a node gets one.

use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::context;
use crate::frame::{self, LazyShield};
use crate::region::{Region, RegionKind};
use crate::tree::{Key, NodeRef, TaskId};

/// Runs `future` with cancellation from outside hidden, so cleanup can await (R11).
///
/// Inside, treeloop await points behave as if the enclosing region were not cancelled;
/// cancellation that starts inside (a deadline set inside, a task spawned inside being
/// cancelled through its handle) still applies. Right after the shield, the outer
/// cancellation is visible again.
///
/// ```
/// use treeloop::{checkpoint, shield, spawn};
/// # treeloop::block_on(async {
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
        host: None,
        location: Location::caller(),
    }
}

pin_project! {
    /// The future of [`shield`].
    #[must_use = "futures do nothing unless awaited"]
    pub struct Shield<F> {
        #[pin]
        inner: F,
        // Its node: opened at the first poll with diagnostics on, else when something
        // inside first needs it (see the module doc); closed on completion or drop.
        region: Option<Region>,
        // Without diagnostics: the node polled when the shield was first polled, where its
        // node goes when it is opened, and the id it took then (see "Numbering" above).
        host: Option<(NodeRef, TaskId)>,
        // Where `shield` was called.
        location: &'static Location<'static>,
    }
}

impl<F: Future> Future for Shield<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let location = *this.location;
        let inner = this.inner;
        let slot = this.region;
        if slot.is_none() {
            if frame::shields_are_lazy() {
                let (host, id) = *this.host.get_or_insert_with(|| {
                    context::expect_core("polling a shield", |core| {
                        (core.polled_ref(), core.reserve_id())
                    })
                });
                let shield = LazyShield { location, host, id };
                return poll_lazy(slot, shield, cx, |cx| inner.poll(cx));
            }
            // Panics outside a runtime, naming the mistake.
            *slot = Some(Region::open_at(RegionKind::Shield, location));
        }
        let region = slot.as_ref().expect("the shield's region was just opened");
        let polled = region.enter(cx.waker(), || inner.poll(cx));
        if polled.is_ready() {
            // Close the region now, not when the Shield is dropped.
            *slot = None;
        }
        polled
    }
}

/// One poll of a shield that has no node: the inner future runs with the lazy flag set. If
/// something inside opened the shield's node, the shield adopts it (and closes it at once if
/// the inner future is done). Nothing here touches the core on the common path.
fn poll_lazy<T>(
    slot: &mut Option<Region>,
    shield: LazyShield,
    cx: &mut Context<'_>,
    poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
) -> Poll<T> {
    let polled = {
        let _frame = LazyFrame {
            previous_lazy: frame::replace_lazy_shield(Some(shield)),
            previous_made: frame::replace_shield_made(None),
            slot: &mut *slot,
        };
        poll(cx)
    };
    match slot {
        Some(_) if polled.is_ready() => *slot = None,
        Some(region) => region.set_waker(cx.waker()),
        None => {}
    }
    polled
}

/// The frame of one lazy shield poll. When the poll ends, unwinding included, it restores
/// the enclosing frame; if something inside opened the shield's node (which made that node
/// the current one), it also restores the current node and hands the node to the shield.
struct LazyFrame<'a> {
    previous_lazy: Option<LazyShield>,
    previous_made: Option<(Key, Key)>,
    slot: &'a mut Option<Region>,
}

impl Drop for LazyFrame<'_> {
    #[inline]
    fn drop(&mut self) {
        let made = frame::replace_shield_made(self.previous_made);
        frame::replace_lazy_shield(self.previous_lazy);
        if let Some((node, replaced)) = made {
            adopt(self.slot, node, replaced);
        }
    }
}

/// The rare end of a lazy shield's poll: something inside opened the shield's node.
#[cold]
fn adopt(slot: &mut Option<Region>, node: Key, replaced: Key) {
    context::with_core(|core| {
        core.restore_current(replaced);
        *slot = Some(Region::adopt_shield(core, node));
    });
}
