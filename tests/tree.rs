//! The task tree: who is whose parent (R1), and completion waiting for children (R2, R3).

mod common;

use std::cell::Cell;
use std::rc::Rc;

use common::{Counters, Log, ms, ms_since, paused};
use treeloop::time::{Instant, sleep};
use treeloop::{FutureExt, checkpoint, spawn};

#[test]
fn handle_resolves_only_after_children_finish() {
    let log = Log::new();
    let elapsed = paused().block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let parent = spawn({
                let log = log.clone();
                async move {
                    drop(spawn({
                        let log = log.clone();
                        async move {
                            sleep(ms(300)).await.unwrap();
                            log.push("child done");
                        }
                    }));
                    log.push("parent future returned");
                    7
                }
            });
            assert_eq!(parent.await.unwrap(), 7);
            log.push("parent joined");
            ms_since(start)
        }
    });
    assert_eq!(elapsed, 300, "the join waited for the child's 300 ms");
    assert_eq!(
        log.take(),
        ["parent future returned", "child done", "parent joined"]
    );
}

#[test]
fn block_on_waits_for_children_and_does_not_cancel_them() {
    let log = Log::new();
    let rt = paused();
    let value = rt.block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            for delay in [200, 100] {
                let log = log.clone();
                // Handles dropped at once: neither detached nor cancelled.
                drop(spawn(async move {
                    let slept = sleep(ms(delay)).await;
                    log.push(format!(
                        "child {delay} ms: {slept:?} at {}",
                        ms_since(start)
                    ));
                }));
            }
            log.push("root returned");
            "root value"
        }
    });
    assert_eq!(value, "root value");
    assert_eq!(
        log.take(),
        [
            "root returned",
            "child 100 ms: Ok(()) at 100",
            "child 200 ms: Ok(()) at 200"
        ]
    );
}

#[test]
fn grandchildren_keep_their_parent_alive_through_a_chain() {
    let order = Log::new();
    paused().block_on({
        let order = order.clone();
        async move {
            let top = spawn({
                let order = order.clone();
                async move {
                    let middle = spawn({
                        let order = order.clone();
                        async move {
                            drop(spawn({
                                let order = order.clone();
                                async move {
                                    sleep(ms(50)).await.unwrap();
                                    order.push("leaf finished");
                                }
                            }));
                            order.push("middle returned");
                        }
                    });
                    order.push("top returned");
                    drop(middle);
                }
            });
            top.await.unwrap();
            order.push("top joined");
        }
    });
    assert_eq!(
        order.take(),
        [
            "top returned",
            "middle returned",
            "leaf finished",
            "top joined"
        ]
    );
}

#[test]
fn spawn_parent_is_the_task_that_called_spawn() {
    // R1: a task spawned by `a` is `a`'s child, so cancelling `a` reaches it, while a task
    // spawned by the root is not affected.
    let outcomes = Log::new();
    paused().block_on({
        let outcomes = outcomes.clone();
        async move {
            let a = spawn({
                let outcomes = outcomes.clone();
                async move {
                    let inner = spawn({
                        let outcomes = outcomes.clone();
                        async move {
                            let r = sleep(ms(1_000)).await;
                            outcomes.push(format!("a's child: {}", r.is_ok()));
                        }
                    });
                    let r = sleep(ms(1_000)).await;
                    outcomes.push(format!("a: {}", r.is_ok()));
                    drop(inner);
                }
            });
            let b = spawn({
                let outcomes = outcomes.clone();
                async move {
                    let r = sleep(ms(1_000)).await;
                    outcomes.push(format!("root's other child: {}", r.is_ok()));
                }
            });
            sleep(ms(10)).await.unwrap();
            a.cancel();
            a.await.unwrap();
            b.await.unwrap();
        }
    });
    let mut got = outcomes.take();
    got.sort();
    assert_eq!(
        got,
        ["a's child: false", "a: false", "root's other child: true"]
    );
}

#[test]
fn futures_are_dropped_when_they_return_not_when_children_finish() {
    let parent = Counters::new();
    let dropped_before_child_finished = Rc::new(Cell::new(false));
    paused().block_on({
        let parent = parent.clone();
        let flag = dropped_before_child_finished.clone();
        async move {
            let probe = parent.clone();
            let handle = spawn(parent.probe(async move {
                drop(spawn(async move {
                    sleep(ms(100)).await.unwrap();
                    flag.set(probe.drops() == 1);
                }));
            }));
            handle.await.unwrap();
        }
    });
    assert_eq!(parent.polls(), 1);
    assert_eq!(parent.drops(), 1);
    assert!(
        dropped_before_child_finished.get(),
        "the parent's future (and what it owns) is released as soon as it returns"
    );
}

#[test]
fn is_finished_turns_true_with_the_last_descendant() {
    paused().block_on(async {
        let parent = spawn(async {
            drop(spawn(async {
                sleep(ms(20)).await.unwrap();
            }));
        });
        checkpoint().await.unwrap();
        checkpoint().await.unwrap();
        assert!(!parent.is_finished(), "returned, but completing");
        sleep(ms(20)).await.unwrap();
        checkpoint().await.unwrap();
        assert!(parent.is_finished());
        parent.await.unwrap();
    });
}

#[test]
fn task_ids_are_unique_and_never_reused() {
    paused().block_on(async {
        let mut ids = Vec::new();
        for _ in 0..100 {
            let handle = spawn(async {});
            ids.push(handle.id());
            handle.await.unwrap();
        }
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            100,
            "finished tasks' ids are not handed out again"
        );
    });
}

#[test]
fn no_node_is_left_alive_between_block_on_calls() {
    let runtime = treeloop::Builder::new().start_paused(true).build().unwrap();
    let live_inside = runtime.block_on(async {
        let _a = treeloop::spawn(std::future::pending::<()>().or_cancel());
        let _b = treeloop::spawn(async {});
        let live = (runtime.live_tasks(), runtime.live_nodes());
        treeloop::shutdown();
        live
    });
    // Two tasks; three nodes: the root and its two tasks.
    assert_eq!(live_inside, (2, 3));
    assert_eq!((runtime.live_tasks(), runtime.live_nodes()), (0, 0));
}
