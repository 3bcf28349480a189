//! The readiness table: one slot per registered I/O source.
//!
//! # Ground rules
//!
//! - A source is registered with mio **once**, for reading and writing, edge-triggered. Its
//!   slot caches what the OS last reported; an operation clears a direction's readiness
//!   only when it gets `WouldBlock`. So there is never a re-arm per operation: an
//!   `epoll_ctl` when a socket is registered, and one when it is dropped.
//! - A slot starts out *ready* both ways (optimistic): the first read or write is simply
//!   tried, and a `WouldBlock` is what makes it wait for the next edge.
//! - Tokens carry a generation as well as the slot key, so an event still in flight for a
//!   closed source never marks the source that reused its slot.
//! - The reader and the writer of one source wait independently (split halves).

use std::task::Waker;

use mio::Token;
use slab::Slab;

/// Readiness, as bits.
///
/// The `*_CLOSED` bits record that the peer closed a direction (or the socket failed). They
/// are kept apart from `READABLE`/`WRITABLE` because the OS reports a close *once*: a short
/// read that clears `READABLE` must not forget that the end of the stream has already
/// arrived, or the next read would wait for an edge that never comes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ready(u8);

impl Ready {
    pub(crate) const READABLE: Ready = Ready(0b0001);
    pub(crate) const WRITABLE: Ready = Ready(0b0010);
    const READ_CLOSED: Ready = Ready(0b0100);
    const WRITE_CLOSED: Ready = Ready(0b1000);
    const BOTH: Ready = Ready(0b0011);

    fn contains(self, other: Ready) -> bool {
        self.0 & other.0 != 0
    }
}

/// Which side of a source an operation is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Reads, accepts, receives.
    Read,
    /// Writes, sends, connects.
    Write,
}

impl Direction {
    fn bit(self) -> Ready {
        match self {
            Direction::Read => Ready::READABLE,
            Direction::Write => Ready::WRITABLE,
        }
    }

    fn closed_bit(self) -> Ready {
        match self {
            Direction::Read => Ready::READ_CLOSED,
            Direction::Write => Ready::WRITE_CLOSED,
        }
    }
}

/// How much of a direction's readiness an operation refutes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refuted {
    /// The syscall said `WouldBlock`: nothing is ready that way, closed or not.
    WouldBlock,
    /// A short transfer drained (or filled) the buffer; a close already seen still stands.
    ShortTransfer,
}

/// One registered source.
struct Slot {
    /// Bumped each time the slot is reused; part of the token.
    generation: u32,
    /// What the OS last reported and no operation has refuted yet.
    ready: Ready,
    /// The task waiting to read, if any.
    reader: Option<Waker>,
    /// The task waiting to write, if any.
    writer: Option<Waker>,
}

/// A source's place in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SlotKey {
    /// Index in the slab.
    index: usize,
    /// The slot's generation when the source was registered.
    generation: u32,
}

impl SlotKey {
    /// The mio token for this source: generation in the high half, index in the low half.
    pub(crate) fn token(self) -> Token {
        Token(((self.generation as usize) << 32) | self.index)
    }

    fn from_token(token: Token) -> SlotKey {
        SlotKey {
            index: token.0 & 0xFFFF_FFFF,
            generation: (token.0 >> 32) as u32,
        }
    }
}

/// Every registered source's readiness and waiters.
pub(crate) struct Slots {
    /// The slots; vacant ones are reused.
    slots: Slab<Slot>,
    /// The generation counter, so a reused slot's token differs.
    next_generation: u32,
}

impl Slots {
    pub(crate) fn new() -> Slots {
        Slots {
            slots: Slab::new(),
            next_generation: 0,
        }
    }

    /// How many sources are registered.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn insert(&mut self) -> SlotKey {
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let index = self.slots.insert(Slot {
            generation,
            ready: Ready::BOTH,
            reader: None,
            writer: None,
        });
        assert!(
            index <= 0xFFFF_FFFF,
            "more than 2^32 registered I/O sources"
        );
        SlotKey { index, generation }
    }

    pub(crate) fn remove(&mut self, key: SlotKey) {
        if self.get_mut(key).is_some() {
            self.slots.remove(key.index);
        }
    }

    fn get_mut(&mut self, key: SlotKey) -> Option<&mut Slot> {
        self.slots
            .get_mut(key.index)
            .filter(|slot| slot.generation == key.generation)
    }

    /// Whether `dir` is (believed) ready; if not, `waker` is stored to be woken when it is.
    pub(crate) fn poll_ready(&mut self, key: SlotKey, dir: Direction, waker: &Waker) -> bool {
        let Some(slot) = self.get_mut(key) else {
            return true; // deregistered: let the operation report the error
        };
        if slot.ready.contains(Ready(dir.bit().0 | dir.closed_bit().0)) {
            return true;
        }
        let waiter = match dir {
            Direction::Read => &mut slot.reader,
            Direction::Write => &mut slot.writer,
        };
        if !waiter.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *waiter = Some(waker.clone());
        }
        false
    }

    /// An operation in `dir` found it not ready: wait for the next edge.
    pub(crate) fn clear(&mut self, key: SlotKey, dir: Direction, refuted: Refuted) {
        if let Some(slot) = self.get_mut(key) {
            let cleared = match refuted {
                Refuted::WouldBlock => dir.bit().0 | dir.closed_bit().0,
                Refuted::ShortTransfer => dir.bit().0,
            };
            slot.ready.0 &= !cleared;
        }
    }

    /// Records an event from the OS and collects the wakers it concerns. A closed or failed
    /// source counts as ready both ways: the next operation reports what happened.
    pub(crate) fn on_event(&mut self, event: &mio::event::Event, wake: &mut Vec<Waker>) {
        let Some(slot) = self.get_mut(SlotKey::from_token(event.token())) else {
            return; // the source was dropped since the OS queued this event
        };
        let failed = event.is_error();
        if event.is_readable() {
            slot.ready.0 |= Ready::READABLE.0;
        }
        if event.is_read_closed() || failed {
            slot.ready.0 |= Ready::READ_CLOSED.0;
        }
        if event.is_writable() {
            slot.ready.0 |= Ready::WRITABLE.0;
        }
        if event.is_write_closed() || failed {
            slot.ready.0 |= Ready::WRITE_CLOSED.0;
        }
        if event.is_readable() || event.is_read_closed() || failed {
            wake.extend(slot.reader.take());
        }
        if event.is_writable() || event.is_write_closed() || failed {
            wake.extend(slot.writer.take());
        }
    }
}
