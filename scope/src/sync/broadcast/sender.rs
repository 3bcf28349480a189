//! The sending half: [`Sender`], which never waits.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use super::super::wake_all;
use super::{Receiver, SendError, Shared};

/// The sending half; clone it for more producers. Receivers see `Closed` (after draining)
/// when the last clone is dropped.
pub struct Sender<T> {
    /// The channel; borrowed only for short, non-reentrant steps.
    shared: Rc<RefCell<Shared<T>>>,
}

impl<T> Sender<T> {
    /// The first sender of a new channel (the count starts at 1).
    pub(super) fn new(shared: Rc<RefCell<Shared<T>>>) -> Self {
        Sender { shared }
    }

    /// Sends `value` to every live receiver and wakes those waiting; returns how many
    /// receivers will see it.
    ///
    /// When the ring is full the oldest message is overwritten (and dropped): the receivers
    /// that had not read it get [`RecvError::Lagged`](super::RecvError::Lagged) next.
    /// `Err(SendError(value))` hands the value back when no receiver is alive; nothing is
    /// stored then.
    ///
    /// Not an await point: it never waits, so it works anywhere, cancelled region or not.
    pub fn send(&self, value: T) -> Result<usize, SendError<T>> {
        let (receivers, overwritten, wakers) = {
            let mut shared = self.shared.borrow_mut();
            if shared.receivers == 0 {
                return Err(SendError(value));
            }
            let overwritten = shared.push(value);
            (shared.receivers, overwritten, shared.take_waiters())
        };
        // Released before waking (a waker may re-enter) and before dropping the overwritten
        // message (its `Drop` is user code, and may hold a `Sender` of this channel).
        wake_all(wakers);
        drop(overwritten);
        Ok(receivers)
    }

    /// A new receiver, which sees the messages sent from now on.
    pub fn subscribe(&self) -> Receiver<T> {
        let next = {
            let mut shared = self.shared.borrow_mut();
            shared.receivers += 1;
            shared.tail
        };
        Receiver::new(self.shared.clone(), next)
    }

    /// Live receivers: how many a `send` now would reach.
    pub fn receiver_count(&self) -> usize {
        self.shared.borrow().receivers
    }

    /// Messages held: sent, and not yet read by (or released by) every receiver alive at
    /// the send, and not overwritten. At most the capacity; O(capacity) to count.
    pub fn len(&self) -> usize {
        self.shared.borrow().held()
    }

    /// Whether no message is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
        let wakers = {
            let mut shared = self.shared.borrow_mut();
            shared.senders -= 1;
            if shared.senders > 0 {
                return;
            }
            shared.take_waiters()
        };
        // The last sender: a waiting `recv` learns that no message will come.
        wake_all(wakers);
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("receivers", &self.receiver_count())
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}
