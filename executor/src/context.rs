//! Which runtime is running on this thread, and which node of its tree is being polled.
//!
//! # Ground rules
//!
//! - `CONTEXT` is set by [`enter`] for the duration of a `block_on` and cleared by the guard
//!   it returns, even when unwinding. Setting it twice on one thread is the nested-`block_on`
//!   mistake and panics with the fix.
//! - Everything else only *reads* it: a shared borrow of the thread-local, never held while
//!   user code runs (the executor polls tasks through its own `Rc<Core>`, not through here).

use std::cell::{Cell, RefCell};
use std::panic::Location;
use std::rc::Rc;

use crate::executor::Core;
use crate::tree::{Key, NodeRef, TaskId};

thread_local! {
    /// The runtime running on this thread, if any.
    static CONTEXT: RefCell<Option<Rc<Core>>> = const { RefCell::new(None) };
}

// The lazy-shield part of the poll frame (see `crate::shield`). Beside `CONTEXT` rather
// than in the core because it is read at every await point and written twice per shield
// poll: these cells have no destructor, so each access is one load or store, where the
// core's thread-local costs a state check and a `RefCell` borrow first (about 45
// instructions per shielded poll on cancel_tree, measured with callgrind).
thread_local! {
    /// Whether the runtime running on this thread opens shields lazily.
    static SHIELDS_ARE_LAZY: Cell<bool> = const { Cell::new(false) };
    /// Set while the innermost frame being polled is a shield that has no node yet: what the
    /// node needs if something inside needs one.
    static LAZY_SHIELD: Cell<Option<LazyShield>> = const { Cell::new(None) };
    /// The node a lazy shield was given during its current poll, and the current node it
    /// replaced (to restore when the poll ends).
    static SHIELD_MADE: Cell<Option<(Key, Key)>> = const { Cell::new(None) };
}

/// Whether a shield entered now may start without a node (inside a runtime without
/// diagnostics).
#[inline]
pub(crate) fn shields_are_lazy() -> bool {
    SHIELDS_ARE_LAZY.get()
}

/// A shield without a node, as the frame of its poll knows it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LazyShield {
    /// Where `shield` was called.
    pub(crate) location: &'static Location<'static>,
    /// The node that was being polled when the shield was first polled: its node goes
    /// there, as an eagerly opened one would have, even if the shield is polled somewhere
    /// else by the time it needs the node.
    pub(crate) host: NodeRef,
    /// The id taken when the shield was first polled, which its node gets if it is opened
    /// (so numbering is the same with or without diagnostics).
    pub(crate) id: TaskId,
}

/// The lazy shield the innermost frame is in, if it is one.
#[inline]
pub(crate) fn lazy_shield() -> Option<LazyShield> {
    LAZY_SHIELD.get()
}

/// Enters (`Some`) or leaves (`None`) a lazy shield frame; returns the previous state.
#[inline]
pub(crate) fn replace_lazy_shield(shield: Option<LazyShield>) -> Option<LazyShield> {
    LAZY_SHIELD.replace(shield)
}

/// Records the node opened for the innermost lazy shield and the current node it replaced
/// (or clears the record); returns the previous record.
#[inline]
pub(crate) fn replace_shield_made(made: Option<(Key, Key)>) -> Option<(Key, Key)> {
    SHIELD_MADE.replace(made)
}

/// Runs `f` with the runtime running on this thread; `None` outside a runtime (or while the
/// thread is being torn down).
///
/// Always inlined: it is on the path of every poll, wake and await point, and as a call it
/// cost about 30 instructions more per yield than inline (callgrind, the yield benchmark).
#[inline(always)]
pub(crate) fn with_core<R>(f: impl FnOnce(&Rc<Core>) -> R) -> Option<R> {
    CONTEXT
        .try_with(|cell| cell.borrow().as_ref().map(f))
        .ok()
        .flatten()
}

/// Like [`with_core`], but a missing runtime is the caller's mistake: panic naming `what`.
#[track_caller]
pub(crate) fn expect_core<R>(what: &str, f: impl FnOnce(&Rc<Core>) -> R) -> R {
    match with_core(f) {
        Some(r) => r,
        None => panic!(
            "{what} called outside a treeloop runtime: call it inside `treeloop::block_on` \
             (or a task spawned from it)"
        ),
    }
}

/// Clears `CONTEXT` when dropped.
pub(crate) struct EnterGuard(());

/// Makes `core` this thread's runtime until the guard is dropped.
pub(crate) fn enter(core: Rc<Core>) -> EnterGuard {
    CONTEXT.with(|cell| {
        let mut slot = cell.borrow_mut();
        assert!(
            slot.is_none(),
            "block_on called inside a treeloop runtime: a nested block_on would stall the event \
             loop; `.await` the future instead, or `treeloop::spawn` it"
        );
        SHIELDS_ARE_LAZY.set(!core.eager_shields);
        *slot = Some(core);
    });
    EnterGuard(())
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        // Take the core out first and drop it after the borrow ends: dropping it may run
        // destructors that look at CONTEXT.
        let core = CONTEXT
            .try_with(|cell| cell.borrow_mut().take())
            .ok()
            .flatten();
        let _ = SHIELDS_ARE_LAZY.try_with(|lazy| lazy.set(false));
        drop(core);
    }
}

/// Whether this thread is inside a treeloop runtime.
pub fn in_runtime() -> bool {
    with_core(|_| ()).is_some()
}
