//! PCT (`Strategy::Pct`) on small ports of classic concurrency bugs: how many of N seeds find
//! each bug under Random and under PCT at depths 1, 2 and 3, with the step horizon learned
//! from earlier runs, both by `test::check_with` and by a hand-driven loop over
//! `Builder::seed(s).pct_horizon(k)`; a spin loop on `yield_now` ends under every seed; and
//! (ignored, run by hand) what a pick costs with 1,000 and 10,000 ready tasks.
//!
//! The seeds are deterministic, so every count is exact: the asserts are the measured
//! counts as lower bounds, a little below them. Each test prints its row of the table:
//! `cargo test --test pct -- --nocapture`.

#[path = "common/bugs.rs"]
mod bugs;

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Instant;

use treeloop::{Builder, Strategy, spawn, yield_now};

// (a) lost update and (c) lock-order deadlock, and the check of one run, are shared with
// tests/bug_benchmark.rs.
use bugs::{Bug, TORN, found, lock_order, lost_update, quiet_deadlocks};

/// Seeds per strategy for the three bugs.
const SEEDS: u64 = 200;

/// The strategies of the table, in its column order.
const STRATEGIES: [(&str, Strategy); 4] = [
    ("Random", Strategy::Random),
    ("PCT d=1", Strategy::Pct { depth: 1 }),
    ("PCT d=2", Strategy::Pct { depth: 2 }),
    ("PCT d=3", Strategy::Pct { depth: 3 }),
];

/// (b) Reorder (SCTBench `reorder_3`): two setters each set `a = 1`, yield, set `b = -1`; a
/// checker reads `a`, yields, reads `b`, and expects a pair some setter could have left
/// whole: `(0, 0)` or `(1, -1)`. The bug: the checker reads between a setter's two halves.
async fn reorder() -> bool {
    let a = Rc::new(Cell::new(0));
    let b = Rc::new(Cell::new(0));
    let setters: Vec<_> = (0..2)
        .map(|_| {
            let (a, b) = (a.clone(), b.clone());
            spawn(async move {
                a.set(1);
                yield_now().await.unwrap();
                b.set(-1);
            })
        })
        .collect();
    let checker = spawn(async move {
        let seen_a = a.get();
        yield_now().await.unwrap();
        let seen_b = b.get();
        !matches!((seen_a, seen_b), (0, 0) | (1, -1))
    });
    for setter in setters {
        setter.await.unwrap();
    }
    checker.await.unwrap()
}

/// The bound on the spin loop of (d): far beyond what any fair order needs.
const SPIN_BOUND: u32 = 100_000;

/// (d) Yield spin loop: a task spins on `yield_now` until another task sets a flag. The
/// bug: the spinner starves the setter, and gives up after `SPIN_BOUND` yields.
async fn spin_loop() -> bool {
    let flag = Rc::new(Cell::new(false));
    let spinner = {
        let flag = flag.clone();
        spawn(async move {
            let mut spins = 0;
            while !flag.get() && spins < SPIN_BOUND {
                yield_now().await.unwrap();
                spins += 1;
            }
            flag.get()
        })
    };
    let setter = spawn(async move {
        yield_now().await.unwrap();
        flag.set(true);
    });
    setter.await.unwrap();
    !spinner.await.unwrap()
}

/// How many of `seeds` seeds find `bug`, driving `Builder::seed(s)` by hand and learning
/// the horizon as `check_with` does: each seed runs with the most steps an earlier seed took.
fn count_by_hand(strategy: Strategy, seeds: u64, bug: fn() -> Bug) -> u64 {
    let mut horizon: Option<u64> = None;
    let mut hits = 0;
    for seed in 0..seeds {
        let mut builder = Builder::new().seed(seed).strategy(strategy);
        if let Some(steps) = horizon {
            builder = builder.pct_horizon(steps);
        }
        let runtime = builder.build().expect("runtime");
        hits += u64::from(found(&runtime, bug));
        let steps = runtime.scheduling_steps();
        horizon = Some(horizon.map_or(steps, |known| known.max(steps)).max(1));
    }
    hits
}

/// The same count through `treeloop::test::check_with` (the body records instead of
/// failing, so every seed runs).
fn count_with_check(strategy: Strategy, seeds: u64, bug: fn() -> Bug) -> u64 {
    let hits = Cell::new(0);
    treeloop::test::check_with(Builder::new().strategy(strategy), seeds, || async {
        if bug().await {
            hits.set(hits.get() + 1);
        }
    });
    hits.get()
}

/// How many of `seeds` seeds find `bug` with the horizon fixed at `horizon` steps.
fn count_fixed(strategy: Strategy, seeds: u64, horizon: u64, bug: fn() -> Bug) -> u64 {
    (0..seeds)
        .map(|seed| {
            let builder = Builder::new().seed(seed).strategy(strategy);
            let runtime = builder.pct_horizon(horizon).build().expect("runtime");
            u64::from(found(&runtime, bug))
        })
        .sum()
}

/// Counts `bug` under every strategy of the table, prints the row, and returns the counts.
fn row(name: &str, seeds: u64, bug: fn() -> Bug) -> [u64; 4] {
    let counts = STRATEGIES.map(|(_, strategy)| count_by_hand(strategy, seeds, bug));
    let cells: Vec<String> = STRATEGIES
        .iter()
        .zip(counts)
        .map(|((label, _), hits)| format!("{label}: {hits}/{seeds}"))
        .collect();
    eprintln!("| {name} | {} |", cells.join(" | "));
    counts
}

#[test]
fn pct_finds_a_two_task_lost_update() {
    let counts = row("(a) lost update", SEEDS, || Box::pin(lost_update()));
    // Measured: 105, 0, 48, 99 (Random: 105 before and after its O(1) pick). Depth 1 never preempts a task between its read and its
    // write (a yield keeps its priority), and this is a depth-2 bug.
    let [random, d1, d2, d3] = counts;
    assert!(
        random >= 90 && d1 == 0 && d2 >= 40 && d3 >= 85,
        "{counts:?}"
    );
}

#[test]
fn pct_finds_a_checker_reading_between_a_setters_two_writes() {
    let counts = row("(b) 2 setters / 1 checker", SEEDS, || Box::pin(reorder()));
    // Measured: 64, 0, 16, 36 (Random found 56 while its pick shifted the deque; its O(1)
    // swap changed the sequences, not the bound).
    let [random, d1, d2, d3] = counts;
    assert!(
        random >= 45 && d1 == 0 && d2 >= 12 && d3 >= 30,
        "{counts:?}"
    );
}

#[test]
fn pct_finds_a_lock_order_deadlock() {
    let counts = row("(c) lock-order deadlock", SEEDS, || Box::pin(lock_order()));
    // Measured: 105, 0, 37, 73 (Random: 105 before and after its O(1) pick).
    let [random, d1, d2, d3] = counts;
    assert!(
        random >= 90 && d1 == 0 && d2 >= 30 && d3 >= 60,
        "{counts:?}"
    );
}

#[test]
fn a_yield_spin_loop_ends_under_every_seed_and_depth() {
    // "Found" is the starvation: the spinner gave up without seeing the flag.
    let starved = row("(d) yield spin loop (starved)", 1_000, || {
        Box::pin(spin_loop())
    });
    assert_eq!(starved, [0; 4]);
}

#[test]
fn check_with_learns_the_horizon_as_a_hand_driven_loop_does() {
    let bugs: [fn() -> Bug; 2] = [|| Box::pin(lost_update()), || Box::pin(reorder())];
    for depth in [2, 3] {
        let strategy = Strategy::Pct { depth };
        for bug in bugs {
            assert_eq!(
                count_with_check(strategy, SEEDS, bug),
                count_by_hand(strategy, SEEDS, bug),
                "depth {depth}"
            );
        }
    }
}

#[test]
fn a_learned_horizon_finds_what_a_fixed_long_one_misses() {
    // The old fixed horizon of 10,000 steps put the change point past the end of a run of
    // a few steps nearly always.
    let strategy = Strategy::Pct { depth: 2 };
    let bug = || -> Bug { Box::pin(lost_update()) };
    let fixed = count_fixed(strategy, SEEDS, 10_000, bug);
    let learned = count_by_hand(strategy, SEEDS, bug);
    eprintln!(
        "lost update, PCT d=2: fixed 10,000-step horizon {fixed}/{SEEDS}, learned {learned}/{SEEDS}"
    );
    assert!(
        fixed <= 2 && learned >= 40,
        "fixed {fixed}, learned {learned}"
    );
}

#[test]
fn a_failing_seed_replays_with_the_horizon_it_learned() {
    // check_with stops at the first seed that finds the bug; the same seed with the horizon
    // learned from the seeds before it (what the replay line prints) finds it again.
    let strategy = Strategy::Pct { depth: 3 };
    let runs = Cell::new(0u64);
    let first_torn = Cell::new(None);
    quiet_deadlocks();
    let failed = panic::catch_unwind(AssertUnwindSafe(|| {
        treeloop::test::check_with(Builder::new().strategy(strategy), SEEDS, || async {
            let run = runs.get();
            runs.set(run + 1);
            let torn = reorder().await;
            if torn && first_torn.get().is_none() {
                first_torn.set(Some(run));
            }
            assert!(!torn, "{TORN}");
        })
    }));
    assert!(failed.is_err(), "no seed found the bug");
    // Each seed before the failing one ran once (check then runs the failing seed again, to
    // see that it replays): the failing run's index is its seed.
    let seed = first_torn.get().expect("a torn run");
    let mut horizon = None;
    for earlier in 0..seed {
        let mut builder = Builder::new().seed(earlier).strategy(strategy);
        if let Some(steps) = horizon {
            builder = builder.pct_horizon(steps);
        }
        let runtime = builder.build().expect("runtime");
        assert!(!found(&runtime, || Box::pin(reorder())), "seed {earlier}");
        let steps = runtime.scheduling_steps();
        horizon = Some(horizon.map_or(steps, |known: u64| known.max(steps)).max(1));
    }
    let mut replay = Builder::new().seed(seed).strategy(strategy);
    if let Some(steps) = horizon {
        replay = replay.pct_horizon(steps);
    }
    let replay = replay.build().expect("runtime");
    assert!(
        found(&replay, || Box::pin(reorder())),
        "seed {seed} did not replay"
    );
}

#[test]
fn a_pct_run_is_the_same_for_the_same_seed_and_options() {
    let trace = |horizon: Option<u64>| {
        let mut builder = Builder::new().seed(7).strategy(Strategy::Pct { depth: 3 });
        if let Some(steps) = horizon {
            builder = builder.pct_horizon(steps);
        }
        let runtime = builder.build().expect("runtime");
        runtime.block_on(async {
            reorder().await;
            lost_update().await;
        });
        (runtime.trace(), runtime.scheduling_steps())
    };
    // No horizon given: the default, the same every time.
    assert_eq!(trace(None), trace(None));
    assert_eq!(trace(Some(9)), trace(Some(9)));
    let (events, steps) = trace(Some(9));
    assert!(
        steps > 0 && steps < events.events.len() as u64,
        "{steps} steps"
    );
}

#[test]
fn scheduling_steps_count_only_the_picks_with_a_choice() {
    let steps = |strategy| {
        let runtime = Builder::new()
            .seed(1)
            .strategy(strategy)
            .build()
            .expect("runtime");
        runtime.block_on(async {
            // Alone: no choice to make.
            for _ in 0..10 {
                yield_now().await.unwrap();
            }
        });
        runtime.scheduling_steps()
    };
    assert_eq!(steps(Strategy::Random), 0);
    assert_eq!(steps(Strategy::Pct { depth: 2 }), 0);
    let runtime = Builder::new()
        .seed(1)
        .strategy(Strategy::Random)
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let other = spawn(async {});
        yield_now().await.unwrap();
        other.await.unwrap();
    });
    assert!(runtime.scheduling_steps() >= 1);
}

/// Per-poll time of `tasks` tasks that each yield `yields` times, under `builder`: the best
/// of five runs, in nanoseconds (spawning and joining included, so few yields weigh the
/// spawn's cost and many weigh the pick's).
fn ns_per_poll(builder: &Builder, tasks: usize, yields: usize) -> f64 {
    (0..5)
        .map(|_| {
            let runtime = builder.build().expect("runtime");
            let start = Instant::now();
            runtime.block_on(async {
                let handles: Vec<_> = (0..tasks)
                    .map(|_| {
                        spawn(async move {
                            for _ in 0..yields {
                                yield_now().await.unwrap();
                            }
                        })
                    })
                    .collect();
                for handle in handles {
                    handle.await.unwrap();
                }
            });
            start.elapsed().as_nanos() as f64 / (tasks * (yields + 1)) as f64
        })
        .fold(f64::INFINITY, f64::min)
}

#[test]
#[ignore = "timing, run by hand: cargo test --release --test pct -- --ignored --nocapture"]
fn what_a_pick_costs_with_many_ready_tasks() {
    for yields in [4, 100] {
        for tasks in [1_000, 10_000] {
            let normal = ns_per_poll(&Builder::new(), tasks, yields);
            let seeded = |strategy| Builder::new().seed(1).strategy(strategy);
            let fifo = ns_per_poll(&seeded(Strategy::Fifo), tasks, yields);
            let random = ns_per_poll(&seeded(Strategy::Random), tasks, yields);
            let pct = ns_per_poll(&seeded(Strategy::Pct { depth: 3 }), tasks, yields);
            eprintln!(
                "{tasks:>6} ready tasks yielding {yields:>3}x: normal {normal:.0} ns/poll, \
                 seeded FIFO {fifo:.0} ({:.2}x), Random {random:.0} ({:.2}x), \
                 PCT d=3 {pct:.0} ({:.2}x)",
                fifo / normal,
                random / normal,
                pct / normal,
            );
        }
    }
}
