//! [`Child`]: the handle of a spawned process, and the state it shares with its guardian.
//!
//! # Ground rules
//!
//! - The `std::process::Child` lives in [`Shared`], one per process, shared by the handle
//!   and the guardian (an `Rc`: both live on the runtime's thread). No borrow of it is held
//!   across an await or while waking: wakers are collected, the borrow released, then woken.
//! - Whoever reaps records the exit in [`Shared`] in the same borrow ([`Shared::record`]),
//!   and a signal is sent only while no exit is recorded ([`Shared::send`]), so no signal can
//!   reach a process that reused the pid.
//! - The handle asks the guardian to stop the process (`stop`, `stop_on_drop`) through
//!   [`Lifecycle::StopAsked`] and the guardian's waker; it never stops it itself.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::process::{self, ExitStatus, Output};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use futures_io::AsyncRead;
use treeloop_executor::{coop, poll_cancelled};

use super::pipe::{ChildStderr, ChildStdin, ChildStdout, Pipes};

/// `ECHILD` (10 on Linux, macOS and the BSDs): no child of that number to wait for.
const ECHILD: i32 = 10;

/// A child process spawned with [`Command::spawn`](super::Command::spawn), as a tokio or
/// std user knows it: [`wait`](Child::wait), [`kill`](Child::kill), and the pipes as public
/// fields (`child.stdin.take()`).
///
/// The process belongs to the task that spawned it, through its guardian (see the
/// [module docs](super)): cancelling that task stops the process (SIGTERM, the grace period,
/// SIGKILL) and the task's cancellation completes once it was reaped. Dropping this handle
/// leaves the process running under the guardian, unless [`Command::stop_on_drop`] was set.
///
/// ```
/// use treeloop::process::Command;
///
/// treeloop::block_on(async {
///     let mut child = Command::new("sh").args(["-c", "exit 7"]).spawn()?;
///     let status = child.wait().await?;
///     assert_eq!(status.code(), Some(7));
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
///
/// [`Command::stop_on_drop`]: super::Command::stop_on_drop
#[derive(Debug)]
pub struct Child {
    /// The writing end of the child's stdin, if it was `Stdio::piped()`.
    pub stdin: Option<ChildStdin>,
    /// The reading end of the child's stdout, if it was `Stdio::piped()`.
    pub stdout: Option<ChildStdout>,
    /// The reading end of the child's stderr, if it was `Stdio::piped()`.
    pub stderr: Option<ChildStderr>,
    /// The process, its exit and its waiters, shared with the guardian.
    shared: Rc<RefCell<Shared>>,
    /// The process id.
    pid: u32,
    /// What dropping this handle does.
    on_drop: OnDrop,
}

/// What dropping a [`Child`] does to a process still running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnDrop {
    /// Nothing: the guardian keeps it until it exits.
    KeepRunning,
    /// Ask the guardian for the graceful stop.
    Stop,
}

/// Where a process is in its life, as the handle and the guardian both see it.
#[derive(Debug)]
pub(crate) enum Lifecycle {
    /// Running, nobody asked for it to stop.
    Running,
    /// The handle asked for the graceful stop; the guardian has not seen the exit yet.
    StopAsked,
    /// Exited and reaped, with its status (or why it could not be had).
    Exited(Result<ExitStatus, Failure>),
}

/// Why the exit status could not be had (`waitpid` failed: something else reaped the
/// child, say, or SIGCHLD is set to be ignored). Kept as parts because `io::Error` is not
/// `Clone` and several waits may ask.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    /// The error's kind.
    kind: io::ErrorKind,
    /// The error's message.
    message: String,
}

impl Failure {
    fn to_io(&self) -> io::Error {
        io::Error::new(self.kind, self.message.clone())
    }
}

/// The state a process's handle and guardian share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The OS process. Reaped only through `try_wait`/`wait`, each followed by `record`.
    pub(crate) child: process::Child,
    /// Running, asked to stop, or exited.
    pub(crate) lifecycle: Lifecycle,
    /// Tasks waiting for the exit (one waker per task).
    waiters: Vec<Waker>,
    /// The guardian's waker while it waits, so that a stop request reaches it.
    pub(crate) guardian: Option<Waker>,
}

impl Shared {
    pub(crate) fn new(child: process::Child) -> Shared {
        Shared {
            child,
            lifecycle: Lifecycle::Running,
            waiters: Vec::new(),
            guardian: None,
        }
    }

    /// The exit, if recorded.
    pub(crate) fn exit(&self) -> Option<io::Result<ExitStatus>> {
        match &self.lifecycle {
            Lifecycle::Exited(Ok(status)) => Some(Ok(*status)),
            Lifecycle::Exited(Err(failure)) => Some(Err(failure.to_io())),
            Lifecycle::Running | Lifecycle::StopAsked => None,
        }
    }

    /// Records what reaping found (the first record wins) and returns whom to wake: every
    /// waiting task and the guardian. The caller wakes them after releasing the borrow.
    #[must_use = "the returned wakers must be woken once the borrow is released"]
    pub(crate) fn record(&mut self, exit: &io::Result<ExitStatus>) -> Vec<Waker> {
        if !matches!(self.lifecycle, Lifecycle::Exited(_)) {
            self.lifecycle = Lifecycle::Exited(match exit {
                Ok(status) => Ok(*status),
                Err(err) => Err(Failure {
                    kind: err.kind(),
                    message: if err.raw_os_error() == Some(ECHILD) {
                        format!(
                            "the exit status of process {} could not be had: {err}: SIGCHLD \
                             is probably ignored in this process (inherited from its \
                             parent), so the kernel reaps children itself; restore \
                             SIGCHLD's default action before spawning, or check that no \
                             other code calls waitpid(-1)",
                            self.child.id()
                        )
                    } else {
                        format!(
                            "the exit status of process {} could not be had: {err}",
                            self.child.id()
                        )
                    },
                }),
            });
        }
        let mut wake = std::mem::take(&mut self.waiters);
        wake.extend(self.guardian.take());
        wake
    }

    /// Sends `signal` to the process if it has not been reaped (after the reap the pid may
    /// belong to another process; the signal is then moot, and `Ok`).
    pub(crate) fn send(&self, signal: rustix::process::Signal) -> io::Result<()> {
        if matches!(self.lifecycle, Lifecycle::Exited(_)) {
            return Ok(());
        }
        let pid = rustix::process::Pid::from_child(&self.child);
        match rustix::process::kill_process(pid, signal) {
            // Not reaped means the pid is still ours; ESRCH cannot happen, but if it did
            // the process is gone, which is what was asked.
            Err(rustix::io::Errno::SRCH) => Ok(()),
            sent => sent.map_err(io::Error::from),
        }
    }

    /// Asks the guardian for the graceful stop; returns its waker to wake.
    fn ask_stop(&mut self) -> Option<Waker> {
        match self.lifecycle {
            Lifecycle::Running => {
                self.lifecycle = Lifecycle::StopAsked;
                self.guardian.take()
            }
            Lifecycle::StopAsked | Lifecycle::Exited(_) => None,
        }
    }
}

impl Child {
    pub(crate) fn new(shared: Rc<RefCell<Shared>>, pipes: Pipes, on_drop: OnDrop) -> Child {
        let pid = shared.borrow().child.id();
        let (stdin, stdout, stderr) = pipes;
        Child {
            stdin,
            stdout,
            stderr,
            shared,
            pid,
            on_drop,
        }
    }

    /// The OS process id. After the process was reaped the number may be reused by
    /// another process; signal this process through [`kill`](Self::kill) and
    /// [`terminate`](Self::terminate), which know when it is gone.
    pub fn id(&self) -> u32 {
        self.pid
    }

    /// Waits for the process to exit and returns its status. Closes stdin first (as std and
    /// tokio do), so a child that reads until end of input can finish.
    ///
    /// A treeloop await point: in a cancelled region it fails at once with an `io::Error`
    /// wrapping `Cancelled` (`Cancelled::from_io` finds it). The process is not left
    /// behind: if the region of its guardian was cancelled too (the usual case: the
    /// waiting task is the owner), the guardian stops it, and the task's cancellation
    /// completes after the reap. In a `shield`, `wait` waits for that exit.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        poll_fn(|cx| self.poll_wait(cx)).await
    }

    /// [`wait`](Self::wait) as a poll function, for hand-written futures (it does not
    /// close stdin).
    pub fn poll_wait(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<ExitStatus>> {
        if let Some(cancelled) = poll_cancelled(cx) {
            return cancelled.map(|cancelled| Err(cancelled.into()));
        }
        let mut shared = self.shared.borrow_mut();
        let Some(exit) = shared.exit() else {
            if !shared.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                shared.waiters.push(cx.waker().clone());
            }
            return Poll::Pending;
        };
        drop(shared);
        // A completion costs budget, like every treeloop await point's.
        if coop::poll_proceed(cx).is_pending() {
            return Poll::Pending;
        }
        Poll::Ready(exit)
    }

    /// The exit status if the process has exited (reaping it then), `None` if it still
    /// runs. Never waits.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        let mut shared = self.shared.borrow_mut();
        if let Some(exit) = shared.exit() {
            return exit.map(Some);
        }
        let found = match shared.child.try_wait() {
            Ok(None) => return Ok(None),
            Ok(Some(status)) => Ok(status),
            Err(err) => Err(err),
        };
        let wake = shared.record(&found);
        drop(shared);
        treeloop_executor::wake_all(wake);
        found.map(Some)
    }

    /// Sends SIGKILL now, without waiting: [`wait`](Self::wait) for the exit. `Ok` if the
    /// process has already exited.
    pub fn kill(&mut self) -> io::Result<()> {
        self.shared.borrow().send(rustix::process::Signal::KILL)
    }

    /// Sends SIGTERM now, without waiting and without a grace period: the polite request to
    /// stop, which the process may handle or ignore. `Ok` if it has already exited. For
    /// SIGTERM, then SIGKILL if the process is still there after the grace period, use
    /// [`stop`](Self::stop).
    pub fn terminate(&mut self) -> io::Result<()> {
        self.shared.borrow().send(rustix::process::Signal::TERM)
    }

    /// Stops the process gracefully and returns its status: the guardian sends SIGTERM,
    /// waits the grace period ([`Command::grace`](super::Command::grace)), then sends
    /// SIGKILL; this waits for the exit like [`wait`](Self::wait) (an await point that
    /// fails if cancelled, the stop going on regardless).
    ///
    /// ```
    /// use std::os::unix::process::ExitStatusExt;
    /// use treeloop::process::Command;
    ///
    /// treeloop::block_on(async {
    ///     let mut server = Command::new("sleep").arg("1000").spawn()?;
    ///     let status = server.stop().await?;
    ///     assert_eq!(status.signal(), Some(15)); // SIGTERM was enough
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .unwrap();
    /// ```
    pub async fn stop(&mut self) -> io::Result<ExitStatus> {
        let guardian = self.shared.borrow_mut().ask_stop();
        treeloop_executor::wake_all(guardian);
        self.wait().await
    }

    /// Reads stdout and stderr to their ends (at the same time, so that a child filling
    /// one pipe while the other is read cannot deadlock), waits for the exit, and returns
    /// all three. Closes stdin first. A pipe that was not `Stdio::piped()` gives no bytes.
    ///
    /// An await point like [`wait`](Self::wait): cancelled, it fails, and what was read is
    /// dropped.
    pub async fn wait_with_output(mut self) -> io::Result<Output> {
        drop(self.stdin.take());
        let mut stdout = Collect::new(self.stdout.take());
        let mut stderr = Collect::new(self.stderr.take());
        poll_fn(|cx| {
            // Both are polled every time, so each keeps its waker registered.
            let out = stdout.poll_collect(cx)?;
            let err = stderr.poll_collect(cx)?;
            if out.is_ready() && err.is_ready() {
                Poll::Ready(Ok::<_, io::Error>(()))
            } else {
                Poll::Pending
            }
        })
        .await?;
        let status = self.wait().await?;
        Ok(Output {
            status,
            stdout: stdout.bytes,
            stderr: stderr.bytes,
        })
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.on_drop == OnDrop::Stop {
            let guardian = self.shared.borrow_mut().ask_stop();
            treeloop_executor::wake_all(guardian);
        }
    }
}

/// Reads a pipe to its end into `bytes`.
struct Collect<R> {
    /// The pipe, until its end.
    reader: Option<R>,
    /// What was read so far.
    bytes: Vec<u8>,
}

impl<R: AsyncRead + Unpin> Collect<R> {
    fn new(reader: Option<R>) -> Collect<R> {
        Collect {
            reader,
            bytes: Vec::new(),
        }
    }

    /// `Ready(Ok(()))` at the end of the pipe (at once if there is none).
    fn poll_collect(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        /// How much room each read gets.
        const CHUNK: usize = 8 * 1024;
        let Some(reader) = &mut self.reader else {
            return Poll::Ready(Ok(()));
        };
        loop {
            let len = self.bytes.len();
            self.bytes.resize(len + CHUNK, 0);
            let read = match Pin::new(&mut *reader).poll_read(cx, &mut self.bytes[len..]) {
                Poll::Ready(Ok(n)) => Some(n),
                Poll::Ready(Err(err)) => {
                    self.bytes.truncate(len);
                    return Poll::Ready(Err(err));
                }
                Poll::Pending => None,
            };
            self.bytes.truncate(len + read.unwrap_or(0));
            match read {
                None => return Poll::Pending,
                Some(0) => {
                    self.reader = None;
                    return Poll::Ready(Ok(()));
                }
                Some(_) => {}
            }
        }
    }
}
