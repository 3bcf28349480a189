//! The second shutdown signal exits the process at once, from inside the signal handler.
//!
//! # Ground rules
//!
//! - Process-wide and permanent: signal handlers belong to the process, not to a runtime.
//!   Each signal of a shutdown set gets two signal-hook actions, once per process: a
//!   conditional exit with status 128 + its number, then a flag that arms it. signal-hook
//!   runs one signal's actions in registration order, so the first delivery only arms.
//! - One flag for every shutdown signal: whichever arrives first arms all of them, so a
//!   SIGINT after a SIGTERM exits (130) as surely as a second SIGTERM does (143).
//! - The exit happens in the handler (`_exit`, async-signal-safe), so it works even when a
//!   task is stuck and the loop never turns again (R20). Cleanups that were running are cut
//!   off: that is what a second signal asks for.

use std::ffi::c_int;
use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};

use super::SignalKind;

/// The arming flag, and the signals whose exit is registered.
struct Exits {
    /// Set by the first delivery of any shutdown signal.
    armed: Arc<AtomicBool>,
    /// The signals with a conditional exit registered.
    registered: Vec<c_int>,
}

/// Registered once per process; behind a mutex because runtimes on several threads may be
/// built at once.
static EXITS: Mutex<Option<Exits>> = Mutex::new(None);

/// Makes the second delivery of any signal in `signals` exit the process with 128 + its
/// number. Checks every signal before registering anything.
pub(crate) fn arm_second_signal_exit(signals: &[SignalKind]) -> io::Result<()> {
    for signal in signals {
        signal.check()?;
    }
    let mut exits = EXITS.lock().unwrap_or_else(PoisonError::into_inner);
    let exits = exits.get_or_insert_with(|| Exits {
        armed: Arc::new(AtomicBool::new(false)),
        registered: Vec::new(),
    });
    for &signal in signals {
        let signum = signal.as_raw();
        if exits.registered.contains(&signum) {
            continue;
        }
        let status = signal.exit_status();
        signal_hook::flag::register_conditional_shutdown(signum, status, exits.armed.clone())?;
        signal_hook::flag::register(signum, exits.armed.clone())?;
        exits.registered.push(signum);
    }
    Ok(())
}
