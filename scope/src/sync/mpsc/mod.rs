//! A multi-producer, single-consumer channel, bounded or unbounded.
//!
//! ```
//! use treeloop::{block_on, spawn};
//! use treeloop::sync::mpsc;
//!
//! let received = block_on(async {
//!     let (tx, mut rx) = mpsc::bounded(2);
//!     for worker in 0..3 {
//!         let tx = tx.clone();
//!         spawn(async move { tx.send(worker * 10).await.unwrap() });
//!     }
//!     drop(tx);
//!     let mut received = Vec::new();
//!     while let Ok(value) = rx.recv().await {
//!         received.push(value);
//!     }
//!     received // `Err(Closed)` ended the loop: every sender is gone
//! });
//! assert_eq!(received, [0, 10, 20]);
//! ```
//!
//! # Ground rules
//!
//! - **Messages leave the buffer only through a receive that is not cancelled.** A cancelled
//!   `recv` takes nothing: the message is there for the next one (R7).
//! - **A message enters the buffer only through a send that is not cancelled.** A cancelled
//!   `send` returns `SendError::Cancelled(value, _)`: the value is handed back, nothing was
//!   enqueued (R7).
//! - **Senders waiting on a full channel are served in arrival order, by hand-off.** When a
//!   receive frees a slot and senders wait, the slot is *reserved* for the head waiter
//!   (counted in `reserved`) and the waiter is woken; the slot stays reserved until that
//!   sender fills it, so no newcomer (`send` or `try_send`) can take it. A reserved sender
//!   that is cancelled or dropped gives the slot to the next waiter. Invariant: while the
//!   channel is open and a slot is free (`len + reserved < capacity`), no sender waits in
//!   line.
//! - Closing (`close`, or dropping the receiver) wakes every waiting sender; they fail with
//!   their value back. Messages already buffered can still be received after `close`.
//! - Values dropped by the channel (the buffer of a dropped receiver) are dropped after the
//!   borrow is released: a message may hold a `Sender` of this very channel.
//!
//! Capacity 0 is rejected: a rendezvous channel would need the sender to wait for a
//! receiver to be polled, a different protocol; use [`oneshot`](super::oneshot) or
//! `bounded(1)`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::Waker;

use super::waiters::{WaitQueue, WaiterKey, WaiterState};

mod error;
mod receiver;
mod sender;

pub use error::{RecvError, SendError, TryRecvError, TrySendError};
pub use receiver::{Receiver, Recv};
pub use sender::{Send, Sender};

/// Creates a channel that buffers at most `capacity` messages; senders wait while it is
/// full.
///
/// # Panics
///
/// If `capacity` is 0.
#[track_caller]
pub fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    assert!(
        capacity > 0,
        "mpsc::bounded capacity must be at least 1: for a hand-off with no buffer use a \
         oneshot channel, or bounded(1)"
    );
    channel(Capacity::Bounded(capacity))
}

/// Creates a channel with no bound: `send` never waits (and memory is the only limit, so
/// prefer [`bounded`] when the producer can outrun the consumer).
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    channel(Capacity::Unbounded)
}

fn channel<T>(capacity: Capacity) -> (Sender<T>, Receiver<T>) {
    let shared = Rc::new(RefCell::new(Shared {
        buffer: VecDeque::new(),
        capacity,
        reserved: 0,
        senders: 1,
        receiver: ReceiverState::Open,
        receiver_waker: None,
        send_waiters: WaitQueue::new(),
    }));
    (Sender::new(shared.clone()), Receiver::new(shared))
}

/// How many messages the buffer may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Capacity {
    /// At most this many (at least 1).
    Bounded(usize),
    /// No limit.
    Unbounded,
}

/// Whether the receiving end still accepts messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReceiverState {
    /// Sends are accepted.
    Open,
    /// `close` was called: sends fail, the buffer can still be drained.
    Closed,
    /// The receiver was dropped: sends fail, the buffer is gone.
    Dropped,
}

/// The state every handle of one channel shares.
#[derive(Debug)]
struct Shared<T> {
    /// Messages sent and not yet received, oldest first.
    buffer: VecDeque<T>,
    /// The bound on `buffer.len() + reserved`.
    capacity: Capacity,
    /// Slots handed to waiting senders that have not filled them yet; equals the number of
    /// notified entries in `send_waiters`.
    reserved: usize,
    /// Live `Sender` handles; at 0 (and an empty buffer) `recv` reports `Closed`.
    senders: usize,
    /// Open, closed or dropped.
    receiver: ReceiverState,
    /// The task blocked in `recv`, if any (there is one receiver, so one slot).
    receiver_waker: Option<Waker>,
    /// Senders waiting for a slot, oldest first.
    send_waiters: WaitQueue<()>,
}

impl<T> Shared<T> {
    /// Slots neither filled nor reserved.
    fn free_slots(&self) -> usize {
        match self.capacity {
            Capacity::Bounded(capacity) => capacity - self.buffer.len() - self.reserved,
            Capacity::Unbounded => usize::MAX,
        }
    }

    /// Hands free slots to waiting senders, oldest first, collecting their wakers.
    fn grant_slots(&mut self, wakers: &mut Vec<Waker>) {
        if self.receiver != ReceiverState::Open {
            return;
        }
        while self.free_slots() > 0 {
            let Some(waker) = self.send_waiters.pop_front() else {
                break;
            };
            self.reserved += 1;
            wakers.push(waker);
        }
    }

    /// A waiting sender leaves the line: if a slot had been reserved for it, the slot goes
    /// to the next waiter.
    fn leave_line(&mut self, key: WaiterKey, wakers: &mut Vec<Waker>) {
        if self.send_waiters.remove(key) == WaiterState::Notified {
            self.reserved -= 1;
            self.grant_slots(wakers);
        }
    }

    /// Takes the receiver's waker, to wake it once the borrow is released.
    fn take_receiver_waker(&mut self) -> Option<Waker> {
        self.receiver_waker.take()
    }
}
