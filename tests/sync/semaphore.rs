//! `Semaphore`: strict FIFO (a large request at the head blocks smaller later ones), permits
//! come back on drop, and cancelled or dropped acquires hold nothing and pass on.

use std::rc::Rc;

use crate::common::{Log, ms, ms_since, paused};
use crate::poll_once;
use treeloop::sync::{Semaphore, TryAcquireError};
use treeloop::time::{Instant, sleep};
use treeloop::{CancelReason, Cancelled, checkpoint, shield, spawn};

fn explicit() -> Cancelled {
    Cancelled::new(CancelReason::Explicit)
}

/// Spawns a task that acquires `permits`, logs when, holds them `hold_ms`.
fn acquirer(
    semaphore: &Rc<Semaphore>,
    log: &Log,
    name: &'static str,
    permits: usize,
    start: Instant,
    hold_ms: u64,
) -> treeloop::JoinHandle<Result<(), Cancelled>> {
    let (semaphore, log) = (semaphore.clone(), log.clone());
    spawn(async move {
        let permit = semaphore.acquire_many(permits).await?;
        assert_eq!(permit.num_permits(), permits);
        log.push(format!("{name} got {permits} at {} ms", ms_since(start)));
        sleep(ms(hold_ms)).await?;
        Ok(())
    })
}

#[test]
fn permits_limit_concurrency_and_are_granted_in_arrival_order() {
    let log = Log::new();
    paused().block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let semaphore = Rc::new(Semaphore::new(2));
            let mut tasks = Vec::new();
            for name in ["a", "b", "c", "d", "e"] {
                tasks.push(acquirer(&semaphore, &log, name, 1, start, 10));
            }
            for task in tasks {
                task.await.unwrap().unwrap();
            }
            assert_eq!(semaphore.available_permits(), 2);
        }
    });
    assert_eq!(
        log.take(),
        [
            "a got 1 at 0 ms",
            "b got 1 at 0 ms",
            "c got 1 at 10 ms",
            "d got 1 at 10 ms",
            "e got 1 at 20 ms",
        ]
    );
}

#[test]
fn a_large_request_at_the_head_is_not_starved_by_later_small_ones() {
    let log = Log::new();
    paused().block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let semaphore = Rc::new(Semaphore::new(2));
            let held = semaphore.try_acquire_many(2).unwrap();
            let large = acquirer(&semaphore, &log, "large", 3, start, 10);
            checkpoint().await.unwrap();
            let small = acquirer(&semaphore, &log, "small", 1, start, 0);
            sleep(ms(5)).await.unwrap();
            semaphore.add_permits(1);
            // One permit is free, but `large` is first in line and needs 3.
            assert_eq!(semaphore.available_permits(), 1);
            assert_eq!(semaphore.try_acquire().unwrap_err(), TryAcquireError);
            sleep(ms(5)).await.unwrap();
            drop(held);
            large.await.unwrap().unwrap();
            small.await.unwrap().unwrap();
            assert_eq!(semaphore.available_permits(), 3);
        }
    });
    assert_eq!(log.take(), ["large got 3 at 10 ms", "small got 1 at 20 ms"]);
}

#[test]
fn a_cancelled_acquire_at_the_head_holds_nothing_and_lets_the_line_move() {
    let log = Log::new();
    paused().block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let semaphore = Rc::new(Semaphore::new(2));
            let large = acquirer(&semaphore, &log, "large", 3, start, 0);
            checkpoint().await.unwrap();
            let small = acquirer(&semaphore, &log, "small", 1, start, 0);
            sleep(ms(4)).await.unwrap();
            large.cancel();
            assert_eq!(large.await.unwrap(), Err(explicit()));
            small.await.unwrap().unwrap();
            assert_eq!(semaphore.available_permits(), 2);
        }
    });
    assert_eq!(log.take(), ["small got 1 at 4 ms"]);
}

#[test]
fn permits_handed_to_an_acquire_cancelled_before_taking_them_go_to_the_next() {
    let log = Log::new();
    paused().block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let semaphore = Rc::new(Semaphore::new(0));
            let first = acquirer(&semaphore, &log, "first", 1, start, 0);
            checkpoint().await.unwrap();
            let second = acquirer(&semaphore, &log, "second", 1, start, 5);
            checkpoint().await.unwrap();
            semaphore.add_permits(1); // handed to `first` ...
            assert_eq!(semaphore.available_permits(), 0);
            first.cancel(); // ... which is cancelled before it runs
            assert_eq!(first.await.unwrap(), Err(explicit()));
            assert_eq!(semaphore.available_permits(), 0, "now `second`'s");
            second.await.unwrap().unwrap();
            assert_eq!(semaphore.available_permits(), 1);
        }
    });
    assert_eq!(log.take(), ["second got 1 at 0 ms"]);
}

#[test]
fn permits_handed_to_a_dropped_acquire_go_to_the_next() {
    paused().block_on(async {
        let semaphore = Semaphore::new(0);
        let mut abandoned = semaphore.acquire_many(2);
        assert!(poll_once(&mut abandoned).await.is_pending());
        let mut next = semaphore.acquire();
        assert!(poll_once(&mut next).await.is_pending());
        semaphore.add_permits(2);
        assert_eq!(
            semaphore.available_permits(),
            0,
            "both handed to `abandoned`"
        );
        drop(abandoned);
        assert_eq!(semaphore.available_permits(), 1, "one handed on to `next`");
        let permit = next.await.unwrap();
        assert_eq!(permit.num_permits(), 1);
        drop(permit);
        assert_eq!(semaphore.available_permits(), 2);
    });
}

#[test]
fn acquire_in_a_cancelled_region_fails_every_time_even_with_permits_free() {
    paused().block_on(async {
        let semaphore = Rc::new(Semaphore::new(3));
        let task = spawn({
            let semaphore = semaphore.clone();
            async move {
                let _ = sleep(ms(1_000)).await; // wait to be cancelled
                let mut failures = Vec::new();
                for _ in 0..3 {
                    failures.push(semaphore.acquire().await.map(|p| p.num_permits()));
                }
                let free = semaphore.available_permits();
                let shielded = shield(semaphore.acquire_many(3))
                    .await
                    .map(|p| p.num_permits());
                (failures, free, shielded)
            }
        });
        checkpoint().await.unwrap();
        task.cancel();
        let (failures, free, shielded) = task.await.unwrap();
        assert_eq!(failures, [Err(explicit()); 3]);
        assert_eq!(free, 3, "a cancelled acquire holds nothing");
        assert_eq!(shielded, Ok(3));
        assert_eq!(semaphore.available_permits(), 3);
    });
}

#[test]
fn dropped_permits_come_back_and_forgotten_ones_do_not() {
    let semaphore = Semaphore::new(5);
    let two = semaphore.try_acquire_many(2).unwrap();
    let one = semaphore.try_acquire().unwrap();
    assert_eq!(semaphore.available_permits(), 2);
    drop(two);
    assert_eq!(semaphore.available_permits(), 4);
    one.forget();
    assert_eq!(semaphore.available_permits(), 4);
    assert_eq!(
        semaphore.try_acquire_many(5).unwrap_err(),
        TryAcquireError,
        "the forgotten permit is gone for good"
    );
}
