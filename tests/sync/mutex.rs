//! `Mutex`: FIFO by hand-off, no barging, cancelled locks hold nothing, a lock handed to a
//! waiter that goes away passes on, and what happens to a guard that outlives its task.

use std::rc::Rc;

use crate::common::{Log, ms, ms_since, paused};
use crate::poll_once;
use treeloop::sync::{Mutex, TryLockError};
use treeloop::time::{Instant, sleep};
use treeloop::{CancelReason, Cancelled, checkpoint, shield, spawn};

fn explicit() -> Cancelled {
    Cancelled::new(CancelReason::Explicit)
}

/// Spawns a task that locks `mutex`, logs when it got it, holds it `hold_ms`, and adds its
/// name to the value.
fn locker(
    mutex: &Rc<Mutex<Vec<&'static str>>>,
    log: &Log,
    name: &'static str,
    start: Instant,
    hold_ms: u64,
) -> treeloop::JoinHandle<Result<(), Cancelled>> {
    let (mutex, log) = (mutex.clone(), log.clone());
    spawn(async move {
        let mut guard = mutex.lock().await?;
        log.push(format!("{name} locked at {} ms", ms_since(start)));
        guard.push(name);
        sleep(ms(hold_ms)).await?;
        Ok(())
    })
}

#[test]
fn the_lock_is_granted_in_arrival_order() {
    let log = Log::new();
    let order = paused().block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let mutex = Rc::new(Mutex::new(Vec::new()));
            let holder = mutex.lock().await.unwrap();
            let mut tasks = Vec::new();
            for name in ["a", "b", "c"] {
                tasks.push(locker(&mutex, &log, name, start, 5));
                checkpoint().await.unwrap(); // `name` is in line before the next spawn
            }
            sleep(ms(10)).await.unwrap();
            drop(holder);
            for task in tasks {
                task.await.unwrap().unwrap();
            }
            Rc::try_unwrap(mutex).unwrap().into_inner()
        }
    });
    assert_eq!(order, ["a", "b", "c"]);
    assert_eq!(
        log.take(),
        [
            "a locked at 10 ms",
            "b locked at 15 ms",
            "c locked at 20 ms"
        ]
    );
}

#[test]
fn a_newcomer_cannot_barge_past_a_waiter_the_lock_was_handed_to() {
    paused().block_on(async {
        let start = Instant::now();
        let log = Log::new();
        let mutex = Rc::new(Mutex::new(Vec::new()));
        let holder = mutex.lock().await.unwrap();
        let waiter = locker(&mutex, &log, "waiter", start, 5);
        checkpoint().await.unwrap();
        drop(holder);
        // Unlocked, but handed to the waiter, which has not run yet.
        assert!(matches!(mutex.try_lock(), Err(TryLockError)));
        let newcomer = locker(&mutex, &log, "newcomer", start, 0);
        waiter.await.unwrap().unwrap();
        newcomer.await.unwrap().unwrap();
        assert_eq!(*mutex.try_lock().unwrap(), ["waiter", "newcomer"]);
        assert_eq!(
            log.take(),
            ["waiter locked at 0 ms", "newcomer locked at 5 ms"]
        );
    });
}

#[test]
fn a_cancelled_lock_holds_nothing_and_the_next_waiter_gets_it() {
    let log = Log::new();
    paused().block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let mutex = Rc::new(Mutex::new(Vec::new()));
            let holder = mutex.lock().await.unwrap();
            let first = locker(&mutex, &log, "first", start, 5);
            checkpoint().await.unwrap();
            let second = locker(&mutex, &log, "second", start, 5);
            sleep(ms(3)).await.unwrap();
            first.cancel();
            assert_eq!(first.await.unwrap(), Err(explicit()));
            log.push(format!("first cancelled at {} ms", ms_since(start)));
            sleep(ms(7)).await.unwrap();
            drop(holder);
            second.await.unwrap().unwrap();
            assert_eq!(*mutex.try_lock().unwrap(), ["second"]);
        }
    });
    assert_eq!(
        log.take(),
        ["first cancelled at 3 ms", "second locked at 10 ms"]
    );
}

#[test]
fn a_lock_handed_to_a_waiter_cancelled_before_taking_it_passes_on() {
    let log = Log::new();
    paused().block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let mutex = Rc::new(Mutex::new(Vec::new()));
            let holder = mutex.lock().await.unwrap();
            let first = locker(&mutex, &log, "first", start, 5);
            checkpoint().await.unwrap();
            let second = locker(&mutex, &log, "second", start, 5);
            checkpoint().await.unwrap();
            drop(holder); // handed to `first` ...
            first.cancel(); // ... which is cancelled before it runs
            assert_eq!(first.await.unwrap(), Err(explicit()));
            second.await.unwrap().unwrap();
            assert_eq!(*mutex.try_lock().unwrap(), ["second"]);
        }
    });
    assert_eq!(log.take(), ["second locked at 0 ms"]);
}

#[test]
fn a_lock_handed_to_a_lock_future_that_is_dropped_passes_on() {
    paused().block_on(async {
        let start = Instant::now();
        let log = Log::new();
        let mutex = Rc::new(Mutex::new(Vec::new()));
        let holder = mutex.lock().await.unwrap();
        let mut abandoned = mutex.lock();
        assert!(
            poll_once(&mut abandoned).await.is_pending(),
            "in line first"
        );
        let second = locker(&mutex, &log, "second", start, 0);
        checkpoint().await.unwrap();
        drop(holder); // handed to `abandoned` ...
        drop(abandoned); // ... which is dropped without being polled again
        second.await.unwrap().unwrap();
        assert_eq!(log.take(), ["second locked at 0 ms"]);
        assert!(mutex.try_lock().is_ok());
    });
}

#[test]
fn lock_in_a_cancelled_region_fails_every_time_even_when_free() {
    paused().block_on(async {
        let mutex = Rc::new(Mutex::new(0));
        let task = spawn({
            let mutex = mutex.clone();
            async move {
                let _ = sleep(ms(1_000)).await; // wait to be cancelled
                let mut failures = Vec::new();
                for _ in 0..3 {
                    failures.push(mutex.lock().await.map(|_| ()));
                }
                let free_after = mutex.try_lock().is_ok();
                let shielded = shield(async {
                    *mutex.lock().await? += 1;
                    Ok::<_, Cancelled>(())
                })
                .await;
                (failures, free_after, shielded)
            }
        });
        checkpoint().await.unwrap();
        task.cancel();
        let (failures, free_after, shielded) = task.await.unwrap();
        assert_eq!(failures, [Err(explicit()); 3]);
        assert!(free_after, "a cancelled lock holds nothing");
        assert_eq!(shielded, Ok(()));
        assert_eq!(*mutex.try_lock().unwrap(), 1);
    });
}

/// The decision (see the `Mutex` module docs): a guard is a value, and it keeps the mutex
/// locked wherever it goes until it is dropped, even after the task that locked it ended.
#[test]
fn a_guard_returned_out_of_its_task_keeps_the_mutex_locked_until_dropped() {
    let mutex: &'static Mutex<u32> = Box::leak(Box::new(Mutex::new(0)));
    let log = Log::new();
    paused().block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let locker = spawn(async move { mutex.lock().await.unwrap() });
            let mut guard = locker.await.unwrap();
            *guard += 1;
            let waiter = spawn({
                let log = log.clone();
                async move {
                    let value = *mutex.lock().await.unwrap();
                    log.push(format!("waiter got {value} at {} ms", ms_since(start)));
                }
            });
            sleep(ms(10)).await.unwrap();
            assert!(
                mutex.try_lock().is_err(),
                "still locked after its task ended"
            );
            log.push("guard dropped at 10 ms");
            drop(guard);
            waiter.await.unwrap();
        }
    });
    assert_eq!(
        log.take(),
        ["guard dropped at 10 ms", "waiter got 1 at 10 ms"]
    );
}

#[test]
fn a_guard_held_by_a_cancelled_task_is_released_when_its_cleanup_ends() {
    let log = Log::new();
    paused().block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let mutex = Rc::new(Mutex::new(Vec::new()));
            let holder = spawn({
                let mutex = mutex.clone();
                async move {
                    let _guard = mutex.lock().await.unwrap();
                    let _ = sleep(ms(3_600_000)).await;
                    // Cleanup still holds the guard.
                    shield(sleep(ms(10))).await.unwrap();
                }
            });
            checkpoint().await.unwrap();
            let waiter = locker(&mutex, &log, "waiter", start, 0);
            sleep(ms(5)).await.unwrap();
            holder.cancel();
            holder.await.unwrap();
            waiter.await.unwrap().unwrap();
        }
    });
    assert_eq!(log.take(), ["waiter locked at 15 ms"]);
}
