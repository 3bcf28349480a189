//! The loop while it waits for another thread: parked in the poller, not spinning. (The
//! wake stress tests and `unblock` are in `tests/wakes.rs`.)

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use treeloop::{checkpoint, spawn};

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

#[test]
fn a_wake_inside_another_runtime_goes_to_the_task_s_own_runtime() {
    // A task of runtime A is woken from inside runtime B's loop, on B's thread, while B is
    // current there: the wake must reach A (whose loop is parked, waiting for it), not
    // B's run queue. Each runtime counts the polls of its own tasks.
    let waker: Arc<Mutex<Option<Waker>>> = Arc::default();
    let counter = Arc::new(AtomicU64::new(0));
    let (published, on_publish) = std::sync::mpsc::channel();
    let a = std::thread::spawn({
        let (waker, counter) = (waker.clone(), counter.clone());
        move || {
            let runtime = treeloop::Builder::new().build().unwrap();
            let polls = runtime.block_on(async move {
                let task = spawn(CountTo {
                    counter,
                    target: 1,
                    waker,
                    polls: 0,
                });
                // The task's first poll publishes its waker.
                checkpoint().await.unwrap();
                published.send(()).unwrap();
                task.await.unwrap()
            });
            (polls, runtime.live_tasks())
        }
    });
    on_publish.recv().unwrap();
    let b = treeloop::Builder::new().build().unwrap();
    let b_polls = b.block_on(async {
        let task = spawn(async move {
            counter.store(1, Ordering::SeqCst);
            let waker = waker.lock().unwrap().clone().expect("published");
            waker.wake();
            checkpoint().await.unwrap();
            1
        });
        task.await.unwrap()
    });
    let (a_polls, a_live) = a.join().unwrap();
    assert_eq!(
        a_polls, 2,
        "A's task: its first poll, then the poll after the wake"
    );
    assert_eq!(b_polls, 1);
    assert_eq!(a_live, 0);
}
