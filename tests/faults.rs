//! Faults in every position (R17, R20): a panic in a task's poll, in its cleanup after it saw
//! `Cancelled`, inside a shield, in the `Drop` of its future (the root's included), on
//! another thread right after a wake, in a foreign waker that the runtime itself calls, and in
//! a timeout's body; `abort()` while a task awaits inside a cleanup shield; a task cancelling
//! or aborting itself from its own cleanup; a `block_on` abandoned with tasks parked, and a
//! runtime dropped after such a run.
//!
//! Every test checks the same five things:
//!
//! - **no abort**: the test process survives (the one fault that aborts it runs in a child
//!   process, see `bug_...aborts_the_process`);
//! - **no hang**: each scenario runs under [`no_hang`], on virtual time, and waits for
//!   cancellation with a one-hour virtual sleep that fails the test if nothing comes;
//! - **the exact outcome**: which `JoinError` (panic, aborted, cancelled), which payload
//!   `block_on` re-raises (checked by its message), at which virtual millisecond;
//! - **no leak**: every instrumented future is dropped exactly once, the tree is empty
//!   afterwards (`Runtime::live_tasks`), and no future kept a clone of the [`Ledger`];
//! - **a usable runtime**: a second `block_on` on the same `Runtime` runs a child on time.
//!
//! Tests named `bug_*` are regressions for runtime bugs found here; they are ignored so the
//! suite stays green, and describe what they expect.
//!
//! Run with: cargo test --test faults
//! The bug regressions: cargo test --test faults -- --ignored

mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use common::{Log, ms, ms_since, paused};
use treeloop::time::{Instant, sleep, timeout};
use treeloop::{Builder, Cancelled, JoinHandle, Runtime, checkpoint, shield, spawn, unblock};

/// How long a scenario may take before it counts as hung. Each takes milliseconds; only a
/// lost wake or a cleanup that never ends comes anywhere near this. A hang detector, not a
/// timing assertion.
const HANG_LIMIT: Duration = Duration::from_secs(60);

/// Runs `scenario` on its own thread and returns its result, re-raising its panic. Fails the
/// test if it has not finished within [`HANG_LIMIT`] (the hung thread cannot be joined then;
/// the failing test ends the process anyway).
fn no_hang<T: Send + 'static>(scenario: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, finished) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("fault scenario".into())
        .spawn(move || {
            // A send error means the test already failed as hung: nobody listens.
            let _ = done.send(scenario());
        })
        .expect("spawn the scenario thread");
    match finished.recv_timeout(HANG_LIMIT) {
        Ok(value) => {
            thread.join().expect("the scenario returned");
            value
        }
        // The scenario panicked: the sender was dropped while unwinding.
        Err(mpsc::RecvTimeoutError::Disconnected) => match thread.join() {
            Err(payload) => resume_unwind(payload),
            Ok(()) => unreachable!("the scenario neither returned nor panicked"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("the scenario hung: not finished after {HANG_LIMIT:?}")
        }
    }
}

use common::message;

/// Runs `f`, which must panic, and returns the message of its payload.
fn panic_message_of<T>(f: impl FnOnce() -> T) -> String {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(_) => panic!("expected a panic"),
        Err(payload) => message(&*payload),
    }
}

/// Sleeps until the region is cancelled and returns the cancellation; an hour of virtual
/// time passing first fails the test (so a lost cancellation cannot hang it).
async fn until_cancelled() -> Cancelled {
    sleep(Duration::from_secs(3600))
        .await
        .expect_err("expected to be cancelled before the hour passed")
}

/// Poll and drop counts of every instrumented future of one test, by name.
#[derive(Clone, Default)]
struct Ledger(Rc<RefCell<BTreeMap<&'static str, Counts>>>);

/// What happened to one instrumented future.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    /// Times it was polled.
    polls: usize,
    /// Times it was dropped: exactly 1 is right, 0 is a leak, 2 a double drop.
    drops: usize,
}

impl Ledger {
    fn new() -> Ledger {
        Ledger::default()
    }

    /// Wraps `future` so its polls and its drop are counted under `name` (unique per test).
    fn track<F: Future>(&self, name: &'static str, future: F) -> Tracked<F> {
        let fresh = self.0.borrow_mut().insert(name, Counts::default());
        assert!(fresh.is_none(), "two futures named {name:?}");
        Tracked {
            inner: Box::pin(future),
            name,
            ledger: self.clone(),
        }
    }

    fn counts(&self, name: &str) -> Counts {
        self.0.borrow()[name]
    }

    /// Asserts that exactly the futures named `names` were tracked, that each was dropped
    /// exactly once, and that none of them (nor anything else) still holds a clone of
    /// this ledger: every future that captured one was freed.
    fn assert_each_dropped_once(self, names: &[&str]) {
        let drops: Vec<(&str, usize)> =
            self.0.borrow().iter().map(|(n, c)| (*n, c.drops)).collect();
        let mut expected: Vec<(&str, usize)> = names.iter().map(|n| (*n, 1)).collect();
        expected.sort();
        assert_eq!(drops, expected, "every future dropped exactly once");
        assert_eq!(
            Rc::strong_count(&self.0),
            1,
            "a future holding a clone of the ledger was leaked"
        );
    }
}

/// A future counted by a [`Ledger`].
struct Tracked<F> {
    /// The future itself.
    inner: Pin<Box<F>>,
    /// Its name in the ledger.
    name: &'static str,
    /// Where its polls and drop are counted; every clone is one more owner of the counts.
    ledger: Ledger,
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if let Some(counts) = self.ledger.0.borrow_mut().get_mut(self.name) {
            counts.polls += 1;
        }
        self.inner.as_mut().poll(cx)
    }
}

impl<F> Drop for Tracked<F> {
    fn drop(&mut self) {
        // Counted before the inner future is dropped, so a panicking inner `Drop` is counted.
        if let Some(counts) = self.ledger.0.borrow_mut().get_mut(self.name) {
            counts.drops += 1;
        }
    }
}

/// Logs `what` with the virtual time when dropped: shows *when* the runtime dropped the
/// future holding it.
struct LogOnDrop {
    /// Where to log.
    log: Log,
    /// What to log.
    what: &'static str,
    /// Time zero of the logged milliseconds.
    start: Instant,
}

impl Drop for LogOnDrop {
    fn drop(&mut self) {
        self.log
            .push(format!("{} at {}", self.what, ms_since(self.start)));
    }
}

/// A hand-written future that panics when polled or stays pending, and may panic when
/// dropped. Hand-written on purpose: an `async` block drops its locals inside `poll`, so only
/// such a future's `Drop` runs where the runtime itself drops it.
struct Bomb {
    /// `Some(message)`: panic at the first poll; `None`: pending forever.
    poll_panic: Option<&'static str>,
    /// `Some(message)`: panic when dropped.
    drop_panic: Option<&'static str>,
}

impl Future for Bomb {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        match self.poll_panic {
            Some(text) => panic!("{text}"),
            None => Poll::Pending,
        }
    }
}

impl Drop for Bomb {
    fn drop(&mut self) {
        if let Some(text) = self.drop_panic {
            panic!("{text}");
        }
    }
}

/// A waker whose `wake` panics: what a buggy foreign combinator might pass down.
struct PanickingWake;

impl Wake for PanickingWake {
    fn wake(self: Arc<Self>) {
        panic!("foreign wake boom");
    }
}

/// A foreign future that polls `inner` with a waker of its own, one that panics when woken.
/// Whatever the runtime registers that waker with (a timer, a region) calls it later from
/// inside the runtime.
struct PanickingWakePath<F> {
    /// The treeloop future it wraps.
    inner: Pin<Box<F>>,
    /// A [`PanickingWake`], passed to `inner` instead of the task's waker.
    waker: Waker,
}

fn with_panicking_waker<F: Future>(inner: F) -> PanickingWakePath<F> {
    PanickingWakePath {
        inner: Box::pin(inner),
        waker: Waker::from(Arc::new(PanickingWake)),
    }
}

impl<F: Future> Future for PanickingWakePath<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<F::Output> {
        let waker = self.waker.clone();
        self.inner.as_mut().poll(&mut Context::from_waker(&waker))
    }
}

/// A future that stashes a clone of its task's waker, then waits forever (ignoring
/// cancellation, like any foreign future).
fn stash_waker_and_wait(stash: Rc<RefCell<Vec<Waker>>>) -> impl Future<Output = ()> {
    poll_fn(move |cx| {
        stash.borrow_mut().push(cx.waker().clone());
        Poll::Pending
    })
}

/// Asserts that `rt` still works after the fault: a fresh root is not cancelled, a child
/// sleeps exactly 5 virtual ms and returns its value, and the tree is empty afterwards.
fn assert_still_usable(rt: &Runtime) {
    assert_eq!(rt.live_tasks(), 0, "the fault left nodes in the tree");
    let ledger = Ledger::new();
    let (root_mark, value, elapsed) = rt.block_on({
        let ledger = ledger.clone();
        async move {
            let start = Instant::now();
            let child =
                spawn(ledger.track("fresh child", async { sleep(ms(5)).await.map(|()| 9) }));
            let root_mark = checkpoint().await;
            (root_mark, child.await.unwrap(), ms_since(start))
        }
    });
    assert_eq!((root_mark, value, elapsed), (Ok(()), Ok(9), 5));
    assert_eq!(ledger.counts("fresh child").polls, 2);
    ledger.assert_each_dropped_once(&["fresh child"]);
    assert_eq!(rt.live_tasks(), 0);
}

// ---------------------------------------------------------------------------------------
// A panic in poll, and in the Drop of the future that panicked.
// ---------------------------------------------------------------------------------------

#[test]
fn a_future_panicking_in_poll_and_again_in_its_drop_fails_with_the_poll_panic() {
    no_hang(|| {
        let rt = paused();
        let ledger = Ledger::new();
        // With a live handle, the poll's panic goes there; the drop's is only reported.
        let (err, root_mark) = rt.block_on({
            let ledger = ledger.clone();
            async move {
                let bomb = Bomb {
                    poll_panic: Some("poll boom"),
                    drop_panic: Some("drop boom after poll boom"),
                };
                let task = spawn(ledger.track("joined bomb", bomb));
                let err = task.await.unwrap_err();
                // The handle took the panic: the root's region is not failed.
                (err, checkpoint().await)
            }
        });
        assert!(err.is_panic() && !err.is_aborted() && !err.is_cancelled());
        assert_eq!(message(&*err.into_panic()), "poll boom");
        assert_eq!(root_mark, Ok(()));
        // With the handle dropped, block_on re-raises the poll's panic, not the drop's.
        let reraised = panic_message_of(|| {
            rt.block_on({
                let ledger = ledger.clone();
                async move {
                    let bomb = Bomb {
                        poll_panic: Some("unhandled poll boom"),
                        drop_panic: Some("drop boom after unhandled poll boom"),
                    };
                    drop(spawn(ledger.track("dropped bomb", bomb)));
                }
            })
        });
        assert_eq!(reraised, "unhandled poll boom");
        assert_eq!(ledger.counts("joined bomb").polls, 1);
        assert_eq!(ledger.counts("dropped bomb").polls, 1);
        ledger.assert_each_dropped_once(&["joined bomb", "dropped bomb"]);
        assert_still_usable(&rt);
    });
}

// ---------------------------------------------------------------------------------------
// A panic in cleanup, after the task saw Cancelled.
// ---------------------------------------------------------------------------------------

#[test]
fn a_panic_in_cleanup_reaches_the_live_handle_as_a_panic_after_the_childrens_cleanup() {
    let log = no_hang(|| {
        let rt = paused();
        let ledger = Ledger::new();
        let log = Log::new();
        let (err, joined_at, root_mark) = rt.block_on({
            let (ledger, log) = (ledger.clone(), log.clone());
            async move {
                let start = Instant::now();
                let task = spawn(ledger.track("faulty", {
                    let (ledger, log) = (ledger.clone(), log.clone());
                    async move {
                        let _child = spawn(ledger.track("child", {
                            let log = log.clone();
                            async move {
                                let why = until_cancelled().await;
                                log.push(format!(
                                    "child saw {:?} at {}",
                                    why.reason(),
                                    ms_since(start)
                                ));
                                shield(sleep(ms(2))).await.unwrap();
                                log.push(format!("child cleaned up at {}", ms_since(start)));
                            }
                        }));
                        let why = until_cancelled().await;
                        log.push(format!(
                            "faulty saw {:?} at {}",
                            why.reason(),
                            ms_since(start)
                        ));
                        panic!("cleanup boom");
                    }
                }));
                sleep(ms(3)).await.unwrap();
                task.cancel();
                let err = task.await.unwrap_err();
                (err, ms_since(start), checkpoint().await)
            }
        });
        assert!(err.is_panic() && !err.is_cancelled() && !err.is_aborted());
        assert_eq!(message(&*err.into_panic()), "cleanup boom");
        assert_eq!(
            joined_at, 5,
            "the handle resolved after the child's cleanup"
        );
        assert_eq!(
            root_mark,
            Ok(()),
            "a panic taken from a handle fails nobody"
        );
        // Polled once to start, once to see the cancellation (and panic); never again.
        assert_eq!(ledger.counts("faulty").polls, 2);
        ledger.assert_each_dropped_once(&["faulty", "child"]);
        assert_still_usable(&rt);
        log.take()
    });
    // The child keeps the first reason (the explicit cancel), not the later Failure.
    assert_eq!(
        log,
        [
            "faulty saw Explicit at 3",
            "child saw Explicit at 3",
            "child cleaned up at 5"
        ]
    );
}

#[test]
fn an_unhandled_panic_in_cleanup_fails_the_parents_region_and_is_reraised_after_its_cleanup() {
    let log = no_hang(|| {
        let rt = paused();
        let ledger = Ledger::new();
        let log = Log::new();
        let reraised = panic_message_of(|| {
            rt.block_on({
                let (ledger, log) = (ledger.clone(), log.clone());
                async move {
                    let start = Instant::now();
                    let group = spawn(ledger.track("group", {
                        let (ledger, log) = (ledger.clone(), log.clone());
                        async move {
                            let faulty = spawn(ledger.track("faulty", {
                                let log = log.clone();
                                async move {
                                    let why = until_cancelled().await;
                                    log.push(format!(
                                        "faulty saw {:?} at {}",
                                        why.reason(),
                                        ms_since(start)
                                    ));
                                    panic!("unhandled cleanup boom");
                                }
                            }));
                            let _sibling = spawn(ledger.track("sibling", {
                                let log = log.clone();
                                async move {
                                    let why = until_cancelled().await;
                                    log.push(format!(
                                        "sibling saw {:?} at {}",
                                        why.reason(),
                                        ms_since(start)
                                    ));
                                    shield(sleep(ms(4))).await.unwrap();
                                    log.push(format!("sibling cleaned up at {}", ms_since(start)));
                                }
                            }));
                            sleep(ms(2)).await.unwrap();
                            // Cancelled, then its handle dropped before it runs its cleanup:
                            // nobody can take the panic that follows.
                            faulty.cancel();
                            drop(faulty);
                            let why = until_cancelled().await;
                            log.push(format!(
                                "group saw {:?} at {}",
                                why.reason(),
                                ms_since(start)
                            ));
                        }
                    }));
                    group.await.unwrap();
                    log.push(format!(
                        "root joined the group at {}, its own region {:?}",
                        ms_since(start),
                        checkpoint().await
                    ));
                }
            })
        });
        assert_eq!(reraised, "unhandled cleanup boom");
        ledger.assert_each_dropped_once(&["group", "faulty", "sibling"]);
        assert_still_usable(&rt);
        log.take()
    });
    assert_eq!(
        log,
        [
            "faulty saw Explicit at 2",
            "group saw Failure at 2",
            "sibling saw Failure at 2",
            "sibling cleaned up at 6",
            "root joined the group at 6, its own region Ok(())",
        ]
    );
}

// ---------------------------------------------------------------------------------------
// A panic inside a shield.
// ---------------------------------------------------------------------------------------

#[test]
fn a_panic_inside_a_cleanup_shield_leaves_the_tasks_spawned_in_the_shield_running() {
    let log = no_hang(|| {
        let rt = paused();
        let ledger = Ledger::new();
        let log = Log::new();
        rt.block_on({
            let (ledger, log) = (ledger.clone(), log.clone());
            async move {
                let start = Instant::now();
                let task = spawn(ledger.track("faulty", {
                    let (ledger, log) = (ledger.clone(), log.clone());
                    async move {
                        until_cancelled().await;
                        shield(async move {
                            drop(spawn(ledger.track("helper", {
                                let log = log.clone();
                                async move {
                                    // Shielded for life: the failure of its task does not
                                    // reach it, so this sleep completes.
                                    let slept = sleep(ms(6)).await;
                                    log.push(format!(
                                        "helper slept {slept:?} until {}",
                                        ms_since(start)
                                    ));
                                }
                            })));
                            sleep(ms(2)).await.unwrap();
                            log.push(format!(
                                "faulty panics in its shield at {}",
                                ms_since(start)
                            ));
                            panic!("shield boom");
                        })
                        .await
                    }
                }));
                sleep(ms(1)).await.unwrap();
                task.cancel();
                let err = task.await.unwrap_err();
                assert!(err.is_panic() && !err.is_cancelled());
                log.push(format!(
                    "joined {:?} at {}",
                    message(&*err.into_panic()),
                    ms_since(start)
                ));
            }
        });
        ledger.assert_each_dropped_once(&["faulty", "helper"]);
        assert_still_usable(&rt);
        log.take()
    });
    assert_eq!(
        log,
        [
            "faulty panics in its shield at 3",
            "helper slept Ok(()) until 7",
            "joined \"shield boom\" at 7",
        ]
    );
}

// ---------------------------------------------------------------------------------------
// A panic in the Drop of the root's future.
// ---------------------------------------------------------------------------------------

#[test]
fn a_root_future_panicking_in_its_drop_fails_the_root_like_a_task_and_is_reraised_after_cleanup() {
    let log = no_hang(|| {
        let rt = paused();
        let ledger = Ledger::new();
        let log = Log::new();
        let reraised = panic_message_of(|| {
            let root = {
                let (ledger, log) = (ledger.clone(), log.clone());
                async move {
                    let start = Instant::now();
                    drop(spawn(ledger.track("child", {
                        let log = log.clone();
                        async move {
                            match sleep(ms(3)).await {
                                Ok(()) => {
                                    log.push(format!("child finished at {}", ms_since(start)))
                                }
                                Err(cancelled) => log.push(format!(
                                    "child cancelled at {}: {:?}",
                                    ms_since(start),
                                    cancelled.reason()
                                )),
                            }
                        }
                    })));
                    log.push("root returned");
                    7
                }
            };
            // The root's future is dropped as soon as it returns, like a task's: its
            // panicking Drop fails the root, which cancels the child; block_on re-raises the
            // panic after the child's cleanup.
            rt.block_on(RootWithBomb {
                inner: Box::pin(ledger.track("root", root)),
                _bomb: Bomb {
                    poll_panic: None,
                    drop_panic: Some("root drop boom"),
                },
            })
        });
        assert_eq!(reraised, "root drop boom");
        ledger.assert_each_dropped_once(&["root", "child"]);
        assert_still_usable(&rt);
        log.take()
    });
    assert_eq!(log, ["root returned", "child cancelled at 0: Failure"]);
}

/// A root future that owns a [`Bomb`] (never polled): its `Drop` runs where `block_on`
/// drops the root.
struct RootWithBomb<F> {
    /// The root's work.
    inner: Pin<Box<F>>,
    /// Dropped with the root.
    _bomb: Bomb,
}

impl<F: Future> Future for RootWithBomb<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.inner.as_mut().poll(cx)
    }
}

/// Set in the environment of the child process that runs
/// [`child_root_future_panicking_in_poll_and_in_drop`].
const CHILD: &str = "TREELOOP_FAULTS_CHILD";

/// The line the child prints when `block_on` re-raised the root's poll panic.
const CHILD_SURVIVED: &str = "@child@ block_on re-raised: root poll boom";

/// The body of the child process of the next test; passes at once in a normal run.
#[test]
fn child_root_future_panicking_in_poll_and_in_drop() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let rt = paused();
    let reraised = panic_message_of(|| {
        rt.block_on(Bomb {
            poll_panic: Some("root poll boom"),
            drop_panic: Some("root drop boom after root poll boom"),
        })
    });
    println!("@child@ block_on re-raised: {reraised}");
}

/// Regression test for a fixed bug: a root future whose `poll` panicked and whose `Drop` panics aborts the process.
/// `block_on` keeps the root future alive until it returns, and re-raises the poll's panic
/// with `resume_unwind` first: the root future is then dropped *while unwinding*, and a
/// panic in a destructor during unwinding aborts ("panic in a destructor during cleanup").
/// A task's future is dropped inside `catch_unwind` right after it panics; the root's is not.
/// Expected: `block_on` re-raises "root poll boom" and reports the drop's panic, as it does
/// for a task (see `a_future_panicking_in_poll_and_again_in_its_drop_fails_with_the_poll_panic`).
/// The same abort follows when a task's unhandled panic is re-raised and the root's `Drop`
/// panics. Run in a child process, since the abort would take the test binary down.
#[test]
fn bug_a_root_future_panicking_in_poll_and_in_drop_aborts_the_process() {
    let output = no_hang(|| {
        std::process::Command::new(std::env::current_exe().expect("the test binary"))
            .args([
                "--exact",
                "child_root_future_panicking_in_poll_and_in_drop",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run the child")
    });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(CHILD_SURVIVED),
        "the child did not survive: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
}

/// Spawns a task when dropped: a guard that hands its connection to a task for a graceful
/// close, say.
struct SpawnOnDrop {
    /// Where the spawned task reports that it ran.
    log: Log,
}

impl Drop for SpawnOnDrop {
    fn drop(&mut self) {
        let log = self.log.clone();
        drop(spawn(async move { log.push("spawned from a Drop: ran") }));
    }
}

/// Regression test for a fixed bug: `spawn` called from the `Drop` of a task's future, when the runtime itself drops the
/// future (after `abort()`, at teardown, or a hand-written future after it returned), panics
/// with slab's "invalid key" and leaves an orphan node in the tree. Nothing is being polled
/// then, so the current node is the "no node" sentinel `Key::MAX`; `Tree::insert` reads it as
/// "no parent" and inserts a parentless node, then `spawn_in` panics on `node_ref(Key::MAX)`.
/// The abort becomes a panic with an internal message, and `live_tasks()` stays 1 after
/// `block_on` returned. (A `Drop` run inside `poll`, when an `async` block returns, works:
/// the task is the current node then.)
/// Expected: the spawned task is a child of the task being dropped (which waits for it), or
/// the spawn is refused with a message naming the mistake; either way no node is left
/// behind and the join still says "aborted".
#[test]
fn bug_spawn_from_the_drop_of_an_aborted_tasks_future_leaks_an_orphan_node() {
    let (joined, live_after) = no_hang(|| {
        let rt = paused();
        let log = Log::new();
        let joined = rt.block_on(async move {
            let task = spawn(async move {
                let _guard = SpawnOnDrop { log };
                sleep(ms(10)).await.unwrap();
            });
            checkpoint().await.unwrap();
            task.abort();
            match task.await {
                Err(err) if err.is_aborted() => "aborted".to_string(),
                Err(err) if err.is_panic() => format!("panicked: {}", message(&*err.into_panic())),
                other => format!("{other:?}"),
            }
        });
        (joined, rt.live_tasks())
    });
    assert_eq!((joined.as_str(), live_after), ("aborted", 0));
}

// ---------------------------------------------------------------------------------------
// Wakes from other threads, and wake paths that panic.
// ---------------------------------------------------------------------------------------

/// The tasks of the waker-thread test, one per thread.
const WAITERS: [&str; 4] = ["waiter 0", "waiter 1", "waiter 2", "waiter 3"];

#[test]
fn threads_panicking_right_after_waking_their_tasks_disturb_nothing() {
    no_hang(|| {
        let rt = paused();
        let ledger = Ledger::new();
        let (polls, thread_panics) = rt.block_on({
            let ledger = ledger.clone();
            async move {
                let mut tasks = Vec::new();
                let mut threads = Vec::new();
                for (i, name) in WAITERS.into_iter().enumerate() {
                    let woken = Arc::new(AtomicBool::new(false));
                    let (hand_over, waker) = mpsc::channel::<Waker>();
                    let task_woken = woken.clone();
                    let mut handed = false;
                    let waiter = poll_fn(move |cx| {
                        if !handed {
                            // Hand the waker over, then wait for the thread's wake: checking
                            // the flag now would race with the thread.
                            hand_over.send(cx.waker().clone()).unwrap();
                            handed = true;
                            return Poll::Pending;
                        }
                        match task_woken.load(Ordering::SeqCst) {
                            true => Poll::Ready(i),
                            false => Poll::Pending,
                        }
                    });
                    tasks.push(spawn(ledger.track(name, waiter)));
                    threads.push(std::thread::spawn(move || {
                        let waker = waker.recv().expect("the task hands over its waker");
                        woken.store(true, Ordering::SeqCst);
                        waker.wake_by_ref();
                        // The clone is dropped while this thread unwinds.
                        panic!("waker thread {i} boom");
                    }));
                }
                let mut polls = Vec::new();
                for (i, task) in tasks.into_iter().enumerate() {
                    assert_eq!(task.await.unwrap(), i);
                    polls.push(ledger.counts(WAITERS[i]).polls);
                }
                // Joining blocks: on the pool, not on the loop.
                let joined: Vec<std::thread::Result<()>> =
                    unblock(move || threads.into_iter().map(|t| t.join()).collect())
                        .await
                        .unwrap();
                let panics: Vec<String> = joined
                    .into_iter()
                    .map(|j| message(&*j.expect_err("each thread panicked")))
                    .collect();
                (polls, panics)
            }
        });
        assert_eq!(
            polls, [2; 4],
            "each task polled once, then once for its wake"
        );
        let expected: Vec<String> = (0..4).map(|i| format!("waker thread {i} boom")).collect();
        assert_eq!(thread_panics, expected);
        ledger.assert_each_dropped_once(&WAITERS);
        assert_still_usable(&rt);
    });
}

/// Collects the wakers the runtime will later be asked to wake from another thread.
type Stash = Rc<RefCell<Vec<Waker>>>;

#[test]
fn a_foreign_waker_panicking_when_its_timer_fires_abandons_block_on_and_tears_the_tree_down() {
    let log = no_hang(|| {
        let rt = paused();
        let ledger = Ledger::new();
        let log = Log::new();
        let stash = Stash::default();
        let reraised = panic_message_of(|| {
            rt.block_on(ledger.track("root", {
                let (ledger, log, stash) = (ledger.clone(), log.clone(), stash.clone());
                async move {
                    let start = Instant::now();
                    drop(spawn(
                        ledger.track("parked", stash_waker_and_wait(stash.clone())),
                    ));
                    let cleaning = spawn(ledger.track("cleaning", {
                        let log = log.clone();
                        async move {
                            until_cancelled().await;
                            let _dropped = LogOnDrop {
                                log: log.clone(),
                                what: "cleaning dropped mid-cleanup",
                                start,
                            };
                            shield(sleep(ms(50))).await.unwrap();
                            log.push("never: cleaning finished its cleanup");
                        }
                    }));
                    drop(spawn(ledger.track(
                        "drop bomb",
                        Bomb {
                            poll_panic: None,
                            drop_panic: Some("drop boom during teardown"),
                        },
                    )));
                    sleep(ms(1)).await.unwrap();
                    cleaning.cancel();
                    // The sleep registers the foreign waker with the reactor; at 6 ms the
                    // reactor wakes it and the panic unwinds out of the loop.
                    with_panicking_waker(sleep(ms(5))).await.unwrap();
                    log.push("never: the root resumed");
                }
            }))
        });
        assert_eq!(reraised, "foreign wake boom");
        // Every task's future was dropped by the teardown, on this thread, exactly once.
        ledger.assert_each_dropped_once(&["root", "parked", "cleaning", "drop bomb"]);
        assert_still_usable(&rt);
        // The runtime goes; the wakers of its torn-down task are fired afterwards.
        drop(rt);
        let wakers = stash.take();
        assert_eq!(wakers.len(), 1);
        std::thread::spawn(move || wakers.iter().for_each(Waker::wake_by_ref))
            .join()
            .expect("waking a dropped runtime's task is a no-op");
        log.take()
    });
    assert_eq!(log, ["cleaning dropped mid-cleanup at 6"]);
}

#[test]
fn a_foreign_waker_panicking_when_its_regions_last_child_finishes_abandons_block_on() {
    no_hang(|| {
        let rt = paused();
        let ledger = Ledger::new();
        let reraised = panic_message_of(|| {
            rt.block_on({
                let ledger = ledger.clone();
                async move {
                    let owner = spawn(ledger.track("owner", {
                        let ledger = ledger.clone();
                        // The shield's region wakes its owner's waker (here the foreign,
                        // panicking one) when its last child finishes.
                        with_panicking_waker(shield(async move {
                            drop(spawn(ledger.track("member", async {
                                sleep(ms(2)).await.unwrap();
                            })));
                            std::future::pending::<()>().await
                        }))
                    }));
                    let _parked = spawn(ledger.track("parked", std::future::pending::<()>()));
                    let _ = owner.await;
                    unreachable!("the owner never finishes");
                }
            })
        });
        assert_eq!(reraised, "foreign wake boom");
        ledger.assert_each_dropped_once(&["owner", "member", "parked"]);
        assert_still_usable(&rt);
    });
}

/// Regression test for a fixed bug: a waker that panics while `cancel()` wakes a subtree loses the wakes of every task
/// after it in the walk. `Core::cancel` collects the wakers, then wakes them with
/// `for_each(Waker::wake)`: the panic unwinds out of that loop and the remaining wakers are
/// dropped unwoken. Those tasks are marked cancelled but never polled again, so a task
/// waiting in `cancelled()` (no timer) sleeps forever: a hang in a normal run, the deadlock
/// report in this seeded one. The root's own panic (the waker's, raised from its
/// `cancel()` call) is lost to that report too.
/// Expected: every marked task is woken even when one waker panics; `b` sees `Explicit` and
/// finishes, and `block_on` re-raises "foreign wake boom" after the cleanup.
#[test]
fn bug_a_panicking_waker_during_cancel_loses_the_wakes_of_the_tasks_after_it() {
    let log = no_hang(|| {
        // Seeded, so the lost wake is reported as a deadlock instead of hanging.
        let rt = Builder::new().seed(1).build().expect("runtime");
        let log = Log::new();
        let reraised = panic_message_of(|| {
            rt.block_on({
                let log = log.clone();
                async move {
                    let parent = spawn({
                        let log = log.clone();
                        async move {
                            let _a = spawn({
                                let log = log.clone();
                                async move {
                                    // A cancel region (a timeout) whose waker is the foreign one.
                                    let body =
                                        timeout(Duration::from_secs(3600), treeloop::cancelled());
                                    let why = with_panicking_waker(body).await.unwrap();
                                    log.push(format!("a saw {:?}", why.reason()));
                                }
                            });
                            let _b = spawn({
                                let log = log.clone();
                                async move {
                                    let why = treeloop::cancelled().await;
                                    log.push(format!("b saw {:?}", why.reason()));
                                }
                            });
                            let why = treeloop::cancelled().await;
                            log.push(format!("parent saw {:?}", why.reason()));
                        }
                    });
                    // Every task is waiting by then.
                    sleep(ms(1)).await.unwrap();
                    parent.cancel();
                    let _ = parent.await;
                }
            })
        });
        assert_eq!(reraised, "foreign wake boom");
        log.take()
    });
    assert_eq!(
        log,
        ["parent saw Explicit", "a saw Explicit", "b saw Explicit"]
    );
}

/// Regression test for a fixed bug: a panic nobody took, recorded during a `block_on` that was then abandoned (a panic
/// unwound out of its loop), is re-raised by the *next* `block_on` on the same runtime. The
/// teardown that runs when `block_on` unwinds drops every task and clears the tree, but not
/// `Core::unhandled`. Expected: the next `block_on(async { 5 })` returns 5 (the stale panic
/// reported, or re-raised by the abandoned run, but not carried into an unrelated one).
#[test]
fn bug_an_unhandled_panic_from_an_abandoned_block_on_resurfaces_in_the_next_one() {
    no_hang(|| {
        let rt = paused();
        let reraised = panic_message_of(|| {
            rt.block_on(async {
                drop(spawn(async { panic!("unhandled, then abandoned") }));
                // The unhandled panic fails the root's region, so the foreign sleep is
                // shielded: it must register its waker for the abandonment to happen.
                shield(with_panicking_waker(sleep(ms(5)))).await.unwrap();
            })
        });
        assert_eq!(reraised, "foreign wake boom");
        let next = catch_unwind(AssertUnwindSafe(|| rt.block_on(async { 5 })))
            .map_err(|payload| message(&*payload));
        assert_eq!(next, Ok(5));
    });
}

// ---------------------------------------------------------------------------------------
// A panic in a timeout's body.
// ---------------------------------------------------------------------------------------

#[test]
fn a_timeout_body_panicking_before_its_deadline_fails_its_task_after_the_bodys_tasks_clean_up() {
    let log = no_hang(|| {
        let rt = paused();
        let ledger = Ledger::new();
        let log = Log::new();
        rt.block_on({
            let (ledger, log) = (ledger.clone(), log.clone());
            async move {
                let start = Instant::now();
                let task = spawn(ledger.track("timed", {
                    let (ledger, log) = (ledger.clone(), log.clone());
                    async move {
                        timeout(ms(10), async move {
                            drop(spawn(ledger.track("spawned in the body", {
                                let log = log.clone();
                                async move {
                                    let why = until_cancelled().await;
                                    log.push(format!(
                                        "body task saw {:?} at {}",
                                        why.reason(),
                                        ms_since(start)
                                    ));
                                    shield(sleep(ms(3))).await.unwrap();
                                    log.push(format!(
                                        "body task cleaned up at {}",
                                        ms_since(start)
                                    ));
                                }
                            })));
                            sleep(ms(2)).await.unwrap();
                            panic!("timeout body boom");
                        })
                        .await
                    }
                }));
                let err = task.await.unwrap_err();
                assert!(err.is_panic() && !err.is_cancelled() && !err.is_aborted());
                log.push(format!(
                    "joined {:?} at {}",
                    message(&*err.into_panic()),
                    ms_since(start)
                ));
                // The dead timeout's timer wakes nothing: the root sleeps past its deadline.
                sleep(ms(20)).await.unwrap();
                log.push(format!("root slept until {}", ms_since(start)));
            }
        });
        assert_eq!(ledger.counts("timed").polls, 2);
        ledger.assert_each_dropped_once(&["timed", "spawned in the body"]);
        assert_still_usable(&rt);
        log.take()
    });
    assert_eq!(
        log,
        [
            "body task saw Failure at 2",
            "body task cleaned up at 5",
            "joined \"timeout body boom\" at 5",
            "root slept until 25",
        ]
    );
}

#[test]
fn a_timeout_body_panicking_in_its_deadline_cleanup_is_reraised_by_block_on_not_elapsed() {
    let log = no_hang(|| {
        let rt = paused();
        let ledger = Ledger::new();
        let log = Log::new();
        let reraised = panic_message_of(|| {
            rt.block_on(ledger.track("root", {
                let (ledger, log) = (ledger.clone(), log.clone());
                async move {
                    let start = Instant::now();
                    timeout(ms(4), async move {
                        drop(spawn(ledger.track("helper", {
                            let log = log.clone();
                            async move {
                                let why = until_cancelled().await;
                                log.push(format!(
                                    "helper saw {:?} at {}",
                                    why.reason(),
                                    ms_since(start)
                                ));
                                shield(sleep(ms(6))).await.unwrap();
                                log.push(format!("helper cleaned up at {}", ms_since(start)));
                            }
                        })));
                        let why = until_cancelled().await;
                        log.push(format!(
                            "body saw {:?} at {}",
                            why.reason(),
                            ms_since(start)
                        ));
                        shield(sleep(ms(1))).await.unwrap();
                        panic!("deadline cleanup boom");
                    })
                    .await
                }
            }))
        });
        // The root's panic, re-raised once the helper finished its cleanup.
        assert_eq!(reraised, "deadline cleanup boom");
        ledger.assert_each_dropped_once(&["root", "helper"]);
        assert_still_usable(&rt);
        log.take()
    });
    assert_eq!(
        log,
        [
            "body saw Deadline at 4",
            "helper saw Deadline at 4",
            "helper cleaned up at 10"
        ]
    );
}

// ---------------------------------------------------------------------------------------
// abort() mid-cleanup, and a task cancelling or aborting itself from its cleanup.
// ---------------------------------------------------------------------------------------

#[test]
fn abort_while_a_task_awaits_in_its_cleanup_shield_drops_it_and_waits_for_shielded_children() {
    let log = no_hang(|| {
        let rt = paused();
        let ledger = Ledger::new();
        let log = Log::new();
        rt.block_on({
            let (ledger, log) = (ledger.clone(), log.clone());
            async move {
                let start = Instant::now();
                let task = spawn(ledger.track("cleaning", {
                    let (ledger, log) = (ledger.clone(), log.clone());
                    async move {
                        until_cancelled().await;
                        log.push(format!("cleanup started at {}", ms_since(start)));
                        let _dropped = LogOnDrop {
                            log: log.clone(),
                            what: "cleanup dropped",
                            start,
                        };
                        shield(async {
                            drop(spawn(ledger.track("shielded helper", {
                                let log = log.clone();
                                async move {
                                    let slept = sleep(ms(3)).await;
                                    log.push(format!(
                                        "helper slept {slept:?} until {}",
                                        ms_since(start)
                                    ));
                                }
                            })));
                            sleep(ms(5)).await.unwrap();
                        })
                        .await;
                        log.push("never: cleanup finished");
                    }
                }));
                sleep(ms(1)).await.unwrap();
                task.cancel();
                sleep(ms(1)).await.unwrap();
                task.abort();
                let err = task.await.unwrap_err();
                assert!(err.is_aborted() && !err.is_panic() && !err.is_cancelled());
                log.push(format!("joined: aborted at {}", ms_since(start)));
            }
        });
        // Started, then saw the cancellation; the abort dropped it without a third poll.
        assert_eq!(ledger.counts("cleaning").polls, 2);
        ledger.assert_each_dropped_once(&["cleaning", "shielded helper"]);
        assert_still_usable(&rt);
        log.take()
    });
    assert_eq!(
        log,
        [
            "cleanup started at 1",
            "cleanup dropped at 2",
            "helper slept Ok(()) until 4",
            "joined: aborted at 4",
        ]
    );
}

/// Where a task finds its own handle.
type OwnHandle<T> = Rc<RefCell<Option<JoinHandle<T>>>>;

/// Calls `f` on the handle in `slot`.
fn with_own<T>(slot: &OwnHandle<T>, f: impl FnOnce(&JoinHandle<T>)) {
    f(slot.borrow().as_ref().expect("the handle is in its slot"));
}

#[test]
fn a_task_cancelling_itself_from_its_cleanup_changes_nothing() {
    let log = no_hang(|| {
        let rt = paused();
        let ledger = Ledger::new();
        let log = Log::new();
        let value = rt.block_on({
            let (ledger, log) = (ledger.clone(), log.clone());
            async move {
                let start = Instant::now();
                let slot: OwnHandle<&'static str> = Rc::default();
                let task = spawn(ledger.track("self-canceller", {
                    let (slot, log) = (slot.clone(), log.clone());
                    async move {
                        let why = until_cancelled().await;
                        shield(async {
                            with_own(&slot, JoinHandle::cancel);
                            // Still shielded: cancelling an already cancelled task marks
                            // nothing new.
                            let slept = sleep(ms(2)).await;
                            log.push(format!(
                                "shielded cleanup slept {slept:?} until {}",
                                ms_since(start)
                            ));
                        })
                        .await;
                        with_own(&slot, JoinHandle::cancel);
                        let after = checkpoint().await;
                        log.push(format!(
                            "after the shield: {after:?}, first seen {:?}",
                            why.reason()
                        ));
                        "cleaned up"
                    }
                }));
                *slot.borrow_mut() = Some(task);
                sleep(ms(1)).await.unwrap();
                with_own(&slot, JoinHandle::cancel);
                // Wait for the task before taking its handle out of the slot it uses.
                sleep(ms(10)).await.unwrap();
                let task = slot.borrow_mut().take().expect("the handle");
                assert!(task.is_finished());
                task.await.unwrap()
            }
        });
        assert_eq!(value, "cleaned up");
        ledger.assert_each_dropped_once(&["self-canceller"]);
        assert_still_usable(&rt);
        log.take()
    });
    assert_eq!(
        log,
        [
            "shielded cleanup slept Ok(()) until 3",
            "after the shield: Err(Cancelled { reason: Explicit }), first seen Explicit",
        ]
    );
}

#[test]
fn a_task_aborting_itself_from_its_cleanup_is_dropped_at_its_next_await() {
    let log = no_hang(|| {
        let rt = paused();
        let ledger = Ledger::new();
        let log = Log::new();
        let err = rt.block_on({
            let (ledger, log) = (ledger.clone(), log.clone());
            async move {
                let start = Instant::now();
                let slot: OwnHandle<()> = Rc::default();
                let task = spawn(ledger.track("self-aborter", {
                    let (slot, log) = (slot.clone(), log.clone());
                    async move {
                        until_cancelled().await;
                        let _dropped = LogOnDrop {
                            log: log.clone(),
                            what: "self-aborter dropped",
                            start,
                        };
                        with_own(&slot, JoinHandle::abort);
                        // Synchronous code is never interrupted: the abort takes effect when
                        // this poll returns.
                        log.push(format!(
                            "abort requested at {}, still running",
                            ms_since(start)
                        ));
                        shield(sleep(ms(2))).await.unwrap();
                        log.push("never: slept after aborting itself");
                    }
                }));
                *slot.borrow_mut() = Some(task);
                sleep(ms(1)).await.unwrap();
                with_own(&slot, JoinHandle::cancel);
                sleep(ms(10)).await.unwrap();
                let task = slot.borrow_mut().take().expect("the handle");
                task.await.unwrap_err()
            }
        });
        assert!(err.is_aborted() && !err.is_panic() && !err.is_cancelled());
        assert_eq!(ledger.counts("self-aborter").polls, 2);
        ledger.assert_each_dropped_once(&["self-aborter"]);
        assert_still_usable(&rt);
        log.take()
    });
    assert_eq!(
        log,
        [
            "abort requested at 1, still running",
            "self-aborter dropped at 1"
        ]
    );
}

// ---------------------------------------------------------------------------------------
// Runtimes dropped after a failed or abandoned block_on.
// ---------------------------------------------------------------------------------------

#[test]
fn a_runtime_dropped_after_its_root_panicked_ignores_the_wakers_of_its_tasks() {
    no_hang(|| {
        let rt = paused();
        let ledger = Ledger::new();
        let log = Log::new();
        let stash = Stash::default();
        let reraised = panic_message_of(|| {
            rt.block_on({
                let (ledger, log, stash) = (ledger.clone(), log.clone(), stash.clone());
                async move {
                    let start = Instant::now();
                    for name in ["parked 0", "parked 1", "parked 2"] {
                        let (log, stash) = (log.clone(), stash.clone());
                        drop(spawn(ledger.track(name, async move {
                            // Hands out its waker, then waits to be cancelled.
                            poll_fn(|cx| {
                                stash.borrow_mut().push(cx.waker().clone());
                                Poll::Ready(())
                            })
                            .await;
                            let why = until_cancelled().await;
                            shield(sleep(ms(2))).await.unwrap();
                            log.push(format!(
                                "{name} saw {:?}, cleaned up at {}",
                                why.reason(),
                                ms_since(start)
                            ));
                        })));
                    }
                    sleep(ms(1)).await.unwrap();
                    panic!("root boom with parked children");
                }
            })
        });
        assert_eq!(reraised, "root boom with parked children");
        assert_eq!(
            log.take(),
            [
                "parked 0 saw Failure, cleaned up at 3",
                "parked 1 saw Failure, cleaned up at 3",
                "parked 2 saw Failure, cleaned up at 3",
            ]
        );
        let polls: Vec<usize> = ["parked 0", "parked 1", "parked 2"]
            .iter()
            .map(|name| ledger.counts(name).polls)
            .collect();
        assert_still_usable(&rt);
        drop(rt);
        let wakers = stash.take();
        assert_eq!(wakers.len(), 3);
        // Wake every task of the dropped runtime from another thread, many times over.
        std::thread::spawn(move || {
            for _ in 0..1_000 {
                wakers.iter().for_each(Waker::wake_by_ref);
            }
            wakers.into_iter().for_each(Waker::wake);
        })
        .join()
        .expect("waking a dropped runtime's tasks is a no-op");
        for (name, polls) in ["parked 0", "parked 1", "parked 2"].iter().zip(polls) {
            assert_eq!(
                ledger.counts(name).polls,
                polls,
                "{name} polled after the runtime was dropped"
            );
        }
        ledger.assert_each_dropped_once(&["parked 0", "parked 1", "parked 2"]);
        // A new runtime on this thread is not disturbed.
        assert_still_usable(&paused());
    });
}

#[test]
fn a_deadlocked_block_on_is_abandoned_with_its_parked_tasks_dropped_once_and_the_runtime_survives()
{
    no_hang(|| {
        // Seeded: nothing can ever wake these tasks, so the loop reports a deadlock (a panic
        // out of `block_on`) instead of blocking forever.
        let rt = Builder::new().seed(5).build().expect("runtime");
        let ledger = Ledger::new();
        let log = Log::new();
        let stash = Stash::default();
        let report = panic_message_of(|| {
            rt.block_on(ledger.track("root", {
                let (ledger, log, stash) = (ledger.clone(), log.clone(), stash.clone());
                async move {
                    let start = Instant::now();
                    drop(spawn(ledger.track(
                        "foreign waiter",
                        stash_waker_and_wait(stash.clone()),
                    )));
                    let stuck = spawn(ledger.track("stuck in cleanup", {
                        let (log, stash) = (log.clone(), stash.clone());
                        async move {
                            until_cancelled().await;
                            let _dropped = LogOnDrop {
                                log,
                                what: "stuck in cleanup dropped",
                                start,
                            };
                            shield(stash_waker_and_wait(stash)).await;
                        }
                    }));
                    drop(spawn(ledger.track(
                        "drop bomb",
                        Bomb {
                            poll_panic: None,
                            drop_panic: Some("drop boom during teardown"),
                        },
                    )));
                    sleep(ms(1)).await.unwrap();
                    stuck.cancel();
                    stash_waker_and_wait(stash).await;
                }
            }))
        });
        assert!(report.starts_with("treeloop deadlock"), "got: {report}");
        ledger.assert_each_dropped_once(&[
            "root",
            "foreign waiter",
            "stuck in cleanup",
            "drop bomb",
        ]);
        assert_eq!(log.take(), ["stuck in cleanup dropped at 1"]);
        assert_still_usable(&rt);
        drop(rt);
        let wakers = stash.take();
        assert_eq!(wakers.len(), 3, "two tasks' wakers and the root's");
        std::thread::spawn(move || wakers.into_iter().for_each(Waker::wake))
            .join()
            .expect("waking a dropped runtime's tasks is a no-op");
    });
}
