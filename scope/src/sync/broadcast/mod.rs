//! A broadcast channel: every message reaches every receiver subscribed when it was sent.
//!
//! The fan-out of events, configuration changes or shutdown notices to many listeners,
//! as with tokio's `broadcast`. Each message is stored once, in a ring of `capacity`
//! slots; a receiver that falls too far behind is told how many it missed
//! ([`RecvError::Lagged`]) and carries on from the oldest message still held.
//!
//! ```
//! use treeloop::sync::broadcast;
//!
//! let (mine, theirs) = treeloop::block_on(async {
//!     let (tx, mut rx) = broadcast::channel(8);
//!     let mut other = tx.subscribe();
//!     let listener = treeloop::spawn(async move {
//!         let mut seen = Vec::new();
//!         while let Ok(word) = other.recv().await {
//!             seen.push(word);
//!         }
//!         seen // `Err(Closed)` ended the loop: the sender is gone and all was read
//!     });
//!     assert_eq!(tx.send("hello"), Ok(2)); // two receivers will see it
//!     tx.send("world").unwrap();
//!     drop(tx);
//!     let mut seen = Vec::new();
//!     while let Ok(word) = rx.recv().await {
//!         seen.push(word);
//!     }
//!     (seen, listener.await.unwrap())
//! });
//! assert_eq!(mine, ["hello", "world"]);
//! assert_eq!(theirs, mine);
//! ```
//!
//! # Ground rules
//!
//! - **Message `pos` (the `pos`-th ever sent) lives in slot `pos % capacity`**, with the
//!   number of receivers that have yet to read it: every receiver alive at the send.
//!   Invariant: a slot holds a message exactly while that number is above 0, so the held
//!   messages are always the newest [`Sender::len`] ones.
//! - **A message leaves the ring once:** when its last reader reads it (that reader gets
//!   the value by move, the others a clone), when the last receiver that had yet to read it
//!   is dropped, or when a send overwrites its slot (the receivers that had yet to read it
//!   now lag).
//! - **Lagging is reported, never swallowed:** a receiver whose cursor fell behind the
//!   oldest slot gets `Lagged(n)` once (`n` messages it will never see), and its cursor jumps
//!   to the oldest message held.
//! - **`recv` is the only await point, and a cancelled `recv` has no effect** (R6, R7): in a
//!   cancelled region it fails every time, even with a message ready, and moves no cursor,
//!   so it takes no message and consumes no `Lagged` report. `send` never waits, so it is
//!   not an await point: it works in a cancelled region and outside a runtime.
//! - **Every send wakes every waiting receiver.** The message is for all of them, so there
//!   is nothing to hand off and no line to keep fair (unlike `mpsc` or `Mutex`); the waiters
//!   are unlinked as they are woken, so a second send before they run wakes nobody twice.
//!   A `recv` that completes, is cancelled or is dropped removes its own entry: no waker
//!   outlives its future.
//! - **No `RefCell` borrow is held across user code.** Values are stored as `Rc<T>`: a
//!   receiver takes an `Rc` under the borrow and clones the `T` after releasing it;
//!   overwritten and released messages are dropped after the borrow too. `T::clone` and
//!   `T::drop` may touch this very channel (a message may hold a `Sender`).
//! - When every [`Sender`] is gone, receivers drain what is held for them, then get
//!   `Closed`.
//!
//! Why `Rc<T>` and not `T` in the slot, as tokio stores it: cloning under the borrow would
//! run user code there, and a `Clone` that looks at the channel would panic; the price is
//! one allocation per message. The capacity is exact (tokio rounds it up to a power of two),
//! so `Lagged(n)` numbers are what a reader of the call expects.

use std::cell::RefCell;
use std::rc::Rc;
use std::task::Waker;

use super::waiters::WaitQueue;

mod error;
mod receiver;
mod sender;

pub use error::{RecvError, SendError, TryRecvError};
pub use receiver::{Receiver, Recv};
pub use sender::Sender;

/// Creates a broadcast channel that holds up to `capacity` messages for receivers that
/// have not read them yet; a receiver that falls further behind gets
/// [`RecvError::Lagged`].
///
/// More receivers come from [`Sender::subscribe`] (or [`Receiver::resubscribe`]); each sees
/// the messages sent after it was made.
///
/// # Panics
///
/// If `capacity` is 0.
#[track_caller]
pub fn channel<T: Clone>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    assert!(
        capacity > 0,
        "broadcast::channel capacity must be at least 1: a message waits in the ring until \
         every receiver has read it, and a ring of 0 slots holds none; use channel(1) to \
         keep only the latest message"
    );
    let shared = Rc::new(RefCell::new(Shared {
        ring: (0..capacity).map(|_| None).collect(),
        tail: 0,
        senders: 1,
        receivers: 1,
        waiters: WaitQueue::new(),
    }));
    (Sender::new(shared.clone()), Receiver::new(shared, 0))
}

/// A message in the ring.
#[derive(Debug)]
struct Message<T> {
    /// Receivers that have yet to read it; the message leaves the ring when this reaches 0.
    unread_by: usize,
    /// The value, shared so that readers clone it after the borrow (see the module docs).
    value: Rc<T>,
}

/// The state every handle of one channel shares.
#[derive(Debug)]
struct Shared<T> {
    /// `capacity` slots; message `pos` is in slot `pos % capacity` while it is held.
    ring: Box<[Option<Message<T>>]>,
    /// The position the next message gets: how many have been sent.
    tail: u64,
    /// Live `Sender` handles; at 0 a receiver with nothing left to read gets `Closed`.
    senders: usize,
    /// Live `Receiver` handles: how many will read a message sent now.
    receivers: usize,
    /// Receivers blocked in `recv`; every send unlinks and wakes them all.
    waiters: WaitQueue<()>,
}

impl<T> Shared<T> {
    /// The oldest position the ring can still hold: earlier messages were overwritten.
    fn oldest(&self) -> u64 {
        self.tail.saturating_sub(self.ring.len() as u64)
    }

    /// The slot of message `pos`.
    fn slot(&mut self, pos: u64) -> &mut Option<Message<T>> {
        let index = (pos % self.ring.len() as u64) as usize;
        &mut self.ring[index]
    }

    /// Messages held: sent, and not yet read by every receiver alive at the send.
    fn held(&self) -> usize {
        self.ring.iter().filter(|slot| slot.is_some()).count()
    }

    /// Whether a receive at cursor `next` would complete (with a message, a `Lagged` report
    /// or `Closed`) rather than wait. No effect.
    fn is_ready(&self, next: u64) -> bool {
        next < self.tail || self.senders == 0
    }

    /// Stores `value` for every live receiver; returns the message it overwrote, to be
    /// dropped once the borrow is released.
    fn push(&mut self, value: T) -> Option<Message<T>> {
        let message = Message {
            unread_by: self.receivers,
            value: Rc::new(value),
        };
        let pos = self.tail;
        self.tail += 1;
        self.slot(pos).replace(message)
    }

    /// Receives at the cursor `next`, moving it: the value's `Rc` (the last reader gets the
    /// only one), or why there is none.
    fn read(&mut self, next: &mut u64) -> Result<Rc<T>, TryRecvError> {
        let oldest = self.oldest();
        if *next < oldest {
            // Report the gap once; the next read starts at the oldest message held.
            let missed = oldest - *next;
            *next = oldest;
            return Err(TryRecvError::Lagged(missed));
        }
        if *next == self.tail {
            return Err(if self.senders == 0 {
                TryRecvError::Closed
            } else {
                TryRecvError::Empty
            });
        }
        let slot = self.slot(*next);
        *next += 1;
        match slot.take() {
            Some(mut message) if message.unread_by > 1 => {
                message.unread_by -= 1;
                let value = message.value.clone();
                *slot = Some(message);
                Ok(value)
            }
            // The last reader takes the message out of the ring.
            Some(message) => Ok(message.value),
            None => unreachable!("broadcast: a message this receiver has not read left the ring"),
        }
    }

    /// A receiver at cursor `next` goes away: it gives up its claim on every message it had
    /// yet to read; the messages nobody else will read are returned, to be dropped once the
    /// borrow is released.
    fn release(&mut self, next: u64) -> Vec<Message<T>> {
        self.receivers -= 1;
        let mut released = Vec::new();
        for pos in next.max(self.oldest())..self.tail {
            let slot = self.slot(pos);
            if let Some(message) = slot {
                message.unread_by -= 1;
                if message.unread_by == 0 {
                    released.extend(slot.take());
                }
            }
        }
        released
    }

    /// Unlinks every waiting receiver and returns its waker, to wake once the borrow is
    /// released.
    fn take_waiters(&mut self) -> Vec<Waker> {
        let mut wakers = Vec::new();
        while let Some(waker) = self.waiters.pop_front() {
            wakers.push(waker);
        }
        wakers
    }
}
