//! Torture of the cross-thread wake path (SPEC §4): 4 threads × 2,500,000 wakes against
//! tasks on the loop.
//!
//! - **Every wake observed.** Each thread announces a value to one of four tasks (round
//!   robin), counts it as sent, and wakes the task; a task takes exactly what was announced
//!   when it is polled and never looks again without a wake, so a lost wake would leave a
//!   value untaken and hang the test, while coalesced wakes lose nothing. Once with bare
//!   counters (the loop idles between batches: the most wake transitions), once with the
//!   values carried through channels and checked in order per thread.
//! - **No busy loop.** The runtime records its scheduling trace; idle parks are bounded by
//!   the polls they lead to (see [`LoopFigures::assert_no_busy_loop`]). In a ping-pong test
//!   each thread waits for its task's answer before the next wake, so the loop keeps running
//!   out of work and many wakes land on a loop asleep in epoll (the parks are printed).
//! - **Wakers outliving their runtime** are fired millions of times while its `block_on`
//!   ends, while it is dropped, and while a new runtime runs on the same thread: they do
//!   nothing, crash nothing, and disturb the new runtime in nothing.
//!
//! The number of wakes per thread comes from `TREELOOP_TORTURE_WAKES` (default 2,500,000:
//! 10,000,000 in all; the ping-pong test does a fiftieth as many round trips). The defaults
//! take about a second per test; 10,000,000 per thread (40,000,000 in all) about four times
//! as long, the ping-pong test about fifteen seconds. Threads are coordinated with channels
//! and barriers, never with sleeps; each test prints its figures (`--nocapture`).
//!
//! Run with: cargo test --test torture_wakes -- --nocapture
//! Larger:   TREELOOP_TORTURE_WAKES=10000000 cargo test --test torture_wakes -- --nocapture

use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::panic::resume_unwind;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::task::{Poll, Waker};
use std::time::Duration;

use treeloop::{Builder, Runtime, TraceEvent, spawn, unblock, yield_now};

/// Threads that wake.
const THREADS: usize = 4;

/// Wakes per thread unless `TREELOOP_TORTURE_WAKES` says otherwise.
const DEFAULT_WAKES: u64 = 2_500_000;

/// Wakes per thread: `TREELOOP_TORTURE_WAKES`, or [`DEFAULT_WAKES`]. Rounded down to a
/// multiple of [`THREADS`] so every thread sends each task the same number of values.
fn wakes_per_thread() -> u64 {
    let wakes = std::env::var("TREELOOP_TORTURE_WAKES")
        .ok()
        .map(|v| {
            v.trim()
                .parse::<u64>()
                .expect("TREELOOP_TORTURE_WAKES: a number")
        })
        .unwrap_or(DEFAULT_WAKES);
    (wakes / THREADS as u64 * THREADS as u64).max(THREADS as u64)
}

/// Runs `scenario` on its own thread; fails the test if it has not finished within `limit`
/// (a lost wake hangs a task forever). A hang detector with a generous limit, not a timing
/// assertion. The hung thread cannot be joined then; the failing test ends the process.
fn no_hang<T: Send + 'static>(limit: Duration, scenario: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, finished) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let _ = done.send(scenario());
    });
    match finished.recv_timeout(limit) {
        Ok(value) => {
            thread.join().expect("the scenario returned");
            value
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match thread.join() {
            Err(payload) => resume_unwind(payload),
            Ok(()) => unreachable!("the scenario neither returned nor panicked"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("hung: not finished after {limit:?} (a lost wake?)")
        }
    }
}

/// The hang limit for `wakes` wakes: a minute, plus 10 µs a wake (a hundred times what
/// they take).
fn limit_for(wakes: u64) -> Duration {
    Duration::from_secs(60) + Duration::from_micros(10 * wakes)
}

/// What the trace says about the loop: polls (tasks and root) and idle parks.
#[derive(Debug)]
struct LoopFigures {
    /// `Poll` and `PollRoot` events.
    polls: usize,
    /// `Park` events: turns that found nothing runnable and blocked in the poller.
    parks: usize,
}

fn loop_figures(runtime: &Runtime) -> LoopFigures {
    let events = runtime.trace().events;
    let count = |wanted: fn(&TraceEvent) -> bool| events.iter().filter(|e| wanted(e)).count();
    LoopFigures {
        polls: count(|e| matches!(e, TraceEvent::Poll(_) | TraceEvent::PollRoot)),
        parks: count(|e| matches!(e, TraceEvent::Park)),
    }
}

impl LoopFigures {
    /// The loop did not spin: a `Park` is recorded each time the loop finds nothing to run
    /// and blocks in the poller. Such a park ends when another thread unparks it (at most
    /// once per park: the waker swaps the `sleeping` flag off), and the job that thread
    /// queued is then polled. An unpark can also arrive after the loop found the job
    /// without blocking; it then ends the *next* park early, with nothing to run. So every
    /// park is followed by a poll, or spends an unpark whose job is polled elsewhere: at
    /// most two parks per poll, plus a few at the start and end. A loop that spun would park
    /// again and again with nothing polled in between.
    fn assert_no_busy_loop(&self, what: &str) {
        assert!(
            self.parks <= 2 * self.polls + 8,
            "{what}: {} parks for {} polls: the loop spun",
            self.parks,
            self.polls
        );
    }
}

/// What a task of the many-wakes tests reports.
#[derive(Debug)]
struct Consumed {
    /// Values taken from each thread.
    per_thread: [u64; THREADS],
    /// Times the task was polled.
    polls: u64,
}

impl Consumed {
    /// Asserts that task `index` took exactly `per_thread` values from every thread, and was
    /// polled at least twice and at most once per wake sent to it, plus once.
    fn assert_complete(&self, index: usize, per_thread: u64) {
        assert_eq!(self.per_thread, [per_thread; THREADS], "task {index}");
        let wakes = per_thread * THREADS as u64;
        assert!(
            (2..=wakes + 1).contains(&self.polls),
            "task {index}: {} polls for {wakes} wakes",
            self.polls
        );
    }
}

/// The many-wakes harness: spawns one task per thread, `task(index, hand_out)`, which must
/// send `THREADS` clones of its waker through `hand_out` at its first poll; then starts
/// `THREADS` threads together, thread `t` running `fire(t, wakers)` with its own clone of
/// every task's waker (by task index). Returns the tasks' outputs once they and the threads
/// have finished.
async fn tasks_woken_by_threads<T, F>(
    task: impl Fn(usize, mpsc::Sender<(usize, Waker)>) -> F,
    fire: impl Fn(usize, Vec<Waker>) + Send + Sync + 'static,
) -> Vec<T>
where
    T: 'static,
    F: Future<Output = T> + 'static,
{
    let (hand_out, handed) = mpsc::channel();
    let tasks: Vec<_> = (0..THREADS)
        .map(|index| spawn(task(index, hand_out.clone())))
        .collect();
    // The tasks' first polls (before the root's next one) hand out their wakers.
    yield_now().await.unwrap();
    let mut wakers: Vec<Vec<Waker>> = vec![Vec::new(); THREADS];
    for (index, waker) in handed.try_iter() {
        wakers[index].push(waker);
    }
    assert!(
        wakers.iter().all(|w| w.len() == THREADS),
        "every task handed out its wakers"
    );
    let fire = Arc::new(fire);
    let start = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let own: Vec<Waker> = wakers.iter_mut().map(|w| w.pop().unwrap()).collect();
            let (fire, start) = (fire.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                fire(thread, own);
            })
        })
        .collect();
    let mut outputs = Vec::new();
    for task in tasks {
        outputs.push(task.await.unwrap());
    }
    // Joining blocks: on the pool, not on the loop.
    unblock(move || threads.into_iter().try_for_each(|t| t.join()))
        .await
        .unwrap()
        .unwrap();
    outputs
}

/// Counters shared by threads and tasks, indexed `[task][thread]`.
type Grid = Arc<[[AtomicU64; THREADS]; THREADS]>;

#[test]
fn four_threads_waking_four_tasks_millions_of_times_lose_no_wake_and_do_not_spin() {
    let wakes = wakes_per_thread();
    let per_pair = wakes / THREADS as u64;
    let wall = std::time::Instant::now();
    let (sent, consumed, figures) = no_hang(limit_for(wakes * THREADS as u64), move || {
        let runtime = Builder::new().record_trace(true).build().expect("runtime");
        // Values announced to a task and not yet taken, per sending thread.
        let pending = Grid::default();
        let sent: Arc<[AtomicU64; THREADS]> = Arc::default();
        let consumed = runtime.block_on(tasks_woken_by_threads(
            |index, hand_out| {
                let pending = pending.clone();
                let mut consumed = Consumed {
                    per_thread: [0; THREADS],
                    polls: 0,
                };
                poll_fn(move |cx| {
                    consumed.polls += 1;
                    if consumed.polls == 1 {
                        for _ in 0..THREADS {
                            hand_out.send((index, cx.waker().clone())).unwrap();
                        }
                    }
                    // Take what was announced; anything announced later comes with a wake.
                    for (thread, count) in pending[index].iter().enumerate() {
                        consumed.per_thread[thread] += count.swap(0, Ordering::SeqCst);
                    }
                    if consumed.per_thread == [per_pair; THREADS] {
                        Poll::Ready(Consumed { ..consumed })
                    } else {
                        Poll::Pending
                    }
                })
            },
            {
                let (pending, sent) = (pending.clone(), sent.clone());
                move |thread, wakers| {
                    for seq in 0..wakes {
                        let task = (seq % THREADS as u64) as usize;
                        // Announce, count, wake: the poll after the wake takes the value.
                        pending[task][thread].fetch_add(1, Ordering::SeqCst);
                        sent[thread].fetch_add(1, Ordering::SeqCst);
                        wakers[task].wake_by_ref();
                    }
                }
            },
        ));
        let sent: Vec<u64> = sent.iter().map(|s| s.load(Ordering::SeqCst)).collect();
        (sent, consumed, loop_figures(&runtime))
    });
    let observed: u64 = consumed.iter().flat_map(|c| c.per_thread).sum();
    let task_polls: Vec<u64> = consumed.iter().map(|c| c.polls).collect();
    eprintln!(
        "{THREADS} threads x {wakes} wakes: {observed} observed in {:?}; task polls \
         {task_polls:?}; loop: {figures:?}",
        wall.elapsed()
    );
    assert_eq!(sent, [wakes; THREADS], "every thread sent all its wakes");
    assert_eq!(
        observed,
        wakes * THREADS as u64,
        "every wake's value was taken"
    );
    for (index, c) in consumed.iter().enumerate() {
        c.assert_complete(index, per_pair);
    }
    figures.assert_no_busy_loop("counted wakes");
}

/// A value a thread sends to a task: which thread, and its sequence number.
type Value = (usize, u64);

/// Task `index` of the ordered-values test: at every poll it takes the count of values
/// announced since the last one (a thread bumps `announced` after sending and before
/// waking) and receives exactly that many, checking that each thread's values arrive in
/// order (thread `t` sends this task `index`, `index + THREADS`, ...). It never looks for more
/// than was announced, so a value whose wake was lost would never be taken and the test
/// would hang: coalesced wakes are fine, lost ones are not.
fn ordered_consumer(
    index: usize,
    values: mpsc::Receiver<Value>,
    announced: Arc<AtomicU64>,
    per_thread: u64,
    hand_out: mpsc::Sender<(usize, Waker)>,
) -> impl Future<Output = Consumed> {
    let mut next = [index as u64; THREADS];
    let mut consumed = Consumed {
        per_thread: [0; THREADS],
        polls: 0,
    };
    poll_fn(move |cx| {
        consumed.polls += 1;
        if consumed.polls == 1 {
            for _ in 0..THREADS {
                hand_out.send((index, cx.waker().clone())).unwrap();
            }
        }
        for _ in 0..announced.swap(0, Ordering::SeqCst) {
            // Sent before it was announced, so it is there (if not this thread's value, an
            // earlier one of another thread, announced next).
            let (thread, seq) = values.try_recv().expect("an announced value");
            assert_eq!(
                seq, next[thread],
                "task {index}: thread {thread} out of order"
            );
            next[thread] += THREADS as u64;
            consumed.per_thread[thread] += 1;
        }
        if consumed.per_thread == [per_thread; THREADS] {
            Poll::Ready(Consumed { ..consumed })
        } else {
            Poll::Pending
        }
    })
}

#[test]
fn four_threads_sending_four_tasks_millions_of_values_with_wakes_lose_none_and_keep_order() {
    let wakes = wakes_per_thread();
    let per_pair = wakes / THREADS as u64;
    let wall = std::time::Instant::now();
    let (consumed, figures) = no_hang(limit_for(wakes * THREADS as u64), move || {
        let runtime = Builder::new().record_trace(true).build().expect("runtime");
        let announced: Vec<Arc<AtomicU64>> = (0..THREADS).map(|_| Arc::default()).collect();
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..THREADS).map(|_| mpsc::channel()).unzip();
        let receivers = RefCell::new(receivers.into_iter().map(Some).collect::<Vec<_>>());
        let consumed = runtime.block_on(tasks_woken_by_threads(
            |index, hand_out| {
                let values = receivers.borrow_mut()[index]
                    .take()
                    .expect("one task per index");
                ordered_consumer(index, values, announced[index].clone(), per_pair, hand_out)
            },
            {
                let announced = announced.clone();
                move |thread, wakers| {
                    let senders: Vec<mpsc::Sender<Value>> = senders.clone();
                    for seq in 0..wakes {
                        let task = (seq % THREADS as u64) as usize;
                        // Send, announce, wake: the poll after the wake takes it.
                        senders[task].send((thread, seq)).unwrap();
                        announced[task].fetch_add(1, Ordering::SeqCst);
                        wakers[task].wake_by_ref();
                    }
                }
            },
        ));
        (consumed, loop_figures(&runtime))
    });
    let observed: u64 = consumed.iter().flat_map(|c| c.per_thread).sum();
    let task_polls: Vec<u64> = consumed.iter().map(|c| c.polls).collect();
    eprintln!(
        "{THREADS} threads x {wakes} values: {observed} received in order in {:?}; task polls \
         {task_polls:?}; loop: {figures:?}",
        wall.elapsed()
    );
    assert_eq!(
        observed,
        wakes * THREADS as u64,
        "every value sent was received"
    );
    for (index, c) in consumed.iter().enumerate() {
        c.assert_complete(index, per_pair);
    }
    figures.assert_no_busy_loop("ordered values");
}

/// Round trips per thread of the ping-pong test: a fiftieth of the wakes (each costs a
/// sleep and an unpark of the loop, and a blocking receive on the thread).
fn round_trips_per_thread() -> u64 {
    (wakes_per_thread() / 50).max(1)
}

#[test]
fn four_threads_each_waking_a_sleeping_loop_tens_of_thousands_of_times_lose_no_wake() {
    let rounds = round_trips_per_thread();
    let wall = std::time::Instant::now();
    let (replies, figures) = no_hang(limit_for(rounds * THREADS as u64 * 100), move || {
        let runtime = Builder::new().record_trace(true).build().expect("runtime");
        let replies = runtime.block_on(async move {
            let mut tasks = Vec::new();
            let mut threads = Vec::new();
            for thread in 0..THREADS {
                let (values_tx, values) = mpsc::channel::<u64>();
                let (acks, acks_rx) = mpsc::channel::<u64>();
                let (waker_tx, waker_rx) = mpsc::channel::<Waker>();
                let announced = Arc::new(AtomicU64::new(0));
                let task_announced = announced.clone();
                let mut next = 0;
                let mut polls = 0u64;
                tasks.push(spawn(poll_fn(move |cx| {
                    polls += 1;
                    if polls == 1 {
                        waker_tx.send(cx.waker().clone()).unwrap();
                    }
                    for _ in 0..task_announced.swap(0, Ordering::SeqCst) {
                        let value = values.try_recv().expect("an announced value");
                        assert_eq!(value, next, "thread {thread}: out of order");
                        next += 1;
                        acks.send(value).unwrap();
                    }
                    if next == rounds {
                        Poll::Ready((next, polls))
                    } else {
                        Poll::Pending
                    }
                })));
                // One round at a time: send, announce, wake, then block until the task
                // answers. The loop keeps running out of work and sleeping in epoll, so
                // many wakes have to unpark it.
                threads.push(std::thread::spawn(move || {
                    let waker = waker_rx.recv().expect("the task's waker");
                    for round in 0..rounds {
                        values_tx.send(round).unwrap();
                        announced.fetch_add(1, Ordering::SeqCst);
                        waker.wake_by_ref();
                        assert_eq!(acks_rx.recv(), Ok(round), "thread {thread}: the reply");
                    }
                }));
            }
            let mut replies = Vec::new();
            for task in tasks {
                replies.push(task.await.unwrap());
            }
            unblock(move || threads.into_iter().try_for_each(|t| t.join()))
                .await
                .unwrap()
                .unwrap();
            replies
        });
        (replies, loop_figures(&runtime))
    });
    eprintln!(
        "{THREADS} threads x {rounds} round trips in {:?}: (replies, polls) per task \
         {replies:?}; loop: {figures:?}",
        wall.elapsed()
    );
    for (thread, &(answered, polls)) in replies.iter().enumerate() {
        assert_eq!(answered, rounds, "thread {thread}: every round answered");
        assert!(
            (2..=rounds + 1).contains(&polls),
            "thread {thread}: {polls} polls"
        );
    }
    figures.assert_no_busy_loop("ping-pong");
}

#[test]
fn millions_of_wakes_of_a_dropped_runtimes_wakers_racing_its_drop_do_nothing() {
    let wakes = wakes_per_thread();
    let wall = std::time::Instant::now();
    let fired_at_drop = no_hang(limit_for(wakes * THREADS as u64), move || {
        // Each old task counts its polls here; the root's waker is the last stale one.
        let old_polls: Arc<[AtomicU64; THREADS]> = Arc::default();
        let fired = Arc::new(AtomicU64::new(0));
        let (firing_tx, firing) = mpsc::channel::<()>();
        let old = Builder::new().build().expect("runtime");
        let threads = old.block_on({
            let (old_polls, fired) = (old_polls.clone(), fired.clone());
            async move {
                let (waker_tx, waker_rx) = mpsc::channel();
                let tasks: Vec<_> = (0..THREADS)
                    .map(|index| {
                        let (old_polls, waker_tx) = (old_polls.clone(), waker_tx.clone());
                        spawn(poll_fn(move |cx| {
                            // Hand out the waker, then finish at the second poll.
                            match old_polls[index].fetch_add(1, Ordering::SeqCst) {
                                0 => {
                                    waker_tx.send(cx.waker().clone()).unwrap();
                                    cx.waker().wake_by_ref();
                                    Poll::Pending
                                }
                                _ => Poll::Ready(()),
                            }
                        }))
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
                let root_waker = poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
                let mut stale: Vec<Waker> = waker_rx.try_iter().collect();
                stale.push(root_waker);
                assert_eq!(stale.len(), THREADS + 1);
                // The threads start firing while this root is still running, and go on
                // through the end of block_on, the drop of the runtime and a new runtime.
                (0..THREADS)
                    .map(|_| {
                        let (stale, fired, firing_tx) =
                            (stale.clone(), fired.clone(), firing_tx.clone());
                        std::thread::spawn(move || {
                            let firing_from = (wakes - 1).min(1_000);
                            for i in 0..wakes {
                                stale[(i % stale.len() as u64) as usize].wake_by_ref();
                                fired.fetch_add(1, Ordering::SeqCst);
                                if i == firing_from {
                                    firing_tx.send(()).unwrap();
                                }
                            }
                        })
                    })
                    .collect::<Vec<_>>()
            }
        });
        // Every thread is firing by now; the runtime goes while they do.
        for _ in 0..THREADS {
            firing.recv().expect("a firing thread");
        }
        drop(old);
        let fired_at_drop = fired.load(Ordering::SeqCst);
        let old_polls_at_drop: Vec<u64> =
            old_polls.iter().map(|p| p.load(Ordering::SeqCst)).collect();
        assert_eq!(old_polls_at_drop, [2; THREADS]);

        // A new runtime on this thread, under the same fire: its task is polled exactly
        // once per yield plus once, and its loop does not spin.
        let new = Builder::new().record_trace(true).build().expect("runtime");
        let yields = new.block_on(async {
            let worker = spawn(async {
                let mut yields = 0u32;
                for _ in 0..10_000 {
                    yield_now().await.unwrap();
                    yields += 1;
                }
                yields
            });
            worker.await.unwrap()
        });
        assert_eq!(yields, 10_000);
        let trace = new.trace();
        let worker_polls = trace
            .events
            .iter()
            .filter(|e| matches!(e, TraceEvent::Poll(_)))
            .count();
        assert_eq!(
            worker_polls, 10_001,
            "stale wakes reached the new runtime's task"
        );
        loop_figures(&new).assert_no_busy_loop("new runtime");
        drop(new);

        for thread in threads {
            thread
                .join()
                .expect("firing a dropped runtime's wakers never panics");
        }
        assert_eq!(fired.load(Ordering::SeqCst), wakes * THREADS as u64);
        let old_polls_now: Vec<u64> = old_polls.iter().map(|p| p.load(Ordering::SeqCst)).collect();
        assert_eq!(
            old_polls_now, [2; THREADS],
            "an old task was polled after its end"
        );
        fired_at_drop
    });
    eprintln!(
        "{THREADS} threads x {wakes} wakes of a dropped runtime's wakers in {:?} \
         ({fired_at_drop} fired before the drop, the rest during and after it)",
        wall.elapsed()
    );
}
