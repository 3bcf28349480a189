//! Which signal: [`SignalKind`], and the signals treeloop refuses to watch.
//!
//! # Ground rules
//!
//! - A `SignalKind` is only a signal number: making one never fails and changes nothing.
//!   Whether the signal may be watched is decided where it is installed, by
//!   [`SignalKind::check`], before anything touches the process's handlers.
//! - Refused: the signals no handler can take (SIGKILL, SIGSTOP) and the synchronous fault
//!   signals (SIGSEGV, SIGBUS, SIGILL, SIGFPE). signal-hook's `FORBIDDEN` list panics on all
//!   but SIGBUS; SIGBUS is refused for the same reason as SIGSEGV: it reports a fault of the
//!   thread that raised it, and a handler that only wakes the loop returns to the faulting
//!   access, which faults again. The refusal is an `io::Error`, never a panic: the number can
//!   come from a user (`from_raw`).

use std::ffi::c_int;
use std::fmt;
use std::io;

use signal_hook::consts::{
    FORBIDDEN, SIGALRM, SIGBUS, SIGCHLD, SIGHUP, SIGINT, SIGKILL, SIGQUIT, SIGSTOP, SIGTERM,
    SIGUSR1, SIGUSR2, SIGWINCH,
};

/// A Unix signal, by number: what [`unix`](super::unix) receives and what
/// `Builder::shutdown_signals` takes.
///
/// ```
/// use treeloop::signal::SignalKind;
///
/// assert_eq!(SignalKind::hangup().to_string(), "SIGHUP");
/// assert_eq!(SignalKind::from_raw(15), SignalKind::terminate());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SignalKind(c_int);

impl SignalKind {
    /// Any signal, by its number; see [`unix`](super::unix) for the ones refused.
    pub const fn from_raw(signum: c_int) -> SignalKind {
        SignalKind(signum)
    }

    /// The signal number.
    pub const fn as_raw(self) -> c_int {
        self.0
    }

    /// SIGINT: Ctrl-C in a terminal.
    pub const fn interrupt() -> SignalKind {
        SignalKind(SIGINT)
    }

    /// SIGTERM: the polite request to stop (`kill`, systemd, `docker stop`, Kubernetes).
    pub const fn terminate() -> SignalKind {
        SignalKind(SIGTERM)
    }

    /// SIGHUP: the terminal went away; daemons take it as "reload your configuration".
    pub const fn hangup() -> SignalKind {
        SignalKind(SIGHUP)
    }

    /// SIGQUIT: Ctrl-\ in a terminal.
    pub const fn quit() -> SignalKind {
        SignalKind(SIGQUIT)
    }

    /// SIGUSR1: yours to define (with `Builder::dump_on_signal`, it also dumps the tree).
    pub const fn user_defined1() -> SignalKind {
        SignalKind(SIGUSR1)
    }

    /// SIGUSR2: yours to define.
    pub const fn user_defined2() -> SignalKind {
        SignalKind(SIGUSR2)
    }

    /// SIGWINCH: the terminal changed size.
    pub const fn window_change() -> SignalKind {
        SignalKind(SIGWINCH)
    }

    /// SIGCHLD: a child process stopped or exited.
    pub const fn child() -> SignalKind {
        SignalKind(SIGCHLD)
    }

    /// SIGALRM: an `alarm(2)` timer expired.
    pub const fn alarm() -> SignalKind {
        SignalKind(SIGALRM)
    }

    /// The number, if treeloop may watch this signal; otherwise an `InvalidInput` error that
    /// says why (see the module docs). Numbers the OS does not know are refused later, by
    /// the OS, when the handler is installed.
    pub(crate) fn check(self) -> io::Result<c_int> {
        let why = if self.0 <= 0 {
            "it is not a signal number"
        } else if self.0 == SIGKILL || self.0 == SIGSTOP {
            "no process can catch SIGKILL or SIGSTOP"
        } else if FORBIDDEN.contains(&self.0) || self.0 == SIGBUS {
            "it reports a fault of the thread that raised it (like SIGSEGV, SIGBUS, SIGILL \
             and SIGFPE), and a handler that only wakes the event loop would return to the \
             faulting instruction"
        } else {
            return Ok(self.0);
        };
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("treeloop cannot watch {self}: {why}; watch another signal"),
        ))
    }

    /// The exit status of a process that ends because of this signal: 128 + its number,
    /// as a shell reports it (130 for SIGINT, 143 for SIGTERM).
    pub(crate) fn exit_status(self) -> c_int {
        128 + self.0
    }
}

impl fmt::Display for SignalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match signal_hook::low_level::signal_name(self.0) {
            Some(name) => f.write_str(name),
            None => write!(f, "signal {}", self.0),
        }
    }
}

impl fmt::Debug for SignalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignalKind({self})")
    }
}

/// The signals that shut a runtime down when shutdown on signals is turned on
/// (`Builder::shutdown_on_signal(true)`): SIGINT (Ctrl-C) and SIGTERM (what service managers
/// and container runtimes send).
pub const SHUTDOWN_SIGNALS: [SignalKind; 2] = [SignalKind::interrupt(), SignalKind::terminate()];

#[cfg(test)]
mod tests {
    use super::*;
    use signal_hook::consts::{SIGFPE, SIGILL, SIGSEGV};

    #[test]
    fn uncatchable_and_fault_signals_are_refused_with_the_reason() {
        for signum in [SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGILL, SIGFPE, 0, -1] {
            let err = SignalKind::from_raw(signum).check().unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{signum}");
            assert!(err.to_string().contains("cannot watch"), "{err}");
        }
        let err = SignalKind::from_raw(SIGKILL).check().unwrap_err();
        assert_eq!(
            err.to_string(),
            "treeloop cannot watch SIGKILL: no process can catch SIGKILL or SIGSTOP; watch \
             another signal"
        );
    }

    #[test]
    fn the_other_signals_pass_the_check() {
        for kind in [
            SignalKind::interrupt(),
            SignalKind::terminate(),
            SignalKind::hangup(),
            SignalKind::quit(),
            SignalKind::user_defined1(),
            SignalKind::user_defined2(),
            SignalKind::window_change(),
            SignalKind::child(),
            SignalKind::alarm(),
        ] {
            assert_eq!(kind.check().unwrap(), kind.as_raw());
        }
    }

    #[test]
    fn a_signal_prints_its_name_and_an_unknown_number_prints_the_number() {
        assert_eq!(
            format!("{:?}", SignalKind::terminate()),
            "SignalKind(SIGTERM)"
        );
        assert_eq!(SignalKind::from_raw(1000).to_string(), "signal 1000");
        assert_eq!(SignalKind::interrupt().exit_status(), 130);
        assert_eq!(SignalKind::terminate().exit_status(), 143);
    }
}
