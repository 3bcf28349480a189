//! Torture: random task trees (issue 9). Proptest generates trees of up to ~2,000 tasks
//! that mix plain spawns (joined or detached), scopes and supervisor scopes (whose bodies
//! may run a subtree too), shields and timeouts, over leaves that sleep, yield, pass
//! messages over a channel, fail, panic, fail in their cleanup, or ignore cancellation for
//! a while; some tasks and scopes are cancelled at random virtual times. An oracle computes
//! from the tree alone what must happen, the tree runs on virtual time, and every case
//! checks that:
//!
//! - `block_on` returns the predicted value, or re-raises the predicted panic (R3, R17);
//! - every node returns (or panics) at the predicted virtual instant with the predicted
//!   result: a scope's errors are exactly the failures injected under it, none lost, none
//!   invented, in the order they happened (R13–R16, R18);
//! - every cleanup ran exactly once: the synchronous one always, the awaiting one (inside a
//!   shield) unless the leaf panicked (R11, R12);
//! - every future was created once and dropped once (instrumented drop counters);
//! - no task finished while a descendant's future was still alive, and no node returned
//!   before every task below it had finished (R2, R4);
//! - every panic payload surfaced exactly once: re-raised by `block_on`, taken from a join,
//!   or reported to the runtime's report sink (R17);
//! - `Runtime::live_tasks()` is zero afterwards.
//!
//! # Why the oracle can be exact
//!
//! Every timed event of a tree (a leaf's wake-up, a deadline, a scheduled cancel) gets a
//! virtual millisecond of its own: the generator draws raw times and [`Plan::new`] ranks
//! them. Everything else takes no virtual time: all nodes start at 0 ms, and cleanup awaits
//! a shielded `yield_now`. So at any instant exactly one timed event happens, and whatever
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

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::fmt;
use std::future::{Future, poll_fn};
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Once;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use treeloop::sync::mpsc::{self, RecvError};
use treeloop::time::{Instant, sleep_until, timeout_at};
use treeloop::{
    Builder, CancelReason, Cancellation, Cancelled, JoinError, JoinHandle, Runtime, Scope,
    ScopeError, ScopedJoinHandle, checkpoint, scope, shield, spawn, supervisor, yield_now,
};

/// Virtual milliseconds since the run began.
type Time = u64;

/// A node's number: its position in a preorder walk of the tree (the top node is #0).
type NodeId = usize;

// ---------------------------------------------------------------------------------------
// The description of a tree, as generated and as run.
// ---------------------------------------------------------------------------------------

/// What a leaf does once its time has come (every leaf first sleeps until then, except
/// `Stubborn`, which ignores cancellation until then).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    /// Returns `Ok`.
    Sleep,
    /// Yields this many times, then returns `Ok`.
    Yield(u8),
    /// Receives this many messages over a bounded channel from a helper task that starts
    /// sending at the leaf's time, then returns `Ok`.
    Channel(u8),
    /// Returns an injected error.
    Fail,
    /// Panics with an injected payload.
    Panic,
    /// Waits on a foreign future that treeloop cannot cancel (R9), then hits a checkpoint.
    Stubborn,
}

/// A generated tree. Times are raw draws; [`Plan::new`] turns them into distinct instants.
#[derive(Clone)]
enum Tree {
    /// A leaf; `cleanup_fails` makes its cleanup return an error of its own.
    Leaf {
        action: Action,
        at: u16,
        cleanup_fails: bool,
    },
    /// Spawns its children as plain tasks, joins them (in a shield), and combines results.
    Spawn(Vec<Child>),
    /// A `scope` (or `supervisor`) whose body spawns the members, then runs `body` in the
    /// scope's region (or returns at once); it may cancel itself (`Scope::cancel`).
    Scope {
        supervise: bool,
        self_cancel: Option<u16>,
        body: Option<Box<Tree>>,
        members: Vec<Child>,
    },
    /// `shield(inner)`.
    Shield(Box<Tree>),
    /// `timeout(after, body)`.
    Timeout { after: u16, body: Box<Tree> },
}

/// A child of a `Spawn` or a member of a `Scope`.
#[derive(Clone, Debug)]
struct Child {
    tree: Tree,
    /// When its handle is cancelled, if ever.
    cancel: Option<u16>,
    /// A leaf spawned with its `JoinHandle` dropped at once (only under a `Spawn`).
    detached: bool,
}

/// One generated case: a tree and the seed of its randomised schedule.
#[derive(Clone)]
struct Case {
    tree: Tree,
    scheduler_seed: u64,
}

/// How a node is started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Launch {
    /// Awaited in place by its parent (a shield's or timeout's body; the top node).
    Inline,
    /// A task spawned by a `Spawn` node, which keeps the handle and joins it.
    Joined { cancel: Option<Time> },
    /// A leaf task spawned by a `Spawn` node, its handle dropped at once.
    Detached,
    /// A scope member.
    Member { cancel: Option<Time> },
    /// A scope's body: awaited in place inside the scope's region.
    Body,
}

impl Launch {
    /// When the node's handle is cancelled, if ever.
    fn cancel(self) -> Option<Time> {
        match self {
            Launch::Joined { cancel } | Launch::Member { cancel } => cancel,
            Launch::Inline | Launch::Detached | Launch::Body => None,
        }
    }

    /// Whether the test keeps a handle to the node's task.
    fn has_handle(self) -> bool {
        matches!(self, Launch::Joined { .. } | Launch::Member { .. })
    }
}

/// What a node of the plan does: [`Tree`] with node numbers for children and instants for
/// times.
#[derive(Clone, Debug)]
enum Kind {
    Leaf {
        action: Action,
        at: Time,
        cleanup_fails: bool,
    },
    Spawn(Vec<NodeId>),
    /// The body, if any, is `members[0]`, with [`Launch::Body`].
    Scope {
        supervise: bool,
        self_cancel: Option<Time>,
        members: Vec<NodeId>,
    },
    Shield(NodeId),
    Timeout {
        deadline: Time,
        body: NodeId,
    },
}

impl Kind {
    fn children(&self) -> &[NodeId] {
        match self {
            Kind::Leaf { .. } => &[],
            Kind::Spawn(children) => children,
            Kind::Scope { members, .. } => members,
            Kind::Shield(inner) => std::slice::from_ref(inner),
            Kind::Timeout { body, .. } => std::slice::from_ref(body),
        }
    }
}

/// A node of the plan.
#[derive(Clone, Debug)]
struct PlanNode {
    /// The node it runs under (`None` for the top node).
    parent: Option<NodeId>,
    /// How it is started.
    launch: Launch,
    /// What it does.
    kind: Kind,
}

/// What the scheduled canceller cancels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    /// The task's handle (`JoinHandle::cancel`, `ScopedJoinHandle::cancel`).
    Task(NodeId),
    /// The scope itself (`Scope::cancel`).
    Scope(NodeId),
}

/// A tree with node numbers and distinct instants: what the oracle reads and the
/// interpreter runs.
struct Plan {
    /// In preorder; `nodes[0]` is the top node.
    nodes: Vec<PlanNode>,
    /// The scheduled cancels, earliest first.
    cancels: Vec<(Time, Target)>,
}

impl Plan {
    /// Numbers the nodes in preorder and replaces every raw time by its rank among all of
    /// the tree's times (ties broken by preorder), plus one: 1 ms, 2 ms, ... So no two timed
    /// events share an instant, none happens at 0 ms, and shrinking a raw time moves its
    /// event earlier without colliding with the others.
    fn new(tree: &Tree) -> Plan {
        let mut builder = PlanBuilder::default();
        builder.add(tree, None, Launch::Inline);
        let PlanBuilder { mut nodes, raw } = builder;
        let mut by_rank: Vec<usize> = (0..raw.len()).collect();
        by_rank.sort_by_key(|&slot| (raw[slot], slot));
        let mut instant = vec![0; raw.len()];
        for (rank, &slot) in by_rank.iter().enumerate() {
            instant[slot] = rank as Time + 1;
        }
        let fix = |slot: &mut Time| *slot = instant[*slot as usize];
        let mut cancels = Vec::new();
        for (id, node) in nodes.iter_mut().enumerate() {
            match &mut node.launch {
                Launch::Joined { cancel } | Launch::Member { cancel } => {
                    if let Some(at) = cancel {
                        fix(at);
                        cancels.push((*at, Target::Task(id)));
                    }
                }
                Launch::Inline | Launch::Detached | Launch::Body => {}
            }
            match &mut node.kind {
                Kind::Leaf { at, .. } => fix(at),
                Kind::Scope {
                    self_cancel: Some(at),
                    ..
                } => {
                    fix(at);
                    cancels.push((*at, Target::Scope(id)));
                }
                Kind::Timeout { deadline, .. } => fix(deadline),
                Kind::Spawn(_) | Kind::Scope { .. } | Kind::Shield(_) => {}
            }
        }
        cancels.sort();
        Plan { nodes, cancels }
    }

    /// Tasks the tree spawns: its nodes that run as tasks, plus the helper task of each
    /// channel and stubborn leaf.
    fn tasks(&self) -> usize {
        self.nodes
            .iter()
            .map(|node| usize::from(node.launch != Launch::Inline) + helpers(&node.kind))
            .sum()
    }

    /// Whether a timed event happens at `t` inside `id`'s subtree (its own handle's cancel
    /// comes from outside, so it does not count).
    fn has_timed_event_inside(&self, id: NodeId, t: Time) -> bool {
        let mut stack = vec![id];
        while let Some(node) = stack.pop() {
            let PlanNode { launch, kind, .. } = &self.nodes[node];
            let timed = match kind {
                Kind::Leaf { at, .. } => *at == t,
                Kind::Timeout { deadline, .. } => *deadline == t,
                Kind::Scope { self_cancel, .. } => *self_cancel == Some(t),
                Kind::Spawn(_) | Kind::Shield(_) => false,
            };
            if timed || (node != id && launch.cancel() == Some(t)) {
                return true;
            }
            stack.extend_from_slice(kind.children());
        }
        false
    }

    /// `id` and its ancestors whose tasks the test holds a handle to.
    fn tasks_above(&self, id: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        std::iter::successors(Some(id), |&node| self.nodes[node].parent)
            .filter(|&node| self.nodes[node].launch.has_handle())
    }

    /// The strict descendants of `id` whose tasks the test holds a handle to.
    fn tasks_below(&self, id: NodeId) -> Vec<NodeId> {
        let mut found = Vec::new();
        let mut stack = self.nodes[id].kind.children().to_vec();
        while let Some(node) = stack.pop() {
            if self.nodes[node].launch.has_handle() {
                found.push(node);
            }
            stack.extend_from_slice(self.nodes[node].kind.children());
        }
        found
    }

    fn write_node(&self, f: &mut fmt::Formatter<'_>, id: NodeId, depth: usize) -> fmt::Result {
        let node = &self.nodes[id];
        write!(f, "{:indent$}#{id} ", "", indent = 2 * depth)?;
        match node.launch {
            Launch::Inline => {}
            Launch::Joined { .. } => write!(f, "spawned ")?,
            Launch::Detached => write!(f, "detached ")?,
            Launch::Member { .. } => write!(f, "member ")?,
            Launch::Body => write!(f, "body: ")?,
        }
        match &node.kind {
            Kind::Leaf {
                action,
                at,
                cleanup_fails,
            } => {
                match action {
                    Action::Sleep => write!(f, "leaf: sleep until {at}ms")?,
                    Action::Yield(n) => write!(f, "leaf: sleep until {at}ms, yield x{n}")?,
                    Action::Channel(n) => write!(f, "leaf: receive {n} messages sent at {at}ms")?,
                    Action::Fail => write!(f, "leaf: fail at {at}ms")?,
                    Action::Panic => write!(f, "leaf: panic at {at}ms")?,
                    Action::Stubborn => write!(f, "leaf: ignore cancellation until {at}ms")?,
                }
                if *cleanup_fails {
                    write!(f, ", cleanup fails")?;
                }
            }
            Kind::Spawn(_) => write!(f, "spawn")?,
            Kind::Scope {
                supervise,
                self_cancel,
                ..
            } => {
                write!(f, "{}", if *supervise { "supervisor" } else { "scope" })?;
                if let Some(at) = self_cancel {
                    write!(f, ", cancels itself at {at}ms")?;
                }
            }
            Kind::Shield(_) => write!(f, "shield")?,
            Kind::Timeout { deadline, .. } => write!(f, "timeout at {deadline}ms")?,
        }
        if let Some(at) = node.launch.cancel() {
            write!(f, "; handle cancelled at {at}ms")?;
        }
        writeln!(f)?;
        for &child in node.kind.children() {
            self.write_node(f, child, depth + 1)?;
        }
        Ok(())
    }
}

/// How many helper tasks a node spawns besides its children.
fn helpers(kind: &Kind) -> usize {
    match kind {
        Kind::Leaf {
            action: Action::Channel(_) | Action::Stubborn,
            ..
        } => 1,
        _ => 0,
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_node(f, 0, 0)
    }
}

/// Builds a [`Plan`]: times are stored as slots into `raw` until [`Plan::new`] ranks them.
#[derive(Default)]
struct PlanBuilder {
    nodes: Vec<PlanNode>,
    raw: Vec<u16>,
}

impl PlanBuilder {
    fn slot(&mut self, raw: u16) -> Time {
        self.raw.push(raw);
        (self.raw.len() - 1) as Time
    }

    fn add(&mut self, tree: &Tree, parent: Option<NodeId>, launch: Launch) -> NodeId {
        // Numbered before its children (preorder); the kind is filled in below.
        let id = self.nodes.len();
        self.nodes.push(PlanNode {
            parent,
            launch,
            kind: Kind::Spawn(Vec::new()),
        });
        let kind = match tree {
            Tree::Leaf {
                action,
                at,
                cleanup_fails,
            } => Kind::Leaf {
                action: *action,
                at: self.slot(*at),
                cleanup_fails: *cleanup_fails,
            },
            Tree::Spawn(children) => Kind::Spawn(
                children
                    .iter()
                    .map(|child| {
                        // Only a leaf is detached: a detached task's panic then always
                        // happens at its own instant (see `oracle`).
                        let launch = if child.detached && matches!(child.tree, Tree::Leaf { .. }) {
                            Launch::Detached
                        } else {
                            Launch::Joined {
                                cancel: child.cancel.map(|raw| self.slot(raw)),
                            }
                        };
                        self.add(&child.tree, Some(id), launch)
                    })
                    .collect(),
            ),
            Tree::Scope {
                supervise,
                self_cancel,
                body,
                members,
            } => {
                let self_cancel = self_cancel.map(|raw| self.slot(raw));
                let mut ids = Vec::new();
                match body.as_deref() {
                    // A `Spawn` body would spawn its children straight into the scope's
                    // region, next to the members, where a detached panic would cancel them
                    // all; the oracle does not model that, so it runs as the first member.
                    Some(spawn @ Tree::Spawn(_)) => {
                        let member = Launch::Member { cancel: None };
                        ids.push(self.add(spawn, Some(id), member));
                    }
                    Some(body) => ids.push(self.add(body, Some(id), Launch::Body)),
                    None => {}
                }
                for member in members {
                    let cancel = member.cancel.map(|raw| self.slot(raw));
                    ids.push(self.add(&member.tree, Some(id), Launch::Member { cancel }));
                }
                Kind::Scope {
                    supervise: *supervise,
                    self_cancel,
                    members: ids,
                }
            }
            Tree::Shield(inner) => Kind::Shield(self.add(inner, Some(id), Launch::Inline)),
            Tree::Timeout { after, body } => Kind::Timeout {
                deadline: self.slot(*after),
                body: self.add(body, Some(id), Launch::Inline),
            },
        };
        self.nodes[id].kind = kind;
        id
    }
}

impl fmt::Debug for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plan = Plan::new(self);
        write!(
            f,
            "{} nodes, {} tasks\n{plan}",
            plan.nodes.len(),
            plan.tasks()
        )
    }
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "scheduler seed {}; {:?}", self.scheduler_seed, self.tree)
    }
}

// ---------------------------------------------------------------------------------------
// Generation.
// ---------------------------------------------------------------------------------------

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
                1 => (raw_time(), inner).prop_map(|(after, body)| Tree::Timeout {
                    after,
                    body: Box::new(body),
                }),
            ]
        })
        .boxed()
}

/// Up to `branch` children, some cancelled through their handle, some detached.
fn arb_children(tree: BoxedStrategy<Tree>, branch: u32) -> impl Strategy<Value = Vec<Child>> {
    let child = (
        tree,
        prop::option::weighted(0.15, raw_time()),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(tree, cancel, detached)| Child {
            tree,
            cancel,
            detached,
        });
    prop::collection::vec(child, 0..=branch as usize)
}

/// Mostly small trees (they run fast and shrink fast), some of tens to hundreds of tasks,
/// and some large ones: sampled, the three tiers give medians of about 5, 60 and 400 tasks,
/// the large tier reaching 1,400 tasks at its 90th percentile and ~2,000 at its 99th.
fn arb_case() -> impl Strategy<Value = Case> {
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

// ---------------------------------------------------------------------------------------
// What the nodes return.
// ---------------------------------------------------------------------------------------

/// The error type of every node (and of every scope): a cancellation, an injected failure,
/// or a combination of failures, each naming the node it came from.
#[derive(Clone, Debug)]
enum TreeError {
    /// Only the cancellation itself: filtered out by scopes (R14).
    Cancelled(Cancelled),
    /// A `Fail` leaf's error.
    Injected(NodeId),
    /// A leaf's cleanup failed.
    CleanupFailed(NodeId),
    /// A timeout node's deadline passed.
    Elapsed(NodeId),
    /// A `Spawn` node's joined children failed: their errors in child order.
    Joined(NodeId, Vec<TreeError>),
    /// A scope failed: `first` then `rest`, as `ScopeError::Failed` gave them.
    Scope(NodeId, Vec<TreeError>),
}

impl From<Cancelled> for TreeError {
    fn from(cancelled: Cancelled) -> Self {
        TreeError::Cancelled(cancelled)
    }
}

impl Cancellation for TreeError {
    fn as_cancelled(&self) -> Option<Cancelled> {
        match self {
            TreeError::Cancelled(cancelled) => Some(*cancelled),
            _ => None,
        }
    }
}

type NodeResult = Result<(), TreeError>;

/// The prefix of every injected panic's message; the panic hook stays quiet for these.
const INJECTED_PANIC: &str = "injected panic #";

/// The leaf an injected panic payload (or a report quoting one) came from.
fn injected_panic_in(text: &str) -> Option<NodeId> {
    let (_, after) = text.split_once(INJECTED_PANIC)?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn payload_text(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&'static str>().copied())
}

/// Keeps the default panic hook for every panic but the injected ones: thousands of
/// expected panics would bury a real failure's message.
fn silence_injected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let injected =
                payload_text(info.payload()).is_some_and(|t| t.starts_with(INJECTED_PANIC));
            if !injected {
                default(info);
            }
        }));
    });
}

// ---------------------------------------------------------------------------------------
// The oracle.
// ---------------------------------------------------------------------------------------

/// What must happen, computed from the plan alone.
///
/// The model (each point is a rule of SPEC §3 under the timing of [`Plan::new`]):
///
/// - A node's fate depends only on the earliest cancellation that reaches it
///   ([`CancelAt`]): from above (a cancelled ancestor region, R5), from its own handle, or
///   from the region it runs in failing. A shield passes nothing down (R11); a timeout adds
///   its deadline (R16).
/// - A cancellation at instant `T` changes only what happens after `T` in the subtree it
///   reaches. Whatever happens at `T` itself in that subtree is its cause: no two timed
///   events share an instant, and cleanups take no time.
/// - A fail-fast scope is cancelled (reason `Failure`) by its first member failure or panic
///   that comes before any other cancellation of its region (R13, R17); a supervisor is not
///   (R18). A detached leaf's panic cancels the region it was spawned in (R17), which is
///   exactly its `Spawn` node's children. Either way, the members are evaluated again under
///   the new cancellation: it cannot change anything before its instant.
/// - Same-instant reasons: the timed event (an explicit cancel, a deadline) marks its
///   subtree before any failure it causes can, so it wins ties (R5: the first mark stays).
/// - A scope reads its region's mark as it returns (R15). A cancel at that very instant was
///   there first, unless a timed event inside the scope happened then: the only way out of
///   a scope is its result, so such a cancel is a consequence of the scope's return.
/// - A scope hears of its members' failures in the order they happen; at one instant, the
///   failure that cancelled the scope comes before those its cancel caused, and failures
///   caused together (one cancel reaching several members) come in any order.
mod oracle {
    use super::*;

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
    }

    impl Out {
        /// A real failure: an error that is not only a cancellation, or a panic.
        fn failed(&self) -> bool {
            match self {
                Out::Ok | Out::Err(Expect::Cancelled(_)) => false,
                Out::Err(_) | Out::Panic(_) => true,
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
                    let own = self.plan.nodes[child]
                        .launch
                        .cancel()
                        .map(|at| CancelAt::new(at, CancelReason::Explicit));
                    self.eval(child, earliest(cancel, own))
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
                    joined.push(&eval.out);
                }
            }
            // As `combine_joined` does it: the first panic in child order is re-raised;
            // else the real errors in child order; else the first cancellation.
            let out = if let Some(leaves) = joined.iter().find_map(|out| match out {
                Out::Panic(leaves) => Some(leaves),
                _ => None,
            }) {
                Out::Panic(leaves.clone())
            } else {
                let errors: Vec<Expect> = joined
                    .iter()
                    .filter(|out| out.failed())
                    .map(|out| match out {
                        Out::Err(error) => error.clone(),
                        _ => unreachable!("panics were handled above"),
                    })
                    .collect();
                let cancelled = joined.iter().find_map(|out| match out {
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
                // R15: cancelled from outside reports `Cancelled`; a scope that cancelled
                // itself returns normally. R15 leaves open a scope that cancels itself after
                // an enclosing region did; treeloop lets the self-cancel win, and so does
                // the oracle.
                let self_cancelled = self_cancel.is_some_and(|at| at <= end);
                // The scope reads its region's mark as it returns. A cancel at that very
                // instant came first, unless a timed event inside the scope happened then:
                // such a cancel can only be a consequence of the scope's return.
                let seen = |c: &CancelAt| {
                    c.at < end || (c.at == end && !self.plan.has_timed_event_inside(id, end))
                };
                match region.filter(seen) {
                    Some(c) if !self_cancelled => Out::Err(Expect::Cancelled(c.reason)),
                    _ => Out::Ok,
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
            // R16: once the deadline passed, `Elapsed`, whatever the body returned; a panic
            // unwinds through the timeout.
            let out = match eval.out {
                Out::Panic(_) => eval.out,
                _ if eval.at >= deadline => Out::Err(Expect::Elapsed(id)),
                out => out,
            };
            Eval { out, ..eval }
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
            | (TreeError::Elapsed(a), Expect::Elapsed(b)) => a == b,
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
                let found =
                    (0..head.len()).find(|&i| !taken[i] && error_matches(&head[i], expected));
                match found {
                    Some(i) => taken[i] = true,
                    None => return false,
                }
            }
            rest = tail;
        }
        rest.is_empty()
    }
}

use oracle::{BlockOn, Expect, Expected, Out, Prediction};

// ---------------------------------------------------------------------------------------
// The interpreter: runs a plan on treeloop and records what happens.
// ---------------------------------------------------------------------------------------

/// How a node's future ended, as recorded.
#[derive(Clone, Debug)]
enum Returned {
    Value(NodeResult),
    Panicked,
}

/// Counters and records, one slot per node.
#[derive(Default)]
struct Log {
    /// Node futures created and dropped.
    created: Vec<u32>,
    dropped: Vec<u32>,
    /// Helper futures (channel senders, stubborn timers) created and dropped, per leaf.
    helpers_created: Vec<u32>,
    helpers_dropped: Vec<u32>,
    /// A leaf's synchronous cleanup (a drop guard; runs even when it panics).
    finally_ran: Vec<u32>,
    /// A leaf's awaiting cleanup (inside a shield; skipped by a panic).
    cleanup_ran: Vec<u32>,
    /// When and how each node's future returned.
    returned: Vec<Option<(Time, Returned)>>,
    /// Panics a `Spawn` node took from a join and did not re-raise.
    absorbed_panics: Vec<NodeId>,
    /// Broken invariants seen while running.
    violations: Vec<String>,
}

/// The task handles the test keeps: to cancel on schedule, and to ask whether finished.
trait Control {
    fn cancel(&self);
    fn is_finished(&self) -> bool;
}

/// A `Spawn` child: joined through the `RefCell` (borrowed only while polling the handle,
/// which runs no user code), so it can be cancelled and watched meanwhile.
struct JoinedTask(RefCell<JoinHandle<NodeResult>>);

impl Control for JoinedTask {
    fn cancel(&self) {
        self.0.borrow().cancel();
    }
    fn is_finished(&self) -> bool {
        self.0.borrow().is_finished()
    }
}

struct MemberTask(ScopedJoinHandle<()>);

impl Control for MemberTask {
    fn cancel(&self) {
        self.0.cancel();
    }
    fn is_finished(&self) -> bool {
        self.0.is_finished()
    }
}

/// Shared by every future of one run.
struct Harness {
    plan: Rc<Plan>,
    /// The root's start: virtual time zero.
    origin: Cell<Option<Instant>>,
    /// Handles by node id, for nodes with [`Launch::has_handle`].
    tasks: RefCell<Vec<Option<Rc<dyn Control>>>>,
    /// Scope handles by node id, for the scheduled self-cancels.
    scopes: RefCell<Vec<Option<Scope<TreeError>>>>,
    log: RefCell<Log>,
}

impl Harness {
    fn new(plan: Rc<Plan>) -> Rc<Harness> {
        let n = plan.nodes.len();
        Rc::new(Harness {
            plan,
            origin: Cell::new(None),
            tasks: RefCell::new(vec![None; n]),
            scopes: RefCell::new(vec![None; n]),
            log: RefCell::new(Log {
                created: vec![0; n],
                dropped: vec![0; n],
                helpers_created: vec![0; n],
                helpers_dropped: vec![0; n],
                finally_ran: vec![0; n],
                cleanup_ran: vec![0; n],
                returned: vec![None; n],
                ..Log::default()
            }),
        })
    }

    fn origin(&self) -> Instant {
        self.origin.get().expect("the root sets the origin first")
    }

    /// The instant `at` ms after the origin.
    fn instant(&self, at: Time) -> Instant {
        self.origin() + Duration::from_millis(at)
    }

    fn now(&self) -> Time {
        let elapsed = Instant::now().duration_since(self.origin());
        Time::try_from(elapsed.as_millis()).expect("virtual time fits")
    }

    fn violation(&self, text: String) {
        self.log.borrow_mut().violations.push(text);
    }

    fn task(&self, id: NodeId) -> Rc<dyn Control> {
        self.tasks.borrow()[id]
            .clone()
            .unwrap_or_else(|| panic!("harness: no handle registered for #{id}"))
    }

    /// Whether the task of `id` has finished (tasks without a kept handle: never asked).
    fn finished(&self, id: NodeId) -> bool {
        let control = self.tasks.borrow()[id].clone();
        control.is_some_and(|control| control.is_finished())
    }

    /// R2: a future below a task is dropped before the task finishes.
    fn check_tasks_above_alive(&self, id: NodeId, what: &str) {
        for task in self.plan.tasks_above(id) {
            if self.finished(task) {
                self.violation(format!(
                    "task #{task} finished before the {what} of #{id} was dropped"
                ));
            }
        }
    }

    fn returned(&self, id: NodeId, returned: Returned) {
        let now = self.now();
        let previous = self.log.borrow_mut().returned[id].replace((now, returned));
        if previous.is_some() {
            self.violation(format!("#{id} returned twice"));
        }
        // R2, R4, R16: a node returns only after every task below it has finished.
        for task in self.plan.tasks_below(id) {
            if !self.finished(task) {
                self.violation(format!(
                    "#{id} returned at {now}ms before its descendant task #{task} finished"
                ));
            }
        }
    }
}

/// A node's future: counts its creation and drop, records when and how it returned, and
/// checks on drop that the tasks above it are still alive.
struct NodeFuture {
    harness: Rc<Harness>,
    id: NodeId,
    inner: Pin<Box<dyn Future<Output = NodeResult>>>,
}

impl Future for NodeFuture {
    type Output = NodeResult;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<NodeResult> {
        let this = &mut *self;
        match panic::catch_unwind(AssertUnwindSafe(|| this.inner.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(result)) => {
                this.harness
                    .returned(this.id, Returned::Value(result.clone()));
                Poll::Ready(result)
            }
            Err(payload) => {
                this.harness.returned(this.id, Returned::Panicked);
                panic::resume_unwind(payload)
            }
        }
    }
}

impl Drop for NodeFuture {
    fn drop(&mut self) {
        self.harness.log.borrow_mut().dropped[self.id] += 1;
        self.harness.check_tasks_above_alive(self.id, "future");
    }
}

/// A leaf's helper task's future: counted, and checked like a node's.
struct HelperFuture<F> {
    harness: Rc<Harness>,
    leaf: NodeId,
    inner: Pin<Box<F>>,
}

fn helper<F: Future>(harness: &Rc<Harness>, leaf: NodeId, inner: F) -> HelperFuture<F> {
    harness.log.borrow_mut().helpers_created[leaf] += 1;
    HelperFuture {
        harness: harness.clone(),
        leaf,
        inner: Box::pin(inner),
    }
}

impl<F: Future> Future for HelperFuture<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<F> Drop for HelperFuture<F> {
    fn drop(&mut self) {
        self.harness.log.borrow_mut().helpers_dropped[self.leaf] += 1;
        self.harness
            .check_tasks_above_alive(self.leaf, "helper future");
    }
}

/// A leaf's synchronous cleanup: a drop guard, which runs however the leaf ends.
struct Finally {
    harness: Rc<Harness>,
    leaf: NodeId,
}

impl Drop for Finally {
    fn drop(&mut self) {
        self.harness.log.borrow_mut().finally_ran[self.leaf] += 1;
    }
}

/// A one-shot signal that knows nothing of treeloop: waiting on it is a foreign future,
/// which cancellation cannot interrupt (R9).
#[derive(Clone, Default)]
struct Gate(Rc<GateState>);

#[derive(Default)]
struct GateState {
    open: Cell<bool>,
    waiter: RefCell<Option<Waker>>,
}

impl Gate {
    fn open(&self) {
        self.0.open.set(true);
        let waiter = self.0.waiter.borrow_mut().take();
        if let Some(waker) = waiter {
            waker.wake();
        }
    }

    async fn wait(&self) {
        poll_fn(|cx| {
            if self.0.open.get() {
                Poll::Ready(())
            } else {
                *self.0.waiter.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
    }
}

/// Opens a gate once every tracked future has been dropped: how a `Spawn` node waits for
/// detached children it has no handle to.
#[derive(Clone)]
struct Countdown(Rc<(Cell<usize>, Gate)>);

impl Countdown {
    fn new(count: usize) -> Countdown {
        let countdown = Countdown(Rc::new((Cell::new(count), Gate::default())));
        if count == 0 {
            countdown.0.1.open();
        }
        countdown
    }

    fn track<F: Future>(&self, inner: F) -> Tracked<F> {
        Tracked {
            inner: Box::pin(inner),
            countdown: self.clone(),
        }
    }

    async fn wait(&self) {
        self.0.1.wait().await;
    }
}

struct Tracked<F> {
    inner: Pin<Box<F>>,
    countdown: Countdown,
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<F> Drop for Tracked<F> {
    fn drop(&mut self) {
        let (left, gate) = &*self.countdown.0;
        left.set(left.get() - 1);
        if left.get() == 0 {
            gate.open();
        }
    }
}

/// The future of node `id`.
fn run(harness: &Rc<Harness>, id: NodeId) -> NodeFuture {
    let h = harness.clone();
    let inner: Pin<Box<dyn Future<Output = NodeResult>>> = match h.plan.nodes[id].kind.clone() {
        Kind::Leaf {
            action,
            at,
            cleanup_fails,
        } => Box::pin(leaf_node(h.clone(), id, action, at, cleanup_fails)),
        Kind::Spawn(children) => Box::pin(spawn_node(h.clone(), id, children)),
        Kind::Scope {
            supervise, members, ..
        } => Box::pin(scope_node(h.clone(), id, supervise, members)),
        Kind::Shield(inner) => Box::pin(shield(run(&h, inner))),
        Kind::Timeout { deadline, body } => {
            let deadline = h.instant(deadline);
            let body = run(&h, body);
            Box::pin(async move {
                timeout_at(deadline, body)
                    .await
                    .unwrap_or(Err(TreeError::Elapsed(id)))
            })
        }
    };
    h.log.borrow_mut().created[id] += 1;
    NodeFuture {
        harness: h,
        id,
        inner,
    }
}

/// A leaf: its action, then its cleanups: a drop guard, and an awaiting one in a shield,
/// which may fail on purpose.
async fn leaf_node(
    h: Rc<Harness>,
    id: NodeId,
    action: Action,
    at: Time,
    cleanup_fails: bool,
) -> NodeResult {
    let _finally = Finally {
        harness: h.clone(),
        leaf: id,
    };
    let until = h.instant(at);
    let acted: NodeResult = async {
        match action {
            Action::Sleep => sleep_until(until).await?,
            Action::Yield(times) => {
                sleep_until(until).await?;
                for _ in 0..times {
                    yield_now().await?;
                }
            }
            Action::Channel(count) => receive_messages(&h, id, until, count).await?,
            Action::Fail => {
                sleep_until(until).await?;
                return Err(TreeError::Injected(id));
            }
            Action::Panic => {
                sleep_until(until).await?;
                panic::panic_any(format!("{INJECTED_PANIC}{id}"));
            }
            Action::Stubborn => {
                ignore_cancellation_until(&h, id, until).await;
                checkpoint().await?;
            }
        }
        Ok(())
    }
    .await;
    // Cleanup that awaits: in a shield, so it runs to its end even when cancelled (R11).
    if let Err(cancelled) = shield(yield_now()).await {
        h.violation(format!(
            "#{id}: a shielded await in cleanup failed: {cancelled}"
        ));
    }
    h.log.borrow_mut().cleanup_ran[id] += 1;
    if cleanup_fails {
        return Err(TreeError::CleanupFailed(id));
    }
    acted
}

/// Receives `count` messages from a helper task that starts sending at `until`; a cancelled
/// receive ends it early. The helper is a child of the region the leaf runs in, so the same
/// cancellation reaches it.
async fn receive_messages(
    h: &Rc<Harness>,
    id: NodeId,
    until: Instant,
    count: u8,
) -> Result<(), Cancelled> {
    let (tx, mut rx) = mpsc::bounded(1);
    let sender = spawn(helper(h, id, async move {
        if sleep_until(until).await.is_ok() {
            for message in 0..count {
                if tx.send(message).await.is_err() {
                    break;
                }
            }
        }
    }));
    let mut received = Ok(());
    for expected in 0..count {
        match rx.recv().await {
            Ok(message) if message == expected => {}
            Ok(message) => h.violation(format!("#{id} received {message}, expected {expected}")),
            Err(RecvError::Cancelled(cancelled)) => {
                received = Err(cancelled);
                break;
            }
            Err(RecvError::Closed) => {
                h.violation(format!(
                    "#{id}: the channel closed before message {expected}"
                ));
                break;
            }
        }
    }
    drop(rx);
    if let Err(err) = shield(sender).await {
        h.violation(format!("#{id}: joining the sender failed: {err}"));
    }
    received
}

/// Waits until `until` on a foreign future (a [`Gate`] opened by a shielded timer task):
/// cancellation wakes the task (R9) but cannot end the wait.
async fn ignore_cancellation_until(h: &Rc<Harness>, id: NodeId, until: Instant) {
    let gate = Gate::default();
    let opener = gate.clone();
    let timer = spawn(helper(
        h,
        id,
        shield(async move {
            let slept = sleep_until(until).await;
            opener.open();
            slept
        }),
    ));
    gate.wait().await;
    match shield(timer).await {
        Ok(Ok(())) => {}
        Ok(Err(cancelled)) => h.violation(format!("#{id}: a shielded sleep failed: {cancelled}")),
        Err(err) => h.violation(format!("#{id}: joining the timer failed: {err}")),
    }
}

/// Spawns the children (joined ones keep their handle in the registry; detached ones drop
/// it at once), joins the joined ones in a shield, waits for the detached ones to be gone,
/// and combines the results (see [`combine_joined`]).
async fn spawn_node(h: Rc<Harness>, id: NodeId, children: Vec<NodeId>) -> NodeResult {
    let detached = |child: NodeId| h.plan.nodes[child].launch == Launch::Detached;
    let all_gone = Countdown::new(children.iter().filter(|&&c| detached(c)).count());
    let mut joined = Vec::new();
    for &child in &children {
        if detached(child) {
            drop(spawn(all_gone.track(run(&h, child))));
        } else {
            let task = Rc::new(JoinedTask(RefCell::new(spawn(run(&h, child)))));
            h.tasks.borrow_mut()[child] = Some(task.clone());
            joined.push((child, task));
        }
    }
    let mut outcomes = Vec::new();
    for (child, task) in joined {
        // A join in a possibly cancelled region: shielded, so it waits for the outcome.
        let outcome = shield(poll_fn(|cx| Pin::new(&mut *task.0.borrow_mut()).poll(cx))).await;
        outcomes.push((child, outcome));
    }
    all_gone.wait().await;
    combine_joined(&h, id, outcomes)
}

/// The first panic (in child order) is re-raised, the later ones are kept as absorbed;
/// otherwise the real errors in child order; otherwise the first cancellation.
fn combine_joined(
    h: &Harness,
    id: NodeId,
    outcomes: Vec<(NodeId, Result<NodeResult, JoinError>)>,
) -> NodeResult {
    let mut first_panic = None;
    let mut errors = Vec::new();
    let mut cancelled = None;
    for (child, outcome) in outcomes {
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(TreeError::Cancelled(c))) => {
                cancelled.get_or_insert(c);
            }
            Ok(Err(error)) => errors.push(error),
            Err(err) if err.is_panic() => {
                let payload = err.into_panic();
                if first_panic.is_none() {
                    first_panic = Some(payload);
                } else {
                    let leaf = payload_text(&*payload).and_then(injected_panic_in);
                    match leaf {
                        Some(leaf) => h.log.borrow_mut().absorbed_panics.push(leaf),
                        None => h.violation(format!("#{child} panicked with a foreign payload")),
                    }
                }
            }
            Err(err) => h.violation(format!(
                "#{id}: the shielded join of #{child} failed: {err}"
            )),
        }
    }
    if let Some(payload) = first_panic {
        panic::resume_unwind(payload);
    }
    match (errors.is_empty(), cancelled) {
        (false, _) => Err(TreeError::Joined(id, errors)),
        (true, Some(c)) => Err(TreeError::Cancelled(c)),
        (true, None) => Ok(()),
    }
}

/// A `scope` or `supervisor` whose body spawns the members (registering their handles and
/// its own, for the scheduled cancels), then runs the body node, if any, in the scope's
/// region. A `ScopeError` becomes the node's `TreeError`.
async fn scope_node(
    h: Rc<Harness>,
    id: NodeId,
    supervise: bool,
    members: Vec<NodeId>,
) -> NodeResult {
    let body = |s: Scope<TreeError>| {
        let h = h.clone();
        async move {
            h.scopes.borrow_mut()[id] = Some(s.clone());
            let mut body = None;
            for member in members {
                if h.plan.nodes[member].launch == Launch::Body {
                    body = Some(member);
                    continue;
                }
                let handle = s
                    .spawn(run(&h, member))
                    .expect("a scope is open while its body runs");
                h.tasks.borrow_mut()[member] = Some(Rc::new(MemberTask(handle)));
            }
            match body {
                Some(body) => run(&h, body).await,
                None => Ok(()),
            }
        }
    };
    let result = if supervise {
        supervisor(body).await
    } else {
        scope(body).await
    };
    match result {
        Ok(_) => Ok(()),
        Err(ScopeError::Failed { first, rest }) => Err(TreeError::Scope(
            id,
            std::iter::once(first).chain(rest).collect(),
        )),
        Err(ScopeError::Cancelled(cancelled)) => Err(TreeError::Cancelled(cancelled)),
    }
}

/// The root: sets the origin, starts the scheduled canceller (in a shield, so a cancelled
/// root cannot stop it), runs the top node, then joins the canceller.
async fn root(h: Rc<Harness>) -> NodeResult {
    h.origin.set(Some(Instant::now()));
    let canceller = spawn(shield(cancel_on_schedule(h.clone())));
    let result = run(&h, 0).await;
    if let Err(err) = shield(canceller).await {
        h.violation(format!("joining the canceller failed: {err}"));
    }
    result
}

/// Sleeps to each scheduled cancel's instant and cancels its target.
async fn cancel_on_schedule(h: Rc<Harness>) {
    for &(at, target) in &h.plan.cancels {
        if let Err(cancelled) = sleep_until(h.instant(at)).await {
            h.violation(format!("the shielded canceller was cancelled: {cancelled}"));
        }
        match target {
            Target::Task(id) => h.task(id).cancel(),
            Target::Scope(id) => {
                let scope = h.scopes.borrow()[id].clone();
                scope
                    .expect("the scope's body registers it at 0 ms")
                    .cancel();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Running a case and checking it.
// ---------------------------------------------------------------------------------------

/// The order the deterministic scheduler runs ready tasks in.
#[derive(Clone, Copy, Debug)]
enum Order {
    Fifo,
    Random(u64),
}

/// A deterministic runtime (virtual time; a deadlock is reported, not hung on) whose
/// reports go to `reports`.
fn runtime(order: Order, reports: &Rc<RefCell<Vec<String>>>) -> Runtime {
    let reports = reports.clone();
    let builder = Builder::new()
        .start_paused(true)
        .report_sink(move |report| reports.borrow_mut().push(report.to_string()));
    let builder = match order {
        Order::Fifo => builder.seed(0),
        Order::Random(seed) => builder.seed(seed).strategy(treeloop::Strategy::Random),
    };
    builder.build().expect("runtime")
}

/// What one run of a plan left behind.
struct Run {
    harness: Rc<Harness>,
    /// `block_on`'s value, or the panic it re-raised.
    ended: std::thread::Result<NodeResult>,
    /// Everything the runtime reported.
    reports: Vec<String>,
    /// `Runtime::live_tasks()` after `block_on`.
    live_tasks: usize,
}

/// Runs `plan` on a fresh runtime, catching the panic `block_on` may re-raise.
fn run_plan(plan: &Rc<Plan>, order: Order) -> Run {
    let harness = Harness::new(plan.clone());
    let reports = Rc::new(RefCell::new(Vec::new()));
    let rt = runtime(order, &reports);
    let ended = panic::catch_unwind(AssertUnwindSafe(|| rt.block_on(root(harness.clone()))));
    let live_tasks = rt.live_tasks();
    drop(rt);
    let reports = reports.take();
    Run {
        harness,
        ended,
        reports,
        live_tasks,
    }
}

/// Every way `run` broke the oracle's expectations or an invariant.
fn problems(plan: &Plan, expected: &Expected, run: &Run) -> Vec<String> {
    let Run {
        harness,
        ended,
        reports,
        live_tasks,
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
            let panicked = matches!(out, Out::Panic(_));
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
    if *live_tasks != 0 {
        problems.push(format!(
            "{live_tasks} tree nodes still alive after block_on"
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

fn check_case(case: &Case, order: Order) -> Result<(), TestCaseError> {
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

// ---------------------------------------------------------------------------------------
// The property tests.
// ---------------------------------------------------------------------------------------

/// Cases per property test in the default run.
const DEFAULT_CASES: u32 = 400;

/// The default run's seed; a long run draws its own unless `TREELOOP_TORTURE_SEED` is set.
const DEFAULT_SEED: u64 = 0x5eed_7ee5;

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a number")),
    )
}

/// 32 seed bytes for proptest's ChaCha generator, from one number.
fn proptest_rng(seed: u64) -> TestRng {
    let mut bytes = [0u8; 32];
    let mut state = seed;
    for chunk in bytes.chunks_mut(8) {
        // SplitMix64, to spread one number over the whole seed.
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

/// Runs the property over `TREELOOP_TORTURE_CASES` (default [`DEFAULT_CASES`]) generated
/// cases; a failure shrinks to a minimal tree and panics with it and the seed.
fn torture(test: &str, stream: u64, order: fn(&Case) -> Order) {
    silence_injected_panics();
    let long_run = env_number("TREELOOP_TORTURE_CASES");
    let cases = long_run.map_or(DEFAULT_CASES, |n| {
        u32::try_from(n).expect("case count fits u32")
    });
    let seed = env_number("TREELOOP_TORTURE_SEED").unwrap_or_else(|| match long_run {
        None => DEFAULT_SEED,
        Some(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    });
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, proptest_rng(seed ^ stream));
    let tried = Cell::new(0usize);
    let biggest = Cell::new(0usize);
    let started = std::time::Instant::now();
    let result = runner.run(&arb_case(), |case| {
        tried.set(tried.get() + 1);
        biggest.set(biggest.get().max(Plan::new(&case.tree).tasks()));
        check_case(&case, order(&case))
    });
    match result {
        Ok(()) => eprintln!(
            "{test}: {cases} cases passed in {:.1?} (seed {seed}; largest tree: {} tasks)",
            started.elapsed(),
            biggest.get()
        ),
        Err(TestError::Fail(why, case)) => panic!(
            "{test} failed (after {} runs, shrinking included).\n{why}\n\nminimal case: {case:?}\n\
             replay: TREELOOP_TORTURE_SEED={seed} TREELOOP_TORTURE_CASES={cases} \
             cargo test --test torture_trees {test}",
            tried.get()
        ),
        Err(TestError::Abort(why)) => panic!("{test} aborted: {why} (seed {seed})"),
    }
}

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

/// A leaf. In these trees raw times are distinct and run 1, 2, 3, ..., so ranking leaves
/// them as they are: `at` is the instant in ms.
fn leaf(action: Action, at: u16) -> Tree {
    Tree::Leaf {
        action,
        at,
        cleanup_fails: false,
    }
}

fn with_failing_cleanup(tree: Tree) -> Tree {
    match tree {
        Tree::Leaf { action, at, .. } => Tree::Leaf {
            action,
            at,
            cleanup_fails: true,
        },
        other => other,
    }
}

fn child(tree: Tree) -> Child {
    Child {
        tree,
        cancel: None,
        detached: false,
    }
}

fn cancelled_at(at: u16, tree: Tree) -> Child {
    Child {
        cancel: Some(at),
        ..child(tree)
    }
}

fn detached(tree: Tree) -> Child {
    Child {
        detached: true,
        ..child(tree)
    }
}

fn fail_fast(members: Vec<Child>) -> Tree {
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
fn assert_hand_checked(tree: Tree, nodes: &[(NodeId, Time, Out)], block_on: BlockOn) -> Vec<Run> {
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
            (1, 3, Out::Err(Expect::Elapsed(1))),
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
