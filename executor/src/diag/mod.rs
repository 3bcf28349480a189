//! Seeing inside a live tree (SPEC §6): per-task statistics, the tree dump, the slow-poll
//! warning and the stuck-cancellation watchdog.
//!
//! # Ground rules
//!
//! - **Off, it costs nothing.** The core holds `Option<Diag>`; with diagnostics off it is
//!   `None` and every hook on the hot path is one branch on it. Nothing is added to a tree
//!   node either: statistics live beside the tree, in a `Vec` indexed by slab key.
//! - **On, the hooks only record.** A poll reads the clock before and after (the slow-poll
//!   check and "time since last poll"); a cancel stamps the nodes it marks; the first await point
//!   that reports `Cancelled` to a task, and a shield being entered, stamp "progress" on the
//!   task being polled. The watchdog reads these stamps later, at most once per check period.
//! - **Time is the runtime's clock**, handed in as a closure returning the time since the
//!   runtime started: virtual under `start_paused`, so the watchdog and slow-poll warnings
//!   are exact and replayable in tests. Under virtual time a poll is "slow" only if the clock
//!   is advanced inside it.
//! - **Reports leave through the sink** ([`crate::report`]), never while a borrow of the
//!   core is held.

pub(crate) mod dump;
pub(crate) mod watchdog;

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

pub use dump::{DumpEntry, EntryKind, TaskState, TreeDump};
pub use watchdog::{SlowPoll, StallCause, StallReport, StuckTask};

use crate::queue::RunQueue;
use crate::tree::{Key, Tree};

/// The runtime's clock as the diagnostics see it: time since the runtime started.
pub type Clock = Rc<dyn Fn() -> Duration>;

/// Which diagnostics an executor keeps. The default keeps none and costs nothing.
#[derive(Clone, Default)]
pub struct Diagnostics {
    /// The clock; the system clock since the executor was built when `None`.
    pub clock: Option<Clock>,
    /// Keep poll counts and poll times per task for [`TreeDump`] (implied by the options
    /// below).
    pub stats: bool,
    /// Report every single poll that takes at least this long
    /// ([`Report::SlowPoll`](crate::report::Report::SlowPoll)).
    pub slow_poll: Option<Duration>,
    /// Report tasks of a cancelled subtree that make no progress for this long
    /// ([`Report::Stall`](crate::report::Report::Stall)).
    pub watchdog: Option<Duration>,
    /// After the watchdog reported a task, abort it if it is still stuck this much later
    /// ([`Report::Aborted`](crate::report::Report::Aborted)). Only with `watchdog`.
    pub grace: Option<Duration>,
    /// Give every shield a node of its own as soon as it is entered, so a [`TreeDump`]
    /// shows shielded tasks as such (implied by the options above). Without it, a shield
    /// that spawns nothing is a flag on its task for the length of a poll, not a node, and
    /// a dump shows its task as cancelled.
    pub shield_nodes: bool,
}

impl Diagnostics {
    /// Whether shields must be nodes from the start (see [`Diagnostics::shield_nodes`]).
    pub(crate) fn wants_shield_nodes(&self) -> bool {
        self.shield_nodes || self.wants_diag()
    }

    /// Whether anything needs the per-node state of [`Diag`].
    fn wants_diag(&self) -> bool {
        self.stats || self.slow_poll.is_some() || self.watchdog.is_some()
    }
}

impl fmt::Debug for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Diagnostics")
            .field("clock", &self.clock.as_ref().map(|_| "custom"))
            .field("stats", &self.stats)
            .field("slow_poll", &self.slow_poll)
            .field("watchdog", &self.watchdog)
            .field("grace", &self.grace)
            .field("shield_nodes", &self.shield_nodes)
            .finish()
    }
}

/// What the diagnostics record about one node; reset when its slab key is reused.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct NodeStats {
    /// Polls of the task's future (or the root's).
    pub(crate) polls: u64,
    /// When the node was inserted.
    pub(crate) created: Duration,
    /// When its last poll ended.
    pub(crate) last_poll: Option<Duration>,
    /// When the cancellation mark reached it.
    pub(crate) cancelled_at: Option<Duration>,
    /// The last poll in which it ran shielded, or the first in which an await point told it
    /// of its cancellation.
    pub(crate) progress: Option<Duration>,
    /// An await point has told it of its cancellation. Only the first time is progress: a
    /// task told again and again, and still running, catches `Cancelled` and carries on.
    pub(crate) saw_cancel: bool,
    /// When the watchdog last reported it stuck.
    pub(crate) reported: Option<Duration>,
}

/// The diagnostics state of one executor (present only when some diagnostic is on).
pub(crate) struct Diag {
    /// The runtime's clock.
    clock: Clock,
    /// The slow-poll threshold.
    slow_poll: Option<Duration>,
    /// The watchdog's threshold.
    watchdog: Option<Duration>,
    /// The watchdog's grace period before an abort.
    grace: Option<Duration>,
    /// Statistics by slab key.
    stats: RefCell<Vec<NodeStats>>,
    /// The task (or root) being polled; `Key::MAX` between polls.
    polling: Cell<Key>,
    /// When the watchdog next looks at the tree; `None` while nothing could change its
    /// verdict (so an idle seeded loop can still report a deadlock).
    next_check: Cell<Option<Duration>>,
    /// The last check saw tasks of a cancelled subtree waiting for their children: when a
    /// node finishes, one of them may now be judged, so look again.
    waiting_for_children: Cell<bool>,
}

impl Diag {
    /// The state for `config`, or `None` when it asks for nothing.
    pub(crate) fn new(config: Diagnostics) -> Option<Diag> {
        if !config.wants_diag() {
            return None;
        }
        let clock = config.clock.unwrap_or_else(|| {
            let start = std::time::Instant::now();
            Rc::new(move || start.elapsed())
        });
        Some(Diag {
            clock,
            slow_poll: config.slow_poll,
            watchdog: config.watchdog,
            grace: config.grace.filter(|_| config.watchdog.is_some()),
            stats: RefCell::new(Vec::new()),
            polling: Cell::new(Key::MAX),
            next_check: Cell::new(None),
            waiting_for_children: Cell::new(false),
        })
    }

    /// The runtime's clock.
    pub(crate) fn now(&self) -> Duration {
        (self.clock)()
    }

    /// The statistics of `key`.
    pub(crate) fn stats(&self, key: Key) -> NodeStats {
        self.stats
            .borrow()
            .get(key as usize)
            .copied()
            .unwrap_or_default()
    }

    /// Updates the statistics of `key`, growing the table as needed.
    fn update(&self, key: Key, f: impl FnOnce(&mut NodeStats)) {
        let mut stats = self.stats.borrow_mut();
        let index = key as usize;
        if stats.len() <= index {
            stats.resize(index + 1, NodeStats::default());
        }
        f(&mut stats[index]);
    }

    /// A node was inserted at `key` (a reused key starts afresh); `cancelled` if it
    /// inherited a cancellation mark.
    pub(crate) fn inserted(&self, key: Key, cancelled: bool) {
        let now = self.now();
        self.update(key, |stats| {
            *stats = NodeStats {
                created: now,
                cancelled_at: cancelled.then_some(now),
                ..NodeStats::default()
            }
        });
        if cancelled {
            self.cancel_pending(now);
        }
    }

    /// A node left the tree: if tasks were waiting for their children, judge them again.
    pub(crate) fn finished(&self) {
        if self.waiting_for_children.get() {
            self.cancel_pending(self.now());
        }
    }

    /// `block_on` returned: nothing is pending.
    pub(crate) fn reset(&self) {
        self.next_check.set(None);
        self.waiting_for_children.set(false);
    }

    /// A cancel walk marked `key` at `now`.
    pub(crate) fn marked(&self, key: Key, now: Duration) {
        self.update(key, |stats| stats.cancelled_at = Some(now));
    }

    /// Some cancellation is pending from `now`: make sure the watchdog looks in time.
    pub(crate) fn cancel_pending(&self, now: Duration) {
        if let Some(threshold) = self.watchdog {
            let due = now.saturating_add(threshold);
            if self.next_check.get().is_none_or(|next| due < next) {
                self.next_check.set(Some(due));
            }
        }
    }

    /// The task being polled entered a shield: it is getting on with its cleanup.
    #[cold]
    pub(crate) fn progress(&self) {
        let key = self.polling.get();
        if key != Key::MAX {
            let now = self.now();
            self.update(key, |stats| stats.progress = Some(now));
            // It may get stuck again later: make sure somebody looks then.
            self.cancel_pending(now);
        }
    }

    /// An await point told the task being polled of its cancellation: progress the first
    /// time (it now knows, and its cleanup starts), nothing after that. A task that keeps
    /// hearing it and keeps running ignores it, and the watchdog must be able to say so.
    #[cold]
    pub(crate) fn saw_cancel(&self) {
        let key = self.polling.get();
        if key == Key::MAX || self.stats(key).saw_cancel {
            return;
        }
        let now = self.now();
        self.update(key, |stats| {
            stats.saw_cancel = true;
            stats.progress = Some(now);
        });
        self.cancel_pending(now);
    }

    /// When the watchdog wants the loop back, if a cancellation is pending.
    pub(crate) fn next_check(&self) -> Option<Duration> {
        self.next_check.get()
    }

    /// The time now, if the watchdog's check is due.
    pub(crate) fn check_due(&self) -> Option<Duration> {
        let due = self.next_check.get()?;
        let now = self.now();
        (now >= due).then_some(now)
    }

    /// The watchdog's grace period before an abort, if any.
    pub(crate) fn grace(&self) -> Option<Duration> {
        self.grace
    }

    /// Runs `poll` (one poll of the task or root at `key`) with the bookkeeping around it:
    /// the poll count and the time of the poll; returns what it returned, and the slow
    /// poll to report if it took the slow-poll threshold or longer.
    pub(crate) fn observe_poll<R>(
        &self,
        tree: &RefCell<Tree>,
        key: Key,
        poll: impl FnOnce() -> R,
    ) -> (R, Option<SlowPoll>) {
        let started = self.now();
        self.polling.set(key);
        let result = poll();
        self.polling.set(Key::MAX);
        let ended = self.now();
        self.update(key, |stats| {
            stats.polls += 1;
            stats.last_poll = Some(ended);
        });
        let took = ended.saturating_sub(started);
        if self.slow_poll.is_none_or(|threshold| took < threshold) {
            return (result, None);
        }
        let tree = tree.borrow();
        let slow = tree.get(key).map(|node| SlowPoll {
            id: node.id,
            name: tree.name(key).map(str::to_owned),
            location: node.location,
            took,
        });
        (result, slow)
    }
}

/// What a dump looks at: the tree and the run queue, borrowed, and where the loop is.
pub(crate) struct Seen<'a> {
    /// The tree.
    pub(crate) tree: &'a Tree,
    /// The local run queue (which tasks are scheduled).
    pub(crate) queue: &'a RunQueue,
    /// The root of the `block_on` in progress.
    pub(crate) root: Key,
    /// The node being polled (`frame::NO_NODE` between polls).
    pub(crate) current: Key,
    /// The diagnostics state, if on (poll counts and times).
    pub(crate) diag: Option<&'a Diag>,
}
