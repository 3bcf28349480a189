//! Shrinking: on a failure, `test::check` looks for the run closest to FIFO order that
//! fails the same way, and prints its few *deviations* by the tasks' names.
//!
//! A failing seed's schedule is a few hundred choices, most of them noise: a random run
//! takes another task than FIFO would at most of its choices, and the bug needs one or two
//! of them. A *deviation* is a choice at which the run took another job than the front of
//! the queue, which FIFO would have taken ([`Deviation`]: "task `taken`, at its `poll`th
//! poll, ran while `over` was first in line"). A run is given by its deviations alone: a
//! replay with them runs FIFO everywhere else (`Replay::deviations`), and a run's own
//! deviations replayed give that run again. So a failing run shrinks by dropping
//! deviations, and what is left is what a reader can act on:
//!
//! ```text
//! task "conn 2" (tests/foo.rs:41:9) ran before task "reader" (tests/foo.rs:55:5) at its 3rd poll
//! ```
//!
//! # The algorithm
//!
//! 1. Replay the failing schedule once, logging every choice with the jobs that were ready
//!    in wake order: its deviations are where the choice was not the front.
//! 2. Try the FIFO run (no deviation): a bug FIFO itself hits shrinks to nothing at once.
//! 3. Remove deviations by delta debugging (`ddmin`, Zeller and Hildebrandt, "Simplifying
//!    and isolating failure-inducing input", TSE 2002): split the deviations into `n`
//!    chunks (2 at first); run each chunk alone, then all but each chunk. A run that fails
//!    the same way is the new best, with its *own* deviations (some of those given may no
//!    longer come up), and `n` goes back to 2 (a chunk alone) or down by one (all but a
//!    chunk); when nothing fails, `n` doubles, up to one deviation a chunk. The end is
//!    1-minimal: dropping any single deviation left loses the failure, and no single one
//!    alone has it. (Without the chunks alone, a bug that needs one deviation can stop at
//!    three that need each other in the failing run's order.) Then, with at most 6 left,
//!    every smaller subset of them, smallest first (at most 50 runs): 1-minimal is not
//!    minimal, and a bug that needs two deviations can stop at four.
//! 4. While the best run has preemptions (a deviation that switched away from the task
//!    that just ran while it was ready again), move each deviation: the same task and poll,
//!    taken over another job first in line, earlier in its wait (where that is no
//!    preemption) or later. A move is kept if the run fails the same way with fewer
//!    deviations, or as many and fewer preemptions; then step 3 runs again.
//! 5. Replay the best run's schedule as its `TREELOOP_SCHEDULE` line would, without the
//!    seed. If that fails the same way, the line is printed so; else (the body draws from
//!    the seed: `test::rng`, a simulated network's faults) the line carries
//!    `TREELOOP_SEED` too, and then is the very run found.
//!
//! "Fails the same way": panics with a message equal to the original's, or returns an
//! `Err` with the same `Debug` text. A deadlock is its panic, the report with the task
//! tree (and so the same tasks stuck in the same places). Another failure is not the bug
//! being shrunk, and counts as a pass.
//!
//! # Ground rules
//!
//! - Every candidate is one run of the body on a fresh runtime built from the failing
//!   seed's builder (its seed included, so `test::rng` draws what it drew), with its reports
//!   muted and its panics not printed (a hook installed once that stays silent on this
//!   thread while a candidate runs, and hands every other panic to the hook it replaced).
//! - Bounded: at most [`DEFAULT_SHRINK_RUNS`] runs, steps 1 and 5 included (the last run
//!   is kept for step 5), or `TREELOOP_SHRINK_RUNS=n` (0: no shrinking). Out of runs, the
//!   best run so far is printed, saying so: a big test's failure costs at most that many
//!   more runs of its body. A run too large to log (more than 4,194,304 ready tasks over
//!   all its choices) is not shrunk.
//! - Deterministic: the candidates depend only on the runs before them, so the same failure
//!   shrinks to the same schedule every time.
//!
//! Rejected: shrinking the schedule itself, as a list, by deleting choices (QuickCheck's
//! way). A schedule is positional: deleting one choice moves every later one onto another
//! moment, so nearly every candidate is a different, random run, and the result would still
//! be a list of task numbers, not something a reader can act on. Keying deviations by
//! position has the same flaw; a task and its poll name a moment that survives the removal
//! of other deviations. Rejected too: `test::explore` from FIFO with a preemption bound of
//! 1, then 2, which finds the true minimum but runs a number of schedules that grows with
//! the length of the run to the power of the bound; delta debugging needs a number of runs
//! that grows with the deviations of the failing run and is guided by it.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::future::Future;
use std::panic::{self, Location};
use std::sync::Once;

use treeloop_executor::{ChoicePoint, Deviation, Schedule, Trace};

use crate::run::{CheckOutcome, Ending, run_once};
use crate::runtime::Builder;

mod report;
#[cfg(test)]
mod tests;

/// The runs shrinking may take by default: a few hundred, enough for delta debugging over
/// a few hundred deviations, and a bound on what a big failing test costs.
pub const DEFAULT_SHRINK_RUNS: u64 = 300;

/// The most deviations whose every subset step 3 tries after delta debugging (50 runs at
/// 6; 2^n in general).
const SMALL: usize = 6;

/// The most moves tried per deviation in step 4.
const MOVES_PER_DEVIATION: usize = 8;

/// `test::check`'s failure path: the seed `builder` (the failing seed's builder; `plain`
/// is `check`'s, which a replay line runs with) failed with `schedule`, ending as
/// `failure`; shrink it and print the shrunk run, unless `TREELOOP_SHRINK_RUNS=0`.
pub(crate) fn shrink_failure<F, Fut>(
    plain: &Builder,
    builder: &Builder,
    body: &F,
    location: &'static Location<'static>,
    schedule: &Schedule,
    failure: &Ending,
) where
    F: Fn() -> Fut,
    Fut: Future,
    Fut::Output: CheckOutcome,
{
    let budget = runs_from_env().unwrap_or(DEFAULT_SHRINK_RUNS);
    if budget == 0 {
        return;
    }
    let mut shrinker = Shrinker::new(plain, builder, body, location, failure, budget);
    let text = match shrinker.shrink(schedule) {
        Ok(shrunk) => shrunk.describe(builder.seed_given()),
        Err(Refused::Ended(ending)) => format!(
            "treeloop::test::check: not shrinking the failure: its schedule, replayed, {ending} \
             (the body is not deterministic given its schedule)"
        ),
        Err(Refused::Unlogged(choices)) => format!(
            "treeloop::test::check: not shrinking the failure: its run makes {choices} choices, \
             among more ready tasks than shrinking logs"
        ),
    };
    treeloop_executor::report::report(format_args!("{text}"));
}

/// `TREELOOP_SHRINK_RUNS`, if set to a number.
fn runs_from_env() -> Option<u64> {
    std::env::var("TREELOOP_SHRINK_RUNS")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The search, with what it has run.
struct Shrinker<'a, F> {
    /// Every candidate's options: the failing seed's, reports muted.
    builder: Builder,
    /// What a `TREELOOP_SCHEDULE` replay line runs with: `check`'s options, no seed unless
    /// they have one, reports muted.
    plain: Builder,
    /// The test body.
    body: &'a F,
    /// The test's location (the root's spawn site).
    location: &'static Location<'static>,
    /// How the original run failed.
    target: &'a Ending,
    /// The most runs to make.
    budget: u64,
    /// Runs made.
    runs: u64,
    /// A candidate was refused for want of runs.
    ran_out: bool,
    /// The deviation lists run so far (the runs are deterministic: never run one twice).
    tried: BTreeSet<Vec<Deviation>>,
}

/// A run that failed the same way.
struct Found {
    /// Its choices, logged.
    points: Vec<ChoicePoint>,
    /// Its deviations from FIFO, in order.
    deviations: Vec<Deviation>,
    /// How many of them were preemptions.
    preemptions: usize,
    /// Its schedule, which replays it.
    schedule: Schedule,
    /// Its trace, which names its tasks.
    trace: Trace,
    /// It drew from `test::rng`: its replay line needs the seed.
    drew: bool,
}

impl Found {
    /// What shrinking minimises: deviations, then preemptions.
    fn score(&self) -> (usize, usize) {
        (self.deviations.len(), self.preemptions)
    }
}

/// Why a run is not one to shrink.
enum Refused {
    /// It did not fail the same way: it ended so.
    Ended(Ending),
    /// It made this many choices, and not all of them could be logged (`POINTS_KEPT`).
    Unlogged(u64),
}

/// What shrinking found.
struct Shrunk {
    /// The failing run's deviations and preemptions.
    before: (usize, usize),
    /// The best run.
    best: Found,
    /// Runs made.
    runs: u64,
    /// It stopped at its budget.
    ran_out: bool,
    /// The replay line needs the seed: the schedule alone did not replay the failure.
    with_seed: bool,
}

impl<'a, F, Fut> Shrinker<'a, F>
where
    F: Fn() -> Fut,
    Fut: Future,
    Fut::Output: CheckOutcome,
{
    /// A search for runs of `body` that fail as `target`, on runtimes built from `builder`
    /// (reports muted), in at most `budget` runs; `plain` is what a replay line runs with.
    fn new(
        plain: &Builder,
        builder: &Builder,
        body: &'a F,
        location: &'static Location<'static>,
        target: &'a Ending,
        budget: u64,
    ) -> Self {
        Shrinker {
            builder: builder.clone().report_sink(|_| {}),
            plain: plain.clone().report_sink(|_| {}),
            body,
            location,
            target,
            budget,
            runs: 0,
            ran_out: false,
            tried: BTreeSet::new(),
        }
    }

    /// Shrinks the run of `schedule`; `Err` when its replay is not the failure, or too
    /// large to log.
    fn shrink(&mut self, schedule: &Schedule) -> Result<Shrunk, Refused> {
        // 1. The failing run again, logged: its deviations.
        let mut best = self.run(schedule.clone(), Vec::new())?;
        let before = best.score();
        self.tried.insert(best.deviations.clone());
        // 2. FIFO, then 3. delta debugging.
        if let Some(fifo) = self.attempt(Vec::new()) {
            best = fifo;
        }
        self.remove(&mut best);
        // 4. Moves, while they help.
        while best.preemptions > 0 && self.relocate(&mut best) {
            self.remove(&mut best);
        }
        // 5. The replay line: the schedule alone, if that replays the failure.
        let with_seed = best.drew || !self.replays_alone(&best.schedule);
        Ok(Shrunk {
            before,
            best,
            runs: self.runs,
            ran_out: self.ran_out,
            with_seed,
        })
    }

    /// Whether `schedule`, replayed as `TREELOOP_SCHEDULE` alone would (no seed), fails the
    /// same way: the run kept for this (`false` without it).
    fn replays_alone(&mut self, schedule: &Schedule) -> bool {
        if self.runs >= self.budget {
            return false;
        }
        self.runs += 1;
        let replay = self.plain.clone().replay(schedule.clone());
        let (_, failed) = quietly(|| run_once(&replay, self.body, self.location));
        Ending::of(failed.as_ref()) == *self.target
    }

    /// Step 3: delta debugging over `best`'s deviations, then, when few are left, every
    /// smaller subset of them.
    fn remove(&mut self, best: &mut Found) {
        loop {
            self.ddmin(best);
            if !self.subsets(best) {
                return;
            }
        }
    }

    /// Delta debugging: `best` ends 1-minimal, or where the runs ran out.
    fn ddmin(&mut self, best: &mut Found) {
        let mut chunks = 2;
        while !best.deviations.is_empty() && !self.ran_out {
            let len = best.deviations.len();
            let chunks_now = chunks.min(len);
            let size = len.div_ceil(chunks_now);
            let parts: Vec<_> = (0..len)
                .step_by(size)
                .map(|start| start..(start + size).min(len))
                .collect();
            // A run that fails the same way has fewer deviations than `best`: the ones
            // that came up are among those given.
            // 1. A chunk alone.
            let alone = parts
                .iter()
                .find_map(|part| self.attempt(best.deviations[part.clone()].to_vec()));
            if let Some(found) = alone {
                *best = found;
                chunks = 2;
                continue;
            }
            // 2. All but a chunk.
            let without = parts.iter().find_map(|part| {
                let mut rest = best.deviations.clone();
                rest.drain(part.clone());
                self.attempt(rest)
            });
            match without {
                // Back to halves (where `ddmin` proper goes to `n - 1`): a smaller set may
                // split well where the larger did not, for a few more runs.
                Some(found) => {
                    *best = found;
                    chunks = 2;
                }
                // 3. Finer chunks, down to single deviations.
                None if chunks_now >= len => return,
                None => chunks = (chunks_now * 2).min(len),
            }
        }
    }

    /// After `ddmin`, with at most [`SMALL`] deviations left: the subsets it did not try
    /// (2 to `len - 2` of them), smallest first; whether one failed the same way (it is then
    /// `best`). A 1-minimal set can hold a smaller one that fails: two deviations the bug
    /// needs, beside two that only stand in for a third.
    fn subsets(&mut self, best: &mut Found) -> bool {
        let len = best.deviations.len();
        if !(4..=SMALL).contains(&len) {
            return false;
        }
        for size in 2..=len - 2 {
            for mask in 0u32..1 << len {
                if mask.count_ones() as usize != size {
                    continue;
                }
                let subset = (0..len)
                    .filter(|&i| mask & 1 << i != 0)
                    .map(|i| best.deviations[i])
                    .collect();
                if let Some(found) = self.attempt(subset) {
                    *best = found;
                    return true;
                }
                if self.ran_out {
                    return false;
                }
            }
        }
        false
    }

    /// Step 4: the first move of a deviation of `best` that makes a better run; whether
    /// one did.
    fn relocate(&mut self, best: &mut Found) -> bool {
        for index in 0..best.deviations.len() {
            for moved in moves(&best.points, best.deviations[index]) {
                let mut candidate = best.deviations.clone();
                candidate[index] = moved;
                match self.attempt(candidate) {
                    Some(found) if found.score() < best.score() => {
                        *best = found;
                        return true;
                    }
                    _ if self.ran_out => return false,
                    _ => {}
                }
            }
        }
        false
    }

    /// Runs FIFO with `deviations`, unless tried before or out of runs: the run if it
    /// failed the same way.
    fn attempt(&mut self, deviations: Vec<Deviation>) -> Option<Found> {
        if self.tried.contains(&deviations) {
            return None;
        }
        // The last run is step 5's.
        if self.runs + 1 >= self.budget {
            self.ran_out = true;
            return None;
        }
        let found = self.run(Schedule::default(), deviations.clone()).ok();
        self.tried.insert(deviations);
        if let Some(found) = &found {
            self.tried.insert(found.deviations.clone());
        }
        found
    }

    /// One run, `schedule` then FIFO but for `deviations`: the run if it failed the same
    /// way and every choice was logged.
    fn run(&mut self, schedule: Schedule, deviations: Vec<Deviation>) -> Result<Found, Refused> {
        self.runs += 1;
        let builder = self.builder.clone().shrink_replay(schedule, deviations);
        let (runtime, failed) = quietly(|| run_once(&builder, self.body, self.location));
        let ending = Ending::of(failed.as_ref());
        if ending != *self.target {
            return Err(Refused::Ended(ending));
        }
        let points = runtime.choice_points();
        let schedule = runtime.schedule();
        let choices = schedule.len() as u64 + schedule.cut();
        if points.len() as u64 != choices {
            return Err(Refused::Unlogged(choices));
        }
        Ok(Found {
            deviations: deviations_of(&points),
            preemptions: points.iter().filter(|p| p.preempts(p.chosen)).count(),
            points,
            schedule,
            trace: runtime.trace(),
            drew: runtime.drew_from_rng(),
        })
    }
}

/// The deviations of a run logged under a FIFO fallback: the choices that were not the
/// front, each named by the job taken, its poll, and the front.
fn deviations_of(points: &[ChoicePoint]) -> Vec<Deviation> {
    points
        .iter()
        .filter_map(|point| {
            let over = *point.ready.first()?;
            let index = point.ready.iter().position(|&job| job == point.chosen)?;
            (index > 0).then(|| Deviation {
                taken: point.chosen,
                poll: point.polls.get(index).copied().unwrap_or(0),
                over,
            })
        })
        .collect()
}

/// Where `deviation` could move within the run of `points`: the same job and poll, taken
/// over another front. First the fronts of the choices earlier in its wait at which taking
/// it was no preemption (latest first: the least change), then the other jobs ready where
/// it was taken (it waits for one of them to be first in line). At most
/// [`MOVES_PER_DEVIATION`].
fn moves(points: &[ChoicePoint], deviation: Deviation) -> Vec<Deviation> {
    let waiting = |point: &ChoicePoint| {
        point
            .ready
            .iter()
            .zip(&point.polls)
            .any(|(&job, &poll)| job == deviation.taken && poll == deviation.poll)
    };
    let Some(at) = points.iter().position(|point| {
        waiting(point) && point.chosen == deviation.taken && point.ready[0] == deviation.over
    }) else {
        return Vec::new();
    };
    let earlier = points[..at]
        .iter()
        .rev()
        .take_while(|point| waiting(point))
        .filter(|point| !point.preempts(deviation.taken))
        .map(|point| point.ready[0]);
    let later = points[at].ready.iter().copied();
    let mut moves: Vec<Deviation> = Vec::new();
    for over in earlier.chain(later) {
        let moved = Deviation { over, ..deviation };
        if over != deviation.taken && over != deviation.over && !moves.contains(&moved) {
            moves.push(moved);
        }
    }
    moves.truncate(MOVES_PER_DEVIATION);
    moves
}

thread_local! {
    /// A candidate runs on this thread: its panics are not printed.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Runs `run` with this thread's panics unprinted (a shrinking candidate fails, by design,
/// hundreds of times). The hook is installed once per process and hands every panic of
/// other threads, or of this one outside a candidate, to the hook it replaced.
fn quietly<T>(run: impl FnOnce() -> T) -> T {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info);
            }
        }));
    });
    /// Turns quiet off again, on return or unwind.
    struct Loud;
    impl Drop for Loud {
        fn drop(&mut self) {
            QUIET.with(|quiet| quiet.set(false));
        }
    }
    QUIET.with(|quiet| quiet.set(true));
    let _loud = Loud;
    run()
}
