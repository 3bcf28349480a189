//! Faults at teardown: a `block_on` abandoned with tasks parked (a panic unwinding out of its
//! loop, a seeded deadlock report), and runtimes dropped after a failed or abandoned run, whose
//! tasks' wakers still fire from other threads.

use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::task::{Poll, Waker};

use crate::common::{Log, message, ms, ms_since, paused};
use crate::support::{
    Bomb, Ledger, LogOnDrop, Stash, assert_still_usable, no_hang, panic_message_of,
    stash_waker_and_wait, until_cancelled, with_panicking_waker,
};
use treeloop::time::{Instant, sleep};
use treeloop::{Builder, shield, spawn, yield_now};

// ---------------------------------------------------------------------------------------
// Runtimes dropped after a failed or abandoned block_on.
// ---------------------------------------------------------------------------------------

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

/// Runs `tasks` as the start of a `block_on` on a paused runtime whose reports are
/// collected, then abandons that `block_on` (a panic unwinding out of its loop, which tears
/// the tasks down); returns the reports that mention `text`.
fn reports_after_abandoning(tasks: impl Future<Output = ()>, text: &str) -> Vec<String> {
    let reports = Rc::new(RefCell::new(Vec::new()));
    let sink = reports.clone();
    let rt = Builder::new()
        .start_paused(true)
        .report_sink(move |report| sink.borrow_mut().push(report.to_string()))
        .build()
        .expect("runtime");
    let reraised = panic_message_of(|| {
        rt.block_on(async {
            tasks.await;
            shield(with_panicking_waker(sleep(ms(5)))).await.unwrap();
        })
    });
    assert_eq!(reraised, "foreign wake boom");
    let reports = reports.take();
    reports
        .into_iter()
        .filter(|report| report.contains(text))
        .collect()
}

/// A task whose handle is gone and whose future panics when the teardown of an abandoned
/// `block_on` drops it: the panic has nobody to go to, so it is reported (R17), not lost
/// with the task.
#[test]
fn a_panic_of_a_future_dropped_by_the_teardown_is_reported() {
    no_hang(|| {
        let about = reports_after_abandoning(
            async {
                drop(spawn(Bomb {
                    poll_panic: None,
                    drop_panic: Some("boom while torn down"),
                }));
            },
            "boom while torn down",
        );
        assert_eq!(about.len(), 1, "reported once: {about:?}");
        assert!(
            about[0].contains("teardown.rs"),
            "names the task: {about:?}"
        );
    });
}

/// The same for a task that panicked while its handle was alive and was still waiting for a
/// child when the handle went: at teardown its stored panic has nobody to go to either.
#[test]
fn a_stored_panic_whose_handle_went_while_children_ran_is_reported_at_teardown() {
    no_hang(|| {
        let about = reports_after_abandoning(
            async {
                let parent = spawn(async {
                    // Deaf to the cancellation the panic sends it: keeps the parent waiting.
                    drop(spawn(Bomb {
                        poll_panic: None,
                        drop_panic: None,
                    }));
                    panic!("parent boom, child still running");
                });
                yield_now().await.unwrap(); // the parent runs and panics
                drop(parent);
            },
            "parent boom, child still running",
        );
        assert_eq!(about.len(), 1, "reported once: {about:?}");
    });
}

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

/// Regression test (found in review): a shield's region that outlived a `block_on` which
/// unwound (the teardown cleared the tree) kept its slab key. Polled in the next `block_on`,
/// it wrote its waker into whatever node had that key by then, here a task's, so cancelling
/// that task woke the shield's waker instead of the task, and, since a cancel wakes a task's
/// own waker during the tree walk, a waker that looks at the tree panicked on a double
/// borrow. Expected: a stale region is entered as nothing, and the task is cancelled and
/// joins normally.
#[test]
fn bug_a_region_outliving_an_unwound_block_on_does_not_touch_the_node_that_reuses_its_key() {
    use std::cell::RefCell;
    use std::future::Future;
    use std::pin::Pin;
    use std::rc::Rc;
    use std::sync::Arc;
    use std::task::{Context, Wake};

    type Boxed = Pin<Box<dyn Future<Output = ()>>>;
    /// A waker that looks at the tree when woken, as any treeloop await point would.
    struct Peeks;
    impl Wake for Peeks {
        fn wake(self: Arc<Self>) {
            let _ = treeloop::cancelled_here();
        }
    }

    no_hang(|| {
        let rt = Builder::new()
            .start_paused(true)
            .report_deadlocks(true)
            .build()
            .unwrap();
        let kept: Rc<RefCell<Option<Boxed>>> = Rc::new(RefCell::new(None));
        // 1. The shield's node is opened by the spawn inside; the shield then waits
        //    forever, so the block_on reports a deadlock and unwinds, clearing the tree.
        let first = catch_unwind(AssertUnwindSafe(|| {
            rt.block_on({
                let kept = kept.clone();
                async move {
                    let mut stale: Boxed = Box::pin(shield(async {
                        drop(spawn(async {}));
                        std::future::pending::<()>().await
                    }));
                    poll_fn(|cx| {
                        assert!(stale.as_mut().poll(cx).is_pending());
                        Poll::Ready(())
                    })
                    .await;
                    *kept.borrow_mut() = Some(stale);
                }
            })
        }));
        assert!(first.is_err(), "the first block_on reports a deadlock");
        // 2. A task takes the freed key; the stale shield is polled with a foreign waker.
        let joined = rt.block_on(async {
            let task = spawn(async {
                let mut checkpoints = 0;
                while treeloop::checkpoint().await.is_ok() {
                    checkpoints += 1;
                }
                checkpoints
            });
            let mut stale = kept.borrow_mut().take().unwrap();
            let peeks = Waker::from(Arc::new(Peeks));
            assert!(
                stale
                    .as_mut()
                    .poll(&mut Context::from_waker(&peeks))
                    .is_pending()
            );
            task.cancel();
            drop(stale);
            task.await
        });
        assert_eq!(joined.unwrap(), 0, "cancelled before its first checkpoint");
        assert_eq!(rt.live_nodes(), 0);
        assert_still_usable(&rt);
    });
}
