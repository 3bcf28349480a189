//! Deterministic mode (SPEC §5): same seed, same trace; different seeds, different
//! interleavings; a planted ordering bug found and replayed; deadlocks reported; exact
//! virtual time; scopes behave the same under every seed.

mod common;

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use common::ms;
use treeloop::sim::{DuplexStream, duplex};
use treeloop::time::{Instant, sleep};
use treeloop::{Builder, Runtime, Strategy, cancelled, scope, shield, spawn, yield_now};

fn seeded(seed: u64) -> Runtime {
    Builder::new()
        .seed(seed)
        .strategy(Strategy::Random)
        .build()
        .expect("runtime")
}

async fn send(stream: &mut DuplexStream, bytes: &[u8]) -> io::Result<usize> {
    stream.write(bytes).await
}

async fn recv(stream: &mut DuplexStream, buf: &mut [u8]) -> io::Result<usize> {
    stream.read(buf).await
}

/// Ten tasks: four producer/consumer pairs over in-memory pipes, a ticker, and a victim
/// that gets cancelled. Returns a log whose order depends on the interleaving.
async fn workload() -> Vec<String> {
    let log = Rc::new(RefCell::new(Vec::new()));
    let mut handles = Vec::new();
    for pair in 0..4u8 {
        let (mut a, mut b) = duplex(4);
        let l = log.clone();
        handles.push(spawn(async move {
            for i in 0..3u8 {
                send(&mut a, &[pair * 10 + i]).await.unwrap();
                yield_now().await.unwrap();
            }
            l.borrow_mut().push(format!("producer {pair} done"));
        }));
        let l = log.clone();
        handles.push(spawn(async move {
            let mut buf = [0u8; 8];
            let mut got = 0;
            while got < 3 {
                let n = recv(&mut b, &mut buf).await.unwrap();
                for byte in &buf[..n] {
                    l.borrow_mut().push(format!("consumer {pair} got {byte}"));
                }
                got += n;
            }
        }));
    }
    let l = log.clone();
    handles.push(spawn(async move {
        for tick in 0..3 {
            sleep(ms(1)).await.unwrap();
            l.borrow_mut().push(format!("tick {tick}"));
        }
    }));
    let l = log.clone();
    let victim = spawn(async move {
        let why = cancelled().await;
        l.borrow_mut().push(format!("victim: {:?}", why.reason()));
    });
    sleep(ms(2)).await.unwrap();
    victim.cancel();
    victim.await.unwrap();
    for handle in handles {
        handle.await.unwrap();
    }
    Rc::try_unwrap(log).unwrap().into_inner()
}

#[test]
fn the_same_seed_gives_the_same_trace_every_time() {
    let reference = {
        let rt = seeded(42);
        let log = rt.block_on(workload());
        (rt.trace().hash, log)
    };
    for _ in 0..100 {
        let rt = seeded(42);
        let log = rt.block_on(workload());
        assert_eq!((rt.trace().hash, log), reference);
    }
}

#[test]
fn different_seeds_give_different_interleavings() {
    let hashes: HashSet<u64> = (0..1_000)
        .map(|seed| {
            let rt = seeded(seed);
            rt.block_on(workload());
            rt.trace().hash
        })
        .collect();
    eprintln!("1,000 seeds gave {} distinct traces", hashes.len());
    assert!(hashes.len() >= 990, "only {} distinct traces", hashes.len());
}

#[test]
fn fifo_is_the_default_and_needs_no_seed() {
    let rt = Builder::new().record_trace(true).build().unwrap();
    rt.block_on(async {
        let a = spawn(async { yield_now().await.unwrap() });
        let b = spawn(async {});
        a.await.unwrap();
        b.await.unwrap();
    });
    use treeloop::TraceEvent::{Park, Poll, PollRoot};
    let events = rt.trace().events;
    // root spawns 1 and 2, awaits 1; 1 yields; 2 returns; 1 returns; root joins both.
    let polls: Vec<_> = events.iter().filter(|e| **e != Park).copied().collect();
    assert_eq!(polls[..4], [PollRoot, Poll(1), Poll(2), Poll(1)]);
}

/// Three tasks that each must run their step in a specific order (c, then a, then b) for
/// the bug to show: a check-then-act across an await, needing a depth-3 interleaving.
async fn ordering_bug() {
    let state = Rc::new(Cell::new(0u8));
    let step = |expect: u8, next: u8| {
        let state = state.clone();
        spawn(async move {
            yield_now().await.unwrap();
            if state.get() == expect {
                state.set(next);
            }
        })
    };
    let a = step(1, 2);
    let b = step(2, 3);
    let c = step(0, 1);
    for task in [a, b, c] {
        task.await.unwrap();
    }
    assert_ne!(
        state.get(),
        3,
        "the planted bug: c, a, b ran in exactly that order"
    );
}

#[test]
fn check_finds_a_planted_three_task_ordering_bug_and_its_seed_replays_it() {
    let found = std::panic::catch_unwind(|| treeloop::test::check(200, ordering_bug));
    assert!(found.is_err(), "200 seeds should hit the 1-in-6 ordering");
    // Find which seed failed, then replay it alone: it fails again, the same way.
    let failing = (0..200u64)
        .find(|&seed| std::panic::catch_unwind(|| seeded(seed).block_on(ordering_bug())).is_err())
        .expect("a failing seed");
    for _ in 0..3 {
        let replay = std::panic::catch_unwind(|| seeded(failing).block_on(ordering_bug()));
        assert!(replay.is_err(), "seed {failing} replays the failure");
    }
}

#[test]
fn a_two_task_deadlock_is_reported_with_both_tasks_instead_of_hanging() {
    let report = std::panic::catch_unwind(|| {
        seeded(1).block_on(async {
            // Each task waits to read what the other would only write afterwards.
            let (mut a, mut b) = duplex(8);
            let first = spawn(async move {
                let mut buf = [0u8; 1];
                recv(&mut a, &mut buf).await.unwrap();
                send(&mut a, b"x").await.unwrap();
            });
            let second = spawn(async move {
                let mut buf = [0u8; 1];
                recv(&mut b, &mut buf).await.unwrap();
                send(&mut b, b"y").await.unwrap();
            });
            first.await.unwrap();
            second.await.unwrap();
        })
    })
    .unwrap_err();
    let message = report.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("treeloop deadlock"), "{message}");
    // The root and both tasks are listed with where they were spawned.
    assert_eq!(
        message.matches("tests/determinism.rs").count(),
        3,
        "{message}"
    );
    // Reported, not hung: had the loop blocked, this test would never get here.
}

#[test]
fn an_hour_of_virtual_time_is_exact_and_instant() {
    let times = seeded(3).block_on(async {
        let start = Instant::now();
        let mut seen = Vec::new();
        for _ in 0..60 {
            sleep(Duration::from_secs(60)).await.unwrap();
            seen.push(start.elapsed());
        }
        sleep(Duration::from_nanos(1)).await.unwrap();
        seen.push(start.elapsed());
        seen
    });
    assert_eq!(times[59], Duration::from_secs(3600));
    assert_eq!(
        times[60],
        Duration::from_secs(3600) + Duration::from_nanos(1)
    );
    assert!(
        times
            .windows(2)
            .take(59)
            .all(|w| w[1] - w[0] == Duration::from_secs(60))
    );
    // "Instant" is the point of virtual time, but no wall-clock bound is asserted: tests
    // measure behaviour, not speed (the hour above passes without any real waiting).
}

#[test]
fn real_sockets_are_refused_in_a_seeded_run_unless_allowed() {
    let err = seeded(0)
        .block_on(async { treeloop::net::TcpListener::bind("127.0.0.1:0").map(drop) })
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::Unsupported);
    assert!(err.to_string().contains("sim::duplex"));
    let allowed = Builder::new().seed(0).allow_real_io(true).build().unwrap();
    assert!(
        allowed
            .block_on(async { treeloop::net::TcpListener::bind("127.0.0.1:0").map(drop) })
            .is_ok()
    );
}

#[test]
fn scope_failure_and_cleanup_behave_the_same_under_fifty_seeds() {
    treeloop::test::check(50, || async {
        let cleaned = Rc::new(Cell::new(0));
        let c = cleaned.clone();
        let result = scope(|s| async move {
            for _ in 0..3 {
                let c = c.clone();
                s.spawn(async move {
                    let why = cancelled().await;
                    shield(sleep(ms(5))).await?;
                    c.set(c.get() + 1);
                    Err::<(), io::Error>(why.into())
                })?;
            }
            s.spawn(async {
                sleep(ms(1)).await?;
                Err::<(), _>(io::Error::other("boom"))
            })?;
            Ok::<_, io::Error>(())
        })
        .await;
        assert_eq!(result.unwrap_err().first().unwrap().to_string(), "boom");
        assert_eq!(cleaned.get(), 3);
    });
}

#[test]
fn timeouts_and_shields_behave_the_same_under_fifty_seeds() {
    treeloop::test::check(50, || async {
        let start = Instant::now();
        let out = treeloop::time::timeout(ms(10), async {
            let _ = sleep(ms(100)).await;
            shield(sleep(ms(3))).await.unwrap();
            start.elapsed()
        })
        .await;
        assert!(out.is_err());
        assert_eq!(start.elapsed(), ms(13));
    });
}

#[test]
fn recording_a_trace_does_not_change_it() {
    // Printing while running (logging) leaves the decisions, hence the hash, unchanged.
    let quiet = seeded(9);
    quiet.block_on(workload());
    let chatty = seeded(9);
    chatty.block_on(async {
        let log = workload().await;
        for line in &log {
            eprintln!("{line}");
        }
    });
    assert_eq!(quiet.trace().hash, chatty.trace().hash);
}

#[test]
fn pct_is_deterministic_and_finds_the_planted_bug() {
    let pct = |seed| {
        Builder::new()
            .seed(seed)
            .strategy(Strategy::Pct { depth: 3 })
            .build()
            .expect("runtime")
    };
    // Same seed, same decisions.
    let a = pct(5);
    a.block_on(workload());
    let b = pct(5);
    b.block_on(workload());
    assert_eq!(a.trace(), b.trace());
    // The depth-3 ordering bug within 200 seeds.
    let found = (0..200u64)
        .find(|&seed| std::panic::catch_unwind(|| pct(seed).block_on(ordering_bug())).is_err());
    eprintln!("PCT (depth 3) found the planted bug at seed {found:?}");
    assert!(found.is_some());
}

#[test]
fn a_paused_runtime_reports_a_lost_wake_up_as_a_deadlock_when_asked() {
    // A channel whose sender is forgotten inside the runtime: the receiver can never be
    // woken. Without `report_deadlocks` a paused (unseeded) runtime would block forever,
    // since another thread might still hold a waker; with it, the test fails fast.
    let rt = treeloop::Builder::new()
        .start_paused(true)
        .report_deadlocks(true)
        .build()
        .unwrap();
    let report = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async {
            let (sender, mut receiver) = treeloop::sync::oneshot::channel::<u32>();
            std::mem::forget(sender);
            let waiter = spawn(async move { receiver.recv().await.is_ok() });
            let _ = waiter.await;
        })
    }))
    .unwrap_err();
    let message = report.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("treeloop deadlock"), "{message}");
    assert_eq!(
        message.matches("tests/determinism.rs").count(),
        2,
        "{message}"
    );
    // Timers still count as a way out: a sleep is not a deadlock.
    rt.block_on(async { sleep(Duration::from_secs(5)).await.unwrap() });
}

#[test]
fn a_seed_alone_explores_interleavings_and_fifo_must_be_asked_for() {
    let order = |builder: Builder| {
        builder.build().unwrap().block_on(async {
            let log = Rc::new(RefCell::new(Vec::new()));
            let tasks: Vec<_> = (0..4)
                .map(|n| {
                    let log = log.clone();
                    spawn(async move {
                        yield_now().await.unwrap();
                        log.borrow_mut().push(n);
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            log.take()
        })
    };
    let seeded: std::collections::BTreeSet<Vec<u32>> = (0..100)
        .map(|seed| order(Builder::new().seed(seed)))
        .collect();
    // 4 tasks have 24 orders; 100 seeds of a random strategy find most of them.
    assert!(
        seeded.len() >= 12,
        "only {} orders: {seeded:?}",
        seeded.len()
    );
    let fifo: std::collections::BTreeSet<Vec<u32>> = (0..100)
        .map(|seed| order(Builder::new().seed(seed).strategy(Strategy::Fifo)))
        .collect();
    assert_eq!(fifo.into_iter().collect::<Vec<_>>(), [vec![0, 1, 2, 3]]);
}

#[test]
fn a_long_run_keeps_only_the_latest_trace_events_but_hashes_them_all() {
    let run = |yields: u32| {
        let rt = seeded(8);
        rt.block_on(async move {
            let tasks: Vec<_> = (0..3)
                .map(|_| {
                    spawn(async move {
                        for _ in 0..yields {
                            yield_now().await.unwrap();
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
        rt.trace()
    };
    let long = run(30_000);
    assert!(long.recorded > 90_000, "{} events", long.recorded);
    assert_eq!(long.events.len(), 65_536, "only the latest are kept");
    assert_eq!(run(30_000), long, "same seed, same kept events, same hash");
    // Every event is in the hash, the dropped ones too: a different start, another hash.
    assert_ne!(run(29_999).hash, long.hash);
    let short = run(10);
    assert_eq!(short.events.len() as u64, short.recorded);
}

#[test]
fn a_deadlock_under_check_names_the_test_as_the_roots_spawn_site() {
    let report = std::panic::catch_unwind(|| {
        treeloop::test::check(1, || async {
            let (a, _b) = duplex(8);
            let mut buf = [0u8; 1];
            // Nobody will ever write to `a`.
            a.read(&mut buf).await.unwrap();
        })
    })
    .unwrap_err();
    let message = report.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("treeloop deadlock"), "{message}");
    let root = message
        .lines()
        .find(|line| line.starts_with("#0 root"))
        .unwrap_or_else(|| panic!("no root line in {message}"));
    assert!(root.contains("tests/determinism.rs:"), "{root}");
    assert!(!message.contains("src/check.rs"), "{message}");
}

/// Shields (one that spawns, one that only sleeps, nested ones), a scope, timeouts and plain
/// spawns, with a cancellation whose cleanup takes virtual time (so a watchdog has a pending
/// cancellation to watch). Returns the log of what ran, in order.
async fn shielded_workload() -> Vec<String> {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let stubborn = spawn(async move {
        let why = cancelled().await;
        // A shield that spawns: it becomes a node with or without diagnostics.
        let helper = shield(async {
            let l = l.clone();
            spawn(async move {
                sleep(ms(2)).await.unwrap();
                l.borrow_mut().push("helper slept".to_owned());
            })
            .await
            .unwrap();
        });
        helper.await;
        // Nested shields that spawn nothing: lazy without diagnostics.
        shield(shield(sleep(ms(3)))).await.unwrap();
        l.borrow_mut()
            .push(format!("stubborn cleaned up after {:?}", why.reason()));
    });
    let l = log.clone();
    let scoped = scope(|s| async move {
        for n in 0..3u32 {
            let l = l.clone();
            s.spawn(async move {
                let slept = treeloop::time::timeout(ms(u64::from(n) * 2), sleep(ms(3))).await;
                shield(yield_now()).await.unwrap();
                l.borrow_mut()
                    .push(format!("member {n}: {}", slept.is_ok()));
                Ok::<(), io::Error>(())
            })?;
        }
        Ok::<_, io::Error>(())
    });
    // A lazy shield in the body before the next spawn: only a node with diagnostics.
    shield(yield_now()).await.unwrap();
    let l = log.clone();
    let ticker = spawn(async move {
        for tick in 0..4 {
            sleep(ms(1)).await.unwrap();
            l.borrow_mut().push(format!("tick {tick}"));
        }
    });
    sleep(ms(1)).await.unwrap();
    stubborn.cancel();
    scoped.await.unwrap();
    ticker.await.unwrap();
    stubborn.await.unwrap();
    Rc::try_unwrap(log).unwrap().into_inner()
}

/// A change to a runtime's options.
type Configure = fn(Builder) -> Builder;

#[test]
fn diagnostics_watchdog_and_slow_poll_reports_do_not_change_the_trace() {
    let run = |configure: Configure| {
        let reports = Rc::new(Cell::new(0usize));
        let count = reports.clone();
        let builder = Builder::new()
            .seed(11)
            .report_sink(move |_| count.set(count.get() + 1));
        let rt = configure(builder).build().expect("runtime");
        let log = rt.block_on(shielded_workload());
        (rt.trace(), log, reports.get())
    };
    let (quiet, quiet_log, _) = run(|b| b);
    let variants: [(&str, Configure); 4] = [
        ("diagnostics", |b| b.diagnostics(true)),
        ("stall_watchdog", |b| b.stall_watchdog(ms(1))),
        ("slow_poll_threshold", |b| {
            b.slow_poll_threshold(Duration::ZERO)
        }),
        ("everything", |b| {
            b.diagnostics(true)
                .stall_watchdog(ms(1))
                .slow_poll_threshold(Duration::ZERO)
                .dump_on_signal(true)
        }),
    ];
    let mut reported = 0;
    for (what, configure) in variants {
        let (chatty, chatty_log, reports) = run(configure);
        assert_eq!(chatty_log, quiet_log, "{what} changed what ran");
        assert_eq!(chatty.events, quiet.events, "{what} changed the events");
        assert_eq!(chatty.hash, quiet.hash, "{what} changed the hash");
        reported += reports;
    }
    // The chatty runs did report (slow polls at a zero threshold, the stuck cleanup).
    assert!(reported > 0);
}
