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
    /// Every decision, in order.
    pub events: Vec<TraceEvent>,
    /// FNV-1a of the events.
    pub hash: u64,
}

/// FNV-1a's offset basis and prime (64-bit).
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Records events and keeps the running hash.
pub(crate) struct Recorder {
    /// The trace so far.
    trace: Trace,
}

impl Recorder {
    pub(crate) fn new() -> Recorder {
        Recorder {
            trace: Trace {
                events: Vec::new(),
                hash: FNV_OFFSET,
            },
        }
    }

    pub(crate) fn record(&mut self, event: TraceEvent) {
        let (tag, value) = match event {
            TraceEvent::Poll(n) => (1u8, n),
            TraceEvent::PollRoot => (2, 0),
            TraceEvent::Park => (3, 0),
        };
        let mut hash = self.trace.hash;
        for byte in std::iter::once(tag).chain(value.to_le_bytes()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(FNV_PRIME);
        }
        self.trace.hash = hash;
        self.trace.events.push(event);
    }

    pub(crate) fn snapshot(&self) -> Trace {
        self.trace.clone()
    }
}
