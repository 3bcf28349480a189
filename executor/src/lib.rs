//! treeloop's executor: tasks, the task tree, cancellation marks and the run queue.
//!
//! This crate does no I/O. It runs futures on one thread, keeps every task in a tree, and
//! delivers cancellation through that tree; whatever it needs from the outside world (I/O
//! readiness, timers) comes through the [`Park`] trait, which the reactor crate implements.
//!
//! The model in five steps:
//!
//! 1. **spawn** — [`spawn`] allocates the task with `async-task` and inserts a node into the
//!    tree as a child of the node being polled (`src/tree.rs` has the invariants).
//! 2. **schedule** — a wake pushes the task's `Runnable` onto the local FIFO, or from another
//!    thread onto a lock-free injector plus an unpark (`src/queue.rs`).
//! 3. **poll** — the loop runs a batch of runnables; each poll makes the task the *current
//!    node*, which is what await points and `spawn` consult (`src/executor.rs`).
//! 4. **park** — with nothing runnable, the loop blocks in [`Park::park`].
//! 5. **cancel** — [`JoinHandle::cancel`] marks a subtree and wakes it; every treeloop await
//!    point in it then returns `Err(Cancelled)` until the task leaves (or shields) the region.
//!
//! Applications use all of this through the `treeloop` crate, as here:
//!
//! ```
//! use treeloop::{block_on, checkpoint, spawn};
//!
//! let cleaned_up = block_on(async {
//!     let worker = spawn(async {
//!         loop {
//!             if let Err(cancelled) = checkpoint().await {
//!                 // Cleanup runs here, and could await inside `shield(..)`.
//!                 return cancelled;
//!             }
//!         }
//!     });
//!     worker.cancel();
//!     worker.await.unwrap()
//! });
//! assert_eq!(cleaned_up.reason(), treeloop::CancelReason::Explicit);
//! ```
// No `unsafe` anywhere but the one prefetch hint in `prefetch.rs`, which argues its need (a
// benchmark) and its soundness; `deny` rather than `forbid` so that one block can say so.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod builder;
mod cancel;
mod checkpoint;
mod choice;
mod context;
pub mod coop;
mod core;
mod deviation;
pub mod diag;
#[cfg(feature = "tracing")]
mod events;
mod executor;
mod frame;
mod join;
mod options;
mod or_cancel;
mod panic;
mod park;
mod prefetch;
mod queue;
mod region;
mod registry;
pub mod report;
mod root;
mod schedule;
mod shield;
mod spare;
mod strategy;
mod task;
mod trace;
mod tree;
mod wake;

use std::future::Future;
use std::panic::Location;

pub use builder::Builder as TaskBuilder;
pub use cancel::{CancelReason, Cancelled};
pub use checkpoint::{
    Checkpoint, OutsideRuntime, WaitCancelled, cancelled, cancelled_here, checkpoint,
    poll_cancelled, poll_cancelled_or_outside, yield_now,
};
pub use choice::Choice;
pub use context::in_runtime;
pub use deviation::Deviation;
pub use diag::TreeDump;
pub use executor::{Executor, Stepper, Tick};
pub use join::{JoinError, JoinHandle};
pub use options::{Options, Scheduling};
pub use or_cancel::{FutureExt, OrCancel};
pub use panic::{Payload, panic_message, wake_all};
pub use park::{Park, ParkMode, ParkRequest, ThreadPark, Unpark};
pub use region::{Region, RegionHandle, RegionKind, SpawnRefused};
pub use schedule::{ChoicePoint, Fallback, ParseScheduleError, Replay, SCHEDULE_KEPT, Schedule};
pub use shield::{Shield, shield};
pub use strategy::{SplitMix64, Strategy};
pub use trace::{
    Divergence, EVENTS_KEPT, LinkMessage, STEPS_KEPT, StepTaken, TaskIdentity, Trace, TraceEvent,
};
pub use tree::TaskId;

/// Spawns `future` as a child of the task (or shield, or root) being polled.
///
/// The task starts at the back of the run queue. Its `JoinHandle` resolves when it and all
/// its descendants have finished; dropping the handle does not cancel or detach it.
///
/// ```
/// use std::time::Duration;
/// use treeloop::time::{Instant, sleep};
/// use treeloop::{Builder, spawn};
///
/// let runtime = Builder::new().start_paused(true).build().unwrap();
/// runtime.block_on(async {
///     let start = Instant::now();
///     let parent = spawn(async {
///         // A child of `parent`: its handle is dropped, yet `parent` waits for it.
///         spawn(async { sleep(Duration::from_secs(2)).await.unwrap() });
///         "parent's value"
///     });
///     assert_eq!(parent.await.unwrap(), "parent's value");
///     // The join returned once the child had finished too.
///     assert_eq!(start.elapsed(), Duration::from_secs(2));
/// });
/// ```
///
/// # Panics
///
/// Outside a treeloop runtime, with a message naming the fix.
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let location = Location::caller();
    context::expect_core("spawn", |core| {
        task::spawn_in(core, core.open_spawn_parent(), future, location, None)
    })
}

/// Cancels the whole tree of the current runtime with reason `Shutdown`: what the first
/// SIGINT or SIGTERM does under `Builder::shutdown_on_signal`, started from code (a shutdown
/// command, a fatal condition). Every task sees `Cancelled` at its next await point, runs its
/// cleanup, and `block_on` returns once the tree has finished. Harmless twice.
///
/// The whole tree is the root, the future given to `block_on`, and everything under it, not
/// just the subtree of the task that calls `shutdown`. To stop one part, cancel its
/// `JoinHandle` or its scope instead.
///
/// # In a test
///
/// Under `treeloop::test::check` each seed runs on its own runtime whose root is the test
/// body, so a `shutdown()` (say, from the server under test answering a "shutdown" command)
/// cancels the body and every task it spawned, the test's own client tasks included. From
/// then on every await point in them returns `Err(Cancelled)` with reason `Shutdown`, and the
/// body's join of any task returns a cancelled `JoinError` at once, without the task's
/// output. A body that unwraps such an error panics, and the seed fails like any other
/// failure; a body that returns `()` anyway passes, and the next seed starts on a fresh
/// runtime that is not shut down. To test a server's shutdown, cancel the server's
/// `JoinHandle` and keep the clients running.
///
/// ```
/// use treeloop::{CancelReason, shutdown, spawn, yield_now};
///
/// treeloop::test::check(1, || async {
///     let client = spawn(async { yield_now().await.map(|()| "answered") });
///     let server = spawn(async { shutdown() });
///     // The body's own await points see the shutdown too, joins included.
///     let joined = server.await.unwrap_err();
///     assert_eq!(joined.as_cancelled().unwrap().reason(), CancelReason::Shutdown);
///     assert!(client.await.unwrap_err().is_cancelled());
/// });
/// ```
///
/// # Panics
///
/// Outside a treeloop runtime.
pub fn shutdown() {
    context::expect_core("shutdown", |core| {
        core.cancel(core.root(), CancelReason::Shutdown)
    });
}

/// The ids of the task (or region, or shield) being polled and of its ancestors, innermost
/// first, up to the root of the `block_on` in progress; empty outside a runtime. How code
/// finds the part of the tree it runs in: `treeloop::sim` finds the host a socket belongs
/// to as the nearest ancestor that is a host's task.
///
/// ```
/// treeloop::block_on(async {
///     let outer = treeloop::task::ancestry();
///     let inner = treeloop::spawn(async { treeloop::task::ancestry() }).await.unwrap();
///     assert_eq!(inner.len(), outer.len() + 1);
///     assert_eq!(inner[1..], outer[..]);
/// });
/// ```
pub fn ancestry() -> Vec<TaskId> {
    context::with_core(|core| core.ancestry()).unwrap_or_default()
}

/// Records `message` in the current runtime's trace, if it keeps one (deterministic mode, or
/// `record_trace`); nothing otherwise, and nothing outside a runtime. For simulators:
/// `treeloop::sim::Net` records every message it sends and delivers, so the trace (and its
/// hash) covers the network as well as the scheduling.
pub fn trace_message(message: LinkMessage) {
    context::with_core(|core| core.record(|| TraceEvent::Message(message)));
}

/// The seed the current runtime's scheduler draws from (`Builder::seed`; 0 when it was not
/// seeded), or `None` outside a runtime: for test code whose own seeded choices should
/// change with the run's seed (`treeloop::sim::Net::new` seeds its faults with it).
pub fn scheduling_seed() -> Option<u64> {
    context::with_core(|core| core.read_seed())
}

/// A snapshot of the live tree: every task, region and shield with its id, name, spawn
/// location, state, parent and children (poll counts and times too, with diagnostics on).
/// Its `Display` prints an indented tree. Iterative: any depth (R21).
///
/// ```
/// use treeloop::diag::TaskState;
/// use treeloop::{cancelled, dump, task, yield_now};
///
/// treeloop::block_on(async {
///     let worker = task::Builder::new()
///         .name("worker")
///         .spawn(async { cancelled().await });
///     yield_now().await.unwrap(); // the worker starts waiting
///     let tree = dump();
///     let root = &tree.entries[0];
///     let entry = tree.named("worker").next().unwrap();
///     assert_eq!(entry.state, TaskState::Waiting);
///     assert_eq!(entry.parent, Some(root.id));
///     assert!(tree.to_string().contains("task \"worker\": waiting"));
///     worker.cancel();
///     worker.await.unwrap();
/// });
/// ```
///
/// # Panics
///
/// Outside a treeloop runtime (outside, use `Runtime::dump`).
pub fn dump() -> TreeDump {
    context::expect_core("dump", |core| core.dump())
}

/// Runs `future` to completion on this thread with a [`ThreadPark`]: tasks, the tree and
/// cancellation, but no timers or I/O (the `treeloop` crate's `block_on` adds those).
///
/// # Panics
///
/// Inside another treeloop runtime on this thread, and with any panic nobody took from a
/// `JoinHandle`, re-raised after every task finished.
#[track_caller]
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut park = ThreadPark::new();
    let executor = Executor::new(park.unparker());
    executor.block_on(future, &mut park)
}
