//! Non-determinism detection and the seeded RNG: `test::check_determinism`
//! catches a body that spawns tasks in `HashMap` order, named (by their identities) and
//! unnamed (by their polls), and passes the same body over a `BTreeMap` with one trace in 50
//! runs; `test::check` fails at its first seed on a passing body that is not deterministic,
//! and warns before the replay line of a failing one (child process); `test::rng` draws the
//! same numbers for the same seed in every run and in spawned tasks, different ones for
//! other seeds and other calls, from entropy when unseeded, never changes the trace, and a
//! failing randomised body's `TREELOOP_SEED` line draws the same numbers again (child
//! process).

#[path = "common/child.rs"]
mod child;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::panic::{self, AssertUnwindSafe, Location};
use std::rc::Rc;

use treeloop::test::{self, Determinism, check_determinism};
use treeloop::{Builder, JoinHandle, Strategy, spawn, yield_now};

/// The keys the bodies below spawn a task for: 16, so two `HashMap`s (each with its own
/// random hash keys) almost never iterate them in the same order.
const KEYS: [&str; 16] = [
    "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p",
];

thread_local! {
    /// Where `spawn_task` last spawned: the site every task of a body below has.
    static SITE: Cell<Option<&'static Location<'static>>> = const { Cell::new(None) };
}

/// Spawns a task (named `name`, if given) that yields `yields` times, and notes its spawn
/// site: the caller's, as for `task::Builder::spawn` itself.
#[track_caller]
fn spawn_task(name: Option<&str>, yields: u32) -> JoinHandle<()> {
    SITE.set(Some(Location::caller()));
    let builder = treeloop::task::Builder::new();
    match name {
        Some(name) => builder.name(name).spawn(yield_times(yields)),
        None => builder.spawn(yield_times(yields)),
    }
}

/// Yields `n` times.
async fn yield_times(n: u32) {
    for _ in 0..n {
        yield_now().await.unwrap();
    }
}

/// A task per key, named after it, spawned in the map's iteration order, all doing the same
/// work: only the names tell the runs apart.
async fn named_in_map_order<M: IntoIterator<Item = (&'static str, u32)>>(map: M) {
    let tasks: Vec<_> = map
        .into_iter()
        .map(|(key, yields)| spawn_task(Some(key), yields))
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

fn hash_map() -> HashMap<&'static str, u32> {
    KEYS.iter().map(|&key| (key, 1)).collect()
}

fn btree_map() -> BTreeMap<&'static str, u32> {
    KEYS.iter().map(|&key| (key, 1)).collect()
}

/// The message of a panic payload.
fn message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(text) => *text,
        Err(payload) => payload
            .downcast_ref::<&str>()
            .map(|text| (*text).to_owned())
            .unwrap_or_default(),
    }
}

/// The text between `before` and the next `after` in `text`.
fn between<'a>(text: &'a str, before: &str, after: &str) -> &'a str {
    let start = text
        .find(before)
        .unwrap_or_else(|| panic!("no {before:?} in:\n{text}"))
        + before.len();
    let end = text[start..]
        .find(after)
        .unwrap_or_else(|| panic!("no {after:?} after {before:?} in:\n{text}"));
    &text[start..start + end]
}

const CAUSES: &str = "The usual causes are HashMap or HashSet iteration order (use BTreeMap or \
     BTreeSet, or sort), real time (std::time::Instant, SystemTime: use treeloop::time), \
     threads, global state carried between runs (statics, thread-locals, files), and std \
     randomness (RandomState, rand::thread_rng) instead of treeloop::test::rng()";

#[test]
fn spawning_in_hash_map_order_is_caught_with_the_identities_of_the_first_differing_task() {
    let failed = panic::catch_unwind(|| check_determinism(50, || named_in_map_order(hash_map())));
    let text = message(failed.expect_err("50 runs in HashMap order agreed"));
    let site = SITE.get().expect("a task was spawned");
    // The counts: many traces (one per order seen), one ending (every run passed).
    let head = "treeloop::test::check_determinism: 50 runs of seed 0: ";
    assert!(text.starts_with(head), "{text}");
    let traces: usize = between(&text, head, " distinct traces").parse().unwrap();
    assert!((2..=50).contains(&traces), "{text}");
    // The first run that differs, at the first task it spawned differently: every task is
    // spawned during the root's first poll (step 1), so the first differing spawn has the
    // first task number whose key differs.
    let run: u64 = between(&text, "1 distinct ending; run ", " diverged")
        .parse()
        .unwrap();
    let ours = between(&text, "run 1 spawned task #", " at ");
    let number = &ours[..ours.find(' ').unwrap()];
    let key_1 = between(ours, "\"", "\"");
    let key_n = between(&text, &format!("run {run} spawned task #{number} \""), "\"");
    assert_ne!(key_1, key_n);
    assert!(KEYS.contains(&key_1) && KEYS.contains(&key_n), "{text}");
    assert_eq!(
        text,
        format!(
            "{head}{traces} distinct traces, 1 distinct ending; run {run} diverged from run 1 \
             at step 1 (both polled the block_on future): run 1 spawned task #{number} \
             \"{key_1}\" at {site} (parent #0), run {run} spawned task #{number} \"{key_n}\" \
             at {site} (parent #0) (differs: name)\n\
             The body is not deterministic given its seed. {CAUSES}."
        )
    );
}

#[test]
fn the_same_body_over_a_btree_map_gives_one_trace_in_fifty_runs() {
    let report = check_determinism(50, || named_in_map_order(btree_map()));
    let runtime = Builder::new()
        .seed(0)
        .strategy(Strategy::Random)
        .build()
        .unwrap();
    runtime.block_on(named_in_map_order(btree_map()));
    let trace = runtime.trace();
    // 16 tasks of one yield each, and the root: polls of every task twice, the root's at
    // least twice (it awaits them in turn).
    assert!(trace.recorded > 33, "{}", trace.recorded);
    assert_eq!(
        (
            report.seed,
            report.runs,
            report.distinct_traces,
            report.trace_hash,
            report.steps
        ),
        (0, 50, 1, trace.hash, trace.recorded)
    );
}

#[test]
fn unnamed_tasks_from_one_site_that_differ_only_in_their_work_are_caught_by_their_polls() {
    // Same spawn site, no names, same parent: the tasks' identities are equal in every run,
    // but task #i yields as often as the i-th key of the map says.
    let body = || async {
        let work: HashMap<u32, u32> = (1..=16).map(|key| (key, key)).collect();
        let tasks: Vec<_> = work
            .into_values()
            .map(|yields| spawn_task(None, yields))
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    };
    let failed = panic::catch_unwind(|| check_determinism(50, body));
    let text = message(failed.expect_err("50 runs in HashMap order agreed"));
    let divergence = between(&text, "1 distinct ending; ", "\nThe body");
    // A step (not a spawn) differs: the two runs polled different tasks there, each named by
    // its identity (number, site, parent), equal but for the number.
    let run: u64 = between(divergence, "run ", " diverged").parse().unwrap();
    let step: u64 = between(divergence, "at step ", ":").parse().unwrap();
    assert!(step > 1, "{text}");
    let ours: u64 = between(divergence, "run 1 polled task #", " ")
        .parse()
        .unwrap();
    let theirs: u64 = between(divergence, &format!("run {run} polled task #"), " ")
        .parse()
        .unwrap();
    assert_ne!(ours, theirs);
    let site = SITE.get().expect("a task was spawned");
    assert_eq!(
        divergence,
        format!(
            "run {run} diverged from run 1 at step {step}: run 1 polled task #{ours} spawned at \
             {site} (parent #0), run {run} polled task #{theirs} spawned at {site} (parent #0)"
        )
    );
}

#[test]
fn runs_that_trace_alike_but_end_differently_are_reported_as_such() {
    // The trace is the same every run; what the body returns is a HashMap's first key.
    let failed = panic::catch_unwind(|| {
        check_determinism(50, || async {
            let first = *hash_map().keys().next().unwrap();
            yield_now().await.unwrap();
            Err::<(), _>(first)
        })
    });
    let text = message(failed.expect_err("every run agreed"));
    let head = "treeloop::test::check_determinism: 50 runs of seed 0: 1 distinct trace, ";
    assert!(text.starts_with(head), "{text}");
    let endings: usize = between(&text, head, " distinct endings").parse().unwrap();
    assert!((2..=16).contains(&endings), "{text}");
    let run = between(&text, "; run ", " made the same");
    let key_1 = between(&text, "run 1 returned Err(\"", "\")");
    let key_n = between(&text, &format!("run {run} returned Err(\""), "\")");
    assert_ne!(key_1, key_n);
    assert_eq!(
        text,
        format!(
            "{head}{endings} distinct endings; run {run} made the same scheduling decisions \
             as run 1 and ended differently: run 1 returned Err(\"{key_1}\"), run {run} \
             returned Err(\"{key_n}\")\nThe body is not deterministic given its seed. {CAUSES}."
        )
    );
}

#[test]
fn a_deterministic_failure_is_raised_once_every_run_agrees() {
    let runs = Cell::new(0);
    let failed = panic::catch_unwind(AssertUnwindSafe(|| {
        check_determinism(5, || async {
            runs.set(runs.get() + 1);
            yield_now().await.unwrap();
            Err::<(), _>("always")
        })
    }));
    assert_eq!(
        message(failed.unwrap_err()),
        "test body failed with seed 0, the same way in all 5 runs: \"always\""
    );
    assert_eq!(runs.get(), 5);
}

#[test]
fn check_determinism_with_takes_the_builders_seed_and_strategy() {
    let body = || named_in_map_order(btree_map());
    let builder = Builder::new().seed(9).strategy(Strategy::Pct { depth: 2 });
    let report: Determinism = test::check_determinism_with(builder, 3, body);
    let runtime = Builder::new()
        .seed(9)
        .strategy(Strategy::Pct { depth: 2 })
        .build()
        .unwrap();
    runtime.block_on(body());
    assert_eq!(
        (report.seed, report.distinct_traces, report.trace_hash),
        (9, 1, runtime.trace().hash)
    );
}

#[test]
fn check_determinism_refuses_fewer_than_two_runs() {
    let failed = panic::catch_unwind(|| check_determinism(1, || async {}));
    assert_eq!(
        message(failed.unwrap_err()),
        "treeloop::test::check_determinism needs at least 2 runs to compare, got 1"
    );
}

#[test]
fn check_runs_a_passing_body_once_per_seed_even_if_it_is_not_deterministic() {
    // No run is added to a passing seed (counting bodies rely on one run per seed): a body
    // that passes is checked for determinism by `check_determinism`, not by `check`.
    let runs = Cell::new(0);
    test::check(10, || {
        runs.set(runs.get() + 1);
        named_in_map_order(hash_map())
    });
    assert_eq!(runs.get(), 10);
}

/// Reruns this test binary on one test, with `env` set; its pass/fail, and its stderr (the
/// reports) followed by its stdout (where libtest puts a failed test's panic).
fn run_this_test(name: &str, env: &[(&str, &str)]) -> (bool, String) {
    // These tests count a failing body's runs: shrinking's would add to them.
    let env: Vec<_> = [("TREELOOP_SHRINK_RUNS", "0")]
        .into_iter()
        .chain(env.iter().copied())
        .collect();
    let run = child::rerun(name, CHILD, true, &env);
    (run.passed, format!("{}{}", run.stderr, run.stdout))
}

/// Whether this is the child run of a test below.
fn in_child() -> bool {
    child::is_child(CHILD)
}

/// The variable that marks a child run of this file's tests.
const CHILD: &str = "TREELOOP_NONDETERMINISM_CHILD";

/// Child: a body that spawns in `HashMap` order and always fails.
#[test]
fn child_check_fails_a_non_deterministic_body() {
    if !in_child() {
        return;
    }
    test::check(5, || async {
        named_in_map_order(hash_map()).await;
        Err::<(), _>("the body failed")
    });
}

#[test]
fn a_failing_body_that_is_not_deterministic_is_reported_before_its_replay_line() {
    let (passed, output) = run_this_test("child_check_fails_a_non_deterministic_body", &[]);
    assert!(!passed, "{output}");
    let warning = "treeloop::test::check: seed 0 failed, and run again it did not do the same: \
                   the rerun diverged from the failing run at step 1 (both polled the block_on \
                   future): the failing run spawned task #";
    let at = output
        .find(warning)
        .unwrap_or_else(|| panic!("no warning in:\n{output}"));
    let rest = &output[at..];
    assert!(
        rest.contains(&format!(
            "(differs: name)\nThe replay line below may not reproduce the failure: the body \
             is not deterministic given its seed. {CAUSES}.\n"
        )),
        "{output}"
    );
    let replay = output
        .find("treeloop::test::check: failed with seed 0; replay it with:")
        .unwrap_or_else(|| panic!("no replay line in:\n{output}"));
    assert!(at < replay, "{output}");
}

/// Child: a body that fails on its fourth run only (seed 3), by counting its runs: state
/// carried between runs. Each run prints its number.
#[test]
fn child_check_fails_a_seed_that_then_passes() {
    if !in_child() {
        return;
    }
    let runs = Cell::new(0);
    test::check(10, || {
        runs.set(runs.get() + 1);
        let run = runs.get();
        async move {
            eprintln!("run {run}");
            yield_now().await.unwrap();
            if run == 4 {
                Err(format!("run {run}"))
            } else {
                Ok(())
            }
        }
    });
}

#[test]
fn a_failure_that_does_not_fail_again_is_reported_before_its_replay_line() {
    let (passed, output) = run_this_test("child_check_fails_a_seed_that_then_passes", &[]);
    assert!(!passed, "{output}");
    // Seeds 0 to 3 once each, then seed 3 again; no more.
    let runs: Vec<&str> = output
        .lines()
        .filter(|line| line.starts_with("run "))
        .collect();
    assert_eq!(
        runs,
        ["run 1", "run 2", "run 3", "run 4", "run 5"],
        "{output}"
    );
    let warning = format!(
        "treeloop::test::check: seed 3 failed, and run again it did not do the same: the rerun \
         made the same scheduling decisions as the failing run and ended differently: the \
         failing run returned Err(\"run 4\"), the rerun passed\nThe replay line below may not \
         reproduce the failure: the body is not deterministic given its seed. {CAUSES}.\n\
         treeloop::test::check: failed with seed 3; replay it with:\n"
    );
    assert!(output.contains(&warning), "{output}");
}

/// Child: a body that draws from `test::rng` and fails for one draw in eight; each run
/// prints its draws.
#[test]
fn child_check_fails_a_randomised_body() {
    if !in_child() {
        return;
    }
    test::check(200, || async {
        let mut rng = test::rng();
        let draws: Vec<u8> = (0..4).map(|_| rng.u8(..)).collect();
        // The draws steer the tasks too.
        let tasks: Vec<_> = draws
            .iter()
            .map(|&draw| spawn(yield_times(u32::from(draw % 4))))
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        eprintln!("draws {draws:?}");
        assert!(draws[0] >= 32, "drew {}", draws[0]);
    });
}

/// The seed in "failed with seed S;", and the draws printed last before that line.
fn failing_draws(output: &str) -> (String, String) {
    let report = output
        .find("treeloop::test::check: failed with seed ")
        .unwrap_or_else(|| panic!("no replay line in:\n{output}"));
    let seed = between(&output[report..], "failed with seed ", ";").to_owned();
    let draws = output[..report]
        .lines()
        .rfind(|line| line.starts_with("draws "))
        .unwrap_or_else(|| panic!("no draws in:\n{output}"))
        .to_owned();
    (seed, draws)
}

#[test]
fn a_failing_randomised_body_replays_its_draws_with_its_seed() {
    let (passed, first) = run_this_test("child_check_fails_a_randomised_body", &[]);
    assert!(!passed, "{first}");
    let (seed, draws) = failing_draws(&first);
    // Deterministic: no warning that the failure might not replay.
    assert!(!first.contains("did not do the same"), "{first}");
    // A body that draws nothing gets a schedule line without the seed.
    assert!(
        !first.contains("TREELOOP_SEED=0 TREELOOP_SCHEDULE"),
        "{first}"
    );
    let (passed, replay) = run_this_test(
        "child_check_fails_a_randomised_body",
        &[("TREELOOP_SEED", &seed)],
    );
    assert!(!passed, "{replay}");
    assert_eq!(failing_draws(&replay), (seed.clone(), draws.clone()));
    // The replay ran only that seed (twice: the failing run and its rerun), drawing the
    // same numbers each time.
    let lines: Vec<&str> = replay
        .lines()
        .filter(|line| line.starts_with("draws "))
        .collect();
    assert_eq!(lines, [draws.as_str(), draws.as_str()], "{replay}");
    // The schedule line carries the seed too (the draws come from it), and replays the
    // same draws in one run.
    let schedule = between(
        &first,
        &format!("    TREELOOP_SEED={seed} TREELOOP_SCHEDULE="),
        " cargo test child_check_fails_a_randomised_body -- --exact",
    );
    let (passed, replay) = run_this_test(
        "child_check_fails_a_randomised_body",
        &[("TREELOOP_SEED", &seed), ("TREELOOP_SCHEDULE", schedule)],
    );
    assert!(!passed, "{replay}");
    assert!(
        replay.contains("treeloop::test::check: failed replaying TREELOOP_SCHEDULE; replay it"),
        "{replay}"
    );
    let lines: Vec<&str> = replay
        .lines()
        .filter(|line| line.starts_with("draws "))
        .collect();
    assert_eq!(lines, [draws.as_str()], "{replay}");
}

/// What a body drew: its own generator's three numbers, then each of three tasks'.
async fn draws_of_a_body_and_its_tasks() -> Vec<[u64; 3]> {
    let draw = |rng: &mut test::Rng| [rng.u64(..), rng.u64(..), rng.u64(..)];
    let mut rng = test::rng();
    let mut drawn = vec![draw(&mut rng)];
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            spawn(async move {
                let mut rng = test::rng();
                yield_now().await.unwrap();
                draw(&mut rng)
            })
        })
        .collect();
    for task in tasks {
        drawn.push(task.await.unwrap());
    }
    drawn
}

fn seeded_draws(seed: u64) -> Vec<[u64; 3]> {
    let runtime = Builder::new().seed(seed).build().unwrap();
    runtime.block_on(draws_of_a_body_and_its_tasks())
}

#[test]
fn the_same_seed_draws_the_same_numbers_in_every_run_and_in_spawned_tasks() {
    let first = seeded_draws(5);
    for _ in 0..5 {
        assert_eq!(seeded_draws(5), first);
    }
    // Four calls, four different streams.
    let mut streams = first.clone();
    streams.sort();
    streams.dedup();
    assert_eq!(streams.len(), 4, "{first:?}");
}

#[test]
fn different_seeds_draw_different_numbers() {
    let mut firsts: Vec<[u64; 3]> = (0..20).map(|seed| seeded_draws(seed)[0]).collect();
    firsts.sort();
    firsts.dedup();
    assert_eq!(firsts.len(), 20);
}

#[test]
fn an_unseeded_runtime_draws_from_entropy() {
    let draws = || treeloop::block_on(draws_of_a_body_and_its_tasks());
    let (a, b) = (draws(), draws());
    assert_ne!(a, b);
    assert_eq!((a.len(), b.len()), (4, 4));
}

#[test]
fn drawing_does_not_change_the_trace() {
    let trace = |draw: bool| {
        let runtime = Builder::new().seed(3).build().unwrap();
        runtime.block_on(async move {
            let tasks: Vec<_> = (0..4)
                .map(|_| {
                    spawn(async move {
                        if draw {
                            std::hint::black_box(test::rng().u64(..));
                        }
                        yield_now().await.unwrap();
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
        runtime.trace()
    };
    assert_eq!(trace(true), trace(false));
}

#[test]
fn a_randomised_body_is_deterministic_given_its_seed() {
    // The draws steer the tasks, so each seed has its own trace, the same in every run.
    let body = || async {
        let mut rng = test::rng();
        let tasks: Vec<_> = (0..4).map(|_| spawn(yield_times(rng.u32(0..4)))).collect();
        for task in tasks {
            task.await.unwrap();
        }
    };
    let hashes: Vec<u64> = (0..10)
        .map(|seed| {
            let builder = Builder::new().seed(seed);
            let report = test::check_determinism_with(builder, 10, body);
            assert_eq!(report.distinct_traces, 1);
            report.trace_hash
        })
        .collect();
    let mut distinct = hashes.clone();
    distinct.sort();
    distinct.dedup();
    assert!(distinct.len() > 1, "{hashes:?}");
}

#[test]
fn a_runtime_hands_out_new_streams_across_block_on_calls() {
    // The count is the runtime's, not the block_on's.
    let runtime = Builder::new().seed(1).build().unwrap();
    let draw = || runtime.block_on(async { test::rng().u64(..) });
    let (a, b) = (draw(), draw());
    assert_ne!(a, b);
    let again = Builder::new().seed(1).build().unwrap();
    assert_eq!(again.block_on(async { test::rng().u64(..) }), a);
}

#[test]
fn rng_outside_a_runtime_panics_naming_the_fix() {
    let failed = panic::catch_unwind(test::rng);
    assert_eq!(
        message(failed.unwrap_err()),
        "treeloop::test::rng called outside a treeloop runtime: call it inside the test body \
         (`treeloop::test::check`, `Runtime::block_on`) or a task spawned from it, where it \
         draws from the runtime's seed; outside one, use `treeloop::test::Rng::with_seed`"
    );
    // Also after a runtime ran on this thread.
    treeloop::block_on(async {});
    assert!(panic::catch_unwind(test::rng).is_err());
}

#[test]
fn a_body_keeps_its_draws_in_a_shared_log_deterministically() {
    // Tasks that call `rng()` as they start, racing: the streams follow the scheduler's
    // order, which the seed fixes, so the log is the same in every run of a seed.
    let log = |seed| {
        let log = Rc::new(RefCell::new(Vec::new()));
        let runtime = Builder::new().seed(seed).build().unwrap();
        let inner = log.clone();
        runtime.block_on(async move {
            for task in 0..4 {
                let log = inner.clone();
                spawn(async move {
                    yield_now().await.unwrap();
                    let draw = test::rng().u8(..);
                    log.borrow_mut().push((task, draw));
                });
            }
        });
        log.take()
    };
    assert_eq!(log(2), log(2));
    assert_eq!(log(2).len(), 4);
}
