//! Which reactor is running on this thread: the [`ReactorCore`] every leaf future reaches
//! (the clock, the timers, the I/O readiness table, the signal table), the thread-local that
//! holds it, and [`Instant::now`], which reads the clock through it.
//!
//! # Ground rules
//!
//! - The thread-local is set by [`enter`] (through [`Reactor::enter`](crate::Reactor::enter))
//!   and cleared when the [`EnterGuard`] it returns drops. The loop thread drives the
//!   reactor's turns through its own `Rc`, never through here.
//! - Everything else only reads it, one shared borrow at a time ([`with_reactor`]); a leaf
//!   future outside a runtime finds `None`, or panics naming the fix ([`expect_reactor`]).
//! - This file names the state and its parts but runs no turn: the loop's side (waiting in
//!   `mio::Poll`, firing timers, draining signals) is `reactor.rs`, one floor up. That is
//!   also why `Instant::now` is defined here and not in `clock.rs`: the clock is a part of
//!   the state, and `now` is a reader of the thread-local.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::clock::{Clock, Instant};
use crate::io::slots::Slots;
use crate::signal::SignalTable;
use crate::timers::Timers;

thread_local! {
    /// The reactor of the runtime running on this thread.
    static REACTOR: RefCell<Option<Rc<ReactorCore>>> = const { RefCell::new(None) };
}

/// Runs `f` with the running runtime's reactor; `None` outside one.
pub(crate) fn with_reactor<R>(f: impl FnOnce(&ReactorCore) -> R) -> Option<R> {
    REACTOR
        .try_with(|cell| cell.borrow().as_deref().map(f))
        .ok()
        .flatten()
}

/// Like [`with_reactor`], but outside a runtime panics naming `what` and the fix.
#[track_caller]
pub(crate) fn expect_reactor<R>(what: &str, f: impl FnOnce(&ReactorCore) -> R) -> R {
    match with_reactor(f) {
        Some(r) => r,
        None => panic!(
            "{what} polled outside a treeloop runtime with timers: await it inside \
             `treeloop::block_on` (`treeloop_executor::block_on` has no reactor)"
        ),
    }
}

/// Makes `core` the reactor leaf futures on this thread use, until the guard drops.
pub(crate) fn enter(core: Rc<ReactorCore>) -> EnterGuard {
    REACTOR.with(|cell| *cell.borrow_mut() = Some(core));
    EnterGuard(())
}

/// The reactor state leaf futures use.
pub(crate) struct ReactorCore {
    /// Real or virtual time.
    pub(crate) clock: Clock,
    /// Pending timers.
    pub(crate) timers: RefCell<Timers>,
    /// Registers sources with the poller (a clone of the `Poll`'s registry).
    pub(crate) registry: mio::Registry,
    /// Readiness of every registered source.
    pub(crate) io: RefCell<Slots>,
    /// The signals this runtime watches (shutdown set, dump signal, receivers), one
    /// self-pipe each.
    pub(crate) signals: RefCell<SignalTable>,
    /// Blocking calls (`unblock`) in flight: another thread will wake a task.
    pub(crate) pending_external: Cell<usize>,
    /// Whether real sockets may be created (not in a seeded run, unless allowed).
    pub(crate) real_io: RealIo,
    /// A seeded run: `unblock` runs its closure inline (a pool thread would finish at a
    /// moment the seed does not choose).
    pub(crate) deterministic: bool,
}

impl ReactorCore {
    pub(crate) fn now(&self) -> Instant {
        self.clock.now()
    }
}

/// Whether a deterministic run may use real I/O: sockets and child processes, whose timing
/// is the OS's ([`Determinism::On`](crate::Determinism::On)). The default is
/// [`Refused`](RealIo::Refused), deterministic mode's rule; a run that is not deterministic
/// always allows real I/O.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RealIo {
    /// Real sockets and processes work as usual; the run is then not reproducible.
    Allowed,
    /// Creating a real socket or spawning a process fails with `Unsupported`, naming the
    /// fix: the run stays reproducible (use the in-memory streams of
    /// [`sim`](crate::sim) instead).
    #[default]
    Refused,
}

/// Clears the thread's reactor when dropped.
pub struct EnterGuard(());

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let core = REACTOR
            .try_with(|cell| cell.borrow_mut().take())
            .ok()
            .flatten();
        drop(core);
    }
}

impl Instant {
    /// The current time of the running runtime's clock (the system clock outside one).
    pub fn now() -> Instant {
        with_reactor(|reactor| reactor.clock.now())
            .unwrap_or_else(|| Instant::from_std(std::time::Instant::now()))
    }
}
