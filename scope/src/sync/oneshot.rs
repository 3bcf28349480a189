//! A oneshot channel: one value, sent once, from one [`Sender`] to one [`Receiver`].
//!
//! # Ground rules
//!
//! - The value sits in the shared slot until a `recv` (or `try_recv`) that is not
//!   cancelled takes it. A cancelled `recv` returns `Err(RecvError::Cancelled(_))` and leaves
//!   the value where it is, for a later `recv` (R7).
//! - There is one receiver, so one waker slot suffices: no queue.
//! - A value dropped because the receiver went away is dropped after the borrow is released
//!   (its `Drop` is user code and may touch the channel).

use std::cell::RefCell;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use treeloop_executor::{Cancelled, coop};

use super::enter;

/// Creates a oneshot channel.
///
/// ```
/// use treeloop::{block_on, spawn};
/// use treeloop::sync::oneshot;
///
/// let answer = block_on(async {
///     let (tx, mut rx) = oneshot::channel();
///     spawn(async move { tx.send(42).unwrap() });
///     rx.recv().await
/// });
/// assert_eq!(answer, Ok(42));
/// ```
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Rc::new(RefCell::new(Shared {
        slot: Slot::Empty,
        sender: End::Open,
        receiver: End::Open,
        receiver_waker: None,
    }));
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

/// What the slot holds.
#[derive(Debug)]
enum Slot<T> {
    /// Nothing sent yet.
    Empty,
    /// Sent, not yet received.
    Full(T),
    /// Received: the channel has done its one job.
    Taken,
}

/// Whether one end of the channel still exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// The handle is alive (for the sender: it has not sent or been dropped).
    Open,
    /// The handle is gone (for the sender: it sent, or was dropped).
    Gone,
}

/// The state both ends share.
#[derive(Debug)]
struct Shared<T> {
    /// The value in transit.
    slot: Slot<T>,
    /// The sender's end.
    sender: End,
    /// The receiver's end.
    receiver: End,
    /// The task blocked in `recv`, if any.
    receiver_waker: Option<Waker>,
}

/// The sending half; [`send`](Sender::send) consumes it.
#[derive(Debug)]
pub struct Sender<T> {
    /// The channel; borrowed only for short, non-reentrant steps.
    shared: Rc<RefCell<Shared<T>>>,
}

/// The receiving half.
#[derive(Debug)]
pub struct Receiver<T> {
    /// The channel; borrowed only for short, non-reentrant steps.
    shared: Rc<RefCell<Shared<T>>>,
}

/// Why [`Receiver::recv`] returned no value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvError {
    /// The sender was dropped without sending, or the value was already received.
    Closed,
    /// The region is cancelled; a value already sent stays in the channel for a later
    /// `recv`.
    Cancelled(Cancelled),
}

/// Why [`Receiver::try_recv`] returned no value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing sent yet; the sender is still alive.
    Empty,
    /// The sender was dropped without sending, or the value was already received.
    Closed,
}

impl<T> Sender<T> {
    /// Sends `value` and wakes the receiver. Returns the value back in `Err` if the
    /// receiver is gone.
    ///
    /// Not an await point: it never blocks, so it works anywhere, cancelled region or not.
    pub fn send(self, value: T) -> Result<(), T> {
        let waker = {
            let mut shared = self.shared.borrow_mut();
            if shared.receiver == End::Gone {
                return Err(value);
            }
            shared.slot = Slot::Full(value);
            shared.receiver_waker.take()
        };
        // `self` drops here and marks the sender gone; the receiver sees the value first.
        drop(self);
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// Whether the receiver is gone, so a `send` would fail.
    pub fn is_closed(&self) -> bool {
        self.shared.borrow().receiver == End::Gone
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut shared = self.shared.borrow_mut();
            shared.sender = End::Gone;
            shared.receiver_waker.take()
        };
        // Released before waking: a `recv` learns the channel closed (or finds the value).
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Receiver<T> {
    /// Waits for the value.
    ///
    /// `Err(RecvError::Closed)` if the sender was dropped without sending (or the value was
    /// already received); `Err(RecvError::Cancelled(_))` in a cancelled region, every time,
    /// even when the value is there, and the value stays for a later `recv`.
    ///
    /// # Panics
    ///
    /// When polled outside a treeloop runtime.
    pub fn recv(&mut self) -> Recv<'_, T> {
        Recv { receiver: self }
    }

    /// Takes the value if it has been sent; never waits, works anywhere.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut shared = self.shared.borrow_mut();
        match std::mem::replace(&mut shared.slot, Slot::Taken) {
            Slot::Full(value) => Ok(value),
            Slot::Taken => Err(TryRecvError::Closed),
            Slot::Empty => {
                shared.slot = Slot::Empty;
                match shared.sender {
                    End::Open => Err(TryRecvError::Empty),
                    End::Gone => Err(TryRecvError::Closed),
                }
            }
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let unreceived = {
            let mut shared = self.shared.borrow_mut();
            shared.receiver = End::Gone;
            shared.receiver_waker = None;
            std::mem::replace(&mut shared.slot, Slot::Taken)
        };
        // The value's `Drop` is user code: it runs after the borrow is released.
        drop(unreceived);
    }
}

/// The future of [`Receiver::recv`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Recv<'a, T> {
    /// The receiver, borrowed for as long as the wait.
    receiver: &'a mut Receiver<T>,
}

impl<T> Future for Recv<'_, T> {
    type Output = Result<T, RecvError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(cancelled) = enter("oneshot::Receiver::recv", cx) {
            // The value, if any, stays in the slot (R7).
            return cancelled.map(|cancelled| Err(RecvError::Cancelled(cancelled)));
        }
        let ready = {
            let mut shared = self.receiver.shared.borrow_mut();
            let ready = match shared.slot {
                Slot::Full(_) | Slot::Taken => true,
                Slot::Empty => shared.sender == End::Gone,
            };
            if !ready {
                shared.receiver_waker = Some(cx.waker().clone());
            }
            ready
        };
        if !ready || coop::poll_proceed(cx).is_pending() {
            return Poll::Pending;
        }
        Poll::Ready(self.receiver.try_recv().map_err(|_| RecvError::Closed))
    }
}

impl<T> Drop for Recv<'_, T> {
    fn drop(&mut self) {
        // A dropped wait leaves no waker behind.
        self.receiver.shared.borrow_mut().receiver_waker = None;
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Closed => f.write_str(
                "oneshot channel closed: the sender was dropped without sending, or the value \
                 was already received",
            ),
            RecvError::Cancelled(cancelled) => {
                write!(f, "{cancelled}; the value, if sent, stays in the channel")
            }
        }
    }
}

impl Error for RecvError {}

impl From<Cancelled> for RecvError {
    fn from(cancelled: Cancelled) -> Self {
        RecvError::Cancelled(cancelled)
    }
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TryRecvError::Empty => "oneshot channel empty: nothing sent yet",
            TryRecvError::Closed => {
                "oneshot channel closed: the sender was dropped without sending, or the value \
                 was already received"
            }
        })
    }
}

impl Error for TryRecvError {}
