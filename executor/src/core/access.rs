//! What the rest of the executor reads of [`Core`]: the tree and the run queue, borrowed
//! for reading, and the flags and counts. Nothing here changes the tree (only `core.rs`
//! does); the one write is [`Core::read_seed`] noting that the seed was asked for.
//!
//! # Ground rules
//!
//! - A `Ref` from here is kept for a statement or a short block, never across a poll, a
//!   drop or a wake: a change to the tree meanwhile (by user code re-entering the runtime)
//!   would panic on the borrow.

use std::cell::Ref;
use std::sync::Arc;

use super::{Core, Mode};
use crate::cancel::CancelReason;
use crate::diag::Diag;
use crate::queue::{RunQueue, Shared};
use crate::report::Sink;
use crate::trace::Trace;
use crate::tree::{Key, Phase, Tree};

impl Core {
    /// The tree, borrowed for reading.
    #[inline]
    pub(crate) fn tree(&self) -> Ref<'_, Tree> {
        self.structure.tree.borrow()
    }

    /// The run queue, borrowed for reading (its statistics and schedule).
    #[inline]
    pub(crate) fn queue(&self) -> Ref<'_, RunQueue> {
        self.dispatch.queue.borrow()
    }

    /// The part other threads reach through wakers.
    #[inline]
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.dispatch.shared
    }

    /// The diagnostics state, when any diagnostic is on.
    #[inline]
    pub(crate) fn diag(&self) -> Option<&Diag> {
        self.policy.diag.as_ref()
    }

    /// The root node of the `block_on` in progress (a stale key between runs).
    #[inline]
    pub(crate) fn root(&self) -> Key {
        self.structure.root.get()
    }

    /// The task the loop is about to run: read by its [`TaskFuture`](crate::task) first
    /// thing.
    #[inline]
    pub(crate) fn task_to_poll(&self) -> Key {
        self.dispatch.task_to_poll.get()
    }

    /// Whether the runtime is dropping every task by force ([`Mode::TearingDown`]).
    #[inline]
    pub(crate) fn is_tearing_down(&self) -> bool {
        self.ending.mode.get() == Mode::TearingDown
    }

    /// Whether the task at `key` was aborted and must be dropped unpolled.
    ///
    /// Optimisation: the aborting count. The model reads the task's phase from its node at
    /// every poll; while no task is aborting (nearly always) the count says so without the
    /// node. Saves 13 instructions per poll (callgrind, 1,000 tasks yielding 200 times:
    /// 100.5 against 103.2 million) and a load of the node, which a yielding task's poll
    /// otherwise never makes. Costs a reader: a counter that every move into or out of
    /// `Phase::Aborting` keeps exact (`Core::abort`, `Core::abort_subtree`,
    /// `Core::begin_completing`, the teardown's reset).
    #[inline]
    pub(crate) fn is_aborting(&self, key: Key) -> bool {
        self.structure.aborting.get() > 0 && self.tree().node(key).phase == Phase::Aborting
    }

    /// Slots the run queue's buffer has room for (for tests of its shrinking).
    #[cfg(test)]
    pub(crate) fn queue_capacity(&self) -> usize {
        self.dispatch.queue.borrow().capacity()
    }

    /// Tasks completed so far.
    #[inline]
    pub(crate) fn completed(&self) -> u64 {
        self.structure.completed.get()
    }

    /// The cancellation mark of the node being polled; `None` between polls and while it
    /// is not cancelled. What every await point asks. While nothing in the runtime is
    /// marked, the answer comes without the node (the marked count, [`Tree::any_marked`]).
    #[inline]
    pub(crate) fn current_mark(&self) -> Option<CancelReason> {
        let tree = self.tree();
        if !tree.any_marked() {
            return None;
        }
        tree.get(self.frame.current())?.cancel
    }

    /// Whether every shield gets a node as soon as it is entered.
    #[inline]
    pub(crate) fn eager_shields(&self) -> bool {
        self.policy.eager_shields
    }

    /// Where this runtime's reports go (`None`: stderr).
    pub(crate) fn sink(&self) -> Option<Sink> {
        self.policy.sink.clone()
    }

    /// The decisions traced so far (empty unless tracing).
    pub(crate) fn trace(&self) -> Trace {
        self.trace
            .as_ref()
            .map(|recorder| recorder.borrow().snapshot())
            .unwrap_or_default()
    }

    /// The scheduling seed, noting that code asked for it.
    pub(crate) fn read_seed(&self) -> u64 {
        self.dispatch.seed_read.set(true);
        self.dispatch.seed
    }

    /// Whether code asked for the scheduling seed ([`Core::read_seed`]).
    pub(crate) fn seed_was_read(&self) -> bool {
        self.dispatch.seed_read.get()
    }
}
