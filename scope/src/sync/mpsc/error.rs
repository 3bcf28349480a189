//! The errors of the mpsc channel; every one that fails a send hands the value back.

use std::error::Error;
use std::fmt;

use treeloop_executor::Cancelled;

/// Why [`Sender::send`](super::Sender::send) did not send; the value comes back.
pub enum SendError<T> {
    /// The receiver was dropped or closed the channel.
    Closed(T),
    /// The region is cancelled; nothing was enqueued.
    Cancelled(T, Cancelled),
}

/// Why [`Sender::try_send`](super::Sender::try_send) did not send; the value comes back.
pub enum TrySendError<T> {
    /// The channel is full (or senders wait for the free slots).
    Full(T),
    /// The receiver was dropped or closed the channel.
    Closed(T),
}

/// Why [`Receiver::recv`](super::Receiver::recv) returned no message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvError {
    /// The buffer is empty and no message can come: every sender is gone, or the receiver
    /// closed the channel.
    Closed,
    /// The region is cancelled; no message was taken.
    Cancelled(Cancelled),
}

/// Why [`Receiver::try_recv`](super::Receiver::try_recv) returned no message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryRecvError {
    /// The buffer is empty; senders are still alive.
    Empty,
    /// The buffer is empty and no message can come.
    Closed,
}

impl<T> SendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            SendError::Closed(value) | SendError::Cancelled(value, _) => value,
        }
    }

    /// The cancellation, if that is why.
    pub fn cancelled(&self) -> Option<Cancelled> {
        match self {
            SendError::Closed(_) => None,
            SendError::Cancelled(_, cancelled) => Some(*cancelled),
        }
    }
}

impl<T> TrySendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(value) | TrySendError::Closed(value) => value,
        }
    }
}

// Debug without `T: Debug`, so `unwrap()` works on any message type (as in tokio).
impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed(_) => f.write_str("Closed(..)"),
            SendError::Cancelled(_, cancelled) => write!(f, "Cancelled(.., {cancelled:?})"),
        }
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Closed(_) => f.write_str(
                "send on a closed channel: the receiver was dropped or closed it; the value \
                 is returned in the error",
            ),
            SendError::Cancelled(_, cancelled) => {
                write!(
                    f,
                    "{cancelled}; nothing was sent, the value is returned in the error"
                )
            }
        }
    }
}

impl<T> Error for SendError<T> {}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySendError::Full(_) => "Full(..)",
            TrySendError::Closed(_) => "Closed(..)",
        })
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySendError::Full(_) => {
                "channel full: await `send` to wait for a slot; the value is returned in the \
                 error"
            }
            TrySendError::Closed(_) => {
                "send on a closed channel: the receiver was dropped or closed it; the value is \
                 returned in the error"
            }
        })
    }
}

impl<T> Error for TrySendError<T> {}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Closed => f.write_str(
                "channel closed: every sender is gone (or the receiver closed it) and no \
                 message is left",
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
        f.write_str(match self {
            TryRecvError::Empty => "channel empty: await `recv` to wait for a message",
            TryRecvError::Closed => {
                "channel closed: every sender is gone (or the receiver closed it) and no \
                 message is left"
            }
        })
    }
}

impl Error for TryRecvError {}
