//! `Runtime::start` and `Stepper`: the loop taken one turn at a time, each turn's `Tick`
//! asserted exactly (FIFO order and virtual time make every count known in advance).

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::mpsc;
use std::task::Poll;
use std::time::Duration;

use treeloop::{Builder, Runtime, Tick, spawn};

fn runtime() -> Runtime {
    Builder::new().start_paused(true).build().expect("runtime")
}

/// The message of a caught panic.
fn message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(text) => *text,
        Err(payload) => payload
            .downcast_ref::<&str>()
            .map_or_else(|| "(not text)".to_owned(), |text| (*text).to_owned()),
    }
}

#[test]
fn a_turn_runs_at_most_61_jobs_and_says_what_is_left() {
    let runtime = runtime();
    let mut run = runtime.start(async {
        let handles: Vec<_> = (0..70u32).map(|i| spawn(async move { i })).collect();
        let mut sum = 0;
        for handle in handles {
            sum += handle.await.unwrap();
        }
        sum
    });
    // The root (spawning 70 tasks, then waiting for the first) and tasks 0..=59; task 0's
    // completion woke the root.
    let first = run.step();
    assert_eq!(
        first,
        Tick {
            polled: 61,
            completed: 60,
            woken: 71,
            injected: 0,
            has_remaining: true,
            next_deadline: None,
            finished: false,
        }
    );
    // Tasks 60..=69, then the root, which finds every handle ready and returns.
    let second = run.step();
    assert_eq!(
        second,
        Tick {
            polled: 11,
            completed: 10,
            woken: 0,
            injected: 0,
            has_remaining: false,
            next_deadline: None,
            finished: true,
        }
    );
    assert!(run.is_finished());
    // A finished run's turns do nothing.
    assert_eq!(
        run.step(),
        Tick {
            finished: true,
            ..Tick::default()
        }
    );
    assert_eq!(run.finish(), (0..70).sum::<u32>());
}

#[test]
fn stepping_a_cancel_through_a_tree() {
    let runtime = runtime();
    let cleaned = Rc::new(Cell::new(0));
    let seen = cleaned.clone();
    let mut run = runtime.start(async move {
        let parent = spawn(async move {
            // Detached: the parent still completes only after it.
            drop(spawn(async move {
                let slept = treeloop::time::sleep(Duration::from_secs(60)).await;
                assert!(slept.is_err(), "the leaf's sleep is cancelled");
                seen.set(seen.get() + 1);
            }));
            treeloop::time::sleep(Duration::from_secs(60))
                .await
                .is_err()
        });
        treeloop::time::sleep(Duration::from_millis(5))
            .await
            .unwrap();
        parent.cancel();
        parent.await.unwrap()
    });
    // Root, parent, leaf: each sleeps (the root 5 ms, the others 60 s); the parent and the
    // leaf were queued by their spawns.
    let tick = run.step();
    assert_eq!((tick.polled, tick.woken, tick.completed), (3, 2, 0));
    assert_eq!(tick.next_deadline, Some(Duration::from_millis(5)));
    assert_eq!(cleaned.get(), 0);
    // The root cancels the parent's subtree (the parent and the leaf are woken) and waits;
    // the parent's sleep returns `Err(Cancelled)` and it returns, but waits for its child;
    // the leaf cleans up and completes, which wakes the parent; the parent completes, which
    // wakes the root; the root returns, and the tree is empty.
    let tick = run.step();
    assert_eq!(
        (tick.polled, tick.woken, tick.completed, tick.finished),
        (5, 4, 2, true)
    );
    assert_eq!(cleaned.get(), 1);
    assert!(run.finish(), "the parent saw its sleep cancelled");
}

/// Counts its drops.
struct Dropped(Rc<Cell<u32>>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn a_stepper_dropped_early_tears_its_tree_down_and_the_runtime_runs_again() {
    let runtime = runtime();
    let drops = Rc::new(Cell::new(0));
    let (root_guard, task_guard) = (Dropped(drops.clone()), Dropped(drops.clone()));
    let mut run = runtime.start(async move {
        let _root_guard = root_guard;
        spawn(async move {
            let _task_guard = task_guard;
            treeloop::time::sleep(Duration::from_secs(3600)).await.ok();
        })
        .await
        .unwrap();
    });
    let tick = run.step();
    assert_eq!((tick.polled, tick.finished), (2, false));
    assert_eq!(drops.get(), 0);
    drop(run);
    assert_eq!(
        drops.get(),
        2,
        "the root future and the task's were both dropped"
    );
    assert_eq!(runtime.live_nodes(), 0);
    assert_eq!(runtime.block_on(async { 7 }), 7);
}

#[test]
fn finish_raises_the_panic_nobody_took_as_block_on_does() {
    let runtime = runtime();
    let mut run = runtime.start(async {
        drop(spawn(async { panic!("lost worker") }));
        treeloop::yield_now().await.ok();
        5
    });
    while !run.step().finished {}
    let raised = panic::catch_unwind(AssertUnwindSafe(|| run.finish())).unwrap_err();
    assert_eq!(message(raised), "lost worker");
}

#[test]
fn between_turns_nothing_of_the_runtime_is_current() {
    let runtime = runtime();
    let mut run = runtime.start(async { treeloop::yield_now().await.is_ok() });
    run.step();
    let refused = panic::catch_unwind(|| drop(spawn(async {}))).unwrap_err();
    assert!(
        message(refused).contains("outside"),
        "spawn between turns names the mistake"
    );
    assert!(run.finish());
}

#[test]
fn one_run_at_a_time_and_never_inside_a_runtime() {
    let runtime = runtime();
    let run = runtime.start(async {});
    let second = panic::catch_unwind(AssertUnwindSafe(|| drop(runtime.start(async {}))));
    assert!(message(second.unwrap_err()).contains("another run"));
    run.finish();

    let inner = self::runtime();
    let nested = runtime.block_on(async {
        panic::catch_unwind(AssertUnwindSafe(|| drop(inner.start(async {})))).unwrap_err()
    });
    assert!(message(nested).contains("inside a treeloop runtime"));
}

#[test]
fn a_wake_from_another_thread_is_counted_as_injected() {
    let runtime = runtime();
    let (send, receive) = mpsc::channel();
    let waker_thread = std::thread::spawn(move || {
        let waker: std::task::Waker = receive.recv().expect("the task's waker");
        waker.wake();
    });
    let mut run = runtime.start(async move {
        let mut sent = false;
        std::future::poll_fn(move |cx| {
            if sent {
                return Poll::Ready(());
            }
            send.send(cx.waker().clone())
                .expect("the thread waits for it");
            sent = true;
            Poll::Pending
        })
        .await;
    });
    // The root waits; the park blocks until the other thread's wake arrives.
    let tick = run.step();
    assert_eq!((tick.polled, tick.injected), (1, 0));
    waker_thread.join().expect("the waker thread");
    let tick = run.step();
    assert_eq!((tick.polled, tick.injected, tick.finished), (1, 1, true));
    run.finish();
}

#[test]
fn a_finished_run_dropped_without_finish_reports_its_panic_to_the_sink() {
    let reports = Rc::new(std::cell::RefCell::new(Vec::new()));
    let sink = reports.clone();
    let runtime = Builder::new()
        .start_paused(true)
        .report_sink(move |report| sink.borrow_mut().push(report.to_string()))
        .build()
        .expect("runtime");
    let mut run = runtime.start(async {
        drop(spawn(async { panic!("first") }));
        drop(spawn(async { panic!("second") }));
    });
    assert!(run.step().finished);
    // The finishing turn settled what the run raises ("first") and reported the other.
    assert_eq!(reports.borrow().len(), 1);
    assert!(
        reports.borrow()[0].ends_with("panicked too (block_on re-raises the first panic): second")
    );
    drop(run);
    let reports = reports.borrow();
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert!(
        reports[1].contains("never raised") && reports[1].ends_with(": first"),
        "{}",
        reports[1]
    );
}
