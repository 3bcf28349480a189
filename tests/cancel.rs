//! Cancellation delivery: subtree marks (R5), level-triggered await points (R6), spawning
//! into a cancelled region (R8), foreign futures (R9), direction (R10), unshielded cleanup
//! (R12).

mod common;

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;

use common::{Counters, Forever, Log, ms, ms_since, paused};
use treeloop::time::{Instant, sleep};
use treeloop::{CancelReason, Cancelled, FutureExt, cancelled_here, checkpoint, spawn, yield_now};

/// Spawns a task that sleeps an hour and logs how the sleep ended and when.
fn sleeper(log: &Log, name: &'static str, start: Instant) -> treeloop::JoinHandle<()> {
    let log = log.clone();
    spawn(async move {
        let result = sleep(ms(3_600_000)).await;
        log.push(format!("{name}: {result:?} at {} ms", ms_since(start)));
    })
}

#[test]
fn cancel_marks_the_whole_subtree_and_wakes_it_without_timers() {
    let log = Log::new();
    paused().block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let top = spawn({
                let log = log.clone();
                async move {
                    let child = sleeper(&log, "child", start);
                    let grandchild_parent = spawn({
                        let log = log.clone();
                        async move {
                            let grandchild = sleeper(&log, "grandchild", start);
                            let r = sleep(ms(3_600_000)).await;
                            log.push(format!("middle: {r:?} at {} ms", ms_since(start)));
                            drop(grandchild);
                        }
                    });
                    let r = sleep(ms(3_600_000)).await;
                    log.push(format!("top: {r:?} at {} ms", ms_since(start)));
                    drop((child, grandchild_parent));
                }
            });
            sleep(ms(5)).await.unwrap();
            top.cancel();
            top.await.unwrap();
            ms_since(start)
        }
    });
    let mut got = log.take();
    got.sort();
    let cancelled = "Err(Cancelled { reason: Explicit }) at 5 ms";
    assert_eq!(
        got,
        [
            format!("child: {cancelled}"),
            format!("grandchild: {cancelled}"),
            format!("middle: {cancelled}"),
            format!("top: {cancelled}"),
        ],
        "every task in the subtree woke at the cancel instant, not at its timer"
    );
}

#[test]
fn every_await_point_fails_again_and_again_in_a_cancelled_region() {
    paused().block_on(async {
        let task = spawn(async {
            // Wait to be cancelled.
            let _ = sleep(ms(1_000)).await;
            let finished = spawn(async { 1 });
            let mut failures = Vec::new();
            for _ in 0..3 {
                failures.push(sleep(ms(0)).await.is_err());
                failures.push(checkpoint().await.is_err());
                failures.push(yield_now().await.is_err());
                failures.push(std::future::ready(()).or_cancel().await.is_err());
                failures.push(cancelled_here().is_some());
            }
            // The finished child's join is an await point too: it fails, repeatedly.
            let mut finished = finished;
            for _ in 0..3 {
                let joined =
                    std::future::poll_fn(|cx| std::pin::Pin::new(&mut finished).poll(cx)).await;
                failures.push(joined.is_err_and(|e| e.is_cancelled()));
            }
            failures
        });
        checkpoint().await.unwrap();
        task.cancel();
        let failures = task.await.unwrap();
        assert_eq!(failures.len(), 18);
        assert!(failures.iter().all(|&f| f), "{failures:?}");
    });
}

#[test]
fn synchronous_code_is_never_interrupted() {
    paused().block_on(async {
        let me: Rc<std::cell::RefCell<Option<treeloop::JoinHandle<_>>>> = Rc::default();
        let steps = Rc::new(Cell::new(0));
        let task = spawn({
            let (me, steps) = (me.clone(), steps.clone());
            async move {
                checkpoint().await.unwrap();
                // Cancel our own subtree, then keep going synchronously: nothing stops us
                // before the next await point.
                me.borrow().as_ref().map(treeloop::JoinHandle::cancel);
                for _ in 0..1_000 {
                    steps.set(steps.get() + 1);
                }
                let marked = cancelled_here();
                (marked, checkpoint().await)
            }
        });
        *me.borrow_mut() = Some(task);
        let task = std::future::poll_fn(|cx| {
            let mut slot = me.borrow_mut();
            let handle = slot.as_mut().expect("handle");
            std::pin::Pin::new(handle).poll(cx)
        });
        let (marked, result) = task.await.unwrap();
        assert_eq!(steps.get(), 1_000);
        let cancelled = Cancelled::new(CancelReason::Explicit);
        assert_eq!(marked, Some(cancelled));
        assert_eq!(result, Err(cancelled));
    });
}

#[test]
fn a_task_spawned_into_a_cancelled_region_starts_and_fails_at_its_first_await() {
    let log = Log::new();
    paused().block_on({
        let log = log.clone();
        async move {
            let parent = spawn({
                let log = log.clone();
                async move {
                    let _ = sleep(ms(1_000)).await; // cancelled here
                    let counters = Counters::new();
                    let late = spawn(counters.probe({
                        let log = log.clone();
                        async move {
                            log.push("late child started");
                            let r = checkpoint().await;
                            log.push(format!("late child's first await: {r:?}"));
                        }
                    }));
                    // A child that never reaches an await point completes normally.
                    let no_await = spawn(async { 5 });
                    let _ = treeloop::shield(async {
                        late.await.unwrap();
                        log.push(format!(
                            "no-await child returned {:?}",
                            no_await.await.unwrap()
                        ));
                    })
                    .await;
                    // Two polls: the checkpoint yields once, cancelled or not.
                    assert_eq!((counters.polls(), counters.drops()), (2, 1));
                }
            });
            checkpoint().await.unwrap();
            parent.cancel();
            parent.await.unwrap();
        }
    });
    assert_eq!(
        log.take(),
        [
            "late child started",
            "late child's first await: Err(Cancelled { reason: Explicit })",
            "no-await child returned 5"
        ]
    );
}

#[test]
fn a_foreign_future_is_woken_once_and_or_cancel_lets_it_observe() {
    paused().block_on(async {
        let polls = Rc::new(Cell::new(0));
        let wrapped_polls = Rc::new(Cell::new(0));
        let ignorer = spawn(Forever(polls.clone()));
        let observer = spawn(Forever(wrapped_polls.clone()).or_cancel());
        sleep(ms(10)).await.unwrap();
        assert_eq!((polls.get(), wrapped_polls.get()), (1, 1));
        ignorer.cancel();
        observer.cancel();
        sleep(ms(10)).await.unwrap();
        // R9: the foreign future cannot see the cancellation, but its task was woken once.
        assert_eq!(polls.get(), 2);
        assert!(!ignorer.is_finished());
        // The wrapper noticed at that wake-up, without polling the inner future again.
        assert_eq!(wrapped_polls.get(), 1);
        assert_eq!(
            observer.await.unwrap(),
            Err(Cancelled::new(CancelReason::Explicit))
        );
        ignorer.abort();
        assert!(ignorer.await.unwrap_err().is_aborted());
    });
}

#[test]
fn cancelling_twice_is_harmless_and_the_first_reason_stays() {
    paused().block_on(async {
        let wakes = Counters::new();
        let task = spawn(wakes.probe(async {
            let first = sleep(ms(1_000)).await;
            let second = checkpoint().await;
            (first, second)
        }));
        checkpoint().await.unwrap();
        task.cancel();
        task.cancel();
        let (first, second) = task.await.unwrap();
        assert_eq!(first, Err(Cancelled::new(CancelReason::Explicit)));
        assert_eq!(second, first);
        assert_eq!(
            wakes.polls(),
            3,
            "one poll to start, one wake for the cancel, one after the checkpoint's yield"
        );
    });
}

#[test]
fn cancellation_flows_down_never_up_or_sideways() {
    let log = Log::new();
    paused().block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let parent = spawn({
                let log = log.clone();
                async move {
                    let doomed = sleeper(&log, "cancelled child", start);
                    let sibling = sleeper(&log, "sibling", start);
                    sleep(ms(1)).await.unwrap();
                    doomed.cancel();
                    let r = sleep(ms(50)).await;
                    log.push(format!("parent: {r:?} at {} ms", ms_since(start)));
                    sibling.cancel();
                }
            });
            parent.await.unwrap();
        }
    });
    assert_eq!(
        log.take(),
        [
            "cancelled child: Err(Cancelled { reason: Explicit }) at 1 ms",
            "parent: Ok(()) at 51 ms",
            "sibling: Err(Cancelled { reason: Explicit }) at 51 ms",
        ]
    );
}

#[test]
fn unshielded_cleanup_cannot_hang() {
    paused().block_on(async {
        let start = Instant::now();
        let task = spawn(async move {
            if sleep(ms(1_000)).await.is_err() {
                // Cleanup that forgets the shield: every await fails at once.
                let cleanup = sleep(ms(3_600_000)).await;
                return (cleanup, ms_since(start));
            }
            unreachable!("cancelled before the sleep ended");
        });
        sleep(ms(7)).await.unwrap();
        task.cancel();
        let (cleanup, at) = task.await.unwrap();
        assert!(cleanup.is_err());
        assert_eq!(at, 7, "the hour-long cleanup sleep returned at once");
        assert_eq!(ms_since(start), 7);
    });
}

#[test]
fn cancelled_converts_to_an_io_error_that_keeps_its_reason() {
    let err: std::io::Error = Cancelled::new(CancelReason::Shutdown).into();
    assert_eq!(err.kind(), std::io::ErrorKind::Other);
    assert_eq!(
        Cancelled::from_io(&err).map(|c| c.reason()),
        Some(CancelReason::Shutdown)
    );
    assert_eq!(
        err.to_string(),
        "operation cancelled: the runtime is shutting down"
    );
    let plain = std::io::Error::other("not a cancellation");
    assert_eq!(Cancelled::from_io(&plain), None);
}

#[test]
fn cancelling_a_finished_task_does_nothing() {
    paused().block_on(async {
        let done = spawn(async { 3 });
        let other = spawn(async { sleep(ms(10)).await });
        checkpoint().await.unwrap();
        checkpoint().await.unwrap();
        assert!(done.is_finished());
        done.cancel();
        done.abort();
        assert_eq!(done.await.unwrap(), 3);
        assert_eq!(other.await.unwrap(), Ok(()), "no other task was touched");
    });
}

#[test]
fn cancelled_waits_for_the_cancellation_and_reports_its_reason() {
    paused().block_on(async {
        let start = Instant::now();
        let server = spawn(async move {
            let why = treeloop::cancelled().await;
            (why, ms_since(start))
        });
        sleep(ms(25)).await.unwrap();
        assert!(!server.is_finished(), "still serving before the cancel");
        server.cancel();
        let (why, at) = server.await.unwrap();
        assert_eq!(why, Cancelled::new(CancelReason::Explicit));
        assert_eq!(at, 25);
    });
}

#[test]
fn shutdown_cancels_the_whole_tree_with_reason_shutdown() {
    let log = Log::new();
    paused().block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let a = sleeper(&log, "a", start);
            let b = spawn({
                let log = log.clone();
                async move {
                    let inner = sleeper(&log, "b's child", start);
                    let why = treeloop::cancelled().await;
                    log.push(format!("b: {:?}", why.reason()));
                    drop(inner);
                }
            });
            sleep(ms(3)).await.unwrap();
            treeloop::shutdown();
            treeloop::shutdown();
            let root = checkpoint().await;
            log.push(format!("root: {root:?}"));
            drop((a, b));
        }
    });
    let mut got = log.take();
    got.sort();
    assert_eq!(
        got,
        [
            "a: Err(Cancelled { reason: Shutdown }) at 3 ms",
            "b's child: Err(Cancelled { reason: Shutdown }) at 3 ms",
            "b: Shutdown",
            "root: Err(Cancelled { reason: Shutdown })",
        ]
    );
}
