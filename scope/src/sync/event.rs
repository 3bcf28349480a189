//! `Event`: a flag that, once set, releases every task waiting for it.
//!
//! The stop-signal pattern of the seeds (asyncio's `Event`): hand a clone to every worker,
//! let them `wait()` for it, `set()` it once. Prefer cancelling a task or a scope when the
//! workers are your children; an event is for signals that cross the tree.
//!
//! # Ground rules
//!
//! - The flag only goes from unset to set. `set` is idempotent and never blocks.
//! - `set` unlinks every waiter and wakes it after releasing the borrow; a waiter decides
//!   what happened by reading the flag at its next poll, so a notified waiter that is
//!   dropped instead has nothing to pass on.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use treeloop_executor::{Cancelled, coop};

use super::waiters::{WaitQueue, WaiterKey};
use super::{enter, wake_all};

/// Whether an [`Event`] has been set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flag {
    /// Waits block.
    Unset,
    /// Waits complete (unless cancelled); for good.
    Set,
}

/// What the clones of one event share.
#[derive(Debug)]
struct Shared {
    /// Set or not.
    flag: Flag,
    /// Tasks blocked in [`Event::wait`], oldest first.
    waiters: WaitQueue<()>,
}

/// A shared flag: [`set`](Event::set) it once, and every [`wait`](Event::wait) completes.
///
/// Cloning gives another handle to the same flag.
///
/// `wait` is an await point like any other: in a cancelled region it returns
/// `Err(Cancelled)`, even when the event is already set (cancellation is level-triggered and
/// checked first). A worker told to stop both ways (the event set, and its region
/// cancelled) sees the cancellation; read [`is_set`](Event::is_set) for the flag itself.
///
/// ```
/// use treeloop::sync::Event;
/// use treeloop::{block_on, spawn};
///
/// let stopped = block_on(async {
///     let stop = Event::new();
///     let worker = spawn({
///         let stop = stop.clone();
///         async move {
///             stop.wait().await.unwrap();
///             "stopped on the signal"
///         }
///     });
///     stop.set();
///     worker.await.unwrap()
/// });
/// assert_eq!(stopped, "stopped on the signal");
/// ```
#[derive(Clone, Debug)]
pub struct Event {
    /// The flag and its waiters; borrowed only for short, non-reentrant steps.
    shared: Rc<RefCell<Shared>>,
}

impl Event {
    /// An unset event.
    pub fn new() -> Self {
        Event {
            shared: Rc::new(RefCell::new(Shared {
                flag: Flag::Unset,
                waiters: WaitQueue::new(),
            })),
        }
    }

    /// Sets the flag and wakes every waiter. Setting it again does nothing.
    pub fn set(&self) {
        let mut wakers = Vec::new();
        {
            let mut shared = self.shared.borrow_mut();
            shared.flag = Flag::Set;
            while let Some(waker) = shared.waiters.pop_front() {
                wakers.push(waker);
            }
        }
        // The borrow is released before waking: a waker may re-enter.
        wake_all(wakers);
    }

    /// Whether [`set`](Event::set) has been called.
    pub fn is_set(&self) -> bool {
        self.shared.borrow().flag == Flag::Set
    }

    /// Waits until the event is set.
    ///
    /// Returns `Err(Cancelled)` in a cancelled region, even when the event is already set:
    /// the cancellation is checked first, at every poll, and is level-triggered (it stays
    /// until the task leaves the region, R6). Use [`is_set`](Event::is_set) to read the flag
    /// without an await point, say in cleanup.
    ///
    /// ```
    /// use treeloop::sync::Event;
    /// use treeloop::{CancelReason, Cancelled, block_on, cancelled, spawn};
    ///
    /// let (was_set, waited) = block_on(async {
    ///     let stop = Event::new();
    ///     stop.set();
    ///     let worker = spawn({
    ///         let stop = stop.clone();
    ///         async move {
    ///             cancelled().await; // from here on, the worker's region is cancelled
    ///             (stop.is_set(), stop.wait().await)
    ///         }
    ///     });
    ///     worker.cancel();
    ///     worker.await.unwrap()
    /// });
    /// assert!(was_set);
    /// assert_eq!(waited, Err(Cancelled::new(CancelReason::Explicit)));
    /// ```
    ///
    /// # Panics
    ///
    /// When polled outside a treeloop runtime.
    pub fn wait(&self) -> EventWait<'_> {
        EventWait {
            event: self,
            waiter: None,
        }
    }
}

impl Default for Event {
    fn default() -> Self {
        Event::new()
    }
}

/// The future of [`Event::wait`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct EventWait<'a> {
    /// The event waited for.
    event: &'a Event,
    /// Its place in the event's queue, while it is registered.
    waiter: Option<WaiterKey>,
}

impl EventWait<'_> {
    /// Leaves the queue, if in it.
    fn unregister(&mut self) {
        if let Some(key) = self.waiter.take() {
            self.event.shared.borrow_mut().waiters.remove(key);
        }
    }
}

impl Future for EventWait<'_> {
    type Output = Result<(), Cancelled>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(cancelled) = enter("Event::wait", cx) {
            self.unregister();
            return cancelled.map(Err);
        }
        if !self.event.is_set() {
            let this = &mut *self;
            let mut shared = this.event.shared.borrow_mut();
            match this.waiter {
                Some(key) => shared.waiters.set_waker(key, cx.waker()),
                None => this.waiter = Some(shared.waiters.push_back((), cx.waker())),
            }
            return Poll::Pending;
        }
        if coop::poll_proceed(cx).is_pending() {
            return Poll::Pending;
        }
        self.unregister();
        Poll::Ready(Ok(()))
    }
}

impl Drop for EventWait<'_> {
    fn drop(&mut self) {
        self.unregister();
    }
}
