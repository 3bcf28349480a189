//! Wakes from other threads and the blocking pool: 1,000,000 cross-thread wakes are all
//! observed (none lost whether the loop is busy or parked in epoll); a waker fired after its
//! runtime was dropped does nothing; `unblock` returns the closure's value, is a treeloop await
//! point (in a cancelled region it returns `Err(Cancelled)` while the closure still runs to
//! completion), and re-raises the closure's panic in the awaiting task.
//!
//! Threads are coordinated with channels and barriers, never with sleeps.

use std::cell::Cell;
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::task::{Poll, Waker};

use treeloop::{
    Builder, CancelReason, Cancelled, block_on, cancelled, shield, spawn, unblock, yield_now,
};

/// Threads that wake.
const THREADS: usize = 4;

/// Wakes per thread.
const WAKES: u64 = 250_000;

/// All wakes.
const TOTAL: u64 = THREADS as u64 * WAKES;

/// A task that hands out `copies` clones of its waker on its first poll and finishes once
/// `count` reaches `target`; returns how often it was polled.
fn wait_for_count(
    count: Arc<AtomicU64>,
    target: u64,
    copies: usize,
    wakers: mpsc::Sender<Waker>,
) -> impl Future<Output = u64> {
    let mut polls = 0;
    poll_fn(move |cx| {
        polls += 1;
        if polls == 1 {
            for _ in 0..copies {
                wakers.send(cx.waker().clone()).unwrap();
            }
        }
        if count.load(Ordering::SeqCst) == target {
            Poll::Ready(polls)
        } else {
            Poll::Pending
        }
    })
}

/// A thread that, once `start` lets everyone go, bumps `count` and wakes `waker`, `WAKES`
/// times: increment first, so the task's poll after the last wake sees the final count.
fn waking_thread(
    count: Arc<AtomicU64>,
    waker: Waker,
    start: Arc<Barrier>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        start.wait();
        for _ in 0..WAKES {
            count.fetch_add(1, Ordering::SeqCst);
            waker.wake_by_ref();
        }
    })
}

#[test]
fn four_threads_waking_one_task_a_million_times_lose_no_wake() {
    let count = Arc::new(AtomicU64::new(0));
    let polls = block_on(async {
        let (tx, wakers) = mpsc::channel();
        let task = spawn(wait_for_count(count.clone(), TOTAL, THREADS, tx));
        yield_now().await.unwrap(); // the task's first poll hands out its wakers
        let start = Arc::new(Barrier::new(THREADS));
        let threads: Vec<_> = wakers
            .try_iter()
            .map(|waker| waking_thread(count.clone(), waker, start.clone()))
            .collect();
        assert_eq!(threads.len(), THREADS);
        let polls = task.await.unwrap();
        // Joining blocks: do it on the pool, not on the loop.
        unblock(move || threads.into_iter().try_for_each(|t| t.join()))
            .await
            .unwrap()
            .unwrap();
        polls
    });
    assert_eq!(count.load(Ordering::SeqCst), TOTAL);
    assert!(
        (2..=TOTAL + 1).contains(&polls),
        "woken wakes coalesce, but each poll needs a wake: {polls} polls"
    );
}

#[test]
fn four_threads_waking_their_own_tasks_a_quarter_million_times_each_lose_no_wake() {
    let counts: Vec<_> = (0..THREADS).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let finished = block_on(async {
        let start = Arc::new(Barrier::new(THREADS));
        let mut tasks = Vec::new();
        let mut threads = Vec::new();
        for count in &counts {
            let (tx, wakers) = mpsc::channel();
            tasks.push(spawn(wait_for_count(count.clone(), WAKES, 1, tx)));
            let start = start.clone();
            let count = count.clone();
            // Each thread gets its task's waker once the task has been polled.
            threads.push(std::thread::spawn(move || {
                let waker = wakers.recv().unwrap();
                waking_thread(count, waker, start).join()
            }));
        }
        let mut finished = 0;
        for task in tasks {
            let polls = task.await.unwrap();
            assert!((2..=WAKES + 1).contains(&polls), "{polls} polls");
            finished += 1;
        }
        unblock(move || {
            threads
                .into_iter()
                .try_for_each(|t| t.join().and_then(|r| r))
        })
        .await
        .unwrap()
        .unwrap();
        finished
    });
    assert_eq!(finished, THREADS);
    for count in &counts {
        assert_eq!(count.load(Ordering::SeqCst), WAKES);
    }
}

#[test]
fn a_waker_fired_from_another_thread_after_its_runtime_was_dropped_does_nothing() {
    let runtime = Builder::new().build().unwrap();
    let (task_waker, root_waker) = runtime.block_on(async {
        let task = spawn(poll_fn(|cx| Poll::Ready(cx.waker().clone())));
        let task_waker = task.await.unwrap();
        let root_waker = poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
        (task_waker, root_waker)
    });
    drop(runtime);

    let fired = std::thread::spawn(move || {
        for _ in 0..1_000 {
            task_waker.wake_by_ref();
            root_waker.wake_by_ref();
        }
        task_waker.wake();
        root_waker.wake();
    })
    .join();
    assert!(fired.is_ok(), "waking a dropped runtime must not panic");

    // This thread can run a new runtime, undisturbed.
    let ran = block_on(async {
        let child = spawn(async { 21 * 2 });
        child.await.unwrap()
    });
    assert_eq!(ran, 42);
}

#[test]
fn wakers_of_a_dropped_runtime_fired_while_a_new_one_runs_do_not_disturb_it() {
    let old = Builder::new().build().unwrap();
    let stale: Vec<Waker> = old.block_on(async {
        let mut wakers = Vec::new();
        for _ in 0..8 {
            wakers.push(
                spawn(poll_fn(|cx| Poll::Ready(cx.waker().clone())))
                    .await
                    .unwrap(),
            );
        }
        wakers
    });
    drop(old);

    let new = Builder::new().build().unwrap();
    let log = Rc::new(Cell::new(0));
    let result = new.block_on(async {
        let go = Arc::new(Barrier::new(2));
        let firing = {
            let go = go.clone();
            std::thread::spawn(move || {
                go.wait();
                for _ in 0..10_000 {
                    stale.iter().for_each(Waker::wake_by_ref);
                }
            })
        };
        let worker = spawn({
            let log = log.clone();
            async move {
                for _ in 0..1_000 {
                    yield_now().await.unwrap();
                    log.set(log.get() + 1);
                }
                log.get()
            }
        });
        unblock(move || go.wait()).await.unwrap();
        let done = worker.await.unwrap();
        unblock(move || firing.join()).await.unwrap().unwrap();
        done
    });
    assert_eq!(result, 1_000);
    assert_eq!(log.get(), 1_000);
}

#[test]
fn an_unblock_closure_finishing_after_its_runtime_was_dropped_wakes_nothing_and_crashes_nothing() {
    let (started_tx, started) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let (done_tx, done) = mpsc::channel();
    let runtime = Builder::new().build().unwrap();
    let awaited = runtime.block_on(async move {
        // The task waits in `unblock` (its waker is stored for the closure's end), then is
        // cancelled and finishes; the closure keeps running.
        let task = spawn(async move {
            unblock(move || {
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                done_tx.send("finished").unwrap();
            })
            .await
        });
        unblock(move || started.recv().unwrap()).await.unwrap();
        task.cancel();
        task.await.unwrap()
    });
    assert_eq!(awaited, Err(Cancelled::new(CancelReason::Explicit)));
    drop(runtime);
    // Now the closure ends and wakes the stored waker of a task of a dropped runtime.
    release.send(()).unwrap();
    assert_eq!(done.recv(), Ok("finished"));
    assert_eq!(block_on(async { unblock(|| 3).await }), Ok(3));
}

#[test]
fn unblock_returns_the_closures_value_computed_on_another_thread() {
    let loop_thread = std::thread::current().id();
    block_on(async {
        let sum = unblock(|| (1..=1_000u64).sum::<u64>()).await;
        assert_eq!(sum, Ok(500_500));
        let (value, thread) = unblock(|| (String::from("moved out"), std::thread::current().id()))
            .await
            .unwrap();
        assert_eq!(value, "moved out");
        assert_ne!(thread, loop_thread, "the closure ran on the pool");
    });
}

#[test]
fn many_concurrent_unblocks_each_get_their_own_value() {
    // More than the pool's thread limit: the extra jobs queue and still complete.
    const JOBS: u64 = 200;
    let values = block_on(async {
        let tasks: Vec<_> = (0..JOBS)
            .map(|i| spawn(async move { unblock(move || i * i).await.unwrap() }))
            .collect();
        let mut values = Vec::new();
        for task in tasks {
            values.push(task.await.unwrap());
        }
        values
    });
    assert_eq!(values, (0..JOBS).map(|i| i * i).collect::<Vec<_>>());
}

#[test]
fn unblock_awaited_in_a_cancelled_region_returns_cancelled_while_the_closure_runs_to_completion() {
    let finished = Arc::new(AtomicBool::new(false));
    block_on(async {
        let (started_tx, started) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let (done_tx, done) = mpsc::channel();
        let closure_finished = finished.clone();
        let task = spawn(async move {
            unblock(move || {
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                closure_finished.store(true, Ordering::SeqCst);
                done_tx.send(()).unwrap();
                7
            })
            .await
        });
        unblock(move || started.recv().unwrap()).await.unwrap();
        task.cancel();
        assert_eq!(
            task.await.unwrap(),
            Err(Cancelled::new(CancelReason::Explicit))
        );
        assert!(
            !finished.load(Ordering::SeqCst),
            "the closure is still blocked: the await returned without it"
        );
        release.send(()).unwrap();
        unblock(move || done.recv().unwrap()).await.unwrap();
        assert!(finished.load(Ordering::SeqCst));
    });
    assert!(finished.load(Ordering::SeqCst));
}

#[test]
fn unblock_created_in_a_cancelled_region_fails_at_once_but_its_closure_still_runs() {
    block_on(async {
        let (done_tx, done) = mpsc::channel();
        let task = spawn(async move {
            let why = cancelled().await;
            let first = unblock(move || done_tx.send("ran").unwrap()).await;
            // Inside a shield, the same kind of call completes.
            let shielded = shield(unblock(|| 5)).await;
            (why, first, shielded)
        });
        task.cancel();
        let (why, first, shielded) = task.await.unwrap();
        assert_eq!(why.reason(), CancelReason::Explicit);
        assert_eq!(first, Err(Cancelled::new(CancelReason::Explicit)));
        assert_eq!(shielded, Ok(5));
        assert_eq!(unblock(move || done.recv()).await.unwrap(), Ok("ran"));
    });
}

#[test]
fn a_panicking_unblock_closure_panics_the_awaiting_task() {
    block_on(async {
        let task = spawn(async {
            let value: u32 = unblock(|| panic!("boom on the pool")).await.unwrap();
            value
        });
        let err = task.await.unwrap_err();
        assert!(err.is_panic(), "{err:?}");
        let payload = err.into_panic();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom on the pool"));
        // The pool and the runtime are still usable.
        assert_eq!(unblock(|| 1 + 1).await, Ok(2));
    });
}
