//! Faults in a task's cleanup, after it saw `Cancelled`: a panic in the cleanup (taken by a
//! live handle, or unhandled), a panic inside a cleanup shield, a panic in a timeout's body
//! (before its deadline, and in its deadline cleanup), `abort()` while the cleanup awaits in a
//! shield, and a task cancelling or aborting itself from its own cleanup.

use std::cell::RefCell;
use std::rc::Rc;

use crate::common::{Log, message, ms, ms_since, paused};
use crate::support::{
    Ledger, LogOnDrop, assert_still_usable, no_hang, panic_message_of, until_cancelled,
};
use treeloop::time::{Instant, sleep, timeout};
use treeloop::{JoinHandle, checkpoint, shield, spawn};

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
