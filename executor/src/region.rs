//! Regions: nodes of the tree that belong to a future rather than to a task.
//!
//! A region is how a piece of a task's body gets its own place in the tree: a shield, a
//! scope (nursery), a timeout. The future that owns the [`Region`] polls its inner future
//! inside [`Region::enter`], which makes the region the current node: await points read the
//! region's mark, `spawn` makes tasks its children. The building block for everything in
//! the scope crate; applications use `shield`, `scope` and `timeout` instead.
//!
//! # Ground rules
//!
//! - A region is opened under the node being polled, so it nests like the code does.
//! - A cancel region inherits its parent's mark and is marked by cancels from above; a
//!   shield does neither (R11). Both can be cancelled *directly* ([`Region::cancel`]), which is
//!   how a deadline or a failing member cancels just that region.
//! - Dropping the `Region` closes it. A closed region with children stays in the tree
//!   ("completing") until its last child finishes, so the owning task still waits for them.
//! - While a region is open, the waker given to `enter`/`set_waker` is woken when the region
//!   is cancelled and when its last child finishes: a scope waits for its members that way.
//! - [`RegionHandle`] is a copyable, `'static` reference that outlives the region: spawning
//!   through it after the region closed is refused.

use std::future::Future;
use std::panic::Location;
use std::rc::Rc;
use std::task::Waker;

use crate::cancel::{CancelReason, Cancelled};
use crate::context;
use crate::core::Core;
use crate::join::JoinHandle;
use crate::tree::{NodeKind, NodeRef, Phase, TaskId};

/// What kind of region to open: the two kinds of region node in the tree (a dump shows them
/// as `region` and `shield`).
///
/// ```
/// use treeloop::task::{Region, RegionKind};
///
/// treeloop::block_on(async {
///     let region = Region::open(RegionKind::Region);
///     let shield = Region::open(RegionKind::Shield);
///     // Cancelling the enclosing task would reach `region`, never `shield`; both can
///     // be cancelled directly.
///     region.cancel(treeloop::CancelReason::Explicit);
///     assert!(region.cancellation().is_some());
///     assert!(shield.cancellation().is_none());
/// });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    /// A cancel region: cancellable from above and directly (scopes and deadlines).
    Region,
    /// Hides cancellation from above; only cancellable directly (R11).
    Shield,
}

#[allow(non_upper_case_globals)]
impl RegionKind {
    /// The old name of [`RegionKind::Region`], kept so code written against it still
    /// compiles.
    #[deprecated(note = "renamed `RegionKind::Region`, the tree's word for this node kind")]
    pub const Cancel: RegionKind = RegionKind::Region;
}

/// An open region of the tree, owned by the future that opened it.
///
/// The building block of `shield`, `scope` and `timeout`; applications use those. The owning
/// future polls its inner future inside [`enter`](Region::enter), which makes the region the
/// current node: await points read the region's cancellation mark, and `spawn` makes tasks
/// its children. Dropping the `Region` closes it; a closed region whose children are still
/// running stays in the tree until the last one finishes, so the owning task waits for them.
#[derive(Debug)]
pub struct Region {
    /// The region's node.
    node: NodeRef,
    /// Whether it is a shield.
    shield: bool,
}

impl Region {
    /// Opens a region under the node being polled.
    ///
    /// # Panics
    ///
    /// Outside a treeloop runtime.
    #[track_caller]
    pub fn open(kind: RegionKind) -> Region {
        Region::open_at(kind, Location::caller())
    }

    /// Like [`open`](Self::open), recording `location` as where it was opened.
    #[track_caller]
    pub fn open_at(kind: RegionKind, location: &'static Location<'static>) -> Region {
        let shield = kind == RegionKind::Shield;
        let kind = match kind {
            RegionKind::Region => NodeKind::Region,
            RegionKind::Shield => NodeKind::Shield,
        };
        context::expect_core("opening a shield, scope or timeout", |core| {
            let parent = core.open_spawn_parent();
            let node = core.insert(Some(parent), kind, location, None);
            Region { node, shield }
        })
    }

    /// The region of a shield whose node [`Core`] opened while the shield had none (see
    /// [`crate::shield`](mod@crate::shield)).
    pub(crate) fn adopt_shield(core: &Core, key: crate::tree::Key) -> Region {
        Region {
            node: core.tree().node_ref(key),
            shield: true,
        }
    }

    /// A `'static` handle to spawn into or cancel this region from anywhere.
    pub fn handle(&self) -> RegionHandle {
        RegionHandle { node: self.node }
    }

    /// Runs `f` (a poll of the inner future) with this region as the current node, and makes
    /// `waker` the one woken when the region is cancelled or its last child finishes.
    ///
    /// A region whose node is gone (its runtime's `block_on` unwound and tore the tree down,
    /// and the future owning the region outlived it) is entered as nothing: `f` runs in the
    /// caller's frame. Its slab key may belong to another node by now, which must not be
    /// touched.
    pub fn enter<R>(&self, waker: &Waker, f: impl FnOnce() -> R) -> R {
        let core = self.core();
        if !core.set_region_waker(self.node, waker) {
            return f();
        }
        if self.shield {
            // A shielded cleanup being polled counts as progress for the watchdog.
            core.note_progress();
        }
        let _current = core.enter_node(self.node.key);
        f()
    }

    /// Makes `waker` the one woken when the region is cancelled or its last child finishes.
    pub fn set_waker(&self, waker: &Waker) {
        self.core().set_region_waker(self.node, waker);
    }

    /// The region's own cancellation mark (from above, or direct).
    pub fn cancellation(&self) -> Option<Cancelled> {
        let core = self.core();
        let tree = core.tree();
        let key = tree.resolve(self.node)?;
        tree.node(key).cancel.map(Cancelled::new)
    }

    /// The cancellation of the node the region was opened under, if that node is
    /// cancelled: a cancel from *outside* the region, as opposed to one of the region's own
    /// (its deadline, its scope's `cancel`, a failing member). A shield around the region
    /// hides the outside, as it does for await points (R11). How a scope or a timeout lets
    /// an enclosing cancel win over its own (R15).
    pub fn enclosing_cancellation(&self) -> Option<Cancelled> {
        let core = self.core();
        let tree = core.tree();
        let key = tree.resolve(self.node)?;
        let parent = tree.parent(key)?;
        tree.node(parent).cancel.map(Cancelled::new)
    }

    /// Cancels the region and its subtree; see [`RegionHandle::cancel`].
    pub fn cancel(&self, reason: CancelReason) {
        self.handle().cancel(reason);
    }

    /// Whether tasks spawned in the region (or in regions inside it) are still alive.
    pub fn has_children(&self) -> bool {
        let core = self.core();
        let tree = core.tree();
        tree.resolve(self.node)
            .is_some_and(|key| tree.has_children(key))
    }

    fn core(&self) -> Rc<Core> {
        context::with_core(Rc::clone).expect(
            "a treeloop region (shield, scope or timeout) was used outside its runtime: \
             await it inside the `block_on` that created it",
        )
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        context::with_core(|core| core.close_region(self.node));
    }
}

/// Why [`RegionHandle::spawn`] refused a future (which it dropped unrun).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpawnRefused {
    /// The region was closed: its owner finished or was dropped.
    Closed,
    /// No treeloop runtime runs on this thread (the region's runtime is gone).
    NoRuntime,
}

/// A `'static`, copyable reference to a region: spawn into it, cancel it, from any task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionHandle {
    /// The region's node; stale once the region has left the tree.
    node: NodeRef,
}

impl RegionHandle {
    /// The region's id (regions and tasks share one id space).
    pub fn id(&self) -> TaskId {
        self.node.id
    }

    /// Spawns `future` as a child of the region, wherever the caller is (R1): a timeout
    /// around the call does not apply to the child. Refused, and the future dropped unrun,
    /// when the region is closed or the runtime is gone.
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> Result<JoinHandle<F::Output>, SpawnRefused>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.spawn_named(future, None, Location::caller())
    }

    /// [`spawn`](Self::spawn) with a name and the caller's location.
    pub(crate) fn spawn_named<F>(
        &self,
        future: F,
        name: Option<Box<str>>,
        location: &'static Location<'static>,
    ) -> Result<JoinHandle<F::Output>, SpawnRefused>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let node = self.node;
        context::with_core(|core| {
            let open = {
                let tree = core.tree();
                tree.resolve(node)
                    .filter(|&key| tree.node(key).phase == Phase::Active)
            };
            match open {
                Some(key) => Ok(crate::task::spawn_in(core, key, future, location, name)),
                None => Err(SpawnRefused::Closed),
            }
        })
        .unwrap_or(Err(SpawnRefused::NoRuntime))
    }

    /// Cancels the region's subtree (a closed region's remaining children included): every
    /// treeloop await point in it returns `Err(Cancelled)` with `reason`. Harmless twice, and
    /// a no-op once the region has left the tree or outside its runtime.
    pub fn cancel(&self, reason: CancelReason) {
        context::with_core(|core| {
            let key = core.tree().resolve(self.node);
            if let Some(key) = key {
                core.cancel(key, reason);
            }
        });
    }

    /// Whether the region still accepts spawns.
    pub fn is_open(&self) -> bool {
        context::with_core(|core| {
            let tree = core.tree();
            tree.resolve(self.node)
                .is_some_and(|key| tree.node(key).phase == Phase::Active)
        })
        .unwrap_or(false)
    }
}
