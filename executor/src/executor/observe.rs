//! What a test or a tool can read of an [`Executor`] between runs, or after one: the live
//! tree, and what deterministic mode recorded. Off the reading path: nothing here changes
//! anything.

use crate::diag::TreeDump;
use crate::trace::Trace;

use super::Executor;

impl Executor {
    /// A snapshot of the live tree (empty between `block_on` calls); with diagnostics on it
    /// includes poll counts and times.
    pub fn dump(&self) -> TreeDump {
        self.core.dump()
    }

    /// Number of live nodes in the tree: tasks, regions, shields and the root (see
    /// [`Executor::live_tasks`] for the tasks alone; `treeloop::Runtime::live_tasks` has an
    /// example that shows the difference). Zero between runs.
    pub fn live_nodes(&self) -> usize {
        self.core.tree().len()
    }

    /// Number of live tasks: nodes of the tree that are spawned tasks, not regions, shields
    /// or the root (see [`Executor::live_nodes`]). Zero between runs. Counted by a pass
    /// over the live nodes, so it costs a look at each.
    pub fn live_tasks(&self) -> usize {
        self.core.tree().tasks()
    }

    /// Scheduling steps taken so far: picks made while two or more jobs were ready, the `k`
    /// of [`Strategy::Pct`](crate::Strategy::Pct) (counted under `Random` and `Pct`; 0 under `Fifo`).
    pub fn scheduling_steps(&self) -> u64 {
        self.core.queue().steps()
    }

    /// The choices made so far at picks with two or more jobs ready, by task number
    /// (recorded under `Random`, `Pct` and a replay; empty under `Fifo`).
    pub fn schedule(&self) -> crate::Schedule {
        self.core.queue().schedule()
    }

    /// Choices at which a replay could not take its schedule's task (it had run out, or
    /// named a task that was not ready) and fell back; 0 unless replaying.
    pub fn replay_divergences(&self) -> u64 {
        self.core.queue().divergences()
    }

    /// A replay's choices with the alternatives each had, when
    /// [`Replay::log_choice_points`](crate::Replay::log_choice_points) asked for them.
    pub fn choice_points(&self) -> Vec<crate::ChoicePoint> {
        self.core.queue().choice_points()
    }

    /// Whether code run here asked for the scheduling seed
    /// ([`scheduling_seed`](crate::scheduling_seed)): its choices then depend on the seed,
    /// which a schedule alone does not carry.
    pub fn seed_was_read(&self) -> bool {
        self.core.seed_was_read()
    }

    /// The decisions recorded so far (empty unless tracing was asked for).
    pub fn trace(&self) -> Trace {
        self.core.trace()
    }
}
