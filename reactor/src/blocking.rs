//! `unblock`: run a blocking closure on a small thread pool and await its result.
//!
//! # Ground rules
//!
//! - The pool is process-wide, starts with no thread, grows to [`MAX_THREADS`] while work
//!   waits, and lets a thread go after [`KEEP_ALIVE`] without work.
//! - The result comes back through the closure's task waker, i.e. the executor's
//!   cross-thread wake path (injector + unpark): no polling, no busy loop.
//! - Awaiting is a treeloop await point: in a cancelled region it returns `Err(Cancelled)`
//!   at once. The closure cannot be interrupted; it runs to completion and its result is
//!   dropped (on the pool thread) if nobody waits for it any more.
//! - A panic in the closure is caught on the pool thread and re-raised in the awaiting task,
//!   where it is that task's panic like any other.
//! - **Virtual time stands still while a call is in flight** (`start_paused`): the loop
//!   waits for the pool in real time and the clock does not move, as tokio's does during
//!   `spawn_blocking`. So `timeout(50ms, unblock(|| 20 ms of work))` returns the work's
//!   result, not `Elapsed`: on virtual time the work took no time. (The reactor's turn,
//!   `frozen`.)
//! - **In a seeded runtime the closure runs inline**, on the loop's thread, when `unblock`
//!   is called: a pool thread would finish at a moment the seed does not choose, and the
//!   run would no longer replay. The result is ready at the first poll. Like real sockets,
//!   blocking work is not part of a deterministic program; inline it at least stays
//!   reproducible (for a closure that is itself deterministic).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use treeloop_executor::{Cancelled, Payload, poll_cancelled};

use crate::context::with_reactor;

/// Most pool threads alive at once.
pub const MAX_THREADS: usize = 64;

/// How long an idle pool thread waits for work before exiting.
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// A job for the pool.
type Job = Box<dyn FnOnce() + Send>;

/// The pool's state, behind one mutex (jobs are coarse: a lock per job is nothing).
struct PoolState {
    /// Jobs not yet picked up.
    queue: VecDeque<Job>,
    /// Threads alive.
    threads: usize,
    /// Threads waiting for a job.
    idle: usize,
}

/// The process-wide blocking pool.
struct Pool {
    /// Jobs and thread counts.
    state: Mutex<PoolState>,
    /// Signalled when a job is queued.
    work: Condvar,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        state: Mutex::new(PoolState {
            queue: VecDeque::new(),
            threads: 0,
            idle: 0,
        }),
        work: Condvar::new(),
    })
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        // Jobs run outside the lock, so a poisoned lock only means a pool thread died
        // between two lines of ours: the state is still consistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn submit(&'static self, job: Job) {
        let mut state = self.lock();
        state.queue.push_back(job);
        if state.idle > 0 {
            self.work.notify_one();
        } else if state.threads < MAX_THREADS {
            state.threads += 1;
            drop(state);
            let spawned = std::thread::Builder::new()
                .name("treeloop-blocking".into())
                .spawn(move || self.worker());
            if spawned.is_err() {
                // Could not grow: the queued job waits for an existing thread.
                self.lock().threads -= 1;
            }
        }
    }

    /// A pool thread: run jobs until none comes for `KEEP_ALIVE`.
    fn worker(&self) {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.queue.pop_front() {
                drop(state);
                // Jobs catch their own panics (see `unblock`).
                job();
                state = self.lock();
                continue;
            }
            state.idle += 1;
            let (next, timeout) = self
                .work
                .wait_timeout(state, KEEP_ALIVE)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            state = next;
            state.idle -= 1;
            if timeout.timed_out() && state.queue.is_empty() {
                state.threads -= 1;
                return;
            }
        }
    }
}

/// Where a blocking call's result meets its waiter.
enum Slot<T> {
    /// Still running; the waker of whoever awaits it.
    Running(Option<Waker>),
    /// Done.
    Done(T),
    /// The closure panicked: the panic is re-raised in the awaiting task.
    Panicked(Payload),
    /// The result was taken.
    Gone,
}

/// Runs `f` on the blocking pool and waits for its result.
///
/// ```
/// # treeloop::block_on(async {
/// let sum = treeloop::unblock(|| (1..=10u64).sum::<u64>()).await;
/// assert_eq!(sum, Ok(55));
/// # });
/// ```
pub fn unblock<T, F>(f: F) -> Unblock<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if with_reactor(|reactor| reactor.deterministic) == Some(true) {
        let outcome = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(value) => Slot::Done(value),
            Err(payload) => Slot::Panicked(payload),
        };
        return Unblock {
            slot: Arc::new(Mutex::new(outcome)),
            counted: false,
        };
    }
    // Counted while in flight: another thread will wake a task, so an idle loop is not a
    // deadlock (deterministic mode's check), and a paused clock stands still.
    let counted = with_reactor(|reactor| {
        reactor
            .pending_external
            .set(reactor.pending_external.get() + 1);
    })
    .is_some();
    let slot = Arc::new(Mutex::new(Slot::Running(None)));
    let filled = slot.clone();
    pool().submit(Box::new(move || {
        let outcome = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(value) => Slot::Done(value),
            Err(payload) => Slot::Panicked(payload),
        };
        let waker = {
            let mut slot = filled
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match std::mem::replace(&mut *slot, outcome) {
                Slot::Running(waker) => waker,
                _ => None,
            }
        };
        // Wake outside the lock: the waker may run the executor's remote-wake path.
        if let Some(waker) = waker {
            waker.wake();
        }
    }));
    Unblock { slot, counted }
}

/// The future of [`unblock`].
#[must_use = "the closure runs anyway; await it to get its result"]
pub struct Unblock<T> {
    /// Shared with the pool thread.
    slot: Arc<Mutex<Slot<T>>>,
    /// Whether it is counted in the reactor's in-flight blocking calls.
    counted: bool,
}

impl<T> Drop for Unblock<T> {
    fn drop(&mut self) {
        if self.counted {
            with_reactor(|reactor| {
                reactor
                    .pending_external
                    .set(reactor.pending_external.get().saturating_sub(1));
            });
        }
    }
}

impl<T> Future for Unblock<T> {
    type Output = Result<T, Cancelled>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(cancelled) = poll_cancelled(cx) {
            return cancelled.map(Err);
        }
        let mut slot = self
            .slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match std::mem::replace(&mut *slot, Slot::Gone) {
            Slot::Done(value) => Poll::Ready(Ok(value)),
            Slot::Running(_) => {
                *slot = Slot::Running(Some(cx.waker().clone()));
                Poll::Pending
            }
            // The closure's panic becomes the awaiting task's panic (R17 then applies).
            Slot::Panicked(payload) => {
                drop(slot);
                std::panic::resume_unwind(payload)
            }
            Slot::Gone => panic!(
                "Unblock polled after it returned its result: keep the result of the first \
                 `.await`"
            ),
        }
    }
}

impl<T> std::fmt::Debug for Unblock<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unblock").finish_non_exhaustive()
    }
}
