//! `Timer`: a deadline registered with the reactor, with no opinion about cancellation.
//!
//! The building block under `sleep` (which adds the cancellation check and the budget) and
//! under deadlines (`timeout`), whose own timer must keep running while the region it
//! guards is cancelled: it is what cancels it.

use std::task::{Context, Poll};

use crate::clock::Instant;
use crate::context::{expect_reactor, with_reactor};
use crate::timers::TimerKey;

/// What a poll found.
enum Expiry {
    /// Not due: the registration holds the poll's waker.
    Pending,
    /// Due, and the reactor fired (and removed) the registration, if there was one.
    Fired,
    /// Due by the clock; a registration may still be in the table (unlike `Fired`, the slot
    /// must be looked up to remove it).
    Due,
}

/// A deadline on the runtime's clock that can wake a task.
#[derive(Debug)]
pub struct Timer {
    /// When it expires.
    deadline: Instant,
    /// Its registration with the reactor, while a poll is waiting for it.
    key: Option<TimerKey>,
    /// What to call it in the misuse panic ("sleep", "timeout", ...).
    what: &'static str,
}

impl Timer {
    /// A timer expiring at `deadline`. Nothing is registered until it is polled.
    pub fn at(deadline: Instant) -> Timer {
        Timer {
            deadline,
            key: None,
            what: "timer",
        }
    }

    /// Names the timer after the operation it serves, for the panic when it is polled
    /// outside a runtime ("sleep polled outside a treeloop runtime ...").
    pub fn named(mut self, what: &'static str) -> Timer {
        self.what = what;
        self
    }

    /// When it expires.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Moves the deadline (unregistering the old one).
    pub fn reset(&mut self, deadline: Instant) {
        self.unregister();
        self.deadline = deadline;
    }

    /// Whether the runtime's clock has reached the deadline.
    pub fn is_expired(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// `Ready` once the deadline has passed; otherwise registers `cx`'s waker to be woken
    /// then. No cancellation check and no budget: callers add the policy they need.
    ///
    /// # Panics
    ///
    /// Outside a runtime with a reactor.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_with(cx, None)
    }

    /// [`Timer::poll_expired`] for a timer whose deadline was just computed from `now`, read
    /// from the runtime's clock in this same poll (`sleep`'s first poll): the clock is not
    /// read again.
    pub(crate) fn poll_expired_from(&mut self, cx: &mut Context<'_>, now: Instant) -> Poll<()> {
        self.poll_with(cx, Some(now))
    }

    fn poll_with(&mut self, cx: &mut Context<'_>, now: Option<Instant>) -> Poll<()> {
        let deadline = self.deadline;
        let key = &mut self.key;
        let expired = expect_reactor(self.what, |reactor| {
            let mut timers = reactor.timers.borrow_mut();
            // Optimisation: a fired registration needs no clock and no lookup. The model
            // reads the clock at every poll. But the reactor's last expiry fired every timer
            // due at its `now`, so a deadline at or before that `now` has passed, and its
            // registration (if any) is gone: `Timers::fired_through` says so from the timer
            // table's own fields. Saves the clock read (a vDSO call, and a system call on some
            // virtual machines) and the read of the registration's slot, a cache miss when
            // thousands of timers fire in one turn, in the poll that follows every fired
            // timer.
            if timers.fired_through(deadline) {
                return Expiry::Fired;
            }
            // Still registered, as far as the watermark knows: keep the waker current (a
            // task may be polled with another waker). A registration found gone was fired.
            if let Some(registered) = *key {
                if !timers.set_waker(registered, cx.waker()) {
                    return Expiry::Fired;
                }
            }
            if now.unwrap_or_else(|| reactor.now()) >= deadline {
                return Expiry::Due;
            }
            if key.is_none() {
                *key = Some(timers.insert(deadline, cx.waker().clone()));
            }
            Expiry::Pending
        });
        match expired {
            Expiry::Pending => return Poll::Pending,
            // The reactor removed the registration when it fired it.
            Expiry::Fired => self.key = None,
            Expiry::Due => self.unregister(),
        }
        Poll::Ready(())
    }

    /// Forgets the registration, if any (the reactor may already have fired it).
    pub fn unregister(&mut self) {
        if let Some(key) = self.key.take() {
            with_reactor(|reactor| reactor.timers.borrow_mut().remove(key));
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.unregister();
    }
}
