//! treeloop's reactor: the mio event loop, the clock and timers.
//!
//! [`Reactor`] implements the executor's [`Park`](treeloop_executor::Park): when no task is
//! runnable the loop blocks in `mio::Poll` until the next timer deadline, an I/O event or a
//! wake from another thread. Its leaf futures ([`time::sleep`]) are treeloop await points:
//! they consult the executor's cancellation mark before anything else.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod advance;
mod blocking;
pub mod buffered;
mod clock;
mod driver;
mod io;
pub mod net;
pub mod process;
pub mod signal;
pub mod sim;
mod sleep;
mod timer;
mod timers;

pub use blocking::{KEEP_ALIVE, MAX_THREADS, Unblock, unblock};
pub use driver::{EnterGuard, Reactor, ReactorOptions};
pub use timers::Turn;

/// Time: the runtime's clock (real or virtual) and timers.
pub mod time {
    pub use crate::advance::{Advance, advance};
    pub use crate::clock::Instant;
    pub use crate::sleep::{Delay, Sleep, delay, delay_until, sleep, sleep_until};
    pub use crate::timer::Timer;
}
