//! The poll frame: which node of the tree is being polled right now, and whether a shield
//! without a node of its own is around it.
//!
//! # Ground rules
//!
//! - [`Frame::current`] is the node being polled, or [`NO_NODE`] between polls (a `Drop` run
//!   by the loop, a waker). Only [`Frame::enter`] and the lazy shield's bookkeeping change
//!   it, and the guard `enter` returns restores it, also when unwinding, so polls nest.
//! - A spawn, a region or an await point asks the frame where it is; nothing here reads or
//!   changes the tree.
//!
//! # Optimisation: lazy shields
//!
//! A shield needs a tree node only when something inside it needs one (a spawn, a scope, a
//! deadline); most cleanup shields contain none. Until then the shield is a frame, not a
//! node: [`LazyShield`] in a thread-local says "the innermost frame is a shield" (an await
//! point inside it is not cancelled), and the core opens the node on first need (see
//! `Core::open_spawn_parent`). On cancel_tree this saved about 540 instructions per leaf
//! (the node's insert, two entries and its removal). What it costs a reader: the frame has
//! two parts, the current node and the lazy shield, and both must be restored together.
//!
//! Read next: [`crate::shield`](mod@crate::shield), the shields the lazy frame stands for.

use std::cell::Cell;
use std::panic::Location;

use crate::tree::{Key, NodeRef, TaskId};

/// The current node between polls: no node is being polled.
pub(crate) const NO_NODE: Key = Key::MAX;

/// Which node is being polled.
pub(crate) struct Frame {
    /// The node being polled, or [`NO_NODE`].
    current: Cell<Key>,
}

impl Frame {
    pub(crate) fn new() -> Frame {
        Frame {
            current: Cell::new(NO_NODE),
        }
    }

    /// The node being polled, or [`NO_NODE`] between polls.
    #[inline]
    pub(crate) fn current(&self) -> Key {
        self.current.get()
    }

    /// Makes `key` the current node and returns the one it replaced (for the lazy shield's
    /// bookkeeping, which restores it itself).
    #[inline]
    pub(crate) fn replace(&self, key: Key) -> Key {
        self.current.replace(key)
    }

    /// Makes `key` the current node until the guard drops (also when unwinding). A node's
    /// await points read its own mark, even if a lazy shield polls it (a region opened
    /// before the shield was entered is not below the shield), so the lazy shield is left
    /// for the duration too.
    #[inline]
    pub(crate) fn enter(&self, key: Key) -> CurrentGuard<'_> {
        CurrentGuard {
            frame: self,
            previous: self.current.replace(key),
            previous_lazy: replace_lazy_shield(None),
        }
    }
}

/// Restores the previous frame: the current node, and the lazy shield around it if any.
pub(crate) struct CurrentGuard<'a> {
    frame: &'a Frame,
    previous: Key,
    previous_lazy: Option<LazyShield>,
}

impl Drop for CurrentGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.frame.current.set(self.previous);
        replace_lazy_shield(self.previous_lazy);
    }
}

// The lazy-shield part of the poll frame (see `crate::shield`). In thread-locals rather
// than in the core because it is read at every await point and written twice per shield
// poll: these cells have no destructor, so each access is one load or store, where the
// core's thread-local costs a state check and a `RefCell` borrow first (about 45
// instructions per shielded poll on cancel_tree, measured with callgrind).
thread_local! {
    /// Whether the runtime current on this thread opens shields lazily.
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

/// Says whether shields entered on this thread from now on may start without a node (set
/// when a runtime without diagnostics becomes current here, cleared when it stops being).
pub(crate) fn set_shields_lazy(lazy: bool) {
    let _ = SHIELDS_ARE_LAZY.try_with(|cell| cell.set(lazy));
}
