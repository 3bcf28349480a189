//! Scopes: completion (R4), failure and error aggregation (R13–R15), panics (R17),
//! supervisors (R18), and a 100,000-member scope.

mod common;

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::rc::Rc;

use common::{Log, ms, ms_since, paused};
use treeloop::time::{Instant, sleep};
use treeloop::{
    CancelReason, Cancelled, MemberError, Scope, ScopeError, SpawnError, cancelled, scope, shield,
    spawn, supervisor,
};

fn fail(msg: &str) -> io::Error {
    io::Error::other(msg.to_string())
}

#[test]
fn the_body_returning_early_does_not_end_the_scope() {
    let log = Log::new();
    paused().block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let result = scope(|s| {
                let log = log.clone();
                async move {
                    for delay in [30, 10, 20] {
                        let log = log.clone();
                        s.spawn(async move {
                            sleep(ms(delay)).await?;
                            log.push(format!("member {delay} done at {}", ms_since(start)));
                            Ok::<_, io::Error>(())
                        })
                        .unwrap();
                    }
                    log.push("body returned");
                    Ok("value")
                }
            })
            .await;
            log.push(format!("scope returned {result:?} at {}", ms_since(start)));
        }
    });
    assert_eq!(
        log.take(),
        [
            "body returned",
            "member 10 done at 10",
            "member 20 done at 20",
            "member 30 done at 30",
            "scope returned Ok(Some(\"value\")) at 30",
        ]
    );
}

#[test]
fn members_spawn_siblings_through_a_cloned_handle_from_a_grandchild() {
    let count = Rc::new(Cell::new(0));
    let start_end = paused().block_on({
        let count = count.clone();
        async move {
            let start = Instant::now();
            scope(|s: Scope<io::Error>| async move {
                let s2 = s.clone();
                let count2 = count.clone();
                s.spawn(async move {
                    // A plain task inside the member: a grandchild of the scope.
                    let grandchild = spawn(async move {
                        sleep(ms(5)).await?;
                        // Spawned into the scope, not into this grandchild (R1).
                        s2.spawn(async move {
                            sleep(ms(50)).await?;
                            count2.set(count2.get() + 1);
                            Ok(())
                        })
                        .map(drop)
                        .map_err(io::Error::other)
                    });
                    grandchild.await.map_err(io::Error::other)?
                })
                .unwrap();
                Ok(())
            })
            .await
            .unwrap();
            ms_since(start)
        }
    });
    assert_eq!(count.get(), 1);
    assert_eq!(
        start_end, 55,
        "the scope waited for the member spawned at 5 ms"
    );
}

#[test]
fn spawning_into_an_ended_scope_is_refused_and_the_future_never_runs() {
    let ran = Rc::new(Cell::new(false));
    let refused = paused().block_on({
        let ran = ran.clone();
        async move {
            let mut kept: Option<Scope<io::Error>> = None;
            scope(|s| {
                kept = Some(s.clone());
                async move { Ok(()) }
            })
            .await
            .unwrap();
            let s = kept.unwrap();
            assert!(!s.is_open());
            s.spawn(async move {
                ran.set(true);
                Ok(())
            })
            .map(drop)
        }
    });
    assert_eq!(refused, Err(SpawnError::ScopeEnded));
    assert!(!ran.get());
    assert!(
        SpawnError::ScopeEnded
            .to_string()
            .contains("cannot spawn into a scope that has ended")
    );
}

#[test]
fn a_scope_handle_outliving_its_runtime_refuses_to_spawn() {
    let mut kept: Option<Scope<io::Error>> = None;
    paused().block_on(async {
        scope(|s| {
            kept = Some(s.clone());
            async { Ok(()) }
        })
        .await
        .unwrap();
    });
    let s = kept.unwrap();
    assert_eq!(
        s.spawn(async { Ok(()) }).map(drop),
        Err(SpawnError::NoRuntime)
    );
    assert!(
        SpawnError::NoRuntime
            .to_string()
            .contains("outside its runtime")
    );
}

#[test]
fn the_first_failure_cancels_siblings_and_body_and_waits_for_their_cleanup() {
    let log = Log::new();
    paused().block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let result = scope(|s| {
                let log = log.clone();
                async move {
                    let l = log.clone();
                    s.spawn(async move {
                        let why = cancelled().await;
                        // Cleanup that awaits, shielded.
                        shield(sleep(ms(40))).await?;
                        l.push(format!("sibling cleaned up ({why}) at {}", ms_since(start)));
                        Err::<(), io::Error>(why.into())
                    })
                    .unwrap();
                    s.spawn(async move {
                        sleep(ms(10)).await?;
                        Err::<(), _>(fail("member broke"))
                    })
                    .unwrap();
                    let r = sleep(ms(1_000)).await;
                    log.push(format!("body: {r:?} at {}", ms_since(start)));
                    r?;
                    Ok(())
                }
            })
            .await;
            let err = result.unwrap_err();
            log.push(format!(
                "scope: {err} ({} errors) at {}",
                err.errors().count(),
                ms_since(start)
            ));
        }
    });
    assert_eq!(
        log.take(),
        [
            "body: Err(Cancelled { reason: Failure }) at 10",
            "sibling cleaned up (operation cancelled: a task in the same region failed) at 50",
            "scope: a scope member failed: member broke (1 errors) at 50",
        ],
        "cancellation-only errors of the sibling and body are filtered out (R14)"
    );
}

#[test]
fn two_failing_members_both_come_back_in_order() {
    let result = paused().block_on(scope(|s| async move {
        // Both fail at the same instant, before either sees the other's cancellation.
        s.spawn(async { Err::<(), _>(fail("first")) }).unwrap();
        s.spawn(async { Err::<(), _>(fail("second")) }).unwrap();
        Ok(())
    }));
    let errors: Vec<String> = result
        .unwrap_err()
        .into_errors()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(errors, ["first", "second"]);
}

#[test]
fn a_failing_cleanup_is_kept_beside_the_first_error() {
    let result = paused().block_on(scope(|s| async move {
        s.spawn(async {
            let _ = cancelled().await;
            // The cleanup itself fails with a real error: it must not be lost (R14).
            shield(sleep(ms(5))).await?;
            Err::<(), _>(fail("cleanup failed"))
        })
        .unwrap();
        s.spawn(async {
            sleep(ms(1)).await?;
            Err::<(), _>(fail("original failure"))
        })
        .unwrap();
        Ok(())
    }));
    match result {
        Err(ScopeError::Failed { first, rest }) => {
            assert_eq!(first.to_string(), "original failure");
            assert_eq!(rest.len(), 1);
            assert_eq!(rest[0].to_string(), "cleanup failed");
        }
        other => panic!("expected two failures, got {other:?}"),
    }
}

#[test]
fn the_body_failing_cancels_the_members() {
    let log = Log::new();
    let result = paused().block_on({
        let log = log.clone();
        scope(|s| async move {
            s.spawn(async move {
                let r = sleep(ms(1_000)).await;
                log.push(format!("member: {r:?}"));
                r?;
                Ok(())
            })
            .unwrap();
            sleep(ms(3)).await?;
            Err::<(), _>(fail("body failed"))
        })
    });
    assert_eq!(
        result.unwrap_err().first().unwrap().to_string(),
        "body failed"
    );
    assert_eq!(log.take(), ["member: Err(Cancelled { reason: Failure })"]);
}

#[test]
fn cancelling_itself_returns_normally() {
    let log = Log::new();
    let start_end = paused().block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let result = scope(|s: Scope<io::Error>| {
                let log = log.clone();
                async move {
                    let l = log.clone();
                    s.spawn(async move {
                        let why = cancelled().await;
                        l.push(format!("server stopped: {:?}", why.reason()));
                        Err::<(), _>(why.into())
                    })
                    .unwrap();
                    let s2 = s.clone();
                    s.spawn(async move {
                        sleep(ms(20)).await?;
                        s2.cancel();
                        Ok(())
                    })
                    .unwrap();
                    // The body is interrupted too.
                    sleep(ms(1_000)).await?;
                    Ok("unreachable")
                }
            })
            .await;
            log.push(format!("scope: {result:?}"));
            ms_since(start)
        }
    });
    assert_eq!(start_end, 20);
    assert_eq!(
        log.take(),
        ["server stopped: Explicit", "scope: Ok(None)"],
        "a self-cancelled scope is not an error (R15)"
    );
}

#[test]
fn cancellation_from_outside_is_reported_as_cancelled() {
    paused().block_on(async {
        let task = spawn(scope(|s| async move {
            s.spawn(async {
                sleep(ms(1_000)).await?;
                Ok::<_, Cancelled>(())
            })
            .unwrap();
            Ok(())
        }));
        sleep(ms(2)).await.unwrap();
        task.cancel();
        match task.await.unwrap() {
            Err(ScopeError::Cancelled(cancelled)) => {
                assert_eq!(cancelled.reason(), CancelReason::Explicit)
            }
            other => panic!("expected Cancelled, got {other:?}"),
        }
    });
}

#[test]
fn a_real_error_beats_cancelled() {
    paused().block_on(async {
        let task = spawn(scope(|s| async move {
            s.spawn(async {
                let _ = cancelled().await;
                Err::<(), _>(fail("cleanup failed while cancelled from outside"))
            })
            .unwrap();
            Ok(())
        }));
        sleep(ms(2)).await.unwrap();
        task.cancel();
        let err = task.await.unwrap().unwrap_err();
        assert!(!err.is_cancelled());
        assert_eq!(
            err.first().unwrap().to_string(),
            "cleanup failed while cancelled from outside"
        );
    });
}

#[test]
fn a_panicking_member_cancels_its_siblings_and_is_reraised_after_their_cleanup() {
    let log = Log::new();
    let rt = paused();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on({
            let log = log.clone();
            async move {
                let start = Instant::now();
                let _ = scope(|s| {
                    let log = log.clone();
                    async move {
                        s.spawn(async move {
                            let why = cancelled().await;
                            shield(sleep(ms(25))).await?;
                            log.push(format!("sibling cleaned up at {}", ms_since(start)));
                            Err::<(), _>(io::Error::from(why))
                        })
                        .unwrap();
                        s.spawn(async {
                            sleep(ms(5)).await?;
                            panic!("member exploded");
                            #[allow(unreachable_code)]
                            Ok::<(), io::Error>(())
                        })
                        .unwrap();
                        Ok(())
                    }
                })
                .await;
                log.push("unreachable: the scope re-raises");
            }
        })
    }));
    let payload = outcome.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"member exploded"));
    assert_eq!(log.take(), ["sibling cleaned up at 30"]);
    // The runtime is still usable.
    assert_eq!(rt.block_on(async { 7 }), 7);
}

#[test]
fn a_member_handle_says_failed_and_the_scope_has_the_error() {
    paused().block_on(async {
        let result = scope(|s| async move {
            let ok = s.spawn(async { Ok::<_, io::Error>(5) }).unwrap();
            let bad = s
                .spawn(async {
                    sleep(ms(1)).await?;
                    Err::<u32, _>(fail("bad"))
                })
                .unwrap();
            assert_eq!(ok.await, Ok(5));
            // The body is being cancelled by the failure: join inside a shield.
            assert_eq!(shield(bad).await, Err(MemberError::Failed));
            Ok(())
        })
        .await;
        assert_eq!(result.unwrap_err().first().unwrap().to_string(), "bad");
    });
}

#[test]
fn a_supervisor_lets_siblings_run_and_collects_every_error() {
    let log = Log::new();
    let result = paused().block_on({
        let log = log.clone();
        supervisor(|s| async move {
            for (delay, outcome) in [(10, Err("a")), (20, Ok(())), (30, Err("b"))] {
                let log = log.clone();
                s.spawn(async move {
                    sleep(ms(delay)).await?;
                    log.push(format!("member {delay} finished"));
                    outcome.map_err(fail)
                })
                .unwrap();
            }
            Ok(())
        })
    });
    assert_eq!(
        log.take(),
        [
            "member 10 finished",
            "member 20 finished",
            "member 30 finished"
        ],
        "no member was cancelled by the failure at 10 ms (R18)"
    );
    let errors: Vec<String> = result
        .unwrap_err()
        .errors()
        .map(ToString::to_string)
        .collect();
    assert_eq!(errors, ["a", "b"]);
}

#[test]
fn dropping_an_unfinished_scope_cancels_its_members_which_still_clean_up() {
    let log = Log::new();
    paused().block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let task = spawn({
                let log = log.clone();
                async move {
                    let scope_future = scope(|s| {
                        let log = log.clone();
                        async move {
                            s.spawn(async move {
                                let why = cancelled().await;
                                shield(sleep(ms(10))).await?;
                                log.push(format!("member cleaned up at {}", ms_since(start)));
                                Err::<(), io::Error>(why.into())
                            })
                            .unwrap();
                            cancelled().await;
                            Ok(())
                        }
                    });
                    // Race the scope against a short sleep; the loser (the scope) is dropped.
                    let mut scope_future = Box::pin(scope_future);
                    let mut timer = Box::pin(sleep(ms(5)));
                    std::future::poll_fn(|cx| {
                        if timer.as_mut().poll(cx).is_ready() {
                            return std::task::Poll::Ready(());
                        }
                        let _ = scope_future.as_mut().poll(cx);
                        std::task::Poll::Pending
                    })
                    .await;
                    drop(scope_future);
                    log.push(format!("scope dropped at {}", ms_since(start)));
                }
            });
            task.await.unwrap();
            log.push(format!("task finished at {}", ms_since(start)));
        }
    });
    assert_eq!(
        log.take(),
        [
            "scope dropped at 5",
            "member cleaned up at 15",
            "task finished at 15"
        ]
    );
}

#[test]
fn a_hundred_thousand_member_scope_is_cancelled_and_completes() {
    let cleaned = Rc::new(Cell::new(0u32));
    let (members, at) = paused().block_on({
        let cleaned = cleaned.clone();
        async move {
            let start = Instant::now();
            let counter = cleaned.clone();
            let result = scope(|s: Scope<Cancelled>| async move {
                let cleaned = counter;
                for _ in 0..100_000 {
                    let cleaned = cleaned.clone();
                    s.spawn(async move {
                        let why = cancelled().await;
                        cleaned.set(cleaned.get() + 1);
                        Err::<(), _>(why)
                    })
                    .unwrap();
                }
                sleep(ms(1)).await?;
                s.cancel();
                Ok(())
            })
            .await;
            assert!(result.is_ok(), "{result:?}");
            (cleaned.get(), ms_since(start))
        }
    });
    assert_eq!(members, 100_000);
    assert_eq!(at, 1);
}

/// A scope (or supervisor) that cancels itself at `self_at` ms, in a task whose runtime is
/// shut down (an enclosing cancel, reason `Shutdown`) at `outside_at` ms; its member cleans
/// up inside a shield until 30 ms, so both cancels arrive while the scope waits for it.
/// Returns what the scope returned, and when.
fn cancelled_by_itself_and_from_outside(
    supervise: bool,
    self_at: u64,
    outside_at: u64,
) -> (Result<Option<&'static str>, ScopeError<Cancelled>>, u128) {
    paused().block_on(async move {
        let start = Instant::now();
        let task = spawn(async move {
            let body = move |s: Scope<Cancelled>| async move {
                s.spawn(async move {
                    let _ = cancelled().await;
                    shield(treeloop::time::sleep_until(start + ms(30))).await?;
                    Ok(())
                })
                .unwrap();
                // Shielded, so an earlier outside cancel cannot stop the self-cancel.
                shield(treeloop::time::sleep_until(start + ms(self_at))).await?;
                s.cancel();
                Ok("the body returned")
            };
            let result = if supervise {
                supervisor(body).await
            } else {
                scope(body).await
            };
            (result, ms_since(start))
        });
        shield(sleep(ms(outside_at))).await.unwrap();
        treeloop::shutdown();
        shield(task).await.unwrap()
    })
}

#[test]
fn an_enclosing_cancel_after_the_scopes_own_cancel_wins_and_is_reported() {
    // R15 (trio's rule): the scope cancelled itself at 10 ms, the whole runtime was shut
    // down at 20 ms; the scope reports the shutdown so the code around it unwinds.
    for supervise in [false, true] {
        match cancelled_by_itself_and_from_outside(supervise, 10, 20) {
            (Err(ScopeError::Cancelled(cancelled)), 30) => {
                assert_eq!(cancelled.reason(), CancelReason::Shutdown)
            }
            other => panic!(
                "supervise={supervise}: expected Cancelled(Shutdown) at 30 ms, got {other:?}"
            ),
        }
    }
}

#[test]
fn an_enclosing_cancel_before_the_scopes_own_cancel_wins_and_is_reported() {
    // The other order: shut down at 10 ms, the scope cancels itself at 20 ms.
    for supervise in [false, true] {
        match cancelled_by_itself_and_from_outside(supervise, 20, 10) {
            (Err(ScopeError::Cancelled(cancelled)), 30) => {
                assert_eq!(cancelled.reason(), CancelReason::Shutdown)
            }
            other => panic!(
                "supervise={supervise}: expected Cancelled(Shutdown) at 30 ms, got {other:?}"
            ),
        }
    }
}

#[test]
fn a_scope_that_only_cancelled_itself_still_returns_normally() {
    // The outside cancel comes at 40 ms, after the scope returned (30 ms): not seen.
    for supervise in [false, true] {
        let (result, at) = cancelled_by_itself_and_from_outside(supervise, 10, 40);
        assert_eq!(at, 30);
        assert!(
            matches!(result, Ok(Some("the body returned"))),
            "supervise={supervise}: {result:?}"
        );
    }
}

#[test]
fn a_shield_around_a_scope_hides_the_enclosing_cancel_so_its_own_cancel_stands() {
    paused().block_on(async {
        let task = spawn(shield(scope(|s: Scope<Cancelled>| async move {
            s.spawn(async {
                let _ = cancelled().await;
                Ok(())
            })
            .unwrap();
            s.cancel();
            Ok("body")
        })));
        treeloop::shutdown();
        assert!(matches!(shield(task).await.unwrap(), Ok(Some("body"))));
    });
}

#[test]
fn a_timeout_around_scope_spawn_does_not_reach_the_new_member() {
    // R1: `Scope::spawn` puts the member into the scope's region whoever calls it, so a
    // timeout wrapped around the call (and firing long before the member is done) cancels
    // the code inside the timeout, not the member it spawned. Contrast: a plain `spawn` inside
    // the same timeout goes under the timeout's region and is cancelled at its deadline.
    let member_result = Rc::new(Cell::new(None));
    let plain_result = Rc::new(Cell::new(None));
    let (timed_out, end) = paused().block_on({
        let (member_result, plain_result) = (member_result.clone(), plain_result.clone());
        async move {
            let start = Instant::now();
            let timed_out = scope(|s: Scope<io::Error>| async move {
                let timed = treeloop::time::timeout(ms(10), async {
                    s.spawn(async move {
                        let slept = sleep(ms(50)).await;
                        member_result.set(Some((slept.is_ok(), ms_since(start))));
                        Ok(())
                    })
                    .unwrap();
                    let plain = spawn(async move {
                        let slept = sleep(ms(50)).await;
                        plain_result.set(Some((slept.is_ok(), ms_since(start))));
                    });
                    // Outlives the deadline: the timeout fires at 10 ms.
                    let _ = sleep(ms(1_000)).await;
                    drop(plain);
                })
                .await;
                Ok(timed.is_err())
            })
            .await
            .unwrap();
            (timed_out, ms_since(start))
        }
    });
    assert_eq!(
        timed_out,
        Some(true),
        "the scope ran to its end, and the timeout fired"
    );
    assert_eq!(
        member_result.get(),
        Some((true, 50)),
        "the member slept its 50 ms out: the timeout around Scope::spawn did not reach it"
    );
    assert_eq!(
        plain_result.get(),
        Some((false, 10)),
        "a plain spawn inside the timeout is cancelled at the deadline"
    );
    assert_eq!(end, 50, "the scope waited for its member");
}
