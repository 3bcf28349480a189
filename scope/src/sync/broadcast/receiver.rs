//! The receiving half: [`Receiver`], its cursor, and its await point [`Recv`].

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use treeloop_executor::coop;

use super::super::enter;
use super::super::waiters::{WaiterKey, WaiterState};
use super::{RecvError, Shared, TryRecvError};

/// A receiving half: it sees every message sent after it was made, in order. Make more
/// with [`Sender::subscribe`](super::Sender::subscribe) or [`resubscribe`](Self::resubscribe).
pub struct Receiver<T> {
    /// The channel; borrowed only for short, non-reentrant steps.
    shared: Rc<RefCell<Shared<T>>>,
    /// The position of the next message this receiver reads; it moves only when a receive
    /// completes, never when one is cancelled.
    next: u64,
}

impl<T> Receiver<T> {
    /// A receiver whose first message will be `next`; the caller has counted it in
    /// `receivers`.
    pub(super) fn new(shared: Rc<RefCell<Shared<T>>>, next: u64) -> Self {
        Receiver { shared, next }
    }

    /// A new receiver of the same channel, which sees the messages sent from now on (not
    /// the ones this receiver has yet to read).
    pub fn resubscribe(&self) -> Receiver<T> {
        let next = {
            let mut shared = self.shared.borrow_mut();
            shared.receivers += 1;
            shared.tail
        };
        Receiver::new(self.shared.clone(), next)
    }

    /// Messages sent and not yet received by this receiver, counting the ones it will
    /// never see: above the capacity, the next receive reports
    /// [`Lagged`](RecvError::Lagged).
    pub fn len(&self) -> usize {
        let tail = self.shared.borrow().tail;
        usize::try_from(tail - self.next).unwrap_or(usize::MAX)
    }

    /// Whether nothing new was sent since this receiver's last read.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: Clone> Receiver<T> {
    /// Waits for the next message.
    ///
    /// `Err(RecvError::Lagged(n))` once if `n` messages were overwritten before this
    /// receiver read them (the next `recv` returns the oldest message still held);
    /// `Err(RecvError::Closed)` once every sender is gone and nothing is left for it;
    /// `Err(RecvError::Cancelled(_))` in a cancelled region, every time, even with a
    /// message ready, and then nothing was taken and no `Lagged` report was consumed.
    ///
    /// # Panics
    ///
    /// When polled outside a treeloop runtime.
    pub fn recv(&mut self) -> Recv<'_, T> {
        Recv {
            receiver: self,
            waiter: None,
        }
    }

    /// Takes the next message if there is one; never waits, works anywhere.
    ///
    /// The value is cloned, except for the last receiver to read it, which gets it by move.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let value = self.shared.borrow_mut().read(&mut self.next)?;
        // Released before cloning: `T::clone` is user code.
        Ok(Rc::try_unwrap(value).unwrap_or_else(|shared| T::clone(&shared)))
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let released = self.shared.borrow_mut().release(self.next);
        // The messages only this receiver had yet to read: their `Drop` is user code (a
        // message may hold a `Sender` of this channel), so it runs after the borrow.
        drop(released);
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// The future of [`Receiver::recv`].
#[must_use = "futures do nothing unless awaited"]
pub struct Recv<'a, T> {
    /// The receiver, borrowed for as long as the wait: its cursor moves when this completes.
    receiver: &'a mut Receiver<T>,
    /// Its entry among the channel's waiters, while it has one (queued, or unlinked by a
    /// send or the last sender's drop and not yet removed).
    waiter: Option<WaiterKey>,
}

impl<T> Recv<'_, T> {
    /// Removes this future's entry from the waiters, if it has one.
    fn leave(&mut self) {
        if let Some(key) = self.waiter.take() {
            self.receiver.shared.borrow_mut().waiters.remove(key);
        }
    }
}

impl<T: Clone> Future for Recv<'_, T> {
    type Output = Result<T, RecvError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Some(cancelled) = enter("broadcast::Receiver::recv", cx) {
            // The cursor stays: no message taken, no `Lagged` report consumed (R7).
            this.leave();
            return cancelled.map(|cancelled| Err(RecvError::Cancelled(cancelled)));
        }
        let ready = {
            let mut shared = this.receiver.shared.borrow_mut();
            let ready = shared.is_ready(this.receiver.next);
            if !ready {
                match this.waiter {
                    Some(key) if shared.waiters.state(key) == WaiterState::Queued => {
                        shared.waiters.set_waker(key, cx.waker());
                    }
                    // New, or unlinked by a wake yet still not ready (a send or the last
                    // sender's drop makes every waiter ready, so only a stray poll gets
                    // here): queue (again) at the back rather than wait unqueued.
                    stale => {
                        if let Some(key) = stale {
                            shared.waiters.remove(key);
                        }
                        this.waiter = Some(shared.waiters.push_back((), cx.waker()));
                    }
                }
            }
            ready
        };
        if !ready || coop::poll_proceed(cx).is_pending() {
            return Poll::Pending;
        }
        this.leave();
        // Nothing ran since the check: a message or a `Lagged` report is there, or every
        // sender is gone; the cursor cannot have moved (the receiver is borrowed by us).
        Poll::Ready(match this.receiver.try_recv() {
            Ok(value) => Ok(value),
            Err(TryRecvError::Lagged(missed)) => Err(RecvError::Lagged(missed)),
            Err(TryRecvError::Closed) => Err(RecvError::Closed),
            Err(TryRecvError::Empty) => {
                unreachable!("broadcast::Recv: the receive was checked to be ready")
            }
        })
    }
}

impl<T> Drop for Recv<'_, T> {
    fn drop(&mut self) {
        // A dropped wait leaves no waker behind; there is no hand-off to pass on.
        self.leave();
    }
}

impl<T> fmt::Debug for Recv<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recv")
            .field("waiting", &self.waiter.is_some())
            .finish_non_exhaustive()
    }
}
