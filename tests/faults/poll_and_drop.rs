//! Faults in a future's own `poll` and `Drop`: a task's future panicking in both, the root's
//! future panicking in its `Drop` (and, in a child process, in both), and a `spawn` from the
//! `Drop` of a future the runtime itself drops.
//!
//! Ground rule: the child-process test re-runs this test binary with `--exact` and the full
//! name of [`child_root_future_panicking_in_poll_and_in_drop`], module path included
//! (`poll_and_drop::...`); moving or renaming that test means updating the name passed.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::common::{Log, message, ms, ms_since, paused};
use crate::support::{Bomb, Ledger, assert_still_usable, no_hang, panic_message_of};
use treeloop::time::{Instant, sleep};
use treeloop::{checkpoint, spawn};

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
                // The child test's full name: libtest names it with its module path.
                "poll_and_drop::child_root_future_panicking_in_poll_and_in_drop",
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
/// The abort becomes a panic with an internal message, and `live_nodes()` stays 1 after
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
        (joined, rt.live_nodes())
    });
    assert_eq!((joined.as_str(), live_after), ("aborted", 0));
}
