//! Shields (R11, basic form) and cleanup that awaits.

mod common;

use common::{Log, ms, ms_since, paused};
use treeloop::time::{Instant, sleep};
use treeloop::{CancelReason, Cancelled, cancelled_here, checkpoint, shield, spawn};

#[test]
fn awaits_inside_a_shield_behave_as_if_not_cancelled() {
    paused().block_on(async {
        let start = Instant::now();
        let task = spawn(async move {
            let cancelled = sleep(ms(1_000)).await.unwrap_err();
            let cleanup = shield(async {
                assert_eq!(cancelled_here(), None);
                sleep(ms(30)).await?;
                checkpoint().await?;
                Ok::<_, Cancelled>(ms_since(start))
            })
            .await;
            (cancelled, cleanup)
        });
        sleep(ms(10)).await.unwrap();
        task.cancel();
        let (cancelled, cleanup) = task.await.unwrap();
        assert_eq!(cancelled.reason(), CancelReason::Explicit);
        assert_eq!(cleanup, Ok(40), "the shielded cleanup slept its full 30 ms");
    });
}

#[test]
fn the_first_await_after_the_shield_sees_cancelled_again() {
    paused().block_on(async {
        let task = spawn(async {
            let _ = sleep(ms(1_000)).await;
            let inside = shield(checkpoint()).await;
            let after = checkpoint().await;
            (inside, after, cancelled_here().is_some())
        });
        checkpoint().await.unwrap();
        task.cancel();
        let (inside, after, still_marked) = task.await.unwrap();
        assert_eq!(inside, Ok(()));
        assert_eq!(after, Err(Cancelled::new(CancelReason::Explicit)));
        assert!(still_marked);
    });
}

#[test]
fn a_shield_hides_cancellation_that_arrives_while_inside() {
    let log = Log::new();
    paused().block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let task = spawn({
                let log = log.clone();
                async move {
                    let r = shield(sleep(ms(100))).await;
                    log.push(format!("shielded sleep: {r:?} at {}", ms_since(start)));
                    let r = checkpoint().await;
                    log.push(format!("next await: {r:?}"));
                }
            });
            sleep(ms(10)).await.unwrap();
            task.cancel();
            task.await.unwrap();
        }
    });
    assert_eq!(
        log.take(),
        [
            "shielded sleep: Ok(()) at 100",
            "next await: Err(Cancelled { reason: Explicit })"
        ]
    );
}

#[test]
fn children_spawned_inside_a_shield_are_shielded_for_life() {
    let log = Log::new();
    paused().block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let parent = spawn({
                let log = log.clone();
                async move {
                    let _ = sleep(ms(1_000)).await; // cancelled at 5 ms
                    shield(async {
                        // Its handle is dropped: the child stays the shield's child.
                        drop(spawn({
                            let log = log.clone();
                            async move {
                                let r = sleep(ms(50)).await;
                                log.push(format!("flusher: {r:?} at {}", ms_since(start)));
                            }
                        }));
                    })
                    .await;
                    // The shield is left; the child it spawned still runs shielded, and
                    // the parent waits for it (R2).
                    log.push(format!("parent returned at {}", ms_since(start)));
                }
            });
            sleep(ms(5)).await.unwrap();
            parent.cancel();
            parent.await.unwrap();
            log.push(format!("parent joined at {}", ms_since(start)));
        }
    });
    assert_eq!(
        log.take(),
        [
            "parent returned at 5",
            "flusher: Ok(()) at 55",
            "parent joined at 55"
        ]
    );
}

#[test]
fn a_task_inside_a_shield_can_still_be_cancelled_through_its_handle() {
    paused().block_on(async {
        let outer = spawn(async {
            let _ = sleep(ms(1_000)).await;
            shield(async {
                let inner = spawn(async { sleep(ms(1_000)).await });
                checkpoint().await.unwrap();
                inner.cancel();
                inner.await.unwrap()
            })
            .await
        });
        checkpoint().await.unwrap();
        outer.cancel();
        assert_eq!(
            outer.await.unwrap(),
            Err(Cancelled::new(CancelReason::Explicit)),
            "cancellation that starts inside the shield applies"
        );
    });
}

#[test]
fn a_join_interrupted_by_cancellation_can_be_retried_inside_a_shield() {
    paused().block_on(async {
        let parent = spawn(async {
            let mut child = spawn(async {
                let _ = shield(sleep(ms(20))).await;
                "child value"
            });
            let interrupted = (&mut child).await.unwrap_err();
            assert!(interrupted.is_cancelled());
            shield(child).await.unwrap()
        });
        checkpoint().await.unwrap();
        parent.cancel();
        assert_eq!(parent.await.unwrap(), "child value");
    });
}

#[test]
fn a_scope_opened_inside_a_shield_still_cancels_its_members_on_failure() {
    let log = Log::new();
    paused().block_on({
        let log = log.clone();
        async move {
            let task = spawn({
                let log = log.clone();
                async move {
                    let _ = treeloop::cancelled().await;
                    // Cleanup with its own structure: the outer cancel is hidden, but the
                    // scope's own failure still cancels its members (R11).
                    shield(treeloop::scope(|s| async move {
                        let l = log.clone();
                        s.spawn(async move {
                            let r = sleep(ms(1_000)).await;
                            l.push(format!("flush member: {r:?}"));
                            r?;
                            Ok(())
                        })?;
                        s.spawn(async {
                            sleep(ms(3)).await?;
                            Err::<(), _>(std::io::Error::other("goodbye failed"))
                        })?;
                        Ok::<_, std::io::Error>(())
                    }))
                    .await
                }
            });
            checkpoint().await.unwrap();
            task.cancel();
            let result = task.await.unwrap();
            log.push(format!(
                "scope: {}",
                result
                    .unwrap_err()
                    .first()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            ));
        }
    });
    assert_eq!(
        log.take(),
        [
            "flush member: Err(Cancelled { reason: Failure })",
            "scope: goodbye failed"
        ]
    );
}

// A shield gets its node only when something inside needs one (see `executor/src/shield.rs`):
// the tests below pin down that the lazy node behaves exactly like one opened up front.

/// Spawns (and detaches) a child that sleeps `nap` and logs how its sleep ended, and when.
fn spawn_sleeper(log: &Log, nap: std::time::Duration, start: Instant) {
    let log = log.clone();
    drop(spawn(async move {
        let r = sleep(nap).await;
        log.push(format!("child: {r:?} at {}", ms_since(start)));
    }));
}

#[test]
fn a_shield_that_spawns_only_in_a_later_poll_still_shields_the_child() {
    let log = Log::new();
    let rt = paused();
    rt.block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let parent = spawn({
                let log = log.clone();
                async move {
                    let _ = treeloop::cancelled().await;
                    shield(async {
                        // First poll: nothing needs a node. Second poll: a spawn does.
                        sleep(ms(10)).await.unwrap();
                        spawn_sleeper(&log, ms(20), start);
                        let deadline = treeloop::time::timeout(ms(5), sleep(ms(1_000))).await;
                        log.push(format!("deadline inside: {}", deadline.is_err()));
                    })
                    .await;
                    log.push(format!("after: {:?}", checkpoint().await));
                }
            });
            checkpoint().await.unwrap();
            parent.cancel();
            parent.await.unwrap();
            log.push(format!("joined at {}", ms_since(start)));
        }
    });
    assert_eq!(
        log.take(),
        [
            "deadline inside: true",
            "after: Err(Cancelled { reason: Explicit })",
            "child: Ok(()) at 30",
            "joined at 30"
        ]
    );
    assert_eq!(rt.live_nodes(), 0);
}

#[test]
fn nested_shields_hide_the_cancel_until_the_outer_one_is_left() {
    let log = Log::new();
    paused().block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let task = spawn({
                let log = log.clone();
                async move {
                    let _ = treeloop::cancelled().await;
                    shield(async {
                        shield(async {
                            // The inner shield gets a node; the outer one stays a flag.
                            spawn_sleeper(&log, ms(30), start);
                            sleep(ms(10)).await
                        })
                        .await
                        .unwrap();
                        log.push(format!("between: {:?}", checkpoint().await));
                    })
                    .await;
                    log.push(format!("after: {:?}", checkpoint().await));
                }
            });
            checkpoint().await.unwrap();
            task.cancel();
            task.await.unwrap();
        }
    });
    assert_eq!(
        log.take(),
        [
            "between: Ok(())",
            "after: Err(Cancelled { reason: Explicit })",
            "child: Ok(()) at 30"
        ]
    );
}

#[test]
fn a_shield_body_that_panics_after_spawning_still_waits_for_the_child() {
    let log = Log::new();
    let rt = paused();
    rt.block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let task = spawn({
                let log = log.clone();
                async move {
                    let _ = treeloop::cancelled().await;
                    shield(async {
                        spawn_sleeper(&log, ms(20), start);
                        panic!("cleanup failed");
                    })
                    .await
                }
            });
            checkpoint().await.unwrap();
            task.cancel();
            let err = task.await.unwrap_err();
            log.push(format!(
                "task: panicked {} at {}",
                err.is_panic(),
                ms_since(start)
            ));
        }
    });
    // The panic cancels what the task spawned, but the child is behind the shield's node
    // (opened by the spawn, adopted while unwinding): it finishes its sleep.
    assert_eq!(
        log.take(),
        ["child: Ok(()) at 20", "task: panicked true at 20"]
    );
    assert_eq!(rt.live_nodes(), 0);
}

#[test]
fn a_region_opened_before_the_shield_keeps_its_own_mark_inside_it() {
    paused().block_on(async {
        let task = spawn(async {
            // The deadline's region opens at its first poll, here, under the task.
            let mut bounded = std::pin::pin!(treeloop::time::timeout(ms(1_000), sleep(ms(50))));
            std::future::poll_fn(|cx| {
                assert!(bounded.as_mut().poll(cx).is_pending());
                std::task::Poll::Ready(())
            })
            .await;
            let _ = treeloop::cancelled().await;
            // Awaited inside a shield, it is still the task's region, cancelled with it:
            // the shield hides cancellation from the code inside it, not from regions
            // that were already outside it.
            shield(bounded).await
        });
        checkpoint().await.unwrap();
        task.cancel();
        assert_eq!(
            task.await.unwrap(),
            Ok(Err(Cancelled::new(CancelReason::Explicit)))
        );
    });
}

/// Runs a shield whose body spawns a 50 ms child: first polled outside a 10 ms timeout (its
/// body does not get to the spawn yet), then awaited inside the timeout.
fn shield_first_polled_outside_a_timeout(diagnostics: bool) -> Vec<String> {
    let log = Log::new();
    let rt = treeloop::Builder::new()
        .start_paused(true)
        .diagnostics(diagnostics)
        .build()
        .unwrap();
    rt.block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let mut cleanup = std::pin::pin!(shield({
                let log = log.clone();
                async move {
                    checkpoint().await.unwrap();
                    spawn_sleeper(&log, ms(50), start);
                }
            }));
            std::future::poll_fn(|cx| {
                assert!(cleanup.as_mut().poll(cx).is_pending());
                std::task::Poll::Ready(())
            })
            .await;
            let r = treeloop::time::timeout(ms(10), cleanup).await;
            log.push(format!("timeout ok: {} at {}", r.is_ok(), ms_since(start)));
        }
    });
    assert_eq!(rt.live_nodes(), 0);
    log.take()
}

/// Regression test (found in review): a lazy shield's node used to go under the node polled
/// when something inside first needed it, here the timeout's region, which then waited 40 ms
/// past its deadline for the shield's child. It goes where an eager node would have been:
/// under the node polled when the shield was first polled.
#[test]
fn a_shield_first_polled_outside_a_timeout_keeps_its_children_out_of_it() {
    for diagnostics in [true, false] {
        assert_eq!(
            shield_first_polled_outside_a_timeout(diagnostics),
            ["timeout ok: true at 0", "child: Ok(()) at 50"],
            "diagnostics: {diagnostics}"
        );
    }
}
