//! Wakes from other threads (the injector + unpark path) and blocking work on the pool.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Context, Poll, Waker};

use treeloop::{checkpoint, spawn, unblock};

/// Completes when `counter` reaches `target`; stores its waker for the threads to use.
struct CountTo {
    counter: Arc<AtomicU64>,
    target: u64,
    waker: Arc<Mutex<Option<Waker>>>,
    polls: u64,
}

impl Future for CountTo {
    type Output = u64;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        self.polls += 1;
        *self.waker.lock().unwrap() = Some(cx.waker().clone());
        // Check after publishing the waker: a wake after this point is not lost.
        if self.counter.load(Ordering::SeqCst) >= self.target {
            Poll::Ready(self.polls)
        } else {
            Poll::Pending
        }
    }
}

#[test]
fn four_threads_times_250_000_wakes_are_all_observed() {
    const THREADS: u64 = 4;
    const WAKES: u64 = 250_000;
    let counter = Arc::new(AtomicU64::new(0));
    let waker: Arc<Mutex<Option<Waker>>> = Arc::default();
    let (polls, observed) = treeloop::block_on(async {
        let task = spawn(CountTo {
            counter: counter.clone(),
            target: THREADS * WAKES,
            waker: waker.clone(),
            polls: 0,
        });
        // Let the task publish its waker before the threads start.
        checkpoint().await.unwrap();
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let (counter, waker) = (counter.clone(), waker.clone());
                std::thread::spawn(move || {
                    for _ in 0..WAKES {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let current = waker.lock().unwrap().clone();
                        if let Some(w) = current {
                            w.wake();
                        }
                    }
                })
            })
            .collect();
        // The loop parks while the threads run; only their wakes can finish the task.
        let polls = task.await.unwrap();
        for thread in threads {
            thread.join().unwrap();
        }
        (polls, counter.load(Ordering::SeqCst))
    });
    assert_eq!(observed, THREADS * WAKES);
    // Wakes coalesce (a task already queued is not queued twice), so far fewer polls.
    assert!((2..=THREADS * WAKES + 1).contains(&polls), "{polls} polls");
    eprintln!("1,000,000 remote wakes completed the task in {polls} polls");
}

#[test]
fn unblock_returns_the_closures_value() {
    let value = treeloop::block_on(async { unblock(|| (1..=100u64).sum::<u64>()).await });
    assert_eq!(value, Ok(5050));
}

#[test]
fn a_cancelled_unblock_returns_at_once_while_the_closure_runs_to_completion() {
    let finished = Arc::new(AtomicBool::new(false));
    let gate = Arc::new(Barrier::new(2));
    let result = treeloop::block_on({
        let (finished, gate) = (finished.clone(), gate.clone());
        async move {
            let task = spawn(async move {
                unblock(move || {
                    gate.wait(); // held until the await below was cancelled
                    finished.store(true, Ordering::SeqCst);
                })
                .await
            });
            checkpoint().await.unwrap();
            task.cancel();
            task.await.unwrap()
        }
    });
    assert_eq!(
        result.map_err(|c| c.reason()),
        Err(treeloop::CancelReason::Explicit)
    );
    assert!(
        !finished.load(Ordering::SeqCst),
        "the closure is still blocked"
    );
    gate.wait();
    // The closure finishes on its own right after the gate; wait for it without sleeping.
    let mut spins = 0u64;
    while !finished.load(Ordering::SeqCst) {
        spins += 1;
        assert!(spins < 100_000_000, "the released closure never finished");
        std::thread::yield_now();
    }
}

#[test]
fn a_panicking_blocking_closure_panics_the_awaiting_task() {
    let err = treeloop::block_on(async {
        spawn(async { unblock(|| -> u32 { panic!("blocking boom") }).await })
            .await
            .unwrap_err()
    });
    assert!(err.is_panic());
    assert_eq!(
        err.into_panic().downcast_ref::<&str>(),
        Some(&"blocking boom")
    );
}

#[test]
fn an_idle_loop_sleeps_in_the_poller_instead_of_spinning() {
    // A task waits for another thread that computes for a while; the loop has nothing to do
    // meanwhile. Each turn that found nothing runnable records a `Park` in the trace: a
    // loop that spun would record thousands, a sleeping one a handful.
    let runtime = treeloop::Builder::new().record_trace(true).build().unwrap();
    let waker: Arc<Mutex<Option<Waker>>> = Arc::default();
    let counter = Arc::new(AtomicU64::new(0));
    runtime.block_on(async {
        let task = spawn(CountTo {
            counter: counter.clone(),
            target: 1,
            waker: waker.clone(),
            polls: 0,
        });
        checkpoint().await.unwrap();
        let worker = {
            let (counter, waker) = (counter.clone(), waker.clone());
            std::thread::spawn(move || {
                // About tens of milliseconds of work, bounded.
                let mut x = 0u64;
                for i in 0..50_000_000u64 {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
                }
                std::hint::black_box(x);
                counter.store(1, Ordering::SeqCst);
                if let Some(w) = waker.lock().unwrap().clone() {
                    w.wake();
                }
            })
        };
        task.await.unwrap();
        worker.join().unwrap();
    });
    let parks = runtime
        .trace()
        .events
        .iter()
        .filter(|e| **e == treeloop::TraceEvent::Park)
        .count();
    assert!(parks <= 5, "{parks} parks while waiting: the loop spun");
}
