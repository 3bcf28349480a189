//! What an [`Executor`](crate::Executor) is built with: how it schedules, which
//! diagnostics it keeps, where its reports go.

use crate::diag::Diagnostics;
use crate::report::Sink;
use crate::strategy::Strategy;

/// Everything an [`Executor`](crate::Executor) can be configured with.
#[derive(Clone, Default)]
pub struct Options {
    /// Strategy, seed and trace.
    pub scheduling: Scheduling,
    /// Which diagnostics to keep (none by default).
    pub diagnostics: Diagnostics,
    /// Where reports go (stderr by default).
    pub sink: Option<Sink>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("scheduling", &self.scheduling)
            .field("diagnostics", &self.diagnostics)
            .field("sink", &self.sink.as_ref().map(|_| "custom"))
            .finish()
    }
}

/// How the executor schedules: the strategy, its seed, and whether to record a trace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scheduling {
    /// Which ready job runs next.
    pub strategy: Strategy,
    /// The seed of the strategy's generator.
    pub seed: u64,
    /// Record every decision (see [`Executor::trace`](crate::Executor::trace)).
    pub trace: bool,
    /// The steps `Strategy::Pct` spreads its change points over (its `k`); `None` for the
    /// default (see [`Strategy::Pct`]).
    pub pct_horizon: Option<u64>,
    /// Take the choices of a recorded schedule instead of the strategy's (see
    /// [`Schedule`](crate::Schedule)).
    pub replay: Option<crate::schedule::Replay>,
}
