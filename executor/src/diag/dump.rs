//! The tree dump: every live node with its state, taken in one pass over the tree.
//!
//! The walk is the tree's threaded pre-order walk (no stack, no recursion: a 1,000,000-deep
//! chain dumps like a flat list, R21). Entries come parents first, siblings oldest first,
//! each with its depth, so [`TreeDump`]'s `Display` prints an indented tree without walking
//! again.
//!
//! # Ground rules
//!
//! - A dump only reads: it borrows the tree and the run queue immutably for the walk and
//!   copies what it needs (names included), so the `TreeDump` holds no reference into the
//!   runtime and may outlive it.
//! - It can be taken from anywhere on the loop thread, the task being polled included: that
//!   task and the regions it is inside show as "running" (the one meaning of the word in
//!   the executor: being polled right now).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::panic::Location;
use std::time::Duration;

use super::Seen;
use super::StallCause;
use crate::cancel::CancelReason;
use crate::queue::Job;
use crate::tree::{Key, NodeKind, Phase, TaskId};

/// How many levels the text form indents before it writes depths instead.
pub const MAX_INDENT: usize = 32;

/// A snapshot of the live task tree (see `treeloop::dump`).
#[derive(Clone, Debug, Default)]
pub struct TreeDump {
    /// Every live node: parents before children, siblings in spawn order.
    pub entries: Vec<DumpEntry>,
    /// When it was taken, by the runtime's clock (with diagnostics on).
    pub taken_at: Option<Duration>,
}

/// One node of a [`TreeDump`].
#[derive(Clone, Debug)]
pub struct DumpEntry {
    /// The task's (or region's) id.
    pub id: TaskId,
    /// Root, task, region or shield.
    pub kind: EntryKind,
    /// The name given with `task::Builder::name`, if any.
    pub name: Option<String>,
    /// Where it was spawned (or the region opened).
    pub location: &'static Location<'static>,
    /// What it is doing.
    pub state: TaskState,
    /// Its cancellation mark, if cancelled.
    pub cancel: Option<CancelReason>,
    /// Its parent; `None` for the root.
    pub parent: Option<TaskId>,
    /// Its children, oldest first.
    pub children: Vec<TaskId>,
    /// Its depth below the root (the root is 0).
    pub depth: usize,
    /// Polls so far (tasks and root, with diagnostics on).
    pub polls: Option<u64>,
    /// Time since its last poll ended (with diagnostics on; `None` if never polled).
    pub since_last_poll: Option<Duration>,
    /// Why the watchdog thinks it is stuck, in a watchdog report.
    pub stuck: Option<StallCause>,
}

/// What a node of the tree stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// The future passed to `block_on`.
    Root,
    /// A spawned task.
    Task,
    /// A cancel region inside a task: a scope or a timeout.
    Region,
    /// A `shield(..)` inside a task.
    Shield,
}

/// What a node is doing when the dump is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// Being polled right now: the caller of `dump`, and the regions it is inside.
    Running,
    /// Woken, and waiting in the run queue for its turn.
    Scheduled,
    /// Waiting for a wake: I/O, a timer, a channel, another task.
    Waiting,
    /// Cancelled, and its future has not returned yet (it is running its cleanup, or
    /// ignoring the cancellation).
    Cancelled,
    /// Inside an open shield: cancellation from outside is hidden from it.
    Shielded,
    /// Its future has returned (or its region was left); it waits for its children.
    Completing,
    /// `abort()` was called: its future is dropped at its next poll.
    Aborting,
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TaskState::Running => "running",
            TaskState::Scheduled => "scheduled",
            TaskState::Waiting => "waiting",
            TaskState::Cancelled => "cancelled",
            TaskState::Shielded => "shielded",
            TaskState::Completing => "completing",
            TaskState::Aborting => "aborting",
        })
    }
}

impl TreeDump {
    /// The entry of `id`, if it was alive.
    pub fn get(&self, id: TaskId) -> Option<&DumpEntry> {
        self.entries.iter().find(|entry| entry.id == id)
    }

    /// The entries named `name`.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a DumpEntry> + 'a {
        self.entries
            .iter()
            .filter(move |entry| entry.name.as_deref() == Some(name))
    }

    /// How many live nodes it lists.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the tree was empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl fmt::Display for TreeDump {
    /// One line per node, indented two spaces per level:
    /// `#3 task "conn 7": cancelled (Shutdown), 4 polls, last 1.5s ago, spawned at src/main.rs:9:5`.
    /// Deeper than 32 levels the indentation stops growing and the line starts with its
    /// depth instead, so a million-deep chain prints a million short lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for entry in &self.entries {
            let indent = entry.depth.min(MAX_INDENT) * 2;
            write!(f, "{:indent$}", "")?;
            if entry.depth > MAX_INDENT {
                write!(f, "[depth {}] ", entry.depth)?;
            }
            writeln!(f, "{entry}")?;
        }
        Ok(())
    }
}

impl fmt::Display for DumpEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            EntryKind::Root => "root",
            EntryKind::Task => "task",
            EntryKind::Region => "region",
            EntryKind::Shield => "shield",
        };
        write!(f, "{} {kind}", self.id)?;
        if let Some(name) = &self.name {
            write!(f, " {name:?}")?;
        }
        write!(f, ": {}", self.state)?;
        if let Some(reason) = self.cancel {
            write!(f, " ({reason:?})")?;
        }
        if let Some(polls) = self.polls {
            write!(f, ", {polls} polls")?;
        }
        if let Some(since) = self.since_last_poll {
            write!(f, ", last {since:.1?} ago")?;
        }
        write!(f, ", spawned at {}", self.location)?;
        if let Some(cause) = self.stuck {
            write!(f, "  <== STUCK: {cause}")?;
        }
        Ok(())
    }
}

/// Takes a dump of the tree `seen` shows; `stuck` marks the watchdog's verdicts.
pub(crate) fn take(seen: &Seen<'_>, stuck: &HashMap<Key, StallCause>) -> TreeDump {
    let taken_at = seen.diag.map(|diag| diag.now());
    let scheduled = scheduled(seen);
    let tree = seen.tree;
    let running = running_chain(seen);
    let mut entries: Vec<DumpEntry> = Vec::with_capacity(tree.len());
    // Where each key's entry is, to attach children and mark the owners of shields.
    let mut index: HashMap<Key, usize> = HashMap::with_capacity(tree.len());
    for root in tree.roots() {
        tree.walk(root, |key, node, depth| {
            let parent = tree.parent(key).and_then(|p| index.get(&p).copied());
            let stats = seen.diag.map(|diag| diag.stats(key));
            let state = if node.phase == Phase::Completing {
                TaskState::Completing
            } else if node.phase == Phase::Aborting {
                TaskState::Aborting
            } else if running.contains(&key) {
                TaskState::Running
            } else if node.kind == NodeKind::Shield {
                TaskState::Shielded
            } else if node.cancel.is_some() {
                TaskState::Cancelled
            } else if scheduled.contains(&node.id) {
                TaskState::Scheduled
            } else {
                TaskState::Waiting
            };
            let polled = matches!(node.kind, NodeKind::Task | NodeKind::Root);
            let at = entries.len();
            entries.push(DumpEntry {
                id: node.id,
                kind: match node.kind {
                    NodeKind::Root => EntryKind::Root,
                    NodeKind::Task => EntryKind::Task,
                    NodeKind::Region => EntryKind::Region,
                    NodeKind::Shield => EntryKind::Shield,
                },
                name: tree.name(key).map(str::to_owned),
                location: node.location,
                state,
                cancel: node.cancel,
                parent: parent.map(|p| entries[p].id),
                children: Vec::new(),
                depth,
                polls: stats.filter(|_| polled).map(|stats| stats.polls),
                since_last_poll: stats
                    .and_then(|stats| stats.last_poll)
                    .zip(taken_at)
                    .map(|(last, now)| now.saturating_sub(last)),
                stuck: stuck.get(&key).copied(),
            });
            index.insert(key, at);
            if let Some(p) = parent {
                entries[p].children.push(node.id);
            }
            // An open shield shields the task that owns it: walk up through its regions.
            if node.kind == NodeKind::Shield && node.phase == Phase::Active {
                let owner = tree.owner(key).and_then(|k| index.get(&k).copied());
                if let Some(owner) = owner {
                    let state = &mut entries[owner].state;
                    if matches!(
                        state,
                        TaskState::Waiting | TaskState::Scheduled | TaskState::Cancelled
                    ) {
                        *state = TaskState::Shielded;
                    }
                }
            }
        });
    }
    TreeDump { entries, taken_at }
}

/// The ids of the tasks waiting in the local run queue (wakes from other threads that
/// have not been moved over yet are not seen).
fn scheduled(seen: &Seen<'_>) -> HashSet<TaskId> {
    let tree = seen.tree;
    let root = seen.root;
    seen.queue
        .jobs()
        .filter_map(|job| match job {
            Job::Task(runnable) => tree.get(runnable.metadata().key()),
            Job::Root => tree.get(root),
        })
        .map(|node| node.id)
        .collect()
}

/// The node being polled and the regions and task it is inside, up to that task.
fn running_chain(seen: &Seen<'_>) -> HashSet<Key> {
    let tree = seen.tree;
    let mut chain = HashSet::new();
    let mut key = seen.current;
    while let Some(node) = tree.get(key) {
        chain.insert(key);
        if matches!(node.kind, NodeKind::Task | NodeKind::Root) {
            break;
        }
        match tree.parent(key) {
            Some(parent) => key = parent,
            None => break,
        }
    }
    chain
}
