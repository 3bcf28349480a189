//! `Builder` and `Runtime`: the executor and the reactor wired together.
//!
//! # Ground rules
//!
//! - A `Runtime` belongs to the thread that built it (it is `!Send`): its tasks are not
//!   `Send` and are polled only there.
//! - `block_on` enters the executor and the reactor for its whole duration and leaves them
//!   when it returns or unwinds. Calling it again inside is a clear panic, never a deadlock.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use treeloop_executor::diag::Diagnostics;
use treeloop_executor::report::{Report, Sink};
use treeloop_executor::{
    Deviation, Executor, Fallback, Options, Replay, Schedule, Scheduling, Strategy, Trace, TreeDump,
};
use treeloop_reactor::signal::{SHUTDOWN_SIGNALS, SignalKind};
use treeloop_reactor::{ClockMode, Determinism, DumpSignal, OnDeadlock, RealIo};
use treeloop_reactor::{Reactor, ReactorOptions};

use crate::stepper::Stepper;

/// Configures a [`Runtime`]. Every option is off by default: real time, no seed, no signal
/// handled, no diagnostics.
///
/// ```
/// let runtime = treeloop::Builder::new().start_paused(true).build().unwrap();
/// assert_eq!(runtime.block_on(async { 1 + 1 }), 2);
/// ```
#[derive(Clone, Default)]
pub struct Builder {
    /// Real or virtual time (`start_paused`).
    clock: ClockMode,
    /// The signals that shut the runtime down, without repeats, in the order given.
    shutdown_signals: Vec<SignalKind>,
    /// Deterministic mode's seed, if seeded.
    seed: Option<u64>,
    /// How ready tasks are picked; unset: `Random` when seeded, else `Fifo`.
    strategy: Option<Strategy>,
    /// PCT's step horizon; unset: the default (`test::check_with` learns one).
    pct_horizon: Option<u64>,
    /// A schedule to replay instead of the strategy's choices, and how.
    replay: Option<Replay>,
    /// Record the scheduling decisions.
    record_trace: bool,
    /// Real sockets and processes in a seeded run (`allow_real_io`); refused by default.
    seeded_real_io: RealIo,
    /// Report deadlocks outside seeded mode too (`report_deadlocks`), or block.
    on_deadlock: OnDeadlock,
    /// Poll statistics for dumps.
    diagnostics: bool,
    /// The slow-poll threshold.
    slow_poll: Option<Duration>,
    /// The stuck-cancellation watchdog's threshold.
    watchdog: Option<Duration>,
    /// How long after its report the watchdog aborts a stuck task.
    grace: Option<Duration>,
    /// SIGUSR1 prints a dump (`dump_on_signal`), or is not watched for one.
    dump_signal: DumpSignal,
    /// Where reports go; stderr by default.
    sink: Option<Sink>,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("clock", &self.clock)
            .field("shutdown_signals", &self.shutdown_signals)
            .field("seed", &self.seed)
            .field("strategy", &self.strategy)
            .field("pct_horizon", &self.pct_horizon)
            .field("replay", &self.replay)
            .field("record_trace", &self.record_trace)
            .field("seeded_real_io", &self.seeded_real_io)
            .field("on_deadlock", &self.on_deadlock)
            .field("diagnostics", &self.diagnostics)
            .field("slow_poll", &self.slow_poll)
            .field("watchdog", &self.watchdog)
            .field("grace", &self.grace)
            .field("dump_signal", &self.dump_signal)
            .field("sink", &self.sink.as_ref().map(|_| "custom"))
            .finish()
    }
}

impl Builder {
    /// The default configuration: real time.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Runs on virtual time: the clock starts when the runtime is built and, whenever no
    /// task is runnable, jumps straight to the next timer deadline. Tests use it instead of
    /// real sleeps: timing is exact and costs nothing.
    pub fn start_paused(mut self, paused: bool) -> Builder {
        self.clock = if paused {
            ClockMode::Paused
        } else {
            ClockMode::Real
        };
        self
    }

    /// Graceful shutdown on Ctrl-C (R19): the first SIGINT cancels the root, so every task
    /// sees `Cancelled` (reason `Shutdown`) at its next await point, runs its cleanup, and
    /// `block_on` returns once the tree has finished. A second SIGINT exits the process at
    /// once with status 130, for a shutdown that hangs.
    ///
    /// SIGINT only, as the name says: `true` adds SIGINT to the
    /// [shutdown signals](Self::shutdown_signals), `false` removes it, and SIGTERM keeps its
    /// default action (ending the process at once). A program that `kill`, systemd or a
    /// container runtime stops, i.e. any server, wants
    /// [`shutdown_on_signal`](Self::shutdown_on_signal) instead, which adds SIGTERM.
    pub fn shutdown_on_ctrl_c(mut self, enabled: bool) -> Builder {
        let interrupt = SignalKind::interrupt();
        self.shutdown_signals.retain(|&kind| kind != interrupt);
        if enabled {
            self.shutdown_signals.push(interrupt);
        }
        self
    }

    /// Graceful shutdown on the signals that ask a program to stop: SIGINT (Ctrl-C) and
    /// SIGTERM (`kill`, systemd, `docker stop`, Kubernetes), the
    /// [`SHUTDOWN_SIGNALS`]. The first of them to arrive
    /// cancels the root: every task sees `Cancelled` (reason `Shutdown`) at its next await
    /// point, runs its cleanup, and `block_on` returns once the tree has finished. A second
    /// one, of either kind, exits the process at once with 128 + its number (130 for SIGINT,
    /// 143 for SIGTERM), for a shutdown that hangs.
    ///
    /// `false` turns shutdown on signals off (the default). To choose the signals, use
    /// [`shutdown_signals`](Self::shutdown_signals).
    ///
    /// ```no_run
    /// let runtime = treeloop::Builder::new().shutdown_on_signal(true).build()?;
    /// runtime.block_on(async {
    ///     // Serve until SIGINT or SIGTERM; then clean up and return.
    ///     treeloop::cancelled().await;
    /// });
    /// # Ok::<_, std::io::Error>(())
    /// ```
    pub fn shutdown_on_signal(self, enabled: bool) -> Builder {
        let signals = if enabled { &SHUTDOWN_SIGNALS[..] } else { &[] };
        self.shutdown_signals(signals.iter().copied())
    }

    /// Shutdown on exactly these signals, as [`shutdown_on_signal`](Self::shutdown_on_signal)
    /// describes: the first delivery of any of them cancels the root (reason `Shutdown`),
    /// the second of any of them exits with 128 + its number. An empty set turns shutdown
    /// on signals off. Replaces the set of earlier calls.
    ///
    /// A signal of the set keeps its uses elsewhere: `signal::unix` receivers of it are
    /// woken too (and see the cancellation first, see `signal::unix`), and SIGUSR1 still
    /// dumps the tree with [`dump_on_signal`](Self::dump_on_signal).
    ///
    /// ```
    /// use treeloop::signal::SignalKind;
    ///
    /// // A service that also stops on SIGQUIT (Ctrl-\ in a terminal).
    /// let builder = treeloop::Builder::new().shutdown_signals([
    ///     SignalKind::interrupt(),
    ///     SignalKind::terminate(),
    ///     SignalKind::quit(),
    /// ]);
    /// # let _ = builder;
    /// ```
    ///
    /// [`build`](Self::build) fails with `InvalidInput` if the set holds a signal that cannot
    /// be watched (SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGILL, SIGFPE).
    pub fn shutdown_signals(mut self, signals: impl IntoIterator<Item = SignalKind>) -> Builder {
        self.shutdown_signals.clear();
        for kind in signals {
            if !self.shutdown_signals.contains(&kind) {
                self.shutdown_signals.push(kind);
            }
        }
        self
    }

    /// Deterministic mode (SPEC §5): every choice the scheduler makes comes from `seed`
    /// through the chosen [`strategy`](Self::strategy), time is virtual, real sockets are
    /// refused, the trace is recorded, and a deadlock is reported instead of hanging.
    ///
    /// The seed given here is the seed used: the environment variable `TREELOOP_SEED` does
    /// not override it (a test looping over seeds explores them all). `TREELOOP_SEED` steers
    /// [`test::check`](crate::test::check) only, which replays a failing seed with it (and
    /// [`test::check_determinism`](crate::test::check_determinism), which runs it, when its
    /// builder has no seed).
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use std::rc::Rc;
    /// use treeloop::{Builder, spawn, yield_now};
    ///
    /// /// The order in which four tasks finish, under `seed`.
    /// fn finishing_order(seed: u64) -> Vec<u32> {
    ///     let order = Rc::new(RefCell::new(Vec::new()));
    ///     let runtime = Builder::new().seed(seed).build().unwrap();
    ///     runtime.block_on(async {
    ///         let tasks: Vec<_> = (0..4)
    ///             .map(|i| {
    ///                 let order = order.clone();
    ///                 spawn(async move {
    ///                     yield_now().await.unwrap();
    ///                     order.borrow_mut().push(i);
    ///                 })
    ///             })
    ///             .collect();
    ///         for task in tasks {
    ///             task.await.unwrap();
    ///         }
    ///     });
    ///     order.take()
    /// }
    ///
    /// // A seed picks one interleaving, and picks it again on every run.
    /// assert_eq!(finishing_order(7), finishing_order(7));
    /// // Other seeds pick other interleavings.
    /// let orders: std::collections::HashSet<_> = (0..20).map(finishing_order).collect();
    /// assert!(orders.len() > 1);
    /// ```
    pub fn seed(mut self, seed: u64) -> Builder {
        self.seed = Some(seed);
        self
    }

    /// How ready tasks are picked: [`Strategy::Fifo`], `Random` or `Pct`. The default is
    /// `Random` in a seeded runtime (a seed is there to explore interleavings: 1,000 seeds
    /// give 1,000 schedules) and `Fifo` otherwise. The randomised strategies draw from the
    /// [`seed`](Self::seed) (0 if none is set). `Fifo` with a seed is a deterministic run
    /// with virtual time that always picks the first woken task.
    pub fn strategy(mut self, strategy: Strategy) -> Builder {
        self.strategy = Some(strategy);
        self
    }

    /// The number of scheduling steps `k` over which [`Strategy::Pct`] spreads its
    /// `depth - 1` change points: the run's length, counted in picks made while two or more
    /// tasks were ready ([`Runtime::scheduling_steps`] of an earlier run). Too large, and
    /// change points fall past the end of the run; too small, and they crowd its start.
    ///
    /// Unset, a runtime uses 100 steps, while [`test::check_with`](crate::test::check_with)
    /// learns it: each seed runs with the most steps an earlier seed took. Set, it is used
    /// as is, by `check_with` too. Other strategies ignore it.
    pub fn pct_horizon(mut self, steps: u64) -> Builder {
        self.pct_horizon = Some(steps);
        self
    }

    /// Replays `schedule` (what [`Runtime::schedule`] of an earlier run returned, or the
    /// `TREELOOP_SCHEDULE` string a failed `test::check` printed, parsed): at each pick
    /// with two or more tasks ready, the task the schedule names runs, whatever the
    /// [`strategy`](Self::strategy). Where the schedule has run out, or names a task that is
    /// not ready (the program changed its tasks), the first woken task runs instead, as
    /// under `Fifo`, and [`Runtime::replay_divergences`] counts it.
    ///
    /// The schedule names tasks by their number within the runtime, not by position in the
    /// queue, so it replays across changes that keep the tasks: more work between two
    /// awaits, a log line, another seed. Implies deterministic mode (virtual time, no real
    /// sockets) like [`seed`](Self::seed); a seed given as well chooses nothing.
    ///
    /// ```
    /// use treeloop::{Builder, spawn, yield_now};
    ///
    /// let body = || async {
    ///     let a = spawn(async { yield_now().await.unwrap() });
    ///     let b = spawn(async { yield_now().await.unwrap() });
    ///     a.await.unwrap();
    ///     b.await.unwrap();
    /// };
    /// let first = Builder::new().seed(3).build().unwrap();
    /// first.block_on(body());
    /// let again = Builder::new().replay(first.schedule()).build().unwrap();
    /// again.block_on(body());
    /// assert_eq!(again.trace().hash, first.trace().hash);
    /// assert_eq!(again.replay_divergences(), 0);
    /// ```
    pub fn replay(mut self, schedule: Schedule) -> Builder {
        self.replay = Some(Replay {
            schedule,
            fallback: Fallback::Fifo,
            log_choice_points: false,
            deviations: Vec::new(),
        });
        self
    }

    /// `test::explore`'s replay: `prefix`, then no preemption, each choice logged.
    pub(crate) fn explore_prefix(mut self, prefix: Schedule) -> Builder {
        self.replay = Some(Replay {
            schedule: prefix,
            fallback: Fallback::Continue,
            log_choice_points: true,
            deviations: Vec::new(),
        });
        self
    }

    /// `test::check`'s shrinking: `schedule`, then FIFO except at `deviations`, each choice
    /// logged.
    pub(crate) fn shrink_replay(
        mut self,
        schedule: Schedule,
        deviations: Vec<Deviation>,
    ) -> Builder {
        self.replay = Some(Replay {
            schedule,
            fallback: Fallback::Fifo,
            log_choice_points: true,
            deviations,
        });
        self
    }

    /// The seed given with [`seed`](Self::seed), if any.
    pub(crate) fn seed_given(&self) -> Option<u64> {
        self.seed
    }

    /// Whether `test::check_with` should learn PCT's horizon: PCT, and none given.
    pub(crate) fn learns_pct_horizon(&self) -> bool {
        matches!(self.strategy, Some(Strategy::Pct { .. })) && self.pct_horizon.is_none()
    }

    /// Records every scheduling decision, readable with [`Runtime::trace`] (always on in
    /// deterministic mode).
    pub fn record_trace(mut self, record: bool) -> Builder {
        self.record_trace = record;
        self
    }

    /// Lets a seeded run use real sockets anyway; such a run is not reproducible.
    pub fn allow_real_io(mut self, allow: bool) -> Builder {
        self.seeded_real_io = if allow {
            RealIo::Allowed
        } else {
            RealIo::Refused
        };
        self
    }

    /// Panics with the live task tree when nothing can ever make progress (nothing runnable,
    /// no timer, no socket, no signal, no `unblock` call in flight), instead of blocking
    /// forever. Seeded runtimes always do; this asks for it in any runtime, typically a
    /// `start_paused` test, so that a lost wake-up fails the test instead of hanging it.
    /// Only sound when no other thread holds a waker of the runtime: a wake from another
    /// thread is exactly what this treats as impossible.
    pub fn report_deadlocks(mut self, enabled: bool) -> Builder {
        self.on_deadlock = if enabled {
            OnDeadlock::Report
        } else {
            OnDeadlock::Block
        };
        self
    }

    /// Keeps poll counts and poll times per task, so dumps show them (implied by the
    /// slow-poll warning and the watchdog). Off by default: then it costs nothing.
    ///
    /// Any diagnostic (this, the slow-poll warning, the watchdog, `dump_on_signal`) also
    /// gives every shield its own node in the tree, so a dump shows a task in its cleanup as
    /// "shielded". Without them, a shield that spawns nothing costs a flag rather than a
    /// node, and a dump shows its task as "cancelled".
    pub fn diagnostics(mut self, enabled: bool) -> Builder {
        self.diagnostics = enabled;
        self
    }

    /// Reports every single poll that takes at least `threshold`, naming the task (asyncio
    /// debug mode's slow-callback warning): a poll that long blocked every other task.
    pub fn slow_poll_threshold(mut self, threshold: Duration) -> Builder {
        self.slow_poll = Some(threshold);
        self
    }

    /// The stuck-cancellation watchdog: when tasks of a cancelled subtree make no progress
    /// for `threshold`, report them with the likely cause and the tree, stuck tasks marked
    /// (`Report::Stall`). See "When shutdown hangs" in the README.
    ///
    /// The threshold is measured on the runtime's clock, so under
    /// [`start_paused`](Self::start_paused) it passes in virtual time:
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use std::rc::Rc;
    /// use std::time::Duration;
    /// use treeloop::diag::{Report, StallCause};
    /// use treeloop::time::sleep;
    /// use treeloop::{Builder, shield, task};
    ///
    /// let reports = Rc::new(RefCell::new(Vec::new()));
    /// let sink = reports.clone();
    /// let runtime = Builder::new()
    ///     .start_paused(true)
    ///     .stall_watchdog(Duration::from_secs(5))
    ///     .report_sink(move |report| sink.borrow_mut().push(report.clone()))
    ///     .build()
    ///     .unwrap();
    /// runtime.block_on(async {
    ///     let flusher = task::Builder::new().name("flusher").spawn(async {
    ///         let _ = sleep(Duration::from_secs(3600)).await;
    ///         // A cleanup that hangs: a minute, shielded, waiting for nothing.
    ///         shield(sleep(Duration::from_secs(60))).await.unwrap();
    ///     });
    ///     sleep(Duration::from_secs(1)).await.unwrap();
    ///     flusher.cancel();
    ///     flusher.await.unwrap();
    /// });
    /// let reports = reports.borrow();
    /// let Some(Report::Stall(stall)) = reports.first() else {
    ///     panic!("expected a stall report, got {reports:?}")
    /// };
    /// assert_eq!(stall.stuck.len(), 1);
    /// assert_eq!(stall.stuck[0].name.as_deref(), Some("flusher"));
    /// assert_eq!(stall.stuck[0].cause, StallCause::ShieldedWaiting);
    /// assert_eq!(stall.stuck[0].stuck_for, Duration::from_secs(5));
    /// ```
    pub fn stall_watchdog(mut self, threshold: Duration) -> Builder {
        self.watchdog = Some(threshold);
        self
    }

    /// With the watchdog: a task still stuck `grace` after it was reported is aborted (its
    /// future dropped at its next poll, R20) and reported as such (`Report::Aborted`).
    pub fn stall_grace(mut self, grace: Duration) -> Builder {
        self.grace = Some(grace);
        self
    }

    /// SIGUSR1 reports a dump of the task tree (`kill -USR1 <pid>`): a look inside a
    /// program that seems stuck, without stopping it.
    pub fn dump_on_signal(mut self, enabled: bool) -> Builder {
        self.dump_signal = if enabled {
            DumpSignal::Sigusr1
        } else {
            DumpSignal::Off
        };
        self
    }

    /// Sends every report (slow polls, stalls, aborts, dumps, panics nobody took) to `sink`
    /// instead of stderr: to log them, or to capture them in a test.
    pub fn report_sink(mut self, sink: impl Fn(&Report) + 'static) -> Builder {
        self.sink = Some(Rc::new(sink));
        self
    }

    /// Builds the runtime. Fails only if the OS refuses an epoll instance, an eventfd, or
    /// a signal handler (the shutdown signals, SIGUSR1 with `dump_on_signal`), or if a
    /// shutdown signal cannot be watched (`InvalidInput`).
    pub fn build(&self) -> io::Result<Runtime> {
        let seed = self.seed;
        let deterministic = seed.is_some() || self.replay.is_some();
        let reactor = Reactor::new(ReactorOptions {
            clock: self.clock,
            shutdown_signals: self.shutdown_signals.clone(),
            determinism: if deterministic {
                Determinism::On {
                    real_io: self.seeded_real_io,
                }
            } else {
                Determinism::Off
            },
            on_deadlock: self.on_deadlock,
            dump_signal: self.dump_signal,
        })?;
        let scheduling = Scheduling {
            strategy: self.strategy.unwrap_or(match seed {
                Some(_) => Strategy::Random,
                None => Strategy::Fifo,
            }),
            seed: seed.unwrap_or(0),
            trace: self.record_trace || deterministic,
            pct_horizon: self.pct_horizon,
            replay: self.replay.clone(),
        };
        let diagnostics = Diagnostics {
            clock: Some(reactor.clock_source()),
            stats: self.diagnostics,
            slow_poll: self.slow_poll,
            watchdog: self.watchdog,
            grace: self.grace,
            // A dump asked for by signal should show shielded tasks as shielded.
            shield_nodes: self.dump_signal != DumpSignal::Off,
        };
        let options = Options {
            scheduling,
            diagnostics,
            sink: self.sink.clone(),
        };
        let executor = Executor::with_options(reactor.unparker(), options);
        Ok(Runtime {
            reactor: RefCell::new(reactor),
            executor,
            seed,
            streams: crate::rng::Streams::new(deterministic.then(|| seed.unwrap_or(0))),
        })
    }
}

/// A treeloop runtime: one thread's executor and reactor.
pub struct Runtime {
    /// Tasks, the tree, the run queue. Declared first so it is dropped first: its teardown
    /// may drop futures that unregister timers from the reactor.
    executor: Executor,
    /// Timers and I/O; borrowed mutably for the length of a `block_on`.
    reactor: RefCell<Reactor>,
    /// The seed of a deterministic run.
    seed: Option<u64>,
    /// What `test::rng` draws from while a `block_on` runs.
    streams: Rc<crate::rng::Streams>,
}

impl Runtime {
    /// Runs `future` as the root of a task tree and returns its output once it *and every
    /// task spawned under it* have finished (R3). The future may borrow from the caller.
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use std::time::Duration;
    /// use treeloop::time::sleep;
    /// use treeloop::{Builder, spawn};
    ///
    /// let runtime = Builder::new().start_paused(true).build().unwrap();
    /// let greeting = String::from("hello");
    /// let flushed = Rc::new(Cell::new(false));
    /// let flag = flushed.clone();
    /// let length = runtime.block_on(async {
    ///     // A task nobody joins: `block_on` still waits for it.
    ///     spawn(async move {
    ///         sleep(Duration::from_secs(5)).await.unwrap();
    ///         flag.set(true);
    ///     });
    ///     greeting.len() // the root future borrows from the caller
    /// });
    /// assert_eq!(length, 5);
    /// assert!(flushed.get());
    /// assert_eq!(runtime.live_tasks(), 0);
    /// // The same runtime runs another root afterwards.
    /// assert_eq!(runtime.block_on(async { 2 + 2 }), 4);
    /// ```
    ///
    /// # Panics
    ///
    /// - Inside a running treeloop runtime (nested `block_on`): `.await` instead.
    /// - After every task has finished, with the root's panic, or else the first panic of a
    ///   task whose `JoinHandle` was dropped without taking it (R17).
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.block_on_at(future, std::panic::Location::caller())
    }

    /// `block_on` with the root's spawn location given (`test::check` passes its caller's).
    pub(crate) fn block_on_at<F: Future>(
        &self,
        future: F,
        location: &'static std::panic::Location<'static>,
    ) -> F::Output {
        assert!(
            !treeloop_executor::in_runtime(),
            "block_on called inside a treeloop runtime: a nested block_on would stall the event \
             loop; `.await` the future instead, or `treeloop::spawn` it"
        );
        self.with_park(|reactor| self.executor.block_on_at(future, reactor, location))
    }

    /// Starts `future` as the root of a task tree and returns without running anything: the
    /// [`Stepper`] takes the loop one turn at a time, and says what each turn did. For a test
    /// that asserts on each turn, or a learner who wants to watch one. [`block_on`] is
    /// `start`, then [`Stepper::step`] until the run finishes.
    ///
    /// Here a worker is cancelled while it sleeps, cleans up at its await point, and the
    /// root joins it (on virtual time, so the turns are exact):
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let runtime = treeloop::Builder::new().start_paused(true).build().unwrap();
    /// let mut run = runtime.start(async {
    ///     let worker = treeloop::spawn(async {
    ///         // Cancelled while it sleeps: the sleep returns `Err(Cancelled)`.
    ///         let slept = treeloop::time::sleep(Duration::from_secs(3600)).await;
    ///         assert!(slept.is_err());
    ///         "cleaned up"
    ///     });
    ///     treeloop::time::sleep(Duration::from_millis(10)).await.unwrap();
    ///     worker.cancel();
    ///     worker.await.unwrap()
    /// });
    ///
    /// // Turn 1: the root spawns the worker (a wake) and sleeps; the worker sleeps. Nothing
    /// // is runnable, so the park jumps the clock to the earliest deadline: the root's.
    /// let tick = run.step();
    /// assert_eq!((tick.polled, tick.woken, tick.completed), (2, 1, 0));
    /// assert_eq!(tick.next_deadline, Some(Duration::from_millis(10)));
    /// assert!(!tick.has_remaining && !tick.finished);
    ///
    /// // Turn 2: the root cancels the worker (a wake) and waits for it; the worker sees the
    /// // cancellation, returns and completes, which wakes the root; the root returns. Its
    /// // tree is empty, so the run is finished.
    /// let tick = run.step();
    /// assert_eq!((tick.polled, tick.woken, tick.completed), (3, 2, 1));
    /// assert!(tick.finished);
    ///
    /// assert_eq!(run.finish(), "cleaned up");
    /// ```
    ///
    /// # Panics
    ///
    /// Inside a running treeloop runtime (as `block_on` does), and while another `Stepper`
    /// of this runtime is still running.
    #[track_caller]
    pub fn start<F: Future>(&self, future: F) -> Stepper<'_, F> {
        assert!(
            !treeloop_executor::in_runtime(),
            "Runtime::start called inside a treeloop runtime: the loop is already running on \
             this thread; `.await` the future instead, or `treeloop::spawn` it"
        );
        let run = self
            .executor
            .start_at(future, std::panic::Location::caller());
        Stepper::new(self, run)
    }

    /// Runs `f` with this runtime's reactor entered (timers, sockets and signals work) and
    /// handed over as the loop's park, and its random streams current: a whole `block_on`,
    /// or one turn of a [`Stepper`].
    pub(crate) fn with_park<R>(&self, f: impl FnOnce(&mut Reactor) -> R) -> R {
        let mut reactor = self.reactor.borrow_mut();
        let _reactor = reactor.enter();
        let _rng = crate::rng::enter(&self.streams);
        f(&mut reactor)
    }
}

impl Runtime {
    /// The seed this runtime runs with, in deterministic mode.
    pub fn seed(&self) -> Option<u64> {
        self.seed
    }

    /// Scheduling steps taken so far: picks made while two or more tasks were ready (the
    /// root future counts as a task), under `Random` and `Pct` (0 under `Fifo`). A run's
    /// count is the horizon to give [`Builder::pct_horizon`] for the runs after it.
    pub fn scheduling_steps(&self) -> u64 {
        self.executor.scheduling_steps()
    }

    /// The choices made so far at picks with two or more tasks ready, by task number: the
    /// run's schedule, for [`Builder::replay`]. Recorded under `Random`, `Pct` and a replay;
    /// empty under `Fifo`, whose run is what the empty schedule replays anyway.
    pub fn schedule(&self) -> Schedule {
        self.executor.schedule()
    }

    /// Choices at which a [`Builder::replay`] could not take the task its schedule named
    /// (the schedule had run out, or the task was not ready) and took the first woken one
    /// instead; 0 for a faithful replay, and when not replaying.
    pub fn replay_divergences(&self) -> u64 {
        self.executor.replay_divergences()
    }

    /// Whether code run here drew from the seed: called `test::rng` in a seeded runtime, or
    /// read the scheduling seed (`sim::Net`'s faults). A schedule alone does not carry it,
    /// so the replay line then names the seed too.
    pub(crate) fn drew_from_rng(&self) -> bool {
        self.streams.handed_out() > 0 || self.executor.seed_was_read()
    }

    /// `test::explore`'s view of the run: each choice with its alternatives.
    pub(crate) fn choice_points(&self) -> Vec<treeloop_executor::ChoicePoint> {
        self.executor.choice_points()
    }

    /// The scheduling decisions recorded so far, and their hash (empty unless tracing).
    pub fn trace(&self) -> Trace {
        self.executor.trace()
    }

    /// A snapshot of the task tree; see [`dump`](crate::dump). Empty between `block_on` calls
    /// (the tree has finished by then); useful from another task's point of view, e.g. a
    /// sink or a test, and for a runtime whose `block_on` unwound.
    pub fn dump(&self) -> TreeDump {
        self.executor.dump()
    }

    /// How many spawned tasks are alive (nodes of the tree that are tasks; for every node,
    /// regions, shields and the root included, see [`live_nodes`](Self::live_nodes)). Zero
    /// between `block_on` calls, since `block_on` returns only after the whole tree has
    /// finished. Counted by a pass over the live nodes.
    ///
    /// ```
    /// use treeloop::{Builder, scope};
    ///
    /// let runtime = Builder::new().start_paused(true).build().unwrap();
    /// let rt = &runtime;
    /// let counted = runtime.block_on(scope(|s| async move {
    ///     s.spawn(async { Ok::<(), std::io::Error>(()) }).unwrap();
    ///     // One task, the member; three nodes: the root, the scope's region, the member.
    ///     Ok((rt.live_tasks(), rt.live_nodes()))
    /// }));
    /// assert_eq!(counted.unwrap(), Some((1, 3)));
    /// assert_eq!((runtime.live_tasks(), runtime.live_nodes()), (0, 0));
    /// ```
    pub fn live_tasks(&self) -> usize {
        self.executor.live_tasks()
    }

    /// How many nodes of the task tree are alive: tasks, open regions and shields, and the
    /// root while a `block_on` runs (see [`live_tasks`](Self::live_tasks) for the example
    /// that shows the difference). Zero between `block_on` calls.
    pub fn live_nodes(&self) -> usize {
        self.executor.live_nodes()
    }
}

/// `TREELOOP_SEED`, if set to a number.
pub(crate) fn seed_from_env() -> Option<u64> {
    std::env::var("TREELOOP_SEED").ok()?.trim().parse().ok()
}

/// Runs `future` on a new runtime with real time; see [`Runtime::block_on`].
///
/// ```
/// let answer = treeloop::block_on(async {
///     let child = treeloop::spawn(async { 21 * 2 });
///     child.await.unwrap()
/// });
/// assert_eq!(answer, 42);
/// ```
///
/// # Panics
///
/// As [`Runtime::block_on`], and if the OS refuses the runtime's epoll instance.
#[track_caller]
pub fn block_on<F: Future>(future: F) -> F::Output {
    let runtime = Builder::new()
        .build()
        .unwrap_or_else(|err| panic!("treeloop could not create its event loop: {err}"));
    runtime.block_on(future)
}
