//! The slow-poll warning (SPEC §6), with a clock the test moves by hand: a poll is slow when
//! the clock advances by the threshold or more while it runs, so the test can make exactly
//! one poll "take" 250 ms without sleeping.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use treeloop_executor::diag::Diagnostics;
use treeloop_executor::report::Report;
use treeloop_executor::{Executor, Options, TaskBuilder, ThreadPark, spawn, yield_now};

/// An executor whose diagnostics read `clock` and whose reports go to the returned list.
fn executor(
    clock: Rc<Cell<Duration>>,
    slow_poll: Duration,
) -> (Executor, ThreadPark, Rc<RefCell<Vec<Report>>>) {
    let park = ThreadPark::new();
    let reports = Rc::new(RefCell::new(Vec::new()));
    let sink = reports.clone();
    let options = Options {
        diagnostics: Diagnostics {
            clock: Some(Rc::new(move || clock.get())),
            slow_poll: Some(slow_poll),
            ..Diagnostics::default()
        },
        sink: Some(Rc::new(move |report: &Report| {
            sink.borrow_mut().push(report.clone())
        })),
        ..Options::default()
    };
    (
        Executor::with_options(park.unparker(), options),
        park,
        reports,
    )
}

/// Moves the hand-driven clock on: what a poll that computes for `by` would see.
fn busy(clock: &Cell<Duration>, by: Duration) {
    clock.set(clock.get() + by);
}

#[test]
fn a_poll_longer_than_the_threshold_is_reported_with_the_task_name_and_location() {
    let clock = Rc::new(Cell::new(Duration::ZERO));
    let (executor, mut park, reports) = executor(clock.clone(), Duration::from_millis(100));
    let line = line!() + 4;
    let (slow_id, quick_id) = executor.block_on(
        async {
            let c = clock.clone();
            let slow = TaskBuilder::new().name("crunch").spawn(async move {
                busy(&c, Duration::from_millis(50));
                yield_now().await.unwrap();
                // The second poll computes for 250 ms: reported.
                busy(&c, Duration::from_millis(250));
            });
            let c = clock.clone();
            // Just under the threshold in every poll: never reported.
            let quick = spawn(async move {
                for _ in 0..5 {
                    busy(&c, Duration::from_millis(99));
                    yield_now().await.unwrap();
                }
            });
            let ids = (slow.id(), quick.id());
            slow.await.unwrap();
            quick.await.unwrap();
            ids
        },
        &mut park,
    );
    assert_ne!(slow_id, quick_id);
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let Report::SlowPoll(slow) = &reports[0] else {
        panic!("{reports:?}")
    };
    assert_eq!(slow.id, slow_id);
    assert_eq!(slow.name.as_deref(), Some("crunch"));
    assert_eq!(slow.took, Duration::from_millis(250));
    assert_eq!(slow.location.file(), file!());
    assert_eq!(slow.location.line(), line);
    let text = reports[0].to_string();
    assert!(
        text.contains("\"crunch\"") && text.contains("250.0ms"),
        "{text}"
    );
}

#[test]
fn the_root_is_watched_too() {
    let clock = Rc::new(Cell::new(Duration::ZERO));
    let (executor, mut park, reports) = executor(clock.clone(), Duration::from_secs(1));
    executor.block_on(async { busy(&clock, Duration::from_secs(2)) }, &mut park);
    let reports = reports.borrow();
    assert!(
        matches!(&reports[..], [Report::SlowPoll(slow)] if slow.took == Duration::from_secs(2) && slow.name.is_none()),
        "{reports:?}"
    );
}
