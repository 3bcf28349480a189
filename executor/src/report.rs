//! Where the runtime reports what it cannot return to anyone: panics beyond the first that
//! `block_on` or a scope re-raises, panics of dropped handles outliving their runtime, a
//! failing seed in `test::check`.
//!
//! One function for every crate of the workspace, so the diagnostics work can swap the
//! default (stderr) for a configurable sink without hunting for call sites.

use std::fmt;
use std::io::Write;

/// Writes one report line to stderr; a closed stderr is ignored (a report must never panic).
pub fn report(args: fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{args}");
}
