//! The description of a tree, as generated ([`Tree`], [`Case`]) and as run ([`Plan`]), and
//! how it prints: a failing case shows as its plan, one node a line.
//!
//! Nodes are numbered in preorder (the top node is #0), and every timed event of a plan has
//! an instant of its own (see [`Plan::new`]): the oracle relies on both.

use std::fmt;

/// Virtual milliseconds since the run began.
pub type Time = u64;

/// A node's number: its position in a preorder walk of the tree (the top node is #0).
pub type NodeId = usize;

/// What a leaf does once its time has come (every leaf first sleeps until then, except
/// `Stubborn`, which ignores cancellation until then).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
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
pub enum Tree {
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
    /// `timeout(after, body)`; `after == 0` is `timeout(Duration::ZERO, body)` where
    /// [`Plan::new`] allows it (else it counts as the earliest raw time).
    Timeout { after: u16, body: Box<Tree> },
}

/// A child of a `Spawn` or a member of a `Scope`.
#[derive(Clone, Debug)]
pub struct Child {
    pub tree: Tree,
    /// When its handle is cancelled, if ever.
    pub cancel: Option<u16>,
    /// A leaf spawned with its `JoinHandle` dropped at once (only under a `Spawn`).
    pub detached: bool,
    /// Its handle is aborted (`JoinHandle::abort`, R20) rather than cancelled at `cancel`
    /// (only a leaf or a `Spawn` node under a `Spawn`; see [`Launch::Joined`]).
    pub abort: bool,
    /// Spawned only at this time, into a region that may be cancelled by then (R8; only a
    /// leaf under a `Spawn` that is not itself aborted; see [`Launch::Delayed`]).
    pub delay: Option<u16>,
}

/// One generated case: a tree and the seed of its randomised schedule.
#[derive(Clone)]
pub struct Case {
    pub tree: Tree,
    pub scheduler_seed: u64,
}

/// How a node is started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launch {
    /// Awaited in place by its parent (a shield's or timeout's body; the top node).
    Inline,
    /// A task spawned by a `Spawn` node, which keeps the handle and joins it. With `abort`,
    /// the handle is aborted at `cancel` instead: its subtree is cancelled, and its future
    /// (a leaf's or a `Spawn` node's: neither has a node inline below it) is dropped at its
    /// next poll unless it returned already; the task finishes when its children have.
    Joined { cancel: Option<Time>, abort: bool },
    /// A leaf task spawned by a `Spawn` node, its handle dropped at once.
    Detached,
    /// A leaf task that a `Spawn` node spawns at `at` (before the leaf's own time), then
    /// joins like a `Joined` one. Its handle is never cancelled; a cancellation that reached
    /// the region before `at` is seen at its first await point, at `at` (R8).
    Delayed { at: Time },
    /// A scope member.
    Member { cancel: Option<Time> },
    /// A scope's body: awaited in place inside the scope's region.
    Body,
}

impl Launch {
    /// When the node's handle is cancelled, if ever.
    pub fn cancel(self) -> Option<Time> {
        match self {
            Launch::Joined { cancel, .. } | Launch::Member { cancel } => cancel,
            Launch::Inline | Launch::Detached | Launch::Delayed { .. } | Launch::Body => None,
        }
    }

    /// When the node's task is spawned, if later than 0 ms.
    pub fn delay(self) -> Option<Time> {
        match self {
            Launch::Delayed { at } => Some(at),
            _ => None,
        }
    }

    /// When the node's handle is aborted, if ever.
    pub fn abort(self) -> Option<Time> {
        match self {
            Launch::Joined {
                cancel,
                abort: true,
            } => cancel,
            _ => None,
        }
    }

    /// Whether the test keeps a handle to the node's task.
    fn has_handle(self) -> bool {
        matches!(
            self,
            Launch::Joined { .. } | Launch::Delayed { .. } | Launch::Member { .. }
        )
    }
}

/// What a node of the plan does: [`Tree`] with node numbers for children and instants for
/// times.
#[derive(Clone, Debug)]
pub enum Kind {
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
    /// A deadline of 0 ms is `timeout(Duration::ZERO, body)`.
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
pub struct PlanNode {
    /// The node it runs under (`None` for the top node).
    parent: Option<NodeId>,
    /// How it is started.
    pub launch: Launch,
    /// What it does.
    pub kind: Kind,
}

/// What the scheduled canceller cancels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// The task's handle (`JoinHandle::cancel`, `ScopedJoinHandle::cancel`).
    Task(NodeId),
    /// The scope itself (`Scope::cancel`).
    Scope(NodeId),
}

/// A tree with node numbers and distinct instants: what the oracle reads and the
/// interpreter runs.
pub struct Plan {
    /// In preorder; `nodes[0]` is the top node.
    pub nodes: Vec<PlanNode>,
    /// The scheduled cancels, earliest first.
    pub cancels: Vec<(Time, Target)>,
}

impl Plan {
    /// Numbers the nodes in preorder and replaces every raw time by its rank among all of
    /// the tree's times (ties broken by preorder), plus one: 1 ms, 2 ms, ... So no two timed
    /// events share an instant, and shrinking a raw time moves its event earlier without
    /// colliding with the others.
    ///
    /// The one exception is a zero timeout, whose deadline is 0 ms: it cancels its body
    /// before its first poll. At most one per tree (the first in preorder) keeps 0 ms, and
    /// only around a leaf, and only in a tree where every scope has a leaf below it: a
    /// scope without one ends at 0 ms too, and whether it saw a cancellation caused at that
    /// instant would be up to the scheduler. So 0 ms still has one timed event at most.
    pub fn new(tree: &Tree) -> Plan {
        let mut builder = PlanBuilder {
            zero_allowed: !has_leafless_scope(tree),
            ..PlanBuilder::default()
        };
        builder.add(tree, None, Launch::Inline);
        let PlanBuilder { mut nodes, raw, .. } = builder;
        let mut by_rank: Vec<usize> = (0..raw.len()).collect();
        by_rank.sort_by_key(|&slot| (raw[slot], slot));
        let zeros = raw.iter().filter(|&&raw| raw == 0).count();
        let mut instant = vec![0; raw.len()];
        for (rank, &slot) in by_rank.iter().enumerate().skip(zeros) {
            instant[slot] = (rank - zeros) as Time + 1;
        }
        let fix = |slot: &mut Time| *slot = instant[*slot as usize];
        let mut cancels = Vec::new();
        for (id, node) in nodes.iter_mut().enumerate() {
            match &mut node.launch {
                Launch::Joined { cancel, .. } | Launch::Member { cancel } => {
                    if let Some(at) = cancel {
                        fix(at);
                        cancels.push((*at, Target::Task(id)));
                    }
                }
                Launch::Delayed { at } => fix(at),
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
    pub fn tasks(&self) -> usize {
        self.nodes
            .iter()
            .map(|node| usize::from(node.launch != Launch::Inline) + helpers(&node.kind))
            .sum()
    }

    /// Whether a timed event happens at `t` inside `id`'s subtree (its own handle's cancel
    /// comes from outside, so it does not count).
    pub fn has_timed_event_inside(&self, id: NodeId, t: Time) -> bool {
        let mut stack = vec![id];
        while let Some(node) = stack.pop() {
            let PlanNode { launch, kind, .. } = &self.nodes[node];
            let timed = match kind {
                Kind::Leaf { at, .. } => *at == t,
                Kind::Timeout { deadline, .. } => *deadline == t,
                Kind::Scope { self_cancel, .. } => *self_cancel == Some(t),
                Kind::Spawn(_) | Kind::Shield(_) => false,
            };
            let launched = launch.cancel() == Some(t) || launch.delay() == Some(t);
            if timed || (node != id && launched) {
                return true;
            }
            stack.extend_from_slice(kind.children());
        }
        false
    }

    /// `id` and its ancestors whose tasks the test holds a handle to.
    pub fn tasks_above(&self, id: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        std::iter::successors(Some(id), |&node| self.nodes[node].parent)
            .filter(|&node| self.nodes[node].launch.has_handle())
    }

    /// The strict descendants of `id` whose tasks the test holds a handle to.
    pub fn tasks_below(&self, id: NodeId) -> Vec<NodeId> {
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
            Launch::Delayed { at } => write!(f, "spawned at {at}ms: ")?,
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
            Kind::Timeout { deadline: 0, .. } => write!(f, "timeout(Duration::ZERO)")?,
            Kind::Timeout { deadline, .. } => write!(f, "timeout at {deadline}ms")?,
        }
        if let Some(at) = node.launch.abort() {
            write!(f, "; handle aborted at {at}ms")?;
        } else if let Some(at) = node.launch.cancel() {
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
pub fn helpers(kind: &Kind) -> usize {
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
    /// Whether a zero timeout may still keep its 0 ms (see [`Plan::new`]).
    zero_allowed: bool,
}

/// Whether some scope of `tree` has no leaf below it.
fn has_leafless_scope(tree: &Tree) -> bool {
    fn walk(tree: &Tree, leafless_scope: &mut bool) -> bool {
        let mut any = |trees: &mut dyn Iterator<Item = &Tree>| {
            trees.fold(false, |found, tree| walk(tree, leafless_scope) | found)
        };
        match tree {
            Tree::Leaf { .. } => true,
            Tree::Spawn(children) => any(&mut children.iter().map(|child| &child.tree)),
            Tree::Scope { body, members, .. } => {
                let trees = body.as_deref().into_iter();
                let has_leaf = any(&mut trees.chain(members.iter().map(|m| &m.tree)));
                *leafless_scope |= !has_leaf;
                has_leaf
            }
            Tree::Shield(inner) => walk(inner, leafless_scope),
            Tree::Timeout { body, .. } => walk(body, leafless_scope),
        }
    }
    let mut leafless_scope = false;
    walk(tree, &mut leafless_scope);
    leafless_scope
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
                        let leaf_at = match child.tree {
                            Tree::Leaf { at, .. } => Some(at),
                            _ => None,
                        };
                        // Only a leaf is spawned late, and never by an aborted node (which
                        // would be gone by then). Its delay comes before its own time:
                        // not later in raw time, and ranked first on a tie (an earlier slot).
                        let delay = child
                            .delay
                            .filter(|_| launch.abort().is_none() && !child.detached)
                            .zip(leaf_at);
                        // Only a leaf is detached: a detached task's panic then always
                        // happens at its own instant (see `oracle`).
                        let launch = if let Some((delay, at)) = delay {
                            Launch::Delayed {
                                at: self.slot(delay.min(at)),
                            }
                        } else if child.detached && leaf_at.is_some() {
                            Launch::Detached
                        } else {
                            // Only a leaf or a `Spawn` node is aborted: dropping any other
                            // future would drop nodes inline below it, which the oracle
                            // does not model.
                            let abortable =
                                matches!(child.tree, Tree::Leaf { .. } | Tree::Spawn(_));
                            Launch::Joined {
                                cancel: child.cancel.map(|raw| self.slot(raw)),
                                abort: child.abort && abortable,
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
            Tree::Timeout { after, body } => {
                let zero = *after == 0 && self.zero_allowed && matches!(**body, Tree::Leaf { .. });
                self.zero_allowed &= !zero;
                Kind::Timeout {
                    deadline: self.slot(if zero { 0 } else { (*after).max(1) }),
                    body: self.add(body, Some(id), Launch::Inline),
                }
            }
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
