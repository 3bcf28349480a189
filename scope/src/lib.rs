//! treeloop's structured concurrency: scopes (nurseries), supervisors and deadlines, built on
//! the executor's task tree and the reactor's timers.
//!
//! - [`scope()`]: the body and every member run in one region; the first failure cancels the
//!   rest; the scope returns after everyone finished cleanup, with every real error kept.
//! - [`supervisor`]: the same, but failures do not cancel the others.
//! - [`race()`]: the first of several futures to finish wins; the others are cancelled and
//!   awaited. [`join()`] and [`try_join`]: all of them, as child tasks.
//! - [`time::timeout`]: a cancel region with a deadline.
//! - [`on_cancel`]: graceful shutdown for foreign futures that have their own (a hyper
//!   connection's `graceful_shutdown`): the cancellation calls it instead of cutting the
//!   future off.
//!
//! Shields (`treeloop_executor::shield`) are the executor's own; scopes and timeouts are
//! regions of the same tree, so they nest with shields and with each other.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod drain;
mod error;
mod join;
mod member;
mod race;
mod scope;
mod state;
pub mod sync;
pub mod time;

pub use drain::{GraceExpired, Graceful, OnCancel, on_cancel};
pub use error::{Cancellation, ScopeError, ScopeResultExt};
pub use join::{Join, Spawner, TryJoin, TrySpawner, join, try_join};
pub use member::{MemberError, ScopedJoinHandle, SpawnError};
pub use race::{Race, Racers, race};
pub use scope::{Scope, scope, supervisor};
