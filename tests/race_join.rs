//! `race`, `join` and `try_join`: branches are child tasks; a race cancels its losers and
//! waits for their cleanup (R4); panics are re-raised after everyone finished (R17);
//! `try_join` has the scope's failure rules (R13-R15).

mod common;

use std::cell::Cell;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use common::{Counters, Log, message, ms, ms_since, paused};
use treeloop::time::{Instant, sleep};
use treeloop::{
    CancelReason, Cancelled, ScopeError, dump, join, race, shield, spawn, try_join, yield_now,
};

fn fail(msg: &str) -> io::Error {
    io::Error::other(msg.to_string())
}

/// A branch that sleeps `delay` ms and returns `name`; cancelled, it logs and cleans up for
/// `cleanup` ms inside a shield, then returns `"{name} cancelled"`.
async fn branch(log: Log, start: Instant, name: &'static str, delay: u64, cleanup: u64) -> String {
    match sleep(ms(delay)).await {
        Ok(()) => {
            log.push(format!("{name} done at {}", ms_since(start)));
            name.to_string()
        }
        Err(cancelled) => {
            log.push(format!(
                "{name} cancelled at {}: {cancelled}",
                ms_since(start)
            ));
            shield(sleep(ms(cleanup))).await.unwrap();
            log.push(format!("{name} cleaned up at {}", ms_since(start)));
            format!("{name} cancelled")
        }
    }
}

#[test]
fn the_first_branch_wins_and_race_returns_after_the_losers_cleanup() {
    let log = Log::new();
    let got = paused().block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let winner = race((
                branch(log.clone(), start, "slow", 50, 5),
                branch(log.clone(), start, "fast", 10, 5),
                branch(log.clone(), start, "slower", 90, 20),
            ))
            .await;
            log.push(format!("race returned {winner} at {}", ms_since(start)));
            winner
        }
    });
    assert_eq!(got, "fast");
    assert_eq!(
        log.take(),
        [
            "fast done at 10",
            "slow cancelled at 10: operation cancelled: cancel was requested",
            "slower cancelled at 10: operation cancelled: cancel was requested",
            "slow cleaned up at 15",
            "slower cleaned up at 30",
            "race returned fast at 30",
        ]
    );
}

#[test]
fn every_branch_is_polled_and_dropped_once_when_the_winner_is_ready_at_once() {
    let counters = [Counters::new(), Counters::new(), Counters::new()];
    let winner = paused().block_on(race((
        counters[0].probe(async {
            sleep(ms(1)).await.ok();
            0
        }),
        counters[1].probe(async { 1 }),
        counters[2].probe(async {
            sleep(ms(1)).await.ok();
            2
        }),
    )));
    assert_eq!(winner, 1);
    // Branch 0 polled once (asleep), then once more to hear the cancellation; branch 1 won
    // at its first poll and cancelled the race before branch 2 was first polled, which then
    // heard the cancellation at once. Every future dropped exactly once.
    assert_eq!(
        counters.each_ref().map(|c| (c.polls(), c.drops())),
        [(2, 1), (1, 1), (1, 1)]
    );
}

#[test]
fn a_tie_goes_to_the_branch_given_first() {
    async fn ready(name: &'static str) -> &'static str {
        name
    }
    let winner = paused().block_on(race([ready("a"), ready("b"), ready("c")]));
    assert_eq!(winner, "a");
    let winner = paused().block_on(race(vec![
        Box::pin(async {
            yield_now().await.ok();
            "yields first"
        }) as std::pin::Pin<Box<dyn std::future::Future<Output = &str>>>,
        Box::pin(async { "ready" }),
    ]));
    assert_eq!(winner, "ready");
}

#[test]
fn branches_are_named_children_and_their_own_children_finish_before_race_returns() {
    let log = Log::new();
    paused().block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let watcher = {
                let log = log.clone();
                spawn(async move {
                    sleep(ms(5)).await.unwrap();
                    let tree = dump().to_string();
                    log.push(format!(
                        "at 5 ms the tree has {} race branches, named '1 of 2': {}",
                        tree.matches("race branch").count(),
                        tree.contains("race branch 1 of 2 (tests/race_join.rs:"),
                    ));
                })
            };
            let winner = race((async { sleep(ms(10)).await.map(|()| "timer") }, {
                let log = log.clone();
                async move {
                    // A grandchild: the loser's own child, cancelled with it.
                    let grandchild = spawn({
                        let log = log.clone();
                        async move {
                            let err = sleep(ms(1_000)).await.unwrap_err();
                            shield(sleep(ms(7))).await.unwrap();
                            log.push(format!("grandchild done at {}: {err}", ms_since(start)));
                        }
                    });
                    drop(grandchild); // detached: it stays a child of this branch
                    sleep(ms(1_000)).await.map(|()| "never")
                }
            }))
            .await;
            log.push(format!("race returned {winner:?} at {}", ms_since(start)));
            watcher.await.unwrap();
        }
    });
    assert_eq!(
        log.take(),
        [
            "at 5 ms the tree has 2 race branches, named '1 of 2': true",
            "grandchild done at 17: operation cancelled: cancel was requested",
            "race returned Ok(\"timer\") at 17",
        ]
    );
}

#[test]
fn the_winners_value_is_kept_when_an_enclosing_cancel_comes_during_the_cleanup() {
    let log = Log::new();
    let outcome = paused().block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let task = spawn({
                let log = log.clone();
                async move {
                    let winner = race((
                        branch(log.clone(), start, "fast", 10, 0),
                        branch(log.clone(), start, "slow", 100, 50),
                    ))
                    .await;
                    log.push(format!("race returned {winner} at {}", ms_since(start)));
                    // The enclosing cancel is reported at the next await point (R6).
                    let next = yield_now().await.map_err(|c| c.reason());
                    (winner, next)
                }
            });
            sleep(ms(20)).await.unwrap();
            task.cancel();
            task.await.unwrap()
        }
    });
    assert_eq!(outcome, ("fast".to_string(), Err(CancelReason::Explicit)));
    assert_eq!(log.take().last().unwrap(), "race returned fast at 60");
}

#[test]
fn cancelled_from_outside_every_branch_hears_it_and_the_first_answer_is_returned() {
    let log = Log::new();
    let outcome = paused().block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let task = spawn({
                let log = log.clone();
                async move {
                    race((
                        branch(log.clone(), start, "a", 100, 30),
                        branch(log.clone(), start, "b", 100, 10),
                    ))
                    .await
                }
            });
            sleep(ms(20)).await.unwrap();
            task.cancel();
            let winner = task.await.unwrap();
            (winner, ms_since(start))
        }
    });
    // b cleaned up first, so its answer won; a's cleanup still ran to the end.
    assert_eq!(outcome, ("b cancelled".to_string(), 50));
    assert_eq!(
        log.take(),
        [
            "a cancelled at 20: operation cancelled: cancel was requested",
            "b cancelled at 20: operation cancelled: cancel was requested",
            "b cleaned up at 30",
            "a cleaned up at 50",
        ]
    );
}

#[test]
fn a_panicking_loser_is_re_raised_after_the_others_finished() {
    let log = Log::new();
    let caught = panic::catch_unwind(AssertUnwindSafe(|| {
        paused().block_on({
            let log = log.clone();
            async move {
                let start = Instant::now();
                race((
                    branch(log.clone(), start, "fast", 10, 0),
                    async {
                        let _ = sleep(ms(100)).await;
                        panic!("loser's cleanup panicked");
                    },
                    branch(log.clone(), start, "slow", 100, 25),
                ))
                .await
            }
        })
    }));
    let payload = caught.expect_err("the panic is re-raised");
    assert_eq!(message(payload.as_ref()), "loser's cleanup panicked");
    assert_eq!(log.take().last().unwrap(), "slow cleaned up at 35");
}

#[test]
fn a_panic_before_any_winner_cancels_the_others_and_is_re_raised() {
    let log = Log::new();
    let caught = panic::catch_unwind(AssertUnwindSafe(|| {
        paused().block_on({
            let log = log.clone();
            async move {
                let start = Instant::now();
                race((
                    async {
                        sleep(ms(5)).await.unwrap();
                        panic!("branch panicked");
                    },
                    branch(log.clone(), start, "other", 100, 10),
                ))
                .await
            }
        })
    }));
    assert_eq!(message(caught.unwrap_err().as_ref()), "branch panicked");
    assert_eq!(
        log.take(),
        [
            "other cancelled at 5: operation cancelled: a task in the same region failed",
            "other cleaned up at 15",
        ]
    );
}

#[test]
fn racing_nothing_is_refused_with_the_fix() {
    let caught = panic::catch_unwind(|| {
        drop(race(Vec::<std::future::Ready<()>>::new()));
    });
    let text = message(caught.unwrap_err().as_ref());
    assert!(text.contains("no branches to race"), "{text}");
    assert!(text.contains("give it at least one future"), "{text}");
}

#[test]
fn join_returns_every_output_in_order_running_concurrently() {
    let (tuple, list, array, took) = paused().block_on(async {
        let start = Instant::now();
        let tuple = join((
            async {
                sleep(ms(30)).await.unwrap();
                1u8
            },
            async {
                sleep(ms(10)).await.unwrap();
                "two"
            },
            async { 3.0f64 },
        ))
        .await;
        let list = join(
            [30, 10, 20]
                .into_iter()
                .map(|d| async move {
                    sleep(ms(d)).await.unwrap();
                    d
                })
                .collect::<Vec<_>>(),
        )
        .await;
        let array = join([20, 5].map(|d| async move {
            sleep(ms(d)).await.unwrap();
            d * 2
        }))
        .await;
        (tuple, list, array, ms_since(start))
    });
    assert_eq!(tuple, (1, "two", 3.0));
    assert_eq!(list, [30, 10, 20]);
    assert_eq!(array, [40, 10]);
    assert_eq!(took, 30 + 30 + 20);
}

#[test]
fn join_keeps_every_output_when_cancelled_from_outside() {
    let outputs = paused().block_on(async {
        let task = spawn(join((
            async { sleep(ms(100)).await.map_err(|c| c.reason()) },
            async { "no await point: unaffected" },
            async {
                let err = sleep(ms(100)).await.unwrap_err();
                shield(sleep(ms(5))).await.unwrap();
                format!("cleaned up after: {err}")
            },
        )));
        sleep(ms(10)).await.unwrap();
        task.cancel();
        task.await.unwrap()
    });
    assert_eq!(
        outputs,
        (
            Err(CancelReason::Explicit),
            "no await point: unaffected",
            "cleaned up after: operation cancelled: cancel was requested".to_string()
        )
    );
}

#[test]
fn a_panicking_join_branch_cancels_the_others_and_is_re_raised_after_them() {
    let cleaned = Rc::new(Cell::new(0));
    let caught = panic::catch_unwind(AssertUnwindSafe(|| {
        paused().block_on(join((
            {
                let cleaned = cleaned.clone();
                async move {
                    if sleep(ms(100)).await.is_err() {
                        shield(sleep(ms(5))).await.unwrap();
                        cleaned.set(cleaned.get() + 1);
                    }
                }
            },
            async {
                sleep(ms(1)).await.unwrap();
                panic!("join branch panicked");
            },
        )))
    }));
    assert_eq!(
        message(caught.unwrap_err().as_ref()),
        "join branch panicked"
    );
    assert_eq!(cleaned.get(), 1);
}

#[test]
fn try_join_returns_the_values_when_every_branch_succeeds() {
    let values = paused().block_on(try_join((
        async {
            sleep(ms(10)).await?;
            Ok::<_, io::Error>(1)
        },
        async { Ok("two") },
    )));
    assert_eq!(values.unwrap(), (1, "two"));
    let values = paused().block_on(try_join(
        (1..=4)
            .map(|n| async move {
                sleep(ms(n)).await?;
                Ok::<_, io::Error>(n * n)
            })
            .collect::<Vec<_>>(),
    ));
    assert_eq!(values.unwrap(), [1, 4, 9, 16]);
}

#[test]
fn try_join_fails_fast_and_keeps_every_real_error_in_order() {
    let log = Log::new();
    let result = paused().block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            try_join((
                async {
                    sleep(ms(10)).await?;
                    Err::<(), _>(fail("first"))
                },
                {
                    let log = log.clone();
                    async move {
                        // Cancelled by the first failure; its cleanup fails for real.
                        let err = sleep(ms(100)).await.unwrap_err();
                        log.push(format!("cancelled at {}: {err}", ms_since(start)));
                        shield(sleep(ms(5))).await?;
                        Err::<u8, _>(fail("cleanup failed"))
                    }
                },
                async {
                    // Only the cancellation: not a failure.
                    sleep(ms(100)).await?;
                    Ok(3u8)
                },
            ))
            .await
        }
    });
    let Err(ScopeError::Failed { first, rest }) = result else {
        panic!("expected Failed, got {result:?}");
    };
    assert_eq!(first.to_string(), "first");
    assert_eq!(
        rest.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["cleanup failed"]
    );
    assert_eq!(
        log.take(),
        ["cancelled at 10: operation cancelled: a task in the same region failed"]
    );
}

#[test]
fn try_join_cancelled_from_outside_reports_the_reason() {
    let result = paused().block_on(async {
        let task = spawn(try_join((
            async {
                sleep(ms(100)).await?;
                Ok::<_, Cancelled>(1)
            },
            async { Ok(2) },
        )));
        sleep(ms(10)).await.unwrap();
        task.cancel();
        task.await.unwrap()
    });
    let Err(ScopeError::Cancelled(cancelled)) = result else {
        panic!("expected Cancelled, got {result:?}");
    };
    assert_eq!(cancelled.reason(), CancelReason::Explicit);
}

#[test]
fn try_join_stops_the_siblings_at_a_branch_that_returns_only_a_cancellation() {
    // The branch passes on the cancellation of a task *it* cancelled, not of the join: no
    // real error, and no value either. Any `Err` ends a try_join, so the 20 ms sibling is
    // cancelled, and the join reports the branch's cancellation at once.
    let result = paused().block_on(async {
        let start = Instant::now();
        let result = try_join((
            async {
                sleep(ms(20)).await?;
                Ok::<_, Cancelled>(1)
            },
            async {
                let helper = spawn(sleep(ms(100)));
                helper.cancel();
                helper.await.expect("the helper returned")?;
                Ok(2)
            },
        ))
        .await;
        (
            result.map_err(|err| err.into_first().reason()),
            ms_since(start),
        )
    });
    assert_eq!(result, (Err(CancelReason::Explicit), 0));
}

#[test]
fn try_join_keeps_values_that_were_returned_before_an_enclosing_cancel_reached_them() {
    let outcome = paused().block_on(async {
        let task = spawn(async {
            let values = try_join((
                async {
                    // Work that completes inside a shield: done, whatever comes.
                    shield(sleep(ms(20))).await?;
                    Ok::<_, io::Error>("committed")
                },
                async { Ok(2) },
            ))
            .await;
            (
                values.map_err(|e| e.to_string()),
                yield_now().await.is_err(),
            )
        });
        sleep(ms(10)).await.unwrap();
        task.cancel();
        task.await.unwrap()
    });
    // The values, and the cancellation at the caller's next await point.
    assert_eq!(outcome, (Ok(("committed", 2)), true));
}

/// A runtime whose watchdog aborts, 2 s after a cancellation, what ignores it.
fn with_grace() -> treeloop::Runtime {
    treeloop::Builder::new()
        .start_paused(true)
        .stall_watchdog(ms(1_000))
        .stall_grace(ms(2_000))
        .report_sink(|_| {})
        .build()
        .unwrap()
}

#[test]
fn a_join_whose_branch_was_aborted_panics_naming_the_branch() {
    let polls = Rc::new(Cell::new(0));
    let err = with_grace().block_on({
        let polls = polls.clone();
        async move {
            let task = spawn(join((sleep(ms(10)), common::Forever(polls))));
            sleep(ms(1)).await.unwrap();
            task.cancel();
            task.await.unwrap_err()
        }
    });
    assert!(err.is_panic(), "{err:?}");
    let text = message(err.into_panic().as_ref());
    assert!(
        text.starts_with("treeloop::join: branch 2 of 2 has no output: it was aborted"),
        "{text}"
    );
    assert!(text.contains("or_cancel()"), "{text}");
}

#[test]
fn a_race_whose_every_branch_was_aborted_panics_saying_so() {
    let polls = Rc::new(Cell::new(0));
    let err = with_grace().block_on({
        let polls = polls.clone();
        async move {
            let task = spawn(race([
                common::Forever(polls.clone()),
                common::Forever(polls),
            ]));
            sleep(ms(1)).await.unwrap();
            task.cancel();
            task.await.unwrap_err()
        }
    });
    let text = message(err.into_panic().as_ref());
    assert!(
        text.starts_with("treeloop::race: no branch returned: every branch was aborted"),
        "{text}"
    );
}
