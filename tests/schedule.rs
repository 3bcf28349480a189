//! Schedules (`Runtime::schedule`, `Builder::replay`, `TREELOOP_SCHEDULE`) and exhaustive
//! exploration (`test::explore`): a failing seed's schedule replays the failure without the
//! seed, and after changes that keep the tasks; a schedule naming a task that is not ready
//! falls back to FIFO and counts the divergence; the string round-trips and stays short;
//! `check` and `explore` replay `TREELOOP_SCHEDULE` (child processes); explore runs exactly
//! the schedules counted by hand, finds a lost update, and stops at its budget.

#[path = "common/child.rs"]
mod child;

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use treeloop::test::{Choice, Explore, Schedule, explore, explore_with};
use treeloop::{Builder, Runtime, Strategy, spawn, yield_now};

/// Two tasks read a shared counter, yield, and write it back plus one; `true` if an update
/// was lost. `work` iterations of synchronous work run between each read and its yield
/// (the "unrelated change": it orders nothing).
async fn lost_update(work: u64) -> bool {
    let counter = Rc::new(Cell::new(0));
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let counter = counter.clone();
            spawn(async move {
                let read = counter.get();
                let mut sum = 0u64;
                for i in 0..work {
                    sum = sum.wrapping_add(std::hint::black_box(i * i));
                }
                std::hint::black_box(sum);
                yield_now().await.unwrap();
                counter.set(read + 1);
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    counter.get() != 2
}

/// `n` tasks that each yield `yields` times; the root spawns them and returns without
/// waiting (the runtime still waits for them), so after its first poll the root is never
/// ready again and every choice is among the tasks.
async fn yielders(n: usize, yields: usize) {
    for _ in 0..n {
        spawn(async move {
            for _ in 0..yields {
                yield_now().await.unwrap();
            }
        });
    }
}

/// Runs `body` on `runtime`, returning its output.
fn run<T>(runtime: &Runtime, body: impl Future<Output = T>) -> T {
    runtime.block_on(body)
}

/// The first seed (under Random) whose run loses an update, with its runtime.
fn failing_seed() -> (u64, Runtime) {
    (0..100)
        .find_map(|seed| {
            let runtime = Builder::new().seed(seed).build().expect("runtime");
            run(&runtime, lost_update(0)).then_some((seed, runtime))
        })
        .expect("a seed that loses an update")
}

#[test]
fn a_failing_seeds_schedule_replays_the_failure_without_its_seed() {
    let (seed, failed) = failing_seed();
    let schedule = failed.schedule();
    assert!(!schedule.is_empty());
    let replay = Builder::new()
        .seed(seed + 1_000)
        .replay(schedule.clone())
        .build()
        .expect("runtime");
    assert!(
        run(&replay, lost_update(0)),
        "the replay did not lose an update"
    );
    assert_eq!(replay.trace().hash, failed.trace().hash);
    assert_eq!(replay.replay_divergences(), 0);
    // The replay recorded the same choices again.
    assert_eq!(replay.schedule(), schedule);
}

#[test]
fn a_schedule_replays_after_changes_that_keep_the_tasks() {
    let (_, failed) = failing_seed();
    let schedule = failed.schedule();
    // 1. Synchronous work between the read and the yield: the same polls, the same trace.
    let changed = Builder::new()
        .replay(schedule.clone())
        .build()
        .expect("runtime");
    assert!(run(&changed, lost_update(10_000)));
    assert_eq!(changed.replay_divergences(), 0);
    assert_eq!(changed.trace().hash, failed.trace().hash);
    // 2. The root yields twice before spawning: picks without a choice, which Random draws
    //    numbers for (so the seed now means another run), but the schedule skips.
    let body = || async {
        yield_now().await.unwrap();
        yield_now().await.unwrap();
        lost_update(0).await
    };
    let moved = Builder::new().replay(schedule).build().expect("runtime");
    assert!(run(&moved, body()));
    assert_eq!(moved.replay_divergences(), 0);
}

#[test]
fn a_schedule_naming_a_task_that_is_not_ready_falls_back_to_fifo_and_counts_it() {
    let fifo = Builder::new()
        .seed(0)
        .strategy(Strategy::Fifo)
        .build()
        .expect("runtime");
    run(&fifo, yielders(3, 2));
    // Task 999 never exists: both of its choices fall back to the front of the queue, and
    // so does every choice after the schedule runs out. The run is the FIFO run.
    let nowhere: Schedule = [Choice::Task(999), Choice::Task(999)].into_iter().collect();
    let replay = Builder::new().replay(nowhere).build().expect("runtime");
    run(&replay, yielders(3, 2));
    assert_eq!(replay.trace().hash, fifo.trace().hash);
    let choices = replay.scheduling_steps();
    assert!(choices >= 2, "{choices} choices");
    assert_eq!(replay.replay_divergences(), choices);
    // One bad choice in the middle of a faithful schedule: counted once, the rest followed
    // as far as the run still matches.
    let random = Builder::new().seed(5).build().expect("runtime");
    run(&random, yielders(3, 2));
    let mut choices: Vec<Choice> = random.schedule().choices().collect();
    let last = choices.len() - 1;
    choices[last] = Choice::Task(999);
    let replay = Builder::new()
        .replay(choices.into_iter().collect())
        .build()
        .expect("runtime");
    run(&replay, yielders(3, 2));
    assert_eq!(replay.replay_divergences(), 1);
}

#[test]
fn a_schedule_string_round_trips() {
    let runtime = Builder::new().seed(11).build().expect("runtime");
    run(&runtime, async {
        lost_update(0).await;
        yielders(4, 3).await;
    });
    let schedule = runtime.schedule();
    let text = schedule.to_string();
    assert!(text.starts_with("1."), "{text}");
    assert!(!text.contains(char::is_whitespace), "{text}");
    let parsed: Schedule = text.parse().expect("a schedule");
    assert_eq!(parsed, schedule);
    assert_eq!(
        parsed.choices().collect::<Vec<_>>(),
        schedule.choices().collect::<Vec<_>>()
    );
    let by_hand: Schedule = [Choice::Root, Choice::Task(3), Choice::Task(3), Choice::Root]
        .into_iter()
        .collect();
    assert_eq!(by_hand.to_string().parse::<Schedule>(), Ok(by_hand));
    assert!("1.2.5.*".parse::<Schedule>().is_err());
    assert!("a seed".parse::<Schedule>().is_err());
}

#[test]
fn a_thousand_choice_run_of_three_tasks_is_a_short_string() {
    let length = |strategy| {
        let runtime = Builder::new()
            .seed(1)
            .strategy(strategy)
            .build()
            .expect("runtime");
        run(&runtime, yielders(3, 333));
        let schedule = runtime.schedule();
        (schedule.len(), schedule.to_string().len())
    };
    let (choices, random) = length(Strategy::Random);
    let (_, pct) = length(Strategy::Pct { depth: 3 });
    eprintln!("{choices} choices among 3 tasks: Random {random} characters, PCT d=3 {pct}");
    assert!(choices >= 990, "{choices} choices");
    // Measured: 367 (Random: about 2.7 bits a choice, 2 for the index among 3 tasks and
    // the runs' counts) and 54 (PCT runs a task on through its yields, switching at its
    // spin rule's 64th yield in a row: a few dozen runs).
    assert!(random <= 400, "{random}");
    assert!(pct <= 80, "{pct}");
}

/// Reruns this test binary on one test, with `env` set; the test's pass/fail, and its
/// stderr (the reports) followed by its stdout (where libtest puts a failed test's panic).
fn run_this_test(name: &str, env: &[(&str, &str)]) -> (bool, String) {
    let run = child::rerun(name, CHILD, false, env);
    (run.passed, format!("{}{}", run.stderr, run.stdout))
}

/// The schedule of the `TREELOOP_SCHEDULE=... cargo test` line in `stderr`.
fn printed_schedule(stderr: &str) -> String {
    let after = stderr
        .split("TREELOOP_SCHEDULE=")
        .nth(1)
        .unwrap_or_else(|| panic!("no schedule line in:\n{stderr}"));
    after[..after.find(' ').expect("a space after the schedule")].to_owned()
}

/// Whether this is the child run of a test below.
fn in_child() -> bool {
    child::is_child(CHILD)
}

/// The variable that marks a child run of this file's tests.
const CHILD: &str = "TREELOOP_SCHEDULE_CHILD";

/// A depth-1 bug: B must run after A. FIFO never finds it (A is woken first).
async fn order_bug() {
    let done = Rc::new(Cell::new(false));
    let a = {
        let done = done.clone();
        spawn(async move { done.set(true) })
    };
    let b = spawn(async move { assert!(done.get(), "B ran before A") });
    a.await.unwrap();
    b.await.unwrap();
}

/// Child only: `check` finds the order bug.
#[test]
fn child_check_finds_an_order_bug() {
    if in_child() {
        treeloop::test::check(64, order_bug);
    }
}

/// Child only: `explore` finds the lost update.
#[test]
fn child_explore_finds_a_lost_update() {
    if in_child() {
        explore(|| async { assert!(!lost_update(0).await, "an update was lost") });
    }
}

#[test]
fn treeloop_schedule_replays_a_check_failure_in_one_run() {
    let test = "child_check_finds_an_order_bug";
    let (passed, stderr) = run_this_test(test, &[]);
    assert!(!passed, "check did not find the bug:\n{stderr}");
    assert!(stderr.contains("failed with seed"), "{stderr}");
    let schedule = printed_schedule(&stderr);
    let line = format!("TREELOOP_SCHEDULE={schedule} cargo test {test} -- --exact");
    assert!(stderr.contains(&line), "no {line:?} in:\n{stderr}");
    // The schedule alone fails it again, in one run, without any seed.
    let (passed, stderr) = run_this_test(test, &[("TREELOOP_SCHEDULE", &schedule)]);
    assert!(!passed, "the replay passed:\n{stderr}");
    assert!(stderr.contains("B ran before A"), "{stderr}");
    assert!(
        stderr.contains("failed replaying TREELOOP_SCHEDULE"),
        "{stderr}"
    );
    assert!(!stderr.contains("failed with seed"), "{stderr}");
    // The empty schedule is the FIFO run, which passes: the variable is what ran.
    let (passed, stderr) = run_this_test(test, &[("TREELOOP_SCHEDULE", "1..0.")]);
    assert!(passed, "{stderr}");
}

#[test]
fn explore_finds_a_two_task_lost_update_and_prints_its_schedule() {
    let test = "child_explore_finds_a_lost_update";
    let (passed, stderr) = run_this_test(test, &[]);
    assert!(!passed, "explore did not find the lost update:\n{stderr}");
    assert!(stderr.contains("an update was lost"), "{stderr}");
    // The bug needs one preemption (of the first task between its read and its write).
    // Depth first, the last choices vary first: schedules 1 to 3 differ only in when the
    // root and the second task run after the first task finished, and pass.
    assert!(
        stderr.contains("treeloop::test::explore: failed on schedule 4 (preemptions: 1)"),
        "{stderr}"
    );
    let schedule = printed_schedule(&stderr);
    // The printed schedule replays it here, and through explore in a child.
    let replay = Builder::new()
        .replay(schedule.parse().expect("a schedule"))
        .build()
        .expect("runtime");
    assert!(run(&replay, lost_update(0)));
    assert_eq!(replay.replay_divergences(), 0);
    let (passed, stderr) = run_this_test(test, &[("TREELOOP_SCHEDULE", &schedule)]);
    assert!(!passed && stderr.contains("an update was lost"), "{stderr}");
    assert!(stderr.contains("explore: failed replaying"), "{stderr}");
}

/// The schedules explore runs for `body` with at most `bound` preemptions, all of them.
fn schedules(bound: u32, body: impl Fn() -> std::pin::Pin<Box<dyn Future<Output = ()>>>) -> u64 {
    let report = explore_with(Explore::new().preemption_bound(bound), body);
    assert!(report.exhausted, "{report}");
    report.schedules
}

#[test]
fn explore_runs_every_schedule_of_two_tasks_yielding_once() {
    // Each task is polled twice (A1 yields, A2 completes), and only the tasks are ever
    // ready after the root's first poll: the schedules are the orders of A1 A2 B1 B2 with
    // A1 before A2 and B1 before B2, C(4, 2) = 6. A preemption is a switch away from a
    // task right after its first poll (it is ready again): AABB and BBAA have none, ABBA
    // and BAAB one, ABAB and BABA two. So 2, 4 and 6 with bounds 0, 1 and 2.
    let body = || -> std::pin::Pin<Box<dyn Future<Output = ()>>> { Box::pin(yielders(2, 1)) };
    assert_eq!(schedules(0, body), 2);
    assert_eq!(schedules(1, body), 4);
    assert_eq!(schedules(2, body), 6);
    assert_eq!(explore(body).schedules, 6);
}

#[test]
fn explore_runs_every_schedule_of_two_tasks_awaited_by_the_root() {
    // As above, and the root awaits A then B: A's completion wakes it, so it is ready
    // from A2 until it runs, and if it runs before B2 it waits for B and runs again after
    // B2. Per order of the tasks' polls, the places for the root's poll after A2:
    // A1 A2 B1 B2: 3 (before B1, between, after B2), A1 B1 A2 B2: 2, A1 B1 B2 A2: 1,
    // B1 A1 A2 B2: 2, B1 A1 B2 A2: 1, B1 B2 A1 A2: 1; 10 in all. Their preemptions (a
    // switch away from a task after its first poll): 0, 1 (B1 then the root), 0; 2, 2;
    // 1; 1, 1; 2; 0. So 3 with none, 7 with at most one, 10 with at most two.
    let body = || -> std::pin::Pin<Box<dyn Future<Output = ()>>> {
        Box::pin(async {
            let a = spawn(async { yield_now().await.unwrap() });
            let b = spawn(async { yield_now().await.unwrap() });
            a.await.unwrap();
            b.await.unwrap();
        })
    };
    assert_eq!(schedules(0, body), 3);
    assert_eq!(schedules(1, body), 7);
    assert_eq!(schedules(2, body), 10);
}

#[test]
fn explore_runs_every_schedule_of_three_tasks_yielding_once() {
    // The orders of A1 A2 B1 B2 C1 C2 with each task's polls in order: 6! / 2^3 = 90. A
    // task whose two polls are adjacent ("glued") costs no preemption, any other costs
    // one, so preemptions = 3 - glued tasks. Gluing a set S of tasks makes each a single
    // item: (6 - |S|)! / 2^(3 - |S|) orders, 90, 30, 12 and 6 for |S| = 0..3. By
    // inclusion-exclusion, none glued: 90 - 3*30 + 3*12 - 6 = 30 orders (3 preemptions);
    // all glued: 3! = 6 (none). At most two preemptions: 90 - 30 = 60; at most one: the 6
    // with all glued plus those with exactly two glued, 3*12 - 3*6 = 18, so 24.
    let body = || -> std::pin::Pin<Box<dyn Future<Output = ()>>> { Box::pin(yielders(3, 1)) };
    assert_eq!(schedules(0, body), 6);
    assert_eq!(schedules(1, body), 24);
    assert_eq!(explore(body).schedules, 60);
    assert_eq!(schedules(3, body), 90);
}

#[test]
fn explore_stops_at_its_budget_and_says_it_did_not_exhaust() {
    let report = explore_with(Explore::new().max_schedules(50), || yielders(4, 10));
    assert_eq!(report.schedules, 50);
    assert!(!report.exhausted);
    let text = report.to_string();
    assert!(text.contains("stopped before exhausting"), "{text}");
    // The default budget: 10,000 schedules.
    let report = explore(|| yielders(4, 10));
    assert_eq!(report.schedules, treeloop::test::DEFAULT_MAX_SCHEDULES);
    assert!(!report.exhausted, "{report}");
}

#[test]
fn explore_passes_a_correct_body_and_returns_what_it_ran() {
    let runs = Cell::new(0);
    let report = explore(|| async {
        runs.set(runs.get() + 1);
        let counter = Rc::new(Cell::new(0));
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                let counter = counter.clone();
                spawn(async move {
                    yield_now().await.unwrap();
                    counter.set(counter.get() + 1);
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(counter.get(), 2);
    });
    assert!(report.exhausted, "{report}");
    assert_eq!(report.schedules, runs.get());
    assert!(report.to_string().starts_with("explored all"), "{report}");
    // A body that is not deterministic given its schedule is refused, not explored.
    let flip = Cell::new(0u32);
    let refused = panic::catch_unwind(AssertUnwindSafe(|| {
        explore(|| {
            flip.set(flip.get() + 1);
            let tasks = if flip.get() == 1 { 2 } else { 3 };
            yielders(tasks, 1)
        })
    }));
    let payload = refused.expect_err("a changing body was explored");
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .unwrap_or("");
    assert!(message.contains("did not follow"), "{message}");
}
