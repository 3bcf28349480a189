//! The receiving half: [`Receiver`] and its await point [`Recv`].

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use treeloop_executor::coop;

use super::super::{enter, wake_all};
use super::{ReceiverState, RecvError, Shared, TryRecvError};

/// The receiving half; there is exactly one.
pub struct Receiver<T> {
    /// The channel; borrowed only for short, non-reentrant steps.
    shared: Rc<RefCell<Shared<T>>>,
}

impl<T> Receiver<T> {
    pub(super) fn new(shared: Rc<RefCell<Shared<T>>>) -> Self {
        Receiver { shared }
    }

    /// Waits for the next message.
    ///
    /// `Err(RecvError::Closed)` once the buffer is empty and every sender is gone (or the
    /// channel was closed); `Err(RecvError::Cancelled(_))` in a cancelled region, every
    /// time, even with messages waiting, and then no message was taken.
    ///
    /// # Panics
    ///
    /// When polled outside a treeloop runtime.
    pub fn recv(&mut self) -> Recv<'_, T> {
        Recv { receiver: self }
    }

    /// Takes the next message if there is one; never waits, works anywhere.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut wakers = Vec::new();
        let received = {
            let mut shared = self.shared.borrow_mut();
            match shared.buffer.pop_front() {
                Some(value) => {
                    // A slot is free: hand it to the oldest waiting sender.
                    shared.grant_slots(&mut wakers);
                    Ok(value)
                }
                None if shared.senders == 0 || shared.receiver != ReceiverState::Open => {
                    Err(TryRecvError::Closed)
                }
                None => Err(TryRecvError::Empty),
            }
        };
        // Released before waking: a waker may re-enter.
        wake_all(wakers);
        received
    }

    /// Closes the channel: sends fail from now on (waiting senders get their value back),
    /// while the messages already buffered can still be received.
    pub fn close(&mut self) {
        let wakers = {
            let mut shared = self.shared.borrow_mut();
            shared.receiver = ReceiverState::Closed;
            shared.send_waiters.queued_wakers()
        };
        wake_all(wakers);
    }

    /// Messages waiting in the buffer.
    pub fn len(&self) -> usize {
        self.shared.borrow().buffer.len()
    }

    /// Whether no message is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let (unreceived, wakers) = {
            let mut shared = self.shared.borrow_mut();
            shared.receiver = ReceiverState::Dropped;
            (
                std::mem::take(&mut shared.buffer),
                shared.send_waiters.queued_wakers(),
            )
        };
        // Waiting senders fail with their value back. The messages' `Drop` is user code
        // (a message may hold a `Sender` of this channel): it runs after the borrow.
        wake_all(wakers);
        drop(unreceived);
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
    /// The receiver, borrowed for as long as the wait.
    receiver: &'a mut Receiver<T>,
}

impl<T> Future for Recv<'_, T> {
    type Output = Result<T, RecvError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(cancelled) = enter("mpsc::Receiver::recv", cx) {
            // Every message stays in the buffer (R7).
            return cancelled.map(|cancelled| Err(RecvError::Cancelled(cancelled)));
        }
        let ready = {
            let mut shared = self.receiver.shared.borrow_mut();
            let ready = !shared.buffer.is_empty()
                || shared.senders == 0
                || shared.receiver != ReceiverState::Open;
            if !ready {
                shared.receiver_waker = Some(cx.waker().clone());
            }
            ready
        };
        if !ready || coop::poll_proceed(cx).is_pending() {
            return Poll::Pending;
        }
        // Nothing ran since the check: a message is there, or the channel is closed.
        Poll::Ready(self.receiver.try_recv().map_err(|_| RecvError::Closed))
    }
}

impl<T> Drop for Recv<'_, T> {
    fn drop(&mut self) {
        // A dropped wait leaves no waker behind.
        self.receiver.shared.borrow_mut().receiver_waker = None;
    }
}

impl<T> fmt::Debug for Recv<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recv").finish_non_exhaustive()
    }
}
