//! The reactor: where the loop blocks, and what wakes it (timers, other threads; sockets
//! come with the reactor issue).
//!
//! # Ground rules
//!
//! - One [`Reactor`] per runtime, driven only by the loop thread through [`Park::park`].
//!   Leaf futures reach its [`ReactorCore`] through a thread-local set by [`Reactor::enter`].
//! - `park(NoWait)` never blocks and makes no syscall while no I/O source is registered: it
//!   only fires due timers. `park(Wait)` blocks in `mio::Poll` until the next deadline, an
//!   event, or an unpark through the `mio::Waker`.
//! - Virtual time: `park(Wait)` with a paused clock does not sleep; it jumps the clock to the
//!   next deadline and fires it. With no timer at all it blocks, since only another thread
//!   can still wake a task (the deterministic-mode issue turns that case into a deadlock
//!   report).

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;

use mio::{Events, Poll, Token};
use treeloop_executor::{Park, ParkMode, Unpark};

use crate::clock::{Clock, ClockMode, Instant};
use crate::timers::{Timers, Turn};

/// The token of the cross-thread `mio::Waker`.
const WAKER_TOKEN: Token = Token(usize::MAX);

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

/// The reactor state leaf futures use.
pub(crate) struct ReactorCore {
    /// Real or virtual time.
    pub(crate) clock: Clock,
    /// Pending timers.
    pub(crate) timers: RefCell<Timers>,
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
}

impl Reactor {
    /// A reactor on the system clock, or on virtual time starting now when `paused`.
    pub fn new(paused: bool) -> io::Result<Reactor> {
        let poll = Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN)?;
        let mode = if paused {
            ClockMode::Paused
        } else {
            ClockMode::Real
        };
        Ok(Reactor {
            poll,
            events: Events::with_capacity(1024),
            core: Rc::new(ReactorCore {
                clock: Clock::new(mode),
                timers: RefCell::new(Timers::new()),
            }),
            unparker: Arc::new(MioUnpark(waker)),
            wake: Vec::new(),
        })
    }

    /// The handle other threads use to interrupt a blocking park.
    pub fn unparker(&self) -> Arc<dyn Unpark> {
        self.unparker.clone()
    }

    /// Makes this reactor the one leaf futures on this thread use, until the guard drops.
    pub fn enter(&self) -> EnterGuard {
        REACTOR.with(|cell| *cell.borrow_mut() = Some(self.core.clone()));
        EnterGuard(())
    }

    /// One turn: wait as `mode` allows, then fire every timer that is due.
    pub fn turn(&mut self, mode: ParkMode) -> io::Result<Turn> {
        let clock = &self.core.clock;
        let next = self.core.timers.borrow_mut().next_deadline();
        let timeout = match (mode, next) {
            (ParkMode::NoWait, _) => Some(Duration::ZERO),
            (ParkMode::Wait, None) => None,
            (ParkMode::Wait, Some(deadline)) => match clock.mode() {
                ClockMode::Paused => {
                    // Idle under virtual time: the next deadline is now.
                    clock.advance_to(deadline);
                    Some(Duration::ZERO)
                }
                ClockMode::Real => Some(deadline.saturating_duration_since(clock.now())),
            },
        };
        // Without I/O sources, a zero-timeout poll could only report the cross-thread waker,
        // which the executor checks on its own: skip the syscall.
        if timeout != Some(Duration::ZERO) {
            match self.poll.poll(&mut self.events, timeout) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        let turn = self
            .core
            .timers
            .borrow_mut()
            .expire(clock.now(), &mut self.wake);
        // Release the timers' borrow before waking: a waker may re-enter the runtime.
        self.wake.drain(..).for_each(Waker::wake);
        Ok(turn)
    }
}

impl Park for Reactor {
    fn park(&mut self, mode: ParkMode) {
        if let Err(err) = self.turn(mode) {
            panic!("treeloop's reactor failed to poll for events: {err}");
        }
    }
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

impl ReactorCore {
    pub(crate) fn now(&self) -> Instant {
        self.clock.now()
    }
}
