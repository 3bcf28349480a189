//! Seeing inside (SPEC §6, R20, R21): the tree dump, the stuck-cancellation watchdog and its
//! grace period, and the report sink. Everything runs on virtual time with the reports
//! captured, so the times in the assertions are exact.
//!
//! The slow-poll warning needs a poll that takes time, which virtual time cannot give a
//! facade test: it is tested in `executor/tests/diagnostics.rs` with a hand-driven clock.

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
        use EntryKind::{Root, Shield, Task};
        use TaskState::*;
        assert_eq!(
            rows,
            vec![
                (None, Root, Running, 0, None),
                (Some("sleeper"), Task, Waiting, 1, Some(Root)),
                (Some("parent"), Task, Completing, 1, Some(Root)),
                (Some("child"), Task, Waiting, 2, Some(Task)),
                (Some("stubborn"), Task, Cancelled, 1, Some(Root)),
                (Some("careful"), Task, Shielded, 1, Some(Root)),
                (None, Shield, Shielded, 2, Some(Task)),
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
        assert_eq!(tree.entries[6].parent, Some(careful.id()));
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
