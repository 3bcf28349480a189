//! `Event`: set releases every waiter; waits fail in a cancelled region, even when set.

use crate::common::{Log, ms, ms_since, paused};
use treeloop::sync::Event;
use treeloop::time::{Instant, sleep};
use treeloop::{CancelReason, Cancelled, shield, spawn};

#[test]
fn set_releases_every_waiter_at_once_and_later_waits_complete_immediately() {
    let log = Log::new();
    paused().block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let stop = Event::new();
            let mut workers = Vec::new();
            for name in ["a", "b", "c"] {
                let (stop, log) = (stop.clone(), log.clone());
                workers.push(spawn(async move {
                    let result = stop.wait().await;
                    log.push(format!("{name}: {result:?} at {} ms", ms_since(start)));
                }));
            }
            sleep(ms(10)).await.unwrap();
            assert!(!stop.is_set());
            stop.set();
            stop.set(); // idempotent
            for worker in workers {
                worker.await.unwrap();
            }
            assert!(stop.is_set());
            assert_eq!(stop.wait().await, Ok(()));
            log.push(format!("late waiter: done at {} ms", ms_since(start)));
        }
    });
    assert_eq!(
        log.take(),
        [
            "a: Ok(()) at 10 ms",
            "b: Ok(()) at 10 ms",
            "c: Ok(()) at 10 ms",
            "late waiter: done at 10 ms",
        ]
    );
}

#[test]
fn a_waiting_wait_fails_at_the_cancel_instant_without_the_event_being_set() {
    paused().block_on(async {
        let start = Instant::now();
        let stop = Event::new();
        let waiter = spawn({
            let stop = stop.clone();
            async move { (stop.wait().await, ms_since(start)) }
        });
        sleep(ms(7)).await.unwrap();
        waiter.cancel();
        let (result, at) = waiter.await.unwrap();
        assert_eq!(result, Err(Cancelled::new(CancelReason::Explicit)));
        assert_eq!(at, 7, "woken by the cancel, not by a timer (R12)");
        assert!(!stop.is_set());
    });
}

#[test]
fn wait_in_a_cancelled_region_fails_every_time_even_when_set_and_succeeds_in_a_shield() {
    paused().block_on(async {
        let stop = Event::new();
        stop.set();
        let task = spawn({
            let stop = stop.clone();
            async move {
                let _ = sleep(ms(1_000)).await; // wait to be cancelled
                let mut results = Vec::new();
                for _ in 0..3 {
                    results.push(stop.wait().await);
                }
                results.push(shield(stop.wait()).await);
                results
            }
        });
        sleep(ms(1)).await.unwrap();
        task.cancel();
        let cancelled = Err(Cancelled::new(CancelReason::Explicit));
        assert_eq!(
            task.await.unwrap(),
            [cancelled, cancelled, cancelled, Ok(())]
        );
    });
}
