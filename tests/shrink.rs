//! Shrinking a failing schedule (`test::check`'s failure path, src/shrink.rs): a planted
//! bug that needs exactly one deviation from FIFO, found under Random after many, shrinks
//! to that one, printed with both tasks' names and spawn sites and the poll's ordinal; one
//! that needs two shrinks to two; the shrunk schedule replays the failure; a bug FIFO hits
//! shrinks to none and says so; `TREELOOP_SHRINK_RUNS` bounds the runs exactly and `0`
//! turns shrinking off; two runs of one failure print the same. Each runs `check` in a
//! child process of this test binary and reads what it printed.

#[path = "common/child.rs"]
mod child;

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe, Location};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use treeloop::sync::Mutex;
use treeloop::{JoinHandle, spawn, yield_now};

/// Body runs in this process (seeds, the failing seed's rerun, shrinking's candidates).
static RUNS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The spawn site of each named task, as `spawn` was given it.
    static SPAWNED: RefCell<Vec<(String, String)>> = const { RefCell::new(Vec::new()) };
}

/// Spawns a task named `name` from the caller's line, and notes where.
#[track_caller]
fn spawn_named<F: Future + 'static>(name: &str, future: F) -> JoinHandle<F::Output> {
    let at = Location::caller().to_string();
    SPAWNED.with(|spawned| spawned.borrow_mut().push((name.to_owned(), at)));
    treeloop::task::Builder::new().name(name).spawn(future)
}

/// Noise the bugs do not need: four unnamed tasks yielding ten times each, awaited before
/// the bug's tasks start. A random run makes dozens of deviations among them.
async fn noise() {
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            spawn(async {
                for _ in 0..10 {
                    yield_now().await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

/// A reader and a connection named `reader` and `conn`, each yielding through 7 polls;
/// `conn` notes at each poll how many polls `reader` had, and that is returned.
async fn pair(reader: &str, conn: &str) -> Vec<usize> {
    let reads = Rc::new(Cell::new(0));
    let reader = spawn_named(reader, {
        let reads = reads.clone();
        async move {
            for _ in 0..7 {
                reads.set(reads.get() + 1);
                yield_now().await.unwrap();
            }
        }
    });
    let conn = spawn_named(conn, async move {
        let mut seen = Vec::new();
        for _ in 0..7 {
            seen.push(reads.get());
            yield_now().await.unwrap();
        }
        seen
    });
    reader.await.unwrap();
    conn.await.unwrap()
}

/// [`pair`], `true` (a stale read) if `conn`'s polls `k - 1` and `k` both saw `k - 1`.
///
/// FIFO alternates them, so `conn`'s `j`th poll sees `j`. Exactly one deviation makes the
/// stale read: `conn` taken for its `k`th poll while `reader` is first in line for its
/// `k`th (sees `k - 1` twice). Taken at an earlier poll `j`, it sees `j - 1` from then on
/// (poll `k - 1` sees `k - 2`); at a later one, poll `k` saw `k`; `reader` taken over
/// `conn` only makes `conn` see more.
async fn stale_pair(reader: &str, conn: &str, k: usize) -> bool {
    let seen = pair(reader, conn).await;
    seen[k - 2] == k - 1 && seen[k - 1] == k - 1
}

/// The one-deviation bug: `conn 2` runs its 3rd poll before `reader` runs its 3rd.
async fn one_deviation() {
    RUNS.fetch_add(1, Ordering::Relaxed);
    noise().await;
    let stale = stale_pair("reader", "conn 2", 3).await;
    assert!(!stale, "conn 2 read a stale count");
}

/// The two-deviation bug, as an `Err`: both pairs read stale counts.
async fn two_deviations() -> Result<(), String> {
    RUNS.fetch_add(1, Ordering::Relaxed);
    noise().await;
    let first = stale_pair("reader", "conn 2", 3).await;
    let second = stale_pair("writer", "flusher", 2).await;
    match first && second {
        true => Err("both pairs read stale counts".to_owned()),
        false => Ok(()),
    }
}

/// A bug FIFO hits: `conn 2`'s first poll comes after `reader`'s.
async fn fifo_bug() {
    RUNS.fetch_add(1, Ordering::Relaxed);
    noise().await;
    let seen = pair("reader", "conn 2").await;
    assert_eq!(seen[0], 0, "the reader ran first");
}

/// Whether this is the child run of a test below.
fn in_child() -> bool {
    std::env::var_os("TREELOOP_SHRINK_CHILD").is_some()
}

/// Runs `body` under `check` with 200 seeds, then prints the body's runs (`runs: n`) and
/// fails as `check` did.
fn check_and_count<Fut>(body: fn() -> Fut)
where
    Fut: Future,
    Fut::Output: treeloop::test::CheckOutcome,
{
    let result = panic::catch_unwind(AssertUnwindSafe(|| treeloop::test::check(200, body)));
    eprintln!("runs: {}", RUNS.load(Ordering::Relaxed));
    if let Err(payload) = result {
        panic::resume_unwind(payload);
    }
}

/// Child only: `check` finds the one-deviation bug.
#[test]
fn child_one_deviation() {
    if in_child() {
        check_and_count(one_deviation);
    }
}

/// Child only: `check` finds the two-deviation bug.
#[test]
fn child_two_deviations() {
    if in_child() {
        check_and_count(two_deviations);
    }
}

/// Child only: `check` finds the bug FIFO hits.
#[test]
fn child_fifo_bug() {
    if in_child() {
        check_and_count(fifo_bug);
    }
}

/// What a child run of test `name` with `env` did.
struct Child {
    /// It passed.
    passed: bool,
    /// Its stderr and stdout.
    output: String,
}

impl Child {
    /// Reruns this test binary on test `name`, with `env` set.
    fn run(name: &str, env: &[(&str, &str)]) -> Child {
        let run = child::rerun(name, "TREELOOP_SHRINK_CHILD", true, env);
        Child {
            passed: run.passed,
            output: format!("{}{}", run.stderr, run.stdout),
        }
    }

    /// The number after `prefix` in the output.
    fn number_after(&self, prefix: &str) -> u64 {
        let after = self
            .output
            .split(prefix)
            .nth(1)
            .unwrap_or_else(|| panic!("no {prefix:?} in:\n{}", self.output));
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().expect("a number")
    }

    /// The shrinking report: from `shrunk from` to the end of its replay line.
    fn shrink_report(&self) -> &str {
        let start = self
            .output
            .find("treeloop::test::check: shrunk from")
            .unwrap_or_else(|| panic!("no shrinking report in:\n{}", self.output));
        let rest = &self.output[start..];
        let line = rest.find("cargo test").expect("a replay line");
        let end = line + rest[line..].find('\n').unwrap_or(rest.len() - line);
        &rest[..end]
    }

    /// The schedule of the last `TREELOOP_SCHEDULE=` in the output (the shrunk one).
    fn last_schedule(&self) -> String {
        let after = self
            .output
            .rsplit("TREELOOP_SCHEDULE=")
            .next()
            .expect("a schedule");
        after[..after.find(' ').expect("a space after the schedule")].to_owned()
    }

    /// The body's runs, the failing seed, and shrinking's runs as the report counts them.
    fn runs(&self) -> (u64, u64) {
        (
            self.number_after("runs: "),
            self.number_after("failed with seed "),
        )
    }
}

/// Where the task named `name` is spawned (runs `body` once under FIFO to see).
fn spawn_site<Fut: Future>(body: impl Fn() -> Fut, name: &str) -> String {
    SPAWNED.with(|spawned| spawned.borrow_mut().clear());
    treeloop::Builder::new()
        .build()
        .expect("runtime")
        .block_on(body());
    let site = SPAWNED.with(|spawned| {
        let spawned = spawned.borrow();
        let (_, at) = spawned
            .iter()
            .find(|(named, _)| named == name)
            .expect("the task was spawned");
        at.clone()
    });
    assert!(site.starts_with("tests/shrink.rs:"), "{site}");
    site
}

/// The report's numbers: deviations before, runs, preemptions before (in the order of
/// `shrunk from {d} deviations to {n} in {r} runs (preemptions: {p} to`).
fn report_numbers(child: &Child) -> (u64, u64, u64) {
    (
        child.number_after("shrunk from "),
        child.number_after(" in "),
        child.number_after("(preemptions: "),
    )
}

#[test]
fn a_bug_needing_one_deviation_shrinks_to_it_named_by_task_and_poll() {
    let child = Child::run("child_one_deviation", &[]);
    assert!(!child.passed, "{}", child.output);
    let (before, runs, preempted) = report_numbers(&child);
    // Many deviations first (the noise), one at the end.
    assert!(before >= 10, "{}", child.output);
    let reader = spawn_site(|| stale_pair("reader", "conn 2", 3), "reader");
    let conn = spawn_site(|| stale_pair("reader", "conn 2", 3), "conn 2");
    let expected = format!(
        "treeloop::test::check: shrunk from {before} deviations to 1 in {runs} runs \
         (preemptions: {preempted} to 0).\n\
         FIFO order fails the same way with this deviation from it (a task run while another \
         was first in line):\n    \
         task \"conn 2\" ({conn}) ran before task \"reader\" ({reader}) at its 3rd poll\n\
         replay the shrunk run with:\n    \
         TREELOOP_SCHEDULE={} cargo test child_one_deviation -- --exact",
        child.last_schedule()
    );
    assert_eq!(child.shrink_report(), expected);
    // The panic is printed by the failing run and by `check`'s rerun of it, never by the
    // runs of shrinking.
    assert_eq!(printed_panics(&child, "conn 2 read a stale count"), 2);
}

/// How often `message` was printed as a panic in `child`'s output.
fn printed_panics(child: &Child, message: &str) -> usize {
    child.output.matches(&format!(":\n{message}")).count()
}

#[test]
fn a_bug_needing_two_deviations_shrinks_to_two_in_order() {
    let child = Child::run("child_two_deviations", &[]);
    assert!(!child.passed, "{}", child.output);
    let (before, runs, preempted) = report_numbers(&child);
    assert!(before >= 10, "{}", child.output);
    let site = |name| spawn_site(|| stale_pair("reader", "conn 2", 3), name);
    let (reader, conn) = (site("reader"), site("conn 2"));
    let site = |name| spawn_site(|| stale_pair("writer", "flusher", 2), name);
    let (writer, flusher) = (site("writer"), site("flusher"));
    let expected = format!(
        "treeloop::test::check: shrunk from {before} deviations to 2 in {runs} runs \
         (preemptions: {preempted} to 0).\n\
         FIFO order fails the same way with these 2 deviations from it (a task run while \
         another was first in line):\n    \
         task \"conn 2\" ({conn}) ran before task \"reader\" ({reader}) at its 3rd poll\n    \
         task \"flusher\" ({flusher}) ran before task \"writer\" ({writer}) at its 2nd poll\n\
         replay the shrunk run with:\n    \
         TREELOOP_SCHEDULE={} cargo test child_two_deviations -- --exact",
        child.last_schedule()
    );
    assert_eq!(child.shrink_report(), expected);
    // The failure itself is the original `Err`.
    let seed = child.number_after("failed with seed ");
    let failed = format!("test body failed with seed {seed}: \"both pairs read stale counts\"");
    assert!(child.output.contains(&failed), "{}", child.output);
}

/// A lock-order deadlock after the noise: `forward` holds `m1` across a yield, then takes
/// `m2`; `backward` yields twice, takes `m2`, yields, takes `m1`. FIFO runs `forward`'s
/// second poll (taking `m2`) before `backward`'s third: no deadlock. It takes two
/// deviations: `backward` run twice while `forward` is first in line (at its 1st and 2nd
/// polls, or its 2nd and 3rd).
async fn lock_order() {
    RUNS.fetch_add(1, Ordering::Relaxed);
    noise().await;
    let m1 = Rc::new(Mutex::new(()));
    let m2 = Rc::new(Mutex::new(()));
    let forward = {
        let (m1, m2) = (m1.clone(), m2.clone());
        spawn_named("forward", async move {
            let _first = m1.lock().await.unwrap();
            yield_now().await.unwrap();
            let _second = m2.lock().await.unwrap();
        })
    };
    let backward = spawn_named("backward", async move {
        yield_now().await.unwrap();
        yield_now().await.unwrap();
        let _first = m2.lock().await.unwrap();
        yield_now().await.unwrap();
        let _second = m1.lock().await.unwrap();
    });
    forward.await.unwrap();
    backward.await.unwrap();
}

/// Child only: `check` finds the deadlock.
#[test]
fn child_lock_order() {
    if in_child() {
        check_and_count(lock_order);
    }
}

#[test]
fn a_deadlock_shrinks_as_its_panic() {
    let child = Child::run("child_lock_order", &[]);
    assert!(!child.passed, "{}", child.output);
    let (before, runs, preempted) = report_numbers(&child);
    assert!(before >= 10, "{}", child.output);
    let backward = spawn_site(lock_order, "backward");
    let forward = spawn_site(lock_order, "forward");
    let line = |poll| {
        format!(
            "\n    task \"backward\" ({backward}) ran before task \"forward\" ({forward}) at its {poll} poll"
        )
    };
    let report = child.shrink_report();
    assert!(
        report.starts_with(&format!(
            "treeloop::test::check: shrunk from {before} deviations to 2 in {runs} runs \
             (preemptions: {preempted} to 0).\n"
        )),
        "{report}"
    );
    let first = format!("{}{}", line("1st"), line("2nd"));
    let later = format!("{}{}", line("2nd"), line("3rd"));
    assert!(
        report.contains(&first) || report.contains(&later),
        "{report}"
    );
    assert_eq!(
        printed_panics(&child, "treeloop deadlock: no task can make progress"),
        2
    );
}

#[test]
fn the_shrunk_schedule_replays_the_failure() {
    for (test, message) in [
        ("child_one_deviation", "conn 2 read a stale count"),
        ("child_two_deviations", "\"both pairs read stale counts\""),
        ("child_lock_order", "treeloop deadlock"),
    ] {
        let failed = Child::run(test, &[]);
        let schedule = failed.last_schedule();
        let replayed = Child::run(test, &[("TREELOOP_SCHEDULE", &schedule)]);
        assert!(!replayed.passed, "{}", replayed.output);
        // One run, faithful to the schedule (no divergence), failing the same way, and not
        // shrunk again.
        assert_eq!(replayed.number_after("runs: "), 1, "{}", replayed.output);
        assert!(
            replayed
                .output
                .contains("treeloop::test::check: failed replaying TREELOOP_SCHEDULE; replay it"),
            "{}",
            replayed.output
        );
        assert!(replayed.output.contains(message), "{}", replayed.output);
        assert!(!replayed.output.contains("shrunk"), "{}", replayed.output);
    }
}

#[test]
fn a_bug_fifo_hits_shrinks_to_no_deviation_and_says_so() {
    let child = Child::run("child_fifo_bug", &[]);
    assert!(!child.passed, "{}", child.output);
    let (before, _, preempted) = report_numbers(&child);
    assert!(before >= 10, "{}", child.output);
    // The failing run replayed, FIFO, and the replay line's schedule alone: three runs.
    let expected = format!(
        "treeloop::test::check: shrunk from {before} deviations to 0 in 3 runs (preemptions: \
         {preempted} to 0).\n\
         FIFO order itself fails the same way, with no deviation; replay it with:\n    \
         TREELOOP_SCHEDULE={} cargo test child_fifo_bug -- --exact",
        child.last_schedule()
    );
    assert_eq!(child.shrink_report(), expected);
    let (runs, seed) = child.runs();
    assert_eq!(runs, seed + 2 + 3, "{}", child.output);
}

#[test]
fn shrink_runs_zero_skips_shrinking() {
    let child = Child::run("child_one_deviation", &[("TREELOOP_SHRINK_RUNS", "0")]);
    assert!(!child.passed, "{}", child.output);
    assert!(!child.output.contains("shrunk"), "{}", child.output);
    // The seeds up to the failing one, and its rerun: nothing more.
    let (runs, seed) = child.runs();
    assert_eq!(runs, seed + 2, "{}", child.output);
    // The seed's replay lines are still printed, and the original panic raised.
    let replay = format!("TREELOOP_SEED={seed} cargo test child_one_deviation -- --exact");
    assert!(child.output.contains(&replay), "{}", child.output);
    assert!(
        child.output.contains("conn 2 read a stale count"),
        "{}",
        child.output
    );
}

#[test]
fn the_budget_bounds_shrinkings_runs_exactly() {
    // A budget of 3: the failing run replayed, FIFO, and the last run kept for the replay
    // line's schedule alone; nothing dropped.
    let child = Child::run("child_one_deviation", &[("TREELOOP_SHRINK_RUNS", "3")]);
    assert!(!child.passed, "{}", child.output);
    let (runs, seed) = child.runs();
    assert_eq!(runs, seed + 2 + 3, "{}", child.output);
    let (before, _, preempted) = report_numbers(&child);
    assert!(
        child.shrink_report().starts_with(&format!(
            "treeloop::test::check: shrunk from {before} deviations to {before} in 3 runs \
             (preemptions: {preempted} to {preempted}), and stopped: that is its budget \
             (TREELOOP_SHRINK_RUNS=n allows n runs, 0 none; the default is 300).\n"
        )),
        "{}",
        child.output
    );
    // At most 20 deviations listed, the rest counted.
    let more = format!(
        "\n    and {} more (the schedule below has them all)\n",
        before - 20
    );
    assert!(child.shrink_report().contains(&more), "{}", child.output);
    // Under the default budget, the report counts every run it made, within the budget.
    let child = Child::run("child_one_deviation", &[]);
    let (runs, seed) = child.runs();
    let (_, shrinking, _) = report_numbers(&child);
    assert_eq!(runs, seed + 2 + shrinking, "{}", child.output);
    assert!(shrinking <= treeloop::test::DEFAULT_SHRINK_RUNS);
    assert!(!child.output.contains("its budget"), "{}", child.output);
}

#[test]
fn shrinking_is_deterministic() {
    let first = Child::run("child_two_deviations", &[]);
    let second = Child::run("child_two_deviations", &[]);
    assert_eq!(first.shrink_report(), second.shrink_report());
}
