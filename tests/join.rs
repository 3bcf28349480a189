//! `JoinHandle`: joining is an await point (R6) that leaves the outcome in place when it is
//! cancelled; dropping a handle neither detaches nor cancels (R2); `abort()` drops a future
//! that ignores cancellation (R20); `cancel`/`abort` on a finished task do nothing.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use common::{Counters, Forever, Log, ms, ms_since, paused};
use treeloop::time::{Instant, sleep, sleep_until};
use treeloop::{CancelReason, Cancelled, checkpoint, shield, spawn, yield_now};

/// Sleeps until the region is cancelled and returns the cancellation; an hour of virtual
/// time passing first fails the test.
async fn until_cancelled() -> Cancelled {
    sleep(Duration::from_secs(3600))
        .await
        .expect_err("expected to be cancelled before the hour passed")
}

use common::message;

#[test]
fn is_finished_turns_true_only_when_the_task_and_its_descendants_finished() {
    let seen = paused().block_on(async {
        let start = Instant::now();
        let task = spawn(async {
            drop(spawn(async { sleep(ms(10)).await.unwrap() }));
            "returned at once"
        });
        let mut seen = Vec::new();
        for at in [0, 9, 11] {
            sleep_until(start + ms(at)).await.unwrap();
            seen.push((ms_since(start), task.is_finished()));
        }
        assert_eq!(task.await.unwrap(), "returned at once");
        seen
    });
    assert_eq!(seen, [(0, false), (9, false), (11, true)]);
}

#[test]
fn dropped_handle_task_stays_its_parents_child_and_runs_to_completion() {
    let log = Log::new();
    paused().block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let parent = spawn({
                let log = log.clone();
                async move {
                    let child = spawn({
                        let log = log.clone();
                        async move {
                            let slept = sleep(ms(8)).await;
                            log.push(format!("child slept: {slept:?} at {}", ms_since(start)));
                        }
                    });
                    // Neither detached nor cancelled.
                    drop(child);
                    log.push("parent returned");
                }
            });
            parent.await.unwrap();
            log.push(format!("parent joined at {}", ms_since(start)));
        }
    });
    assert_eq!(
        log.take(),
        [
            "parent returned",
            "child slept: Ok(()) at 8",
            "parent joined at 8"
        ]
    );
}

#[test]
fn cancelled_task_output_is_its_own_result_not_a_join_error() {
    let joined = paused().block_on(async {
        let task = spawn(until_cancelled());
        checkpoint().await.unwrap();
        task.cancel();
        task.cancel(); // twice is harmless
        task.await
    });
    let returned = joined.expect("the join itself was not interrupted");
    assert_eq!(returned.reason(), CancelReason::Explicit);
}

#[test]
fn join_in_a_cancelled_region_is_cancelled_even_when_the_outcome_is_ready() {
    let seen = paused().block_on(async {
        let start = Instant::now();
        let parent = spawn(async move {
            let mut child = spawn(async { 42 });
            let cancelled = until_cancelled().await;
            assert!(child.is_finished(), "the child returned long before");
            let first = (&mut child).await.unwrap_err();
            assert!(first.is_cancelled() && !first.is_panic() && !first.is_aborted());
            let again = (&mut child).await.unwrap_err();
            assert_eq!(
                first.as_cancelled(),
                again.as_cancelled(),
                "level-triggered"
            );
            let kept = shield(&mut child).await.unwrap();
            (cancelled, first.as_cancelled(), kept, ms_since(start))
        });
        sleep(ms(3)).await.unwrap();
        parent.cancel();
        parent.await.unwrap()
    });
    let explicit = Cancelled::new(CancelReason::Explicit);
    assert_eq!(seen, (explicit, Some(explicit), 42, 3));
}

#[test]
fn cancelled_join_returns_at_once_and_a_shielded_join_waits_for_the_value() {
    let log = Log::new();
    paused().block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let parent = spawn({
                let log = log.clone();
                async move {
                    let mut child = spawn(async {
                        shield(sleep(ms(10))).await.unwrap();
                        42
                    });
                    let err = (&mut child).await.unwrap_err();
                    log.push(format!(
                        "join cancelled ({:?}) at {}",
                        err.as_cancelled().map(|c| c.reason()),
                        ms_since(start)
                    ));
                    let value = shield(&mut child).await.unwrap();
                    log.push(format!("shielded join got {value} at {}", ms_since(start)));
                }
            });
            sleep(ms(3)).await.unwrap();
            parent.cancel();
            parent.await.unwrap();
        }
    });
    assert_eq!(
        log.take(),
        [
            "join cancelled (Some(Explicit)) at 3",
            "shielded join got 42 at 10"
        ]
    );
}

#[test]
fn cancelled_join_leaves_the_panic_payload_for_a_shielded_join() {
    let seen = paused().block_on(async {
        let parent = spawn(async {
            let mut child = spawn(async {
                checkpoint().await.unwrap();
                panic!("kept for later");
            });
            // The child's panic goes to its live handle: this region is not failed by it,
            // so the cancellation seen here is the explicit one from the root.
            let cancelled = until_cancelled().await;
            let first = (&mut child).await.unwrap_err();
            let payload = shield(&mut child).await.unwrap_err().into_panic();
            (cancelled.reason(), first.is_cancelled(), message(&*payload))
        });
        sleep(ms(2)).await.unwrap();
        parent.cancel();
        parent.await.unwrap()
    });
    // block_on returned normally: the payload was taken, not re-raised.
    assert_eq!(
        seen,
        (CancelReason::Explicit, true, "kept for later".to_string())
    );
}

#[test]
fn abort_drops_a_future_that_ignores_cancel_without_polling_it_again() {
    let forever_polls = Rc::new(Cell::new(0));
    let counters = Counters::new();
    paused().block_on({
        let forever_polls = forever_polls.clone();
        let counters = counters.clone();
        async move {
            let task = spawn(counters.probe(Forever(forever_polls)));
            checkpoint().await.unwrap();
            assert_eq!(counters.polls(), 1);
            task.cancel();
            checkpoint().await.unwrap();
            // Woken once by the cancel (R9), and still running.
            assert_eq!((counters.polls(), counters.drops()), (2, 0));
            assert!(!task.is_finished());
            task.abort();
            let err = task.await.unwrap_err();
            assert!(err.is_aborted() && !err.is_cancelled() && !err.is_panic());
        }
    });
    assert_eq!((counters.polls(), counters.drops()), (2, 1));
    assert_eq!(forever_polls.get(), 2);
}

#[test]
fn abort_cancels_the_children_and_resolves_after_their_cleanup() {
    let log = Log::new();
    let forever_polls = Rc::new(Cell::new(0));
    paused().block_on({
        let log = log.clone();
        let forever_polls = forever_polls.clone();
        async move {
            let start = Instant::now();
            let task = spawn({
                let log = log.clone();
                async move {
                    let _child = spawn({
                        let log = log.clone();
                        async move {
                            let err = until_cancelled().await;
                            log.push(format!("child: {:?} at {}", err.reason(), ms_since(start)));
                            shield(sleep(ms(4))).await.unwrap();
                            log.push(format!("child cleaned up at {}", ms_since(start)));
                        }
                    });
                    Forever(forever_polls).await
                }
            });
            sleep(ms(1)).await.unwrap();
            task.abort();
            let err = task.await.unwrap_err();
            log.push(format!(
                "join: aborted={} at {}",
                err.is_aborted(),
                ms_since(start)
            ));
        }
    });
    assert_eq!(
        log.take(),
        [
            "child: Explicit at 1",
            "child cleaned up at 5",
            "join: aborted=true at 5"
        ]
    );
    assert_eq!(
        forever_polls.get(),
        1,
        "the aborted future was not polled again"
    );
}

#[test]
fn cancel_and_abort_on_a_finished_task_change_nothing() {
    let seen = paused().block_on(async {
        let start = Instant::now();
        let sibling = spawn(async { sleep(ms(5)).await });
        let task = spawn(async { 7 });
        while !task.is_finished() {
            yield_now().await.unwrap();
        }
        task.cancel();
        task.abort();
        // Cancellation never flows up or sideways: the root and the sibling are untouched.
        let root_checkpoint = checkpoint().await;
        let sibling_slept = sibling.await.unwrap();
        (
            task.await.unwrap(),
            root_checkpoint,
            sibling_slept,
            ms_since(start),
        )
    });
    assert_eq!(seen, (7, Ok(()), Ok(()), 5));
}

#[test]
fn abort_after_the_future_returned_keeps_its_value_and_cancels_the_children() {
    let log = Log::new();
    let joined = paused().block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let task = spawn({
                let log = log.clone();
                async move {
                    drop(spawn({
                        let log = log.clone();
                        async move {
                            let err = until_cancelled().await;
                            log.push(format!("child: {:?} at {}", err.reason(), ms_since(start)));
                            shield(sleep(ms(2))).await.unwrap();
                        }
                    }));
                    "value"
                }
            });
            sleep(ms(1)).await.unwrap();
            assert!(!task.is_finished(), "completing: waits for its child");
            task.abort();
            let joined = task.await;
            log.push(format!("joined at {}", ms_since(start)));
            joined
        }
    });
    assert_eq!(joined.unwrap(), "value");
    assert_eq!(log.take(), ["child: Explicit at 1", "joined at 3"]);
}

#[test]
fn task_ids_are_distinct_and_stable_across_completion() {
    paused().block_on(async {
        let a = spawn(async {});
        let b = spawn(async {});
        let (id_a, id_b) = (a.id(), b.id());
        assert_ne!(id_a, id_b);
        assert!(id_a < id_b, "ids follow spawn order");
        while !(a.is_finished() && b.is_finished()) {
            yield_now().await.unwrap();
        }
        assert_eq!((a.id(), b.id()), (id_a, id_b));
        let c = spawn(async {});
        assert!(c.id() > id_b, "ids of finished tasks are not reused");
    });
}
