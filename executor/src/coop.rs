//! The per-poll budget: how one always-ready task is kept from starving the others.
//!
//! An `async` loop over a channel that always has a message never returns `Pending` by
//! itself, so the executor would never get to run anybody else. Each poll of a task starts
//! with [`BUDGET`] units; every treeloop leaf future that could complete at once (a join of a
//! finished task, a timer already due, a channel receive with a message waiting) spends one
//! first. With the budget gone it wakes its task and returns `Pending`, sending the task to
//! the back of the run queue. Failing with `Cancelled` is a completion too and spends a
//! unit, so a task that ignores its cancellation in a loop is preempted like any
//! always-ready task ([`poll_cancelled`](crate::poll_cancelled)). Yields and checkpoints
//! always yield and spend nothing.

use std::cell::Cell;
use std::task::{Context, Poll};

/// Leaf-future completions allowed per poll of a task (tokio uses 128 too).
pub const BUDGET: u32 = 128;

/// "No budget applies": outside the poll of a task or root (a foreign executor polling a
/// treeloop future, a `Drop` run by the loop), leaf futures always proceed.
const UNLIMITED: u32 = u32::MAX;

thread_local! {
    /// The budget left to the poll in progress on this thread.
    ///
    /// Optimisation: a thread-local of its own. The model keeps the budget with the rest
    /// of the runtime's state, in the core; here it is a `Cell<u32>`, which needs no
    /// destructor, so reading it is one load, where the core's thread-local costs a state
    /// check and a `RefCell` borrow (about 15 instructions), at every poll and every leaf
    /// future's check. Only one runtime polls on a thread at a time, so one budget per
    /// thread is enough. Costs a reader: state of the runtime that is not in the core.
    static LEFT: Cell<u32> = const { Cell::new(UNLIMITED) };
}

/// Gives the poll that runs until the guard drops its full budget.
pub(crate) fn fresh_budget() -> BudgetGuard {
    BudgetGuard(LEFT.replace(BUDGET))
}

/// Restores the budget of the enclosing poll (unlimited, between polls).
pub(crate) struct BudgetGuard(u32);

impl Drop for BudgetGuard {
    fn drop(&mut self) {
        LEFT.set(self.0);
    }
}

/// Spends one unit of the current poll's budget, or, when it is used up, wakes the task and
/// returns `Pending` so it yields to the others. Outside a runtime it always proceeds.
pub fn poll_proceed(cx: &mut Context<'_>) -> Poll<()> {
    match LEFT.get() {
        UNLIMITED => Poll::Ready(()),
        0 => {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
        left => {
            LEFT.set(left - 1);
            Poll::Ready(())
        }
    }
}

/// Gives back the unit a leaf future spent in [`poll_proceed`] when it then did not
/// complete: only completions cost budget.
pub fn refund() {
    let left = LEFT.get();
    if left < BUDGET {
        LEFT.set(left + 1);
    }
}
