//! Timers: virtual time is exact and moves only when the loop is idle, equal deadlines fire
//! in registration order, cancelled sleeps fail at once and leave no timer behind, shielded
//! sleeps run to their deadline, and wakes from other threads reach a loop parked in mio.
//!
//! Every test runs on virtual time (`common::paused`) except
//! `real_clock_sleep_lasts_at_least_its_duration`, which checks that the real clock is honoured
//! (a lower bound only). No test sleeps in real time.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::{Log, ms, paused};
use treeloop::time::{Instant, advance, sleep, sleep_until};
use treeloop::{CancelReason, Cancelled, checkpoint, shield, spawn, yield_now};

const SECOND: Duration = Duration::from_secs(1);
const HOUR: Duration = Duration::from_secs(3600);

/// A future that logs the virtual time since `start` each time it is polled, so a test can
/// see every wake of a task, spurious ones included.
struct Stamped<F> {
    inner: Pin<Box<F>>,
    start: Instant,
    log: Log,
}

fn stamped<F: Future>(start: Instant, log: &Log, inner: F) -> Stamped<F> {
    Stamped {
        inner: Box::pin(inner),
        start,
        log: log.clone(),
    }
}

impl<F: Future> Future for Stamped<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.log.push(format!("poll at {:?}", self.start.elapsed()));
        self.inner.as_mut().poll(cx)
    }
}

#[test]
fn an_hour_of_sleeps_ends_exactly_one_hour_later() {
    let rt = paused();
    rt.block_on(async {
        let start = Instant::now();
        // Three tasks cover the same hour in steps of 1 s, 1 min and 1 h.
        let steps = [SECOND, Duration::from_secs(60), HOUR];
        let tasks: Vec<_> = steps
            .into_iter()
            .map(|step| {
                spawn(async move {
                    let mut woke = 0u32;
                    while start.elapsed() < HOUR {
                        sleep(step).await.unwrap();
                        woke += 1;
                    }
                    (woke, Instant::now())
                })
            })
            .collect();
        let mut ends = Vec::new();
        for task in tasks {
            ends.push(task.await.unwrap());
        }
        assert_eq!(
            ends,
            vec![(3600, start + HOUR), (60, start + HOUR), (1, start + HOUR),]
        );
        assert_eq!(Instant::now(), start + HOUR);
    });
}

#[test]
fn sleeps_last_exactly_their_duration_to_the_nanosecond() {
    let rt = paused();
    rt.block_on(async {
        let durations = [
            Duration::from_nanos(1),
            Duration::from_micros(1500),
            Duration::from_secs(7),
            HOUR + Duration::from_nanos(1),
        ];
        let start = Instant::now();
        let mut total = Duration::ZERO;
        for d in durations {
            let before = Instant::now();
            sleep(d).await.unwrap();
            assert_eq!(Instant::now() - before, d, "sleep({d:?})");
            total += d;
            assert_eq!(Instant::now(), start + total);

            let before = Instant::now();
            sleep_until(before + d).await.unwrap();
            assert_eq!(Instant::now(), before + d, "sleep_until(now + {d:?})");
            total += d;
        }
        assert_eq!(start.elapsed(), total);
    });
}

#[test]
fn equal_deadlines_fire_in_registration_order_not_spawn_order() {
    const N: usize = 8;
    let rt = paused();
    let log = Log::new();
    rt.block_on(async {
        let deadline = Instant::now() + SECOND;
        for i in 0..N {
            let log = log.clone();
            // Task i yields N - i times first: the last spawned registers its timer first.
            // Its handle is dropped; block_on still waits for it (R3).
            drop(spawn(async move {
                for _ in 0..N - i {
                    yield_now().await.unwrap();
                }
                log.push(format!("register {i}"));
                sleep_until(deadline).await.unwrap();
                assert_eq!(Instant::now(), deadline);
                log.push(format!("fire {i}"));
            }));
        }
    });
    let events = log.take();
    let registered: Vec<_> = (0..N).rev().map(|i| format!("register {i}")).collect();
    let fired: Vec<_> = (0..N).rev().map(|i| format!("fire {i}")).collect();
    assert_eq!(events[..N], registered[..], "registration order");
    assert_eq!(events[N..], fired[..], "firing order");
}

#[test]
fn a_fired_sleep_leaves_alone_the_timer_that_took_its_slot() {
    // A and B are due at the same instant; the reactor fires both in one turn and frees their
    // slots. A runs first and registers a new sleep, which takes a freed slot (B's: the timer
    // table reuses the last one freed). Then B's sleep, polled again, must see that it fired
    // without touching that slot: had it taken the slot's registration for its own, B would
    // have replaced A's waker or removed A's timer, and A would never wake.
    let rt = paused();
    let log = Log::new();
    rt.block_on(async {
        let start = Instant::now();
        let deadline = start + SECOND;
        let a = {
            let log = log.clone();
            spawn(async move {
                sleep_until(deadline).await.unwrap();
                log.push(format!("a woke at {} ms", start.elapsed().as_millis()));
                sleep(2 * SECOND).await.unwrap();
                log.push(format!(
                    "a woke again at {} ms",
                    start.elapsed().as_millis()
                ));
            })
        };
        let b = {
            let log = log.clone();
            spawn(async move {
                sleep_until(deadline).await.unwrap();
                log.push(format!("b woke at {} ms", start.elapsed().as_millis()));
            })
        };
        a.await.unwrap();
        b.await.unwrap();
        assert_eq!(start.elapsed(), 3 * SECOND);
    });
    assert_eq!(
        log.take(),
        [
            "a woke at 1000 ms",
            "b woke at 1000 ms",
            "a woke again at 3000 ms"
        ]
    );
}

#[test]
fn different_deadlines_fire_in_deadline_order() {
    let rt = paused();
    let log = Log::new();
    rt.block_on(async {
        let start = Instant::now();
        // Registered in this order (spawn order, no yields); alternately sleep / sleep_until.
        let delays_ms = [50u64, 10, 40, 20, 30, 1];
        for (n, delay) in delays_ms.into_iter().enumerate() {
            let log = log.clone();
            drop(spawn(async move {
                if n % 2 == 0 {
                    sleep(ms(delay)).await.unwrap();
                } else {
                    sleep_until(start + ms(delay)).await.unwrap();
                }
                assert_eq!(Instant::now(), start + ms(delay));
                log.push(format!("{delay}ms"));
            }));
        }
    });
    assert_eq!(log.take(), ["1ms", "10ms", "20ms", "30ms", "40ms", "50ms"]);
}

#[test]
fn zero_sleep_and_past_deadline_complete_without_advancing_the_clock() {
    let rt = paused();
    rt.block_on(async {
        let start = Instant::now();
        // A pending timer the clock could jump to, if it jumped while the root is runnable.
        let later = spawn(async move {
            sleep(HOUR).await.unwrap();
            Instant::now()
        });
        sleep(Duration::ZERO).await.unwrap();
        assert_eq!(Instant::now(), start);
        sleep_until(start).await.unwrap();
        assert_eq!(Instant::now(), start);
        sleep_until(start - Duration::from_secs(10)).await.unwrap();
        assert_eq!(Instant::now(), start);
        for _ in 0..1000 {
            sleep(Duration::ZERO).await.unwrap();
        }
        assert_eq!(Instant::now(), start);

        assert_eq!(later.await.unwrap(), start + HOUR);
        assert_eq!(Instant::now(), start + HOUR);
    });
}

#[test]
fn virtual_time_stands_still_while_any_task_is_runnable() {
    let rt = paused();
    let log = Log::new();
    rt.block_on(async {
        let start = Instant::now();
        let sleeper = {
            let log = log.clone();
            spawn(async move {
                sleep(SECOND).await.unwrap();
                log.push("sleeper woke");
                Instant::now()
            })
        };
        let yielder = {
            let log = log.clone();
            spawn(async move {
                let mut same = 0;
                for _ in 0..1000 {
                    yield_now().await.unwrap();
                    if Instant::now() == start {
                        same += 1;
                    }
                }
                log.push("yielder done");
                same
            })
        };
        assert_eq!(
            yielder.await.unwrap(),
            1000,
            "yields that saw the start instant"
        );
        assert_eq!(sleeper.await.unwrap(), start + SECOND);
    });
    assert_eq!(log.take(), ["yielder done", "sleeper woke"]);
}

#[test]
fn cancelled_sleep_fails_at_once_and_its_timer_never_fires() {
    let rt = paused();
    let polls = Log::new();
    rt.block_on(async {
        let start = Instant::now();
        let polls = polls.clone();
        let task = spawn(async move {
            let cancelled: Cancelled = sleep(HOUR).await.unwrap_err();
            let cancelled_at = start.elapsed();
            // Stay alive past the abandoned deadline, logging every wake: a timer left
            // behind would wake this task at 1 h.
            shield(stamped(start, &polls, sleep(2 * HOUR)))
                .await
                .unwrap();
            (cancelled.reason(), cancelled_at)
        });
        sleep(Duration::from_secs(10)).await.unwrap();
        task.cancel();
        assert_eq!(
            task.await.unwrap(),
            (CancelReason::Explicit, Duration::from_secs(10))
        );
        assert_eq!(Instant::now(), start + Duration::from_secs(10) + 2 * HOUR);
    });
    assert_eq!(polls.take(), ["poll at 10s", "poll at 7210s"]);
}

#[test]
fn block_on_ends_at_the_cancel_time_not_at_the_abandoned_deadline() {
    let rt = paused();
    let (start, end) = rt.block_on(async {
        let start = Instant::now();
        let sleeper = spawn(async {
            let cancelled = sleep(HOUR).await.unwrap_err();
            (cancelled.reason(), Instant::now())
        });
        sleep(SECOND).await.unwrap();
        sleeper.cancel();
        assert_eq!(
            sleeper.await.unwrap(),
            (CancelReason::Explicit, start + SECOND)
        );
        (start, Instant::now())
    });
    assert_eq!(end, start + SECOND);
}

#[test]
fn sleep_in_cancelled_region_fails_even_when_its_deadline_has_passed() {
    let rt = paused();
    rt.block_on(async {
        let start = Instant::now();
        let task = spawn(async move {
            // Cancelled at 1 s while inside the shield; the shield ends at 2 s.
            shield(sleep(2 * SECOND)).await.unwrap();
            assert_eq!(Instant::now(), start + 2 * SECOND);
            let mut results = Vec::new();
            // Each of these could complete at once; each must fail, again and again.
            results.push(sleep_until(start + SECOND).await);
            results.push(sleep_until(start).await);
            results.push(sleep(Duration::ZERO).await);
            results.push(sleep(Duration::ZERO).await);
            results.push(checkpoint().await);
            (results, Instant::now())
        });
        sleep(SECOND).await.unwrap();
        task.cancel();
        let (results, at) = task.await.unwrap();
        let err = Err(Cancelled::new(CancelReason::Explicit));
        assert_eq!(results, vec![err; 5]);
        assert_eq!(at, start + 2 * SECOND);
    });
}

#[test]
fn sleep_inside_shield_completes_normally_in_a_cancelled_task() {
    let rt = paused();
    let log = Log::new();
    rt.block_on(async {
        let start = Instant::now();
        let log = log.clone();
        let task = spawn(async move {
            // Already inside the shield when the cancel arrives.
            let during = shield(sleep(5 * SECOND)).await;
            log.push(format!(
                "shielded sleep {during:?} at {:?}",
                start.elapsed()
            ));
            // Entered after the cancel.
            let after = shield(sleep(5 * SECOND)).await;
            log.push(format!("shielded sleep {after:?} at {:?}", start.elapsed()));
            let outside = sleep(5 * SECOND).await;
            log.push(format!("bare sleep {outside:?} at {:?}", start.elapsed()));
        });
        sleep(SECOND).await.unwrap();
        task.cancel();
        task.await.unwrap();
        assert_eq!(Instant::now(), start + 10 * SECOND);
    });
    assert_eq!(
        log.take(),
        [
            "shielded sleep Ok(()) at 5s",
            "shielded sleep Ok(()) at 10s",
            "bare sleep Err(Cancelled { reason: Explicit }) at 10s",
        ]
    );
}

/// A hand-written oneshot channel whose sender waits, without sleeping, until the receiver
/// has registered its waker: the value then always arrives through a cross-thread wake.
struct Oneshot<T> {
    state: Mutex<(Option<T>, Option<Waker>)>,
    armed: Condvar,
}

impl<T> Oneshot<T> {
    fn new() -> Arc<Self> {
        Arc::new(Oneshot {
            state: Mutex::new((None, None)),
            armed: Condvar::new(),
        })
    }

    /// Waits for the receiver to park on the channel, then delivers `value` and wakes it.
    fn send(&self, value: T) {
        let mut state = self.state.lock().unwrap();
        while state.1.is_none() {
            state = self.armed.wait(state).unwrap();
        }
        state.0 = Some(value);
        let waker = state.1.take().unwrap();
        drop(state);
        waker.wake();
    }

    fn recv(self: &Arc<Self>) -> Recv<T> {
        Recv(self.clone())
    }
}

struct Recv<T>(Arc<Oneshot<T>>);

impl<T> Future for Recv<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut state = self.0.state.lock().unwrap();
        if let Some(value) = state.0.take() {
            return Poll::Ready(value);
        }
        state.1 = Some(cx.waker().clone());
        self.0.armed.notify_one();
        Poll::Pending
    }
}

#[test]
fn wake_from_another_thread_reaches_a_task_while_the_loop_is_parked() {
    const ROUNDS: u32 = 1000;
    let rt = paused();
    rt.block_on(async {
        let start = Instant::now();
        let channels: Vec<_> = (0..ROUNDS).map(|_| Oneshot::new()).collect();
        let senders = channels.clone();
        let thread = std::thread::spawn(move || {
            for (i, channel) in senders.iter().enumerate() {
                channel.send(i as u32 * 2);
            }
        });
        // No timer is pending: an idle loop can only block in mio until the thread wakes it.
        let task = spawn(async move {
            let mut sum = 0u64;
            for channel in &channels {
                sum += u64::from(channel.recv().await);
            }
            sum
        });
        assert_eq!(task.await.unwrap(), u64::from(ROUNDS * (ROUNDS - 1)));
        thread.join().unwrap();
        assert_eq!(
            Instant::now(),
            start,
            "no timer, so virtual time never moved"
        );
    });
}

#[test]
fn wake_from_another_thread_reaches_the_block_on_future_while_the_loop_is_parked() {
    let rt = paused();
    let channel = Oneshot::new();
    let sender = channel.clone();
    let thread = std::thread::spawn(move || sender.send(String::from("from the thread")));
    let received = rt.block_on(channel.recv());
    thread.join().unwrap();
    assert_eq!(received, "from the thread");
}

#[test]
fn real_clock_sleep_lasts_at_least_its_duration() {
    let (real, runtime_clock) = treeloop::block_on(async {
        let real_start = std::time::Instant::now();
        let start = Instant::now();
        sleep(ms(2)).await.unwrap();
        (real_start.elapsed(), start.elapsed())
    });
    assert!(real >= ms(2), "slept {real:?} of real time");
    assert!(
        runtime_clock >= ms(2),
        "slept {runtime_clock:?} by the runtime clock"
    );
}

#[test]
fn sleeps_in_many_tasks_share_one_virtual_clock() {
    let rt = paused();
    let wakes = Rc::new(std::cell::RefCell::new(Vec::new()));
    rt.block_on(async {
        let start = Instant::now();
        for i in 1..=100u64 {
            let wakes = wakes.clone();
            drop(spawn(async move {
                sleep(ms(i % 10) + Duration::from_nanos(i)).await.unwrap();
                wakes.borrow_mut().push((i, start.elapsed()));
            }));
        }
    });
    let wakes = wakes.take();
    let mut expected: Vec<_> = (1..=100u64)
        .map(|i| (i, ms(i % 10) + Duration::from_nanos(i)))
        .collect();
    expected.sort_by_key(|&(_, at)| at);
    assert_eq!(wakes, expected);
}

#[test]
fn advance_moves_virtual_time_and_returns_after_the_timers_due_by_then_fired() {
    paused().block_on(async {
        let start = Instant::now();
        let log = Log::new();
        let sleepers: Vec<_> = [30, 10, 20, 50]
            .into_iter()
            .map(|n| {
                let log = log.clone();
                spawn(async move {
                    sleep(ms(n)).await.unwrap();
                    log.push(format!("{n} ms"));
                })
            })
            .collect();
        yield_now().await.unwrap(); // every sleeper registers its deadline
        // A busy sibling keeps the loop from idling: time moves only by hand.
        let busy = spawn(async {
            for _ in 0..1_000 {
                yield_now().await.unwrap();
            }
        });
        advance(ms(30)).await.unwrap();
        assert_eq!(start.elapsed(), ms(30));
        assert_eq!(log.snapshot(), ["10 ms", "20 ms", "30 ms"]);
        advance(ms(20)).await.unwrap();
        assert_eq!(log.take(), ["10 ms", "20 ms", "30 ms", "50 ms"]);
        for sleeper in sleepers {
            sleeper.await.unwrap();
        }
        busy.await.unwrap();
    });
}

#[test]
fn a_cancelled_advance_fails_and_moves_nothing() {
    paused().block_on(async {
        let start = Instant::now();
        let task = spawn(async {
            let _ = sleep(HOUR).await;
            advance(SECOND).await
        });
        yield_now().await.unwrap();
        task.cancel();
        assert_eq!(
            task.await.unwrap(),
            Err(Cancelled::new(CancelReason::Explicit))
        );
        assert_eq!(start.elapsed(), Duration::ZERO);
    });
}

#[test]
fn advance_on_the_system_clock_panics_naming_the_fix() {
    let panicked = std::panic::catch_unwind(|| treeloop::block_on(async { advance(SECOND).await }))
        .unwrap_err();
    let message = common::message(&*panicked);
    assert!(
        message.contains("system clock") && message.contains("start_paused(true)"),
        "{message}"
    );
}

/// With a live socket, a paused clock moves only as fast as real time. A wait cut short by
/// a wake from another thread (a blocking job finishing) moves it by the time really
/// waited; it used to jump to the next deadline, firing a 3 s timer at once.
#[test]
fn a_wake_from_another_thread_does_not_make_a_paused_clock_with_live_io_jump() {
    let runtime = treeloop::Builder::new()
        .start_paused(true)
        .allow_real_io(true)
        .build()
        .unwrap();
    let (virtual_elapsed, sleeper_done) = runtime.block_on(async {
        // A live socket: the clock may not jump while the network could still deliver.
        let _listener = treeloop::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let start = Instant::now();
        let sleeper = treeloop::spawn(sleep(ms(3_000)));
        // A blocking job: its completion wakes the loop from another thread, whether the
        // loop is parked by then or parks to find the wake pending.
        treeloop::unblock(|| ()).await.unwrap();
        let elapsed = start.elapsed();
        let done = sleeper.is_finished();
        sleeper.cancel();
        (elapsed, done)
    });
    // Only the time spent parked counts (the clock stands still while the loop runs, and
    // the job may start sleeping before the loop parks), so there is no lower bound.
    assert!(!sleeper_done, "the 3 s timer fired at {virtual_elapsed:?}");
    assert!(virtual_elapsed < ms(3_000), "{virtual_elapsed:?}");
}

/// Virtual time stands still while `unblock` work runs (tokio's clock does the same during
/// `spawn_blocking`): a timeout around 20 ms of blocking work returns the work's result,
/// and no virtual time passed. It used to jump to the timeout's deadline as soon as the
/// loop had nothing to run: `Elapsed`, every time. (The closure's sleep is the blocking
/// work under test, not a wait for something to happen; nothing asserts real time.)
#[test]
fn a_paused_clock_stands_still_while_unblock_work_runs() {
    let (result, elapsed, sleeper_done) = paused().block_on(async {
        let start = Instant::now();
        let sleeper = spawn(sleep(ms(30)));
        let result = treeloop::time::timeout(
            ms(50),
            treeloop::unblock(|| {
                std::thread::sleep(ms(20));
                "worked"
            }),
        )
        .await;
        let elapsed = start.elapsed();
        let sleeper_done = sleeper.is_finished();
        sleeper.await.unwrap().unwrap();
        (result, elapsed, sleeper_done)
    });
    assert_eq!(result, Ok(Ok("worked")));
    assert_eq!(
        elapsed,
        Duration::ZERO,
        "no virtual time passed during the work"
    );
    assert!(!sleeper_done, "a 30 ms timer fired while the work ran");
}

/// In a seeded runtime `unblock` runs its closure inline, on the loop's thread, so the run
/// replays: the same result, the same trace hash.
#[test]
fn a_seeded_runtime_runs_unblock_inline_and_replays() {
    let run = || {
        let runtime = treeloop::Builder::new()
            .seed(11)
            .strategy(treeloop::Strategy::Random)
            .build()
            .unwrap();
        let loop_thread = std::thread::current().id();
        let (on_loop_thread, order) = runtime.block_on(async move {
            let log = Log::new();
            let tasks: Vec<_> = (0..4)
                .map(|n| {
                    let log = log.clone();
                    spawn(async move {
                        let thread = treeloop::unblock(move || std::thread::current().id())
                            .await
                            .unwrap();
                        log.push(format!("job {n}"));
                        thread
                    })
                })
                .collect();
            let mut on_loop_thread = true;
            for task in tasks {
                on_loop_thread &= task.await.unwrap() == loop_thread;
            }
            (on_loop_thread, log.take())
        });
        (on_loop_thread, order, runtime.trace().hash)
    };
    let first = run();
    assert!(first.0, "a seeded unblock ran off the loop's thread");
    assert_eq!(first.1.len(), 4);
    assert_eq!(run(), first, "same seed, same order, same trace");
}

/// A panic in a seeded (inline) `unblock` closure is the awaiting task's panic, as on the
/// pool.
#[test]
fn a_panic_in_a_seeded_unblock_is_the_awaiting_tasks_panic() {
    let runtime = treeloop::Builder::new().seed(2).build().unwrap();
    let joined = runtime.block_on(async {
        spawn(async {
            let job = treeloop::unblock(|| -> u32 { panic!("job failed") });
            job.await.unwrap()
        })
        .await
    });
    let err = joined.unwrap_err();
    assert!(err.is_panic(), "{err:?}");
    assert_eq!(
        err.into_panic().downcast_ref::<&str>().copied(),
        Some("job failed")
    );
}

/// Every virtual clock of the process starts at the same zero, so same-seed runs hold equal
/// instants and print them the same: an `Elapsed` shows its deadline as a distance from
/// that zero, not the system clock's fields.
#[test]
fn virtual_instants_print_the_same_in_every_run() {
    let run = || {
        let runtime = treeloop::Builder::new().seed(4).build().unwrap();
        runtime.block_on(async {
            let start = Instant::now();
            let elapsed = treeloop::time::timeout(ms(50), sleep(ms(80)))
                .await
                .unwrap_err();
            (start, format!("{elapsed:?}"))
        })
    };
    let (first_start, first) = run();
    let (second_start, second) = run();
    assert_eq!(
        first_start, second_start,
        "virtual time starts at the same zero"
    );
    assert_eq!(first, "Elapsed { deadline: Instant(+50ms) }");
    assert_eq!(second, first);
    assert_eq!(
        format!(
            "{:?}",
            paused().block_on(async { Instant::now() + ms(1500) })
        ),
        "Instant(+1.5s)"
    );
}
