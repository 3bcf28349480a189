//! The trace: every scheduling decision of a run, and a stable 64-bit hash of it.
//!
//! # Ground rules
//!
//! - Recorded only when asked for (deterministic mode or `record_trace`): the FIFO hot path
//!   pays one branch.
//! - Events name tasks by their number *within the runtime* (spawn order), not by the
//!   process-wide id, so two runs of one program in one process compare equal.
//! - The hash is FNV-1a over a fixed little-endian encoding: stable across runs, builds and
//!   platforms. Nothing the program prints or logs enters it.
//! - Memory is bounded: the hash covers every event, but only the last [`EVENTS_KEPT`] are
//!   kept (a ring), with the count of all of them. Ten million polls used to keep ten
//!   million events (314 MB); the end of a run is what a failure report needs.

use std::collections::VecDeque;

/// How many of the latest events a trace keeps: 65,536 (1 MiB of events).
pub const EVENTS_KEPT: usize = 1 << 16;

/// One scheduling decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TraceEvent {
    /// The task with this number (spawn order within the runtime) was polled.
    Poll(u64),
    /// The `block_on` future was polled.
    PollRoot,
    /// The loop parked: time may have moved and timers or I/O may have woken tasks.
    Park,
}

/// A run's decisions, as recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trace {
    /// The latest decisions, in order: all of them, or the last 65,536 (`EVENTS_KEPT`) of a
    /// longer run.
    pub events: Vec<TraceEvent>,
    /// How many decisions were recorded in all (more than `events.len()` once the ring
    /// dropped the oldest).
    pub recorded: u64,
    /// FNV-1a of every event recorded, dropped ones included.
    pub hash: u64,
}

/// FNV-1a's offset basis and prime (64-bit).
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Records events and keeps the running hash.
pub(crate) struct Recorder {
    /// The latest events (at most [`EVENTS_KEPT`]).
    events: VecDeque<TraceEvent>,
    /// Events recorded in all.
    recorded: u64,
    /// FNV-1a so far.
    hash: u64,
}

impl Recorder {
    pub(crate) fn new() -> Recorder {
        Recorder {
            events: VecDeque::new(),
            recorded: 0,
            hash: FNV_OFFSET,
        }
    }

    pub(crate) fn record(&mut self, event: TraceEvent) {
        let (tag, value) = match event {
            TraceEvent::Poll(n) => (1u8, n),
            TraceEvent::PollRoot => (2, 0),
            TraceEvent::Park => (3, 0),
        };
        let mut hash = self.hash;
        for byte in std::iter::once(tag).chain(value.to_le_bytes()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(FNV_PRIME);
        }
        self.hash = hash;
        self.recorded += 1;
        if self.events.len() == EVENTS_KEPT {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    pub(crate) fn snapshot(&self) -> Trace {
        Trace {
            events: self.events.iter().copied().collect(),
            recorded: self.recorded,
            hash: self.hash,
        }
    }
}
