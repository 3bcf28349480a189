//! What must happen, computed from the plan alone.
//!
//! The model (each point is a rule of SPEC §3 under the timing of [`Plan::new`]):
//!
//! - A node's fate depends only on the earliest cancellation that reaches it
//!   ([`CancelAt`]): from above (a cancelled ancestor region, R5), from its own handle, or
//!   from the region it runs in failing. A shield passes nothing down (R11); a timeout adds
//!   its deadline (R16).
//! - A cancellation at instant `T` changes only what happens after `T` in the subtree it
//!   reaches. Whatever happens at `T` itself in that subtree is its cause: no two timed
//!   events share an instant, and cleanups take no time.
//! - A fail-fast scope is cancelled (reason `Failure`) by its first member failure or panic
//!   that comes before any other cancellation of its region (R13, R17); a supervisor is not
//!   (R18). A detached leaf's panic cancels the region it was spawned in (R17), which is
//!   exactly its `Spawn` node's children. Either way, the members are evaluated again under
//!   the new cancellation: it cannot change anything before its instant.
//! - Same-instant reasons: the timed event (an explicit cancel, a deadline) marks its
//!   subtree before any failure it causes can, so it wins ties (R5: the first mark stays).
//! - A scope or a timeout reads the mark of the node enclosing it as it returns (R15): a
//!   cancel from outside it wins over its own (a scope's self-cancel, a deadline), in
//!   either order. A cancel at that very instant was there first, unless a timed event
//!   inside happened then: the only way out is its result, so such a cancel is a
//!   consequence of its return.
//! - An aborted task (R20) is cancelled like a cancelled one; if its future had not
//!   returned by the abort, it never does, and the task finishes (its join says aborted)
//!   when it would have returned under that cancellation: a leaf's or a `Spawn` node's
//!   future only waits for its children. A leaf spawned late sees a cancellation that
//!   reached its region before at its first await point, as it starts (R8).
//! - A scope hears of its members' failures in the order they happen; at one instant, the
//!   failure that cancelled the scope comes before those its cancel caused, and failures
//!   caused together (one cancel reaching several members) come in any order.

use treeloop::CancelReason;

use crate::outcome::TreeError;
use crate::plan::{Action, Kind, Launch, NodeId, Plan, Time};

/// When a cancellation reaches a node, and what it says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CancelAt {
    at: Time,
    reason: CancelReason,
}

impl CancelAt {
    fn new(at: Time, reason: CancelReason) -> Self {
        CancelAt { at, reason }
    }
}

/// The earlier of two cancellations; at one instant the timed one, not the `Failure`
/// it caused.
fn earliest(a: Option<CancelAt>, b: Option<CancelAt>) -> Option<CancelAt> {
    [a, b]
        .into_iter()
        .flatten()
        .min_by_key(|c| (c.at, c.reason == CancelReason::Failure))
}

/// Whether something at `t` happens before `cancel` arrives.
fn before(t: Time, cancel: Option<CancelAt>) -> bool {
    cancel.is_none_or(|c| t < c.at)
}

/// An error as the oracle expects it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    Cancelled(CancelReason),
    Injected(NodeId),
    CleanupFailed(NodeId),
    Elapsed(NodeId),
    Aborted(NodeId),
    Joined(NodeId, Vec<Expect>),
    /// A scope's errors as groups: the groups come in this order, the errors within a
    /// group in any order (they happened at one instant, as consequences of one event
    /// that reached several members).
    Scope(NodeId, Vec<Vec<Expect>>),
}

/// What a node's future does in the end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Out {
    Ok,
    Err(Expect),
    /// Panics with the payload of one of these leaves (usually exactly one).
    Panic(Vec<NodeId>),
    /// Never returns: dropped by `abort()` (R20). The instant is when its task finishes.
    Aborted,
}

impl Out {
    /// A real failure: an error that is not only a cancellation, or a panic.
    fn failed(&self) -> bool {
        match self {
            Out::Ok | Out::Err(Expect::Cancelled(_)) => false,
            Out::Err(_) | Out::Panic(_) | Out::Aborted => true,
        }
    }
}

/// When a node's future returns (or panics), and with what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prediction {
    pub at: Time,
    pub out: Out,
}

/// How `block_on` ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockOn {
    /// With the top node's result.
    Returns(Out),
    /// By re-raising one of these leaves' panics.
    Panics(Vec<NodeId>),
}

/// Everything the oracle predicts for one plan.
pub struct Expected {
    /// Per node.
    pub nodes: Vec<Prediction>,
    pub block_on: BlockOn,
    /// Leaves that panic.
    pub panics: Vec<NodeId>,
}

/// A node's evaluation under one incoming cancellation.
struct Eval {
    at: Time,
    out: Out,
    /// Panics of detached leaves in the subtree (time, leaf): nobody takes them, so
    /// `block_on` re-raises the earliest (R17).
    unhandled: Vec<(Time, NodeId)>,
}

pub fn predict(plan: &Plan) -> Expected {
    let mut oracle = Oracle {
        plan,
        predictions: vec![None; plan.nodes.len()],
    };
    let top = oracle.eval(0, None);
    let block_on = match (&top.out, top.unhandled.iter().min()) {
        // The root's own panic beats unhandled ones (R17).
        (Out::Panic(leaves), _) => BlockOn::Panics(leaves.clone()),
        (_, Some(&(_, leaf))) => BlockOn::Panics(vec![leaf]),
        (out, None) => BlockOn::Returns(out.clone()),
    };
    let nodes: Vec<Prediction> = oracle
        .predictions
        .into_iter()
        .map(|p| p.expect("every node is evaluated"))
        .collect();
    let panics = (0..nodes.len())
        .filter(|&id| matches!(plan.nodes[id].kind, Kind::Leaf { .. }))
        .filter(|&id| matches!(nodes[id].out, Out::Panic(_)))
        .collect();
    Expected {
        nodes,
        block_on,
        panics,
    }
}

struct Oracle<'p> {
    plan: &'p Plan,
    /// The latest evaluation of each node: re-evaluations under an earlier cancel
    /// overwrite, and the last one is the one that happens.
    predictions: Vec<Option<Prediction>>,
}

impl Oracle<'_> {
    fn eval(&mut self, id: NodeId, cancel: Option<CancelAt>) -> Eval {
        let plan = self.plan;
        let eval = match &plan.nodes[id].kind {
            &Kind::Leaf {
                action,
                at,
                cleanup_fails,
            } => leaf(id, action, at, cleanup_fails, cancel),
            Kind::Spawn(children) => self.spawn(id, children, cancel),
            Kind::Scope {
                supervise,
                self_cancel,
                members,
            } => self.scope(id, *supervise, *self_cancel, members, cancel),
            // R11: nothing from outside gets in.
            Kind::Shield(inner) => self.eval(*inner, None),
            &Kind::Timeout { deadline, body } => self.timeout(id, deadline, body, cancel),
        };
        self.predictions[id] = Some(Prediction {
            at: eval.at,
            out: eval.out.clone(),
        });
        eval
    }

    /// Each child under `cancel` or its own handle's cancel, whichever comes first.
    fn children(&mut self, children: &[NodeId], cancel: Option<CancelAt>) -> Vec<Eval> {
        children
            .iter()
            .map(|&child| {
                let launch = self.plan.nodes[child].launch;
                let own = launch
                    .cancel()
                    .map(|at| CancelAt::new(at, CancelReason::Explicit));
                // R8: spawned late into a region cancelled before, it sees the
                // cancellation at its first await point, as it starts.
                let start = launch.delay().unwrap_or(0);
                let reaches =
                    earliest(cancel, own).map(|c| CancelAt::new(c.at.max(start), c.reason));
                let mut eval = self.eval(child, reaches);
                // R20: an abort cancels like a cancel; a future that had not returned by
                // then is dropped at once (the abort wakes it), and its task finishes when
                // its children have: for a leaf (its helper) and a `Spawn` node alike,
                // when it would have returned under that cancel.
                if launch.abort().is_some_and(|at| eval.at >= at) {
                    eval.out = Out::Aborted;
                    self.predictions[child] = Some(Prediction {
                        at: eval.at,
                        out: Out::Aborted,
                    });
                }
                eval
            })
            .collect()
    }

    fn spawn(&mut self, id: NodeId, children: &[NodeId], cancel: Option<CancelAt>) -> Eval {
        let detached = |child: NodeId| self.plan.nodes[child].launch == Launch::Detached;
        let mut evals = self.children(children, cancel);
        // R17: a detached leaf's panic has no handle to go to; it cancels the region
        // the leaf was spawned in: this node's children.
        let first_unhandled = children
            .iter()
            .zip(&evals)
            .filter(|&(&child, eval)| detached(child) && matches!(eval.out, Out::Panic(_)))
            .map(|(_, eval)| eval.at)
            .min();
        if let Some(t) = first_unhandled.filter(|&t| before(t, cancel)) {
            let failure = Some(CancelAt::new(t, CancelReason::Failure));
            evals = self.children(children, earliest(cancel, failure));
        }
        let mut unhandled = Vec::new();
        let mut joined = Vec::new();
        for (&child, eval) in children.iter().zip(evals.iter_mut()) {
            unhandled.append(&mut eval.unhandled);
            if detached(child) {
                if matches!(eval.out, Out::Panic(_)) {
                    unhandled.push((eval.at, child));
                }
            } else {
                joined.push((child, &eval.out));
            }
        }
        // As `combine_joined` does it: the first panic in child order is re-raised;
        // else the real errors in child order; else the first cancellation.
        let out = if let Some(leaves) = joined.iter().find_map(|(_, out)| match out {
            Out::Panic(leaves) => Some(leaves),
            _ => None,
        }) {
            Out::Panic(leaves.clone())
        } else {
            let errors: Vec<Expect> = joined
                .iter()
                .filter(|(_, out)| out.failed())
                .map(|&(child, out)| match out {
                    Out::Err(error) => error.clone(),
                    Out::Aborted => Expect::Aborted(child),
                    _ => unreachable!("panics were handled above"),
                })
                .collect();
            let cancelled = joined.iter().find_map(|(_, out)| match out {
                Out::Err(Expect::Cancelled(reason)) => Some(*reason),
                _ => None,
            });
            match (errors.is_empty(), cancelled) {
                (false, _) => Out::Err(Expect::Joined(id, errors)),
                (true, Some(reason)) => Out::Err(Expect::Cancelled(reason)),
                (true, None) => Out::Ok,
            }
        };
        Eval {
            at: evals.iter().map(|eval| eval.at).max().unwrap_or(0),
            out,
            unhandled,
        }
    }

    fn scope(
        &mut self,
        id: NodeId,
        supervise: bool,
        self_cancel: Option<Time>,
        members: &[NodeId],
        cancel: Option<CancelAt>,
    ) -> Eval {
        let mut region = earliest(
            cancel,
            self_cancel.map(|at| CancelAt::new(at, CancelReason::Explicit)),
        );
        let mut evals = self.children(members, region);
        // R13: in a fail-fast scope, the first failure cancels the others, unless
        // the region was already cancelled. The member that failed then (if it was
        // one member) is heard before the failures its cancel caused at that instant.
        let mut trigger = None;
        let first_failure = evals.iter().filter(|e| e.out.failed()).map(|e| e.at).min();
        if let Some(t) = first_failure.filter(|&t| !supervise && before(t, region)) {
            let failing: Vec<usize> = (0..evals.len())
                .filter(|&i| evals[i].at == t && evals[i].out.failed())
                .collect();
            if let [only] = failing[..] {
                trigger = Some(only);
            }
            region = earliest(region, Some(CancelAt::new(t, CancelReason::Failure)));
            evals = self.children(members, region);
        }
        let end = evals.iter().map(|eval| eval.at).max().unwrap_or(0);
        let unhandled = evals
            .iter_mut()
            .flat_map(|eval| std::mem::take(&mut eval.unhandled))
            .collect();

        // The order in which the scope hears of failures: by instant, the trigger
        // first at its instant; failures with equal keys may come in any order.
        let key = |i: usize| (evals[i].at, Some(i) != trigger);
        let mut failing: Vec<usize> = (0..evals.len())
            .filter(|&i| evals[i].out.failed())
            .collect();
        failing.sort_by_key(|&i| key(i));
        let panicking: Vec<usize> = failing
            .iter()
            .copied()
            .filter(|&i| matches!(evals[i].out, Out::Panic(_)))
            .collect();

        let out = if let Some(&first) = panicking.first() {
            // R17: the first panic is re-raised after every member finished.
            let leaves = panicking
                .iter()
                .filter(|&&i| key(i) == key(first))
                .flat_map(|&i| match &evals[i].out {
                    Out::Panic(leaves) => leaves.clone(),
                    _ => unreachable!("filtered on panics"),
                })
                .collect();
            Out::Panic(leaves)
        } else if !failing.is_empty() {
            // R14: every real error, in order.
            let groups = failing
                .chunk_by(|&a, &b| key(a) == key(b))
                .map(|group| {
                    group
                        .iter()
                        .map(|&i| match &evals[i].out {
                            Out::Err(error) => error.clone(),
                            _ => unreachable!("panics were handled above"),
                        })
                        .collect()
                })
                .collect();
            Out::Err(Expect::Scope(id, groups))
        } else {
            // R15: cancelled from outside reports `Cancelled` with the outside's reason,
            // and wins over the scope's own cancel in either order (trio's rule); a scope
            // that only cancelled itself returns normally. (Without a failure, the only
            // cancellations of the region are those two.)
            match self.seen_from_outside(id, cancel, end) {
                Some(c) => Out::Err(Expect::Cancelled(c.reason)),
                None => Out::Ok,
            }
        };
        Eval {
            at: end,
            out,
            unhandled,
        }
    }

    fn timeout(
        &mut self,
        id: NodeId,
        deadline: Time,
        body: NodeId,
        cancel: Option<CancelAt>,
    ) -> Eval {
        let fired = CancelAt::new(deadline, CancelReason::Deadline);
        let eval = self.eval(body, earliest(cancel, Some(fired)));
        // R16: once the deadline passed, `Elapsed`, whatever the body returned, unless a
        // cancel from outside is seen as the timeout returns: that wins (R15), and the
        // body's own result goes up. A panic unwinds through the timeout.
        let outside = self.seen_from_outside(id, cancel, eval.at).is_some();
        let out = match eval.out {
            Out::Panic(_) => eval.out,
            out if outside => out,
            _ if eval.at >= deadline => Out::Err(Expect::Elapsed(id)),
            out => out,
        };
        Eval { out, ..eval }
    }

    /// The cancellation from outside node `id` (a scope or timeout) that it sees as it
    /// returns at `end`: it reads the enclosing node's mark then. A cancel at that very
    /// instant came first, unless a timed event inside the node happened then: such a
    /// cancel can only be a consequence of the node's return.
    fn seen_from_outside(
        &self,
        id: NodeId,
        cancel: Option<CancelAt>,
        end: Time,
    ) -> Option<CancelAt> {
        cancel.filter(|c| c.at < end || (c.at == end && !self.plan.has_timed_event_inside(id, end)))
    }
}

fn leaf(
    id: NodeId,
    action: Action,
    at: Time,
    cleanup_fails: bool,
    cancel: Option<CancelAt>,
) -> Eval {
    let cancelled = cancel.filter(|c| c.at < at);
    let (end, out) = match (action, cancelled) {
        // It notices only at its checkpoint, once the foreign wait is over (R9).
        (Action::Stubborn, Some(c)) => (at, Out::Err(Expect::Cancelled(c.reason))),
        (_, Some(c)) => (c.at, Out::Err(Expect::Cancelled(c.reason))),
        (Action::Fail, None) => (at, Out::Err(Expect::Injected(id))),
        (Action::Panic, None) => (at, Out::Panic(vec![id])),
        (_, None) => (at, Out::Ok),
    };
    let out = match out {
        Out::Panic(_) => out,
        _ if cleanup_fails => Out::Err(Expect::CleanupFailed(id)),
        _ => out,
    };
    Eval {
        at: end,
        out,
        unhandled: Vec::new(),
    }
}

/// Whether `actual` is one of the outcomes `expected` allows.
pub fn error_matches(actual: &TreeError, expected: &Expect) -> bool {
    match (actual, expected) {
        (TreeError::Cancelled(c), Expect::Cancelled(reason)) => c.reason() == *reason,
        (TreeError::Injected(a), Expect::Injected(b))
        | (TreeError::CleanupFailed(a), Expect::CleanupFailed(b))
        | (TreeError::Elapsed(a), Expect::Elapsed(b))
        | (TreeError::Aborted(a), Expect::Aborted(b)) => a == b,
        (TreeError::Joined(a, errors), Expect::Joined(b, expected)) => {
            a == b
                && errors.len() == expected.len()
                && errors
                    .iter()
                    .zip(expected)
                    .all(|(a, e)| error_matches(a, e))
        }
        (TreeError::Scope(a, errors), Expect::Scope(b, groups)) => {
            a == b && groups_match(errors, groups)
        }
        _ => false,
    }
}

/// The errors are the groups' errors, group after group, in any order within a group.
/// Greedy matching suffices: every error names a distinct node.
fn groups_match(errors: &[TreeError], groups: &[Vec<Expect>]) -> bool {
    let mut rest = errors;
    for group in groups {
        if rest.len() < group.len() {
            return false;
        }
        let (head, tail) = rest.split_at(group.len());
        let mut taken = vec![false; head.len()];
        for expected in group {
            let found = (0..head.len()).find(|&i| !taken[i] && error_matches(&head[i], expected));
            match found {
                Some(i) => taken[i] = true,
                None => return false,
            }
        }
        rest = tail;
    }
    rest.is_empty()
}
