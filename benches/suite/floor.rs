//! The floor: a bare executor on async-task, the task library treeloop is built on, with
//! nothing else. It is not a peer (it has no tree, no cancellation, no I/O, no timers); it
//! shows what async-task alone costs, so that treeloop's figures can be read as "the task
//! library's share" plus "treeloop's own".
//!
//! The whole executor: a thread-local FIFO of runnables. The schedule function is a plain
//! `fn`, so it adds no bytes to a task (treeloop's captures its runtime's shared state: 8
//! bytes). `block_on` runs the queue until it is empty, and the root must be finished by
//! then: every workload here is driven by its own tasks, none waits for the outside world.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;

use async_task::{Runnable, Task};

thread_local! {
    /// Every runnable woken on this thread, oldest first.
    static QUEUE: RefCell<VecDeque<Runnable>> = const { RefCell::new(VecDeque::new()) };
}

fn schedule(runnable: Runnable) {
    QUEUE.with(|queue| queue.borrow_mut().push_back(runnable));
}

/// Spawns `future` on this thread's floor executor.
pub fn spawn<F>(future: F) -> Task<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let (runnable, task) = async_task::spawn_local(future, schedule);
    runnable.schedule();
    task
}

/// Runs `future` and every task it spawns until the queue is empty; returns its output.
///
/// # Panics
///
/// If the queue ran dry before `future` finished (a workload that waits on nothing here).
pub fn block_on<F>(future: F) -> F::Output
where
    F: Future + 'static,
    F::Output: 'static,
{
    let root = spawn(future);
    while let Some(runnable) = QUEUE.with(|queue| queue.borrow_mut().pop_front()) {
        runnable.run();
        if root.is_finished() {
            break;
        }
    }
    assert!(
        root.is_finished(),
        "floor: the root waits on nothing that can wake it"
    );
    futures_lite::future::block_on(root)
}
