//! The errors of the broadcast channel.

use std::error::Error;
use std::fmt;

use treeloop_executor::Cancelled;

/// Why [`Sender::send`](super::Sender::send) did not send: no receiver is alive. The value
/// comes back in the field.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SendError<T>(pub T);

/// Why [`Receiver::recv`](super::Receiver::recv) returned no message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvError {
    /// The receiver fell behind: this many messages were overwritten before it read them.
    /// Reported once; the next `recv` returns the oldest message still held.
    Lagged(u64),
    /// Every sender is gone and this receiver has read everything held for it.
    Closed,
    /// The region is cancelled; no message was taken and no `Lagged` report consumed.
    Cancelled(Cancelled),
}

/// Why [`Receiver::try_recv`](super::Receiver::try_recv) returned no message.
///
/// ```
/// use treeloop::sync::broadcast::{self, TryRecvError};
///
/// let (tx, mut rx) = broadcast::channel(2);
/// for n in 1..=5 {
///     tx.send(n).unwrap();
/// }
/// // Two slots: 1, 2 and 3 were overwritten before `rx` read them.
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Lagged(3)));
/// assert_eq!(rx.try_recv(), Ok(4));
/// assert_eq!(rx.try_recv(), Ok(5));
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing new; senders are still alive.
    Empty,
    /// The receiver fell behind by this many messages (see [`RecvError::Lagged`]).
    Lagged(u64),
    /// Every sender is gone and this receiver has read everything held for it.
    Closed,
}

impl<T> SendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        self.0
    }
}

// Debug without `T: Debug`, so `unwrap()` works on any message type (as in tokio).
impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "broadcast send with no receiver: every receiver was dropped (subscribe one \
             before sending); the value is returned in the error",
        )
    }
}

impl<T> Error for SendError<T> {}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Lagged(missed) => write!(
                f,
                "receiver lagged: {missed} messages were overwritten before it read them; \
                 the next recv returns the oldest message still held"
            ),
            RecvError::Closed => f.write_str(
                "channel closed: every sender is gone and no message is left for this \
                 receiver",
            ),
            RecvError::Cancelled(cancelled) => {
                write!(f, "{cancelled}; no message was taken")
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
        match self {
            TryRecvError::Empty => f.write_str("channel empty: await `recv` to wait for a message"),
            TryRecvError::Lagged(missed) => write!(
                f,
                "receiver lagged: {missed} messages were overwritten before it read them; \
                 the next try_recv returns the oldest message still held"
            ),
            TryRecvError::Closed => f.write_str(
                "channel closed: every sender is gone and no message is left for this \
                 receiver",
            ),
        }
    }
}

impl Error for TryRecvError {}
