//! What a scope returns when it does not return its body's value: `ScopeError`.
//!
//! # Ground rules (R13–R15)
//!
//! - No real error is lost: every member failure is kept, in the order they happened.
//! - Errors that are only the cancellation itself are filtered out: when the first failure
//!   cancels the scope, the siblings' `Err(Cancelled)` returns are consequences, not
//!   failures. [`Cancellation::as_cancelled`] is how an error says it is one.
//! - A real error beats `Cancelled`: a scope that failed *and* was cancelled from outside
//!   reports the failure.
//! - Panics are not errors: a member's panic is re-raised from the scope's `.await` after
//!   every member finished its cleanup (R17).

use std::error::Error;
use std::fmt;
use std::io;

use treeloop_executor::Cancelled;

/// An error type that can carry a treeloop cancellation: `?` turns `Cancelled` into it, and
/// the scope can tell a cancellation apart from a real failure.
///
/// Implemented for [`Cancelled`], `std::io::Error` and boxed errors; implement it for your
/// own error enum with a `Cancelled` variant:
///
/// ```
/// use treeloop::{Cancellation, Cancelled};
///
/// #[derive(Debug)]
/// enum AppError {
///     Cancelled(Cancelled),
///     Invalid(String),
/// }
///
/// impl From<Cancelled> for AppError {
///     fn from(c: Cancelled) -> Self {
///         AppError::Cancelled(c)
///     }
/// }
///
/// impl Cancellation for AppError {
///     fn as_cancelled(&self) -> Option<Cancelled> {
///         match self {
///             AppError::Cancelled(c) => Some(*c),
///             _ => None,
///         }
///     }
/// }
/// ```
pub trait Cancellation: From<Cancelled> {
    /// The cancellation this error is, if it is nothing but one.
    fn as_cancelled(&self) -> Option<Cancelled>;
}

impl Cancellation for Cancelled {
    fn as_cancelled(&self) -> Option<Cancelled> {
        Some(*self)
    }
}

impl Cancellation for io::Error {
    fn as_cancelled(&self) -> Option<Cancelled> {
        Cancelled::from_io(self)
    }
}

impl Cancellation for Box<dyn Error + Send + Sync> {
    fn as_cancelled(&self) -> Option<Cancelled> {
        downcast_cancelled(self.as_ref())
    }
}

impl Cancellation for Box<dyn Error> {
    fn as_cancelled(&self) -> Option<Cancelled> {
        downcast_cancelled(self.as_ref())
    }
}

/// A boxed error that is a `Cancelled`, or an `io::Error` wrapping one.
fn downcast_cancelled(err: &(dyn Error + 'static)) -> Option<Cancelled> {
    if let Some(cancelled) = err.downcast_ref::<Cancelled>() {
        return Some(*cancelled);
    }
    err.downcast_ref::<io::Error>().and_then(Cancelled::from_io)
}

/// For `?` in a function returning `io::Result`: the first failure, or the cancellation as
/// an `io::Error` (see [`ScopeError::into_first`]; the later failures are dropped).
impl From<ScopeError<io::Error>> for io::Error {
    fn from(err: ScopeError<io::Error>) -> io::Error {
        err.into_first()
    }
}

/// Why a scope did not return its body's value.
#[derive(Debug)]
pub enum ScopeError<E> {
    /// Members (or the body) failed. `first` is the failure that cancelled the scope (in a
    /// supervisor: the first to happen); `rest` are the later real errors, in order.
    Failed {
        /// The first failure.
        first: E,
        /// Every later real failure, in the order they happened.
        rest: Vec<E>,
    },
    /// The scope was cancelled from an enclosing region (a cancel above it, a deadline,
    /// shutdown) and nothing in it failed.
    Cancelled(Cancelled),
}

impl<E> ScopeError<E> {
    /// Whether the scope was cancelled from outside (and nothing failed).
    pub fn is_cancelled(&self) -> bool {
        matches!(self, ScopeError::Cancelled(_))
    }

    /// The first failure, if members failed.
    pub fn first(&self) -> Option<&E> {
        match self {
            ScopeError::Failed { first, .. } => Some(first),
            ScopeError::Cancelled(_) => None,
        }
    }

    /// Every failure, first one first (empty for a cancelled scope).
    pub fn errors(&self) -> impl Iterator<Item = &E> {
        let (first, rest) = match self {
            ScopeError::Failed { first, rest } => (Some(first), rest.as_slice()),
            ScopeError::Cancelled(_) => (None, &[][..]),
        };
        first.into_iter().chain(rest)
    }

    /// Every failure, first one first (empty for a cancelled scope).
    pub fn into_errors(self) -> Vec<E> {
        match self {
            ScopeError::Failed { first, mut rest } => {
                rest.insert(0, first);
                rest
            }
            ScopeError::Cancelled(_) => Vec::new(),
        }
    }

    /// The first failure, or the cancellation as an `E`: for `?` into the error type the
    /// members use. The later failures are dropped; use [`errors`](Self::errors) to keep them.
    pub fn into_first(self) -> E
    where
        E: From<Cancelled>,
    {
        match self {
            ScopeError::Failed { first, .. } => first,
            ScopeError::Cancelled(cancelled) => E::from(cancelled),
        }
    }
}

impl<E: fmt::Display> fmt::Display for ScopeError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScopeError::Failed { first, rest } if rest.is_empty() => {
                write!(f, "a scope member failed: {first}")
            }
            ScopeError::Failed { first, rest } => {
                write!(f, "{} scope members failed; first: {first}", rest.len() + 1)
            }
            ScopeError::Cancelled(cancelled) => write!(f, "scope {cancelled}"),
        }
    }
}

impl<E: Error + 'static> Error for ScopeError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            ScopeError::Failed { first, .. } => Some(first),
            ScopeError::Cancelled(cancelled) => Some(cancelled),
        }
    }
}

/// `ok_if_cancelled()` on what a scope or supervisor returns: "cancelled from outside" is
/// the normal way for a server to stop, not an error.
///
/// ```
/// use std::time::Duration;
/// use treeloop::{ScopeResultExt, scope, time::sleep};
///
/// /// Serves until shut down; only a real failure is an error.
/// async fn serve() -> std::io::Result<()> {
///     scope(|s| async move {
///         s.spawn(async { sleep(Duration::from_secs(3600)).await?; Ok(()) }).unwrap();
///         Ok::<_, std::io::Error>(())
///     })
///     .await
///     .ok_if_cancelled()?; // `None` when shut down, which is what a server means
///     Ok(())
/// }
///
/// let runtime = treeloop::Builder::new().start_paused(true).build().unwrap();
/// runtime.block_on(async {
///     let server = treeloop::spawn(serve());
///     sleep(Duration::from_secs(1)).await.unwrap();
///     server.cancel();
///     assert!(server.await.unwrap().is_ok(), "a cancelled server returned Ok(())");
/// });
/// ```
pub trait ScopeResultExt<T, E> {
    /// The scope's result with [`ScopeError::Cancelled`] (cancelled from an enclosing
    /// region, nothing in it failed) turned into `Ok(None)`, the same answer as a scope that
    /// cancelled itself before its body had a value. `Ok(Some(value))` and real failures
    /// stay as they were (a real failure beats the cancellation, R15).
    fn ok_if_cancelled(self) -> Result<Option<T>, ScopeError<E>>;
}

impl<T, E> ScopeResultExt<T, E> for Result<Option<T>, ScopeError<E>> {
    fn ok_if_cancelled(self) -> Result<Option<T>, ScopeError<E>> {
        match self {
            Err(ScopeError::Cancelled(_)) => Ok(None),
            other => other,
        }
    }
}
