//! treeloop: a single-threaded async runtime whose scheduler owns the task tree.
//!
//! Every task knows its parent. Cancelling a task marks its whole subtree; each task in it
//! gets `Err(Cancelled)` at its next await point, runs its cleanup (which may itself await,
//! inside [`shield`]), and finishes. A task finishes only when its children have, and
//! [`block_on`] returns only when the whole tree has: nothing is left running behind your
//! back, and nothing is cut off mid-cleanup.
//!
//! These promises are numbered rules, R1 to R21, which comments across the crates cite
//! (`(R7)`); `docs/rules.md` in the repository states each one, with the tests that check it.
//!
//! # A guided tour
//!
//! **Spawn.** [`spawn`] starts a child of the task that calls it. The child is allocated by
//! `async-task` and gets a node in the tree.
//!
//! **Schedule and poll.** Waking a task puts it at the back of a FIFO run queue; the loop
//! polls a batch of tasks, then looks at timers and I/O. Each poll makes the task the
//! *current node*: that is how an await point knows which region it is in.
//!
//! **Park.** With nothing runnable, the loop blocks in `mio` until the next timer or event.
//! With [`Builder::start_paused`], time is virtual: the clock jumps to the next deadline
//! instead, so an hour of timers runs in microseconds.
//!
//! **Cancel.** [`JoinHandle::cancel`] marks the subtree and wakes it. Every treeloop await
//! point in it ([`time::sleep`], a join, [`checkpoint`]) now returns `Err(Cancelled)`, every
//! time, until the task returns.
//!
//! ```
//! use std::time::Duration;
//! use treeloop::time::{sleep, Instant};
//! use treeloop::{shield, spawn, Builder, Cancelled};
//!
//! let runtime = Builder::new().start_paused(true).build().unwrap();
//! let log = runtime.block_on(async {
//!     let start = Instant::now();
//!     let worker = spawn(async move {
//!         // Runs until cancelled; `?` would propagate the cancellation.
//!         let err: Cancelled = sleep(Duration::from_secs(3600)).await.unwrap_err();
//!         // Cleanup may await, inside a shield.
//!         shield(sleep(Duration::from_secs(1))).await.unwrap();
//!         format!("{err}; cleaned up at {:?}", start.elapsed())
//!     });
//!     sleep(Duration::from_secs(5)).await.unwrap();
//!     worker.cancel();
//!     worker.await.unwrap()
//! });
//! assert_eq!(log, "operation cancelled: cancel was requested; cleaned up at 6s");
//! ```
//!
//! **See inside.** [`dump`] returns the live tree (names from [`task::Builder`], states,
//! spawn locations); [`Builder::stall_watchdog`] names the tasks of a cancelled subtree that
//! make no progress and why, [`Builder::slow_poll_threshold`] the polls that block the loop.
//! Reports arrive as [`diag::Report`] values at [`Builder::report_sink`] (stderr by default).
//!
//! **Child processes.** [`process::Command::spawn`] makes a child process a node of the tree:
//! cancelling its owner sends SIGTERM, then SIGKILL after a grace period, and the owner's
//! cancellation completes once the process was reaped.
//!
//! **Write less.** `#[treeloop::main]` runs an `async fn main` and `#[treeloop::test]` an async
//! test body, with `Builder` options as arguments ([`main`](macro@main), [`test`](macro@test)).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod check;
mod determinism;
mod explore;
mod future_ext;
mod rng;
mod run;
mod runtime;
mod shrink;
mod stepper;

pub use future_ext::FutureExt;
pub use runtime::{Builder, Runtime, block_on};
pub use stepper::Stepper;
pub use treeloop_executor::Tick;
pub use treeloop_executor::{
    CancelReason, Cancelled, Checkpoint, JoinError, JoinHandle, LinkMessage, OrCancel, Shield,
    Strategy, TaskId, Trace, TraceEvent, TreeDump, WaitCancelled, cancelled, cancelled_here,
    checkpoint, dump, shield, shutdown, spawn, yield_now,
};
// What `Trace::first_divergence` returns, and its parts.
pub use treeloop_executor::{Divergence, StepTaken, TaskIdentity};
pub use treeloop_macros::{main, test};
pub use treeloop_scope::{
    Cancellation, GraceExpired, Graceful, MemberError, OnCancel, Scope, ScopeError, ScopeResultExt,
    ScopedJoinHandle, SpawnError, join, on_cancel, race, scope, supervisor, try_join,
};

/// The README's examples, compiled and run as doctests so they cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// The servers guide (docs/guides/servers.md), compiled and run as doctests.
#[doc = include_str!("../docs/guides/servers.md")]
#[cfg(doctest)]
pub struct ServersGuide;

/// The testing guide (docs/guides/testing.md), compiled and run as doctests.
#[doc = include_str!("../docs/guides/testing.md")]
#[cfg(doctest)]
pub struct TestingGuide;

pub use treeloop_reactor::{Unblock, net, process, signal, sim, unblock};

/// I/O helpers over any futures-io stream, safe to cancel: buffered readers and writers,
/// lines, `split`, and the futures-io traits.
#[doc(inline)]
pub use treeloop_reactor::buffered as io;

#[doc = include_str!("test.md")]
pub mod test {
    pub use crate::check::{check, check_with};
    pub use crate::determinism::{Determinism, check_determinism, check_determinism_with};
    pub use crate::explore::{
        DEFAULT_MAX_SCHEDULES, DEFAULT_PREEMPTION_BOUND, Exploration, Explore, explore,
        explore_with,
    };
    pub use crate::rng::rng;
    pub use crate::run::CheckOutcome;
    pub use crate::shrink::DEFAULT_SHRINK_RUNS;
    /// The generator [`rng`] returns: `fastrand`'s, re-exported so a helper can take one.
    pub use fastrand::Rng;
    pub use treeloop_executor::{Choice, ParseScheduleError, Schedule};
}

/// What [`race`], [`join`] and [`try_join`] take: tuples of up to 8 futures, arrays, `Vec`s
/// (sealed traits, for reading signatures).
///
/// [`Racers`](branch::Racers), [`Spawner`](branch::Spawner) and
/// [`TrySpawner`](branch::TrySpawner) are what the traits' methods are handed to spawn the
/// branches with: only treeloop's own implementations see them.
pub mod branch {
    pub use treeloop_scope::{Join, Race, Racers, Spawner, TryJoin, TrySpawner};
}

/// Cancellation-aware synchronisation: `Event`, `oneshot`, `mpsc`, `broadcast`, `Mutex`,
/// `Semaphore`.
pub use treeloop_scope::sync;

/// Spawning with options: `task::Builder::new().name("conn 42").spawn(fut)`; regions.
///
/// A region is a node of the tree that belongs to a future rather than a task: what
/// [`shield`], [`scope`] and [`time::timeout`] are built on. A [`Region`](task::Region) of a
/// [`RegionKind`](task::RegionKind) is opened by the future that owns it; its
/// [`RegionHandle`](task::RegionHandle) spawns into it
/// ([`Builder::spawn_in`](task::Builder::spawn_in)), or says why it was
/// [`SpawnRefused`](task::SpawnRefused).
pub mod task {
    pub use treeloop_executor::TaskBuilder as Builder;
    pub use treeloop_executor::{Region, RegionHandle, RegionKind, SpawnRefused};
    pub use treeloop_executor::{ancestry, scheduling_seed};
}

/// Seeing inside: the tree dump's parts, the watchdog's and slow-poll reports, and the
/// [`Report`](diag::Report) every report arrives as (see [`Builder::report_sink`]).
pub mod diag {
    pub use treeloop_executor::diag::{
        DumpEntry, EntryKind, SlowPoll, StallCause, StallReport, StuckTask, TaskState, TreeDump,
    };
    pub use treeloop_executor::report::Report;
}

/// Time on the runtime's clock (real, or virtual under [`Builder::start_paused`]).
pub mod time {
    pub use treeloop_reactor::time::{
        Advance, Delay, Instant, Sleep, Timer, advance, delay, delay_until, sleep, sleep_until,
    };
    pub use treeloop_scope::time::{Elapsed, Interval, Timeout, interval, timeout, timeout_at};
}
