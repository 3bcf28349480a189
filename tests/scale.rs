//! Scale (SPEC R21): everything that walks the tree is iterative, so a chain of 1,000,000
//! nested tasks and 1,000,000 siblings both spawn, cancel and complete, without overflowing
//! the stack and in seconds.
//!
//! The chains are built by the tasks themselves, one level per poll, through the scheduler:
//! nothing here recurses, so a stack overflow can only come from the runtime. Each test
//! prints its wall time (`--nocapture`); that figure is reported, not asserted.
//!
//! Run with: cargo test --test scale -- --nocapture

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Mutex;
use std::time::Duration;

use common::{Counters, paused};
use treeloop::time::{Instant, sleep};
use treeloop::{CancelReason, spawn};

const MILLION: usize = 1_000_000;

/// The tests take a lot of memory and CPU each; running them one at a time keeps the wall
/// times meaningful on a small machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// What the tasks of one test count.
#[derive(Clone, Default)]
struct Tally {
    /// Tasks whose future started running.
    started: Rc<Cell<usize>>,
    /// Tasks that saw `Err(Cancelled)` with the explicit reason.
    cancelled: Rc<Cell<usize>>,
    /// Tasks that saw anything else where `Cancelled` was expected.
    unexpected: Rc<Cell<usize>>,
    /// Tasks whose future returned.
    returned: Rc<Cell<usize>>,
}

fn bump(counter: &Cell<usize>) {
    counter.set(counter.get() + 1);
}

/// Level `depth` of a chain: spawns level `depth + 1` (unless it is the last), then sleeps
/// until cancelled. Holds its child's handle while it waits.
async fn waiting_link(depth: usize, tally: Tally, probes: Counters) {
    bump(&tally.started);
    let child = (depth + 1 < MILLION).then(|| {
        let probe = probes.probe(waiting_link(depth + 1, tally.clone(), probes.clone()));
        spawn(probe)
    });
    match sleep(Duration::MAX).await {
        Err(cancelled) if cancelled.reason() == CancelReason::Explicit => bump(&tally.cancelled),
        _ => bump(&tally.unexpected),
    }
    drop(child);
    bump(&tally.returned);
}

/// Level `depth` of a chain that returns as soon as it has spawned the next level, so each
/// level waits in the completing phase for the one below it.
async fn returning_link(depth: usize, tally: Tally, probes: Counters) {
    bump(&tally.started);
    if depth + 1 < MILLION {
        let probe = probes.probe(returning_link(depth + 1, tally.clone(), probes.clone()));
        drop(spawn(probe));
    }
    bump(&tally.returned);
}

#[test]
fn million_deep_chain_built_by_its_tasks_is_cancelled_level_by_level() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tally = Tally::default();
    let probes = Counters::new();
    let rt = paused();
    let wall = std::time::Instant::now();
    rt.block_on(async {
        let start = Instant::now();
        let top = spawn(probes.probe(waiting_link(0, tally.clone(), probes.clone())));
        // Virtual time moves only when nothing is runnable: by 1 s the chain is complete and
        // every level is asleep.
        sleep(Duration::from_secs(1)).await.unwrap();
        let built = wall.elapsed();
        assert_eq!(tally.started.get(), MILLION);
        assert_eq!(tally.cancelled.get(), 0);
        assert_eq!(probes.drops(), 0);
        top.cancel();
        top.await.unwrap();
        assert_eq!(Instant::now(), start + Duration::from_secs(1));
        eprintln!(
            "1M-deep chain: built in {built:?}, cancelled in {:?}",
            wall.elapsed() - built
        );
    });
    eprintln!("1M-deep chain cancelled: {:?} wall time", wall.elapsed());
    assert_eq!(tally.cancelled.get(), MILLION);
    assert_eq!(tally.unexpected.get(), 0);
    assert_eq!(tally.returned.get(), MILLION);
    assert_eq!(probes.drops(), MILLION);
    // Each level: polled when started, and once more when cancelled.
    assert_eq!(probes.polls(), 2 * MILLION);
}

#[test]
fn million_siblings_under_one_parent_are_cancelled_together() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tally = Tally::default();
    let probes = Counters::new();
    let parent_saw = Rc::new(Cell::new(None));
    let rt = paused();
    let wall = std::time::Instant::now();
    rt.block_on(async {
        let start = Instant::now();
        let parent = {
            let (tally, probes, parent_saw) = (tally.clone(), probes.clone(), parent_saw.clone());
            spawn(async move {
                let children: Vec<_> = (0..MILLION)
                    .map(|_| {
                        let tally = tally.clone();
                        spawn(probes.probe(async move {
                            bump(&tally.started);
                            match sleep(Duration::MAX).await {
                                Err(c) if c.reason() == CancelReason::Explicit => {
                                    bump(&tally.cancelled)
                                }
                                _ => bump(&tally.unexpected),
                            }
                            bump(&tally.returned);
                        }))
                    })
                    .collect();
                parent_saw.set(Some(sleep(Duration::MAX).await));
                children.len()
            })
        };
        sleep(Duration::from_secs(1)).await.unwrap();
        let built = wall.elapsed();
        assert_eq!(tally.started.get(), MILLION);
        assert_eq!(probes.drops(), 0);
        parent.cancel();
        // The parent's handle resolves only once every child has finished (R2).
        assert_eq!(parent.await.unwrap(), MILLION);
        assert_eq!(probes.drops(), MILLION);
        assert_eq!(Instant::now(), start + Duration::from_secs(1));
        eprintln!(
            "1M siblings: spawned in {built:?}, cancelled in {:?}",
            wall.elapsed() - built
        );
    });
    eprintln!("1M siblings cancelled: {:?} wall time", wall.elapsed());
    assert_eq!(
        parent_saw.get(),
        Some(Err(treeloop::Cancelled::new(CancelReason::Explicit)))
    );
    assert_eq!(tally.cancelled.get(), MILLION);
    assert_eq!(tally.unexpected.get(), 0);
    assert_eq!(tally.returned.get(), MILLION);
    assert_eq!(probes.drops(), MILLION);
    assert_eq!(probes.polls(), 2 * MILLION);
}

#[test]
fn million_deep_chain_of_returned_tasks_completes_from_the_bottom_up() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tally = Tally::default();
    let probes = Counters::new();
    let rt = paused();
    let wall = std::time::Instant::now();
    let finished_with = rt.block_on(async {
        let top = spawn(probes.probe(returning_link(0, tally.clone(), probes.clone())));
        top.await.unwrap();
        // The top's handle resolves only after every level below it has finished (R2).
        (tally.returned.get(), probes.drops())
    });
    eprintln!("1M-deep chain completed: {:?} wall time", wall.elapsed());
    assert_eq!(finished_with, (MILLION, MILLION));
    assert_eq!(tally.started.get(), MILLION);
    // Each level's future returns at its first poll; completing levels are not re-polled
    // through the user's future.
    assert_eq!(probes.polls(), MILLION);
    assert_eq!(probes.drops(), MILLION);
}
