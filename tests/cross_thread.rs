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
