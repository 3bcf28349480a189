//! The loop: poll the root, run a batch of tasks, park; until the whole tree has finished.
//!
//! # Ground rules
//!
//! - One thread. [`Core`] lives in an `Rc` on the loop thread; other threads only ever reach
//!   [`Shared`](crate::queue::Shared) through wakers.
//! - No `RefCell` borrow of the core is held while user code runs: a borrow is taken, a fact
//!   read or a node changed, and the borrow ends before any poll, drop or wake.
//! - `block_on` returns only when the root future has returned *and* the root node has no
//!   children left (R3). Panics are caught where they happen and re-raised only then, after
//!   every cleanup has run (R17).
//!
//! # The phases of one turn
//!
//! ```text
//!  ┌─> 1. batch: move remote wakes into the local queue, then run up to EVENT_INTERVAL
//!  │      jobs in FIFO order; a job is a task, or the root future when it was woken
//!  │   2. finished? root returned and no child left -> the run ends
//!  │   3. watchdog: if diagnostics are on and a check is due, look for stuck tasks
//!  │   4. park: nothing runnable -> block (or jump virtual time); else only collect events;
//!  │      the park may ask for a root cancel (Ctrl-C) or a dump (SIGUSR1)
//!  └───────────────────────────────────────────────────────────────────────────────────────
//! ```
//!
//! One pass is [`Stepper::step`], which returns a [`Tick`] (what the turn did and left).
//! [`Executor::block_on`] is [`Executor::start`], then the same turns until the run finishes:
//! a test or a learner stepping a run sees exactly the turns `block_on` takes.
//!
//! Read next: [`crate::checkpoint`](mod@crate::checkpoint), the await points where a cancelled
//! task hears of it.

use std::future::Future;
use std::panic::{self, Location};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::context;
use crate::core::Core;
use crate::options::{Options, Scheduling};
use crate::park::{Park, ParkMode, ParkRequest, Unpark};
use crate::queue::Job;
use crate::report::{Report, report_message};
use crate::root::RootTask;
use crate::trace::TraceEvent;

mod observe;

/// How many tasks one batch runs before the loop looks at I/O and timers again. Bounds how
/// long a burst of ready tasks can keep events waiting (61, like tokio: prime, so it does
/// not beat in step with power-of-two batch sizes in user code).
const EVENT_INTERVAL: usize = 61;

/// What one turn of the loop did, and what it left: facts a test or a learner can step
/// through and assert on (see [`Stepper::step`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tick {
    /// Jobs polled: tasks, and the `block_on` future when its turn came.
    pub polled: usize,
    /// Tasks that completed (returned, panicked or were aborted, and had no child left).
    pub completed: usize,
    /// Jobs the polls put in the run queue: wakes (a task's own yield too), tasks spawned.
    pub woken: usize,
    /// Wakes from other threads moved into the local queue before the polls.
    pub injected: usize,
    /// Jobs were still runnable after the batch (its limit reached, or its last polls woke
    /// somebody), so the park after it did not wait.
    pub has_remaining: bool,
    /// How long until the earliest timer is due, on the runtime's clock, as the park found
    /// it before parking (`None`: no timer pending, or a [`Park`] without timers).
    pub next_deadline: Option<Duration>,
    /// The run ended with this turn: the root future has returned and its whole tree has
    /// finished (R3).
    pub finished: bool,
}

/// Phase 1 of a turn, the batch: moves remote wakes into the local queue, then runs up to
/// [`EVENT_INTERVAL`] jobs; `poll_root` is called when the root's turn comes. Returns the
/// turn's [`Tick`] with the batch's counts filled in.
fn run_batch(core: &Core, poll_root: &mut dyn FnMut()) -> Tick {
    let mut tick = Tick::default();
    let completed = core.completed();
    tick.injected = core.inject_remote();
    let queued = core.queued();
    while tick.polled < EVENT_INTERVAL {
        // The queue's borrow ends inside `pop_job`: the job runs without it.
        let Some(job) = core.pop_job() else {
            break;
        };
        match job {
            Job::Task(runnable) => {
                core.record_polled(runnable.metadata().number());
                core.run_task(runnable);
            }
            Job::Root => {
                core.record(|| TraceEvent::PollRoot);
                core.shrink_queue_before_root();
                poll_root();
            }
        }
        tick.polled += 1;
    }
    tick.woken = (core.queued() - queued) as usize;
    tick.completed = (core.completed() - completed) as usize;
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

    /// Runs `future` as the root of a task tree until it and every task spawned under it
    /// have finished, parking in `park` whenever nothing is runnable.
    ///
    /// # Panics
    ///
    /// When called inside a treeloop runtime current on this thread (nested `block_on`),
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
        let mut run = self.start_at(future, location);
        {
            // Entered once for every turn. Nobody reads `block_on`'s ticks, so its turns do
            // not ask the park for its next deadline (a clock read, a timer-heap borrow).
            let _context = context::enter(self.core.clone());
            while !run.turn(park, Deadline::Skip).finished {}
        }
        run.finish(park)
    }

    /// Starts `future` as the root of a task tree without running anything: the
    /// [`Stepper`] runs the loop one turn at a time, for a test or a learner (`block_on` is
    /// `start`, then the same turns until the run finishes).
    ///
    /// # Panics
    ///
    /// Inside a treeloop runtime current on this thread (as a nested `block_on`), and when
    /// this executor already has a run in progress (another `Stepper` not finished or
    /// dropped yet).
    #[track_caller]
    pub fn start<F: Future>(&self, future: F) -> Stepper<'_, F> {
        self.start_at(future, Location::caller())
    }

    /// [`start`](Self::start) with the root's spawn location given.
    pub fn start_at<F: Future>(
        &self,
        future: F,
        location: &'static Location<'static>,
    ) -> Stepper<'_, F> {
        context::assert_outside();
        let core = &*self.core;
        assert!(
            core.tree().len() == 0,
            "Executor::start while another run of this executor is in progress: finish the \
             other Stepper (or drop it) first"
        );
        Stepper {
            executor: self,
            root: RootTask::open(core, future, location),
            state: State::InProgress,
        }
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        if self.core.tree().len() > 0 {
            let _context = (!context::in_runtime()).then(|| context::enter(self.core.clone()));
            self.core.tear_down();
        }
        self.core.shared().closed.store(true, Ordering::Release);
        // Whatever was woken meanwhile has no future left: just free it.
        while self.core.shared().injector.pop().is_some() {}
    }
}

/// Whether a turn asks the park for its next deadline ([`Tick::next_deadline`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Deadline {
    /// A `Stepper::step`, whose caller reads the tick.
    Ask,
    /// `block_on`'s turns, whose ticks nobody reads.
    Skip,
}

/// Where a [`Stepper`]'s run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Turns are left to take.
    InProgress,
    /// The root future returned and its whole tree finished; its output waits in the root.
    Finished,
    /// A turn panicked (a deadlock report, a panicking park): the run is abandoned, and the
    /// tree is torn down when the `Stepper` is dropped.
    Broken,
}

/// A run of the loop taken one turn at a time: made by [`Executor::start`], stepped by
/// [`Stepper::step`], ended by [`Stepper::finish`] (which returns what `block_on` would).
/// Dropped before it finished, it tears its tree down: every task's future is dropped, no
/// task runs again (as when `block_on` unwinds).
pub struct Stepper<'e, F: Future> {
    /// The executor it runs on (one run at a time).
    executor: &'e Executor,
    /// The root future and its node.
    root: RootTask<'e, F>,
    /// Where the run is.
    state: State,
}

impl<F: Future> Stepper<'_, F> {
    /// Takes one turn of the loop (the module docs' four phases: the batch; finished?; the
    /// watchdog; the park, which waits for a timer, I/O or a wake when nothing is runnable,
    /// or jumps virtual time) and says what it did.
    ///
    /// The finishing turn settles what the run raises (R17; other panics are reported then).
    /// After the run finished, a step does nothing and says `finished` again.
    ///
    /// # Panics
    ///
    /// When nothing can ever wake a task again and the park reports it (a deadlock, in
    /// deterministic mode), and when called again after a turn panicked.
    pub fn step<P: Park>(&mut self, park: &mut P) -> Tick {
        let _context = context::enter(self.executor.core.clone());
        self.turn(park, Deadline::Ask)
    }

    /// [`Stepper::step`] with the runtime already current on this thread; `deadline` says
    /// whether to fill in [`Tick::next_deadline`].
    fn turn<P: Park>(&mut self, park: &mut P, deadline: Deadline) -> Tick {
        match self.state {
            State::InProgress => {}
            State::Finished => {
                return Tick {
                    finished: true,
                    ..Tick::default()
                };
            }
            State::Broken => panic!(
                "Stepper::step after a turn of this run panicked: the run is abandoned; drop \
                 the Stepper (which tears its tree down)"
            ),
        }
        let core = &*self.executor.core;
        let Stepper { root, state, .. } = self;
        let key = root.key;
        // Broken unless the turn ends normally.
        *state = State::Broken;

        // 1. Run a batch of jobs.
        let mut tick = run_batch(core, &mut || root.poll());
        // 2. Finished when the root returned and the whole tree below it finished. Checked
        //    after the batch, before parking: the last child may have just finished.
        if root.outcome.is_some() && !core.tree().has_children(key) {
            // Only root wakes can be left over (every task has finished): drop them, so the
            // next run on this executor starts from an empty queue.
            while core.pop_job().is_some() {}
            core.finish(key);
            if let Some(diag) = core.diag() {
                // Nothing is pending any more: the next run starts without a check due.
                diag.reset();
            }
            let outcome = root.outcome.take().expect("checked above");
            root.outcome = Some(crate::root::settle(outcome, core));
            *state = State::Finished;
            tick.finished = true;
            return tick;
        }
        // 3. The watchdog, when a check is due (only while a cancellation is pending).
        //    After the batch: a task woken by the last park has been polled by now, so it is
        //    judged on what it did, not on the wake it has not had yet.
        core.watch();
        // 4. Park: block only when nothing at all is runnable.
        tick.has_remaining = core.has_runnable();
        if deadline == Deadline::Ask {
            tick.next_deadline = park.next_deadline();
        }
        let request = if tick.has_remaining {
            park.park(ParkMode::NoWait)
        } else {
            core.record(|| TraceEvent::Park);
            park_idle(core, park)
        };
        match request {
            ParkRequest::Continue => {}
            ParkRequest::CancelRoot(reason) => core.cancel(key, reason),
            ParkRequest::Dump => report_message(Report::Dump(core.dump())),
            ParkRequest::Deadlock => crate::root::deadlock(core, &root.outcome),
        }
        *state = State::InProgress;
        tick
    }

    /// Whether the run has finished: the root future returned and its whole tree finished.
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    /// Takes the remaining turns and returns the root future's output: what `block_on`
    /// returns.
    ///
    /// # Panics
    ///
    /// Like `block_on`, after every task has finished: with the root future's panic, else
    /// with the first panic nobody took from a `JoinHandle` (R17); and as [`step`] does.
    ///
    /// [`step`]: Stepper::step
    pub fn finish<P: Park>(mut self, park: &mut P) -> F::Output {
        while !self.step(park).finished {}
        match self.root.outcome.take() {
            Some(Ok(value)) => value,
            Some(Err(payload)) => panic::resume_unwind(payload),
            None => unreachable!("a run finishes only once the root has an outcome"),
        }
    }
}

impl<F: Future> Drop for Stepper<'_, F> {
    /// A run dropped before it finished is torn down, as when `block_on` unwinds: the root
    /// future is dropped first, then every task's. A finished run dropped without
    /// [`Stepper::finish`] reports the panics `finish` would have raised: not lost.
    fn drop(&mut self) {
        let core = &self.executor.core;
        // The runtime is current while its sink reports, or its tasks are dropped.
        let _context = (!context::in_runtime()).then(|| context::enter(core.clone()));
        if self.state == State::Finished {
            if let Some(Err(payload)) = self.root.outcome.take() {
                crate::report::report(format_args!(
                    "treeloop: a run's panic was never raised (its Stepper was dropped \
                     without Stepper::finish): {}",
                    crate::panic::panic_message(&payload)
                ));
            }
            return;
        }
        self.root.abandon();
        if core.tree().len() > 0 {
            core.tear_down();
        }
    }
}

/// Blocks in `park` unless a wake slipped in. The `sleeping` flag is the loop's half of the
/// handshake in `Shared::push_remote`: set it, *then* look for work one last time.
fn park_idle<P: Park>(core: &Core, park: &mut P) -> ParkRequest {
    let shared = core.shared();
    shared.sleeping.store(true, Ordering::SeqCst);
    let request = if shared.injector.is_empty() {
        // With a watchdog check pending, come back for it even if nothing happens.
        let check = core
            .diag()
            .and_then(|diag| Some(diag.next_check()?.saturating_sub(diag.now())));
        park.park(check.map_or(ParkMode::Wait, ParkMode::WaitAtMost))
    } else {
        ParkRequest::Continue
    };
    shared.sleeping.store(false, Ordering::SeqCst);
    request
}
