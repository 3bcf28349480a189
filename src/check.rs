//! `test::check`: run a test body under many seeds and replay the first failure.
//!
//! Each seed is a different, reproducible interleaving: a fresh runtime built with
//! `Builder::seed(s)` and the `Random` strategy (or the builder you pass). The user-facing
//! rules and an example are on [`check`] itself, since this module is private and only its
//! items are re-exported (as `treeloop::test`).
//!
//! The top of the test harness: a failing seed is run again (`determinism.rs`), a
//! `TREELOOP_SCHEDULE` replayed (`explore.rs`) and the failure shrunk (`shrink.rs`), each
//! standing on `run.rs` for what a run is and how it ended.

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};

use treeloop_executor::Strategy;

use crate::determinism;
use crate::run::{CheckOutcome, Ending, Failed, replay_line, test_name};
use crate::runtime::{Builder, seed_from_env};

/// Runs `body` under `seeds` seeds (0, 1, 2, …) with the `Random` strategy, and replays the
/// first failure.
///
/// Each seed is a different, reproducible interleaving: a fresh runtime built with
/// [`Builder::seed`](crate::Builder::seed) runs `body()` to completion. On the first failure
/// (a panic, or an `Err`) the seed and the command that replays it are printed, and the test
/// fails with the original panic. `TREELOOP_SEED=s` runs only seed `s`; `TREELOOP_SEEDS=n`
/// changes how many seeds are tried.
///
/// The failure's [schedule](crate::Runtime::schedule) is printed too, as
/// `TREELOOP_SCHEDULE=<schedule> cargo test <name> -- --exact`: set, it makes `check` run
/// that one schedule (instead of any seed) with [`Builder::replay`](crate::Builder::replay),
/// which names tasks by number and so replays across changes that keep the tasks. When the
/// failing run drew from [`test::rng`](crate::test::rng), that line carries
/// `TREELOOP_SEED` as well, since the numbers drawn come from the seed.
///
/// A failing seed is run once more before its replay line is printed. If the rerun does not
/// agree with the failing run (other scheduling decisions, other tasks, or another ending),
/// the body is not deterministic given its seed: `check` first prints where the two runs
/// part (see [`Trace::first_divergence`](crate::Trace::first_divergence)) and warns that
/// the replay line may not reproduce the failure. A passing seed runs once, so a body that
/// counts its runs sees one per seed; [`check_determinism`](crate::test::check_determinism)
/// checks a passing body.
///
/// Then the failure is *shrunk*: `check` looks for the run closest to FIFO order that fails
/// the same way (the same panic message, or an `Err` with the same `Debug` text; a deadlock
/// is its panic), in at most [`DEFAULT_SHRINK_RUNS`](crate::test::DEFAULT_SHRINK_RUNS)
/// more runs of the body (`TREELOOP_SHRINK_RUNS=n` sets the budget, `0` turns shrinking
/// off), and prints how far it got and each *deviation* from FIFO the failure still needs,
/// the tasks named by their [`task::Builder::name`](crate::task::Builder::name) and spawn
/// site, then the shrunk run's replay line:
///
/// ```text
/// treeloop::test::check: shrunk from 39 deviations to 1 in 14 runs (preemptions: 18 to 0).
/// FIFO order fails the same way with this deviation from it (a task run while another was first in line):
///     task "conn 2" (tests/shrink.rs:64:16) ran before task "reader" (tests/shrink.rs:55:18) at its 3rd poll
/// replay the shrunk run with:
///     TREELOOP_SCHEDULE=1.1,2,3,4,5,6.59.BTBTBTBTBTBTBTBTBTBTBTlluWWWWU cargo test stale_read -- --exact
/// ```
///
/// An unnamed task shows as `task #4 (file:line:column)`, the body itself as `the test
/// body`; a bug that FIFO order itself hits shrinks to no deviation, and says so.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
///
/// treeloop::test::check(20, || async {
///     let hits = Rc::new(Cell::new(0));
///     let tasks: Vec<_> = (0..3)
///         .map(|_| {
///             let hits = hits.clone();
///             treeloop::spawn(async move {
///                 treeloop::yield_now().await.unwrap();
///                 hits.set(hits.get() + 1);
///             })
///         })
///         .collect();
///     for task in tasks {
///         task.await.unwrap();
///     }
///     assert_eq!(hits.get(), 3);
/// });
/// ```
///
/// **[`shutdown`](crate::shutdown) in a body stops the whole test, not just a server.** The
/// body is the root of its seed's runtime, so `treeloop::shutdown()`, called by the code
/// under test, cancels the body and every task it spawned, the test's own client tasks
/// included: from then on their await points return `Err(Cancelled)` with reason `Shutdown`,
/// and the body's joins of them a cancelled `JoinError`. Unwrapping one fails the seed; a
/// body that returns `()` anyway passes it, and the next seed runs on a fresh runtime. To
/// test a server's shutdown and keep the clients running, cancel the server's
/// [`JoinHandle`](crate::JoinHandle) (or its scope) instead.
///
/// # Panics
///
/// With the first failure, after printing its seed and the replay command; and when the
/// runtime cannot be built.
#[track_caller]
pub fn check<F, Fut>(seeds: u64, body: F)
where
    F: Fn() -> Fut,
    Fut: Future,
    Fut::Output: CheckOutcome,
{
    check_with(Builder::new().strategy(Strategy::Random), seeds, body);
}

/// Like [`check`], with the strategy and options of `builder` (its seed is replaced by each
/// seed in turn).
///
/// Under [`Strategy::Pct`] without a [`pct_horizon`](Builder::pct_horizon), the horizon is
/// learned: seed 0 runs with the default (100 steps), and every later seed with the most
/// [`scheduling_steps`](crate::Runtime::scheduling_steps) any earlier seed took, so the
/// change points land inside runs of the program's real length. A seed's run therefore
/// depends on the seeds before it; the replay line names the horizon it ran with
/// (`TREELOOP_PCT_HORIZON=k`), which fixes the horizon as `pct_horizon(k)` would.
#[track_caller]
pub fn check_with<F, Fut>(builder: Builder, seeds: u64, body: F)
where
    F: Fn() -> Fut,
    Fut: Future,
    Fut::Output: CheckOutcome,
{
    // The test that called `check`: the root's spawn site in dumps and deadlock reports.
    let location = std::panic::Location::caller();
    // A schedule to replay takes precedence over seeds: it needs none.
    if crate::explore::replay_from_env(&builder, &body, location, "check") {
        return;
    }
    let seeds: Vec<u64> = match seed_from_env() {
        Some(replay) => vec![replay],
        None => (0..seeds_from_env().unwrap_or(seeds)).collect(),
    };
    let learn = builder.learns_pct_horizon();
    // PCT's horizon for the next seed: given for a replay, else the most steps seen so far.
    let mut horizon = horizon_from_env().filter(|_| learn);
    let learn = learn && horizon.is_none();
    for seed in seeds {
        let mut seeded = builder.clone().seed(seed);
        if let Some(steps) = horizon {
            seeded = seeded.pct_horizon(steps);
        }
        let runtime = seeded
            .build()
            .unwrap_or_else(|err| panic!("treeloop::test::check could not build a runtime: {err}"));
        // A simulated network of an earlier seed must not be reported as this one's.
        let _ = treeloop_reactor::sim::take_last_messages();
        let run = panic::catch_unwind(AssertUnwindSafe(|| runtime.block_on_at(body(), location)));
        let ran_with = horizon;
        if learn {
            let steps = runtime.scheduling_steps();
            horizon = Some(horizon.map_or(steps, |known| known.max(steps)).max(1));
        }
        let failure = match run {
            Ok(outcome) => match outcome.into_failure() {
                Ok(()) => continue,
                Err(description) => {
                    // The body dropped its simulated network before returning: report the
                    // network's last messages now (a panicking body's `Net` did as it went).
                    if let Some(messages) = treeloop_reactor::sim::take_last_messages() {
                        treeloop_executor::report::report(format_args!("{messages}"));
                    }
                    Failed::Returned(description)
                }
            },
            Err(payload) => Failed::Panicked(payload),
        };
        // Run the failing seed again: if the rerun does not agree, say so before the replay
        // line, which then may not replay.
        let ending = Ending::of(Some(&failure));
        determinism::warn_unless_failure_replays(
            &seeded,
            &body,
            location,
            seed,
            runtime.trace(),
            ending.clone(),
        );
        report_seed(seed, ran_with, &runtime.schedule(), runtime.drew_from_rng());
        // Then the run closest to FIFO that fails the same way (src/shrink.rs).
        let schedule = runtime.schedule();
        crate::shrink::shrink_failure(&builder, &seeded, &body, location, &schedule, &ending);
        failure.raise(&format!("with seed {seed}"));
    }
}

/// `TREELOOP_SEEDS`, if set to a number.
fn seeds_from_env() -> Option<u64> {
    std::env::var("TREELOOP_SEEDS").ok()?.trim().parse().ok()
}

/// `TREELOOP_PCT_HORIZON`, if set to a number: the learned horizon of the run replayed.
fn horizon_from_env() -> Option<u64> {
    std::env::var("TREELOOP_PCT_HORIZON")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Prints the failing seed and how to replay it (with the PCT horizon it ran with, if
/// learned), and the failing run's schedule, which replays it without the seed (with the
/// seed too if the run `drew` from `test::rng`, whose numbers come from the seed).
fn report_seed(
    seed: u64,
    horizon: Option<u64>,
    schedule: &treeloop_executor::Schedule,
    drew: bool,
) {
    let test = test_name();
    let horizon = horizon
        .map(|steps| format!(" TREELOOP_PCT_HORIZON={steps}"))
        .unwrap_or_default();
    let rng_seed = match drew {
        true => format!("TREELOOP_SEED={seed} "),
        false => String::new(),
    };
    treeloop_executor::report::report(format_args!(
        "treeloop::test::check: failed with seed {seed}; replay it with:\n    \
         TREELOOP_SEED={seed}{horizon} cargo test {test} -- --exact\n\
         or by its schedule, which survives changes that keep the tasks:\n    {rng_seed}{}",
        replay_line(schedule)
    ));
}
