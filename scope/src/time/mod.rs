//! Deadlines and periodic ticks, on the runtime's clock (real or virtual).

mod interval;
mod timeout;

pub use interval::{Interval, interval};
pub use timeout::{Elapsed, Timeout, timeout, timeout_at};
