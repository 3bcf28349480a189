//! `Cancelled`: the error every treeloop await point returns inside a cancelled region.
//!
//! # Ground rules
//!
//! - Cancellation is a *mark* on a node of the task tree (see [`crate::tree`]), never an
//!   interruption: synchronous code runs to its next await point undisturbed (SPEC R6).
//! - The mark is level-triggered: an await point reads it every time it is polled, so a
//!   cancelled task sees `Err(Cancelled)` again and again until it leaves the region.
//! - The first cancellation of a node wins: its [`CancelReason`] is the one reported.

use std::error::Error;
use std::fmt;
use std::io;

/// Where a cancellation came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CancelReason {
    /// Somebody asked: `JoinHandle::cancel`, `JoinHandle::abort`, or a scope's `cancel`.
    Explicit,
    /// A deadline passed (`time::timeout`).
    Deadline,
    /// A task in the region failed (returned an error or panicked), so the rest of the
    /// region is cancelled.
    Failure,
    /// The whole runtime is shutting down (the root was cancelled, e.g. by Ctrl-C).
    Shutdown,
}

impl CancelReason {
    fn describe(self) -> &'static str {
        match self {
            CancelReason::Explicit => "cancel was requested",
            CancelReason::Deadline => "a deadline passed",
            CancelReason::Failure => "a task in the same region failed",
            CancelReason::Shutdown => "the runtime is shutting down",
        }
    }
}

/// The error a treeloop await point returns inside a cancelled region.
///
/// Propagate it with `?`; run cleanup that must await inside [`shield`](crate::shield()).
///
/// ```
/// use treeloop::{CancelReason, Cancelled};
///
/// let err = Cancelled::new(CancelReason::Deadline);
/// assert_eq!(err.reason(), CancelReason::Deadline);
/// let io: std::io::Error = err.into();
/// assert_eq!(Cancelled::from_io(&io), Some(err));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cancelled {
    /// Where the cancellation came from.
    reason: CancelReason,
}

impl Cancelled {
    /// A `Cancelled` with the given origin.
    pub fn new(reason: CancelReason) -> Self {
        Cancelled { reason }
    }

    /// Where the cancellation came from.
    pub fn reason(&self) -> CancelReason {
        self.reason
    }

    /// The `Cancelled` inside an `io::Error` made by `From<Cancelled>`, if it is one.
    pub fn from_io(err: &io::Error) -> Option<Cancelled> {
        err.get_ref()?.downcast_ref::<Cancelled>().copied()
    }

    /// The `Cancelled` anywhere in `err`'s chain of causes: `err` itself, an `io::Error`
    /// wrapping one, or a cause of a cause, as when a third-party crate (hyper, a TLS
    /// stream, a WebSocket) reports that the treeloop socket under it was cancelled.
    ///
    /// It looks inside an `io::Error` too, where `source()` alone would skip the wrapped
    /// error. It follows at most 64 causes (a chain that loops ends there).
    ///
    /// ```
    /// use std::{fmt, io};
    /// use treeloop::{CancelReason, Cancelled};
    ///
    /// // A protocol crate's error, caused by the socket's.
    /// #[derive(Debug)]
    /// struct ProtocolError(io::Error);
    /// impl fmt::Display for ProtocolError {
    ///     fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    ///         f.write_str("connection failed")
    ///     }
    /// }
    /// impl std::error::Error for ProtocolError {
    ///     fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
    ///         Some(&self.0)
    ///     }
    /// }
    ///
    /// let cancelled = Cancelled::new(CancelReason::Shutdown);
    /// let err = ProtocolError(io::Error::from(cancelled));
    /// assert_eq!(Cancelled::find(&err), Some(cancelled));
    /// assert_eq!(Cancelled::find(&ProtocolError(io::Error::other("reset"))), None);
    /// ```
    pub fn find(err: &(dyn Error + 'static)) -> Option<Cancelled> {
        let mut next = Some(err);
        for _ in 0..MAX_CAUSES {
            let current = next?;
            if let Some(cancelled) = current.downcast_ref::<Cancelled>() {
                return Some(*cancelled);
            }
            // `io::Error::source` is the wrapped error's source: look at the wrapped one.
            next = match current
                .downcast_ref::<io::Error>()
                .and_then(io::Error::get_ref)
            {
                Some(wrapped) => Some(wrapped as &(dyn Error + 'static)),
                None => current.source(),
            };
        }
        None
    }
}

/// How many causes [`Cancelled::find`] follows.
const MAX_CAUSES: usize = 64;

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "operation cancelled: {}", self.reason.describe())
    }
}

impl Error for Cancelled {}

/// Cancellation as an I/O error, so `?` works in functions returning `io::Result`.
///
/// The kind is `ErrorKind::Other`, deliberately not `Interrupted`: many I/O loops retry
/// `Interrupted` at once, and since cancellation is level-triggered such a retry would spin
/// forever instead of unwinding. Use [`Cancelled::from_io`] to recognise it.
impl From<Cancelled> for io::Error {
    fn from(cancelled: Cancelled) -> io::Error {
        io::Error::other(cancelled)
    }
}
