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
/// ```
/// use std::time::Duration;
/// use treeloop::Builder;
/// use treeloop::time::{Instant, interval, sleep};
///
/// let runtime = Builder::new().start_paused(true).build().unwrap();
/// runtime.block_on(async {
///     let start = Instant::now();
///     let mut ticks = interval(Duration::from_secs(10));
///     for expected in [0, 10, 20] {
///         let due = ticks.tick().await.unwrap();
///         assert_eq!(due - start, Duration::from_secs(expected));
///     }
///     // Busy for 25 s, past the tick due at 30 s: it fires at once, at 45 s...
///     sleep(Duration::from_secs(25)).await.unwrap();
///     assert_eq!(ticks.tick().await.unwrap() - start, Duration::from_secs(30));
///     assert_eq!(start.elapsed(), Duration::from_secs(45));
///     // ...and the next one comes a full period after it: no burst.
///     assert_eq!(ticks.tick().await.unwrap() - start, Duration::from_secs(55));
/// });
/// ```
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
