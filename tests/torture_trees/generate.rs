//! Generation: the proptest strategies that draw [`Case`]s, from a few tasks to ~2,000.
//!
//! Times are raw draws; [`Plan::new`] ranks them into distinct instants, so shrinking a
//! time moves its event earlier without colliding with the others.

use proptest::prelude::*;

use crate::plan::{Action, Case, Child, Tree};

/// Raw times are drawn from `1..=RAW_TIMES` and then ranked (see [`Plan::new`]).
const RAW_TIMES: u16 = 1_000;

fn raw_time() -> impl Strategy<Value = u16> {
    1..=RAW_TIMES
}

fn arb_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => Just(Action::Sleep),
        2 => (1..=3u8).prop_map(Action::Yield),
        2 => (1..=3u8).prop_map(Action::Channel),
        2 => Just(Action::Fail),
        1 => Just(Action::Panic),
        1 => Just(Action::Stubborn),
    ]
}

fn arb_leaf() -> impl Strategy<Value = Tree> {
    (arb_action(), raw_time(), prop::bool::weighted(0.15)).prop_map(
        |(action, at, cleanup_fails)| {
            Tree::Leaf {
                action,
                at,
                // A failing or panicking leaf has its own failure; its cleanup does not add one.
                cleanup_fails: cleanup_fails && !matches!(action, Action::Fail | Action::Panic),
            }
        },
    )
}

/// Trees of about `size` nodes at most, `depth` levels of internal nodes, with up to
/// `branch` children per spawn or scope. `expected_branch` is what proptest's size control
/// assumes; below the real average it lets trees grow near `size` (see `arb_case`).
fn arb_tree(depth: u32, size: u32, expected_branch: u32, branch: u32) -> BoxedStrategy<Tree> {
    arb_leaf()
        .prop_recursive(depth, size, expected_branch, move |inner| {
            prop_oneof![
                3 => arb_children(inner.clone(), branch).prop_map(Tree::Spawn),
                3 => (
                    prop::bool::weighted(0.3),
                    prop::option::weighted(0.1, raw_time()),
                    prop::option::weighted(0.3, inner.clone()),
                    arb_children(inner.clone(), branch),
                )
                    .prop_map(|(supervise, self_cancel, body, members)| Tree::Scope {
                        supervise,
                        self_cancel,
                        body: body.map(Box::new),
                        members,
                    }),
                1 => inner.clone().prop_map(|inner| Tree::Shield(Box::new(inner))),
                1 => (prop::bool::weighted(0.3), raw_time(), inner).prop_map(
                    |(zero, after, body)| Tree::Timeout {
                        // A zero timeout, where `Plan::new` allows it.
                        after: if zero { 0 } else { after },
                        body: Box::new(body),
                    }
                ),
            ]
        })
        .boxed()
}

/// Up to `branch` children, some cancelled or aborted through their handle, some detached,
/// some spawned late.
fn arb_children(tree: BoxedStrategy<Tree>, branch: u32) -> impl Strategy<Value = Vec<Child>> {
    let child = (
        tree,
        prop::option::weighted(0.15, raw_time()),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.4),
        prop::option::weighted(0.1, raw_time()),
    )
        .prop_map(|(tree, cancel, detached, abort, delay)| {
            let abort = abort && cancel.is_some();
            Child {
                // An aborted `Spawn` node drops the handles of its children, and with them
                // who takes their panics; the oracle does not model that, so its subtree
                // fails instead of panicking.
                tree: match tree {
                    Tree::Spawn(_) if abort => without_panics(tree),
                    tree => tree,
                },
                cancel,
                detached,
                abort,
                delay,
            }
        });
    prop::collection::vec(child, 0..=branch as usize)
}

/// Mostly small trees (they run fast and shrink fast), some of tens to hundreds of tasks,
/// and some large ones: sampled, the three tiers give medians of about 5, 60 and 400 tasks,
/// the large tier reaching 1,400 tasks at its 90th percentile and ~2,000 at its 99th.
pub fn arb_case() -> impl Strategy<Value = Case> {
    let tree = prop_oneof![
        6 => arb_tree(4, 32, 2, 4),
        3 => arb_tree(5, 300, 3, 8),
        1 => arb_tree(6, 2_000, 3, 10),
    ];
    (tree, any::<u64>()).prop_map(|(tree, scheduler_seed)| Case {
        tree,
        scheduler_seed,
    })
}

/// `tree` with every panicking leaf replaced by a failing one.
fn without_panics(tree: Tree) -> Tree {
    let children = |children: Vec<Child>| {
        children
            .into_iter()
            .map(|child| Child {
                tree: without_panics(child.tree),
                ..child
            })
            .collect()
    };
    match tree {
        Tree::Leaf {
            action: Action::Panic,
            at,
            ..
        } => Tree::Leaf {
            action: Action::Fail,
            at,
            cleanup_fails: false,
        },
        leaf @ Tree::Leaf { .. } => leaf,
        Tree::Spawn(kids) => Tree::Spawn(children(kids)),
        Tree::Scope {
            supervise,
            self_cancel,
            body,
            members,
        } => Tree::Scope {
            supervise,
            self_cancel,
            body: body.map(|body| Box::new(without_panics(*body))),
            members: children(members),
        },
        Tree::Shield(inner) => Tree::Shield(Box::new(without_panics(*inner))),
        Tree::Timeout { after, body } => Tree::Timeout {
            after,
            body: Box::new(without_panics(*body)),
        },
    }
}
