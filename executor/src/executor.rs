//! The loop: poll the root, run a batch of tasks, park; until the whole tree has finished.
//!
//! # Ground rules
//!
//! - One thread. [`Core`] lives in an `Rc` on the loop thread; other threads only ever reach
//!   [`Shared`] through wakers.
//! - No `RefCell` borrow of the core is held while user code runs: a borrow is taken, a fact
//!   read or a node changed, and the borrow ends before any poll, drop or wake.
//! - `block_on` returns only when the root future has returned *and* the root node has no
//!   children left (R3). Panics are caught where they happen and re-raised only then, after
//!   every cleanup has run (R17).
//!
//! # The phases of one turn
//!
//! ```text
//!  ┌─> 1. tick: move remote wakes into the local queue, then run up to EVENT_INTERVAL
//!  │      jobs in FIFO order; a job is a task, or the root future when it was woken
//!  │   2. done? root returned and no child left -> return
//!  │   3. watchdog: if diagnostics are on and a check is due, look for stuck tasks
//!  │   4. park: nothing runnable -> block (or jump virtual time); else only collect events;
//!  │      the park may ask for a root cancel (Ctrl-C) or a dump (SIGUSR1)
//!  └───────────────────────────────────────────────────────────────────────────────────────
//! ```

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{self, Location};
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::cancel::CancelReason;
use crate::context;
use crate::diag::{Diag, Diagnostics, TreeDump};
use crate::park::{Park, ParkMode, ParkRequest, Unpark};
use crate::queue::{Job, RunQueue, Shared};
use crate::report::{Report, Sink, report_message};
use crate::root::{RootTask, RootWaker, TeardownOnUnwind, report_extra_panics, wake_all};
use crate::strategy::Strategy;
use crate::trace::{Recorder, Trace, TraceEvent};
use crate::tree::{Key, NodeKind, NodeRef, Phase, TaskId, Tree};

/// A panic payload, as `catch_unwind` returns it.
pub type Payload = Box<dyn Any + Send + 'static>;

/// How many tasks one tick runs before the loop looks at I/O and timers again. Bounds how
/// long a burst of ready tasks can keep events waiting (61, like tokio: prime, so it does
/// not beat in step with power-of-two batch sizes in user code).
const EVENT_INTERVAL: usize = 61;

/// Whether the runtime is running normally or dropping every task by force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Tasks run, cancellation is cooperative.
    Running,
    /// The runtime is being dropped with tasks alive: each task's future is dropped at its
    /// next poll and the tree is no longer maintained.
    TearingDown,
}

/// What one tick did: facts a test or a trace can assert on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tick {
    /// Tasks polled.
    pub polled: usize,
    /// Wakes from other threads moved into the local queue.
    pub injected: usize,
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
    /// The task whose runnable the loop is about to run: set just before `Runnable::run`,
    /// read by that task's [`TaskFuture`](crate::task) first thing (so the task allocation
    /// need not carry its key twice; see `task.rs`).
    pub(crate) running: Cell<Key>,
    /// The innermost node being polled: a task, a shield inside it, or the root. Await
    /// points read its mark; `spawn` makes it the parent.
    pub(crate) current: Cell<Key>,
    /// Every shield gets a node when opened, so dumps and the watchdog see it: set when any
    /// diagnostic is on.
    pub(crate) eager_shields: bool,
    /// Panics that nobody can take from a `JoinHandle`, with where the task was spawned;
    /// `block_on` re-raises the first.
    pub(crate) unhandled: RefCell<Vec<(Payload, String)>>,
    /// Running, or tearing down.
    pub(crate) mode: Cell<Mode>,
    /// The scheduling decisions, when tracing (deterministic mode).
    trace: Option<RefCell<Recorder>>,
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

/// Everything an [`Executor`] can be configured with.
#[derive(Clone, Default)]
pub struct Options {
    /// Strategy, seed and trace.
    pub scheduling: Scheduling,
    /// Which diagnostics to keep (none by default).
    pub diagnostics: Diagnostics,
    /// Where reports go (stderr by default).
    pub sink: Option<Sink>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("scheduling", &self.scheduling)
            .field("diagnostics", &self.diagnostics)
            .field("sink", &self.sink.as_ref().map(|_| "custom"))
            .finish()
    }
}

/// How the executor schedules: the strategy, its seed, and whether to record a trace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scheduling {
    /// Which ready job runs next.
    pub strategy: Strategy,
    /// The seed of the strategy's generator.
    pub seed: u64,
    /// Record every decision (see [`Executor::trace`]).
    pub trace: bool,
    /// The steps `Strategy::Pct` spreads its change points over (its `k`); `None` for the
    /// default (see [`Strategy::Pct`]).
    pub pct_horizon: Option<u64>,
    /// Take the choices of a recorded schedule instead of the strategy's (see
    /// [`Schedule`](crate::Schedule)).
    pub replay: Option<crate::schedule::Replay>,
}

impl Core {
    /// Where `spawn` (or a region opened) right now belongs: the node being polled; between
    /// polls (a `Drop` run by the loop, a waker), the root of the running `block_on`.
    ///
    /// # Panics
    ///
    /// When neither exists: no `block_on` is running on this runtime any more.
    #[track_caller]
    pub(crate) fn spawn_parent(&self) -> Key {
        if let Some(shield) = context::lazy_shield() {
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
        let current = self.current.get();
        if current != Key::MAX {
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
    /// the current node, when its poll ends ([`context::replace_shield_made`]).
    #[cold]
    #[track_caller]
    fn open_lazy_shield(&self, shield: context::LazyShield) -> Key {
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
        let replaced = self.current.replace(key);
        context::replace_lazy_shield(None);
        context::replace_shield_made(Some((key, replaced)));
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
        let current = self.current.get();
        let mut at = if current != Key::MAX {
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
        CurrentGuard {
            core: self,
            previous: self.current.replace(key),
            // A node's await points read its mark, even if a lazy shield polls it (a region
            // opened before the shield was entered is not below the shield).
            previous_lazy: context::replace_lazy_shield(None),
        }
    }

    /// Moves remote wakes into the local queue, then runs up to [`EVENT_INTERVAL`] jobs;
    /// `poll_root` is called when the root's turn comes.
    fn tick(&self, poll_root: &mut dyn FnMut()) -> Tick {
        let mut tick = Tick::default();
        {
            let mut queue = self.queue.borrow_mut();
            while let Some(job) = self.shared.injector.pop() {
                queue.push(job);
                tick.injected += 1;
            }
        }
        while tick.polled < EVENT_INTERVAL {
            // The borrow ends with the statement: the job runs without it.
            let Some(job) = self.queue.borrow_mut().pop(&self.tree) else {
                break;
            };
            match job {
                Job::Task(runnable) => {
                    let key = *runnable.metadata();
                    if let Some(recorder) = &self.trace {
                        recorder.borrow_mut().polled(&self.tree.borrow(), key);
                    }
                    self.running.set(key);
                    runnable.run();
                }
                Job::Root => {
                    self.record(|| TraceEvent::PollRoot);
                    poll_root();
                }
            }
            tick.polled += 1;
        }
        tick
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
                crate::join::panic_message(&payload)
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

/// Restores the previous frame: the current node, and the lazy shield around it if any.
pub(crate) struct CurrentGuard<'a> {
    core: &'a Core,
    previous: Key,
    previous_lazy: Option<context::LazyShield>,
}

impl Drop for CurrentGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.core.current.set(self.previous);
        context::replace_lazy_shield(self.previous_lazy);
    }
}

/// A single-threaded executor whose scheduler owns the task tree.
///
/// The facade crate pairs it with the reactor; on its own it runs with any [`Park`].
pub struct Executor {
    /// Everything the loop and the tasks share on this thread.
    core: Rc<Core>,
}

impl Executor {
    /// An executor that interrupts its park with `unparker` when woken from another thread.
    pub fn new(unparker: Arc<dyn Unpark>) -> Self {
        Executor::with_scheduling(unparker, Scheduling::default())
    }

    /// An executor with a scheduling strategy, a seed, and optionally a trace.
    pub fn with_scheduling(unparker: Arc<dyn Unpark>, scheduling: Scheduling) -> Self {
        Executor::with_options(
            unparker,
            Options {
                scheduling,
                ..Options::default()
            },
        )
    }

    /// An executor with every option: scheduling, diagnostics and the report sink.
    pub fn with_options(unparker: Arc<dyn Unpark>, options: Options) -> Self {
        let Options {
            scheduling,
            diagnostics,
            sink,
        } = options;
        let eager_shields = diagnostics.wants_shield_nodes();
        let diag = Diag::new(diagnostics);
        Executor {
            core: Rc::new(Core {
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
                running: Cell::new(Key::MAX),
                current: Cell::new(Key::MAX),
                eager_shields,
                unhandled: RefCell::new(Vec::new()),
                mode: Cell::new(Mode::Running),
                diag,
                sink,
            }),
        }
    }

    /// A snapshot of the live tree (empty between `block_on` calls); with diagnostics on it
    /// includes poll counts and times.
    pub fn dump(&self) -> TreeDump {
        self.core.dump()
    }

    /// Number of live tasks, shields and roots in the tree.
    pub fn live_nodes(&self) -> usize {
        self.core.tree.borrow().len()
    }

    /// Scheduling steps taken so far: picks made while two or more jobs were ready, the `k`
    /// of [`Strategy::Pct`] (counted under `Random` and `Pct`; 0 under `Fifo`).
    pub fn scheduling_steps(&self) -> u64 {
        self.core.queue.borrow().steps()
    }

    /// The choices made so far at picks with two or more jobs ready, by task number
    /// (recorded under `Random`, `Pct` and a replay; empty under `Fifo`).
    pub fn schedule(&self) -> crate::Schedule {
        self.core.queue.borrow().schedule()
    }

    /// Choices at which a replay could not take its schedule's task (it had run out, or
    /// named a task that was not ready) and fell back; 0 unless replaying.
    pub fn replay_divergences(&self) -> u64 {
        self.core.queue.borrow().divergences()
    }

    /// A replay's choices with the alternatives each had, when
    /// [`Replay::log_choice_points`](crate::Replay::log_choice_points) asked for them.
    pub fn choice_points(&self) -> Vec<crate::ChoicePoint> {
        self.core.queue.borrow().choice_points()
    }

    /// Whether code run here asked for the scheduling seed
    /// ([`scheduling_seed`](crate::scheduling_seed)): its choices then depend on the seed,
    /// which a schedule alone does not carry.
    pub fn seed_was_read(&self) -> bool {
        self.core.seed_read.get()
    }

    /// The decisions recorded so far (empty unless tracing was asked for).
    pub fn trace(&self) -> Trace {
        self.core
            .trace
            .as_ref()
            .map(|recorder| recorder.borrow().snapshot())
            .unwrap_or_default()
    }

    /// Runs `future` as the root of a task tree until it and every task spawned under it
    /// have finished, parking in `park` whenever nothing is runnable.
    ///
    /// # Panics
    ///
    /// When called inside a running treeloop runtime on this thread (nested `block_on`),
    /// and, after every task has finished, with the first panic nobody took from a
    /// `JoinHandle` (the root's own panic first).
    #[track_caller]
    pub fn block_on<F: Future, P: Park>(&self, future: F, park: &mut P) -> F::Output {
        self.block_on_at(future, park, Location::caller())
    }

    /// [`block_on`](Self::block_on) with the root's spawn location given: for a wrapper
    /// (`test::check`) whose own caller is where the root was really started.
    pub fn block_on_at<F: Future, P: Park>(
        &self,
        future: F,
        park: &mut P,
        location: &'static Location<'static>,
    ) -> F::Output {
        let _context = context::enter(self.core.clone());
        // If this frame unwinds (a bug, or a Park that panicked), drop every task here,
        // on the loop thread, instead of leaking them into wakers held elsewhere.
        let _teardown = TeardownOnUnwind(&self.core);
        let core = &*self.core;

        let root = core.insert(None, NodeKind::Root, location, None).key;
        core.root.set(root);
        let root_waker = Arc::new(RootWaker {
            queued: AtomicBool::new(true),
            shared: core.shared.clone(),
        });
        core.queue.borrow_mut().push(Job::Root);
        let waker = futures_task::waker(root_waker.clone());
        core.tree.borrow_mut().node_mut(root).waker = Some(waker.clone());
        let mut root_task = RootTask {
            core,
            key: root,
            queued: &root_waker.queued,
            waker,
            future: pin!(Some(future)),
            outcome: None,
        };

        loop {
            // 1. Run a batch of jobs.
            core.tick(&mut || root_task.poll());
            // 2. Done when the root returned and the whole tree below it finished. Checked
            //    after the tick, before parking: the last child may have just finished.
            if root_task.outcome.is_some() && !core.tree.borrow().has_children(root) {
                break;
            }
            // 3. The watchdog, when a check is due (only while a cancellation is pending).
            //    After the tick: a task woken by the last park has been polled by now, so it
            //    is judged on what it did, not on the wake it has not had yet.
            core.watch();
            // 4. Park: block only when nothing at all is runnable.
            let runnable = !core.queue.borrow().is_empty() || !core.shared.injector.is_empty();
            let request = if runnable {
                park.park(ParkMode::NoWait)
            } else {
                core.record(|| TraceEvent::Park);
                self.park_idle(park)
            };
            match request {
                ParkRequest::Continue => {}
                ParkRequest::CancelRoot(reason) => core.cancel(root, reason),
                ParkRequest::Dump => report_message(Report::Dump(core.dump())),
                ParkRequest::Deadlock => {
                    let tree = core.dump();
                    let root_panic = match &root_task.outcome {
                        Some(Err(payload)) => format!(
                            "\n(the block_on future had panicked before: {})",
                            crate::join::panic_message(payload)
                        ),
                        _ => String::new(),
                    };
                    panic!(
                        "treeloop deadlock: no task can make progress (nothing is runnable, \
                         no timer is pending, no I/O or other thread can wake a task), yet \
                         tasks remain:\n{tree}{root_panic}"
                    );
                }
            }
        }
        let outcome = root_task.outcome.take();
        // Only root wakes can be left over (every task has finished): drop them, so the next
        // `block_on` on this runtime starts from an empty queue.
        while self.core.queue.borrow_mut().pop(&self.core.tree).is_some() {}

        core.finish(root);
        if let Some(diag) = &core.diag {
            // Nothing is pending any more: the next block_on starts without a check due.
            diag.reset();
        }
        let unhandled: Vec<_> = core.unhandled.borrow_mut().drain(..).collect();
        let mut panics = unhandled.into_iter();
        match outcome {
            Some(Ok(value)) => match panics.next() {
                None => value,
                Some((first, _)) => {
                    report_extra_panics(panics);
                    panic::resume_unwind(first)
                }
            },
            Some(Err(root_panic)) => {
                report_extra_panics(panics);
                panic::resume_unwind(root_panic)
            }
            None => unreachable!("the loop only ends once the root has an outcome"),
        }
    }

    /// Blocks in `park` unless a wake slipped in. The `sleeping` flag is the loop's half of
    /// the handshake in `Shared::push_remote`: set it, *then* look for work one last time.
    fn park_idle<P: Park>(&self, park: &mut P) -> ParkRequest {
        let shared = &self.core.shared;
        shared.sleeping.store(true, Ordering::SeqCst);
        let request = if shared.injector.is_empty() {
            // With a watchdog check pending, come back for it even if nothing happens.
            let check = self.core.diag.as_ref().and_then(|diag| {
                let due = diag.next_check()?;
                Some(due.saturating_sub(diag.now()))
            });
            park.park(check.map_or(ParkMode::Wait, ParkMode::WaitAtMost))
        } else {
            ParkRequest::Continue
        };
        shared.sleeping.store(false, Ordering::SeqCst);
        request
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        if self.core.tree.borrow().len() > 0 {
            let _context = (!context::in_runtime()).then(|| context::enter(self.core.clone()));
            self.core.tear_down();
        }
        self.core.shared.closed.store(true, Ordering::Release);
        // Whatever was woken meanwhile has no future left: just free it.
        while self.core.shared.injector.pop().is_some() {}
    }
}
