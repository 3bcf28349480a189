//! `tracing` events for spawn, poll, cancel and complete, behind the `tracing` cargo
//! feature. Without the feature this module, its call sites (each under
//! `#[cfg(feature = "tracing")]`) and the dependency are not compiled at all: zero cost, not
//! merely cheap.
//!
//! What is emitted (target `treeloop`, all at `TRACE` level except cancel at `DEBUG`):
//!
//! | where | kind | fields |
//! |---|---|---|
//! | a task is spawned | event `spawn` | `task_id`, `task_name`, `parent_id`, `location` |
//! | a task or the root is polled | span `poll` around the poll | `task_id` |
//! | a subtree is cancelled | event `cancel` | `node_id`, `reason`, `marked` |
//! | a task finishes (after its children) | event `complete` | `task_id`, `outcome` |

use std::panic::Location;

use crate::cancel::CancelReason;
use crate::tree::TaskId;

pub(crate) fn spawned(
    id: TaskId,
    name: Option<&str>,
    parent: TaskId,
    location: &'static Location<'static>,
) {
    tracing::trace!(
        target: "treeloop",
        task_id = id.number(),
        task_name = name,
        parent_id = parent.number(),
        location = %location,
        "spawn"
    );
}

/// Entered for the length of one poll.
pub(crate) fn poll_span(id: TaskId) -> tracing::span::EnteredSpan {
    tracing::trace_span!(target: "treeloop", "poll", task_id = id.number()).entered()
}

pub(crate) fn cancelled(id: TaskId, reason: CancelReason, marked: usize) {
    tracing::debug!(
        target: "treeloop",
        node_id = id.number(),
        reason = ?reason,
        marked,
        "cancel"
    );
}

pub(crate) fn completed(id: TaskId, outcome: &'static str) {
    tracing::trace!(target: "treeloop", task_id = id.number(), outcome, "complete");
}
