//! Seeing a child exit: a pidfd where Linux gives one, SIGCHLD otherwise.
//!
//! # Ground rules
//!
//! - Seeing the exit *is* reaping: both ways end in `std::process::Child::try_wait`
//!   (`waitpid(pid, WNOHANG)` on that one pid), which std caches, so asking again after
//!   the reap returns the same status.
//! - Both are treeloop await points (the pidfd through `IoSource::poll_io`, SIGCHLD through
//!   `Signal::poll_recv`): the guardian polls them unshielded while the process runs, and
//!   inside a shield while it stops the process.
//! - The pidfd is registered once, like a socket; it turns readable when the process exits,
//!   which is the one edge it waits for. SIGCHLD carries no pid and coalesces, so each
//!   delivery means "some child may have exited": `try_wait` first, then wait for the next.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{self, ExitStatus};
use std::task::{Context, Poll};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use crate::io::slots::Direction;
use crate::io::source::IoSource;
use crate::signal::{self, Signal, SignalKind};

/// How a guardian learns that its process exited.
#[derive(Debug)]
pub(crate) enum ExitWatch {
    /// A pidfd registered with the reactor: readable once the process exited.
    PidFd(IoSource<PidFd>),
    /// A SIGCHLD receiver: every delivery may be this child's exit.
    Sigchld(Signal),
}

/// Which way to watch: pidfd when the OS gives one, or SIGCHLD only (the fallback, chosen
/// directly by the unit tests so that it is tested on Linux too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Watch {
    /// A pidfd if the OS gives one, else SIGCHLD.
    Preferred,
    /// SIGCHLD only.
    #[cfg_attr(not(test), allow(dead_code))]
    Sigchld,
}

impl ExitWatch {
    /// Starts watching `child` (spawned and not yet reaped). A pidfd that cannot be had
    /// (a kernel before 5.3, a seccomp filter, no descriptor left) falls back to SIGCHLD.
    pub(crate) fn new(child: &process::Child, watch: Watch) -> io::Result<ExitWatch> {
        if watch == Watch::Preferred {
            if let Some(pidfd) = PidFd::open(child) {
                if let Ok(source) = IoSource::new(pidfd) {
                    return Ok(ExitWatch::PidFd(source));
                }
            }
        }
        signal::unix(SignalKind::child()).map(ExitWatch::Sigchld)
    }

    /// `Ready` with the exit status once `child` has exited and been reaped; an await point.
    pub(crate) fn poll_exit(
        &mut self,
        child: &mut process::Child,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<ExitStatus>> {
        match self {
            ExitWatch::PidFd(source) => source.poll_io(cx, Direction::Read, |_| {
                child
                    .try_wait()?
                    .ok_or_else(|| io::ErrorKind::WouldBlock.into())
            }),
            ExitWatch::Sigchld(sigchld) => loop {
                // Look before waiting: the exit may have come before the receiver existed,
                // or be merged into a delivery already counted.
                if let Some(status) = child.try_wait()? {
                    return Poll::Ready(Ok(status));
                }
                match sigchld.poll_recv(cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                    Poll::Pending => return Poll::Pending,
                }
            },
        }
    }
}

/// A Linux pidfd as a mio source (mio has none of its own; `SourceFd` borrows the number).
#[derive(Debug)]
pub(crate) struct PidFd(OwnedFd);

impl PidFd {
    /// The pidfd of `child`, if the OS gives one. The pid cannot have been reused: the
    /// child is not reaped yet.
    #[cfg(target_os = "linux")]
    fn open(child: &process::Child) -> Option<PidFd> {
        use rustix::process::{Pid, PidfdFlags, pidfd_open};
        pidfd_open(Pid::from_child(child), PidfdFlags::empty())
            .ok()
            .map(PidFd)
    }

    /// No pidfds outside Linux: SIGCHLD it is.
    #[cfg(not(target_os = "linux"))]
    fn open(_child: &process::Child) -> Option<PidFd> {
        None
    }
}

impl mio::event::Source for PidFd {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        SourceFd(&self.0.as_raw_fd()).register(registry, token, interest)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        SourceFd(&self.0.as_raw_fd()).reregister(registry, token, interest)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        SourceFd(&self.0.as_raw_fd()).deregister(registry)
    }
}
