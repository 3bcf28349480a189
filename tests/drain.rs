//! `on_cancel`: a foreign future with its own graceful shutdown drains on cancel.
//!
//! The future runs with the outside's cancellation hidden; the first time its region is
//! cancelled the hook is called, once, with the reason; the future then runs to completion,
//! or, with a grace period, until the period runs out, when it is dropped and the caller
//! gets `Err(GraceExpired)`. Instrumented futures count polls, drops and hook calls; time is
//! virtual.

mod common;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use common::{Counters, Log, message, ms, paused};
use treeloop::time::{Instant, sleep};
use treeloop::{CancelReason, Cancelled, FutureExt, shield, spawn, yield_now};

/// A stand-in for a protocol connection: serves "requests" (one per 10 ms sleep, an await
/// point that must not see the outside's cancellation) until asked to stop, then finishes
/// the requests it has in flight and returns how many it served.
struct Connection {
    /// Requests still to serve after a graceful shutdown.
    in_flight: u32,
    /// Set by the hook.
    stopping: Rc<Cell<bool>>,
    /// The current request's wait.
    nap: Option<Pin<Box<treeloop::time::Sleep>>>,
    /// Requests served.
    served: u32,
    /// What happened, in order.
    log: Log,
}

impl Connection {
    fn new(in_flight: u32, log: &Log) -> Connection {
        Connection {
            in_flight,
            stopping: Rc::new(Cell::new(false)),
            nap: None,
            served: 0,
            log: log.clone(),
        }
    }

    /// What a hook calls: hyper's `graceful_shutdown` has this shape.
    fn graceful_shutdown(self: Pin<&mut Self>) {
        self.stopping.set(true);
    }
}

impl Future for Connection {
    type Output = u32;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        loop {
            if self.stopping.get() && self.in_flight == 0 && self.nap.is_none() {
                return Poll::Ready(self.served);
            }
            let nap = self.nap.get_or_insert_with(|| Box::pin(sleep(ms(10))));
            match nap.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(slept) => {
                    // Hidden from the outside's cancellation: every wait succeeds.
                    let slept = format!("{slept:?}");
                    self.log.push(format!("request done: {slept}"));
                    self.nap = None;
                    self.served += 1;
                    if self.stopping.get() {
                        self.in_flight = self.in_flight.saturating_sub(1);
                    }
                }
            }
        }
    }
}

/// Counts hook calls and remembers the reasons.
#[derive(Clone, Default)]
struct Hooks(Rc<RefCell<Vec<CancelReason>>>);

impl Hooks {
    fn call(&self, why: Cancelled) {
        self.0.borrow_mut().push(why.reason());
    }

    fn calls(&self) -> Vec<CancelReason> {
        self.0.borrow().clone()
    }
}

#[test]
fn the_hook_is_called_once_on_cancel_and_the_future_finishes_its_work_in_flight() {
    let log = Log::new();
    let hooks = Hooks::default();
    let probe = Counters::new();
    let (served, at) = paused().block_on({
        let (log, hooks, probe) = (log.clone(), hooks.clone(), probe.clone());
        async move {
            let start = Instant::now();
            let connection = Connection::new(2, &log);
            // The probe around it hides its methods: stop it through its flag.
            let stopping = connection.stopping.clone();
            let task = spawn(probe.probe(connection).on_cancel(move |_, why| {
                hooks.call(why);
                stopping.set(true);
            }));
            sleep(ms(25)).await.unwrap();
            task.cancel();
            task.cancel();
            let served = shield(task).await.unwrap();
            (served, start.elapsed())
        }
    });
    assert_eq!(
        hooks.calls(),
        [CancelReason::Explicit],
        "once, with the reason"
    );
    // Two requests done by 25 ms, then the two in flight at the cancel (one under way),
    // every wait succeeding although the task was cancelled.
    assert_eq!(served, 4);
    assert_eq!(at, ms(40));
    assert_eq!(log.take(), vec!["request done: Ok(())"; 4]);
    assert_eq!(probe.drops(), 1);
}

#[test]
fn the_hook_is_never_called_when_nothing_is_cancelled() {
    let hooks = Hooks::default();
    let probe = Counters::new();
    paused().block_on({
        let (hooks, probe) = (hooks.clone(), probe.clone());
        async move {
            let work = probe.probe(async {
                sleep(ms(30)).await.unwrap();
                "done"
            });
            let drained = work.on_cancel(move |_, why| hooks.call(why)).await;
            assert_eq!(drained, "done");
        }
    });
    assert!(hooks.calls().is_empty());
    assert_eq!((probe.polls(), probe.drops()), (2, 1));
}

#[test]
fn the_grace_period_bounds_the_drain_on_virtual_time_and_the_future_is_dropped_once() {
    let hooks = Hooks::default();
    let probe = Counters::new();
    paused().block_on({
        let (hooks, probe) = (hooks.clone(), probe.clone());
        async move {
            let start = Instant::now();
            let drops = probe.clone();
            let task = spawn(async move {
                // Ignores the request to stop: it only ever finishes in an hour.
                let stubborn = probe.probe(sleep(Duration::from_secs(3600)));
                let result = stubborn
                    .on_cancel(move |_, why| hooks.call(why))
                    .grace(ms(500))
                    .await;
                (result, start.elapsed(), drops.drops())
            });
            sleep(ms(100)).await.unwrap();
            treeloop::shutdown();
            let (result, at, dropped_by_then) = shield(task).await.unwrap();
            let expired = result.expect_err("cut off after the grace period");
            assert_eq!(expired.cancelled().reason(), CancelReason::Shutdown);
            assert_eq!(expired.grace(), ms(500));
            assert_eq!(at, ms(600), "the grace period starts at the hook");
            assert_eq!(dropped_by_then, 1, "dropped before the caller heard");
            let io: std::io::Error = expired.into();
            assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
        }
    });
    assert_eq!(hooks.calls(), [CancelReason::Shutdown]);
    assert_eq!(probe.drops(), 1);
}

#[test]
fn a_drain_that_finishes_within_its_grace_period_returns_its_output() {
    let log = Log::new();
    paused().block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let task = spawn(
                Connection::new(1, &log)
                    .on_cancel(|conn, _| conn.graceful_shutdown())
                    .grace(ms(100)),
            );
            sleep(ms(5)).await.unwrap();
            task.cancel();
            // The request under way at the cancel finishes at 10 ms, well within 100 ms.
            assert_eq!(shield(task).await.unwrap(), Ok(1));
            assert_eq!(start.elapsed(), ms(10));
        }
    });
}

#[test]
fn a_drain_started_in_a_cancelled_region_calls_the_hook_before_the_first_poll() {
    let log = Log::new();
    paused().block_on({
        let log = log.clone();
        async move {
            let task = spawn({
                let log = log.clone();
                async move {
                    let _ = sleep(Duration::from_secs(3600)).await; // cancelled here
                    let inner = log.clone();
                    async move {
                        inner.push("first poll");
                        // Shielded: the outside's cancel is not seen.
                        yield_now().await.map_err(|_| ())
                    }
                    .on_cancel(move |_, why| log.push(format!("hook: {:?}", why.reason())))
                    .await
                }
            });
            yield_now().await.unwrap();
            task.cancel();
            assert_eq!(shield(task).await.unwrap(), Ok(()));
        }
    });
    assert_eq!(log.take(), ["hook: Explicit", "first poll"]);
}

#[test]
fn a_nested_drain_leaves_the_decision_to_the_outer_one() {
    let log = Log::new();
    let inner_hooks = Hooks::default();
    let outer_hooks = Hooks::default();
    paused().block_on({
        let (log, inner_hooks, outer_hooks) =
            (log.clone(), inner_hooks.clone(), outer_hooks.clone());
        async move {
            let task = spawn(async move {
                let stop = Rc::new(Cell::new(false));
                let inner = {
                    let stop = stop.clone();
                    let log = log.clone();
                    async move {
                        // Runs until the outer hook says stop; its sleeps are never cancelled.
                        while !stop.get() {
                            sleep(ms(10)).await.unwrap();
                        }
                        log.push("inner finished");
                        7
                    }
                }
                .on_cancel(move |_, why| inner_hooks.call(why));
                inner
                    .on_cancel(move |_, why| {
                        outer_hooks.call(why);
                        stop.set(true);
                    })
                    .await
            });
            sleep(ms(15)).await.unwrap();
            task.cancel();
            assert_eq!(shield(task).await.unwrap(), 7);
        }
    });
    assert_eq!(outer_hooks.calls(), [CancelReason::Explicit]);
    assert!(
        inner_hooks.calls().is_empty(),
        "inside the outer shield: never cancelled"
    );
    assert_eq!(log.take(), ["inner finished"]);
}

#[test]
fn a_panicking_hook_fails_its_task_and_the_future_is_dropped_once() {
    let probe = Counters::new();
    let payload = paused().block_on({
        let probe = probe.clone();
        async move {
            let task = spawn(
                probe
                    .probe(sleep(Duration::from_secs(3600)))
                    .on_cancel(|_, _| panic!("the hook broke")),
            );
            yield_now().await.unwrap();
            task.cancel();
            let err = shield(task).await.unwrap_err();
            assert!(err.is_panic(), "{err}");
            err.into_panic()
        }
    });
    assert_eq!(message(&*payload), "the hook broke");
    assert_eq!(probe.drops(), 1);
}

#[test]
fn tasks_the_future_spawned_are_its_children_and_are_cancelled_when_the_grace_period_ends() {
    let log = Log::new();
    paused().block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let task = spawn({
                let log = log.clone();
                async move {
                    let result = async {
                        // A helper task, like an HTTP/2 stream the connection spawned.
                        let helper = spawn({
                            let log = log.clone();
                            async move {
                                let woke = sleep(Duration::from_secs(3600)).await;
                                log.push(format!("helper: {woke:?} at {:?}", start.elapsed()));
                            }
                        });
                        drop(helper);
                        std::future::pending::<()>().await
                    }
                    .on_cancel(|_, _| {})
                    .grace(ms(200))
                    .await;
                    log.push(format!(
                        "drain: {} at {:?}",
                        result.is_err(),
                        start.elapsed()
                    ));
                }
            });
            sleep(ms(50)).await.unwrap();
            task.cancel();
            shield(task).await.unwrap();
            log.push(format!("task finished at {:?}", start.elapsed()));
        }
    });
    assert_eq!(
        log.take(),
        [
            "drain: true at 250ms",
            "helper: Err(Cancelled { reason: Explicit }) at 250ms",
            "task finished at 250ms",
        ],
        "the helper was not cancelled by the task's cancel (shielded), only by the cut-off"
    );
}
