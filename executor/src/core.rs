//! The state of one runtime on its loop thread, and every change to its task tree.
//!
//! # Ground rules
//!
//! - [`Core`] lives in an `Rc` on the loop thread; other threads only ever reach its
//!   [`Shared`] part, through wakers.
//! - The tree changes only here: a node is inserted ([`Core::insert`]), marked
//!   ([`Core::cancel`]), aborted ([`Core::abort`], [`Core::abort_subtree`]), and removed
//!   ([`Core::finish`]); the teardown of an abandoned runtime drops every task
//!   ([`Core::tear_down`]).
//! - No `RefCell` borrow is held while user code runs: a borrow is taken, a fact read or a
//!   node changed, and the borrow ends before any poll, drop or wake. Wakes collected under
//!   a borrow are woken after it, panic-safely ([`wake_all`]).
//!
//! Read next: [`crate::task`], the task whose poll calls into this.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::panic::Location;
use std::sync::Arc;

use crate::cancel::CancelReason;
use crate::diag::{Diag, Seen, TreeDump, dump, watchdog};
use crate::frame::{self, CurrentGuard, Frame};
use crate::panic::{Payload, wake_all};
use crate::park::Unpark;
use crate::queue::{Job, RunQueue, Shared};
use crate::report::{Report, Sink, report_message};
use crate::trace::{Recorder, TraceEvent};
use crate::tree::{Key, NodeKind, NodeRef, Phase, TaskId, Tree};

/// Whether the runtime is running normally or dropping every task by force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Tasks run, cancellation is cooperative.
    Running,
    /// The runtime is being dropped with tasks alive: each task's future is dropped at its
    /// next poll and the tree is no longer maintained.
    TearingDown,
}

/// The loop-thread state of one runtime.
pub(crate) struct Core {
    /// Every live task, shield and root, with parent links and cancellation marks.
    pub(crate) tree: RefCell<Tree>,
    /// Runnable tasks woken on this thread.
    pub(crate) queue: RefCell<RunQueue>,
    /// The part other threads reach through wakers.
    pub(crate) shared: Arc<Shared>,
    /// How many tasks are in the aborting phase: while none is, a task's poll need not look
    /// up its own phase (a slab lookup per poll saved, the common case).
    pub(crate) aborting: Cell<usize>,
    /// Tasks completed so far (a `Tick` counts its completions by the difference).
    pub(crate) completed: Cell<u64>,
    /// The task whose runnable the loop is about to run: set just before `Runnable::run`,
    /// read by that task's [`TaskFuture`](crate::task) first thing (so the task allocation
    /// need not carry its key twice; see `task.rs`).
    pub(crate) running: Cell<Key>,
    /// The innermost node being polled: a task, a shield inside it, or the root. Await
    /// points read its mark; `spawn` makes it the parent.
    pub(crate) frame: Frame,
    /// Every shield gets a node when opened, so dumps and the watchdog see it: set when any
    /// diagnostic is on.
    pub(crate) eager_shields: bool,
    /// Panics that nobody can take from a `JoinHandle`, with where the task was spawned;
    /// `block_on` re-raises the first.
    pub(crate) unhandled: RefCell<Vec<(Payload, String)>>,
    /// Running, or tearing down.
    pub(crate) mode: Cell<Mode>,
    /// The scheduling decisions, when tracing (deterministic mode).
    pub(crate) trace: Option<RefCell<Recorder>>,
    /// Diagnostics or a trace want to hear of every node inserted: `diag` or `trace` is
    /// set (one flag, so an insert without either pays one branch, as before the trace did).
    observed: bool,
    /// The root node of the running `block_on`.
    pub(crate) root: Cell<Key>,
    /// Statistics, slow polls and the watchdog, when on (see [`crate::diag`]).
    pub(crate) diag: Option<Diag>,
    /// Where reports go; stderr when `None`.
    pub(crate) sink: Option<Sink>,
    /// The seed the scheduling strategy was given (0 unless seeded), for code that wants
    /// its own seeded choices to follow the run's seed (`treeloop::sim`'s faults).
    pub(crate) seed: u64,
    /// Whether code asked for `seed` (`scheduling_seed`): a replay of this run by its
    /// schedule then needs the seed too (`test::check` prints both).
    pub(crate) seed_read: Cell<bool>,
}

impl Core {
    /// The state of a runtime that has not run yet.
    pub(crate) fn new(unparker: Arc<dyn Unpark>, options: crate::Options) -> Core {
        let crate::Options {
            scheduling,
            diagnostics,
            sink,
        } = options;
        let eager_shields = diagnostics.wants_shield_nodes();
        let diag = Diag::new(diagnostics);
        Core {
            tree: RefCell::new(Tree::new()),
            queue: RefCell::new(RunQueue::new(
                scheduling.strategy,
                scheduling.seed,
                scheduling.pct_horizon,
                scheduling.replay,
            )),
            seed: scheduling.seed,
            seed_read: Cell::new(false),
            trace: scheduling.trace.then(|| RefCell::new(Recorder::new())),
            observed: scheduling.trace || diag.is_some(),
            root: Cell::new(Key::MAX),
            shared: Arc::new(Shared::new(unparker)),
            aborting: Cell::new(0),
            completed: Cell::new(0),
            running: Cell::new(Key::MAX),
            frame: Frame::new(),
            eager_shields,
            unhandled: RefCell::new(Vec::new()),
            mode: Cell::new(Mode::Running),
            diag,
            sink,
        }
    }

    /// Where `spawn` (or a region opened) right now belongs: the node being polled; between
    /// polls (a `Drop` run by the loop, a waker), the root of the running `block_on`.
    ///
    /// # Panics
    ///
    /// When neither exists: no `block_on` is running on this runtime any more.
    #[track_caller]
    pub(crate) fn spawn_parent(&self) -> Key {
        if let Some(shield) = frame::lazy_shield() {
            return self.open_lazy_shield(shield);
        }
        self.polled_node()
    }

    /// [`Core::polled_node`] as a reference that can outlive it.
    #[track_caller]
    pub(crate) fn polled_ref(&self) -> NodeRef {
        let key = self.polled_node();
        self.tree.borrow().node_ref(key)
    }

    /// The node being polled; between polls, the running `block_on`'s root.
    #[track_caller]
    fn polled_node(&self) -> Key {
        // The current node is always live or the "no node" sentinel (`enter_node` sets it to
        // the node being polled and restores it): the common case needs no lookup.
        let current = self.frame.current();
        if current != frame::NO_NODE {
            return current;
        }
        let root = self.root.get();
        assert!(
            self.tree.borrow().get(root).is_some(),
            "spawn called while no block_on of this runtime is running: spawn from inside \
             `block_on` (or a task spawned from it)"
        );
        root
    }

    /// Something inside a shield without a node needs one (a spawn, a scope, a deadline):
    /// open it now under the node that was polled when the shield was first polled (or, if
    /// that node is gone, the one polled now), as an eagerly opened node would be, and make
    /// it the current node for the rest of this poll. The shield adopts it, and restores
    /// the current node, when its poll ends ([`frame::replace_shield_made`]).
    #[cold]
    #[track_caller]
    fn open_lazy_shield(&self, shield: frame::LazyShield) -> Key {
        let host = self.tree.borrow().resolve(shield.host);
        let parent = host.unwrap_or_else(|| self.polled_node());
        let key = self
            .tree
            .borrow_mut()
            .insert_as(Some(parent), NodeKind::Shield, shield.location, shield.id)
            .key;
        if self.diag.is_some() {
            self.inserted(key, None);
        }
        let replaced = self.frame.replace(key);
        frame::replace_lazy_shield(None);
        frame::replace_shield_made(Some((key, replaced)));
        key
    }

    /// Inserts a node under `parent` (a root when `None`), named if `name` is given.
    #[inline(always)]
    pub(crate) fn insert(
        &self,
        parent: Option<Key>,
        kind: NodeKind,
        location: &'static Location<'static>,
        name: Option<Box<str>>,
    ) -> NodeRef {
        let node = self.tree.borrow_mut().insert(parent, kind, location);
        if name.is_some() || self.observed {
            self.inserted(node.key, name);
        }
        node
    }

    /// The rarer half of [`Core::insert`]: a name, diagnostics, or a trace to record.
    #[cold]
    fn inserted(&self, key: Key, name: Option<Box<str>>) {
        let mut tree = self.tree.borrow_mut();
        if let Some(name) = name {
            tree.set_name(key, name);
        }
        if let Some(diag) = &self.diag {
            diag.inserted(key, tree.node(key).cancel.is_some());
        }
        if let Some(recorder) = &self.trace {
            if tree.node(key).kind == NodeKind::Task {
                recorder.borrow_mut().spawned(&tree, key);
            }
        }
    }

    /// Marks `key`'s subtree cancelled and wakes every task in it.
    pub(crate) fn cancel(&self, key: Key, reason: CancelReason) {
        let mut wake = Vec::new();
        let _marked = match &self.diag {
            None => self.tree.borrow_mut().cancel(key, reason, |_, node| {
                wake_marked(node, &mut wake);
            }),
            Some(diag) => {
                let now = diag.now();
                let marked = self.tree.borrow_mut().cancel(key, reason, |key, node| {
                    diag.marked(key, now);
                    wake_marked(node, &mut wake);
                });
                if marked > 0 {
                    diag.cancel_pending(now);
                }
                marked
            }
        };
        #[cfg(feature = "tracing")]
        if _marked > 0 {
            let id = self.tree.borrow().node(key).id;
            crate::events::cancelled(id, reason, _marked);
        }
        // Release the borrow before waking: a waker may re-enter the runtime.
        wake_all(wake);
    }

    /// Drops `key`'s future at its next poll (its subtree is cancelled): `abort()`, and the
    /// watchdog's grace period.
    pub(crate) fn abort(&self, key: Key) {
        let waker = {
            let mut tree = self.tree.borrow_mut();
            let node = tree.node_mut(key);
            if node.phase == Phase::Active {
                node.phase = Phase::Aborting;
                if node.kind == NodeKind::Task {
                    self.aborting.set(self.aborting.get() + 1);
                }
            }
            node.waker.clone()
        };
        self.cancel(key, CancelReason::Explicit);
        // Wake it even if it was already cancelled (then `cancel` woke nobody).
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Aborts every task of `key`'s subtree, shielded ones included: each is dropped at its
    /// next poll without running again, and the subtree is cancelled (regions see it).
    pub(crate) fn abort_subtree(&self, key: Key) {
        let (moved, wakers) = self.tree.borrow_mut().abort_subtree(key);
        // Counted per task moved, as `abort` does: each counts itself down when dropped.
        self.aborting.set(self.aborting.get() + moved);
        self.cancel(key, CancelReason::Explicit);
        // Release the borrow before waking (done above); wake even the already cancelled.
        wake_all(wakers);
    }

    /// The ids of the node being polled (between polls, the root) and of its ancestors,
    /// innermost first; empty when no `block_on` runs.
    pub(crate) fn ancestry(&self) -> Vec<TaskId> {
        let tree = self.tree.borrow();
        let current = self.frame.current();
        let mut at = if current != frame::NO_NODE {
            Some(current)
        } else {
            Some(self.root.get()).filter(|&root| tree.get(root).is_some())
        };
        let mut ids = Vec::new();
        while let Some(key) = at {
            ids.push(tree.node(key).id);
            at = tree.parent(key);
        }
        ids
    }

    /// Removes a childless node and wakes whoever was waiting for it to go.
    pub(crate) fn finish(&self, key: Key) {
        let mut wake = Vec::new();
        self.tree.borrow_mut().finish(key, &mut wake);
        if let Some(diag) = &self.diag {
            diag.finished();
        }
        if !wake.is_empty() {
            wake_all(wake);
        }
    }

    /// Records a panic nobody will take from a handle and cancels the region it happened in
    /// (R17): `region` is the panicking task's parent, if it is still alive.
    pub(crate) fn report_unhandled(&self, region: Option<NodeRef>, payload: Payload, task: String) {
        self.unhandled.borrow_mut().push((payload, task));
        let alive = region.and_then(|r| self.tree.borrow().resolve(r));
        if let Some(key) = alive {
            self.cancel(key, CancelReason::Failure);
        }
    }

    /// Makes `key` the current node until the guard drops (also when unwinding).
    #[inline]
    pub(crate) fn enter_node(&self, key: Key) -> CurrentGuard<'_> {
        self.frame.enter(key)
    }

    /// Records a scheduling decision, if tracing.
    pub(crate) fn record(&self, event: impl FnOnce() -> TraceEvent) {
        if let Some(recorder) = &self.trace {
            recorder.borrow_mut().record(event());
        }
    }

    /// Drops every task's future, on this thread, without waiting for cooperation: used when
    /// the runtime goes away with tasks alive (only after a bug or an abandoned `block_on`).
    pub(crate) fn tear_down(&self) {
        self.mode.set(Mode::TearingDown);
        // Waking schedules every idle task; tasks already queued stay queued once.
        let wakers = self.tree.borrow().task_wakers();
        wake_all(wakers);
        loop {
            while let Some(job) = self.shared.injector.pop() {
                self.queue.borrow_mut().push(job);
            }
            let Some(job) = self.queue.borrow_mut().pop(&self.tree) else {
                break;
            };
            // A task in teardown drops its future and completes without polling it; the
            // root is not polled.
            if let Job::Task(runnable) = job {
                self.running.set(*runnable.metadata());
                runnable.run();
            }
        }
        self.tree.borrow_mut().clear();
        // No node is left, so none is aborting (teardown does not count them down).
        self.aborting.set(0);
        // Panics recorded for the abandoned `block_on` must not resurface in the next one;
        // they are reported rather than lost.
        let unhandled: Vec<_> = self.unhandled.borrow_mut().drain(..).collect();
        for (payload, task) in unhandled {
            crate::report::report(format_args!(
                "treeloop: the {task} panicked, and its block_on was abandoned before it could \
                 re-raise the panic: {}",
                crate::panic::panic_message(&payload)
            ));
        }
        self.mode.set(Mode::Running);
    }
}

/// Wakes a node [`Tree::cancel`] just marked, in the walk's order. A task's own waker is
/// woken on the spot, under the tree's borrow: it is the async-task waker made in `spawn_in`,
/// which only queues the task and never touches the tree. Any other waker (a region's is its
/// owner's `cx.waker()`, which may be anybody's) is kept for after the borrow, and so is
/// every wake after the first kept one, so the order of wakes stays the walk's order.
/// Measured on cancel_tree: no `Vec` of 100,000 wakers to fill and drain, no clone each.
fn wake_marked(node: &crate::tree::Node, later: &mut Vec<std::task::Waker>) {
    match &node.waker {
        Some(waker) if node.kind == NodeKind::Task && later.is_empty() => waker.wake_by_ref(),
        waker => later.extend(waker.clone()),
    }
}

// ---------------------------------------------------------------------------------------
// Diagnostics: what the loop and the tasks tell `crate::diag`, and what it reports back.

impl Core {
    /// Runs `poll` (one poll of the task or root at `key`) with the diagnostics'
    /// bookkeeping around it, and reports the poll if it was slow. Callers branch on `diag`
    /// themselves and poll directly when it is off, so the hot path does not even pass
    /// through this function (measured: wrapping every poll in it cost 26 instructions per
    /// poll through lost inlining).
    #[inline(never)]
    pub(crate) fn observe_poll<R>(&self, key: Key, poll: impl FnOnce() -> R) -> R {
        let Some(diag) = &self.diag else {
            return poll();
        };
        let (result, slow) = diag.observe_poll(&self.tree, key, poll);
        if let Some(slow) = slow {
            report_message(Report::SlowPoll(slow));
        }
        result
    }

    /// Stamps progress on the task being polled (see [`Diag::progress`]).
    #[inline]
    pub(crate) fn note_progress(&self) {
        if let Some(diag) = &self.diag {
            diag.progress();
        }
    }

    /// The task being polled is told of its cancellation (see [`Diag::saw_cancel`]).
    #[inline]
    pub(crate) fn note_saw_cancel(&self) {
        if let Some(diag) = &self.diag {
            diag.saw_cancel();
        }
    }

    /// Runs the watchdog if its check is due, and acts on its verdict: reports the tasks
    /// newly found stuck (with a dump that marks them), then aborts those past their grace
    /// period (see [`watchdog`]).
    pub(crate) fn watch(&self) {
        let Some(diag) = &self.diag else { return };
        let Some(now) = diag.check_due() else {
            return;
        };
        let verdict = watchdog::check(&self.tree.borrow(), diag, now);
        if !verdict.newly_stuck.is_empty() {
            let dump = self.dump_marking(&verdict.stuck);
            report_message(Report::Stall(crate::diag::StallReport {
                stuck: verdict.newly_stuck,
                dump,
                grace: diag.grace(),
            }));
        }
        for (key, task) in verdict.to_abort {
            self.abort(key);
            report_message(Report::Aborted(task));
        }
    }

    /// A dump of the live tree (the watchdog's reports carry their own, with verdicts).
    pub(crate) fn dump(&self) -> TreeDump {
        self.dump_marking(&HashMap::new())
    }

    /// A dump with the watchdog's verdicts marked.
    fn dump_marking(&self, stuck: &HashMap<Key, crate::diag::StallCause>) -> TreeDump {
        let tree = self.tree.borrow();
        let queue = self.queue.borrow();
        let seen = Seen {
            tree: &tree,
            queue: &queue,
            root: self.root.get(),
            current: self.frame.current(),
            diag: self.diag.as_ref(),
        };
        dump::take(&seen, stuck)
    }
}
