//! [`Command`]: a thin builder over `std::process::Command` whose `spawn` makes the child a
//! node of the task tree.
//!
//! # Ground rules
//!
//! - Everything std's builder does is std's (arguments, environment, directory, stdio, and
//!   the Unix extensions through [`Command::as_std_mut`]); this adds the grace period, the
//!   drop policy and the guardian.
//! - `spawn` refuses before the OS call when the runtime forbids it (outside a runtime, or a
//!   seeded one without `allow_real_io`): no process is started that could not be guarded.
//! - Once the process exists, every failure to set it up (its pidfd, its pipes) kills and
//!   reaps it before the error is returned: an `Err` from `spawn` leaves no process behind.

use std::cell::RefCell;
use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::process::{self, ExitStatus, Output, Stdio};
use std::rc::Rc;
use std::time::Duration;

use treeloop_executor::TaskBuilder;

use super::child::{Child, OnDrop, Shared};
use super::exit::{ExitWatch, Watch};
use super::guardian::Guardian;
use super::pipe::{ChildStderr, ChildStdin, ChildStdout, Pipes};
use crate::context::{RealIo, with_reactor};

/// How long a process gets between SIGTERM and SIGKILL unless [`Command::grace`] says
/// otherwise.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// A command to run as a child process owned by the task that spawns it: std's builder,
/// plus what happens when that task is cancelled.
///
/// ```
/// use std::time::Duration;
/// use treeloop::process::{Command, Stdio};
///
/// treeloop::block_on(async {
///     // Run to completion and collect the output.
///     let output = Command::new("sh").args(["-c", "echo hello; exit 3"]).output().await?;
///     assert_eq!(output.stdout, b"hello\n");
///     assert_eq!(output.status.code(), Some(3));
///
///     // A child of a task is stopped when the task is cancelled: SIGTERM, then SIGKILL
///     // after the grace period. The task's cancellation completes once it was reaped.
///     let worker = treeloop::spawn(async {
///         let mut child = Command::new("sleep")
///             .arg("1000")
///             .stdout(Stdio::null())
///             .grace(Duration::from_secs(1))
///             .spawn()?;
///         child.wait().await // Err(Cancelled) when the worker is cancelled
///     });
///     treeloop::time::sleep(Duration::from_millis(10)).await?;
///     worker.cancel();
///     let waited = worker.await?;
///     assert!(treeloop::Cancelled::from_io(&waited.unwrap_err()).is_some());
///     Ok::<_, Box<dyn std::error::Error>>(())
/// })
/// .unwrap();
/// ```
#[derive(Debug)]
pub struct Command {
    /// std's builder: program, arguments, environment, directory, stdio.
    std: process::Command,
    /// How long SIGTERM has before SIGKILL when the process is stopped.
    grace: Duration,
    /// What dropping the `Child` handle does.
    on_drop: OnDrop,
    /// Which of stdin, stdout, stderr were set, so `output` can default the others.
    stdio_set: [bool; 3],
}

impl Command {
    /// A command for `program` (a path, or a name looked up in `PATH`), with no arguments,
    /// the parent's environment and directory, stdio inherited, a grace period of
    /// [`DEFAULT_GRACE`].
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        process::Command::new(program).into()
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.std.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.std.args(args);
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Command {
        self.std.env(key, value);
        self
    }

    /// Sets environment variables for the child.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.std.envs(vars);
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.std.env_remove(key);
        self
    }

    /// Starts the child with an empty environment (plus what `env` adds).
    pub fn env_clear(&mut self) -> &mut Command {
        self.std.env_clear();
        self
    }

    /// Sets the child's working directory.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.std.current_dir(dir);
        self
    }

    /// The child's stdin: `Stdio::piped()` gives [`Child::stdin`], `inherit()` (the default
    /// for `spawn` and `status`) or `null()`.
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stdin(cfg);
        self.stdio_set[0] = true;
        self
    }

    /// The child's stdout: `Stdio::piped()` gives [`Child::stdout`].
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stdout(cfg);
        self.stdio_set[1] = true;
        self
    }

    /// The child's stderr: `Stdio::piped()` gives [`Child::stderr`].
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stderr(cfg);
        self.stdio_set[2] = true;
        self
    }

    /// How long the process has to exit after SIGTERM before it gets SIGKILL, when it is
    /// stopped (its owner cancelled, [`Child::stop`], [`stop_on_drop`](Self::stop_on_drop)).
    /// Default [`DEFAULT_GRACE`]; `Duration::ZERO` sends SIGKILL right after SIGTERM.
    /// Measured on the runtime's clock (see the [module docs](super) for a paused one).
    pub fn grace(&mut self, grace: Duration) -> &mut Command {
        self.grace = grace;
        self
    }

    /// With `true`, dropping the [`Child`] handle of a process still running starts the
    /// graceful stop (tokio's `kill_on_drop`, with the grace period). Default `false`: the
    /// process keeps running under its guardian, and its owner task completes after it
    /// exits (see "Dropping the handle" in the [module docs](super)).
    pub fn stop_on_drop(&mut self, stop: bool) -> &mut Command {
        self.on_drop = if stop {
            OnDrop::Stop
        } else {
            OnDrop::KeepRunning
        };
        self
    }

    /// std's builder, to read what is set.
    pub fn as_std(&self) -> &process::Command {
        &self.std
    }

    /// std's builder, for what this one does not forward (`CommandExt`: `uid`, `gid`,
    /// `process_group`, `arg0`, ...). Stdio set through it is not seen by
    /// [`output`](Self::output)'s defaults: set stdio here instead.
    pub fn as_std_mut(&mut self) -> &mut process::Command {
        &mut self.std
    }

    /// Starts the process, and its guardian task as a child of the task (or region) being
    /// polled: cancelling that task stops the process, and the task finishes only after the
    /// process was reaped (see the [module docs](super)).
    ///
    /// # Errors
    ///
    /// - whatever the OS says about starting the program (`NotFound` for a program that
    ///   does not exist, `PermissionDenied`, ...), with the program named;
    /// - `Unsupported` in a seeded (deterministic) runtime without
    ///   `Builder::allow_real_io(true)`;
    /// - outside a treeloop runtime;
    /// - in a cancelled region, the `io::Error` wrapping `Cancelled`, before anything is
    ///   started (R7; to run a command during cleanup, spawn it inside a `shield`).
    #[track_caller]
    pub fn spawn(&mut self) -> io::Result<Child> {
        self.spawn_with(Watch::Preferred)
    }

    /// [`spawn`](Self::spawn), watching the exit as `watch` says.
    #[track_caller]
    pub(crate) fn spawn_with(&mut self, watch: Watch) -> io::Result<Child> {
        // In a cancelled region nothing is started (R7): a program that would only be
        // stopped at once may still have done something.
        if let Some(cancelled) = treeloop_executor::cancelled_here() {
            return Err(cancelled.into());
        }
        processes_allowed()?;
        let program = self.std.get_program().to_string_lossy().into_owned();
        let mut child = self.std.spawn().map_err(|err| {
            io::Error::new(err.kind(), format!("cannot spawn `{program}`: {err}"))
        })?;
        let (watch, pipes) = match set_up(&mut child, watch) {
            Ok(set_up) => set_up,
            Err(err) => {
                // Unwatched, it could not be reaped later: end it here.
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::new(
                    err.kind(),
                    format!("cannot watch the process of `{program}`: {err}"),
                ));
            }
        };
        let pid = child.id();
        let shared = Rc::new(RefCell::new(Shared::new(child)));
        // The guardian's handle is dropped: that does not detach it (it stays a child of
        // the caller), and the process's `Child` is how it is observed.
        let guardian = TaskBuilder::new()
            .name(format!("process {pid} ({program})"))
            .spawn(Guardian::new(shared.clone(), watch, self.grace).run());
        drop(guardian);
        Ok(Child::new(shared, pipes, self.on_drop))
    }

    /// Runs the process to its exit and returns its status. Stdio is inherited unless set.
    ///
    /// A treeloop await point like [`Child::wait`]; cancelled, the process is stopped by
    /// its guardian.
    pub async fn status(&mut self) -> io::Result<ExitStatus> {
        self.spawn()?.wait().await
    }

    /// Runs the process to its exit and collects its stdout and stderr. Unless set, stdout
    /// and stderr are piped and stdin is null (as std does); the command is left as it was
    /// for a later `spawn`.
    ///
    /// A treeloop await point like [`Child::wait_with_output`].
    pub async fn output(&mut self) -> io::Result<Output> {
        let child = self.spawn_collecting()?;
        child.wait_with_output().await
    }

    /// Spawns with `output`'s stdio defaults, then gives the command its own back.
    fn spawn_collecting(&mut self) -> io::Result<Child> {
        let defaults = self.stdio_set;
        if !defaults[0] {
            self.std.stdin(Stdio::null());
        }
        if !defaults[1] {
            self.std.stdout(Stdio::piped());
        }
        if !defaults[2] {
            self.std.stderr(Stdio::piped());
        }
        let spawned = self.spawn();
        // `inherit` is what an unset stdio means to `spawn`.
        if !defaults[0] {
            self.std.stdin(Stdio::inherit());
        }
        if !defaults[1] {
            self.std.stdout(Stdio::inherit());
        }
        if !defaults[2] {
            self.std.stderr(Stdio::inherit());
        }
        spawned
    }
}

impl From<process::Command> for Command {
    /// Wraps std's builder; stdio set on it counts as set for [`Command::output`] only if
    /// set again through this one.
    fn from(std: process::Command) -> Command {
        Command {
            std,
            grace: DEFAULT_GRACE,
            on_drop: OnDrop::KeepRunning,
            stdio_set: [false; 3],
        }
    }
}

/// Registers the watch of the exit and the pipes of a new child.
fn set_up(child: &mut process::Child, watch: Watch) -> io::Result<(ExitWatch, Pipes)> {
    let watch = ExitWatch::new(child, watch)?;
    let stdin = child.stdin.take().map(ChildStdin::new).transpose()?;
    let stdout = child.stdout.take().map(ChildStdout::new).transpose()?;
    let stderr = child.stderr.take().map(ChildStderr::new).transpose()?;
    Ok((watch, (stdin, stdout, stderr)))
}

/// Whether a process may be spawned here: inside a runtime, and not a seeded one that
/// refuses real I/O. Checked before the OS call, so a refused spawn starts nothing.
fn processes_allowed() -> io::Result<()> {
    match with_reactor(|reactor| reactor.real_io) {
        Some(RealIo::Allowed) => Ok(()),
        Some(RealIo::Refused) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a child process makes a seeded (deterministic) run unreproducible (its timing \
             is the OS's): use `Builder::allow_real_io(true)` to accept a non-reproducible \
             run, or run the process outside the seeded runtime",
        )),
        None => Err(io::Error::other(
            "`process::Command::spawn` must be called inside a treeloop runtime: call it \
             inside `treeloop::block_on` (or a task spawned from it); outside one, use \
             `std::process::Command`",
        )),
    }
}
