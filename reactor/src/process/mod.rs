//! Child processes as nodes of the task tree: spawn a command, await its exit, talk to it
//! through pipes, and have it stopped and reaped when the task that owns it is cancelled.
//!
//! ```text
//!   owner task ── Command::spawn() ──> Child (the handle: wait, kill, pipes)
//!       │
//!       └── guardian task "process 4242 (sleep)"      owns the OS process
//!              │ runs until the process exits ──────> records the status, reaped
//!              │ or its region is cancelled / `stop()` / `stop_on_drop`:
//!              └─> SIGTERM ── grace period ── SIGKILL ── reaped ──> returns
//! ```
//!
//! [`Command::spawn`] starts the process and, beside it, a small *guardian* task, a child of
//! the task (or region) that called `spawn`. The guardian owns the `std::process::Child`:
//! it waits for the exit, and it is the one that reaps. Because the guardian is a node of
//! the owner's subtree, the tree's own rules do the rest, with no bookkeeping of their own:
//!
//! - cancelling the owner cancels the guardian, which sends SIGTERM, waits the grace period
//!   ([`Command::grace`], 5 s by default) for the process to exit, then sends SIGKILL;
//! - the owner finishes only when its children have (R2), so the cancellation of the owner
//!   completes only after the process has been reaped: no zombie, no orphan; `block_on`
//!   returns only after every child process of the tree was reaped (R3), a
//!   `treeloop::shutdown()` or Ctrl-C included.
//!
//! # Dropping the handle
//!
//! Dropping a [`Child`] without waiting does what dropping a `JoinHandle` does: nothing.
//! The process keeps running, the guardian keeps owning it and reaps it when it exits, and
//! the owner's task completes after that (a task whose handle was dropped stays its parent's
//! child too). Cancellation still reaches it. So a `Command::spawn` for a notification
//! helper whose handle is dropped does run to its end, as with tokio, and nothing is left
//! behind when the program exits. With [`Command::stop_on_drop`] the drop starts the
//! graceful stop instead (tokio's `kill_on_drop`, with a grace period). Rejected: a drop that
//! always stops the process (fire-and-forget commands would be cut off), and a detached
//! background reaper (the process could outlive `block_on`: an orphan).
//!
//! # Ground rules
//!
//! - Only the guardian reaps (and [`Child::try_wait`], which records what it finds at once,
//!   on the same thread): a signal is never sent to a pid that was reaped, so it cannot hit
//!   a process that reused the number.
//! - Every wait and every pipe operation is a treeloop await point: in a cancelled region it
//!   fails with an `io::Error` wrapping `Cancelled` before anything is attempted. The
//!   guardian's stop sequence runs inside a shield, so it completes in a cancelled region.
//! - How the exit is seen: on Linux by a pidfd (`pidfd_open`, Linux 5.3+), registered with
//!   the reactor like a socket, so the exit wakes exactly its guardian, and a paused clock
//!   does not jump ahead while a child runs (virtual time waits for a live child as it waits
//!   for the network: a grace period or a timeout measures real time then). Elsewhere, or
//!   where the kernel refuses pidfds, by SIGCHLD through the reactor's signal pipes: every
//!   delivery makes each guardian `try_wait` its own pid, once right after it is set up
//!   too (a child may exit before the receiver exists, and deliveries coalesce). On that
//!   path a paused clock may jump while a child runs.
//! - A child process is real I/O: a seeded (deterministic) runtime refuses to spawn one
//!   unless `Builder::allow_real_io(true)`, and outside a runtime `spawn` is an error.
//! - What "no zombie, no orphan" does not cover: a second shutdown signal exits the
//!   process at once (`_exit`, by design), orphaning running children; signals go to the
//!   child's pid, not its process group, so grandchildren of `sh -c` that ignore the
//!   shell's death survive it; a process spawned inside a `shield` is shielded for life
//!   (R11), so a shutdown waits for it to exit on its own.
//! - If the guardian's future is dropped before the process was reaped (an `abort()`, the
//!   stall watchdog's grace, a panic tearing the runtime down), its drop sends SIGKILL and
//!   reaps with a blocking `wait`: the last resort, short because SIGKILL cannot be caught.

mod child;
mod command;
mod exit;
mod guardian;
mod pipe;
#[cfg(test)]
mod tests;

pub use child::Child;
pub use command::{Command, DEFAULT_GRACE};
pub use pipe::{ChildStderr, ChildStdin, ChildStdout};
pub use std::process::{ExitStatus, Output, Stdio};
