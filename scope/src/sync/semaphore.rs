//! `Semaphore`: a count of permits, handed out first come, first served.
//!
//! # Ground rules
//!
//! - **Strict FIFO, by hand-off.** Released permits go to the head of the line while it can
//!   be satisfied: they are subtracted from `available` and the waiter is marked notified
//!   (it now *owns* them) before it is woken. A request that cannot be satisfied yet blocks
//!   everyone behind it, so a large request is never starved by a stream of small ones; and a
//!   newcomer (`acquire` or `try_acquire`) takes permits directly only when nobody waits.
//! - **A cancelled or dropped acquire holds nothing.** Still in line: it leaves, and since
//!   it may have been the head that blocked the others, the line is served again. Already
//!   handed its permits: it gives them back and they go to the next waiters. Either way no
//!   wake-up is lost.
//! - A [`Permit`] gives its permits back when dropped, unless [`Permit::forget`] is called.
//!
//! [`Mutex`](super::Mutex) is a semaphore with one permit.

use std::cell::RefCell;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use treeloop_executor::{Cancelled, coop};

use super::waiters::{WaitQueue, WaiterKey, WaiterState};
use super::{enter, wake_all};

/// A count of permits, shared by reference (put it in an `Rc` to share it between tasks).
///
/// ```
/// use std::rc::Rc;
/// use treeloop::{block_on, spawn};
/// use treeloop::sync::Semaphore;
///
/// let permits_left = block_on(async {
///     let connections = Rc::new(Semaphore::new(2));
///     let mut workers = Vec::new();
///     for _ in 0..5 {
///         let connections = connections.clone();
///         workers.push(spawn(async move {
///             let _permit = connections.acquire().await.unwrap();
///             // at most two workers are here at a time
///         }));
///     }
///     for worker in workers {
///         worker.await.unwrap();
///     }
///     connections.available_permits()
/// });
/// assert_eq!(permits_left, 2);
/// ```
#[derive(Debug)]
pub struct Semaphore {
    /// The count and the line; borrowed only for short, non-reentrant steps.
    state: RefCell<State>,
}

/// A semaphore's count and line.
#[derive(Debug)]
struct State {
    /// Permits neither held nor handed to a waiter.
    available: usize,
    /// Acquires waiting, oldest first, each with the number of permits it asks for.
    waiters: WaitQueue<usize>,
}

impl State {
    /// Hands available permits to the head of the line for as long as it can be satisfied,
    /// collecting the wakers of the served.
    fn serve_line(&mut self, wakers: &mut Vec<Waker>) {
        while let Some(&wanted) = self.waiters.front() {
            if wanted > self.available {
                break;
            }
            self.available -= wanted;
            wakers.extend(self.waiters.pop_front());
        }
    }

    /// Returns permits to the count and serves the line.
    fn release(&mut self, permits: usize, wakers: &mut Vec<Waker>) {
        self.available = self.available.checked_add(permits).expect(
            "Semaphore permit count overflowed usize: add_permits was called with too many",
        );
        self.serve_line(wakers);
    }
}

impl Semaphore {
    /// A semaphore with `permits` permits available.
    pub fn new(permits: usize) -> Self {
        Semaphore {
            state: RefCell::new(State {
                available: permits,
                waiters: WaitQueue::new(),
            }),
        }
    }

    /// Waits for one permit; see [`acquire_many`](Semaphore::acquire_many).
    pub fn acquire(&self) -> Acquire<'_> {
        self.acquire_many(1)
    }

    /// Waits for `permits` permits at once, behind every earlier waiter.
    ///
    /// `Err(Cancelled)` in a cancelled region, every time, even when the permits are
    /// available; a cancelled acquire holds nothing. A request for more permits than will
    /// ever be available waits until [`add_permits`](Semaphore::add_permits) makes it
    /// possible (and blocks the waiters behind it meanwhile).
    ///
    /// # Panics
    ///
    /// When polled outside a treeloop runtime.
    pub fn acquire_many(&self, permits: usize) -> Acquire<'_> {
        Acquire {
            semaphore: self,
            permits,
            waiter: None,
            operation: "Semaphore::acquire",
        }
    }

    /// Takes one permit if it is available and nobody waits; never waits, works anywhere.
    pub fn try_acquire(&self) -> Result<Permit<'_>, TryAcquireError> {
        self.try_acquire_many(1)
    }

    /// Takes `permits` permits if they are available and nobody waits (no jumping the
    /// line); never waits, works anywhere.
    pub fn try_acquire_many(&self, permits: usize) -> Result<Permit<'_>, TryAcquireError> {
        let mut state = self.state.borrow_mut();
        if !state.waiters.is_empty() || state.available < permits {
            return Err(TryAcquireError);
        }
        state.available -= permits;
        Ok(Permit {
            semaphore: self,
            permits,
        })
    }

    /// Permits neither held nor handed to a waiter.
    pub fn available_permits(&self) -> usize {
        self.state.borrow().available
    }

    /// Adds `permits` permits, serving waiters in order.
    ///
    /// # Panics
    ///
    /// If the count would overflow `usize`.
    pub fn add_permits(&self, permits: usize) {
        self.release(permits);
    }

    /// Gives permits back and wakes whoever they were handed to.
    fn release(&self, permits: usize) {
        let mut wakers = Vec::new();
        self.state.borrow_mut().release(permits, &mut wakers);
        // Released before waking: a waker may re-enter.
        wake_all(wakers);
    }
}

/// Permits held; they go back to the semaphore when this is dropped.
#[derive(Debug)]
#[must_use = "the permits are released as soon as the permit is dropped"]
pub struct Permit<'a> {
    /// Where the permits go back to.
    semaphore: &'a Semaphore,
    /// How many are held.
    permits: usize,
}

impl Permit<'_> {
    /// How many permits this holds.
    pub fn num_permits(&self) -> usize {
        self.permits
    }

    /// Drops the permit without giving its permits back: the semaphore's count shrinks
    /// for good.
    pub fn forget(mut self) {
        self.permits = 0;
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.permits > 0 {
            self.semaphore.release(self.permits);
        }
    }
}

/// The future of [`Semaphore::acquire`] and [`Semaphore::acquire_many`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Acquire<'a> {
    /// The semaphore asked.
    semaphore: &'a Semaphore,
    /// How many permits are asked for.
    permits: usize,
    /// Its place in the line while it is in it (queued, or notified: the permits are its).
    waiter: Option<WaiterKey>,
    /// The public operation, for the outside-a-runtime panic message.
    operation: &'static str,
}

/// Where the permits of a poll that can complete come from; decided under the borrow and
/// taken after the budget allowed it.
enum Source {
    /// They were handed to this waiter, which is still to leave its (notified) slot.
    HandedOver(WaiterKey),
    /// Nobody waits and enough are available.
    Available,
}

impl<'a> Acquire<'a> {
    /// A lock's acquire: one permit, and the lock's name in the misuse message.
    pub(super) fn for_lock(semaphore: &'a Semaphore) -> Self {
        Acquire {
            semaphore,
            permits: 1,
            waiter: None,
            operation: "Mutex::lock",
        }
    }

    /// Leaves the line: a waiter still queued may have blocked the ones behind it, and
    /// permits handed over but not taken go back; either way the line is served again.
    fn leave_line(&mut self) {
        let Some(key) = self.waiter.take() else {
            return;
        };
        let mut wakers = Vec::new();
        {
            let mut state = self.semaphore.state.borrow_mut();
            match state.waiters.remove(key) {
                WaiterState::Queued => state.serve_line(&mut wakers),
                WaiterState::Notified => state.release(self.permits, &mut wakers),
            }
        }
        // Released before waking: a waker may re-enter.
        wake_all(wakers);
    }

    /// Decides whether this poll can complete (and from where), else joins or stays in the
    /// line with the latest waker and returns `None`.
    fn ready(&mut self, waker: &Waker) -> Option<Source> {
        let mut state = self.semaphore.state.borrow_mut();
        match self.waiter {
            Some(key) => match state.waiters.state(key) {
                WaiterState::Notified => Some(Source::HandedOver(key)),
                WaiterState::Queued => {
                    state.waiters.set_waker(key, waker);
                    None
                }
            },
            None if state.waiters.is_empty() && state.available >= self.permits => {
                Some(Source::Available)
            }
            None => {
                self.waiter = Some(state.waiters.push_back(self.permits, waker));
                None
            }
        }
    }
}

impl<'a> Future for Acquire<'a> {
    type Output = Result<Permit<'a>, Cancelled>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Some(cancelled) = enter(this.operation, cx) {
            this.leave_line();
            return cancelled.map(Err);
        }
        let Some(source) = this.ready(cx.waker()) else {
            return Poll::Pending;
        };
        // Permits handed over stay this waiter's while the task yields to the budget.
        if coop::poll_proceed(cx).is_pending() {
            return Poll::Pending;
        }
        {
            let mut state = this.semaphore.state.borrow_mut();
            match source {
                // Already subtracted from `available` when they were handed over.
                Source::HandedOver(key) => {
                    this.waiter = None;
                    state.waiters.remove(key);
                }
                // Nothing ran since `ready`: they are still available.
                Source::Available => state.available -= this.permits,
            }
        }
        Poll::Ready(Ok(Permit {
            semaphore: this.semaphore,
            permits: this.permits,
        }))
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        self.leave_line();
    }
}

/// [`Semaphore::try_acquire`] found too few permits, or waiters ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TryAcquireError;

impl fmt::Display for TryAcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "no permits to take now (too few available, or earlier waiters are in line): await \
             `acquire` to wait your turn",
        )
    }
}

impl Error for TryAcquireError {}

#[cfg(test)]
mod tests {
    use std::future::{Future, poll_fn};
    use std::pin::Pin;
    use std::task::Poll;

    use treeloop_executor::{block_on, spawn};

    use super::Semaphore;

    #[test]
    fn abandoned_and_cancelled_acquires_leave_no_slot_behind() {
        let semaphore = std::rc::Rc::new(Semaphore::new(0));
        block_on({
            let semaphore = semaphore.clone();
            async move {
                for _ in 0..100 {
                    let mut acquire = semaphore.acquire();
                    let polled = poll_fn(|cx| Poll::Ready(Pin::new(&mut acquire).poll(cx))).await;
                    assert!(polled.is_pending());
                }
                let waiter = spawn({
                    let semaphore = semaphore.clone();
                    async move { semaphore.acquire().await.map(|_| ()) }
                });
                treeloop_executor::yield_now().await.unwrap();
                waiter.cancel();
                assert!(waiter.await.unwrap().is_err());
            }
        });
        let state = semaphore.state.borrow();
        assert!(state.waiters.is_empty());
        assert_eq!(
            state.waiters.capacity(),
            1,
            "every wait reused the same slot"
        );
        assert_eq!(state.available, 0);
    }
}
