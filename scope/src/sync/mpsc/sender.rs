//! The sending half: [`Sender`], its await point [`Send`], and the hand-off of reserved slots.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use treeloop_executor::coop;

use super::super::waiters::{WaiterKey, WaiterState};
use super::super::{enter, wake_all};
use super::{ReceiverState, SendError, Shared, TrySendError};

/// The sending half; clone it for more producers. The channel closes for the receiver when
/// the last clone is dropped.
pub struct Sender<T> {
    /// The channel; borrowed only for short, non-reentrant steps.
    shared: Rc<RefCell<Shared<T>>>,
}

impl<T> Sender<T> {
    /// The first sender of a new channel (the count starts at 1).
    pub(super) fn new(shared: Rc<RefCell<Shared<T>>>) -> Self {
        Sender { shared }
    }

    /// Sends `value`, waiting for a free slot while a bounded channel is full; waiting
    /// senders are served in arrival order.
    ///
    /// `Err(SendError::Closed(value))` if the receiver is dropped or closed (also while
    /// waiting); `Err(SendError::Cancelled(value, _))` in a cancelled region, every time,
    /// even when a slot is free, and then nothing was enqueued.
    ///
    /// # Panics
    ///
    /// When polled outside a treeloop runtime.
    pub fn send(&self, value: T) -> Send<'_, T> {
        Send {
            sender: self,
            value: Some(value),
            waiter: None,
        }
    }

    /// Sends `value` if a slot is free now; never waits, works anywhere.
    ///
    /// A slot counts as taken while it is reserved for a waiting sender, so `try_send`
    /// never jumps the line.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let waker = {
            let mut shared = self.shared.borrow_mut();
            if shared.receiver != ReceiverState::Open {
                return Err(TrySendError::Closed(value));
            }
            if shared.free_slots() == 0 {
                return Err(TrySendError::Full(value));
            }
            shared.buffer.push_back(value);
            shared.take_receiver_waker()
        };
        // Released before waking: a waker may re-enter.
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// Whether the receiver is dropped or closed, so sends fail.
    pub fn is_closed(&self) -> bool {
        self.shared.borrow().receiver != ReceiverState::Open
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.borrow_mut().senders += 1;
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut shared = self.shared.borrow_mut();
            shared.senders -= 1;
            if shared.senders > 0 {
                return;
            }
            shared.take_receiver_waker()
        };
        // The last sender: a waiting `recv` learns that no message will come.
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

/// The future of [`Sender::send`].
#[must_use = "futures do nothing unless awaited"]
pub struct Send<'a, T> {
    /// The sender, borrowed for as long as the wait.
    sender: &'a Sender<T>,
    /// The value to send; `None` once it was sent or handed back in an error.
    value: Option<T>,
    /// Its place in the line of waiting senders, while it is in it (queued, or notified:
    /// a slot is reserved for it).
    waiter: Option<WaiterKey>,
}

// The value is never pinned: it is moved into the buffer or handed back.
impl<T> Unpin for Send<'_, T> {}

/// What a poll of [`Send`] found, decided under the borrow and acted on after it.
enum Step {
    /// A slot is free or reserved for this sender: send once the budget allows.
    Ready,
    /// The channel is full; the sender waits in line.
    Wait,
    /// The receiver is dropped or closed.
    Closed,
}

impl<T> Send<'_, T> {
    /// The value, for sending or handing back.
    fn take_value(&mut self) -> T {
        self.value
            .take()
            .expect("mpsc::Send polled after it completed: a future must not be polled again")
    }

    /// Leaves the line of waiting senders, passing on a slot reserved for this sender.
    fn leave_line(&mut self) {
        let Some(key) = self.waiter.take() else {
            return;
        };
        let mut wakers = Vec::new();
        self.sender.shared.borrow_mut().leave_line(key, &mut wakers);
        // Released before waking: a waker may re-enter.
        wake_all(wakers);
    }

    /// Decides what this poll can do, registering in the line if it must wait.
    fn step(&mut self, waker: &Waker) -> Step {
        let mut shared = self.sender.shared.borrow_mut();
        if shared.receiver != ReceiverState::Open {
            return Step::Closed;
        }
        match self.waiter {
            Some(key) => match shared.send_waiters.state(key) {
                WaiterState::Notified => Step::Ready,
                WaiterState::Queued => {
                    shared.send_waiters.set_waker(key, waker);
                    Step::Wait
                }
            },
            // The invariant (a free slot means nobody waits) makes this fair.
            None if shared.free_slots() > 0 => Step::Ready,
            None => {
                self.waiter = Some(shared.send_waiters.push_back((), waker));
                Step::Wait
            }
        }
    }
}

impl<T> Future for Send<'_, T> {
    type Output = Result<(), SendError<T>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Some(cancelled) = enter("mpsc::Sender::send", cx) {
            this.leave_line();
            return cancelled
                .map(|cancelled| Err(SendError::Cancelled(this.take_value(), cancelled)));
        }
        match this.step(cx.waker()) {
            Step::Wait => return Poll::Pending,
            Step::Closed => {
                this.leave_line();
                return Poll::Ready(Err(SendError::Closed(this.take_value())));
            }
            Step::Ready => {}
        }
        // A reserved slot stays reserved while the task yields to the budget.
        if coop::poll_proceed(cx).is_pending() {
            return Poll::Pending;
        }
        let value = this.take_value();
        let waker = {
            let mut shared = this.sender.shared.borrow_mut();
            if let Some(key) = this.waiter.take() {
                // Fill the slot reserved for us: the free count does not change.
                shared.send_waiters.remove(key);
                shared.reserved -= 1;
            }
            shared.buffer.push_back(value);
            shared.take_receiver_waker()
        };
        // Released before waking: a waker may re-enter.
        if let Some(waker) = waker {
            waker.wake();
        }
        Poll::Ready(Ok(()))
    }
}

impl<T> Drop for Send<'_, T> {
    fn drop(&mut self) {
        // A dropped send enqueues nothing and passes on a reserved slot; the value (if
        // still here) is dropped with the fields, after every borrow is released.
        self.leave_line();
    }
}

impl<T> fmt::Debug for Send<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Send")
            .field("waiting", &self.waiter.is_some())
            .finish_non_exhaustive()
    }
}
