//! Non-determinism detection: run one seed more than once and compare the runs.
//!
//! A seed replays a failure only if the body is deterministic given its seed. This module
//! checks that: [`check_determinism`] runs a seed many times, and `test::check` runs a
//! failing seed once more (through `warn_unless_failure_replays`).
//!
//! # Ground rules
//!
//! - Two runs *agree* when their [`Trace`]s are the same run (same hash and length: every
//!   poll and park in order, and every task's spawn site, name and parent) and they end the
//!   same way (both pass, or both fail with the same message). Anything else the body does
//!   (what it prints, the values it computes but does not act on) is not compared.
//! - Every run is a fresh runtime built from the same builder and seed; the first run is
//!   the reference, and the first later run that disagrees with it is the one reported,
//!   with [`Trace::first_divergence`] naming the step and the tasks.
//! - Nothing here changes a run: the traces compared are the ones every seeded run records.

use std::collections::BTreeSet;
use std::future::Future;
use std::panic::Location;

use treeloop_executor::{Strategy, Trace};

use crate::run::{CheckOutcome, Ending, Failed, run_once};
use crate::runtime::{Builder, seed_from_env};

/// What the usual sources of non-determinism are, and what to use instead.
const CAUSES: &str = "The usual causes are HashMap or HashSet iteration order (use BTreeMap or \
     BTreeSet, or sort), real time (std::time::Instant, SystemTime: use treeloop::time), \
     threads, global state carried between runs (statics, thread-locals, files), and std \
     randomness (RandomState, rand::thread_rng) instead of treeloop::test::rng()";

/// What [`check_determinism`] found when every run agreed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Determinism {
    /// The seed every run ran with.
    pub seed: u64,
    /// How many runs there were.
    pub runs: u64,
    /// How many different traces they had (by hash): 1, since they agreed.
    pub distinct_traces: usize,
    /// Their trace's hash ([`Trace::hash`]).
    pub trace_hash: u64,
    /// Their trace's length in scheduling decisions ([`Trace::recorded`]).
    pub steps: u64,
}

/// Runs `body` `runs` times under one seed and fails, naming the first step where two runs
/// part, unless every run makes the same scheduling decisions on the same tasks and ends
/// the same way.
///
/// The seed is `TREELOOP_SEED` if set, else 0; the strategy `Random`, as in
/// [`check`](crate::test::check). A body that is deterministic given its seed gives one
/// trace however often it runs, which is what makes a failing seed's replay line replay.
/// One that is not (a `HashMap` iterated to spawn tasks, real time, a thread, state kept
/// from an earlier run, `std` randomness instead of [`rng`](crate::test::rng)) fails with
/// the counts and the first divergence, such as:
///
/// ```text
/// treeloop::test::check_determinism: 50 runs of seed 0: 50 distinct traces, 1 distinct
/// ending; run 2 diverged from run 1 at step 1 (both polled the block_on future): run 1
/// spawned task #1 "m" at tests/nondeterminism.rs:55:30 (parent #0), run 2 spawned task #1
/// "b" at tests/nondeterminism.rs:55:30 (parent #0) (differs: name)
/// The body is not deterministic given its seed. The usual causes are HashMap or HashSet ...
/// ```
///
/// Compared: the trace (every poll and park, by task number, and each task's spawn site,
/// name and parent) and how each run ended (passed, returned `Err`, or panicked, with the
/// message). Not compared: anything else the body computes or prints. When every run agrees
/// but they all fail, the failure is raised as [`check`](crate::test::check) would.
///
/// ```
/// use std::collections::BTreeMap;
///
/// let report = treeloop::test::check_determinism(20, || async {
///     let work = BTreeMap::from([("a", 1), ("b", 2), ("c", 3)]);
///     let tasks: Vec<_> = work
///         .into_iter()
///         .map(|(key, yields)| {
///             treeloop::task::Builder::new().name(key).spawn(async move {
///                 for _ in 0..yields {
///                     treeloop::yield_now().await.unwrap();
///                 }
///             })
///         })
///         .collect();
///     for task in tasks {
///         task.await.unwrap();
///     }
/// });
/// assert_eq!((report.runs, report.distinct_traces), (20, 1));
/// ```
///
/// # Panics
///
/// When two runs disagree; when they all fail (with that failure); when `runs` is less
/// than 2; when a runtime cannot be built.
#[track_caller]
pub fn check_determinism<F, Fut>(runs: u64, body: F) -> Determinism
where
    F: Fn() -> Fut,
    Fut: Future,
    Fut::Output: CheckOutcome,
{
    check_determinism_with(Builder::new().strategy(Strategy::Random), runs, body)
}

/// Like [`check_determinism`], with the options of `builder`: its strategy, and its seed if
/// it has one (else `TREELOOP_SEED`, else 0).
///
/// ```
/// use treeloop::{Builder, Strategy};
///
/// let builder = Builder::new().seed(7).strategy(Strategy::Pct { depth: 2 });
/// let report = treeloop::test::check_determinism_with(builder, 10, || async {
///     let a = treeloop::spawn(async { treeloop::yield_now().await.unwrap() });
///     a.await.unwrap();
/// });
/// assert_eq!((report.seed, report.distinct_traces), (7, 1));
/// ```
///
/// # Panics
///
/// As [`check_determinism`].
#[track_caller]
pub fn check_determinism_with<F, Fut>(builder: Builder, runs: u64, body: F) -> Determinism
where
    F: Fn() -> Fut,
    Fut: Future,
    Fut::Output: CheckOutcome,
{
    assert!(
        runs >= 2,
        "treeloop::test::check_determinism needs at least 2 runs to compare, got {runs}"
    );
    let location = Location::caller();
    let seed = builder.seed_given().or_else(seed_from_env).unwrap_or(0);
    let builder = builder.seed(seed);
    let first = Run::new(&builder, &body, location);
    let mut traces = BTreeSet::from([(first.trace.hash, first.trace.recorded)]);
    let mut endings = vec![first.ending.clone()];
    let mut divergence = None;
    for n in 2..=runs {
        let run = Run::new(&builder, &body, location);
        traces.insert((run.trace.hash, run.trace.recorded));
        if !endings.contains(&run.ending) {
            endings.push(run.ending.clone());
        }
        if divergence.is_none() {
            divergence = first.disagreement(&run, "run 1", &format!("run {n}"));
        }
    }
    if let Some(divergence) = divergence {
        panic!(
            "treeloop::test::check_determinism: {runs} runs of seed {seed}: {}, {}; \
             {divergence}\nThe body is not deterministic given its seed. {CAUSES}.",
            counted(traces.len(), "trace"),
            counted(endings.len(), "ending"),
        );
    }
    if let Some(failed) = first.failed {
        failed.raise(&format!(
            "with seed {seed}, the same way in all {runs} runs"
        ));
    }
    Determinism {
        seed,
        runs,
        distinct_traces: traces.len(),
        trace_hash: first.trace.hash,
        steps: first.trace.recorded,
    }
}

/// `test::check`'s failure path: seed `seed` failed with `trace`, ending as `ending`; run
/// it again and, if the rerun does not agree, report the divergence and that the replay
/// line may not reproduce the failure (before `check` prints that line).
pub(crate) fn warn_unless_failure_replays<F, Fut>(
    builder: &Builder,
    body: &F,
    location: &'static Location<'static>,
    seed: u64,
    trace: Trace,
    ending: Ending,
) where
    F: Fn() -> Fut,
    Fut: Future,
    Fut::Output: CheckOutcome,
{
    let failing = Run {
        trace,
        ending,
        failed: None,
    };
    let again = Run::new(builder, body, location);
    if let Some(divergence) = failing.disagreement(&again, "the failing run", "the rerun") {
        treeloop_executor::report::report(format_args!(
            "treeloop::test::check: seed {seed} failed, and run again it did not do the same: \
             {divergence}\nThe replay line below may not reproduce the failure: the body is \
             not deterministic given its seed. {CAUSES}."
        ));
    }
}

/// One run of a body: its trace and how it ended.
struct Run {
    /// The trace it recorded.
    trace: Trace,
    /// How it ended.
    ending: Ending,
    /// Its failure, to raise if every run agrees on it.
    failed: Option<Failed>,
}

impl Run {
    /// Runs `body` once on a runtime built from `builder`.
    fn new<F, Fut>(builder: &Builder, body: &F, location: &'static Location<'static>) -> Run
    where
        F: Fn() -> Fut,
        Fut: Future,
        Fut::Output: CheckOutcome,
    {
        let (runtime, failed) = run_once(builder, body, location);
        let ending = Ending::of(failed.as_ref());
        Run {
            trace: runtime.trace(),
            ending,
            failed,
        }
    }

    /// How `other` departs from this run, with the runs called `ours` and `theirs`; `None`
    /// when they agree.
    fn disagreement(&self, other: &Run, ours: &str, theirs: &str) -> Option<String> {
        if let Some(divergence) = self.trace.first_divergence(&other.trace) {
            return Some(divergence.describe(ours, theirs));
        }
        (self.ending != other.ending).then(|| {
            format!(
                "{theirs} made the same scheduling decisions as {ours} and ended differently: \
                 {ours} {}, {theirs} {}",
                self.ending, other.ending
            )
        })
    }
}

/// "1 distinct trace", "21 distinct traces".
fn counted(n: usize, what: &str) -> String {
    let s = if n == 1 { "" } else { "s" };
    format!("{n} distinct {what}{s}")
}
