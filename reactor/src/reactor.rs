//! The reactor: where the loop blocks, and what wakes it (I/O readiness, timers, signals,
//! other threads). [`Reactor`] is the executor's [`Park`]; one turn of it
//! ([`Reactor::turn`]) waits as the executor allows, records readiness, drains signals and
//! fires due timers, and reports what it did as a [`Turn`]. `Turn` lives here, beside the
//! turn it reports, since it carries I/O events, signals, dumps and stalls as well as the
//! count of timers fired (which `timers.rs` hands over as its `Expired`).
//!
//! # Ground rules
//!
//! - One [`Reactor`] per runtime, driven only by the loop thread through [`Park::park`].
//!   Leaf futures reach its state, the `ReactorCore`, through the thread-local of
//!   `context.rs`, set by [`Reactor::enter`].
//! - One `epoll_wait` per turn at most. `park(NoWait)` never blocks, and makes no syscall at
//!   all while no I/O source is registered: it only fires due timers. `park(Wait)` blocks in
//!   `mio::Poll` until the next deadline, an event, or an unpark through the `mio::Waker`.
//! - Virtual time: `park(Wait)` with a paused clock and no I/O source does not sleep; it jumps
//!   the clock to the next deadline and fires it. With no timer at all it blocks, since only
//!   another thread can still wake a task (in deterministic mode, and with
//!   [`OnDeadlock::Report`], that case is a deadlock report instead). While sockets are
//!   registered the clock does **not** jump: it waits for the deadline in real time and
//!   advances only if no I/O arrived meanwhile, so a timeout cannot fire before the network
//!   had a chance to answer (tokio's auto-advance pitfall).
//!
//! The names follow async-io's: `reactor.rs` is the reactor. There is no `driver.rs`: the
//! `block_on` that drives the loop is the executor's (`Executor::block_on`), wired to this
//! reactor by the facade's `Runtime`.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;

use mio::{Events, Poll, Token};
use treeloop_executor::{CancelReason, Park, ParkMode, ParkRequest, Unpark};

use crate::clock::{Clock, ClockMode, Instant};
use crate::context::{self, EnterGuard, ReactorCore, RealIo};
use crate::io::slots::Slots;
use crate::signal::{self, Delivered, Purpose, SIGNAL_TOKEN, SignalKind, SignalTable};
use crate::timers::Timers;

/// The token of the cross-thread `mio::Waker`.
const WAKER_TOKEN: Token = Token(usize::MAX);

/// How to build a [`Reactor`]. The default: real time, not deterministic, no signal watched.
/// Each option names what it chooses:
///
/// ```
/// use treeloop_reactor::{ClockMode, OnDeadlock, Reactor, ReactorOptions};
///
/// // A test's reactor: virtual time, and a lost wake-up fails instead of hanging.
/// let reactor = Reactor::new(ReactorOptions {
///     clock: ClockMode::Paused,
///     on_deadlock: OnDeadlock::Report,
///     ..ReactorOptions::default()
/// })?;
/// # drop(reactor);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReactorOptions {
    /// Real or virtual time from the start. Deterministic mode always runs on virtual time.
    pub clock: ClockMode,
    /// The shutdown set: the first delivery of one of these signals cancels the root (reason
    /// `Shutdown`), the second of any of them exits with 128 + its number. Empty: none.
    pub shutdown_signals: Vec<SignalKind>,
    /// Whether the run is deterministic (a seeded or replayed one), and if so whether it
    /// may still use real I/O.
    pub determinism: Determinism,
    /// What a turn does when nothing can ever wake a task again. Deterministic mode always
    /// reports.
    pub on_deadlock: OnDeadlock,
    /// The signal that asks for a dump of the task tree ([`ParkRequest::Dump`]), if any.
    pub dump_signal: DumpSignal,
}

/// Whether a reactor serves a deterministic run ([`ReactorOptions::determinism`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Determinism {
    /// A live run (the default): the clock is what [`ReactorOptions::clock`] says, real
    /// I/O works, and `unblock` runs its closure on the blocking pool.
    #[default]
    Off,
    /// Deterministic mode, for a seeded or replayed run: virtual time whatever the clock
    /// option says, "nothing can ever wake a task" reported as a deadlock whatever
    /// [`ReactorOptions::on_deadlock`] says, `unblock` run inline, and real I/O as
    /// `real_io` says.
    On {
        /// Whether real sockets and processes are allowed anyway (the run is then not
        /// reproducible) or refused (the default).
        real_io: RealIo,
    },
}

/// What a turn does when nothing can ever wake a task (nothing runnable, no timer, no
/// socket, no signal a task waits for, no `unblock` call in flight):
/// [`ReactorOptions::on_deadlock`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnDeadlock {
    /// Block until woken (the default): another thread may still hold a waker and use it.
    #[default]
    Block,
    /// Report it as a deadlock ([`ParkRequest::Deadlock`], [`Turn::stalled`]) instead of
    /// blocking. Only sound if no other thread holds a waker of this runtime: the program
    /// promises it.
    Report,
}

/// The signal that asks for a dump of the task tree: [`ReactorOptions::dump_signal`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DumpSignal {
    /// None (the default): the reactor does not watch SIGUSR1 for dumps (its receivers, if
    /// any, still get it).
    #[default]
    Off,
    /// SIGUSR1 (`kill -USR1 <pid>`) asks for a dump ([`ParkRequest::Dump`]), and still
    /// reaches its receivers.
    Sigusr1,
}

/// What one turn of the reactor did ([`Reactor::turn`]): the timers it fired, the I/O
/// events and signals it received, and whether it found the run stalled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Turn {
    /// Timers that expired and were woken.
    pub expired: usize,
    /// The earliest deadline still pending.
    pub next_deadline: Option<Instant>,
    /// I/O readiness events received.
    pub io_events: usize,
    /// Deliveries of every watched signal this turn (the shutdown set, the dump signal,
    /// `signal::unix` receivers), counted once per arrival.
    pub signals: u64,
    /// Dump signals (SIGUSR1) received, with [`DumpSignal::Sigusr1`].
    pub dumps: u64,
    /// Nothing can ever wake a task (a deadlock), found with deterministic mode or
    /// [`OnDeadlock::Report`].
    pub stalled: bool,
}

/// mio's waker as the executor's [`Unpark`].
struct MioUnpark(mio::Waker);

impl Unpark for MioUnpark {
    fn unpark(&self) {
        // A failed write means the eventfd is already readable: the loop wakes anyway.
        let _ = self.0.wake();
    }
}

/// The event loop's blocking half.
pub struct Reactor {
    /// The OS readiness queue (epoll on Linux).
    poll: Poll,
    /// Reused buffer of readiness events.
    events: Events,
    /// Shared with leaf futures through the thread-local.
    core: Rc<ReactorCore>,
    /// Interrupts `poll` from other threads.
    unparker: Arc<MioUnpark>,
    /// Reused buffer of wakers collected while a borrow is held.
    wake: Vec<Waker>,
    /// Report deadlocks instead of blocking forever (deterministic mode, or asked for).
    detect_deadlocks: bool,
    /// A signal of the shutdown set arrived; the next park asks for the root cancel.
    shutdown_pending: bool,
    /// A dump was asked for but the last park had a root cancel to report first.
    dump_pending: bool,
}

impl Reactor {
    /// A reactor on the system clock, or on virtual time with [`ClockMode::Paused`] or
    /// [`Determinism::On`].
    ///
    /// Fails if the OS refuses the poller or a signal handler, and with `InvalidInput` if
    /// a shutdown signal cannot be watched (SIGKILL, SIGSTOP, the fault signals).
    pub fn new(options: ReactorOptions) -> io::Result<Reactor> {
        let ReactorOptions {
            clock,
            shutdown_signals,
            determinism,
            on_deadlock,
            dump_signal,
        } = options;
        let poll = Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN)?;
        let registry = poll.registry().try_clone()?;
        let (mode, real_io, detect_deadlocks) = match determinism {
            Determinism::Off => (clock, RealIo::Allowed, on_deadlock == OnDeadlock::Report),
            Determinism::On { real_io } => (ClockMode::Paused, real_io, true),
        };
        let reactor = Reactor {
            poll,
            events: Events::with_capacity(1024),
            core: Rc::new(ReactorCore {
                clock: Clock::new(mode),
                timers: RefCell::new(Timers::new()),
                io: RefCell::new(Slots::new()),
                signals: RefCell::new(SignalTable::new()),
                registry,
                pending_external: Cell::new(0),
                real_io,
                deterministic: determinism != Determinism::Off,
            }),
            detect_deadlocks,
            unparker: Arc::new(MioUnpark(waker)),
            wake: Vec::new(),
            shutdown_pending: false,
            dump_pending: false,
        };
        let core = &reactor.core;
        if !shutdown_signals.is_empty() {
            // Checks the whole set (a refused signal fails the build) before installing any.
            signal::arm_second_signal_exit(&shutdown_signals)?;
        }
        let mut signals = core.signals.borrow_mut();
        for &kind in &shutdown_signals {
            signals.watch(&core.registry, kind, Purpose::Shutdown)?;
        }
        if dump_signal == DumpSignal::Sigusr1 {
            signals.watch(&core.registry, SignalKind::user_defined1(), Purpose::Dump)?;
        }
        drop(signals);
        Ok(reactor)
    }

    /// The runtime's clock as time since the reactor was built (virtual when paused): what
    /// the executor's diagnostics measure with.
    pub fn clock_source(&self) -> Rc<dyn Fn() -> Duration> {
        let core = self.core.clone();
        Rc::new(move || core.clock.since_start())
    }

    /// The handle other threads use to interrupt a blocking park.
    pub fn unparker(&self) -> Arc<dyn Unpark> {
        self.unparker.clone()
    }

    /// Makes this reactor the one leaf futures on this thread use, until the guard drops.
    pub fn enter(&self) -> EnterGuard {
        context::enter(self.core.clone())
    }

    /// One turn: wait as `mode` allows, record I/O readiness, fire every timer that is due,
    /// then wake whoever those concern.
    pub fn turn(&mut self, mode: ParkMode) -> io::Result<Turn> {
        let clock = &self.core.clock;
        let io_sources = self.core.io.borrow().len();
        // A delivery of a shutdown signal, or of a signal a receiver waits for, can wake a
        // task; the dump signal alone never does, so it does not stop a seeded run from
        // reporting a deadlock.
        let (watching_signals, signal_may_wake) = {
            let signals = self.core.signals.borrow();
            (!signals.is_empty(), signals.may_wake())
        };
        // Deterministic mode (or `OnDeadlock::Report`): with nothing runnable, no timer, no
        // socket, no signal and no blocking call in flight, nothing can ever wake a task
        // again (other threads are outside a deterministic program, or promised absent).
        if mode == ParkMode::Wait
            && self.detect_deadlocks
            && io_sources == 0
            && !signal_may_wake
            && self.core.pending_external.get() == 0
            && self.core.timers.borrow_mut().next_deadline().is_none()
        {
            return Ok(Turn {
                stalled: true,
                ..Turn::default()
            });
        }
        // The executor's own deadline (the watchdog's next check) acts like a timer's.
        let (mode, limit) = match mode {
            ParkMode::WaitAtMost(most) => (ParkMode::Wait, Some(clock.now().saturating_add(most))),
            mode => (mode, None),
        };
        let next = match (self.core.timers.borrow_mut().next_deadline(), limit) {
            (Some(timer), Some(limit)) => Some(timer.min(limit)),
            (timer, limit) => timer.or(limit),
        };
        let frozen = clock.mode() == ClockMode::Paused && self.core.pending_external.get() > 0;
        // 1. How long may we block?
        let timeout = match (mode, next) {
            (ParkMode::NoWait, _) => Some(Duration::ZERO),
            (ParkMode::WaitAtMost(_), _) => unreachable!("turned into Wait above"),
            (ParkMode::Wait, None) => None,
            // Virtual time stands still while `unblock` work runs on the pool (as tokio's
            // does during `spawn_blocking`): the loop waits, in real time, for the job's
            // wake, so a timeout around blocking work measures none of it.
            (ParkMode::Wait, Some(_)) if frozen => None,
            (ParkMode::Wait, Some(deadline)) => {
                if clock.mode() == ClockMode::Paused && io_sources == 0 {
                    // Idle under virtual time with no I/O that could still happen: the next
                    // deadline is now.
                    clock.advance_to(deadline);
                    Some(Duration::ZERO)
                } else {
                    Some(deadline.saturating_duration_since(clock.now()))
                }
            }
        };
        // 2. Ask the OS.
        //    Optimisation: with no source registered and no signal watched, a zero-timeout
        //    poll could only report the cross-thread waker, which the executor checks on its
        //    own (the injector): the syscall is skipped. It saves one `epoll_wait` per turn
        //    of a program that only computes (a turn runs up to 61 polls: about 3,300 calls
        //    in the yield benchmark's 200,000 yields). It costs a reader the condition below.
        let mut io_events = 0;
        let mut signal_event = false;
        // A wait that ended early with no I/O: interrupted (EINTR: a signal handler ran, or
        // the process was stopped and continued), or woken by a signal or by another
        // thread. It says only that the time really waited has passed, not the deadline's.
        let mut woken_early = false;
        // Read only where the clock needs it: virtual time with live I/O (see below).
        let waiting_since = (clock.mode() == ClockMode::Paused && io_sources > 0 && !frozen)
            .then(std::time::Instant::now);
        if timeout != Some(Duration::ZERO) || io_sources > 0 || watching_signals {
            match self.poll.poll(&mut self.events, timeout) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => woken_early = true,
                Err(err) => return Err(err),
            }
            let mut slots = self.core.io.borrow_mut();
            for event in self.events.iter() {
                match event.token() {
                    WAKER_TOKEN => woken_early = true,
                    // One token for every signal pipe: drained together, once, below.
                    SIGNAL_TOKEN => {
                        signal_event = true;
                        woken_early = true;
                    }
                    _ => {
                        slots.on_event(event, &mut self.wake);
                        io_events += 1;
                    }
                }
            }
        }
        let delivered = if signal_event {
            self.core.signals.borrow_mut().drain(&mut self.wake)
        } else {
            Delivered::default()
        };
        // Virtual time with live sockets never runs ahead of the network: it moves to the
        // next deadline only after really waiting that long with nothing happening; a wait
        // cut short by a signal or a wake moves it by the time really waited (so a stream
        // of signals cannot hold a deadline off for ever, nor a wake skip to it).
        if let (ParkMode::Wait, Some(deadline), Some(since)) = (mode, next, waiting_since) {
            if io_events == 0 {
                let reached = if woken_early {
                    clock.now().saturating_add(since.elapsed()).min(deadline)
                } else {
                    deadline
                };
                clock.advance_to(reached);
            }
        }
        // 3. Timers.
        let expired = self
            .core
            .timers
            .borrow_mut()
            .expire(clock.now(), &mut self.wake);
        let turn = Turn {
            expired: expired.count,
            next_deadline: expired.next_deadline,
            io_events,
            // Every delivery of a watched signal, the dump signal's included.
            signals: delivered.signals,
            dumps: delivered.dumps,
            stalled: false,
        };
        self.shutdown_pending |= delivered.shutdown > 0;
        // 4. Release every borrow before waking: a waker may re-enter the runtime.
        treeloop_executor::wake_all(self.wake.drain(..));
        Ok(turn)
    }
}

impl Park for Reactor {
    fn park(&mut self, mode: ParkMode) -> ParkRequest {
        let turn = match self.turn(mode) {
            Ok(turn) => turn,
            Err(err) => panic!("treeloop's reactor failed to poll for events: {err}"),
        };
        self.dump_pending |= turn.dumps > 0;
        if turn.stalled {
            ParkRequest::Deadlock
        } else if std::mem::take(&mut self.shutdown_pending) {
            // A dump asked for in the same turn is reported at the next park.
            ParkRequest::CancelRoot(CancelReason::Shutdown)
        } else if std::mem::take(&mut self.dump_pending) {
            ParkRequest::Dump
        } else {
            ParkRequest::Continue
        }
    }

    fn next_deadline(&self) -> Option<Duration> {
        let deadline = self.core.timers.borrow_mut().next_deadline()?;
        Some(deadline.saturating_duration_since(self.core.clock.now()))
    }
}
