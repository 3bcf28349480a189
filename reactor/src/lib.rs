//! treeloop's reactor: the mio event loop, the clock and timers.
//!
//! [`Reactor`] implements the executor's [`Park`](treeloop_executor::Park): when no task is
//! runnable the loop blocks in `mio::Poll` until the next timer deadline, an I/O event or a
//! wake from another thread. Its leaf futures ([`time::sleep`]) are treeloop await points:
//! they consult the executor's cancellation mark before anything else.
//!
//! Files, from the bottom up: `clock.rs` (`Instant` and the real or virtual clock),
//! `timers.rs` (the heap of pending timers), `context.rs` (the `ReactorCore` every leaf
//! future reaches: the clock, the timers, the readiness table of `io/slots.rs` and the
//! signal table of `signal/pipe.rs`; its thread-local; `Instant::now`), `reactor.rs` (the
//! [`Reactor`] and its [`Turn`]: where the loop blocks and what wakes it), then what leaf
//! futures and sockets are built on the context: `timer.rs`, `sleep.rs`, `advance.rs`,
//! `blocking.rs`, `io/source.rs`, `net/`, `signal/receive.rs`, `process/`, `buffered/`,
//! `sim/`. The names follow async-io's, where
//! `reactor.rs` is the reactor and `driver.rs` the `block_on` that drives it; treeloop's
//! `block_on` is the executor's, so this crate has no `driver.rs`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod advance;
mod blocking;
pub mod buffered;
mod clock;
mod context;
mod io;
pub mod net;
pub mod process;
mod reactor;
pub mod signal;
pub mod sim;
mod sleep;
mod timer;
mod timers;

pub use blocking::{KEEP_ALIVE, MAX_THREADS, Unblock, unblock};
pub use clock::ClockMode;
pub use context::{EnterGuard, RealIo};
pub use reactor::{Determinism, DumpSignal, OnDeadlock, Reactor, ReactorOptions, Turn};

/// Time: the runtime's clock (real or virtual) and timers.
pub mod time {
    pub use crate::advance::{Advance, advance};
    pub use crate::clock::Instant;
    pub use crate::sleep::{Delay, Sleep, delay, delay_until, sleep, sleep_until};
    pub use crate::timer::Timer;
}
