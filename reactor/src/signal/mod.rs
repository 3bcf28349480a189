//! Unix signals: the shutdown set (R19), the dump signal, and receivers for the rest.
//!
//! A runtime can use a signal three ways, all through one self-pipe per signal (`pipe.rs`):
//!
//! - **Shutdown.** With `Builder::shutdown_on_signal` (SIGINT and SIGTERM, the
//!   [`SHUTDOWN_SIGNALS`]) or `Builder::shutdown_signals` (a set of your choosing), the first
//!   delivery of a signal of the set makes the reactor ask the executor to cancel the root
//!   (reason `Shutdown`); the second delivery of any signal of the set exits the process at
//!   once with status 128 + its number (130 for SIGINT, 143 for SIGTERM; `exit.rs`).
//! - **Dump.** With `Builder::dump_on_signal`, SIGUSR1 asks for a dump of the task tree.
//! - **Receive.** [`unix`] returns a receiver whose `recv` completes for each delivery
//!   (SIGHUP to reload a configuration, say); [`ctrl_c`] waits for the next SIGINT.
//!
//! # Ground rules
//!
//! - The signal handler only writes a byte to the signal's pipe; the reactor reads the pipes
//!   when the poller reports them and does the rest on the loop thread. The exception is
//!   the second-signal exit, which must work while the loop is stuck.
//! - Uses combine: a signal may be in the shutdown set, be the dump signal and have
//!   receivers at once, and every delivery does all that applies.
//! - Watching a signal replaces its default action for the life of the process; SIGKILL,
//!   SIGSTOP and the fault signals are refused with an error (`kind.rs`).
//! - Signals are real events from outside: a seeded run that watches a signal it could be
//!   woken by (a shutdown signal, a receiver) is never reported as a deadlock.

mod exit;
mod kind;
mod pipe;
mod receive;

pub(crate) use exit::arm_second_signal_exit;
pub use kind::{SHUTDOWN_SIGNALS, SignalKind};
pub(crate) use pipe::{Delivered, Purpose, SIGNAL_TOKEN, SignalTable};
pub use receive::{CtrlC, Signal, ctrl_c, unix};
