//! Scheduling: FIFO order, woken-while-running goes to the back, and the per-poll budget
//! that keeps an always-ready task from starving the others (SPEC §4).

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use common::{Log, paused};
use treeloop::time::sleep;
use treeloop::{spawn, yield_now};

#[test]
fn tasks_run_in_spawn_order_and_yielders_go_to_the_back() {
    let log = Log::new();
    paused().block_on({
        let log = log.clone();
        async move {
            let handles: Vec<_> = (0..3)
                .map(|i| {
                    let log = log.clone();
                    spawn(async move {
                        for round in 0..2 {
                            log.push(format!("t{i} r{round}"));
                            yield_now().await.unwrap();
                        }
                    })
                })
                .collect();
            for handle in handles {
                handle.await.unwrap();
            }
        }
    });
    assert_eq!(
        log.take(),
        ["t0 r0", "t1 r0", "t2 r0", "t0 r1", "t1 r1", "t2 r1"]
    );
}

#[test]
fn the_root_takes_its_turn_in_the_same_queue() {
    let log = Log::new();
    paused().block_on({
        let log = log.clone();
        async move {
            let child = spawn({
                let log = log.clone();
                async move {
                    log.push("child 1");
                    yield_now().await.unwrap();
                    log.push("child 2");
                }
            });
            log.push("root 1");
            yield_now().await.unwrap();
            log.push("root 2");
            child.await.unwrap();
        }
    });
    assert_eq!(log.take(), ["root 1", "child 1", "root 2", "child 2"]);
}

#[test]
fn an_always_ready_task_yields_when_its_budget_is_spent() {
    paused().block_on(async {
        let spins = Rc::new(Cell::new(0u32));
        let seen_by_other = Rc::new(Cell::new(None));
        let spinner = spawn({
            let spins = spins.clone();
            async move {
                // Never pending by itself: every sleep(0) is ready at once.
                for _ in 0..1_000 {
                    sleep(Duration::ZERO).await.unwrap();
                    spins.set(spins.get() + 1);
                }
            }
        });
        let other = spawn({
            let (spins, seen) = (spins.clone(), seen_by_other.clone());
            async move { seen.set(Some(spins.get())) }
        });
        spinner.await.unwrap();
        other.await.unwrap();
        assert_eq!(
            seen_by_other.get(),
            Some(treeloop_executor::coop::BUDGET),
            "the other task ran as soon as the spinner spent one poll's budget"
        );
    });
}
