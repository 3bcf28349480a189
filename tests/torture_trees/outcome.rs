//! What the nodes return: the error type of every node and scope, and how an injected
//! panic is recognised (by its payload, or a report quoting it) and kept quiet.

use std::any::Any;
use std::panic;
use std::sync::Once;

use treeloop::{Cancellation, Cancelled};

use crate::plan::NodeId;

/// The error type of every node (and of every scope): a cancellation, an injected failure,
/// or a combination of failures, each naming the node it came from.
#[derive(Clone, Debug)]
pub enum TreeError {
    /// Only the cancellation itself: filtered out by scopes (R14).
    Cancelled(Cancelled),
    /// A `Fail` leaf's error.
    Injected(NodeId),
    /// A leaf's cleanup failed.
    CleanupFailed(NodeId),
    /// A timeout node's deadline passed.
    Elapsed(NodeId),
    /// A joined child's task was aborted (its join said so).
    Aborted(NodeId),
    /// A `Spawn` node's joined children failed: their errors in child order.
    Joined(NodeId, Vec<TreeError>),
    /// A scope failed: `first` then `rest`, as `ScopeError::Failed` gave them.
    Scope(NodeId, Vec<TreeError>),
}

impl From<Cancelled> for TreeError {
    fn from(cancelled: Cancelled) -> Self {
        TreeError::Cancelled(cancelled)
    }
}

impl Cancellation for TreeError {
    fn as_cancelled(&self) -> Option<Cancelled> {
        match self {
            TreeError::Cancelled(cancelled) => Some(*cancelled),
            _ => None,
        }
    }
}

pub type NodeResult = Result<(), TreeError>;

/// The prefix of every injected panic's message; the panic hook stays quiet for these.
pub const INJECTED_PANIC: &str = "injected panic #";

/// The leaf an injected panic payload (or a report quoting one) came from.
pub fn injected_panic_in(text: &str) -> Option<NodeId> {
    let (_, after) = text.split_once(INJECTED_PANIC)?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

pub fn payload_text(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&'static str>().copied())
}

/// Keeps the default panic hook for every panic but the injected ones: thousands of
/// expected panics would bury a real failure's message.
pub fn silence_injected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let injected =
                payload_text(info.payload()).is_some_and(|t| t.starts_with(INJECTED_PANIC));
            if !injected {
                default(info);
            }
        }));
    });
}
