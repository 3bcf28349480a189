//! `Trace::first_divergence` and `Divergence::describe` on hand-built traces: equal runs
//! have none; a different poll, a task spawned differently or by one run only, a run that
//! ended or parked, and runs that part after the steps kept are each found at the right
//! step and described with the tasks' identities (spawn site, name, parent); the earlier of
//! a poll and a spawn divergence wins, and a poll in the very step of a differing spawn
//! counts as the poll. The real runs are in the facade's `tests/nondeterminism.rs`.

use std::panic::Location;

use TraceEvent::{Park, Poll, PollRoot};
use treeloop_executor::{Divergence, StepTaken, TaskIdentity, Trace, TraceEvent};

/// A task spawned at `location` under `parent` during step `step`.
fn task(
    number: u64,
    name: Option<&str>,
    location: &'static Location<'static>,
    parent: Option<u64>,
    step: u64,
) -> TaskIdentity {
    TaskIdentity {
        number,
        name: name.map(Box::from),
        location,
        parent,
        step,
    }
}

/// A trace of `steps`, all kept, with `tasks` and `hash`.
fn trace(steps: &[TraceEvent], tasks: Vec<TaskIdentity>, hash: u64) -> Trace {
    Trace {
        events: steps.to_vec(),
        recorded: steps.len() as u64,
        hash,
        first_steps: steps.to_vec(),
        tasks,
    }
}

/// Two tasks spawned by the root in its first poll, at `site`.
fn two_tasks(site: &'static Location<'static>, names: [&str; 2]) -> Vec<TaskIdentity> {
    vec![
        task(1, Some(names[0]), site, Some(0), 1),
        task(2, Some(names[1]), site, Some(0), 1),
    ]
}

#[test]
fn equal_hashes_and_lengths_are_the_same_run() {
    let site = Location::caller();
    let a = trace(
        &[PollRoot, Poll(1), Poll(2)],
        two_tasks(site, ["a", "b"]),
        7,
    );
    assert_eq!(a.first_divergence(&a.clone()), None);
}

#[test]
fn a_different_task_polled_is_found_at_its_step_with_both_identities() {
    let site = Location::caller();
    let ours = trace(
        &[PollRoot, Poll(1), Poll(2)],
        two_tasks(site, ["a", "b"]),
        1,
    );
    let theirs = trace(
        &[PollRoot, Poll(2), Poll(1)],
        two_tasks(site, ["a", "b"]),
        2,
    );
    let divergence = ours.first_divergence(&theirs).expect("a divergence");
    let [a, b] = [1, 2].map(|n| ours.task(n).cloned());
    assert_eq!(
        divergence,
        Divergence::Step {
            step: 2,
            ours: Some(StepTaken {
                event: Poll(1),
                task: a
            }),
            theirs: Some(StepTaken {
                event: Poll(2),
                task: b
            }),
        }
    );
    assert_eq!(divergence.step(), 2);
    assert_eq!(
        divergence.describe("run 1", "run 2"),
        format!(
            "run 2 diverged from run 1 at step 2: run 1 polled task #1 \"a\" spawned at {site} \
             (parent #0), run 2 polled task #2 \"b\" spawned at {site} (parent #0)"
        )
    );
}

#[test]
fn a_task_spawned_differently_is_found_at_the_step_that_spawned_it() {
    // Same numbers polled in the same order: only the second task's name differs.
    let site = Location::caller();
    let steps = [PollRoot, Poll(1), Poll(2)];
    let ours = trace(&steps, two_tasks(site, ["a", "b"]), 1);
    let theirs = trace(&steps, two_tasks(site, ["a", "c"]), 2);
    let divergence = ours.first_divergence(&theirs).expect("a divergence");
    assert_eq!(
        divergence,
        Divergence::Spawn {
            step: 1,
            during: Some(StepTaken {
                event: PollRoot,
                task: None
            }),
            ours: ours.task(2).cloned(),
            theirs: theirs.task(2).cloned(),
        }
    );
    assert_eq!(
        divergence.describe("run 1", "run 2"),
        format!(
            "run 2 diverged from run 1 at step 1 (both polled the block_on future): run 1 \
             spawned task #2 \"b\" at {site} (parent #0), run 2 spawned task #2 \"c\" at {site} \
             (parent #0) (differs: name)"
        )
    );
}

#[test]
fn every_part_of_an_identity_that_differs_is_named() {
    let (here, there) = (Location::caller(), Location::caller());
    let steps = [PollRoot, Poll(1), Poll(1)];
    let ours = trace(&steps, vec![task(1, None, here, Some(0), 1)], 1);
    let theirs = trace(&steps, vec![task(1, Some("x"), there, None, 2)], 2);
    assert_eq!(
        ours.first_divergence(&theirs).unwrap().describe("A", "B"),
        format!(
            "B diverged from A at step 1 (both polled the block_on future): A spawned task #1 \
             at {here} (parent #0), B spawned task #1 \"x\" at {there} (parent gone) (differs: \
             spawn site, name, parent, step spawned in)"
        )
    );
}

#[test]
fn a_task_only_one_run_spawned_is_a_spawn_divergence() {
    let site = Location::caller();
    let steps = [PollRoot, Poll(1), PollRoot];
    let mut tasks = two_tasks(site, ["a", "b"]);
    tasks[1].step = 2;
    let ours = trace(&steps, tasks[..1].to_vec(), 1);
    let theirs = trace(&steps, tasks, 2);
    assert_eq!(
        ours.first_divergence(&theirs)
            .unwrap()
            .describe("run 1", "run 2"),
        format!(
            "run 2 diverged from run 1 at step 2 (both polled task #1 \"a\" spawned at {site} \
             (parent #0)): run 1 spawned no such task, run 2 spawned task #2 \"b\" at {site} \
             (parent #0)"
        )
    );
}

#[test]
fn a_run_that_ended_or_parked_is_told_apart() {
    let site = Location::caller();
    let tasks = || two_tasks(site, ["a", "b"]);
    let ours = trace(&[PollRoot, Poll(1)], tasks(), 1);
    let theirs = trace(&[PollRoot, Poll(1), Park, Poll(2)], tasks(), 2);
    let divergence = ours.first_divergence(&theirs).unwrap();
    assert_eq!(
        divergence,
        Divergence::Step {
            step: 3,
            ours: None,
            theirs: Some(StepTaken {
                event: Park,
                task: None
            }),
        }
    );
    assert_eq!(
        divergence.describe("run 1", "run 2"),
        "run 2 diverged from run 1 at step 3: run 1 had ended, run 2 parked (nothing was \
         runnable)"
    );
    // And the other way round.
    assert_eq!(
        theirs
            .first_divergence(&ours)
            .unwrap()
            .describe("run 1", "run 2"),
        "run 2 diverged from run 1 at step 3: run 1 parked (nothing was runnable), run 2 had \
         ended"
    );
}

#[test]
fn the_earlier_of_a_poll_and_a_spawn_divergence_wins() {
    let site = Location::caller();
    // The poll differs at step 2, the task spawned differently during step 3.
    let named = |last: &str| {
        vec![
            task(1, Some("a"), site, Some(0), 1),
            task(2, Some("b"), site, Some(0), 1),
            task(3, Some(last), site, Some(1), 3),
        ]
    };
    let ours = trace(&[PollRoot, Poll(1), Poll(1), Poll(2)], named("x"), 1);
    let theirs = trace(&[PollRoot, Poll(2), Poll(1), Poll(2)], named("y"), 2);
    assert!(matches!(
        ours.first_divergence(&theirs),
        Some(Divergence::Step { step: 2, .. })
    ));
    // The spawn during step 1, the poll at step 2: the spawn.
    let early = |first: &str| {
        vec![
            task(1, Some(first), site, Some(0), 1),
            task(2, Some("b"), site, Some(0), 1),
        ]
    };
    let ours = trace(&[PollRoot, Poll(1), Poll(2)], early("a"), 1);
    let theirs = trace(&[PollRoot, Poll(2), Poll(1)], early("z"), 2);
    assert!(matches!(
        ours.first_divergence(&theirs),
        Some(Divergence::Spawn { step: 1, .. })
    ));
    // A different poll in the very step whose spawn differs counts as the poll.
    let ours = trace(
        &[Poll(1), Poll(2)],
        vec![task(2, Some("a"), site, Some(1), 1)],
        1,
    );
    let theirs = trace(
        &[Poll(3), Poll(2)],
        vec![task(2, Some("b"), site, Some(3), 1)],
        2,
    );
    assert!(matches!(
        ours.first_divergence(&theirs),
        Some(Divergence::Step { step: 1, .. })
    ));
}

#[test]
fn runs_that_part_after_the_steps_kept_are_told_by_their_hashes() {
    let site = Location::caller();
    let steps = [PollRoot, Poll(1), Poll(2)];
    let ours = trace(&steps, two_tasks(site, ["a", "b"]), 1);
    let mut theirs = trace(&steps, two_tasks(site, ["a", "b"]), 2);
    theirs.recorded = 100_000;
    let divergence = ours.first_divergence(&theirs).unwrap();
    assert_eq!(divergence, Divergence::Later { compared: 3 });
    assert_eq!(divergence.step(), 3);
    assert_eq!(
        divergence.describe("run 1", "run 2"),
        "run 2 diverged from run 1 after step 3: the first 3 steps and the tasks spawned in \
         them agree, the trace hashes do not"
    );
}

#[test]
fn a_task_polled_but_not_kept_is_shown_by_its_number() {
    let ours = trace(&[PollRoot, Poll(1)], Vec::new(), 1);
    let theirs = trace(&[PollRoot, Poll(4)], Vec::new(), 2);
    assert_eq!(
        ours.first_divergence(&theirs)
            .unwrap()
            .describe("run 1", "run 2"),
        "run 2 diverged from run 1 at step 2: run 1 polled task #1, run 2 polled task #4"
    );
}
