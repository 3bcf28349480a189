//! Seeing inside (SPEC §6, R20, R21): the tree dump, the stuck-cancellation watchdog and its
//! grace period, and the report sink. Everything runs on virtual time with the reports
//! captured, so the times in the assertions are exact.
//!
//! The slow-poll warning needs a poll that takes time, which virtual time cannot give a
//! facade test: it is tested in `executor/tests/slow_poll.rs` with a hand-driven clock.

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use common::{Forever, paused};
use treeloop::diag::{EntryKind, Report, StallCause, TaskState};
use treeloop::time::{Instant, sleep};
use treeloop::{Builder, Cancelled, Runtime, cancelled, scope, shield, spawn, task, yield_now};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The reports a runtime sent to its sink.
#[derive(Clone, Default)]
struct Captured(Rc<RefCell<Vec<Report>>>);

impl Captured {
    fn take(&self) -> Vec<Report> {
        std::mem::take(&mut self.0.borrow_mut())
    }
}

/// A paused runtime whose reports go to the returned capture, configured by `configure`.
fn captured(configure: impl FnOnce(Builder) -> Builder) -> (Runtime, Captured) {
    let captured = Captured::default();
    let sink = captured.clone();
    let builder = Builder::new()
        .start_paused(true)
        .report_sink(move |report| sink.0.borrow_mut().push(report.clone()));
    (configure(builder).build().unwrap(), captured)
}

#[test]
fn the_dump_shows_a_known_tree_with_exact_states_parents_and_children() {
    let rt = paused();
    let stubborn_polls = Rc::new(Cell::new(0));
    let polls = stubborn_polls.clone();
    rt.block_on(async move {
        let sleeper = task::Builder::new()
            .name("sleeper")
            .spawn(async { sleep(secs(10)).await.is_ok() });
        let parent = task::Builder::new().name("parent").spawn(async {
            // Returns at once; waits in the completing phase for its child.
            drop(
                task::Builder::new()
                    .name("child")
                    .spawn(async { sleep(secs(10)).await.is_ok() }),
            );
        });
        let stubborn = task::Builder::new().name("stubborn").spawn(Forever(polls));
        let careful = task::Builder::new().name("careful").spawn(async {
            let _ = cancelled().await;
            shield(async { sleep(secs(10)).await.is_ok() }).await
        });
        // Let each run once, cancel two, and let those react.
        yield_now().await.unwrap();
        stubborn.cancel();
        careful.cancel();
        yield_now().await.unwrap();
        let fresh = task::Builder::new().name("fresh").spawn(async {});

        let tree = treeloop::dump();
        let rows: Vec<_> = tree
            .entries
            .iter()
            .map(|e| {
                let parent = e.parent.and_then(|p| tree.get(p)).map(|p| p.kind);
                (e.name.as_deref(), e.kind, e.state, e.depth, parent)
            })
            .collect();
        use EntryKind::{Root, Task};
        use TaskState::*;
        assert_eq!(
            rows,
            vec![
                (None, Root, Running, 0, None),
                (Some("sleeper"), Task, Waiting, 1, Some(Root)),
                (Some("parent"), Task, Completing, 1, Some(Root)),
                (Some("child"), Task, Waiting, 2, Some(Task)),
                (Some("stubborn"), Task, Cancelled, 1, Some(Root)),
                // Its shield spawned nothing: without diagnostics it has no node (see
                // `a_shield_is_in_the_dump_with_diagnostics_on_or_once_it_spawned`).
                (Some("careful"), Task, Cancelled, 1, Some(Root)),
                (Some("fresh"), Task, Scheduled, 1, Some(Root)),
            ]
        );
        let root = &tree.entries[0];
        let ids = |names: &[&str]| -> Vec<_> {
            names
                .iter()
                .map(|n| tree.named(n).next().unwrap().id)
                .collect()
        };
        assert_eq!(
            root.children,
            ids(&["sleeper", "parent", "stubborn", "careful", "fresh"])
        );
        assert_eq!(
            tree.named("parent").next().unwrap().children,
            ids(&["child"])
        );
        assert_eq!(
            tree.named("child").next().unwrap().parent,
            Some(parent.id())
        );
        assert_eq!(
            tree.named("stubborn").next().unwrap().cancel,
            Some(treeloop::CancelReason::Explicit)
        );
        // Without diagnostics there are no poll statistics.
        assert!(tree.entries.iter().all(|e| e.polls.is_none()));
        // The text form: indented, named, with state and spawn location.
        let text = tree.to_string();
        let stubborn_line = text.lines().nth(4).unwrap();
        assert!(
            stubborn_line.starts_with(&format!(
                "  {} task \"stubborn\": cancelled (Explicit), spawned at tests/diagnostics.rs:",
                stubborn.id()
            )),
            "{text}"
        );
        assert!(text.lines().nth(3).unwrap().starts_with("    #"), "{text}");

        stubborn.abort();
        sleeper.cancel();
        assert!(stubborn.await.unwrap_err().is_aborted());
        assert!(!sleeper.await.unwrap());
        assert!(careful.await.unwrap());
        fresh.await.unwrap();
    });
    assert_eq!(stubborn_polls.get(), 2);
    assert_eq!(rt.dump().len(), 0);
}

#[test]
fn a_shield_is_in_the_dump_with_diagnostics_on_or_once_it_spawned() {
    use EntryKind::{Root, Shield, Task};
    use TaskState::*;
    for diagnostics in [false, true] {
        let (rt, _reports) = captured(|b| b.diagnostics(diagnostics));
        let rows = rt.block_on(async {
            let careful = spawn(async {
                let _ = cancelled().await;
                shield(async { sleep(secs(10)).await.is_ok() }).await
            });
            let spawner = spawn(async {
                let _ = cancelled().await;
                shield(async { spawn(async { sleep(secs(10)).await.is_ok() }).await })
                    .await
                    .unwrap()
            });
            yield_now().await.unwrap();
            careful.cancel();
            spawner.cancel();
            yield_now().await.unwrap();
            let tree = treeloop::dump();
            assert!(careful.await.unwrap());
            assert!(spawner.await.unwrap());
            tree.entries
                .iter()
                .map(|e| (e.kind, e.state, e.depth))
                .collect::<Vec<_>>()
        });
        // A shield that spawned has a node either way: its child needs a parent that
        // cancellation from outside does not cross.
        let spawner = [
            (Task, Shielded, 1),
            (Shield, Shielded, 2),
            (Task, Scheduled, 3),
        ];
        let careful: &[_] = if diagnostics {
            &[(Task, Shielded, 1), (Shield, Shielded, 2)]
        } else {
            // A flag on its task while it is polled, not a node: the task shows as
            // cancelled (and costs a slab insert and removal less).
            &[(Task, Cancelled, 1)]
        };
        let expected: Vec<_> = [(Root, Running, 0)]
            .iter()
            .chain(careful)
            .chain(&spawner)
            .copied()
            .collect();
        assert_eq!(rows, expected, "diagnostics: {diagnostics}");
    }
}

#[test]
fn with_diagnostics_on_the_dump_counts_polls_and_times_the_last_one() {
    let (rt, _reports) = captured(|b| b.diagnostics(true));
    rt.block_on(async {
        let ticker = task::Builder::new().name("ticker").spawn(async {
            for _ in 0..3 {
                sleep(secs(1)).await.unwrap();
            }
            let _ = sleep(secs(100)).await;
        });
        sleep(secs(5)).await.unwrap();
        let tree = treeloop::dump();
        let entry = tree.named("ticker").next().unwrap();
        // Polled at 0 s, 1 s, 2 s and 3 s.
        assert_eq!(entry.polls, Some(4));
        assert_eq!(entry.since_last_poll, Some(secs(2)));
        assert_eq!(tree.taken_at, Some(secs(5)));
        // The root's poll in progress is not counted yet: one finished poll, at 0 s.
        assert_eq!(tree.entries[0].polls, Some(1));
        assert_eq!(tree.entries[0].since_last_poll, Some(secs(5)));
        assert!(tree.to_string().contains("4 polls, last 2.0s ago"));
        ticker.cancel();
    });
}

#[test]
fn a_million_deep_chain_dumps_without_overflowing_the_stack() {
    const DEPTH: usize = 1_000_000;
    /// Level `depth` spawns the next one, then waits until cancelled.
    async fn link(depth: usize) {
        if depth + 1 < DEPTH {
            drop(spawn(link(depth + 1)));
        }
        let _ = cancelled().await;
    }
    let rt = paused();
    rt.block_on(async {
        drop(spawn(link(0)));
        sleep(secs(1)).await.unwrap();
        let tree = treeloop::dump();
        assert_eq!(tree.len(), DEPTH + 1);
        for (depth, pair) in tree.entries.windows(2).enumerate() {
            assert_eq!(pair[1].depth, depth + 1);
            assert_eq!(pair[1].parent, Some(pair[0].id));
            assert_eq!(pair[0].children, vec![pair[1].id]);
        }
        let text = tree.to_string();
        assert_eq!(text.lines().count(), DEPTH + 1);
        treeloop::shutdown();
    });
}

#[test]
fn the_watchdog_names_a_task_that_ignores_cancellation_and_the_grace_period_aborts_it() {
    let (rt, reports) = captured(|b| b.stall_watchdog(secs(1)).stall_grace(secs(2)));
    let polls = Rc::new(Cell::new(0));
    let stubborn_polls = polls.clone();
    let stubborn_id = rt.block_on(async move {
        let start = Instant::now();
        let stubborn = task::Builder::new().name("stubborn").spawn(Forever(polls));
        let polite = task::Builder::new()
            .name("polite")
            .spawn(async { sleep(secs(100)).await.is_err() });
        yield_now().await.unwrap();
        // Nothing is cancelled yet: however long they wait, nothing is reported.
        sleep(secs(10)).await.unwrap();
        stubborn.cancel();
        polite.cancel();
        let id = stubborn.id();
        assert!(polite.await.unwrap());
        // Reported 1 s after the cancel, aborted 2 s after the report.
        assert!(stubborn.await.unwrap_err().is_aborted());
        assert_eq!(start.elapsed(), secs(13));
        id
    });
    // Polled at 0 s and once more when cancelled; then dropped unpolled by the abort.
    assert_eq!(stubborn_polls.get(), 2);
    let reports = reports.take();
    assert_eq!(reports.len(), 2, "{reports:?}");
    let Report::Stall(stall) = &reports[0] else {
        panic!("expected a stall report first: {reports:?}")
    };
    assert_eq!(stall.stuck.len(), 1);
    let stuck = &stall.stuck[0];
    assert_eq!(stuck.id, stubborn_id);
    assert_eq!(stuck.name.as_deref(), Some("stubborn"));
    assert_eq!(stuck.cause, StallCause::IgnoresCancellation);
    assert_eq!(stuck.stuck_for, secs(1));
    assert_eq!(stall.grace, Some(secs(2)));
    // The dump in the report marks the stuck task and nothing else.
    let marked: Vec<_> = stall
        .dump
        .entries
        .iter()
        .filter(|e| e.stuck.is_some())
        .collect();
    assert_eq!(marked.len(), 1);
    assert_eq!(marked[0].id, stubborn_id);
    let text = reports[0].to_string();
    assert!(text.contains("ignores cancellation"), "{text}");
    assert!(text.contains("<== STUCK"), "{text}");
    let Report::Aborted(aborted) = &reports[1] else {
        panic!("expected the abort second: {reports:?}")
    };
    assert_eq!(aborted.id, stubborn_id);
    assert_eq!(aborted.stuck_for, secs(3));
}

#[test]
fn the_watchdog_stays_silent_for_a_slow_cleanup_that_makes_progress() {
    let (rt, reports) = captured(|b| b.stall_watchdog(secs(1)).stall_grace(secs(1)));
    rt.block_on(async {
        let start = Instant::now();
        let worker = task::Builder::new().name("slow cleanup").spawn(async {
            let _ = cancelled().await;
            // Ten steps of half a second: 5 s in all, never 1 s without progress.
            shield(async {
                for _ in 0..10 {
                    sleep(Duration::from_millis(500)).await.unwrap();
                }
            })
            .await;
            "cleaned up"
        });
        yield_now().await.unwrap();
        worker.cancel();
        assert_eq!(worker.await.unwrap(), "cleaned up");
        assert_eq!(start.elapsed(), secs(5));
    });
    assert!(reports.take().is_empty());
}

#[test]
fn a_shielded_cleanup_that_waits_forever_is_reported_as_shielded_and_aborted() {
    let (rt, reports) = captured(|b| b.stall_watchdog(secs(2)).stall_grace(secs(1)));
    let polls = Rc::new(Cell::new(0));
    rt.block_on(async move {
        let start = Instant::now();
        let drainer = task::Builder::new().name("drainer").spawn(async move {
            let _ = cancelled().await;
            shield(Forever(polls)).await;
        });
        yield_now().await.unwrap();
        drainer.cancel();
        assert!(drainer.await.unwrap_err().is_aborted());
        assert_eq!(start.elapsed(), secs(3));
    });
    let reports = reports.take();
    assert_eq!(reports.len(), 2, "{reports:?}");
    let Report::Stall(stall) = &reports[0] else {
        panic!("{reports:?}")
    };
    assert_eq!(stall.stuck[0].name.as_deref(), Some("drainer"));
    assert_eq!(stall.stuck[0].cause, StallCause::ShieldedWaiting);
    let drainer = stall.dump.named("drainer").next().unwrap();
    assert_eq!(drainer.state, TaskState::Shielded);
    assert!(matches!(&reports[1], Report::Aborted(t) if t.name.as_deref() == Some("drainer")));
}

#[test]
fn only_the_stuck_member_is_blamed_not_the_task_waiting_for_it() {
    let (rt, reports) = captured(|b| b.stall_watchdog(secs(1)).stall_grace(secs(1)));
    let polls = Rc::new(Cell::new(0));
    rt.block_on(async move {
        let owner = task::Builder::new().name("owner").spawn(async move {
            scope(|s| async move {
                s.spawn_named("member", async move {
                    Forever(polls).await;
                    Ok::<(), Cancelled>(())
                })
                .expect("the scope is open");
                Ok(())
            })
            .await
        });
        yield_now().await.unwrap();
        owner.cancel();
        // The member is aborted after the grace period; the scope then ends as cancelled.
        let result = owner.await.unwrap();
        assert!(result.is_err(), "{result:?}");
    });
    let reports = reports.take();
    let Report::Stall(stall) = &reports[0] else {
        panic!("{reports:?}")
    };
    let names: Vec<_> = stall.stuck.iter().map(|t| t.name.as_deref()).collect();
    assert_eq!(names, vec![Some("member")]);
    assert!(matches!(&reports[1], Report::Aborted(t) if t.name.as_deref() == Some("member")));
    assert_eq!(reports.len(), 2);
}

#[test]
fn panics_nobody_can_take_go_to_the_report_sink() {
    let (rt, reports) = captured(|b| b);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async {
            drop(spawn(async { panic!("first") }));
            drop(
                task::Builder::new()
                    .name("second one")
                    .spawn(async { panic!("second") }),
            );
        })
    }));
    let payload = result.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"first"));
    let reports = reports.take();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let text = reports[0].to_string();
    assert!(matches!(reports[0], Report::Message(_)));
    assert!(
        text.contains("panicked too") && text.ends_with("second"),
        "{text}"
    );
}

#[test]
fn join_errors_say_where_the_failed_task_was_spawned() {
    let rt = paused();
    rt.block_on(async {
        let line = line!() + 1;
        let panicked = spawn(async { panic!("boom") });
        let aborted = spawn(std::future::pending::<()>());
        aborted.abort();
        let err = panicked.await.unwrap_err();
        assert_eq!(
            err.spawned_at().map(|l| (l.file(), l.line())),
            Some((file!(), line))
        );
        assert!(
            err.to_string()
                .starts_with(&format!("task spawned at {}:{line}:", file!())),
            "{err}"
        );
        assert!(err.to_string().ends_with("panicked: boom"), "{err}");
        let err = aborted.await.unwrap_err();
        assert!(
            err.to_string().ends_with("was aborted before it returned"),
            "{err}"
        );
        assert_eq!(err.spawned_at().map(|l| l.line()), Some(line + 1));
    });
}

// Regression tests for defects a review of the diagnostics found (each fixed).

/// A panic, if `f` panicked, with its message.
fn panic_of(f: impl FnOnce()) -> Option<String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .err()
        .map(|payload| common::message(&*payload))
}

#[test]
fn a_seeded_deadlock_is_still_reported_with_the_watchdog_on_and_no_grace_period() {
    // Fixed: the watchdog re-armed a check every threshold while a task waited for its
    // children, so the seeded loop jumped virtual time forever instead of reporting.
    let (rt, reports) = captured(|b| b.seed(1).stall_watchdog(secs(1)));
    let message = panic_of(|| {
        rt.block_on(async {
            let stuck = spawn(Forever(Rc::default()));
            treeloop::shutdown();
            let _ = stuck.await;
        })
    });
    assert!(message.unwrap().contains("treeloop deadlock"));
    assert_eq!(
        reports.take().len(),
        1,
        "one stall report, then the deadlock"
    );
}

#[test]
fn a_seeded_deadlock_is_still_reported_with_the_dump_signal_watched() {
    // Fixed: the SIGUSR1 pipe counted as something that could wake a task.
    let rt = Builder::new().seed(1).dump_on_signal(true).build().unwrap();
    let message = panic_of(|| rt.block_on(Forever(Rc::default())));
    assert!(message.unwrap().contains("treeloop deadlock"));
}

/// A foreign future that completes once its flag is set and its waker woken.
#[derive(Clone, Default)]
struct Gate(Rc<(Cell<bool>, RefCell<Option<std::task::Waker>>)>);

impl Gate {
    fn open(&self) {
        self.0.0.set(true);
        if let Some(waker) = self.0.1.borrow_mut().take() {
            waker.wake();
        }
    }
}

impl std::future::Future for Gate {
    type Output = ();
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0.0.get() {
            return std::task::Poll::Ready(());
        }
        *self.0.1.borrow_mut() = Some(cx.waker().clone());
        std::task::Poll::Pending
    }
}

#[test]
fn a_task_that_progresses_and_gets_stuck_again_is_reported_again() {
    // Fixed: without a grace period, nothing re-armed the watchdog after progress.
    let (rt, reports) = captured(|b| b.stall_watchdog(secs(1)));
    rt.block_on(async {
        let gate = Gate::default();
        let task_gate = gate.clone();
        let task = task::Builder::new().name("twice").spawn(async move {
            task_gate.await; // ignores the cancellation until 3 s
            let _ = yield_now().await; // sees it: progress at 3 s
            Forever(Rc::default()).await; // stuck again
        });
        yield_now().await.unwrap();
        task.cancel();
        sleep(secs(3)).await.unwrap();
        gate.open();
        sleep(secs(10)).await.unwrap();
        task.abort();
        assert!(task.await.unwrap_err().is_aborted());
    });
    let stalls: Vec<_> = reports
        .take()
        .into_iter()
        .filter_map(|r| match r {
            Report::Stall(stall) => Some((stall.stuck[0].name.clone(), stall.dump.taken_at)),
            _ => None,
        })
        .collect();
    let twice = Some("twice".to_owned());
    assert_eq!(
        stalls,
        [(twice.clone(), Some(secs(1))), (twice, Some(secs(4)))]
    );
}

#[test]
fn a_cleanup_finishing_exactly_at_the_threshold_is_not_judged_before_it_runs() {
    // Fixed: the check ran right after the park that fired the cleanup's timer, before the
    // woken task was polled, and reported it as stuck in its shield.
    let (rt, reports) = captured(|b| b.stall_watchdog(secs(1)));
    rt.block_on(async {
        let worker = spawn(async {
            let _ = cancelled().await;
            shield(async { sleep(secs(1)).await.unwrap() }).await;
        });
        yield_now().await.unwrap();
        worker.cancel();
        worker.await.unwrap();
    });
    assert!(reports.take().is_empty());
}

#[test]
fn a_root_whose_future_returned_shows_as_completing() {
    let rt = paused();
    let seen = Rc::new(Cell::new(None));
    let seen_by_task = seen.clone();
    rt.block_on(async move {
        drop(spawn(async move {
            yield_now().await.unwrap();
            seen_by_task.set(Some(treeloop::dump().entries[0].state));
        }));
    });
    assert_eq!(seen.get(), Some(TaskState::Completing));
}

/// Panics when dropped.
struct DropBomb;

impl Drop for DropBomb {
    fn drop(&mut self) {
        panic!("drop bomb");
    }
}

#[test]
fn a_root_future_whose_drop_panics_while_block_on_unwinds_does_not_abort() {
    // Fixed: the root future was dropped by plain unwinding (a panic during a panic: abort).
    let (rt, reports) = captured(|b| b.seed(1));
    let message = panic_of(|| {
        rt.block_on(async {
            let _bomb = DropBomb;
            Forever(Rc::default()).await;
        })
    });
    assert!(message.unwrap().contains("treeloop deadlock"));
    let reports = reports.take();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(reports[0].to_string().ends_with("drop bomb"));
    // And the runtime is still usable.
    assert_eq!(rt.block_on(async { 7 }), 7);
}

#[test]
fn a_panicking_report_sink_does_not_take_the_runtime_down() {
    // Fixed: a sink panicking on a slow poll unwound through async-task (abort), and on a
    // stall through block_on.
    let rt = Builder::new()
        .start_paused(true)
        .stall_watchdog(secs(1))
        .stall_grace(secs(1))
        .report_sink(|_| panic!("sink failure"))
        .build()
        .unwrap();
    rt.block_on(async {
        let stuck = spawn(Forever(Rc::default()));
        yield_now().await.unwrap();
        stuck.cancel();
        // Reported at 1 s (the sink panics), aborted at 2 s (the sink panics again).
        assert!(stuck.await.unwrap_err().is_aborted());
    });
}

#[test]
fn a_member_panicking_after_its_scope_future_was_dropped_is_reported_not_lost() {
    let (rt, reports) = captured(|b| b);
    rt.block_on(async {
        let member = Rc::new(RefCell::new(None));
        let slot = member.clone();
        let mut scope_future = Box::pin(scope(move |s| async move {
            let handle = s
                .spawn(async {
                    let _bomb = DropBomb;
                    Forever(Rc::default()).await;
                    Ok::<(), Cancelled>(())
                })
                .unwrap();
            *slot.borrow_mut() = Some(handle);
            Forever(Rc::default()).await;
            Ok::<(), Cancelled>(())
        }));
        // Poll the scope once, then drop it with its member still running.
        std::future::poll_fn(|cx| {
            let _ = scope_future.as_mut().poll(cx);
            std::task::Poll::Ready(())
        })
        .await;
        drop(scope_future);
        yield_now().await.unwrap();
        let handle = member.borrow_mut().take().unwrap();
        handle.abort();
        let _ = handle.await;
    });
    let reports = reports.take();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let text = reports[0].to_string();
    assert!(
        text.contains("after the scope's future was dropped") && text.ends_with("drop bomb"),
        "{text}"
    );
}
