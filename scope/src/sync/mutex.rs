//! `Mutex`: exclusive access to a value across await points, granted first come, first
//! served.
//!
//! A mutex is a [`Semaphore`] with one permit next to a `RefCell` holding the value, so it
//! inherits the semaphore's rules: strict FIFO by hand-off (an unlock gives the lock to the
//! oldest waiter; a newcomer cannot barge past the line), and a cancelled or dropped `lock`
//! holds nothing, passing on a lock it was handed but had not taken.
//!
//! # Ground rules
//!
//! - The permit is the lock; the `RefCell` borrow inside the guard can therefore never
//!   fail. The guard releases the borrow *before* the permit (field order), so the next
//!   holder always finds the cell free.
//! - **A guard is a value, not a region.** Like tokio's and std's, it unlocks when it is
//!   dropped, wherever that happens: a guard returned out of a task, sent to another task,
//!   or kept in a structure that outlives the task keeps the mutex locked until that owner
//!   drops it, and is not an error. A guard held by a task that is cancelled is released
//!   as the task unwinds (its future is dropped when it returns), so cancellation never
//!   leaves a mutex locked behind a finished task. Rejected: panicking when a guard
//!   outlives its task — it would forbid the legitimate hand-over of a guard, and the
//!   runtime cannot tell that from a leak.
//! - No poisoning: a task that panics while holding the guard drops it as its future is
//!   dropped, which unlocks the mutex (as in tokio); the value is as the panic left it.
//! - The value is reached only through a guard (or `&mut self`), never while the lock is
//!   merely queued for.

use std::cell::{RefCell, RefMut};
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::task::{Context, Poll};

use treeloop_executor::Cancelled;

use super::semaphore::{Acquire, Permit, Semaphore};

/// A value that one task at a time may use, across await points.
///
/// ```
/// use std::rc::Rc;
/// use treeloop::{block_on, spawn, yield_now};
/// use treeloop::sync::Mutex;
///
/// let log = block_on(async {
///     let log = Rc::new(Mutex::new(Vec::new()));
///     let mut tasks = Vec::new();
///     for task in 0..3 {
///         let log = log.clone();
///         tasks.push(spawn(async move {
///             let mut log = log.lock().await.unwrap();
///             log.push(task);
///             yield_now().await.unwrap(); // still held: the others queue up
///             log.push(task);
///         }));
///     }
///     for task in tasks {
///         task.await.unwrap();
///     }
///     Rc::try_unwrap(log).unwrap().into_inner()
/// });
/// assert_eq!(log, [0, 0, 1, 1, 2, 2]);
/// ```
pub struct Mutex<T> {
    /// One permit: whoever holds it holds the lock.
    semaphore: Semaphore,
    /// The protected value; borrowed mutably by exactly the guard that holds the permit.
    value: RefCell<T>,
}

impl<T> Mutex<T> {
    /// An unlocked mutex holding `value`.
    pub fn new(value: T) -> Self {
        Mutex {
            semaphore: Semaphore::new(1),
            value: RefCell::new(value),
        }
    }

    /// Waits for the lock, behind every earlier waiter.
    ///
    /// `Err(Cancelled)` in a cancelled region, every time, even when the mutex is free; a
    /// cancelled lock holds nothing, and a lock handed to it is passed to the next waiter.
    ///
    /// # Panics
    ///
    /// When polled outside a treeloop runtime.
    pub fn lock(&self) -> Lock<'_, T> {
        Lock {
            acquire: Acquire::for_lock(&self.semaphore),
            value: &self.value,
        }
    }

    /// Takes the lock if it is free and nobody waits for it; never waits, works anywhere.
    pub fn try_lock(&self) -> Result<MutexGuard<'_, T>, TryLockError> {
        let permit = self.semaphore.try_acquire().map_err(|_| TryLockError)?;
        Ok(MutexGuard::new(&self.value, permit))
    }

    /// The value, through exclusive access to the mutex itself (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    /// The value, consuming the mutex.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.semaphore.available_permits() {
            0 => "locked",
            _ => "unlocked",
        };
        f.debug_struct("Mutex")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

/// Exclusive access to a [`Mutex`]'s value; unlocks (handing the lock to the next waiter)
/// when dropped.
#[must_use = "the mutex unlocks as soon as the guard is dropped"]
pub struct MutexGuard<'a, T> {
    /// The value, borrowed mutably. Declared first so it is released before `_permit`.
    value: RefMut<'a, T>,
    /// The lock itself, held only to be dropped: that hands the lock on.
    _permit: Permit<'a>,
}

impl<'a, T> MutexGuard<'a, T> {
    fn new(value: &'a RefCell<T>, permit: Permit<'a>) -> Self {
        MutexGuard {
            // Cannot fail: the one permit is ours, and every borrow is owned by the permit
            // holder's guard.
            value: value.borrow_mut(),
            _permit: permit,
        }
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T: fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.value, f)
    }
}

/// The future of [`Mutex::lock`].
#[must_use = "futures do nothing unless awaited"]
pub struct Lock<'a, T> {
    /// The wait for the mutex's one permit.
    acquire: Acquire<'a>,
    /// The value, borrowed once the permit is ours.
    value: &'a RefCell<T>,
}

impl<'a, T> Future for Lock<'a, T> {
    type Output = Result<MutexGuard<'a, T>, Cancelled>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let value = self.value;
        Pin::new(&mut self.acquire)
            .poll(cx)
            .map_ok(|permit| MutexGuard::new(value, permit))
    }
}

impl<T> fmt::Debug for Lock<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("acquire", &self.acquire)
            .finish_non_exhaustive()
    }
}

/// [`Mutex::try_lock`] found the mutex locked, or waiters in line for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TryLockError;

impl fmt::Display for TryLockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "the mutex is locked (or other tasks are in line for it): await `lock` to wait \
             your turn",
        )
    }
}

impl Error for TryLockError {}
