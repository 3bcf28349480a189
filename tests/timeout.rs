//! Timeouts and intervals (R16, with R6 and R11): a timeout is a cancel region with a
//! deadline. When the deadline passes, every await point in the region returns
//! `Err(Cancelled)` with reason `Deadline`, the body runs its (shielded) cleanup, and only
//! then does the timeout return `Err(Elapsed)`. Nested timeouts report the one that fired;
//! a shield hides outer cancellation but not a deadline set inside it. Intervals tick at exact
//! instants, never burst after a late tick, and a cancelled tick consumes nothing.
//!
//! Every test runs on virtual time (`common::paused`), so instants are asserted exactly.

mod common;

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use common::{Counters, Log, ms, ms_since, paused};
use treeloop::time::{Elapsed, Instant, interval, sleep, timeout, timeout_at};
use treeloop::{CancelReason, Cancelled, cancelled_here, checkpoint, shield, spawn};

/// What an await point returns inside a region cancelled through a `JoinHandle`.
fn explicit() -> Cancelled {
    Cancelled::new(CancelReason::Explicit)
}

/// A future that logs the virtual time (ms since `start`) of each of its polls, so a test
/// sees every wake, spurious ones included (a leftover timer would show up as one).
struct PollTimes<F> {
    inner: Pin<Box<F>>,
    start: Instant,
    log: Log,
}

fn poll_times<F: Future>(start: Instant, log: &Log, inner: F) -> PollTimes<F> {
    PollTimes {
        inner: Box::pin(inner),
        start,
        log: log.clone(),
    }
}

impl<F: Future> Future for PollTimes<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.log.push(format!("poll at {}", ms_since(self.start)));
        self.inner.as_mut().poll(cx)
    }
}

#[test]
fn a_body_that_finishes_first_returns_its_value_at_once_and_leaves_no_timer() {
    let rt = paused();
    let start = rt.block_on(async { Instant::now() });
    let root_polls = Log::new();
    let body = Counters::new();
    let (result, returned_at) = rt.block_on(poll_times(start, &root_polls, async {
        let result = timeout(
            ms(100),
            body.probe(async {
                sleep(ms(10)).await?;
                Ok::<_, Cancelled>("done")
            }),
        )
        .await;
        let returned_at = ms_since(start);
        // If the timeout's timer were still registered, it would wake the root at 100 ms.
        sleep(ms(500)).await.unwrap();
        (result, returned_at)
    }));
    assert_eq!(result, Ok(Ok("done")));
    assert_eq!(
        returned_at, 10,
        "the timeout returned as soon as its body did"
    );
    assert_eq!(body.polls(), 2, "polled at 0 ms and when its sleep ended");
    assert_eq!(body.drops(), 1);
    assert_eq!(
        root_polls.take(),
        ["poll at 0", "poll at 10", "poll at 510"],
        "no wake at the 100 ms deadline: the timer went with the body"
    );

    let short = rt.block_on(async {
        let start = Instant::now();
        timeout(ms(100), sleep(ms(10))).await.unwrap().unwrap();
        start
    });
    assert_eq!(
        rt.block_on(async move { ms_since(short) }),
        10,
        "block_on ended when the body did, not at the deadline"
    );
}

#[test]
fn a_passed_deadline_cancels_the_body_and_elapsed_comes_after_its_shielded_cleanup() {
    let log = Log::new();
    paused().block_on(async {
        let start = Instant::now();
        let result = timeout(ms(100), async {
            let err = sleep(ms(1_000)).await.unwrap_err();
            log.push(format!("body: {err:?} at {}", ms_since(start)));
            // Level-triggered (R6): every later await point fails the same way.
            log.push(format!("checkpoint: {:?}", checkpoint().await));
            log.push(format!("cancelled_here: {:?}", cancelled_here()));
            let cleanup = shield(sleep(ms(30))).await;
            log.push(format!("cleanup: {cleanup:?} at {}", ms_since(start)));
            "cut short"
        })
        .await;
        log.push(format!("timeout: {result:?} at {}", ms_since(start)));
        let elapsed = result.unwrap_err();
        assert_eq!(elapsed.deadline(), start + ms(100));
        assert_eq!(elapsed.to_string(), "deadline elapsed");
    });
    let got = log.take();
    assert_eq!(
        got[..4],
        [
            "body: Cancelled { reason: Deadline } at 100",
            "checkpoint: Err(Cancelled { reason: Deadline })",
            "cancelled_here: Some(Cancelled { reason: Deadline })",
            "cleanup: Ok(()) at 130",
        ]
    );
    assert!(got[4].starts_with("timeout: Err(Elapsed"), "{}", got[4]);
    assert!(got[4].ends_with(" at 130"), "{}", got[4]);
    assert_eq!(got.len(), 5);
}

#[test]
fn a_zero_timeout_runs_the_body_synchronously_until_its_first_await_point_which_fails() {
    let log = Log::new();
    let body = Counters::new();
    paused().block_on(async {
        let start = Instant::now();
        let result = timeout(
            Duration::ZERO,
            body.probe(async {
                // The deadline was checked before the first poll: the region is already
                // cancelled, but synchronous code is never interrupted (R6).
                log.push(format!("before the await: {:?}", cancelled_here()));
                let first = checkpoint().await;
                log.push(format!("first await: {first:?}"));
                let second = sleep(ms(5)).await;
                log.push(format!("second await: {second:?}"));
                first
            }),
        )
        .await;
        assert_eq!(result.map_err(|e| e.deadline()), Err(start));
        assert_eq!(ms_since(start), 0);
    });
    assert_eq!(
        log.take(),
        [
            "before the await: Some(Cancelled { reason: Deadline })",
            "first await: Err(Cancelled { reason: Deadline })",
            "second await: Err(Cancelled { reason: Deadline })",
        ]
    );
    // The checkpoint yields once, cancelled or not (so a loop swallowing its error cannot
    // starve the runtime); the sleep fails without yielding.
    assert_eq!(body.polls(), 2, "only the checkpoint yielded");
    assert_eq!(body.drops(), 1);
}

#[test]
fn a_zero_timeout_around_a_body_without_await_points_still_reports_elapsed() {
    let ran = Cell::new(false);
    paused().block_on(async {
        let start = Instant::now();
        let result = timeout(Duration::ZERO, async {
            ran.set(true);
            42
        })
        .await;
        // Documented rule: once the deadline has fired, the result is Elapsed whatever the
        // body returned.
        assert_eq!(result.map_err(|e| e.deadline()), Err(start));
    });
    assert!(ran.get(), "the body ran to completion");
}

#[test]
fn nested_timeouts_when_the_inner_fires_first_the_outer_returns_ok_of_its_elapsed() {
    paused().block_on(async {
        let start = Instant::now();
        let outer = timeout(ms(100), async {
            let inner = timeout(ms(10), sleep(ms(1_000))).await;
            let inner_returned_at = ms_since(start);
            // The outer region was not cancelled: the body goes on awaiting normally.
            let after = sleep(ms(5)).await;
            (inner, inner_returned_at, after, ms_since(start))
        })
        .await;
        let (inner, inner_returned_at, after, outer_body_done_at) = outer.unwrap();
        let elapsed = inner.unwrap_err();
        assert_eq!(elapsed.deadline(), start + ms(10));
        assert_eq!(inner_returned_at, 10);
        assert_eq!(after, Ok(()));
        assert_eq!(outer_body_done_at, 15);
        assert_eq!(ms_since(start), 15);
    });
}

#[test]
fn nested_timeouts_when_the_outer_fires_first_only_the_outer_reports_elapsed() {
    let log = Log::new();
    paused().block_on(async {
        let start = Instant::now();
        let outer = timeout(ms(10), async {
            let inner = timeout(ms(100), sleep(ms(1_000))).await;
            log.push(format!("inner: {inner:?} at {}", ms_since(start)));
            inner
        })
        .await;
        assert_eq!(outer.map_err(|e| e.deadline()), Err(start + ms(10)));
        assert_eq!(ms_since(start), 10);
    });
    assert_eq!(
        log.take(),
        ["inner: Ok(Err(Cancelled { reason: Deadline })) at 10"],
        "the inner timeout hands its body's cancelled result to the outer one"
    );
}

#[test]
fn a_timeout_inside_a_shield_still_fires_while_the_enclosing_task_is_cancelled() {
    let log = Log::new();
    paused().block_on(async {
        let start = Instant::now();
        let task = spawn({
            let log = log.clone();
            async move {
                let first = sleep(ms(1_000)).await;
                log.push(format!("task: {first:?} at {}", ms_since(start)));
                let cleanup = shield(async {
                    log.push(format!("shield: {:?}", cancelled_here()));
                    timeout(ms(20), async {
                        log.push(format!("timeout body: {:?}", cancelled_here()));
                        let r = sleep(ms(1_000)).await;
                        log.push(format!("timeout body: {r:?} at {}", ms_since(start)));
                        r
                    })
                    .await
                })
                .await;
                log.push(format!(
                    "shield returned {:?} at {}",
                    cleanup.map_err(|e| e.deadline() - start),
                    ms_since(start)
                ));
                log.push(format!("after the shield: {:?}", checkpoint().await));
            }
        });
        sleep(ms(5)).await.unwrap();
        task.cancel();
        task.await.unwrap();
        assert_eq!(ms_since(start), 25);
    });
    assert_eq!(
        log.take(),
        [
            "task: Err(Cancelled { reason: Explicit }) at 5",
            "shield: None",
            "timeout body: None",
            "timeout body: Err(Cancelled { reason: Deadline }) at 25",
            // The deadline: 20 ms after the shield opened at 5 ms.
            "shield returned Err(25ms) at 25",
            "after the shield: Err(Cancelled { reason: Explicit })",
        ]
    );
}

#[test]
fn a_task_cancelled_before_the_deadline_makes_the_body_see_explicit_and_the_timeout_return_ok() {
    let rt = paused();
    let start = rt.block_on(async { Instant::now() });
    let body = rt.block_on(async {
        let task = spawn(async move {
            timeout(ms(100), async move {
                let err = sleep(ms(1_000)).await.unwrap_err();
                let at = ms_since(start);
                let cleanup = shield(sleep(ms(30))).await;
                (err, at, cleanup, ms_since(start))
            })
            .await
        });
        sleep(ms(10)).await.unwrap();
        task.cancel();
        task.await.unwrap()
    });
    assert_eq!(
        body,
        Ok((explicit(), 10, Ok(()), 40)),
        "the deadline never fired: the body's own result comes back"
    );
    assert_eq!(
        rt.block_on(async { ms_since(start) }),
        40,
        "block_on ended with the cleanup, not at the 100 ms deadline"
    );
}

#[test]
fn tasks_spawned_inside_a_timeout_body_are_cancelled_when_it_fires() {
    let log = Log::new();
    paused().block_on(async {
        let start = Instant::now();
        let result = timeout(ms(50), async {
            let child = spawn({
                let log = log.clone();
                async move {
                    let grandchild = spawn({
                        let log = log.clone();
                        async move {
                            let r = sleep(ms(1_000)).await;
                            log.push(format!("grandchild: {r:?} at {}", ms_since(start)));
                        }
                    });
                    let r = sleep(ms(1_000)).await;
                    log.push(format!("child: {r:?} at {}", ms_since(start)));
                    let cleanup = shield(sleep(ms(30))).await;
                    log.push(format!("child cleanup: {cleanup:?} at {}", ms_since(start)));
                    drop(grandchild);
                }
            });
            let r = sleep(ms(1_000)).await;
            log.push(format!("body: {r:?} at {}", ms_since(start)));
            // The body waits for its child's cleanup (a join in a cancelled region fails).
            let joined = shield(child).await;
            log.push(format!(
                "body joined: {:?} at {}",
                joined.is_ok(),
                ms_since(start)
            ));
        })
        .await;
        assert_eq!(result.map_err(|e| e.deadline()), Err(start + ms(50)));
        assert_eq!(ms_since(start), 80);
    });
    let mut at_deadline = log.take();
    let after = at_deadline.split_off(3);
    at_deadline.sort();
    assert_eq!(
        at_deadline,
        [
            "body: Err(Cancelled { reason: Deadline }) at 50",
            "child: Err(Cancelled { reason: Deadline }) at 50",
            "grandchild: Err(Cancelled { reason: Deadline }) at 50",
        ]
    );
    assert_eq!(
        after,
        ["child cleanup: Ok(()) at 80", "body joined: true at 80"]
    );
}

#[test]
fn an_elapsed_timeout_returns_only_after_tasks_spawned_in_its_body_finished_cleanup() {
    // R16: the timeout "waits for the region to finish its cleanup"; a task spawned with
    // plain `spawn` in the body is part of the region even if the body does not join it.
    let log = Log::new();
    paused().block_on(async {
        let start = Instant::now();
        let result = timeout(ms(50), async {
            let _child = spawn({
                let log = log.clone();
                async move {
                    let _ = sleep(ms(1_000)).await;
                    let cleanup = shield(sleep(ms(30))).await;
                    log.push(format!("child cleanup: {cleanup:?} at {}", ms_since(start)));
                }
            });
            let _ = sleep(ms(1_000)).await;
        })
        .await;
        log.push(format!(
            "timeout: {:?} at {}",
            result.map_err(|e| e.deadline() - start),
            ms_since(start)
        ));
    });
    assert_eq!(
        log.take(),
        ["child cleanup: Ok(()) at 80", "timeout: Err(50ms) at 80"]
    );
}

#[test]
fn timeout_at_a_past_instant_behaves_like_a_zero_timeout() {
    let log = Log::new();
    let body = Counters::new();
    paused().block_on(async {
        let start = Instant::now();
        sleep(ms(20)).await.unwrap();
        let result = timeout_at(
            start,
            body.probe(async {
                log.push("before the await");
                let first = checkpoint().await;
                log.push(format!("first await: {first:?}"));
                first
            }),
        )
        .await;
        assert_eq!(result.map_err(|e| e.deadline()), Err(start));
        assert_eq!(ms_since(start), 20, "no time passed");
    });
    assert_eq!(
        log.take(),
        [
            "before the await",
            "first await: Err(Cancelled { reason: Deadline })"
        ]
    );
    assert_eq!(body.polls(), 2, "the checkpoint yields once, then fails");
}

#[test]
fn an_interval_ticks_at_once_then_at_exact_multiples_of_its_period() {
    paused().block_on(async {
        let start = Instant::now();
        let mut ticks = interval(ms(10));
        assert_eq!(ticks.period(), ms(10));
        // The first tick is due when first awaited, not when the interval was made.
        sleep(ms(5)).await.unwrap();
        let t0 = start + ms(5);
        for n in 0..4 {
            let tick = ticks.tick().await.unwrap();
            assert_eq!(tick, t0 + ms(10) * n, "tick {n}");
            assert_eq!(Instant::now(), tick, "tick {n} returned on time");
        }
        assert_eq!(ms_since(start), 35);
    });
}

#[test]
fn a_late_tick_fires_at_once_and_the_next_comes_a_full_period_later() {
    let log = Log::new();
    paused().block_on(async {
        let start = Instant::now();
        let mut ticks = interval(ms(10));
        for _ in 0..3 {
            let tick = ticks.tick().await.unwrap();
            log.push(format!(
                "tick for {} at {}",
                (tick - start).as_millis(),
                ms_since(start)
            ));
            if tick == start {
                // Busy for two and a half periods: the tick due at 10 is late.
                sleep(ms(25)).await.unwrap();
            }
        }
    });
    assert_eq!(
        log.take(),
        ["tick for 0 at 0", "tick for 10 at 25", "tick for 35 at 35"],
        "no burst: the tick missed at 20 is skipped"
    );
}

#[test]
fn a_cancelled_tick_fails_and_consumes_nothing() {
    let log = Log::new();
    paused().block_on(async {
        let start = Instant::now();
        let task = spawn({
            let log = log.clone();
            async move {
                let mut ticks = interval(ms(10));
                let stamp = |r: Result<Instant, Cancelled>| {
                    format!(
                        "{:?} at {}",
                        r.map(|t| (t - start).as_millis()),
                        ms_since(start)
                    )
                };
                log.push(stamp(ticks.tick().await));
                log.push(stamp(ticks.tick().await));
                log.push(stamp(ticks.tick().await));
                log.push(stamp(shield(ticks.tick()).await));
                log.push(stamp(shield(ticks.tick()).await));
            }
        });
        sleep(ms(5)).await.unwrap();
        task.cancel();
        task.await.unwrap();
    });
    assert_eq!(
        log.take(),
        [
            "Ok(0) at 0",
            "Err(Cancelled { reason: Explicit }) at 5",
            "Err(Cancelled { reason: Explicit }) at 5",
            "Ok(10) at 10",
            "Ok(20) at 20",
        ]
    );
}

#[test]
#[should_panic(expected = "interval period must be greater than zero")]
fn a_zero_interval_period_panics_naming_the_mistake() {
    let _ = interval(Duration::ZERO);
}

#[test]
fn elapsed_converts_to_an_io_error_of_kind_timed_out() {
    /// `?` turns the `Elapsed` (and a `Cancelled`) into an `io::Error`.
    async fn read_with_deadline() -> io::Result<()> {
        timeout(ms(10), sleep(ms(1_000))).await??;
        Ok(())
    }
    let rt = paused();
    let start = rt.block_on(async { Instant::now() });
    let err = rt.block_on(read_with_deadline()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert_eq!(err.to_string(), "deadline elapsed");
    let elapsed = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<Elapsed>())
        .expect("the io::Error wraps the Elapsed");
    assert_eq!(elapsed.deadline(), start + ms(10));
    assert_eq!(Cancelled::from_io(&err), None, "Elapsed is not Cancelled");
}

/// A task running `timeout(10 ms)` over a body that sleeps until cancelled, then cleans up
/// in a shield until 30 ms and returns what its sleep returned; the task is cancelled at
/// `cancel_at` ms. Returns the timeout's result and when it came.
fn timeout_in_a_task_cancelled_at(
    cancel_at: u64,
) -> (Result<Result<(), Cancelled>, Elapsed>, u128) {
    paused().block_on(async move {
        let start = Instant::now();
        let task = spawn(async move {
            let result = timeout(ms(10), async move {
                let woke = sleep(Duration::from_secs(3600)).await;
                shield(treeloop::time::sleep_until(start + ms(30)))
                    .await
                    .unwrap();
                woke
            })
            .await;
            (result, ms_since(start))
        });
        shield(sleep(ms(cancel_at))).await.unwrap();
        task.cancel();
        shield(task).await.unwrap()
    })
}

#[test]
fn a_timeout_that_fired_reports_an_enclosing_cancel_that_came_during_its_cleanup() {
    // The deadline at 10 ms, the task cancelled at 20 ms, the cleanup done at 30 ms: the
    // enclosing cancel wins (R15). The body's own result goes up instead of `Elapsed`: the
    // cancellation it saw, from the deadline, which reached it first.
    let (result, at) = timeout_in_a_task_cancelled_at(20);
    assert_eq!(at, 30);
    assert_eq!(result, Ok(Err(Cancelled::new(CancelReason::Deadline))));
}

#[test]
fn a_timeout_inside_a_region_cancelled_before_its_deadline_reports_the_cancel() {
    // The task cancelled at 5 ms, the deadline passing at 10 ms during the cleanup.
    let (result, at) = timeout_in_a_task_cancelled_at(5);
    assert_eq!(at, 30);
    assert_eq!(result, Ok(Err(explicit())));
}

#[test]
fn a_timeout_that_returned_before_the_enclosing_cancel_reports_elapsed() {
    // Cancelled at 40 ms, after the timeout returned at 30 ms.
    let (result, at) = timeout_in_a_task_cancelled_at(40);
    assert_eq!(at, 30);
    assert!(result.is_err(), "Elapsed: {result:?}");
}

#[test]
fn a_body_ready_exactly_at_the_deadline_loses_and_takes_nothing() {
    paused().block_on(async {
        let start = Instant::now();
        // The reply and the deadline are due at the same instant: the deadline is checked
        // first, so the body's sleep fails (documented in scope/src/time/timeout.rs).
        let result = timeout(ms(50), async {
            sleep(ms(50)).await?;
            Ok::<_, Cancelled>("reply")
        })
        .await;
        assert_eq!(result.map_err(|e| e.deadline()), Err(start + ms(50)));
        assert_eq!(ms_since(start), 50);
    });
}

#[test]
fn a_message_sent_exactly_at_the_deadline_is_never_lost() {
    // Whichever of the sender and the timeout runs first at 50 ms, the timeout reports
    // `Elapsed` and the message stays in the channel for the next receive.
    for seed in 0..20 {
        let runtime = treeloop::Builder::new()
            .seed(seed)
            .strategy(treeloop::Strategy::Random)
            .build()
            .unwrap();
        runtime.block_on(async {
            let (tx, mut rx) = treeloop::sync::mpsc::bounded::<&str>(1);
            let sender = spawn(async move {
                sleep(ms(50)).await.unwrap();
                tx.send("reply").await.unwrap();
            });
            let got = timeout(ms(50), rx.recv()).await;
            sender.await.unwrap();
            assert!(got.is_err(), "seed {seed}: {got:?}");
            assert_eq!(rx.try_recv(), Ok("reply"), "seed {seed}");
        });
    }
}
