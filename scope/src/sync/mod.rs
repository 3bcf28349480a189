//! Cancellation-aware synchronisation: [`Event`], [`oneshot`], [`mpsc`] and [`broadcast`]
//! channels, [`Mutex`] and [`Semaphore`], for tasks of one treeloop runtime.
//!
//! They look like tokio's, with one difference that is the point of treeloop: every wait is
//! a treeloop await point, so it answers cancellation of the task tree, and a cancelled wait
//! has no effect.
//!
//! # Ground rules
//!
//! - **Every wait polls in the same order:** (1) the region's cancellation
//!   (`poll_cancelled`) first, on every poll, even when the operation could complete (R6,
//!   level-triggered), itself a completion that spends budget (a task that ignores the
//!   error in a loop still yields); (2) try the operation without effect; (3) if it can complete, spend
//!   one unit of the per-poll budget (`coop::poll_proceed`) and only then perform it;
//!   (4) otherwise register the waker and return `Pending`. When a region is cancelled the
//!   runtime wakes its tasks, so step 1 is reached promptly and no wait hangs (R12).
//! - **A cancelled operation has no effect (R7):** a cancelled receive takes no message, a
//!   cancelled send enqueues nothing and hands the value back, a cancelled `lock`/`acquire`
//!   holds nothing.
//! - **Waiters are served first come, first served**, and what is freed is *handed* to the
//!   head waiter (the lock, the permits, a channel slot) rather than left for whoever polls
//!   first, so a newcomer cannot barge past a queue. A waiter that is cancelled or dropped
//!   while holding a hand-off it has not taken passes it on to the next waiter: no lost
//!   wake-up, no deadlock. The queue and its ownership rules are in `sync/waiters.rs`.
//! - **No `RefCell` borrow is held across a wake or a user `Drop`:** wakers and dropped
//!   values are collected under the borrow, the borrow is released, then they are woken or
//!   dropped (either may re-enter the primitive).
//! - **Waits need the runtime.** Polling a wait outside a treeloop runtime panics with a
//!   message naming the fix: outside the task tree there is no cancellation to answer, and
//!   silently never seeing it would be worse. The `try_*` methods and the non-waiting calls
//!   (`set`, `send` of a oneshot, dropping) work anywhere.
//! - Everything is single-threaded (`Rc`, `RefCell`): the types are `!Send`, like the tasks
//!   that use them.

use std::task::{Context, Poll};

use treeloop_executor::{Cancelled, poll_cancelled_or_outside};

pub mod broadcast;
mod event;
pub mod mpsc;
mod mutex;
pub mod oneshot;
mod semaphore;
mod waiters;

pub use event::{Event, EventWait};
pub use mutex::{Lock, Mutex, MutexGuard, TryLockError};
pub use semaphore::{Acquire, Permit, Semaphore, TryAcquireError};

/// The first step of every wait: panics outside a runtime (naming `operation`), then
/// returns the cancellation of the region being polled, if any, budgeted like a completion
/// ([`treeloop_executor::poll_cancelled`]: `Pending` when this poll's budget is spent).
fn enter(operation: &str, cx: &mut Context<'_>) -> Option<Poll<Cancelled>> {
    match poll_cancelled_or_outside(cx) {
        Ok(cancelled) => cancelled,
        Err(_) => panic!(
            "{operation} polled outside a treeloop runtime: await it inside \
             `treeloop::block_on` (or a task spawned from it); its waits answer the task \
             tree's cancellation, which only exists there"
        ),
    }
}

// Wakes every collected waker, called after the primitive's borrow is released: the
// executor's panic-safe bulk wake, so a panicking waker does not lose the wakes after it.
use treeloop_executor::wake_all;
