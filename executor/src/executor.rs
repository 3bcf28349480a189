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
//!
//! Read next: [`crate::checkpoint`], the await points where a cancelled task hears of it.

use std::future::Future;
use std::panic::{self, Location};
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::context;
use crate::core::Core;
use crate::diag::{Diagnostics, TreeDump};
use crate::park::{Park, ParkMode, ParkRequest, Unpark};
use crate::queue::Job;
use crate::report::{Report, Sink, report_message};
use crate::root::{RootTask, TeardownOnUnwind, report_extra_panics};
use crate::strategy::Strategy;
use crate::trace::{Trace, TraceEvent};
use crate::tree::NodeKind;
use crate::wake::RootWaker;

/// How many tasks one tick runs before the loop looks at I/O and timers again. Bounds how
/// long a burst of ready tasks can keep events waiting (61, like tokio: prime, so it does
/// not beat in step with power-of-two batch sizes in user code).
const EVENT_INTERVAL: usize = 61;

/// What one tick did: facts a test or a trace can assert on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tick {
    /// Tasks polled.
    pub polled: usize,
    /// Wakes from other threads moved into the local queue.
    pub injected: usize,
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

/// Moves remote wakes into the local queue, then runs up to [`EVENT_INTERVAL`] jobs;
/// `poll_root` is called when the root's turn comes.
fn tick(core: &Core, poll_root: &mut dyn FnMut()) -> Tick {
    let mut tick = Tick::default();
    {
        let mut queue = core.queue.borrow_mut();
        while let Some(job) = core.shared.injector.pop() {
            queue.push(job);
            tick.injected += 1;
        }
    }
    while tick.polled < EVENT_INTERVAL {
        // The borrow ends with the statement: the job runs without it.
        let Some(job) = core.queue.borrow_mut().pop(&core.tree) else {
            break;
        };
        match job {
            Job::Task(runnable) => {
                let key = *runnable.metadata();
                if let Some(recorder) = &core.trace {
                    recorder.borrow_mut().polled(&core.tree.borrow(), key);
                }
                core.running.set(key);
                runnable.run();
            }
            Job::Root => {
                core.record(|| TraceEvent::PollRoot);
                poll_root();
            }
        }
        tick.polled += 1;
    }
    tick
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
        Executor {
            core: Rc::new(Core::new(unparker, options)),
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
            tick(core, &mut || root_task.poll());
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
                            crate::panic::panic_message(payload)
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
