//! Builders for hand-checked trees, and the assertion that the oracle agrees with a
//! prediction made by hand and the runtime with the oracle, in FIFO order and under 32
//! seeded orders.

use std::rc::Rc;

use crate::check::{Order, Run, problems, run_plan};
use crate::oracle::{self, BlockOn, Out, Prediction};
use crate::outcome::silence_injected_panics;
use crate::plan::{Action, Child, NodeId, Plan, Time, Tree};

/// A leaf. In these trees raw times are distinct and run 1, 2, 3, ..., so ranking leaves
/// them as they are: `at` is the instant in ms.
pub fn leaf(action: Action, at: u16) -> Tree {
    Tree::Leaf {
        action,
        at,
        cleanup_fails: false,
    }
}

pub fn with_failing_cleanup(tree: Tree) -> Tree {
    match tree {
        Tree::Leaf { action, at, .. } => Tree::Leaf {
            action,
            at,
            cleanup_fails: true,
        },
        other => other,
    }
}

pub fn child(tree: Tree) -> Child {
    Child {
        tree,
        cancel: None,
        detached: false,
        abort: false,
        delay: None,
    }
}

pub fn cancelled_at(at: u16, tree: Tree) -> Child {
    Child {
        cancel: Some(at),
        ..child(tree)
    }
}

pub fn aborted_at(at: u16, tree: Tree) -> Child {
    Child {
        abort: true,
        ..cancelled_at(at, tree)
    }
}

pub fn spawned_at(at: u16, tree: Tree) -> Child {
    Child {
        delay: Some(at),
        ..child(tree)
    }
}

pub fn detached(tree: Tree) -> Child {
    Child {
        detached: true,
        ..child(tree)
    }
}

pub fn fail_fast(members: Vec<Child>) -> Tree {
    Tree::Scope {
        supervise: false,
        self_cancel: None,
        body: None,
        members,
    }
}

/// Asserts the oracle's predictions for some nodes (`(node, instant, outcome)`) and for
/// `block_on`, then runs the tree in FIFO order and under 32 seeds, asserting that every
/// run meets the predictions; returns the runs.
pub fn assert_hand_checked(
    tree: Tree,
    nodes: &[(NodeId, Time, Out)],
    block_on: BlockOn,
) -> Vec<Run> {
    silence_injected_panics();
    let plan = Rc::new(Plan::new(&tree));
    let expected = oracle::predict(&plan);
    for (id, at, out) in nodes {
        let hand = Prediction {
            at: *at,
            out: out.clone(),
        };
        assert_eq!(expected.nodes[*id], hand, "#{id} in\n{plan}");
    }
    assert_eq!(expected.block_on, block_on, "block_on in\n{plan}");
    let orders = std::iter::once(Order::Fifo).chain((0..32).map(Order::Random));
    orders
        .map(|order| {
            let run = run_plan(&plan, order);
            let problems = problems(&plan, &expected, &run);
            assert!(problems.is_empty(), "{order:?}: {problems:#?}\n{plan}");
            run
        })
        .collect()
}
