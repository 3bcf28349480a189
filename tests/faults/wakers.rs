//! Faults on the wake path: threads that panic right after waking their tasks, and foreign
//! wakers that panic when the runtime itself calls them (a timer firing, a region's last child
//! finishing, a `cancel()` waking a subtree).

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::task::{Poll, Waker};
use std::time::Duration;

use crate::common::{Log, message, ms, paused};
use crate::support::{
    Bomb, Ledger, LogOnDrop, Stash, assert_still_usable, no_hang, panic_message_of,
    stash_waker_and_wait, until_cancelled, with_panicking_waker,
};
use treeloop::time::{Instant, sleep, timeout};
use treeloop::{Builder, shield, spawn, unblock};

// ---------------------------------------------------------------------------------------
// Wakes from other threads, and wake paths that panic.
// ---------------------------------------------------------------------------------------

/// The tasks of the waker-thread test, one per thread.
const WAITERS: [&str; 4] = ["waiter 0", "waiter 1", "waiter 2", "waiter 3"];

#[test]
fn threads_panicking_right_after_waking_their_tasks_disturb_nothing() {
    no_hang(|| {
        let rt = paused();
        let ledger = Ledger::new();
        let (polls, thread_panics) = rt.block_on({
            let ledger = ledger.clone();
            async move {
                let mut tasks = Vec::new();
                let mut threads = Vec::new();
                for (i, name) in WAITERS.into_iter().enumerate() {
                    let woken = Arc::new(AtomicBool::new(false));
                    let (hand_over, waker) = mpsc::channel::<Waker>();
                    let task_woken = woken.clone();
                    let mut handed = false;
                    let waiter = poll_fn(move |cx| {
                        if !handed {
                            // Hand the waker over, then wait for the thread's wake: checking
                            // the flag now would race with the thread.
                            hand_over.send(cx.waker().clone()).unwrap();
                            handed = true;
                            return Poll::Pending;
                        }
                        match task_woken.load(Ordering::SeqCst) {
                            true => Poll::Ready(i),
                            false => Poll::Pending,
                        }
                    });
                    tasks.push(spawn(ledger.track(name, waiter)));
                    threads.push(std::thread::spawn(move || {
                        let waker = waker.recv().expect("the task hands over its waker");
                        woken.store(true, Ordering::SeqCst);
                        waker.wake_by_ref();
                        // The clone is dropped while this thread unwinds.
                        panic!("waker thread {i} boom");
                    }));
                }
                let mut polls = Vec::new();
                for (i, task) in tasks.into_iter().enumerate() {
                    assert_eq!(task.await.unwrap(), i);
                    polls.push(ledger.counts(WAITERS[i]).polls);
                }
                // Joining blocks: on the pool, not on the loop.
                let joined: Vec<std::thread::Result<()>> =
                    unblock(move || threads.into_iter().map(|t| t.join()).collect())
                        .await
                        .unwrap();
                let panics: Vec<String> = joined
                    .into_iter()
                    .map(|j| message(&*j.expect_err("each thread panicked")))
                    .collect();
                (polls, panics)
            }
        });
        assert_eq!(
            polls, [2; 4],
            "each task polled once, then once for its wake"
        );
        let expected: Vec<String> = (0..4).map(|i| format!("waker thread {i} boom")).collect();
        assert_eq!(thread_panics, expected);
        ledger.assert_each_dropped_once(&WAITERS);
        assert_still_usable(&rt);
    });
}

#[test]
fn a_foreign_waker_panicking_when_its_timer_fires_abandons_block_on_and_tears_the_tree_down() {
    let log = no_hang(|| {
        let rt = paused();
        let ledger = Ledger::new();
        let log = Log::new();
        let stash = Stash::default();
        let reraised = panic_message_of(|| {
            rt.block_on(ledger.track("root", {
                let (ledger, log, stash) = (ledger.clone(), log.clone(), stash.clone());
                async move {
                    let start = Instant::now();
                    drop(spawn(
                        ledger.track("parked", stash_waker_and_wait(stash.clone())),
                    ));
                    let cleaning = spawn(ledger.track("cleaning", {
                        let log = log.clone();
                        async move {
                            until_cancelled().await;
                            let _dropped = LogOnDrop {
                                log: log.clone(),
                                what: "cleaning dropped mid-cleanup",
                                start,
                            };
                            shield(sleep(ms(50))).await.unwrap();
                            log.push("never: cleaning finished its cleanup");
                        }
                    }));
                    drop(spawn(ledger.track(
                        "drop bomb",
                        Bomb {
                            poll_panic: None,
                            drop_panic: Some("drop boom during teardown"),
                        },
                    )));
                    sleep(ms(1)).await.unwrap();
                    cleaning.cancel();
                    // The sleep registers the foreign waker with the reactor; at 6 ms the
                    // reactor wakes it and the panic unwinds out of the loop.
                    with_panicking_waker(sleep(ms(5))).await.unwrap();
                    log.push("never: the root resumed");
                }
            }))
        });
        assert_eq!(reraised, "foreign wake boom");
        // Every task's future was dropped by the teardown, on this thread, exactly once.
        ledger.assert_each_dropped_once(&["root", "parked", "cleaning", "drop bomb"]);
        assert_still_usable(&rt);
        // The runtime goes; the wakers of its torn-down task are fired afterwards.
        drop(rt);
        let wakers = stash.take();
        assert_eq!(wakers.len(), 1);
        std::thread::spawn(move || wakers.iter().for_each(Waker::wake_by_ref))
            .join()
            .expect("waking a dropped runtime's task is a no-op");
        log.take()
    });
    assert_eq!(log, ["cleaning dropped mid-cleanup at 6"]);
}

#[test]
fn a_foreign_waker_panicking_when_its_regions_last_child_finishes_abandons_block_on() {
    no_hang(|| {
        let rt = paused();
        let ledger = Ledger::new();
        let reraised = panic_message_of(|| {
            rt.block_on({
                let ledger = ledger.clone();
                async move {
                    let owner = spawn(ledger.track("owner", {
                        let ledger = ledger.clone();
                        // The shield's region wakes its owner's waker (here the foreign,
                        // panicking one) when its last child finishes.
                        with_panicking_waker(shield(async move {
                            drop(spawn(ledger.track("member", async {
                                sleep(ms(2)).await.unwrap();
                            })));
                            std::future::pending::<()>().await
                        }))
                    }));
                    let _parked = spawn(ledger.track("parked", std::future::pending::<()>()));
                    let _ = owner.await;
                    unreachable!("the owner never finishes");
                }
            })
        });
        assert_eq!(reraised, "foreign wake boom");
        ledger.assert_each_dropped_once(&["owner", "member", "parked"]);
        assert_still_usable(&rt);
    });
}

/// Regression test for a fixed bug: a waker that panics while `cancel()` wakes a subtree loses the wakes of every task
/// after it in the walk. `Core::cancel` collects the wakers, then wakes them with
/// `for_each(Waker::wake)`: the panic unwinds out of that loop and the remaining wakers are
/// dropped unwoken. Those tasks are marked cancelled but never polled again, so a task
/// waiting in `cancelled()` (no timer) sleeps forever: a hang in a normal run, the deadlock
/// report in this seeded one. The root's own panic (the waker's, raised from its
/// `cancel()` call) is lost to that report too.
/// Expected: every marked task is woken even when one waker panics; `b` sees `Explicit` and
/// finishes, and `block_on` re-raises "foreign wake boom" after the cleanup.
#[test]
fn bug_a_panicking_waker_during_cancel_loses_the_wakes_of_the_tasks_after_it() {
    let log = no_hang(|| {
        // Seeded, so the lost wake is reported as a deadlock instead of hanging.
        let rt = Builder::new()
            .seed(1)
            .strategy(treeloop::Strategy::Fifo)
            .build()
            .expect("runtime");
        let log = Log::new();
        let reraised = panic_message_of(|| {
            rt.block_on({
                let log = log.clone();
                async move {
                    let parent = spawn({
                        let log = log.clone();
                        async move {
                            let _a = spawn({
                                let log = log.clone();
                                async move {
                                    // A cancel region (a timeout) whose waker is the foreign one.
                                    let body =
                                        timeout(Duration::from_secs(3600), treeloop::cancelled());
                                    let why = with_panicking_waker(body).await.unwrap();
                                    log.push(format!("a saw {:?}", why.reason()));
                                }
                            });
                            let _b = spawn({
                                let log = log.clone();
                                async move {
                                    let why = treeloop::cancelled().await;
                                    log.push(format!("b saw {:?}", why.reason()));
                                }
                            });
                            let why = treeloop::cancelled().await;
                            log.push(format!("parent saw {:?}", why.reason()));
                        }
                    });
                    // Every task is waiting by then.
                    sleep(ms(1)).await.unwrap();
                    parent.cancel();
                    let _ = parent.await;
                }
            })
        });
        assert_eq!(reraised, "foreign wake boom");
        log.take()
    });
    assert_eq!(
        log,
        ["parent saw Explicit", "a saw Explicit", "b saw Explicit"]
    );
}
