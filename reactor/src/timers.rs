//! Pending timers: a binary heap keyed by (deadline, sequence number).
//!
//! # Ground rules
//!
//! - Timers with equal deadlines fire in the order they were registered: the sequence number
//!   breaks ties, so the order does not depend on heap internals.
//! - A timer is an entry in a slab (its waker) plus a heap item. Dropping a `Sleep` removes
//!   the entry at once; its heap item goes stale (see the optimisation below).
//! - Firing only collects wakers; the caller wakes them after releasing its borrow.
//! - Timers know only the clock's `Instant`. What a whole turn of the loop did (the timers
//!   it fired among the I/O events, signals and dumps) is the reactor's `Turn`, in
//!   `reactor.rs`, which reads [`Expired`] from here.
//!
//! A heap, not a hashed wheel: O(log n) per timer, exact deadlines at any resolution, and
//! simple enough to read. At 100,000 timers the side-by-side benchmark (`benches/README.md`)
//! finds the heap ahead of tokio's wheel: rounding deadlines to ticks would buy nothing.
//!
//! # Optimisation: stale heap items instead of removal
//!
//! *The model:* a timer is in the heap until it fires or is dropped. *What is done instead:*
//! a dropped timer only leaves the slab; its heap item stays, and is thrown away when it
//! reaches the top ([`Timers::next_deadline`], [`Timers::expire`]) because its sequence
//! number no longer matches the slot's. *What it saves:* `std`'s `BinaryHeap` cannot remove
//! from the middle, so a removal would be a linear search plus a rebuild, O(n), for every
//! timeout whose operation finished first (the common case of a timeout); this way a drop is
//! O(1) and each stale item costs one O(log n) pop later. *What it costs a reader:* heap
//! items that mean nothing, and the sequence number that tells them apart.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::task::Waker;

use slab::Slab;

use crate::clock::Instant;

/// Identifies a registered timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimerKey {
    /// The entry's slot.
    slot: usize,
    /// The registration's sequence number (slots are reused; sequence numbers are not).
    seq: u64,
}

/// A registered timer.
struct Entry {
    /// Its registration number.
    seq: u64,
    /// The task to wake when it expires.
    waker: Waker,
}

/// What one call of [`Timers::expire`] did (the reactor's `Turn` carries it on).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Expired {
    /// Timers that expired and were woken.
    pub(crate) count: usize,
    /// The earliest deadline still pending.
    pub(crate) next_deadline: Option<Instant>,
}

/// All pending timers of one runtime.
pub(crate) struct Timers {
    /// Earliest first; may hold stale items of removed timers.
    heap: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    /// Live timers.
    entries: Slab<Entry>,
    /// The next registration's sequence number.
    next_seq: u64,
}

impl Timers {
    pub(crate) fn new() -> Timers {
        Timers {
            heap: BinaryHeap::new(),
            entries: Slab::new(),
            next_seq: 0,
        }
    }

    pub(crate) fn insert(&mut self, deadline: Instant, waker: Waker) -> TimerKey {
        let seq = self.next_seq;
        self.next_seq += 1;
        let slot = self.entries.insert(Entry { seq, waker });
        self.heap.push(Reverse((deadline, seq, slot)));
        TimerKey { slot, seq }
    }

    /// Replaces the waker of a live timer (a task may be polled with a different waker).
    /// Returns whether the timer is still pending: `false` once it fired (or was removed),
    /// so a re-poll learns both in one lookup.
    pub(crate) fn set_waker(&mut self, key: TimerKey, waker: &Waker) -> bool {
        let Some(entry) = self.live_mut(key) else {
            return false;
        };
        if !entry.waker.will_wake(waker) {
            entry.waker = waker.clone();
        }
        true
    }

    pub(crate) fn remove(&mut self, key: TimerKey) {
        if self.live_mut(key).is_some() {
            self.entries.remove(key.slot);
        }
    }

    fn live_mut(&mut self, key: TimerKey) -> Option<&mut Entry> {
        self.entries
            .get_mut(key.slot)
            .filter(|entry| entry.seq == key.seq)
    }

    /// The earliest pending deadline, discarding stale heap items on the way.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((deadline, seq, slot))) = self.heap.peek() {
            if self
                .entries
                .get(*slot)
                .is_some_and(|entry| entry.seq == *seq)
            {
                return Some(*deadline);
            }
            self.heap.pop();
        }
        None
    }

    /// Removes every timer due at `now` and pushes its waker, earliest (then oldest) first.
    pub(crate) fn expire(&mut self, now: Instant, wake: &mut Vec<Waker>) -> Expired {
        let mut expired = Expired::default();
        while let Some(deadline) = self.next_deadline() {
            if deadline > now {
                expired.next_deadline = Some(deadline);
                break;
            }
            if let Some(Reverse((_, _, slot))) = self.heap.pop() {
                wake.push(self.entries.remove(slot).waker);
                expired.count += 1;
            }
        }
        expired
    }
}
