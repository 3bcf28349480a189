//! `WaitQueue`: the FIFO of blocked futures behind every primitive in [`crate::sync`].
//!
//! A queue is a hand-written slab (a `Vec` of slots plus a free list) threaded by a doubly
//! linked list in arrival order. Pushing, popping the head and removing any waiter are all
//! O(1), and a slot is reused as soon as its owner lets go, so a loop of cancelled waits
//! leaves nothing behind.
//!
//! # Ground rules
//!
//! - **A slot belongs to the future that pushed it.** Only that future frees it, exactly
//!   once, with [`WaitQueue::remove`]: when it completes, fails, or is dropped. This is why
//!   a [`WaiterKey`] is a bare index with no generation counter: it cannot go stale while
//!   its owner holds it.
//! - **The primitive only unlinks.** [`WaitQueue::pop_front`] takes the head out of the line
//!   and marks it [`WaiterState::Notified`], but leaves the slot in place. What "notified"
//!   means is the primitive's business: for a mutex or a semaphore it means *the permits are
//!   yours* (a hand-off); for an event, *look again*. The owner reads the state at its next
//!   poll, or in its `Drop`, where a hand-off it never took is passed on.
//! - **No waking in here.** Popping returns the waker; the caller collects wakers while it
//!   holds its `RefCell` borrow, releases the borrow, then wakes (a waker may re-enter).
//!
//! Why not a `VecDeque<Waker>`: removing a cancelled waiter from the middle would be an O(n)
//! scan, and a waiter that was already popped could not tell "I was handed the lock" from
//! "I was never queued". Why not the `slab` crate: ten lines of free-list code here spare
//! this crate a dependency.

use std::task::Waker;

/// The handle a waiting future keeps to its place in a [`WaitQueue`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WaiterKey(usize);

/// Where a waiter stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaiterState {
    /// In line, waiting for its turn.
    Queued,
    /// Taken out of the line by the primitive; what that grants depends on the primitive.
    Notified,
}

/// A FIFO of waiters, each carrying `T` (e.g. the number of permits it asks for).
///
/// Its memory grows to the peak number of simultaneous waiters and is reused after that.
#[derive(Debug)]
pub(crate) struct WaitQueue<T> {
    /// The slab: every waiter that has not yet been removed by its owner, queued or not.
    slots: Vec<Slot<T>>,
    /// The first vacant slot, threaded through `Slot::Vacant::next_free`.
    free: Option<usize>,
    /// The oldest queued waiter: the next one served.
    head: Option<usize>,
    /// The newest queued waiter.
    tail: Option<usize>,
}

/// One slot of the slab.
#[derive(Debug)]
enum Slot<T> {
    /// Unused; links to the next unused slot.
    Vacant {
        /// The next vacant slot, if any.
        next_free: Option<usize>,
    },
    /// Held by a waiting future.
    Occupied(Waiter<T>),
}

/// A waiting future's entry.
#[derive(Debug)]
struct Waiter<T> {
    /// What the waiter asked for (its request size, or `()`).
    data: T,
    /// In line (with its neighbours and waker) or notified.
    place: Place,
}

/// A waiter's position.
#[derive(Debug)]
enum Place {
    /// Linked into the line between `prev` (older) and `next` (newer).
    Queued {
        /// The waiter ahead of this one.
        prev: Option<usize>,
        /// The waiter behind this one.
        next: Option<usize>,
        /// The waker of the owner's latest poll; moved out when it is popped.
        waker: Waker,
    },
    /// Unlinked by `pop_front`; the slot waits for its owner to remove it.
    Notified,
}

impl<T> WaitQueue<T> {
    /// An empty queue; allocates nothing until the first waiter.
    pub(crate) fn new() -> Self {
        WaitQueue {
            slots: Vec::new(),
            free: None,
            head: None,
            tail: None,
        }
    }

    /// No waiter is in line (notified waiters that have not yet removed themselves do not
    /// count).
    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    /// What the oldest queued waiter asked for.
    pub(crate) fn front(&self) -> Option<&T> {
        self.head.map(|index| &self.waiter(index).data)
    }

    /// Puts a new waiter at the back of the line.
    pub(crate) fn push_back(&mut self, data: T, waker: &Waker) -> WaiterKey {
        let waiter = Waiter {
            data,
            place: Place::Queued {
                prev: self.tail,
                next: None,
                waker: waker.clone(),
            },
        };
        let index = match self.free {
            Some(index) => {
                if let Slot::Vacant { next_free } = self.slots[index] {
                    self.free = next_free;
                }
                self.slots[index] = Slot::Occupied(waiter);
                index
            }
            None => {
                self.slots.push(Slot::Occupied(waiter));
                self.slots.len() - 1
            }
        };
        match self.tail {
            Some(tail) => self.set_next(tail, Some(index)),
            None => self.head = Some(index),
        }
        self.tail = Some(index);
        WaiterKey(index)
    }

    /// Whether the waiter is still in line or has been notified.
    pub(crate) fn state(&self, key: WaiterKey) -> WaiterState {
        match self.waiter(key.0).place {
            Place::Queued { .. } => WaiterState::Queued,
            Place::Notified => WaiterState::Notified,
        }
    }

    /// Records the waker of a queued waiter's latest poll (the future may be polled by a
    /// different task than the one that queued it). A notified waiter needs none.
    pub(crate) fn set_waker(&mut self, key: WaiterKey, new: &Waker) {
        if let Place::Queued { waker, .. } = &mut self.waiter_mut(key.0).place {
            if !waker.will_wake(new) {
                waker.clone_from(new);
            }
        }
    }

    /// Takes the oldest waiter out of the line, marks it notified, and returns its waker
    /// for the caller to wake once it has released its borrow.
    pub(crate) fn pop_front(&mut self) -> Option<Waker> {
        let index = self.head?;
        self.unlink(index);
        match std::mem::replace(&mut self.waiter_mut(index).place, Place::Notified) {
            Place::Queued { waker, .. } => Some(waker),
            Place::Notified => unreachable!("the head of the line is queued"),
        }
    }

    /// Clones the wakers of every waiter still in line, leaving them queued: for news that
    /// concerns them all (the channel closed) but grants nothing.
    pub(crate) fn queued_wakers(&self) -> Vec<Waker> {
        let mut wakers = Vec::new();
        let mut cursor = self.head;
        while let Some(index) = cursor {
            cursor = match &self.waiter(index).place {
                Place::Queued { next, waker, .. } => {
                    wakers.push(waker.clone());
                    *next
                }
                Place::Notified => None,
            };
        }
        wakers
    }

    /// Frees the owner's slot (unlinking it if it is still in line) and says where it
    /// stood, so the owner can pass on a hand-off it will not take.
    pub(crate) fn remove(&mut self, key: WaiterKey) -> WaiterState {
        let state = self.state(key);
        if state == WaiterState::Queued {
            self.unlink(key.0);
        }
        self.slots[key.0] = Slot::Vacant {
            next_free: self.free,
        };
        self.free = Some(key.0);
        state
    }

    /// Slots in the slab, vacant or not: the peak number of simultaneous waiters.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Unlinks a queued waiter from its neighbours (its own `place` is left to the caller).
    fn unlink(&mut self, index: usize) {
        let Place::Queued { prev, next, .. } = self.waiter(index).place else {
            return;
        };
        match prev {
            Some(prev) => self.set_next(prev, next),
            None => self.head = next,
        }
        match next {
            Some(next) => self.set_prev(next, prev),
            None => self.tail = prev,
        }
    }

    fn set_next(&mut self, index: usize, to: Option<usize>) {
        if let Place::Queued { next, .. } = &mut self.waiter_mut(index).place {
            *next = to;
        }
    }

    fn set_prev(&mut self, index: usize, to: Option<usize>) {
        if let Place::Queued { prev, .. } = &mut self.waiter_mut(index).place {
            *prev = to;
        }
    }

    fn waiter(&self, index: usize) -> &Waiter<T> {
        match &self.slots[index] {
            Slot::Occupied(waiter) => waiter,
            Slot::Vacant { .. } => unreachable!("a waiter key outlived its slot"),
        }
    }

    fn waiter_mut(&mut self, index: usize) -> &mut Waiter<T> {
        match &mut self.slots[index] {
            Slot::Occupied(waiter) => waiter,
            Slot::Vacant { .. } => unreachable!("a waiter key outlived its slot"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_in_arrival_order_and_removes_from_the_middle() {
        let mut queue = WaitQueue::new();
        let waker = Waker::noop();
        let a = queue.push_back('a', waker);
        let b = queue.push_back('b', waker);
        let c = queue.push_back('c', waker);
        assert_eq!(queue.remove(b), WaiterState::Queued);
        assert_eq!(queue.front(), Some(&'a'));
        assert!(queue.pop_front().is_some());
        assert_eq!(queue.state(a), WaiterState::Notified);
        assert_eq!(queue.front(), Some(&'c'));
        assert_eq!(queue.remove(a), WaiterState::Notified);
        // The freed slots are reused, and the line stays in order.
        let d = queue.push_back('d', waker);
        assert!(d == a || d == b);
        assert!(queue.pop_front().is_some());
        assert_eq!(queue.front(), Some(&'d'));
        assert_eq!(queue.remove(c), WaiterState::Notified);
        assert_eq!(queue.remove(d), WaiterState::Queued);
        assert!(queue.is_empty());
        assert_eq!(queue.capacity(), 3, "no slot leaked");
    }
}
