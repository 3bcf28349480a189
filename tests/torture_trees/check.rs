//! Running a case and checking it: a fresh deterministic runtime per run (FIFO or seeded
//! random order, virtual time), then every way the run broke the oracle's predictions or an
//! invariant.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use proptest::test_runner::TestCaseError;
use treeloop::{Builder, Runtime};

use crate::interpret::root;
use crate::oracle::{self, BlockOn, Expected, Out, Prediction};
use crate::outcome::{NodeResult, injected_panic_in, payload_text};
use crate::plan::{Case, Kind, Plan, helpers};
use crate::record::{Harness, Returned};

/// The order the deterministic scheduler runs ready tasks in.
#[derive(Clone, Copy, Debug)]
pub enum Order {
    Fifo,
    Random(u64),
}

/// A deterministic runtime (virtual time; a deadlock is reported, not hung on) whose
/// reports go to `reports`.
pub fn runtime(order: Order, reports: &Rc<RefCell<Vec<String>>>) -> Runtime {
    let reports = reports.clone();
    let builder = Builder::new()
        .start_paused(true)
        .report_sink(move |report| reports.borrow_mut().push(report.to_string()));
    let builder = match order {
        Order::Fifo => builder.seed(0).strategy(treeloop::Strategy::Fifo),
        Order::Random(seed) => builder.seed(seed).strategy(treeloop::Strategy::Random),
    };
    builder.build().expect("runtime")
}

/// What one run of a plan left behind.
pub struct Run {
    pub harness: Rc<Harness>,
    /// `block_on`'s value, or the panic it re-raised.
    ended: std::thread::Result<NodeResult>,
    /// Everything the runtime reported.
    reports: Vec<String>,
    /// `Runtime::live_nodes()` after `block_on`.
    live_nodes: usize,
}

/// Runs `plan` on a fresh runtime, catching the panic `block_on` may re-raise.
pub fn run_plan(plan: &Rc<Plan>, order: Order) -> Run {
    let harness = Harness::new(plan.clone());
    let reports = Rc::new(RefCell::new(Vec::new()));
    let rt = runtime(order, &reports);
    let ended = panic::catch_unwind(AssertUnwindSafe(|| rt.block_on(root(harness.clone()))));
    let live_nodes = rt.live_nodes();
    drop(rt);
    let reports = reports.take();
    Run {
        harness,
        ended,
        reports,
        live_nodes,
    }
}

/// Every way `run` broke the oracle's expectations or an invariant.
pub fn problems(plan: &Plan, expected: &Expected, run: &Run) -> Vec<String> {
    let Run {
        harness,
        ended,
        reports,
        live_nodes,
    } = run;
    let mut problems = Vec::new();
    let mut surfaced = Vec::new();

    // block_on's value or panic.
    match (&expected.block_on, ended) {
        (BlockOn::Returns(out), Ok(result)) => {
            if !out_matches(out, &Returned::Value(result.clone())) {
                problems.push(format!("block_on returned {result:?}, expected {out:?}"));
            }
        }
        (expected, Ok(result)) => {
            problems.push(format!(
                "block_on returned {result:?}, expected {expected:?}"
            ));
        }
        (expected, Err(payload)) => match payload_text(&**payload).and_then(injected_panic_in) {
            Some(leaf) => {
                surfaced.push(leaf);
                if !matches!(expected, BlockOn::Panics(leaves) if leaves.contains(&leaf)) {
                    problems.push(format!(
                        "block_on re-raised the panic of #{leaf}, expected {expected:?}"
                    ));
                }
            }
            None => problems.push(format!(
                "block_on panicked: {:?}; expected {expected:?}",
                payload_text(&**payload)
            )),
        },
    }

    let log = harness.log.borrow();
    for (id, node) in plan.nodes.iter().enumerate() {
        let Prediction { at, out } = &expected.nodes[id];
        match &log.returned[id] {
            // R20: an aborted future never returns; its task finishes at `at`, which its
            // parent's join and return instant check.
            None if *out == Out::Aborted => {}
            None => problems.push(format!("#{id} never returned; expected {out:?} at {at}ms")),
            Some((when, returned)) => {
                if when != at || !out_matches(out, returned) {
                    problems.push(format!(
                        "#{id} returned {returned:?} at {when}ms; expected {out:?} at {at}ms"
                    ));
                }
            }
        }
        let (created, dropped) = (log.created[id], log.dropped[id]);
        if (created, dropped) != (1, 1) {
            problems.push(format!(
                "#{id}'s future was created {created}x, dropped {dropped}x"
            ));
        }
        let helpers = helpers(&node.kind) as u32;
        let (created, dropped) = (log.helpers_created[id], log.helpers_dropped[id]);
        if (created, dropped) != (helpers, helpers) {
            problems.push(format!(
                "#{id}'s helper futures: {created} created, {dropped} dropped; expected {helpers}"
            ));
        }
        if let Kind::Leaf { .. } = node.kind {
            let panicked = matches!(out, Out::Panic(_) | Out::Aborted);
            let expected_cleanups = (1, u32::from(!panicked));
            let cleanups = (log.finally_ran[id], log.cleanup_ran[id]);
            if cleanups != expected_cleanups {
                problems.push(format!(
                    "#{id}: (drop-guard, awaiting) cleanups ran {cleanups:?}, expected {expected_cleanups:?}"
                ));
            }
        }
    }

    // R17: every panic payload surfaced exactly once.
    surfaced.extend(log.absorbed_panics.iter().copied());
    for report in reports {
        match injected_panic_in(report) {
            Some(leaf) => surfaced.push(leaf),
            None => problems.push(format!("unexpected report: {report}")),
        }
    }
    surfaced.sort_unstable();
    if surfaced != expected.panics {
        problems.push(format!(
            "panics surfaced from leaves {surfaced:?}; the leaves that panicked: {:?}",
            expected.panics
        ));
    }

    problems.extend(log.violations.iter().cloned());
    if *live_nodes != 0 {
        problems.push(format!(
            "{live_nodes} tree nodes still alive after block_on"
        ));
    }
    for (id, task) in harness.tasks.borrow().iter().enumerate() {
        if task.as_ref().is_some_and(|task| !task.is_finished()) {
            problems.push(format!("task #{id} is not finished after block_on"));
        }
    }
    problems
}

fn out_matches(expected: &Out, actual: &Returned) -> bool {
    match (expected, actual) {
        (Out::Ok, Returned::Value(Ok(()))) => true,
        (Out::Err(expected), Returned::Value(Err(actual))) => {
            oracle::error_matches(actual, expected)
        }
        (Out::Panic(_), Returned::Panicked) => true,
        _ => false,
    }
}

pub fn check_case(case: &Case, order: Order) -> Result<(), TestCaseError> {
    let plan = Rc::new(Plan::new(&case.tree));
    let problems = problems(&plan, &oracle::predict(&plan), &run_plan(&plan, order));
    if problems.is_empty() {
        return Ok(());
    }
    const SHOWN: usize = 12;
    let mut text = format!("under {order:?}: {} problems", problems.len());
    for problem in problems.iter().take(SHOWN) {
        text.push_str("\n  - ");
        text.push_str(problem);
    }
    if problems.len() > SHOWN {
        text.push_str("\n  - ...");
    }
    Err(TestCaseError::fail(text))
}
