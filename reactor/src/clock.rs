//! The runtime's clock: real, or virtual ("paused") for tests.
//!
//! # Ground rules
//!
//! - Virtual time starts at the process's *epoch* (the first instant any treeloop clock was
//!   read, the same for every runtime of the process) and moves only when the loop is idle,
//!   when [`Clock::advance_to`] jumps it to the next timer deadline, or when a test moves it
//!   by hand with [`advance`](crate::time::advance). It never drifts and is never rounded:
//!   an offset in whole nanoseconds from the epoch. So two runs of one seed hold equal
//!   `Instant`s, and an `Instant` prints as its distance from the epoch (`Instant(+50ms)`),
//!   the same in every run: a `Debug` of a deadline or an `Elapsed` does not change with the
//!   moment the runtime was built. (Printing the `std::time::Instant` inside would: its
//!   fields are the system's monotonic clock.)
//! - [`Instant::now`] inside a runtime reads *the runtime's* clock, so code under test sees
//!   virtual time without being written for it. Outside a runtime it is the system clock.
//! - This file is the bottom of the reactor: it imports nothing of the crate. So
//!   `Instant::now`, which reads the running runtime's clock through the reactor's
//!   thread-local, is defined in `context.rs`, beside that thread-local; the [`Clock`] it
//!   reads is one of the parts of the state kept there.

use std::cell::Cell;
use std::fmt;
use std::ops::{Add, AddAssign, Sub};
use std::time::Duration;

/// A measurement of the runtime's clock: `std::time::Instant`, shifted by virtual time when
/// the runtime runs paused.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(std::time::Instant);

impl Instant {
    /// Wraps a system instant.
    pub fn from_std(instant: std::time::Instant) -> Instant {
        Instant(instant)
    }

    /// The system instant this corresponds to (shifted, under virtual time).
    pub fn into_std(self) -> std::time::Instant {
        self.0
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(&self, earlier: Instant) -> Duration {
        self.0.saturating_duration_since(earlier.0)
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn duration_since(&self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }

    /// Time since `self`, by the runtime's clock.
    pub fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(*self)
    }

    /// `self + duration`, or `None` if it does not fit.
    pub fn checked_add(&self, duration: Duration) -> Option<Instant> {
        self.0.checked_add(duration).map(Instant)
    }

    /// `self + duration`, saturating at a far-future instant (about 30 years ahead) when it
    /// does not fit: what "sleep for `Duration::MAX`" means.
    pub fn saturating_add(&self, duration: Duration) -> Instant {
        self.checked_add(duration)
            .or_else(|| self.checked_add(Duration::from_secs(86_400 * 365 * 30)))
            .unwrap_or(*self)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    fn add(self, duration: Duration) -> Instant {
        Instant(self.0 + duration)
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, duration: Duration) {
        self.0 += duration;
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;

    fn sub(self, duration: Duration) -> Instant {
        Instant(self.0 - duration)
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;

    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

/// Prints the distance from the process's epoch: `Instant(+1.5s)` (see the module docs).
impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let epoch = epoch();
        match self.0.checked_duration_since(epoch) {
            Some(after) => write!(f, "Instant(+{after:?})"),
            None => write!(f, "Instant(-{:?})", epoch.duration_since(self.0)),
        }
    }
}

/// Virtual time's zero, for every runtime of the process: the first time it is asked for.
fn epoch() -> std::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

/// Which time a runtime's clock tells ([`ReactorOptions::clock`](crate::ReactorOptions::clock)).
/// The default is [`Real`](ClockMode::Real).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClockMode {
    /// The system clock: a sleep takes as long as it says.
    #[default]
    Real,
    /// Virtual time: it starts at the process's epoch and moves only when the loop is idle
    /// (straight to the next timer deadline) or by
    /// [`time::advance`](crate::time::advance), so a sleep costs no real time.
    Paused,
}

/// The runtime's source of `now`.
pub(crate) struct Clock {
    /// Real or virtual.
    mode: ClockMode,
    /// Virtual time's zero: the process's epoch (see the module docs); the build time of a
    /// real clock.
    start: std::time::Instant,
    /// Virtual time elapsed since `start`.
    offset: Cell<Duration>,
}

impl Clock {
    pub(crate) fn new(mode: ClockMode) -> Clock {
        Clock {
            mode,
            start: match mode {
                ClockMode::Real => std::time::Instant::now(),
                ClockMode::Paused => epoch(),
            },
            offset: Cell::new(Duration::ZERO),
        }
    }

    pub(crate) fn mode(&self) -> ClockMode {
        self.mode
    }

    /// Time since the runtime was built, by this clock.
    pub(crate) fn since_start(&self) -> Duration {
        self.now().0.saturating_duration_since(self.start)
    }

    pub(crate) fn now(&self) -> Instant {
        match self.mode {
            ClockMode::Real => Instant(std::time::Instant::now()),
            ClockMode::Paused => Instant(self.start + self.offset.get()),
        }
    }

    /// Moves virtual time forward by `duration` ([`advance`](crate::time::advance)); `None`,
    /// and nothing moved, on the system clock.
    pub(crate) fn advance_by(&self, duration: Duration) -> Option<Instant> {
        if self.mode != ClockMode::Paused {
            return None;
        }
        self.offset.set(self.offset.get().saturating_add(duration));
        Some(self.now())
    }

    /// Moves virtual time forward to `deadline` (never backward).
    pub(crate) fn advance_to(&self, deadline: Instant) {
        debug_assert_eq!(self.mode, ClockMode::Paused, "only virtual time jumps");
        let target = deadline.0.saturating_duration_since(self.start);
        if target > self.offset.get() {
            self.offset.set(target);
        }
    }
}
