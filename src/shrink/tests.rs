//! Unit tests of the search: the deviations and preemptions of hand-built choice points,
//! the moves of a deviation, and a whole shrinking whose only gain is a move.

use std::rc::Rc;

use treeloop_executor::Choice;

use super::*;

/// A choice among `ready` (each waiting for the poll beside it), `chosen` taken, `last`
/// the job that ran before, under a FIFO fallback.
fn point(ready: &[(Choice, u64)], chosen: Choice, last: Option<Choice>) -> ChoicePoint {
    ChoicePoint {
        ready: ready.iter().map(|&(job, _)| job).collect(),
        chosen,
        last,
        default: ready[0].0,
        polls: ready.iter().map(|&(_, poll)| poll).collect(),
    }
}

#[test]
fn the_deviations_of_a_run_are_its_choices_other_than_the_front() {
    let (a, b) = (Choice::Task(1), Choice::Task(2));
    let root = Choice::Root;
    let points = [
        // FIFO: the front.
        point(&[(a, 1), (b, 1)], a, Some(root)),
        // b over root, at b's 2nd poll; root just ran and is not ready: no preemption.
        point(&[(root, 2), (a, 2), (b, 2)], b, None),
        // a over root at a's 2nd poll, while b (which ran last) is ready: a preemption.
        point(&[(root, 2), (b, 3), (a, 2)], a, Some(b)),
        // b over root, b ran last: a deviation, but it continues b, no preemption.
        point(&[(root, 2), (b, 3)], b, Some(b)),
    ];
    assert_eq!(
        deviations_of(&points),
        [
            Deviation {
                taken: b,
                poll: 2,
                over: root
            },
            Deviation {
                taken: a,
                poll: 2,
                over: root
            },
            Deviation {
                taken: b,
                poll: 3,
                over: root
            },
        ]
    );
    let preemptions = points.iter().filter(|p| p.preempts(p.chosen)).count();
    assert_eq!(preemptions, 1);
}

#[test]
fn a_preempting_deviation_moves_to_where_it_preempts_nothing() {
    // x, y and z (tasks 1, 2, 3) yield in turn, FIFO: x1 y1 z1 x2 y2 z2 x3 y3. The bug:
    // y's 3rd poll before x's 3rd. Taken after z2, over x, y preempts z, which just
    // ran; taken after y2, over z, it goes on from its own yield.
    let body = || async {
        let polls = Rc::new([Cell::new(0), Cell::new(0), Cell::new(0)]);
        let stale = Rc::new(Cell::new(false));
        let tasks: Vec<_> = (0..3)
            .map(|i| {
                let (polls, stale) = (polls.clone(), stale.clone());
                crate::spawn(async move {
                    for _ in 0..4 {
                        polls[i].set(polls[i].get() + 1);
                        if polls[1].get() == 3 && polls[0].get() < 3 {
                            stale.set(true);
                        }
                        crate::yield_now().await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert!(!stale.get(), "y ran its 3rd poll before x ran its 3rd");
    };
    let (x, y, z) = (Choice::Task(1), Choice::Task(2), Choice::Task(3));
    let preempting = Deviation {
        taken: y,
        poll: 3,
        over: x,
    };
    let here = Location::caller();
    let builder = Builder::new();
    let failing = builder
        .clone()
        .shrink_replay(Schedule::default(), vec![preempting]);
    let (runtime, failed) = quietly(|| run_once(&failing, &body, here));
    assert!(failed.is_some());
    let target = Ending::Panicked("y ran its 3rd poll before x ran its 3rd".to_owned());
    let mut shrinker = Shrinker::new(&builder, &builder, &body, here, &target, 300);
    let Ok(shrunk) = shrinker.shrink(&runtime.schedule()) else {
        panic!("the failing run did not replay");
    };
    // 1 deviation, 1 preemption; FIFO passes; the first move (the latest front earlier
    // in y's wait where taking it preempts nothing) is kept; the schedule alone
    // replays it: 4 runs.
    assert_eq!(shrunk.before, (1, 1));
    assert_eq!(
        shrunk.best.deviations,
        [Deviation {
            over: z,
            ..preempting
        }]
    );
    assert_eq!(shrunk.best.preemptions, 0);
    assert_eq!(shrunk.runs, 4);
    assert!(!shrunk.ran_out && !shrunk.with_seed);
}

#[test]
fn a_deviation_moves_to_other_fronts_of_its_wait() {
    let (a, b, c) = (Choice::Task(1), Choice::Task(2), Choice::Task(3));
    let points = [
        // c waits for its 1st poll from here on; FIFO takes a, then b.
        point(&[(a, 1), (b, 1), (c, 1)], a, None),
        point(&[(b, 1), (c, 1)], b, None),
        // c over a, while b (last) is ready: a preemption.
        point(&[(a, 2), (c, 1), (b, 2)], c, Some(b)),
    ];
    let deviation = Deviation {
        taken: c,
        poll: 1,
        over: a,
    };
    // Earlier, latest first: over b (no job that ran last was ready there), then over
    // a, where it already was; later: a, c and b are ready where it ran, nothing new.
    assert_eq!(
        moves(&points, deviation),
        [Deviation {
            over: b,
            ..deviation
        }]
    );
}
