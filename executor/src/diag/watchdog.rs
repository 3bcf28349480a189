//! The stuck-cancellation watchdog (R20, SPEC §6) and the slow-poll report.
//!
//! A cancelled subtree should shrink: each task in it sees `Cancelled` at its next await
//! point, runs its cleanup and returns. The watchdog looks for tasks that do not.
//!
//! # What counts as progress
//!
//! A task of a cancelled subtree (marked itself, or below a marked node through a shield)
//! makes progress when an await point first reports its cancellation to it (it now knows),
//! or when it runs inside a shield (its cleanup is getting on). Being told again is not
//! progress: a task that hears `Cancelled` at await after await and keeps running catches
//! it and carries on, and is as stuck as one that never hears it; a task that is not marked (it
//! lives below a shield) also makes progress whenever it is polled. A task whose future
//! returned is not stuck (it waits for its children, which are judged themselves), and a
//! task with live descendant tasks is waiting for them, so only the *frontier* is blamed.
//!
//! A task with no progress for the watchdog's threshold since the cancellation reached it
//! (or since its last progress) is stuck, with the likely cause:
//!
//! - it sits in a shield (its own, or one it was spawned in): the shielded cleanup waits for
//!   something that does not happen;
//! - it was not polled since the cancellation reached it: nothing woke it;
//! - it was polled but is still running: it ignores cancellation, either waiting on a
//!   foreign future that never sees it (`or_cancel()` is the fix) or catching `Cancelled`
//!   and carrying on (an await point's budget makes such a loop yield, so the watchdog and
//!   `abort()` still get their turn).
//!
//! Each stuck task is reported once (until it makes progress again). With a grace period,
//! a task still stuck that much after its report is aborted: its future is dropped at its
//! next poll (R20), and that is reported too.
//!
//! # Cost
//!
//! A check walks the whole tree once (iteratively, with a stack of the current path that
//! lives on the heap). It runs only while a cancellation is pending, at the earliest moment
//! some task could become stuck, so a tree that finishes its cleanup in time is never
//! walked at all.

use std::collections::HashMap;
use std::fmt;
use std::panic::Location;
use std::time::Duration;

use super::{Diag, dump};
use crate::cancel::CancelReason;
use crate::tree::{Key, NodeKind, Phase, TaskId, Tree};

/// A single poll that took at least the slow-poll threshold.
#[derive(Clone, Debug)]
pub struct SlowPoll {
    /// The task.
    pub id: TaskId,
    /// Its name, if it has one.
    pub name: Option<String>,
    /// Where it was spawned.
    pub location: &'static Location<'static>,
    /// How long the poll took (by the runtime's clock).
    pub took: Duration,
}

impl fmt::Display for SlowPoll {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "treeloop: slow poll: task {}", self.id)?;
        if let Some(name) = &self.name {
            write!(f, " {name:?}")?;
        }
        write!(
            f,
            " (spawned at {}) blocked the loop for {:.1?} in one poll; move blocking work to \
             `unblock` or add `checkpoint().await` inside long loops",
            self.location, self.took
        )
    }
}

/// Why the watchdog thinks a task is stuck.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StallCause {
    /// Not polled since the cancellation reached it: nothing has woken it.
    NeverPolled,
    /// Polled since the cancellation, and still running: it ignores cancellation. Either
    /// it waits on a foreign future that never sees it, or it catches `Cancelled` and
    /// carries on (in a loop, say).
    IgnoresCancellation,
    /// Inside a shield and waiting: its shielded cleanup awaits something that does not
    /// happen.
    ShieldedWaiting,
}

impl fmt::Display for StallCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StallCause::NeverPolled => "not polled since the cancellation reached it",
            StallCause::IgnoresCancellation => {
                "polled since the cancellation and still running: it ignores cancellation \
                 (it waits on a foreign future that never sees it: wrap that in \
                 `or_cancel()`; or it catches `Cancelled` and carries on: return instead)"
            }
            StallCause::ShieldedWaiting => {
                "inside a shield, waiting: its cleanup awaits something that does not happen \
                 (give the shield a timeout)"
            }
        })
    }
}

/// A task the watchdog found stuck.
#[derive(Clone, Debug)]
pub struct StuckTask {
    /// The task.
    pub id: TaskId,
    /// Its name, if it has one.
    pub name: Option<String>,
    /// Where it was spawned.
    pub location: &'static Location<'static>,
    /// The likely cause.
    pub cause: StallCause,
    /// How long it has made no progress.
    pub stuck_for: Duration,
    /// The cancellation that reached it (its own mark, or the one above its shield).
    pub reason: Option<CancelReason>,
}

impl fmt::Display for StuckTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task {}", self.id)?;
        if let Some(name) = &self.name {
            write!(f, " {name:?}")?;
        }
        write!(
            f,
            " (spawned at {}), no progress for {:.1?}: {}",
            self.location, self.stuck_for, self.cause
        )
    }
}

/// What one watchdog check found: the newly stuck tasks and the tree they are in.
#[derive(Clone, Debug)]
pub struct StallReport {
    /// The stuck tasks, in tree order.
    pub stuck: Vec<StuckTask>,
    /// The whole tree, with the stuck tasks marked ([`DumpEntry::stuck`](super::DumpEntry::stuck)).
    pub dump: dump::TreeDump,
    /// The grace period after which they are aborted, if one was set.
    pub grace: Option<Duration>,
}

impl fmt::Display for StallReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "treeloop watchdog: {} task(s) of a cancelled subtree make no progress:",
            self.stuck.len()
        )?;
        for task in &self.stuck {
            writeln!(f, "  {task}")?;
        }
        if let Some(grace) = self.grace {
            writeln!(
                f,
                "tasks still stuck in {grace:.1?} will be aborted (the root future cannot be)"
            )?;
        }
        write!(f, "task tree:\n{}", self.dump)
    }
}

/// One node on the walk's current path.
struct Frame {
    /// Task or root (something with a future), region or shield.
    kind: NodeKind,
    /// When the cancellation reached this node or the nearest marked node above it.
    entered: Option<(Duration, Option<CancelReason>)>,
    /// Whether a shield lies between this node and that cancellation.
    shielded: bool,
    /// Whether a live task lies below this node.
    task_below: bool,
    /// Its index in the candidates, if it is one.
    candidate: Option<usize>,
}

/// A task of a cancelled subtree whose future has not returned.
struct Candidate {
    /// Its node.
    key: Key,
    /// When the cancellation reached it (or the marked node above its shield).
    entered: Duration,
    /// That cancellation's reason.
    reason: Option<CancelReason>,
    /// Inside a shield: its own open one, or one above it.
    shielded: bool,
    /// Has live descendant tasks: it waits for them.
    waits_for_children: bool,
}

/// What one look at the tree found, for the loop to act on: the watchdog itself reports
/// nothing and aborts nothing.
pub(crate) struct Verdict {
    /// Every task judged stuck now, with why (the dump of a report marks them).
    pub(crate) stuck: HashMap<Key, StallCause>,
    /// The tasks found stuck since the last report: report them.
    pub(crate) newly_stuck: Vec<StuckTask>,
    /// The tasks past their grace period: abort them, and report each.
    pub(crate) to_abort: Vec<(Key, StuckTask)>,
}

/// Looks at `tree` at `now`: judges which tasks are stuck, which are newly so, which are
/// past their grace period, and sets the next check.
pub(crate) fn check(tree: &Tree, diag: &Diag, now: Duration) -> Verdict {
    let threshold = diag.watchdog.unwrap_or(Duration::MAX);
    let candidates = candidates(tree, diag);
    let mut next: Option<Duration> = None;
    let mut stuck: HashMap<Key, StallCause> = HashMap::new();
    let mut newly_stuck = Vec::new();
    let mut to_abort = Vec::new();
    {
        for candidate in candidates.iter().filter(|c| !c.waits_for_children) {
            let stats = diag.stats(candidate.key);
            let node = tree.node(candidate.key);
            // Not before it existed: a task spawned into the subtree after the cancel.
            let mut since = candidate.entered.max(stats.created);
            if let Some(progress) = stats.progress {
                since = since.max(progress);
            }
            if node.cancel.is_none() {
                // Not marked (below a shield): any poll is progress.
                if let Some(polled) = stats.last_poll {
                    since = since.max(polled);
                }
            }
            let stuck_for = now.saturating_sub(since);
            if stuck_for < threshold {
                let due = since.saturating_add(threshold);
                next = Some(next.map_or(due, |n| n.min(due)));
                continue;
            }
            let cause = if candidate.shielded {
                StallCause::ShieldedWaiting
            } else if stats
                .last_poll
                .is_none_or(|polled| polled < candidate.entered)
            {
                StallCause::NeverPolled
            } else {
                StallCause::IgnoresCancellation
            };
            stuck.insert(candidate.key, cause);
            let task = StuckTask {
                id: node.id,
                name: tree.name(candidate.key).map(str::to_owned),
                location: node.location,
                cause,
                stuck_for,
                reason: candidate.reason,
            };
            // Reported already, with no progress since: only the grace period is left.
            match stats.reported.filter(|&reported| reported >= since) {
                None => {
                    diag.update(candidate.key, |stats| stats.reported = Some(now));
                    newly_stuck.push(task);
                    if let Some(grace) = diag.grace {
                        let due = now.saturating_add(grace);
                        next = Some(next.map_or(due, |n| n.min(due)));
                    }
                }
                Some(reported) => {
                    if let Some(grace) = diag.grace {
                        let due = reported.saturating_add(grace);
                        if now < due {
                            next = Some(next.map_or(due, |n| n.min(due)));
                        } else if node.kind == NodeKind::Task {
                            // (The root cannot be aborted: it is the caller's own future.)
                            to_abort.push((candidate.key, task));
                        }
                    }
                }
            }
        }
    }
    // A task waiting for its children is judged again when a node finishes
    // (`Diag::finished`), a task that progresses again when it does (`Diag::progress`): no
    // periodic re-check, so when nothing can change, no check is due and an idle seeded loop
    // reports its deadlock instead of spinning.
    diag.waiting_for_children
        .set(candidates.iter().any(|c| c.waits_for_children));
    diag.next_check.set(next);
    Verdict {
        stuck,
        newly_stuck,
        to_abort,
    }
}

/// The tasks (and root) of cancelled subtrees whose futures have not returned, found in one
/// iterative pre-order walk.
fn candidates(tree: &Tree, diag: &Diag) -> Vec<Candidate> {
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut path: Vec<Frame> = Vec::new();
    // Leaving a node: what it found below goes to its parent's frame.
    let pop = |path: &mut Vec<Frame>, candidates: &mut Vec<Candidate>| {
        let frame = path.pop().expect("popping below the root");
        if let Some(index) = frame.candidate {
            candidates[index].waits_for_children = frame.task_below;
        }
        if let Some(parent) = path.last_mut() {
            parent.task_below |= frame.task_below || frame.kind == NodeKind::Task;
        }
    };
    for root in tree.roots() {
        tree.walk(root, |key, node, depth| {
            while path.len() > depth {
                pop(&mut path, &mut candidates);
            }
            let above = path.last();
            let entered = match node.cancel {
                Some(reason) => Some((
                    diag.stats(key).cancelled_at.unwrap_or_default(),
                    Some(reason),
                )),
                None => above.and_then(|frame| frame.entered),
            };
            let shielded = node.cancel.is_none()
                && entered.is_some()
                && (node.kind == NodeKind::Shield || above.is_some_and(|frame| frame.shielded));
            let has_future = matches!(node.kind, NodeKind::Task | NodeKind::Root);
            let candidate = match entered {
                Some((at, reason))
                    if has_future && matches!(node.phase, Phase::Active | Phase::Aborting) =>
                {
                    candidates.push(Candidate {
                        key,
                        entered: at,
                        reason,
                        shielded,
                        waits_for_children: false,
                    });
                    Some(candidates.len() - 1)
                }
                _ => None,
            };
            // An open shield shields the task that owns it (the nearest future above).
            if node.kind == NodeKind::Shield && node.phase == Phase::Active {
                let owner = path
                    .iter()
                    .rev()
                    .find(|frame| matches!(frame.kind, NodeKind::Task | NodeKind::Root));
                if let Some(index) = owner.and_then(|frame| frame.candidate) {
                    candidates[index].shielded = true;
                }
            }
            path.push(Frame {
                kind: node.kind,
                entered,
                shielded,
                task_below: false,
                candidate,
            });
        });
        while !path.is_empty() {
            pop(&mut path, &mut candidates);
        }
    }
    candidates
}
