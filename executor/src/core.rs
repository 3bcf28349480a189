//! The state of one runtime on its loop thread, and every change to its task tree.
//!
//! [`Core`] keeps its state in private groups: the structure (the tree, its root, and the
//! counts the hot path reads instead of the nodes), dispatch (the run queue, the part other
//! threads reach, the task about to be polled), the poll frame, the policy (diagnostics, the
//! report sink, whether shields get nodes at once), the ending (cooperative or tearing down,
//! the panics to re-raise) and the trace. Other files read it through [`access`]
//! ([`Core::tree`] lends the tree for reading) and change it through the named methods in
//! this file; [`watch`] holds the diagnostics hooks.
//!
//! # Ground rules
//!
//! - [`Core`] lives in an `Rc` on the loop thread; other threads only ever reach its
//!   [`Shared`] part, through wakers.
//! - The tree changes only in this file (the one borrow for writing is the private
//!   `Core::tree_mut`): a node is inserted ([`Core::insert`], [`Core::open_root`], and a
//!   lazy shield's node in [`Core::open_spawn_parent`]), marked ([`Core::cancel`]), aborted
//!   ([`Core::abort`], [`Core::abort_subtree`]), given a waker ([`Core::set_waker`],
//!   [`Core::set_region_waker`]), moved to completing ([`Core::begin_completing`],
//!   [`Core::close_region`]) and removed ([`Core::finish`], [`Core::finish_task`]); the
//!   teardown of an abandoned runtime drops every task ([`Core::tear_down`]).
//! - A task's poll starts here: [`Core::run_task`] names the task in
//!   [`Core::task_to_poll`], then runs it.
//! - No `RefCell` borrow is held while user code runs: a borrow is taken, a fact read or a
//!   node changed, and the borrow ends before any poll, drop or wake. Wakes collected under
//!   a borrow are woken after it, panic-safely ([`wake_all`]).
//!
//! Read next: [`crate::task`], the task whose poll calls into this.

use std::cell::{Cell, RefCell, RefMut};
use std::panic::Location;
use std::sync::Arc;
use std::task::Waker;

use async_task::Runnable;

use crate::cancel::CancelReason;
use crate::diag::Diag;
use crate::frame::{self, CurrentGuard, Frame};
use crate::panic::{Payload, wake_all};
use crate::park::Unpark;
use crate::queue::{Job, RunQueue, Shared};
use crate::registry::TaskMeta;
use crate::report::Sink;
use crate::trace::{Recorder, TraceEvent};
use crate::tree::{JoinInterest, Key, NodeKind, NodeRef, Phase, TaskId, Tree};

mod access;
mod watch;

/// Whether the runtime runs its tasks cooperatively or is dropping every task by force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Tasks are polled, cancellation is cooperative: the normal life of a runtime.
    Cooperative,
    /// The runtime is being dropped with tasks alive: each task's future is dropped at its
    /// next poll and the tree is no longer maintained.
    TearingDown,
}

/// The loop-thread state of one runtime, in groups. The fields are private to this file
/// (and its `access` and `watch` parts): other files read through [`access`] and change the
/// tree only through the named methods here.
pub(crate) struct Core {
    /// The tree and what is counted of it.
    structure: Structure,
    /// What runs next: the run queue, the part other threads reach, the task about to be
    /// polled.
    dispatch: Dispatch,
    /// The innermost node being polled: a task, a shield inside it, or the root. Await
    /// points read its mark; `spawn` makes it the parent.
    frame: Frame,
    /// What is watched, and where reports go.
    policy: Policy,
    /// How the run ends: cooperatively or torn down, and the panics it re-raises.
    ending: Ending,
    /// The scheduling decisions, when tracing (deterministic mode).
    trace: Option<RefCell<Recorder>>,
}

/// The tree group: the nodes, the root, and the counts the hot path reads instead of the
/// nodes.
struct Structure {
    /// Every live task, region, shield and root, with parent links and cancellation marks.
    tree: RefCell<Tree>,
    /// The root node of the `block_on` in progress.
    root: Cell<Key>,
    /// How many tasks are in the aborting phase: while none is, a task's poll need not look
    /// up its own phase (a slab lookup per poll saved, the common case).
    aborting: Cell<usize>,
    /// Tasks completed so far (a `Tick` counts its completions by the difference).
    completed: Cell<u64>,
}

/// The dispatch group: which job runs next.
struct Dispatch {
    /// Runnable tasks woken on this thread.
    queue: RefCell<RunQueue>,
    /// The part other threads reach through wakers.
    shared: Arc<Shared>,
    /// The task whose runnable the loop is about to run: set just before `Runnable::run`,
    /// read by that task's [`TaskFuture`](crate::task) first thing.
    ///
    /// Optimisation: the key handed over, not carried. The model would keep the task's key
    /// in its future; the key is already async-task's metadata, which the loop reads to run
    /// the task, so it hands it over here instead. Saves 16 bytes per task (the
    /// spawn_memory task's allocation: 168 -> 152 bytes). Costs a reader: a value passed
    /// through a cell rather than an argument, valid only between this set and that read.
    task_to_poll: Cell<Key>,
    /// The seed the scheduling strategy was given (0 unless seeded), for code that wants
    /// its own seeded choices to follow the run's seed (`treeloop::sim`'s faults).
    seed: u64,
    /// Whether code asked for `seed` (`scheduling_seed`): a replay of this run by its
    /// schedule then needs the seed too (`test::check` prints both).
    seed_read: Cell<bool>,
}

/// The policy group: diagnostics, reports and shields, fixed when the runtime is built.
struct Policy {
    /// Statistics, slow polls and the watchdog, when on (see [`crate::diag`]).
    diag: Option<Diag>,
    /// Where reports go; stderr when `None`.
    sink: Option<Sink>,
    /// Every shield gets a node when opened, so dumps and the watchdog see it: set when any
    /// diagnostic is on.
    eager_shields: bool,
    /// Diagnostics or a trace want to hear of every node inserted: `diag` or `trace` is
    /// set (one flag, so an insert without either pays one branch, as before the trace did).
    observed: bool,
}

/// The ending group: how the run ends.
struct Ending {
    /// Cooperative, or tearing down.
    mode: Cell<Mode>,
    /// Panics that nobody can take from a `JoinHandle`, with where the task was spawned;
    /// `block_on` re-raises the first.
    unhandled: RefCell<Vec<(Payload, String)>>,
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
            structure: Structure {
                tree: RefCell::new(Tree::new()),
                root: Cell::new(Key::MAX),
                aborting: Cell::new(0),
                completed: Cell::new(0),
            },
            dispatch: Dispatch {
                queue: RefCell::new(RunQueue::new(
                    scheduling.strategy,
                    scheduling.seed,
                    scheduling.pct_horizon,
                    scheduling.replay,
                )),
                shared: Shared::new(unparker),
                task_to_poll: Cell::new(Key::MAX),
                seed: scheduling.seed,
                seed_read: Cell::new(false),
            },
            frame: Frame::new(),
            policy: Policy {
                observed: scheduling.trace || diag.is_some(),
                diag,
                sink,
                eager_shields,
            },
            ending: Ending {
                mode: Cell::new(Mode::Cooperative),
                unhandled: RefCell::new(Vec::new()),
            },
            trace: scheduling.trace.then(|| RefCell::new(Recorder::new())),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The tree: every change to it. The big ones (insert, cancel, abort, finish) wake whoever
// they concern after their borrow; the small ones are one borrow each and wake nobody.

impl Core {
    /// Inserts a node under `parent` (a root when `None`), named if `name` is given.
    #[inline(always)]
    pub(crate) fn insert(
        &self,
        parent: Option<Key>,
        kind: NodeKind,
        location: &'static Location<'static>,
        name: Option<Box<str>>,
    ) -> NodeRef {
        let node = self.tree_mut().insert(parent, kind, location);
        if name.is_some() || self.policy.observed {
            self.inserted(node.key, name);
        }
        node
    }

    /// The rarer half of [`Core::insert`]: a name, diagnostics, or a trace to record.
    #[cold]
    fn inserted(&self, key: Key, name: Option<Box<str>>) {
        let mut tree = self.tree_mut();
        if let Some(name) = name {
            tree.set_name(key, name);
        }
        if let Some(diag) = &self.policy.diag {
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
        let _marked = match &self.policy.diag {
            None => self.tree_mut().cancel(key, reason, |_, node| {
                wake_marked(node, &mut wake);
            }),
            Some(diag) => {
                let now = diag.now();
                let marked = self.tree_mut().cancel(key, reason, |key, node| {
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
            let id = self.tree().node(key).id;
            crate::events::cancelled(id, reason, _marked);
        }
        // Release the borrow before waking: a waker may re-enter the runtime.
        wake_all(wake);
    }

    /// Drops `key`'s future at its next poll (its subtree is cancelled): `abort()`, and the
    /// watchdog's grace period.
    pub(crate) fn abort(&self, key: Key) {
        let waker = {
            let mut tree = self.tree_mut();
            let node = tree.node_mut(key);
            if node.phase == Phase::Active {
                node.phase = Phase::Aborting;
                if node.kind == NodeKind::Task {
                    let aborting = &self.structure.aborting;
                    aborting.set(aborting.get() + 1);
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
        let (moved, wakers) = self.tree_mut().abort_subtree(key);
        // Counted per task moved, as `abort` does: each counts itself down when dropped.
        let aborting = &self.structure.aborting;
        aborting.set(aborting.get() + moved);
        self.cancel(key, CancelReason::Explicit);
        // Release the borrow before waking (done above); wake even the already cancelled.
        wake_all(wakers);
    }

    /// Removes a childless node and wakes whoever was waiting for it to go.
    pub(crate) fn finish(&self, key: Key) {
        let mut wake = Vec::new();
        self.tree_mut().finish(key, &mut wake);
        if let Some(diag) = &self.policy.diag {
            diag.finished();
        }
        if !wake.is_empty() {
            wake_all(wake);
        }
    }

    /// Removes the task at `key`, whose future and children are gone, and counts it
    /// completed.
    #[inline]
    pub(crate) fn finish_task(&self, key: Key) {
        self.finish(key);
        let completed = &self.structure.completed;
        completed.set(completed.get() + 1);
    }

    /// Inserts the root of a new run and makes it the root of the `block_on` in progress.
    pub(crate) fn open_root(&self, location: &'static Location<'static>) -> Key {
        let root = self.insert(None, NodeKind::Root, location, None).key;
        self.structure.root.set(root);
        root
    }

    /// Takes the next id without inserting a node (a lazy shield's; see
    /// [`Tree::reserve_id`]).
    #[inline]
    pub(crate) fn reserve_id(&self) -> TaskId {
        self.tree_mut().reserve_id()
    }

    /// Makes `waker` the one woken when the node at `key` is cancelled or its last child
    /// finishes: a task's own waker, or the root's.
    #[inline]
    pub(crate) fn set_waker(&self, key: Key, waker: Waker) {
        self.tree_mut().node_mut(key).waker = Some(waker);
    }

    /// [`Core::set_waker`] for an open region, which may be gone: `false` (and nothing
    /// written) when its node has left the tree. The waker is cloned only when it would not
    /// wake the same task as the one kept.
    pub(crate) fn set_region_waker(&self, region: NodeRef, waker: &Waker) -> bool {
        let mut tree = self.tree_mut();
        let Some(key) = tree.resolve(region) else {
            return false;
        };
        let node = tree.node_mut(key);
        if !node.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            node.waker = Some(waker.clone());
        }
        true
    }

    /// The owner left the region: nobody is woken for it any more, and it goes now if it is
    /// empty, else with its last child (it is completing).
    pub(crate) fn close_region(&self, region: NodeRef) {
        let empty = {
            let mut tree = self.tree_mut();
            let Some(key) = tree.resolve(region) else {
                return;
            };
            let node = tree.node_mut(key);
            node.waker = None;
            node.phase = Phase::Completing;
            (!tree.has_children(key)).then_some(key)
        };
        if let Some(key) = empty {
            self.finish(key);
        }
    }

    /// The task's `JoinHandle` was dropped while the task lives on: a panic of it now has
    /// nobody to go to but the runtime (R17).
    pub(crate) fn handle_dropped(&self, task: NodeRef) {
        let mut tree = self.tree_mut();
        if let Some(key) = tree.resolve(task) {
            tree.node_mut(key).join = JoinInterest::Dropped;
        }
    }

    /// The future of the task (or root) at `key` is gone: it enters the completing phase,
    /// where it waits for its children. An aborted task stops counting as aborting.
    #[inline]
    pub(crate) fn begin_completing(&self, key: Key) {
        let mut tree = self.tree_mut();
        let node = tree.node_mut(key);
        let phase = std::mem::replace(&mut node.phase, Phase::Completing);
        if phase == Phase::Aborting && node.kind == NodeKind::Task {
            let aborting = &self.structure.aborting;
            aborting.set(aborting.get() - 1);
        }
    }

    /// The tree, borrowed for a change: private, so that only this file changes the tree.
    #[inline]
    fn tree_mut(&self) -> RefMut<'_, Tree> {
        self.structure.tree.borrow_mut()
    }
}

/// Wakes a node [`Tree::cancel`] just marked, in the walk's order.
///
/// Optimisation: waking under the borrow. The model (and the ground rule) wakes only after
/// the tree's borrow ends, from a list. A task's own waker is woken on the spot instead:
/// it is the async-task waker made in `spawn_in`, which only queues the task and never
/// touches the tree. Any other waker (a region's is its owner's `cx.waker()`, which may be
/// anybody's) is kept for after the borrow, and so is every wake after the first kept one,
/// so the order of wakes stays the walk's order. Saves, cancelling a tree of 100,100 tasks:
/// a `Vec` of 100,100 wakers (1.6 MB) to fill and drain, a clone and a drop of each, 45
/// instructions per cancelled task (callgrind: 155.2 against 159.7 million). Costs a
/// reader: the one exception to "no wake under a borrow", and the reason it is safe.
fn wake_marked(node: &crate::tree::Node, later: &mut Vec<std::task::Waker>) {
    match &node.waker {
        Some(waker) if node.kind == NodeKind::Task && later.is_empty() => waker.wake_by_ref(),
        waker => later.extend(waker.clone()),
    }
}

// ---------------------------------------------------------------------------------------
// The poll frame: which node is current, and where a spawn goes.

impl Core {
    /// Where `spawn` (or a region opened) right now belongs: the node being polled; between
    /// polls (a `Drop` run by the loop, a waker), the root of the `block_on` in progress.
    /// Inside a shield that has no node yet, it opens the shield's node first (see
    /// [`crate::frame`]): the one way to ask for a parent, and it may insert a node.
    ///
    /// # Panics
    ///
    /// When neither exists: no `block_on` is running on this runtime any more.
    #[track_caller]
    pub(crate) fn open_spawn_parent(&self) -> Key {
        if let Some(shield) = frame::lazy_shield() {
            return self.open_lazy_shield(shield);
        }
        self.polled_node()
    }

    /// [`Core::polled_node`] as a reference that can outlive it.
    #[track_caller]
    pub(crate) fn polled_ref(&self) -> NodeRef {
        let key = self.polled_node();
        self.tree().node_ref(key)
    }

    /// The node being polled; between polls, the root of the `block_on` in progress.
    #[track_caller]
    fn polled_node(&self) -> Key {
        // The current node is always live or the "no node" sentinel (`enter_node` sets it to
        // the node being polled and restores it), so it is returned without a lookup
        // (optimisation: a spawn inside a poll reads no node to find its parent).
        let current = self.frame.current();
        if current != frame::NO_NODE {
            return current;
        }
        let root = self.structure.root.get();
        assert!(
            self.tree().get(root).is_some(),
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
        let host = self.tree().resolve(shield.host);
        let parent = host.unwrap_or_else(|| self.polled_node());
        let key = self
            .tree_mut()
            .insert_as(Some(parent), NodeKind::Shield, shield.location, shield.id)
            .key;
        if self.policy.diag.is_some() {
            self.inserted(key, None);
        }
        let replaced = self.frame.replace(key);
        frame::replace_lazy_shield(None);
        frame::replace_shield_made(Some((key, replaced)));
        key
    }

    /// Makes `key` the current node until the guard drops (also when unwinding).
    #[inline]
    pub(crate) fn enter_node(&self, key: Key) -> CurrentGuard<'_> {
        self.frame.enter(key)
    }

    /// Makes `previous` the current node again: the end of a lazy shield's poll in which
    /// its node was opened (see [`crate::frame`]).
    #[inline]
    pub(crate) fn restore_current(&self, previous: Key) {
        self.frame.replace(previous);
    }

    /// The ids of the node being polled (between polls, the root) and of its ancestors,
    /// innermost first; empty when no `block_on` runs.
    pub(crate) fn ancestry(&self) -> Vec<TaskId> {
        let tree = self.tree();
        let current = self.frame.current();
        let mut at = if current != frame::NO_NODE {
            Some(current)
        } else {
            Some(self.structure.root.get()).filter(|&root| tree.get(root).is_some())
        };
        let mut ids = Vec::new();
        while let Some(key) = at {
            ids.push(tree.node(key).id);
            at = tree.parent(key);
        }
        ids
    }
}

// ---------------------------------------------------------------------------------------
// Dispatch: the queue's pushes and pops, and the start of a task's poll.

impl Core {
    /// Queues `job` on this thread's run queue.
    #[inline]
    pub(crate) fn push_job(&self, job: Job) {
        self.dispatch.queue.borrow_mut().push(job);
    }

    /// The next job to run, if any. The borrow ends before it returns: the job runs
    /// without it.
    #[inline]
    pub(crate) fn pop_job(&self) -> Option<Job> {
        self.dispatch.queue.borrow_mut().pop()
    }

    /// Gives back the buffer of a run queue that a burst grew and the batch drained, before
    /// the root's poll (see `RunQueue::pop`): the root is where a program looks at itself
    /// (its memory, its statistics), and it is often the batch's last job, which runs
    /// before the pick that finds the queue empty.
    pub(crate) fn shrink_queue_before_root(&self) {
        self.dispatch.queue.borrow_mut().shrink_if_drained();
    }

    /// Moves the wakes other threads injected into the local queue; returns how many.
    #[inline]
    pub(crate) fn inject_remote(&self) -> usize {
        let mut queue = self.dispatch.queue.borrow_mut();
        let mut injected = 0;
        while let Some(job) = self.dispatch.shared.injector.pop() {
            queue.push(job);
            injected += 1;
        }
        injected
    }

    /// Whether a job is runnable: in the local queue, or injected by another thread.
    #[inline]
    pub(crate) fn has_runnable(&self) -> bool {
        !self.dispatch.queue.borrow().is_empty() || !self.dispatch.shared.injector.is_empty()
    }

    /// Jobs queued so far (a `Tick` counts its wakes by the difference).
    #[inline]
    pub(crate) fn queued(&self) -> u64 {
        self.dispatch.queue.borrow().queued()
    }

    /// Runs a task's runnable: names the task in [`Core::task_to_poll`], then lets
    /// async-task poll its [`TaskFuture`](crate::task), which reads it first thing.
    #[inline]
    pub(crate) fn run_task(&self, runnable: Runnable<TaskMeta>) {
        self.dispatch.task_to_poll.set(runnable.metadata().key());
        runnable.run();
    }

    /// Records, if tracing, that the task at `key` is about to be polled.
    #[inline]
    pub(crate) fn record_polled(&self, number: u64) {
        if let Some(recorder) = &self.trace {
            recorder.borrow_mut().record(TraceEvent::Poll(number));
        }
    }

    /// Records a scheduling decision, if tracing.
    pub(crate) fn record(&self, event: impl FnOnce() -> TraceEvent) {
        if let Some(recorder) = &self.trace {
            recorder.borrow_mut().record(event());
        }
    }
}

// ---------------------------------------------------------------------------------------
// The end of a run: the panics nobody took, and the teardown of an abandoned one.

impl Core {
    /// Records a panic nobody will take from a handle and cancels the region it happened in
    /// (R17): `region` is the panicking task's parent, if it is still alive.
    pub(crate) fn report_unhandled(&self, region: Option<NodeRef>, payload: Payload, task: String) {
        self.ending.unhandled.borrow_mut().push((payload, task));
        let alive = region.and_then(|r| self.tree().resolve(r));
        if let Some(key) = alive {
            self.cancel(key, CancelReason::Failure);
        }
    }

    /// The panics nobody took from a handle, in the order they happened; none are left.
    pub(crate) fn take_unhandled(&self) -> Vec<(Payload, String)> {
        self.ending.unhandled.borrow_mut().drain(..).collect()
    }

    /// Drops every task's future, on this thread, without waiting for cooperation: used when
    /// the runtime goes away with tasks alive (only after a bug or an abandoned `block_on`).
    pub(crate) fn tear_down(&self) {
        self.ending.mode.set(Mode::TearingDown);
        // Waking schedules every idle task; tasks already queued stay queued once.
        let wakers = self.tree().task_wakers();
        wake_all(wakers);
        loop {
            self.inject_remote();
            let Some(job) = self.pop_job() else {
                break;
            };
            // A task in teardown drops its future and completes without polling it; the
            // root is not polled.
            if let Job::Task(runnable) = job {
                self.run_task(runnable);
            }
        }
        self.tree_mut().clear();
        // No node is left, so none is aborting (teardown does not count them down).
        self.structure.aborting.set(0);
        // Panics recorded for the abandoned `block_on` must not resurface in the next one;
        // they are reported rather than lost.
        for (payload, task) in self.take_unhandled() {
            crate::report::report(format_args!(
                "treeloop: the {task} panicked, and its block_on was abandoned before it could \
                 re-raise the panic: {}",
                crate::panic::panic_message(&payload)
            ));
        }
        self.ending.mode.set(Mode::Cooperative);
    }
}
