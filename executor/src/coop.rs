//! The per-poll budget: how one always-ready task is kept from starving the others.
//!
//! An `async` loop over a channel that always has a message never returns `Pending` by
//! itself, so the executor would never get to run anybody else. Each poll of a task starts
//! with [`BUDGET`] units; every treeloop leaf future that could complete at once (a join of a
//! finished task, a timer already due, later a channel with a message) spends one first. With
//! the budget gone it wakes its task and returns `Pending`, sending the task to the back of
//! the run queue. Yields and checkpoints always yield and spend nothing.

use std::task::{Context, Poll};

use crate::context;
use crate::executor::Core;

/// Leaf-future completions allowed per poll of a task (tokio uses 128 too).
pub const BUDGET: u32 = 128;

/// Gives the current poll its full budget.
pub(crate) fn reset_budget(core: &Core) {
    core.budget.set(BUDGET);
}

/// Spends one unit of the current poll's budget, or, when it is used up, wakes the task and
/// returns `Pending` so it yields to the others. Outside a runtime it always proceeds.
pub fn poll_proceed(cx: &mut Context<'_>) -> Poll<()> {
    let exhausted = context::with_core(|core| {
        let left = core.budget.get();
        if left == 0 {
            return true;
        }
        core.budget.set(left - 1);
        false
    });
    if exhausted == Some(true) {
        cx.waker().wake_by_ref();
        Poll::Pending
    } else {
        Poll::Ready(())
    }
}

/// Gives back the unit a leaf future spent in [`poll_proceed`] when it then did not
/// complete: only completions cost budget.
pub fn refund() {
    context::with_core(|core| core.budget.set((core.budget.get() + 1).min(BUDGET)));
}
