//! Misuse: calls made where they cannot work panic with a message naming the mistake
//! (STYLE 14), and what outlives its runtime (wakers, handles) is harmless.

mod common;

use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use common::{Counters, Log, ms, ms_since, paused};
use treeloop::time::{Instant, sleep};
use treeloop::{checkpoint, spawn, yield_now};

use common::message;

/// Polls `future` once on this thread with a waker that does nothing.
fn poll_once<F: Future>(future: F) -> Poll<F::Output> {
    let mut future = pin!(future);
    future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
}

/// Runs a task (and the root) on a fresh runtime, keeping clones of their wakers, and
/// returns them with the task's counters once the runtime is dropped.
fn wakers_of_a_dropped_runtime() -> (Vec<Waker>, Counters) {
    let stash: Rc<RefCell<Vec<Waker>>> = Rc::default();
    let counters = Counters::new();
    let rt = paused();
    let value = rt.block_on({
        let stash = stash.clone();
        let counters = counters.clone();
        async move {
            let task_stash = stash.clone();
            let task = spawn(counters.probe(async move {
                poll_fn(|cx| {
                    task_stash.borrow_mut().push(cx.waker().clone());
                    Poll::Ready(())
                })
                .await;
                3
            }));
            poll_fn(|cx| {
                stash.borrow_mut().push(cx.waker().clone());
                Poll::Ready(())
            })
            .await;
            task.await.unwrap()
        }
    });
    assert_eq!(value, 3);
    drop(rt);
    let wakers = stash.take();
    assert_eq!(wakers.len(), 2, "the task's waker and the root's");
    (wakers, counters)
}

/// A fresh runtime on this thread runs a yielding task with exactly two polls: stale
/// wakes did not leak into it.
fn assert_fresh_runtime_unaffected() {
    let counters = Counters::new();
    let value = paused().block_on({
        let counters = counters.clone();
        async move {
            spawn(counters.probe(async {
                yield_now().await.unwrap();
                5
            }))
            .await
            .unwrap()
        }
    });
    assert_eq!(value, 5);
    assert_eq!((counters.polls(), counters.drops()), (2, 1));
}

#[test]
#[should_panic(expected = "spawn called outside a treeloop runtime")]
fn spawn_outside_a_runtime_panics_naming_the_mistake() {
    let _handle = spawn(async {});
}

#[test]
fn spawn_between_two_block_ons_is_outside_the_runtime() {
    let rt = paused();
    assert_eq!(rt.block_on(async { spawn(async { 1 }).await.unwrap() }), 1);
    let payload = catch_unwind(|| spawn(async {})).unwrap_err();
    let text = message(&*payload);
    assert!(
        text.starts_with("spawn called outside a treeloop runtime"),
        "got: {text}"
    );
    assert!(text.contains("treeloop::block_on"), "names the fix: {text}");
}

#[test]
#[should_panic(expected = "block_on called inside a treeloop runtime")]
fn nested_block_on_in_the_root_panics() {
    let rt = paused();
    rt.block_on(async { treeloop::block_on(async { 1 }) });
}

#[test]
#[should_panic(expected = "block_on called inside a treeloop runtime")]
fn nested_block_on_of_the_same_runtime_panics() {
    let rt = paused();
    rt.block_on(async { rt.block_on(async { 1 }) });
}

#[test]
#[should_panic(expected = "block_on called inside a treeloop runtime")]
fn nested_block_on_in_a_spawned_task_is_reraised_by_the_outer_block_on() {
    paused().block_on(async {
        drop(spawn(async { treeloop::block_on(async { 1 }) }));
    });
}

#[test]
fn nested_block_on_in_a_task_with_a_live_handle_fails_only_that_task() {
    let log = Log::new();
    let rt = paused();
    let value = rt.block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let nested = spawn(async { treeloop::block_on(async { 1 }) });
            let err = nested.await.unwrap_err();
            assert!(err.is_panic());
            let text = message(&*err.into_panic());
            assert!(
                text.starts_with("block_on called inside a treeloop runtime"),
                "got: {text}"
            );
            // The outer runtime is intact: its clock and timers still work.
            sleep(ms(3)).await.unwrap();
            log.push(format!("root slept until {}", ms_since(start)));
            "outer"
        }
    });
    assert_eq!(value, "outer");
    assert_eq!(log.take(), ["root slept until 3"]);
}

#[test]
#[should_panic(expected = "JoinHandle polled after it returned its output")]
fn join_handle_polled_again_after_its_output_panics() {
    paused().block_on(async {
        let mut handle = spawn(async { 7 });
        let first = poll_fn(|cx| Pin::new(&mut handle).poll(cx)).await;
        assert_eq!(first.unwrap(), 7);
        let _second = poll_fn(|cx| Pin::new(&mut handle).poll(cx)).await;
    });
}

#[test]
#[should_panic(expected = "sleep polled outside a treeloop runtime")]
fn sleep_polled_outside_a_runtime_panics() {
    let _ = poll_once(sleep(ms(1)));
}

#[test]
#[should_panic(expected = "checkpoint/yield_now polled outside a treeloop runtime")]
fn checkpoint_polled_outside_a_runtime_panics() {
    let _ = poll_once(checkpoint());
}

#[test]
#[should_panic(expected = "checkpoint/yield_now polled outside a treeloop runtime")]
fn yield_now_polled_outside_a_runtime_panics() {
    let _ = poll_once(yield_now());
}

#[test]
#[should_panic(expected = "JoinError::into_panic on an error that is not a panic")]
fn into_panic_on_an_aborted_join_error_panics() {
    let err = paused().block_on(async {
        let task = spawn(std::future::pending::<()>());
        checkpoint().await.unwrap();
        task.abort();
        task.await.unwrap_err()
    });
    let err = err.try_into_panic().expect_err("an abort is not a panic");
    assert!(err.is_aborted());
    let _ = err.into_panic();
}

#[test]
fn waker_fired_on_the_same_thread_after_its_runtime_was_dropped_is_a_no_op() {
    let (wakers, counters) = wakers_of_a_dropped_runtime();
    for waker in &wakers {
        waker.wake_by_ref();
    }
    wakers.into_iter().for_each(Waker::wake);
    assert_eq!(
        (counters.polls(), counters.drops()),
        (1, 1),
        "the task was not polled again"
    );
    assert_fresh_runtime_unaffected();
}

#[test]
fn waker_fired_from_another_thread_after_its_runtime_was_dropped_is_a_no_op() {
    let (wakers, counters) = wakers_of_a_dropped_runtime();
    let woken = std::thread::spawn(move || {
        let count = wakers.len();
        for waker in &wakers {
            waker.wake_by_ref();
        }
        wakers.into_iter().for_each(Waker::wake);
        count
    })
    .join()
    .expect("waking a dead runtime's wakers must not panic the waking thread");
    assert_eq!(woken, 2);
    assert_eq!((counters.polls(), counters.drops()), (1, 1));
    assert_fresh_runtime_unaffected();
}

#[test]
// The root returns the handle on purpose, so that it outlives its runtime.
#[allow(clippy::async_yields_async)]
fn handle_outliving_its_runtime_ignores_cancel_and_abort_and_keeps_the_outcome() {
    let rt = paused();
    let handle = rt.block_on(async { spawn(async { 11 }) });
    drop(rt);
    assert!(handle.is_finished());
    handle.cancel();
    handle.abort();
    // Taken on another runtime: the outcome was kept, and the join is not cancelled.
    let outcome = paused().block_on(handle);
    assert_eq!(outcome.unwrap(), 11);
}

#[test]
// The root returns the handle on purpose, so that it outlives its runtime.
#[allow(clippy::async_yields_async)]
fn dropping_a_panicked_tasks_handle_after_its_runtime_ended_does_not_raise() {
    let rt = paused();
    let handle = rt.block_on(async { spawn(async { panic!("outlived") }) });
    drop(rt);
    assert!(handle.is_finished());
    // Nobody is left to re-raise it: the payload is reported to stderr instead.
    let dropped = catch_unwind(AssertUnwindSafe(|| drop(handle)));
    assert!(dropped.is_ok());
    // And nothing of it reaches the next runtime on this thread.
    let next = paused().block_on(async { checkpoint().await });
    assert_eq!(next, Ok(()));
}
