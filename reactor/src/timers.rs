//! Pending timers: a binary heap keyed by (deadline, sequence number).
//!
//! # Ground rules
//!
//! - Timers with equal deadlines fire in the order they were registered: the sequence number
//!   breaks ties, so the order does not depend on heap internals.
//! - A timer is an entry in a slab (its waker) plus a heap item. Dropping a `Sleep` removes
//!   the entry at once; its heap item goes stale (see the optimisation below).
//! - Firing only collects wakers; the caller wakes them after releasing its borrow.
//! - [`Timers::expire`] fires every due timer before it returns, so after `expire(now)` every
//!   timer registered before it with a deadline at or before `now` has fired:
//!   [`Timers::fired_through`] keeps that `now` as a watermark (see the optimisation in
//!   `timer.rs`; a registration made later for a deadline already passed, `time::advance`'s,
//!   waits for the next expiry).
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
    /// The `now` of the last [`Timers::expire`]: every timer registered with a deadline at
    /// or before it has fired. `None` before the first expiry.
    fired_through: Option<Instant>,
}

impl Timers {
    pub(crate) fn new() -> Timers {
        Timers {
            heap: BinaryHeap::new(),
            entries: Slab::new(),
            next_seq: 0,
            fired_through: None,
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

    /// Whether a timer registered for `deadline` has certainly fired: its deadline is at or
    /// before the `now` of an expiry, which fired everything due then. Answers from this
    /// struct alone, without reading the registration's slot.
    ///
    /// Holds for a registration made while its deadline was still ahead of the clock (a
    /// [`Timer`](crate::time::Timer)'s: it registers only after seeing `now < deadline`, and
    /// every expiry's `now` was read from the same monotonic clock before that): a timer
    /// registered for a deadline the clock had passed (`time::advance`'s own) may be due and
    /// not fired yet, so its owner asks [`Timers::set_waker`] instead.
    pub(crate) fn fired_through(&self, deadline: Instant) -> bool {
        self.fired_through
            .is_some_and(|through| deadline <= through)
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
        self.fired_through = Some(now);
        expired
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;
    use std::time::Duration;

    use super::Timers;
    use crate::clock::Instant;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_watermark_is_the_last_expirys_now_and_covers_only_what_it_fired() {
        let start = Instant::from_std(std::time::Instant::now());
        let mut timers = Timers::new();
        let mut wake = Vec::new();
        assert!(
            !timers.fired_through(start),
            "nothing has fired before the first expiry"
        );
        timers.insert(start + ms(10), Waker::noop().clone());
        timers.insert(start + ms(20), Waker::noop().clone());

        let expired = timers.expire(start + ms(5), &mut wake);
        assert_eq!((expired.count, wake.len()), (0, 0));
        assert!(timers.fired_through(start + ms(5)));
        assert!(!timers.fired_through(start + ms(10)), "not due yet");

        let expired = timers.expire(start + ms(10), &mut wake);
        assert_eq!(expired.count, 1, "the deadline equal to `now` fires");
        assert_eq!(expired.next_deadline, Some(start + ms(20)));
        assert!(timers.fired_through(start + ms(10)));
        assert!(!timers.fired_through(start + ms(10) + Duration::from_nanos(1)));
        assert!(!timers.fired_through(start + ms(20)));

        let expired = timers.expire(start + ms(30), &mut wake);
        assert_eq!((expired.count, expired.next_deadline), (1, None));
        assert!(timers.fired_through(start + ms(20)));
        assert!(timers.fired_through(start + ms(30)));
        assert_eq!(wake.len(), 2);
    }
}
