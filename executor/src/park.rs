//! How the executor waits for the outside world without knowing what the world is.
//!
//! The executor crate does no I/O. When it has nothing to run it calls [`Park::park`] on
//! whatever the runtime plugged in: the reactor parks in `mio::Poll` and fires timers; a test
//! may plug in something simpler. Another thread that makes a task runnable calls
//! [`Unpark::unpark`] to interrupt a blocking park (the reactor's `mio::Waker`).

/// How long a park may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParkMode {
    /// Tasks are runnable: collect whatever events are ready, do not block.
    NoWait,
    /// Nothing is runnable: block until an event, a timer deadline, or an unpark. With
    /// virtual time, jump the clock to the next deadline instead of sleeping.
    Wait,
    /// Like `Wait`, but return after at most this long even if nothing happens: the
    /// diagnostics' watchdog has a check due (a deadline of its own, not a timer's).
    WaitAtMost(std::time::Duration),
}

/// What the outside world asked of the runtime while the loop was parked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "the loop must act on what the park reports"]
pub enum ParkRequest {
    /// Nothing: carry on.
    Continue,
    /// Cancel the whole tree (e.g. Ctrl-C): the root node is cancelled with this reason.
    CancelRoot(crate::CancelReason),
    /// Nothing can ever wake a task again (deterministic mode's deadlock check): the
    /// executor reports the stuck tree instead of blocking forever.
    Deadlock,
    /// Report a dump of the tree (the dump signal, SIGUSR1, arrived).
    Dump,
}

/// The thing the loop blocks in when no task is runnable.
pub trait Park {
    /// Collects ready events and wakes the tasks they concern; see [`ParkMode`].
    fn park(&mut self, mode: ParkMode) -> ParkRequest;

    /// How long until the earliest timer is due, on this park's clock (`None`: no timer
    /// is pending, or this park has no timers). Reported in [`Tick::next_deadline`].
    ///
    /// [`Tick::next_deadline`]: crate::Tick::next_deadline
    fn next_deadline(&self) -> Option<std::time::Duration> {
        None
    }
}

/// Interrupts a blocking [`Park::park`] from any thread.
pub trait Unpark: Send + Sync + 'static {
    /// Makes the current or next `park(Wait)` return promptly.
    fn unpark(&self);
}

/// The simplest [`Park`]: the thread sleeps in `std::thread::park` until unparked. No I/O,
/// no timers: enough for [`crate::block_on`] and for tasks woken by other threads.
pub struct ThreadPark {
    /// Unparks the parked thread.
    unparker: std::sync::Arc<ThreadUnpark>,
}

impl ThreadPark {
    /// A park for the calling thread.
    pub fn new() -> Self {
        ThreadPark {
            unparker: std::sync::Arc::new(ThreadUnpark(std::thread::current())),
        }
    }

    /// The handle that unparks it, for [`crate::Executor::new`].
    pub fn unparker(&self) -> std::sync::Arc<dyn Unpark> {
        self.unparker.clone()
    }
}

impl Default for ThreadPark {
    fn default() -> Self {
        ThreadPark::new()
    }
}

impl Park for ThreadPark {
    fn park(&mut self, mode: ParkMode) -> ParkRequest {
        // A spurious return is fine: the loop looks for work and parks again.
        match mode {
            ParkMode::NoWait => {}
            ParkMode::Wait => std::thread::park(),
            ParkMode::WaitAtMost(timeout) => std::thread::park_timeout(timeout),
        }
        ParkRequest::Continue
    }
}

/// Unparks one thread.
struct ThreadUnpark(std::thread::Thread);

impl Unpark for ThreadUnpark {
    fn unpark(&self) {
        self.0.unpark();
    }
}
