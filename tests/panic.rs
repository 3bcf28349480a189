//! Panicking tasks (R17): where the payload goes, what gets cancelled, and that cleanup
//! finishes before `block_on` re-raises.

mod common;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, panic_any};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use common::{Counters, Log, ms, ms_since, paused};
use treeloop::time::{Instant, sleep};
use treeloop::{CancelReason, Cancelled, checkpoint, shield, spawn};

/// Sleeps until the region is cancelled and returns the cancellation; an hour of virtual
/// time passing first fails the test.
async fn until_cancelled() -> Cancelled {
    sleep(Duration::from_secs(3600))
        .await
        .expect_err("expected to be cancelled before the hour passed")
}

use common::message;

/// A future that completes (or waits forever) and panics when dropped.
struct PanicOnDrop {
    /// `Some(v)`: ready with `v` at the first poll; `None`: pending forever.
    ready: Option<u32>,
    /// Where the drop is recorded before the panic.
    log: Log,
}

impl Future for PanicOnDrop {
    type Output = u32;
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<u32> {
        match self.ready {
            Some(value) => Poll::Ready(value),
            None => Poll::Pending,
        }
    }
}

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        self.log.push("future dropped");
        panic!("drop boom");
    }
}

#[test]
fn panic_with_a_live_handle_goes_to_the_handle_and_spares_the_parent() {
    let log = Log::new();
    let value = paused().block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let sibling = spawn({
                let log = log.clone();
                async move {
                    let slept = sleep(ms(10)).await;
                    log.push(format!("sibling slept: {slept:?} at {}", ms_since(start)));
                }
            });
            let failing = spawn(async {
                checkpoint().await.unwrap();
                panic!("boom");
            });
            let err = failing.await.unwrap_err();
            assert!(err.is_panic());
            assert!(!err.is_cancelled() && !err.is_aborted());
            assert_eq!(message(&*err.into_panic()), "boom");
            // The parent's region was not cancelled: its await points still succeed.
            assert_eq!(checkpoint().await, Ok(()));
            assert_eq!(sleep(ms(4)).await, Ok(()));
            log.push(format!("root slept at {}", ms_since(start)));
            sibling.await.unwrap();
            "root returned"
        }
    });
    // The payload was taken, so block_on returns normally.
    assert_eq!(value, "root returned");
    assert_eq!(
        log.take(),
        ["root slept at 4", "sibling slept: Ok(()) at 10"]
    );
}

#[test]
fn non_string_panic_payload_reaches_the_handle_intact() {
    let payload = paused().block_on(async {
        let failing = spawn(async { panic_any(41_u64 + 1) });
        failing.await.unwrap_err().try_into_panic().unwrap()
    });
    assert_eq!(payload.downcast_ref::<u64>(), Some(&42));
}

#[test]
fn panicking_task_is_dropped_once_and_never_polled_again() {
    let counters = Counters::new();
    let polls_seen = paused().block_on({
        let counters = counters.clone();
        async move {
            let failing = spawn(counters.probe(async {
                checkpoint().await.unwrap();
                panic!("second poll");
            }));
            let err = failing.await.unwrap_err();
            assert_eq!(message(&*err.into_panic()), "second poll");
            (counters.polls(), counters.drops())
        }
    });
    assert_eq!(polls_seen, (2, 1), "polled twice, dropped before the join");
    assert_eq!((counters.polls(), counters.drops()), (2, 1));
}

#[test]
fn panicking_task_cancels_its_own_children_with_reason_failure_before_its_handle_resolves() {
    let log = Log::new();
    paused().block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let failing = spawn({
                let log = log.clone();
                async move {
                    let _grandchild = spawn({
                        let log = log.clone();
                        async move {
                            let err = until_cancelled().await;
                            log.push(format!(
                                "grandchild: {:?} at {}",
                                err.reason(),
                                ms_since(start)
                            ));
                            shield(sleep(ms(5))).await.unwrap();
                            log.push(format!("grandchild cleaned up at {}", ms_since(start)));
                        }
                    });
                    checkpoint().await.unwrap();
                    panic!("parent of grandchild");
                }
            });
            let err = failing.await.unwrap_err();
            log.push(format!(
                "join: {} at {}",
                message(&*err.into_panic()),
                ms_since(start)
            ));
        }
    });
    assert_eq!(
        log.take(),
        [
            "grandchild: Failure at 0",
            "grandchild cleaned up at 5",
            "join: parent of grandchild at 5",
        ]
    );
}

#[test]
fn unhandled_panic_cancels_the_parents_region_and_is_reraised_after_cleanup() {
    let log = Log::new();
    let root_saw: Rc<Cell<Option<Cancelled>>> = Rc::default();
    let rt = paused();
    let result = catch_unwind(AssertUnwindSafe(|| {
        rt.block_on({
            let log = log.clone();
            let root_saw = root_saw.clone();
            async move {
                let start = Instant::now();
                drop(spawn({
                    let log = log.clone();
                    async move {
                        let err = until_cancelled().await;
                        log.push(format!(
                            "sibling: {:?} at {}",
                            err.reason(),
                            ms_since(start)
                        ));
                        shield(sleep(ms(3))).await.unwrap();
                        log.push(format!("sibling cleaned up at {}", ms_since(start)));
                    }
                }));
                // Handle dropped before the panic: nobody can take the payload.
                drop(spawn(async {
                    checkpoint().await.unwrap();
                    panic!("unhandled boom");
                }));
                root_saw.set(sleep(ms(100)).await.err());
            }
        })
    }));
    let payload = result.expect_err("block_on re-raises the unhandled panic");
    assert_eq!(message(&*payload), "unhandled boom");
    assert_eq!(
        root_saw.get().map(|c| c.reason()),
        Some(CancelReason::Failure),
        "the root (the panicking task's parent) is cancelled too"
    );
    assert_eq!(
        log.take(),
        ["sibling: Failure at 0", "sibling cleaned up at 3"],
        "the sibling's cleanup finished before the re-raise"
    );
}

#[test]
fn handle_dropped_after_the_panic_without_taking_it_makes_it_unhandled() {
    let root_saw: Rc<RefCell<Vec<Result<(), Cancelled>>>> = Rc::default();
    let rt = paused();
    let result = catch_unwind(AssertUnwindSafe(|| {
        rt.block_on({
            let root_saw = root_saw.clone();
            async move {
                let mut seen = Vec::new();
                let failing = spawn(async { panic!("dropped later") });
                while !failing.is_finished() {
                    seen.push(checkpoint().await);
                }
                // The panic is in the handle: the root is not cancelled yet.
                seen.push(checkpoint().await);
                drop(failing);
                // Now it has nowhere to go: the root's region fails.
                seen.push(checkpoint().await);
                *root_saw.borrow_mut() = seen;
            }
        })
    }));
    let payload = result.expect_err("block_on re-raises the panic of the dropped handle");
    assert_eq!(message(&*payload), "dropped later");
    let failure = Err(Cancelled::new(CancelReason::Failure));
    assert_eq!(*root_saw.borrow(), [Ok(()), Ok(()), failure]);
}

#[test]
fn handle_dropped_while_the_panicked_task_waits_for_its_children_makes_it_unhandled() {
    let log = Log::new();
    let rt = paused();
    let result = catch_unwind(AssertUnwindSafe(|| {
        rt.block_on({
            let log = log.clone();
            async move {
                let start = Instant::now();
                let failing = spawn({
                    let log = log.clone();
                    async move {
                        let _child = spawn({
                            let log = log.clone();
                            async move {
                                let err = until_cancelled().await;
                                log.push(format!(
                                    "child: {:?} at {}",
                                    err.reason(),
                                    ms_since(start)
                                ));
                                shield(sleep(ms(4))).await.unwrap();
                                log.push(format!("child cleaned up at {}", ms_since(start)));
                            }
                        });
                        checkpoint().await.unwrap();
                        panic!("while completing");
                    }
                });
                sleep(ms(1)).await.unwrap();
                assert!(!failing.is_finished(), "its child is still cleaning up");
                // The payload waits in the completing task; now nobody can take it.
                drop(failing);
                let err = sleep(ms(10)).await.unwrap_err();
                log.push(format!("root: {:?} at {}", err.reason(), ms_since(start)));
            }
        })
    }));
    assert_eq!(message(&*result.unwrap_err()), "while completing");
    assert_eq!(
        log.take(),
        [
            "child: Failure at 0",
            "child cleaned up at 4",
            "root: Failure at 4"
        ]
    );
}

#[test]
fn unhandled_panic_in_a_nested_task_cancels_only_its_parents_subtree() {
    let log = Log::new();
    let rt = paused();
    let result = catch_unwind(AssertUnwindSafe(|| {
        rt.block_on({
            let log = log.clone();
            async move {
                let start = Instant::now();
                let unrelated = spawn({
                    let log = log.clone();
                    async move {
                        let slept = sleep(ms(10)).await;
                        log.push(format!("unrelated slept: {slept:?} at {}", ms_since(start)));
                    }
                });
                let region = spawn({
                    let log = log.clone();
                    async move {
                        let _cousin = spawn({
                            let log = log.clone();
                            async move {
                                let err = until_cancelled().await;
                                log.push(format!(
                                    "cousin: {:?} at {}",
                                    err.reason(),
                                    ms_since(start)
                                ));
                            }
                        });
                        drop(spawn(async {
                            checkpoint().await.unwrap();
                            panic!("nested boom");
                        }));
                        until_cancelled().await.reason()
                    }
                });
                // The region's parent (the root) is not cancelled: the join works.
                let region_saw = region.await.unwrap();
                log.push(format!("region saw {region_saw:?} at {}", ms_since(start)));
                unrelated.await.unwrap();
                log.push(format!("root returned at {}", ms_since(start)));
            }
        })
    }));
    let payload = result.expect_err("the nested panic is unhandled, so block_on re-raises it");
    assert_eq!(message(&*payload), "nested boom");
    assert_eq!(
        log.take(),
        [
            "cousin: Failure at 0",
            "region saw Failure at 0",
            "unrelated slept: Ok(()) at 10",
            "root returned at 10",
        ]
    );
}

#[test]
fn unhandled_panic_after_the_root_returned_cancels_the_remaining_children() {
    let log = Log::new();
    let rt = paused();
    let result = catch_unwind(AssertUnwindSafe(|| {
        rt.block_on({
            let log = log.clone();
            async move {
                let start = Instant::now();
                drop(spawn({
                    let log = log.clone();
                    async move {
                        let err = until_cancelled().await;
                        log.push(format!("waiter: {:?} at {}", err.reason(), ms_since(start)));
                    }
                }));
                drop(spawn(async {
                    sleep(ms(6)).await.unwrap();
                    panic!("late boom");
                }));
                log.push("root returned");
            }
        })
    }));
    assert_eq!(message(&*result.unwrap_err()), "late boom");
    assert_eq!(log.take(), ["root returned", "waiter: Failure at 6"]);
}

#[test]
fn only_the_first_unhandled_panic_is_reraised() {
    let log = Log::new();
    let rt = paused();
    let result = catch_unwind(AssertUnwindSafe(|| {
        rt.block_on({
            let log = log.clone();
            async move {
                let start = Instant::now();
                drop(spawn({
                    let log = log.clone();
                    async move {
                        sleep(ms(1)).await.unwrap();
                        log.push(format!("first panics at {}", ms_since(start)));
                        panic!("first");
                    }
                }));
                drop(spawn({
                    let log = log.clone();
                    async move {
                        // Shielded, so it outlives the first failure of its region and
                        // panics later; that panic is reported, not re-raised.
                        shield(sleep(ms(2))).await.unwrap();
                        log.push(format!("second panics at {}", ms_since(start)));
                        panic!("second");
                    }
                }));
            }
        })
    }));
    assert_eq!(message(&*result.unwrap_err()), "first");
    assert_eq!(log.take(), ["first panics at 1", "second panics at 2"]);
}

#[test]
fn root_panic_cancels_its_children_and_is_reraised_after_their_cleanup() {
    let log = Log::new();
    let rt = paused();
    let result = catch_unwind(AssertUnwindSafe(|| {
        rt.block_on({
            let log = log.clone();
            async move {
                let start = Instant::now();
                let _child = spawn({
                    let log = log.clone();
                    async move {
                        let err = until_cancelled().await;
                        log.push(format!("child: {:?} at {}", err.reason(), ms_since(start)));
                        shield(sleep(ms(7))).await.unwrap();
                        log.push(format!("child cleaned up at {}", ms_since(start)));
                    }
                });
                checkpoint().await.unwrap();
                panic!("root boom");
            }
        })
    }));
    assert_eq!(message(&*result.unwrap_err()), "root boom");
    assert_eq!(log.take(), ["child: Failure at 0", "child cleaned up at 7"]);
}

#[test]
fn panic_in_the_drop_of_a_returned_future_is_the_tasks_panic() {
    let log = Log::new();
    paused().block_on({
        let log = log.clone();
        async move {
            let task = spawn(PanicOnDrop {
                ready: Some(5),
                log: log.clone(),
            });
            let err = task.await.unwrap_err();
            assert!(err.is_panic(), "the value 5 is lost, the drop's panic wins");
            log.push(format!("join: {}", message(&*err.into_panic())));
        }
    });
    assert_eq!(log.take(), ["future dropped", "join: drop boom"]);
}

#[test]
fn panic_in_the_drop_of_an_aborted_future_reaches_the_handle_as_a_panic() {
    let log = Log::new();
    paused().block_on({
        let log = log.clone();
        async move {
            let task = spawn(PanicOnDrop {
                ready: None,
                log: log.clone(),
            });
            checkpoint().await.unwrap();
            log.push("aborting");
            task.abort();
            let err = task.await.unwrap_err();
            assert!(!err.is_aborted());
            log.push(format!("join: {}", message(&*err.into_panic())));
        }
    });
    assert_eq!(
        log.take(),
        ["aborting", "future dropped", "join: drop boom"]
    );
}

#[test]
fn panic_in_drop_with_the_handle_dropped_is_reraised_by_block_on() {
    let log = Log::new();
    let rt = paused();
    let result = catch_unwind(AssertUnwindSafe(|| {
        rt.block_on({
            let log = log.clone();
            async move {
                drop(spawn(PanicOnDrop {
                    ready: Some(1),
                    log: log.clone(),
                }));
                log.push(format!("root saw {:?}", sleep(ms(1)).await));
            }
        })
    }));
    assert_eq!(message(&*result.unwrap_err()), "drop boom");
    let failure = Err::<(), _>(Cancelled::new(CancelReason::Failure));
    assert_eq!(
        log.take(),
        [
            "future dropped".to_string(),
            format!("root saw {failure:?}")
        ]
    );
}

#[test]
fn runtime_is_usable_again_after_block_on_reraised_a_panic() {
    let rt = paused();
    let task_panic = catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(async {
            drop(spawn(async { panic!("task failed") }));
        })
    }));
    assert_eq!(message(&*task_panic.unwrap_err()), "task failed");
    let root_panic = catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(async {
            let _child = spawn(async { until_cancelled().await });
            checkpoint().await.unwrap();
            panic!("root failed");
        })
    }));
    assert_eq!(message(&*root_panic.unwrap_err()), "root failed");

    let counters = Counters::new();
    let (value, elapsed) = rt.block_on({
        let counters = counters.clone();
        async move {
            let start = Instant::now();
            let child = spawn(counters.probe(async {
                sleep(ms(5)).await.unwrap();
                9
            }));
            // Nothing of the earlier failures lingers: the new root is not cancelled.
            assert_eq!(checkpoint().await, Ok(()));
            (child.await.unwrap(), ms_since(start))
        }
    });
    assert_eq!((value, elapsed), (9, 5));
    assert_eq!((counters.polls(), counters.drops()), (2, 1));
}
