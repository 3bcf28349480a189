//! Torture: random task trees. Proptest generates trees of up to ~2,000 tasks
//! that mix plain spawns (joined or detached), scopes and supervisor scopes (whose bodies
//! may run a subtree too), shields and timeouts (a few of them `Duration::ZERO`), over
//! leaves that sleep, yield, pass messages over a channel, fail, panic, fail in their
//! cleanup, or ignore cancellation for a while; some tasks and scopes are cancelled at
//! random virtual times, some tasks aborted (`JoinHandle::abort`, R20), and some leaves
//! spawned late, into a region that may be cancelled by then (R8). An oracle computes
//! from the tree alone what must happen, the tree runs on virtual time, and every case
//! checks that:
//!
//! - `block_on` returns the predicted value, or re-raises the predicted panic (R3, R17);
//! - every node returns (or panics) at the predicted virtual instant with the predicted
//!   result: a scope's errors are exactly the failures injected under it, none lost, none
//!   invented, in the order they happened (R13–R16, R18); an aborted node never returns,
//!   and its join says aborted once its children finished (R20);
//! - every cleanup ran exactly once: the synchronous one always, the awaiting one (inside a
//!   shield) unless the leaf panicked or was aborted (R11, R12, R20);
//! - every future was created once and dropped once (instrumented drop counters);
//! - no task finished while a descendant's future was still alive, and no node returned
//!   before every task below it had finished (R2, R4);
//! - every panic payload surfaced exactly once: re-raised by `block_on`, taken from a join,
//!   or reported to the runtime's report sink (R17);
//! - `Runtime::live_nodes()` is zero afterwards.
//!
//! # Why the oracle can be exact
//!
//! Every timed event of a tree (a leaf's wake-up, a deadline, a scheduled cancel) gets a
//! virtual millisecond of its own: the generator draws raw times and [`Plan::new`] ranks
//! them. Everything else takes no virtual time: all nodes start at 0 ms (a late-spawned
//! leaf at its spawn's own instant; a zero timeout's deadline is the one event at 0 ms, see
//! [`Plan::new`]), and cleanup awaits a shielded `yield_now`. So at any instant exactly
//! one timed event happens, and whatever
//! else happens at that instant is its consequence. That makes each node's fate a function
//! of the earliest cancellation that reaches it (see [`oracle`]); where the order of two
//! consequences is genuinely up to the scheduler (two members failing at one instant because
//! one cancel reached both), the oracle says which orders are acceptable, and nothing more.
//!
//! Two property tests draw different trees and run them under the deterministic scheduler:
//! one in FIFO order, one in an order drawn from each case's scheduler seed
//! (`Strategy::Random`). Hand-checked trees pin the oracle to reasoning done by hand.
//!
//! # Running
//!
//! The default run tries 400 trees per property test (well under a second). The long run,
//! with its own random seed (printed), is:
//!
//! ```text
//! TREELOOP_TORTURE_CASES=10000 cargo test --test torture_trees
//! ```
//!
//! A failure shrinks to a minimal tree and prints it with the seed;
//! `TREELOOP_TORTURE_SEED=<seed>` replays the run that found it.

mod check;
mod generate;
mod hand_checked;
mod interpret;
mod oracle;
mod outcome;
mod plan;
mod property;
mod record;

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, TestRunner};
use treeloop::time::{Instant, sleep_until};
use treeloop::{CancelReason, Cancelled, Scope, scope};

use crate::check::{Order, runtime};
use crate::generate::arb_case;
use crate::hand_checked::{
    aborted_at, assert_hand_checked, cancelled_at, child, detached, fail_fast, leaf, spawned_at,
    with_failing_cleanup,
};
use crate::oracle::{BlockOn, Expect, Out};
use crate::outcome::{
    INJECTED_PANIC, TreeError, injected_panic_in, payload_text, silence_injected_panics,
};
use crate::plan::{Action, Plan, Tree};
use crate::property::{DEFAULT_CASES, DEFAULT_SEED, proptest_rng, torture};

// ---------------------------------------------------------------------------------------
// The property tests.
// ---------------------------------------------------------------------------------------

#[test]
fn random_trees_keep_every_invariant_in_fifo_order() {
    torture("random_trees_keep_every_invariant_in_fifo_order", 1, |_| {
        Order::Fifo
    });
}

#[test]
fn random_trees_keep_every_invariant_in_seeded_random_orders() {
    torture(
        "random_trees_keep_every_invariant_in_seeded_random_orders",
        2,
        |case| Order::Random(case.scheduler_seed),
    );
}

// ---------------------------------------------------------------------------------------
// Hand-checked trees: the oracle agrees with reasoning done by hand, and the runtime with
// the oracle, in FIFO order and under 32 seeded orders.
// ---------------------------------------------------------------------------------------

#[test]
fn a_failure_cancels_the_scope_and_the_cleanup_errors_it_causes_come_after_it() {
    // #1 fails at 1 ms: the scope cancels #2 (its cleanup fails at once) and #3, which
    // notices only at 2 ms and then fails its cleanup too.
    let tree = fail_fast(vec![
        child(leaf(Action::Fail, 1)),
        child(with_failing_cleanup(leaf(Action::Sleep, 3))),
        child(with_failing_cleanup(leaf(Action::Stubborn, 2))),
    ]);
    let scope_error = Expect::Scope(
        0,
        vec![
            vec![Expect::Injected(1)],
            vec![Expect::CleanupFailed(2)],
            vec![Expect::CleanupFailed(3)],
        ],
    );
    assert_hand_checked(
        tree,
        &[
            (2, 1, Out::Err(Expect::CleanupFailed(2))),
            (3, 2, Out::Err(Expect::CleanupFailed(3))),
            (0, 2, Out::Err(scope_error.clone())),
        ],
        BlockOn::Returns(Out::Err(scope_error)),
    );
}

#[test]
fn cleanup_errors_caused_by_one_outer_cancel_are_kept_in_either_order() {
    // The handle cancel at 1 ms reaches both members at once: both cleanups fail at that
    // instant, in whichever order the scheduler runs them; the oracle accepts both.
    let tree = Tree::Spawn(vec![cancelled_at(
        1,
        fail_fast(vec![
            child(with_failing_cleanup(leaf(Action::Sleep, 2))),
            child(with_failing_cleanup(leaf(Action::Channel(2), 3))),
        ]),
    )]);
    let both = vec![vec![Expect::CleanupFailed(2), Expect::CleanupFailed(3)]];
    let runs = assert_hand_checked(
        tree,
        &[(1, 1, Out::Err(Expect::Scope(1, both.clone())))],
        BlockOn::Returns(Out::Err(Expect::Joined(0, vec![Expect::Scope(1, both)]))),
    );
    let orders: HashSet<String> = runs
        .iter()
        .map(|run| format!("{:?}", run.harness.log.borrow().returned[1]))
        .collect();
    assert_eq!(orders.len(), 2, "both orders happen: {orders:#?}");
}

#[test]
fn a_detached_panic_cancels_its_siblings_but_not_a_shield_and_block_on_re_raises_it() {
    let tree = Tree::Spawn(vec![
        detached(leaf(Action::Panic, 1)),
        child(leaf(Action::Sleep, 2)),
        child(Tree::Shield(Box::new(leaf(Action::Sleep, 3)))),
    ]);
    let failure = Out::Err(Expect::Cancelled(CancelReason::Failure));
    assert_hand_checked(
        tree,
        &[
            (1, 1, Out::Panic(vec![1])),
            (2, 1, failure.clone()),
            (4, 3, Out::Ok),
            (0, 3, failure),
        ],
        BlockOn::Panics(vec![1]),
    );
}

#[test]
fn an_aborted_task_is_dropped_at_once_and_finishes_after_its_cancelled_children() {
    // At 2 ms #1 is aborted: its future is dropped, its children are cancelled (#3 already
    // finished, #4 at once, the stubborn #2 only at 3 ms), and its join says aborted at
    // 3 ms (R20). #5 is aborted at 5 ms, before it could panic at 6 ms; #6 returned at
    // 7 ms, before its abort at 8 ms, which then does nothing.
    let tree = Tree::Spawn(vec![
        aborted_at(
            2,
            Tree::Spawn(vec![
                child(leaf(Action::Stubborn, 4)),
                child(leaf(Action::Sleep, 1)),
                child(leaf(Action::Sleep, 5)),
            ]),
        ),
        aborted_at(6, leaf(Action::Panic, 7)),
        aborted_at(9, leaf(Action::Sleep, 8)),
    ]);
    let explicit = Out::Err(Expect::Cancelled(CancelReason::Explicit));
    let aborted = Out::Err(Expect::Joined(
        0,
        vec![Expect::Aborted(1), Expect::Aborted(5)],
    ));
    assert_hand_checked(
        tree,
        &[
            (1, 3, Out::Aborted),
            (2, 3, explicit.clone()),
            (3, 1, Out::Ok),
            (4, 2, explicit),
            (5, 5, Out::Aborted),
            (6, 7, Out::Ok),
            (0, 7, aborted.clone()),
        ],
        BlockOn::Returns(aborted),
    );
}

#[test]
fn a_task_spawned_into_a_cancelled_region_sees_it_at_its_first_await_point() {
    // #1 is cancelled at 1 ms and spawns #2 at 2 ms and #3 at 4 ms into its cancelled
    // region: #2's first await fails at once, the stubborn #3's only at 5 ms (R8, R9). #4
    // is spawned at 6 ms into a region that is not cancelled and runs to its end.
    let tree = Tree::Spawn(vec![
        cancelled_at(
            1,
            Tree::Spawn(vec![
                spawned_at(2, leaf(Action::Sleep, 3)),
                spawned_at(4, leaf(Action::Stubborn, 5)),
            ]),
        ),
        spawned_at(6, leaf(Action::Sleep, 7)),
    ]);
    let explicit = Out::Err(Expect::Cancelled(CancelReason::Explicit));
    assert_hand_checked(
        tree,
        &[
            (2, 2, explicit.clone()),
            (3, 5, explicit.clone()),
            (1, 5, explicit.clone()),
            (4, 7, Out::Ok),
            (0, 7, explicit.clone()),
        ],
        BlockOn::Returns(explicit),
    );
}

#[test]
fn a_zero_timeout_fails_at_once_and_its_failure_cancels_the_scope_at_that_instant() {
    // `timeout(Duration::ZERO, ..)` cancels its body before its first poll: #2's first
    // await fails, #1 returns `Elapsed` at 0 ms (R16), and the scope cancels #3 then.
    let tree = fail_fast(vec![
        child(Tree::Timeout {
            after: 0,
            body: Box::new(leaf(Action::Sleep, 2)),
        }),
        child(leaf(Action::Sleep, 1)),
    ]);
    let scope_error = Expect::Scope(0, vec![vec![Expect::Elapsed(1)]]);
    assert_hand_checked(
        tree,
        &[
            (2, 0, Out::Err(Expect::Cancelled(CancelReason::Deadline))),
            (1, 0, Out::Err(Expect::Elapsed(1))),
            (3, 0, Out::Err(Expect::Cancelled(CancelReason::Failure))),
            (0, 0, Out::Err(scope_error.clone())),
        ],
        BlockOn::Returns(Out::Err(scope_error)),
    );
}

#[test]
fn nested_timeouts_report_the_outer_deadline_after_a_stubborn_body_gives_up() {
    let tree = Tree::Timeout {
        after: 1,
        body: Box::new(Tree::Timeout {
            after: 2,
            body: Box::new(leaf(Action::Stubborn, 3)),
        }),
    };
    assert_hand_checked(
        tree,
        &[
            (2, 3, Out::Err(Expect::Cancelled(CancelReason::Deadline))),
            // Both deadlines fired (1 ms, 2 ms), but for the inner timeout the outer one is
            // an enclosing cancel, which wins (R15): it hands its body's result up.
            (1, 3, Out::Err(Expect::Cancelled(CancelReason::Deadline))),
            (0, 3, Out::Err(Expect::Elapsed(0))),
        ],
        BlockOn::Returns(Out::Err(Expect::Elapsed(0))),
    );
}

#[test]
fn scopes_cancelled_from_outside_report_it_unlike_a_self_cancelled_scope_or_a_supervisor() {
    let tree = Tree::Spawn(vec![
        cancelled_at(1, fail_fast(vec![child(leaf(Action::Sleep, 3))])),
        child(Tree::Scope {
            supervise: false,
            self_cancel: Some(2),
            body: None,
            members: vec![child(leaf(Action::Sleep, 4))],
        }),
        child(Tree::Scope {
            supervise: true,
            self_cancel: None,
            body: None,
            members: vec![child(leaf(Action::Fail, 5)), child(leaf(Action::Sleep, 6))],
        }),
    ]);
    let supervised = Expect::Scope(5, vec![vec![Expect::Injected(6)]]);
    assert_hand_checked(
        tree,
        &[
            (1, 1, Out::Err(Expect::Cancelled(CancelReason::Explicit))),
            (3, 2, Out::Ok),
            (7, 6, Out::Ok),
            (5, 6, Out::Err(supervised.clone())),
        ],
        BlockOn::Returns(Out::Err(Expect::Joined(0, vec![supervised]))),
    );
}

/// A scope (or supervisor) that cancels itself at `self_cancel`, inside a timeout firing at
/// `deadline`, over a member that ignores cancellation until 3 ms.
fn self_cancelled_scope_in_a_timeout(supervise: bool, self_cancel: u16, deadline: u16) -> Tree {
    Tree::Timeout {
        after: deadline,
        body: Box::new(Tree::Scope {
            supervise,
            self_cancel: Some(self_cancel),
            body: None,
            members: vec![child(leaf(Action::Stubborn, 3))],
        }),
    }
}

#[test]
fn an_enclosing_cancel_after_a_scopes_own_cancel_wins() {
    // R15, trio's rule: #1 cancels itself at 1 ms, its enclosing timeout fires at 2 ms, its
    // member notices at 3 ms. The scope reports the enclosing cancel, with its reason.
    for supervise in [false, true] {
        assert_hand_checked(
            self_cancelled_scope_in_a_timeout(supervise, 1, 2),
            &[
                (2, 3, Out::Err(Expect::Cancelled(CancelReason::Explicit))),
                (1, 3, Out::Err(Expect::Cancelled(CancelReason::Deadline))),
                (0, 3, Out::Err(Expect::Elapsed(0))),
            ],
            BlockOn::Returns(Out::Err(Expect::Elapsed(0))),
        );
    }
}

#[test]
fn an_enclosing_cancel_before_a_scopes_own_cancel_wins() {
    // The other order: the timeout fires at 1 ms, the scope cancels itself at 2 ms.
    for supervise in [false, true] {
        assert_hand_checked(
            self_cancelled_scope_in_a_timeout(supervise, 2, 1),
            &[
                (2, 3, Out::Err(Expect::Cancelled(CancelReason::Deadline))),
                (1, 3, Out::Err(Expect::Cancelled(CancelReason::Deadline))),
                (0, 3, Out::Err(Expect::Elapsed(0))),
            ],
            BlockOn::Returns(Out::Err(Expect::Elapsed(0))),
        );
    }
}

#[test]
fn a_timeout_whose_enclosing_task_is_cancelled_reports_the_cancel_not_elapsed_in_either_order() {
    // #1 is a task running a timeout over a leaf that ignores cancellation until 3 ms.
    // Deadline at 1 ms, then the task cancelled at 2 ms: the cancel wins, and the body's
    // result (cancelled by the deadline, which came first) goes up instead of `Elapsed`.
    let deadline_first = Tree::Spawn(vec![cancelled_at(
        2,
        Tree::Timeout {
            after: 1,
            body: Box::new(leaf(Action::Stubborn, 3)),
        },
    )]);
    assert_hand_checked(
        deadline_first,
        &[
            (2, 3, Out::Err(Expect::Cancelled(CancelReason::Deadline))),
            (1, 3, Out::Err(Expect::Cancelled(CancelReason::Deadline))),
        ],
        BlockOn::Returns(Out::Err(Expect::Cancelled(CancelReason::Deadline))),
    );
    // The task cancelled at 1 ms, then the deadline at 2 ms.
    let cancel_first = Tree::Spawn(vec![cancelled_at(
        1,
        Tree::Timeout {
            after: 2,
            body: Box::new(leaf(Action::Stubborn, 3)),
        },
    )]);
    assert_hand_checked(
        cancel_first,
        &[
            (2, 3, Out::Err(Expect::Cancelled(CancelReason::Explicit))),
            (1, 3, Out::Err(Expect::Cancelled(CancelReason::Explicit))),
        ],
        BlockOn::Returns(Out::Err(Expect::Cancelled(CancelReason::Explicit))),
    );
}

#[test]
fn a_scope_ending_at_the_instant_its_parent_fails_has_not_seen_that_cancel() {
    // The first tree proptest shrank to: #6 ends at 2 ms, which ends #5 and #3, whose
    // failure makes #2 cancel its region at 2 ms; #5 returned before that mark.
    let tree = Tree::Spawn(vec![child(Tree::Spawn(vec![child(fail_fast(vec![
        child(Tree::Scope {
            supervise: true,
            self_cancel: None,
            body: None,
            members: vec![
                child(leaf(Action::Fail, 1)),
                child(fail_fast(vec![child(leaf(Action::Sleep, 2))])),
            ],
        }),
    ]))]))]);
    let failed = Expect::Scope(3, vec![vec![Expect::Injected(4)]]);
    assert_hand_checked(
        tree,
        &[(5, 2, Out::Ok), (3, 2, Out::Err(failed.clone()))],
        BlockOn::Returns(Out::Err(Expect::Joined(
            0,
            vec![Expect::Joined(
                1,
                vec![Expect::Scope(2, vec![vec![failed]])],
            )],
        ))),
    );
}

#[test]
fn the_generator_reaches_trees_of_about_two_thousand_tasks() {
    let mut runner = TestRunner::new_with_rng(Config::default(), proptest_rng(DEFAULT_SEED));
    let strategy = arb_case();
    let mut sizes: Vec<usize> = (0..DEFAULT_CASES)
        .map(|_| {
            let case = strategy.new_tree(&mut runner).expect("a case").current();
            Plan::new(&case.tree).tasks()
        })
        .collect();
    sizes.sort_unstable();
    let (median, largest) = (sizes[sizes.len() / 2], sizes[sizes.len() - 1]);
    assert!(median < 50, "most cases are small; median {median}");
    assert!(
        (1_500..=5_000).contains(&largest),
        "largest tree: {largest} tasks"
    );
}

// ---------------------------------------------------------------------------------------
// Bugs found on the way, shrunk to regression tests (ignored until fixed).
// ---------------------------------------------------------------------------------------

/// A scope member whose future returns `Ok` and then panics while being dropped.
struct ReadyThenPanicsOnDrop;

impl Future for ReadyThenPanicsOnDrop {
    type Output = Result<(), TreeError>;
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(Ok(()))
    }
}

impl Drop for ReadyThenPanicsOnDrop {
    fn drop(&mut self) {
        panic::panic_any(format!("{INJECTED_PANIC}1"));
    }
}

/// R17: "A panicking task is a failed task: it cancels its parent's region (so its
/// siblings) like an error. Its payload is never lost and surfaces exactly once." A member
/// whose future panics in `Drop` is a panicking task (its `JoinHandle` says so), but the
/// `Member` wrapper only catches panics in `poll`, so the scope never hears of it; and
/// awaiting its `ScopedJoinHandle` turns the `JoinError` into `MemberError::Failed`,
/// dropping the payload. Seen before the fix: the join got `Err(Failed)`, the sibling slept
/// its full 10 ms, the scope returned `Ok(Some(()))`, `block_on` returned, nothing was
/// reported. Fixed: `Member` drops the user's future itself, under `catch_unwind`.
#[test]
fn bug_a_scope_member_panicking_in_drop_is_lost_when_its_handle_is_awaited() {
    silence_injected_panics();
    let reports = Rc::new(RefCell::new(Vec::new()));
    let rt = runtime(Order::Fifo, &reports);
    let sibling = Rc::new(Cell::new(None));
    let ended = panic::catch_unwind(AssertUnwindSafe(|| {
        rt.block_on({
            let sibling = sibling.clone();
            scope(|s: Scope<TreeError>| async move {
                let member = s.spawn(ReadyThenPanicsOnDrop).expect("open");
                s.spawn(async move {
                    let origin = Instant::now();
                    sibling.set(Some(sleep_until(origin + Duration::from_millis(10)).await));
                    Ok(())
                })
                .expect("open");
                let joined = member.await;
                assert!(joined.is_err(), "the member panicked: {joined:?}");
                Ok(())
            })
        })
    }));
    let surfaced = match &ended {
        Err(payload) => payload_text(&**payload).and_then(injected_panic_in),
        Ok(_) => None,
    };
    let reported: Vec<_> = reports
        .borrow()
        .iter()
        .filter_map(|report| injected_panic_in(report))
        .collect();
    assert_eq!(
        (surfaced, reported.as_slice()),
        (Some(1), &[][..]),
        "the payload surfaces once, re-raised after the scope's cleanup; block_on: {:?}",
        ended.as_ref().map_err(|payload| payload_text(&**payload))
    );
    assert_eq!(
        sibling.get(),
        Some(Err(Cancelled::new(CancelReason::Failure))),
        "the failed member cancels its sibling"
    );
}
