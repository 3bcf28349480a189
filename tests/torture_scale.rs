//! Torture at scale (R17 with R21): a 1,000,000-deep chain and 1,000,000 siblings are
//! cancelled *and* hit by a panic at the bottom. Every task runs its cleanup (counted), every
//! future is dropped exactly once, `block_on` re-raises the bottom's panic only after the
//! whole tree finished, and the process's memory returns to its baseline once the runtime is
//! dropped.
//!
//! - The chain is cancelled from the top; the bottom task panics in its cleanup. Its handle
//!   was dropped, so the panic is unhandled and `block_on` re-raises it.
//! - Among the siblings, the last one spawned panics in its poll; that failure is what
//!   cancels the other 999,999 (reason `Failure`) and their parent.
//!
//! **Memory.** Each test runs its scenario in a child process (this test binary again, with
//! [`CHILD`] set) and reads the child's resident set (`VmRSS` in `/proc/self/status`) before
//! the runtime is built, with the tree built, and after the runtime is dropped. The child's
//! glibc is told to give freed memory back at once ([`EAGER_MALLOC`]): with the default
//! settings about 300 MB of the ~400 MB peak stay resident after the drop although no byte is
//! still allocated (measured with a counting allocator: freed chunks parked in the per-thread
//! cache and the fast bins fence off the free space below them, so the heap is never
//! trimmed). With eager settings, what stays resident is what is still allocated, so a leak
//! shows. A child also keeps one test's memory out of the other's figures. Wall times are
//! printed (`--nocapture`), not asserted.
//!
//! Run with: cargo test --test torture_scale -- --nocapture

mod common;

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::Mutex;
use std::time::Duration;

use common::{Counters, paused};
use treeloop::time::{Instant, sleep};
use treeloop::{CancelReason, Cancelled, checkpoint, spawn};

const MILLION: usize = 1_000_000;

/// Set in the environment of the child process that runs a test's scenario.
const CHILD: &str = "TREELOOP_TORTURE_SCALE_CHILD";

/// glibc's malloc settings in the child: no per-thread cache, no fast bins, trim the heap
/// whenever its top is free. Freed memory goes back to the OS at once, so the resident set
/// after the run measures what is still allocated.
const EAGER_MALLOC: &str =
    "glibc.malloc.tcache_count=0:glibc.malloc.mxfast=0:glibc.malloc.trim_threshold=0";

/// The marker of the child's line that carries its memory figures.
const MEMORY_LINE: &str = "@memory@";

/// How far above its baseline the resident set may stay once everything was dropped.
///
/// The tree is about 270 bytes a task (an async-task allocation holding the task's future,
/// a boxed probe, a slab node, a run-queue slot, a timer entry), so a leak of one task in
/// four keeps over 64 MB. With the child's eager allocator the resident set after the drop
/// is back within a few MB of the baseline (2 MB before, about 380 MB built, 2 MB after);
/// the allowance leaves room for allocator bookkeeping and for what the libraries cache
/// once per process, without hiding a leak of the tree.
const SLACK_KB: u64 = 64 * 1024;

/// The tests take a lot of memory and CPU each: one child at a time keeps the wall times
/// meaningful on a small machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// In the child, runs `scenario` and prints its memory figures (before, built, after); in
/// the parent, runs the test `name` in a child process and checks the figures it printed.
fn in_child_process(name: &str, scenario: fn() -> u64) {
    if std::env::var_os(CHILD).is_some() {
        let before = resident_kb();
        // Returns the resident set with the tree built. Everything it allocated, the panic
        // payload included, is freed when it returns.
        let peak = scenario();
        let after = resident_kb();
        println!("{MEMORY_LINE} {before} {peak} {after}");
        return;
    }
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let output = Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("GLIBC_TUNABLES", EAGER_MALLOC)
        // A backtrace of the scenario's panic would load and cache this binary's debug info
        // (about 40 MB, for the life of the process): not the runtime's memory.
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The child's own report lines (wall times, figures), for --nocapture.
    stderr
        .lines()
        .filter(|line| line.starts_with("1M"))
        .for_each(|line| eprintln!("{line}"));
    assert!(
        output.status.success(),
        "the child failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    let figures: Vec<u64> = stdout
        .lines()
        .find_map(|line| line.split_once(MEMORY_LINE))
        .unwrap_or_else(|| panic!("the child printed no memory figures:\n{stdout}"))
        .1
        .split_whitespace()
        .map(|kb| kb.parse().expect("kB"))
        .collect();
    let [before, peak, after] = figures[..] else {
        panic!("three memory figures expected, got {figures:?}")
    };
    Memory {
        before,
        peak,
        after,
    }
    .report_and_check(name);
}

/// The resident set of this process, in kB.
fn resident_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .expect("a VmRSS line");
    line.trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("VmRSS in kB")
}

use common::message;

fn bump(counter: &Cell<usize>) {
    counter.set(counter.get() + 1);
}

/// What the tasks of one test count.
#[derive(Clone, Default)]
struct Tally {
    /// Tasks whose future started running.
    started: Rc<Cell<usize>>,
    /// Tasks that saw the expected cancellation, and saw it again at the next await (R6).
    cleaned_up: Rc<Cell<usize>>,
    /// Tasks that saw anything else where that cancellation was expected.
    unexpected: Rc<Cell<usize>>,
    /// Tasks whose future returned.
    returned: Rc<Cell<usize>>,
}

impl Tally {
    /// The cleanup every task runs: check how it was cancelled, await once more (which must
    /// fail the same way), count it.
    async fn clean_up(&self, woke_with: Result<(), Cancelled>, expected: CancelReason) {
        let again = checkpoint().await;
        let want = Err(Cancelled::new(expected));
        if woke_with == want && again == want {
            bump(&self.cleaned_up);
        } else {
            bump(&self.unexpected);
        }
    }
}

/// The memory figures of one test, in kB.
struct Memory {
    /// Before the runtime was built.
    before: u64,
    /// With the whole tree built.
    peak: u64,
    /// After the runtime and everything the scenario held were dropped.
    after: u64,
}

impl Memory {
    fn report_and_check(&self, what: &str) {
        eprintln!(
            "{what}: VmRSS {} MB before, {} MB with the tree built, {} MB after",
            self.before / 1024,
            self.peak / 1024,
            self.after / 1024
        );
        assert!(
            self.peak > self.before + SLACK_KB,
            "{what}: the tree should take more than the slack, or the check proves nothing: \
             {} kB before, {} kB built",
            self.before,
            self.peak
        );
        assert!(
            self.after <= self.before + SLACK_KB,
            "{what}: memory did not return to its baseline: {} kB before, {} kB after",
            self.before,
            self.after
        );
    }
}

/// Level `depth` of the chain: spawns the next level and drops its handle (so the bottom's
/// panic has nobody to go to), then waits to be cancelled and cleans up. The bottom panics
/// in its cleanup.
async fn link(depth: usize, tally: Tally, probes: Counters) {
    bump(&tally.started);
    if depth + 1 < MILLION {
        let next = probes.probe(link(depth + 1, tally.clone(), probes.clone()));
        drop(spawn(next));
    }
    let woke_with = sleep(Duration::MAX).await;
    tally.clean_up(woke_with, CancelReason::Explicit).await;
    if depth + 1 == MILLION {
        panic!("the bottom of the chain panicked in its cleanup at depth {depth}");
    }
    bump(&tally.returned);
}

#[test]
fn million_deep_chain_cancelled_and_panicking_at_the_bottom_reraises_after_every_cleanup() {
    in_child_process(
        "million_deep_chain_cancelled_and_panicking_at_the_bottom_reraises_after_every_cleanup",
        chain_with_a_panic_at_the_bottom,
    );
}

/// The scenario of the chain test, run in the child; returns the resident set (kB) with the
/// chain built.
fn chain_with_a_panic_at_the_bottom() -> u64 {
    let tally = Tally::default();
    let probes = Counters::new();
    let peak = Rc::new(Cell::new(0));
    let wall = std::time::Instant::now();
    let rt = paused();
    let result = catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(async {
            let start = Instant::now();
            let top = spawn(probes.probe(link(0, tally.clone(), probes.clone())));
            // Virtual time moves only when nothing is runnable: by 1 s every level waits.
            sleep(Duration::from_secs(1)).await.unwrap();
            assert_eq!(tally.started.get(), MILLION);
            assert_eq!(probes.drops(), 0);
            peak.set(resident_kb());
            let built = wall.elapsed();
            top.cancel();
            // The top itself returned normally: its join succeeds, after the whole chain.
            top.await.unwrap();
            assert_eq!(probes.drops(), MILLION);
            assert_eq!(Instant::now(), start + Duration::from_secs(1));
            eprintln!(
                "1M-deep chain: built in {built:?}, cancelled in {:?}",
                wall.elapsed() - built
            );
        })
    }));
    let payload = result.expect_err("block_on re-raises the bottom's panic");
    assert_eq!(
        message(&*payload),
        format!(
            "the bottom of the chain panicked in its cleanup at depth {}",
            MILLION - 1
        )
    );
    assert_eq!(rt.live_nodes(), 0);
    drop(rt);
    eprintln!("1M-deep chain with a panic: {:?} wall time", wall.elapsed());
    assert_eq!(tally.started.get(), MILLION);
    assert_eq!(tally.cleaned_up.get(), MILLION, "every level cleaned up");
    assert_eq!(tally.unexpected.get(), 0);
    assert_eq!(
        tally.returned.get(),
        MILLION - 1,
        "all but the bottom returned"
    );
    // Each level: polled to start, once more when the cancel woke it, and once after the
    // cleanup's checkpoint yielded (it yields in a cancelled region too, then fails).
    assert_eq!(probes.polls(), 3 * MILLION);
    assert_eq!(probes.drops(), MILLION);
    peak.get()
}

#[test]
fn million_siblings_failed_by_the_panic_of_the_last_reraise_it_after_every_cleanup() {
    in_child_process(
        "million_siblings_failed_by_the_panic_of_the_last_reraise_it_after_every_cleanup",
        siblings_failed_by_the_last,
    );
}

/// The scenario of the siblings test, run in the child; returns the resident set (kB) with
/// every sibling spawned.
fn siblings_failed_by_the_last() -> u64 {
    let tally = Tally::default();
    let probes = Counters::new();
    let peak = Rc::new(Cell::new(0));
    let parent_saw = Rc::new(Cell::new(None));
    let wall = std::time::Instant::now();
    let rt = paused();
    let result = catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(async {
            let start = Instant::now();
            let parent = {
                let (tally, probes, parent_saw) =
                    (tally.clone(), probes.clone(), parent_saw.clone());
                spawn(async move {
                    for i in 0..MILLION {
                        let tally = tally.clone();
                        let sibling = probes.probe(async move {
                            bump(&tally.started);
                            if i + 1 == MILLION {
                                sleep(Duration::from_secs(1)).await.unwrap();
                                panic!("the last of {MILLION} siblings panicked");
                            }
                            let woke_with = sleep(Duration::MAX).await;
                            tally.clean_up(woke_with, CancelReason::Failure).await;
                            bump(&tally.returned);
                        });
                        // Handles dropped: the panic has nobody to go to, so it fails the
                        // parent's region (R17).
                        drop(spawn(sibling));
                    }
                    parent_saw.set(Some(sleep(Duration::MAX).await));
                })
            };
            sleep(Duration::from_millis(999)).await.unwrap();
            assert_eq!(tally.started.get(), MILLION);
            assert_eq!(probes.drops(), 0);
            peak.set(resident_kb());
            let built = wall.elapsed();
            // The parent is not what failed: its join succeeds, after every sibling.
            parent.await.unwrap();
            assert_eq!(probes.drops(), MILLION);
            assert_eq!(Instant::now(), start + Duration::from_secs(1));
            // Only the parent's region failed, not the root's.
            assert_eq!(checkpoint().await, Ok(()));
            eprintln!(
                "1M siblings: spawned in {built:?}, failed and cleaned up in {:?}",
                wall.elapsed() - built
            );
        })
    }));
    let payload = result.expect_err("block_on re-raises the sibling's panic");
    assert_eq!(
        message(&*payload),
        format!("the last of {MILLION} siblings panicked")
    );
    assert_eq!(rt.live_nodes(), 0);
    drop(rt);
    eprintln!("1M siblings with a panic: {:?} wall time", wall.elapsed());
    assert_eq!(
        parent_saw.get(),
        Some(Err(Cancelled::new(CancelReason::Failure)))
    );
    assert_eq!(tally.started.get(), MILLION);
    assert_eq!(tally.cleaned_up.get(), MILLION - 1, "every other sibling");
    assert_eq!(tally.unexpected.get(), 0);
    assert_eq!(tally.returned.get(), MILLION - 1);
    // Each sibling: polled to start, and once more when woken (the others by the failure,
    // the last by its timer); the others once more after their cleanup's checkpoint
    // yielded (the last panicked instead of cleaning up).
    assert_eq!(probes.polls(), 3 * MILLION - 1);
    assert_eq!(probes.drops(), MILLION);
    peak.get()
}
