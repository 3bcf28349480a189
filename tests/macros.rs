//! `#[treeloop::main]` and `#[treeloop::test]` as users write them (their compile errors are
//! `macros/tests/ui`):
//!
//! - **Options reach the runtime.** `start_paused` makes an hour of sleep pass at once and
//!   exactly; `report_deadlocks` turns a hang into a panic; `seeds = N` runs the body exactly
//!   N times, in random orders by default, in FIFO order with `strategy = Fifo`.
//! - **A failing seeded body names its seed.** A race that only some interleavings show is
//!   found, the test fails with the body's own panic (`#[should_panic]` kept), and the
//!   replay line goes to stderr; replaying that seed with `TREELOOP_SEED` fails the same
//!   way (checked by running this test binary as a child process).
//! - **Return types and attributes pass through**: `Result` bodies with `?`, an `Err` under
//!   seeds, `#[should_panic]`, `#[ignore]`, a `#[treeloop::main]` fn not named `main`, and
//!   `treeloop::test::check` next to the `test` attribute of the same name.
//! - **`examples/macro_main.rs`** (`#[treeloop::main(shutdown_on_signals = true)]`): SIGINT
//!   and SIGTERM each cancel it; its worker flushes and it exits 0.
//!
//! The seeded bodies count their runs in thread-locals: a body runs on the thread that calls
//! its test fn, so a count is not disturbed by the harness running the same test elsewhere.
//! Nothing waits on the clock: time is virtual, or the wait is for a child's line or exit.

#[path = "common/examples.rs"]
mod examples;

#[path = "common/child.rs"]
mod child;

use std::cell::{Cell, RefCell};
use std::error::Error;
use std::process::Command;
use std::rc::Rc;
use std::time::Duration;

use examples::{Pipe, Running};
use treeloop::time::{Instant, sleep};
use treeloop::{Cancelled, spawn, yield_now};

#[treeloop::test(start_paused = true)]
async fn start_paused_makes_an_hour_pass_at_once_and_exactly() {
    let real = std::time::Instant::now();
    let start = Instant::now();
    sleep(Duration::from_secs(3600)).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(3600));
    assert!(
        real.elapsed() < Duration::from_secs(60),
        "the hour was not virtual"
    );
}

#[treeloop::test(start_paused)]
async fn a_bare_bool_option_means_true() -> Result<(), Cancelled> {
    let start = Instant::now();
    sleep(Duration::from_millis(1500)).await?;
    assert_eq!(start.elapsed(), Duration::from_millis(1500));
    Ok(())
}

#[treeloop::test]
async fn a_result_body_may_use_the_question_mark() -> Result<(), Box<dyn Error>> {
    let child = spawn(async { "42".parse::<u32>() });
    let value = child.await??;
    sleep(Duration::from_millis(1)).await?;
    assert_eq!(value, 42);
    Ok(())
}

#[treeloop::test]
#[should_panic(expected = "boom in the body")]
async fn should_panic_is_kept() {
    yield_now().await.unwrap();
    panic!("boom in the body");
}

#[treeloop::test(start_paused, report_deadlocks)]
#[should_panic(expected = "treeloop deadlock")]
async fn report_deadlocks_turns_a_hang_into_a_panic() {
    let (_sender, mut receiver) = treeloop::sync::oneshot::channel::<()>();
    // Nothing will ever send: without the option this would block forever.
    let _ = receiver.recv().await;
}

thread_local! {
    /// Runs of `counted_seven_times` on this thread.
    static COUNTED_RUNS: Cell<usize> = const { Cell::new(0) };
    /// Per run of `two_tasks_*`: whether task `b` ran its first step before task `a`.
    static B_FIRST: RefCell<Vec<bool>> = const { RefCell::new(Vec::new()) };
}

#[treeloop::test(seeds = 7)]
#[ignore = "its runs are counted by seeds_runs_the_body_once_per_seed, which calls it"]
async fn counted_seven_times() {
    COUNTED_RUNS.set(COUNTED_RUNS.get() + 1);
    yield_now().await.unwrap();
}

#[test]
fn seeds_runs_the_body_once_per_seed() {
    COUNTED_RUNS.set(0);
    counted_seven_times();
    assert_eq!(COUNTED_RUNS.get(), 7);
}

/// Spawns `a` and then `b`, and records whether `b` took its first step first.
async fn two_tasks() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let [a, b] = ['a', 'b'].map(|name| {
        let log = log.clone();
        spawn(async move { log.borrow_mut().push(name) })
    });
    a.await.unwrap();
    b.await.unwrap();
    let b_first = log.borrow()[..] == ['b', 'a'];
    B_FIRST.with_borrow_mut(|runs| runs.push(b_first));
}

#[treeloop::test(seeds = 20)]
#[ignore = "called by seeds_pick_random_orders_unless_told_otherwise"]
async fn two_tasks_random() {
    two_tasks().await;
}

#[treeloop::test(seeds = 20, strategy = Fifo)]
#[ignore = "called by seeds_pick_random_orders_unless_told_otherwise"]
async fn two_tasks_fifo() {
    two_tasks().await;
}

#[treeloop::test(seeds = 20, strategy = Pct(2))]
#[ignore = "called by seeds_pick_random_orders_unless_told_otherwise"]
async fn two_tasks_pct() {
    two_tasks().await;
}

#[test]
fn seeds_pick_random_orders_unless_told_otherwise() {
    let runs = |test: fn()| {
        B_FIRST.with_borrow_mut(Vec::clear);
        test();
        B_FIRST.with_borrow_mut(std::mem::take)
    };
    let random = runs(two_tasks_random);
    assert_eq!(random.len(), 20);
    assert!(
        random.contains(&true) && random.contains(&false),
        "{random:?}"
    );
    assert_eq!(
        runs(two_tasks_fifo),
        vec![false; 20],
        "FIFO runs a first, always"
    );
    assert_eq!(runs(two_tasks_pct).len(), 20);
}

/// A race: the test assumes `a` always starts before `b`, which FIFO order (and so a plain
/// test) never contradicts, and some random orders do.
#[treeloop::test(seeds = 64)]
#[should_panic(expected = "b overtook a")]
async fn a_race_fails_with_the_bodys_own_panic() {
    two_tasks().await;
    let b_first = B_FIRST.with_borrow(|runs| runs.last() == Some(&true));
    assert!(!b_first, "b overtook a");
}

#[treeloop::test(seeds = 3)]
#[should_panic(expected = "test body failed with seed 0: \"refused\"")]
async fn an_err_under_seeds_fails_the_test_naming_the_seed() -> Result<(), String> {
    yield_now().await.map_err(|err| err.to_string())?;
    Err("refused".to_owned())
}

/// Runs one test of this binary as a child process (so its uncaptured stderr can be read),
/// with `env`; returns whether it passed, and its stderr.
fn run_this_test(name: &str, env: &[(&str, &str)]) -> (bool, String) {
    let run = child::rerun(name, "TREELOOP_MACROS_CHILD", false, env);
    (run.passed, run.stderr)
}

/// The seed in "failed with seed S;" of `stderr`.
fn failing_seed(stderr: &str) -> u64 {
    let after = stderr
        .split("treeloop::test::check: failed with seed ")
        .nth(1)
        .unwrap_or_else(|| panic!("no replay line in:\n{stderr}"));
    after[..after.find(';').expect("a `;` after the seed")]
        .parse()
        .expect("a seed")
}

#[test]
fn a_failing_seed_prints_its_replay_line_and_replays() {
    let test = "a_race_fails_with_the_bodys_own_panic";
    let (passed, stderr) = run_this_test(test, &[]);
    assert!(passed, "the race was not found (should_panic):\n{stderr}");
    let seed = failing_seed(&stderr);
    assert!(
        seed > 0 && seed < 64,
        "seed {seed}: seed 0 orders like FIFO here"
    );
    let replay = format!("TREELOOP_SEED={seed} cargo test {test} -- --exact");
    assert!(stderr.contains(&replay), "no {replay:?} in:\n{stderr}");
    let (replayed, stderr) = run_this_test(test, &[("TREELOOP_SEED", &seed.to_string())]);
    assert!(replayed, "the replay did not fail the same way:\n{stderr}");
    assert_eq!(failing_seed(&stderr), seed);
    assert_eq!(stderr.matches("failed with seed").count(), 1);
}

#[test]
fn ignore_is_kept() {
    let exe = std::env::current_exe().expect("this test binary");
    let output = Command::new(exe)
        .args(["--list", "--ignored"])
        .output()
        .expect("list the ignored tests");
    let listed = String::from_utf8_lossy(&output.stdout);
    let mut ignored: Vec<&str> = listed
        .lines()
        .filter_map(|line| line.strip_suffix(": test"))
        .collect();
    ignored.sort_unstable();
    let expected = [
        "counted_seven_times",
        "two_tasks_fifo",
        "two_tasks_pct",
        "two_tasks_random",
    ];
    assert_eq!(ignored, expected);
}

/// `#[treeloop::main]` on a fn not named `main`: a sync fn that runs its own runtime.
#[treeloop::main(start_paused = true, stall_watchdog = "5s", stall_grace = "1m")]
async fn an_hour_on_virtual_time() -> Duration {
    let start = Instant::now();
    sleep(Duration::from_secs(3600)).await.unwrap();
    start.elapsed()
}

#[test]
fn main_builds_its_runtime_from_the_options_and_returns_the_value() {
    assert_eq!(an_hour_on_virtual_time(), Duration::from_secs(3600));
}

/// Every kind of option value at once: a signal list (SIGWINCH: ignored by default, so
/// harmless in a test process), a seed and a strategy, bare and spelled-out bools, durations.
/// The body awaits nothing that a shutdown could cut short.
#[treeloop::main(
    shutdown_signals = [SIGWINCH],
    seed = 5,
    strategy = Pct(3),
    allow_real_io,
    report_deadlocks = true,
    diagnostics,
    slow_poll_threshold = "1s",
    stall_watchdog = "250ms",
    stall_grace = "2m"
)]
async fn every_kind_of_option() -> u32 {
    let child = spawn(async { 6 * 7 });
    let dump = treeloop::dump();
    assert_eq!(dump.len(), 2, "the root and the child:\n{dump}");
    child.await.unwrap_or(0)
}

#[test]
fn every_kind_of_option_builds_a_runtime() {
    assert_eq!(every_kind_of_option(), 42);
}

#[treeloop::test(seed = 3, strategy = Random)]
async fn one_seed_runs_the_body_once() {
    COUNTED_RUNS.set(COUNTED_RUNS.get() + 1);
    assert_eq!(COUNTED_RUNS.get(), 1, "a second run on this thread");
}

#[test]
fn the_test_module_and_the_test_attribute_live_side_by_side() {
    let runs = Cell::new(0);
    treeloop::test::check(4, || async {
        runs.set(runs.get() + 1);
    });
    assert_eq!(runs.get(), 4);
}

#[test]
fn macro_main_shuts_down_gracefully_on_sigint_and_on_sigterm() {
    for signal in ["INT", "TERM"] {
        let mut example = Running::start("macro_main", &[], &[], None);
        example.wait_for(Pipe::Stdout, "macro_main: serving as pid");
        example.signal(signal);
        let status = example.finish();
        let transcript = example.transcript();
        assert_eq!(status.code(), Some(0), "SIG{signal}:\n{transcript}");
        let lines: Vec<&str> = example.lines_of(Pipe::Stdout).collect();
        assert_eq!(lines.len(), 4, "SIG{signal}:\n{transcript}");
        assert_eq!(
            lines[1],
            "main: operation cancelled: the runtime is shutting down; waiting for the worker"
        );
        assert!(
            lines[2].starts_with("worker: flushed after "),
            "{transcript}"
        );
        assert_eq!(lines[3], "main: clean exit");
    }
}

/// Run as a child with `TREELOOP_SEED` set by the test below: a seed given to the builder
/// is the seed used.
#[test]
fn a_builder_seed_is_the_seed_used() {
    let runtime = treeloop::Builder::new().seed(5).build().unwrap();
    assert_eq!(runtime.seed(), Some(5));
}

#[test]
fn treeloop_seed_steers_check_only_never_a_builders_seed() {
    let (passed, stderr) =
        run_this_test("a_builder_seed_is_the_seed_used", &[("TREELOOP_SEED", "9")]);
    assert!(passed, "TREELOOP_SEED overrode Builder::seed:\n{stderr}");
}
