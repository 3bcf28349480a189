//! `interval`: a tick every period, as an await point.

use std::time::Duration;

use treeloop_executor::Cancelled;
use treeloop_reactor::time::{Instant, sleep_until};

/// Ticks every `period`, the first tick at once (when first awaited).
///
/// A late tick (the task was busy) fires at once, and the next one is a full period after
/// it: ticks never pile up into a burst. A cancelled `tick` consumes nothing: the next
/// `tick` (in a shield, say) still returns the missed instant.
///
/// # Panics
///
/// If `period` is zero.
pub fn interval(period: Duration) -> Interval {
    assert!(
        !period.is_zero(),
        "interval period must be greater than zero: use yield_now() to loop without waiting"
    );
    Interval { period, next: None }
}

/// The ticker returned by [`interval`].
#[derive(Debug)]
pub struct Interval {
    /// Time between ticks.
    period: Duration,
    /// When the next tick is due; `None` until the first tick (due at once).
    next: Option<Instant>,
}

impl Interval {
    /// Waits for the next tick and returns the instant it was scheduled for;
    /// `Err(Cancelled)` in a cancelled region (the tick is then not consumed).
    pub async fn tick(&mut self) -> Result<Instant, Cancelled> {
        let due = *self.next.get_or_insert_with(Instant::now);
        sleep_until(due).await?;
        let now = Instant::now();
        let next = due + self.period;
        self.next = Some(if next > now { next } else { now + self.period });
        Ok(due)
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }
}
