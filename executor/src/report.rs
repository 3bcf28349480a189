//! Where the runtime says what it cannot return to anyone: panics beyond the first that
//! `block_on` or a scope re-raises, a panic of a handle dropped after its runtime ended, a
//! failing seed in `test::check`, and the diagnostics of [`crate::diag`] (slow polls, stuck
//! cancellations, dumps on request).
//!
//! # Ground rules
//!
//! - Nothing in the workspace prints on its own: every line goes through [`report`] or
//!   [`report_message`], which hand a [`Report`] to the sink of the runtime current on this
//!   thread (`Builder::report_sink`), or to stderr when it has none or no runtime runs.
//!   The sink is this module's own thread-local, set while a runtime runs.
//! - A report never panics the runtime: a closed stderr is ignored, and the sink is called
//!   with no borrow of the runtime held, so it may call back into it (a dump, say).

use std::cell::RefCell;
use std::fmt;
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use crate::diag::{SlowPoll, StallReport, StuckTask, TreeDump};

thread_local! {
    /// The sink of the runtime current on this thread, if it has one: set and cleared with
    /// the runtime itself (`context::enter`), kept here so that reporting needs nothing of
    /// the runtime but this.
    static SINK: RefCell<Option<Sink>> = const { RefCell::new(None) };
}

/// Makes `sink` this thread's sink (`None`: stderr); returns the one it replaces.
pub(crate) fn replace_sink(sink: Option<Sink>) -> Option<Sink> {
    SINK.try_with(|cell| cell.replace(sink)).ok().flatten()
}

/// Something the runtime reports rather than returns.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Report {
    /// A line of text: an extra panic, a failing seed.
    Message(String),
    /// A single poll took longer than the slow-poll threshold.
    SlowPoll(SlowPoll),
    /// The stuck-cancellation watchdog found tasks that make no progress.
    Stall(StallReport),
    /// The grace period ran out: the watchdog aborted this task.
    Aborted(StuckTask),
    /// A dump asked for by the dump signal (SIGUSR1).
    Dump(TreeDump),
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Report::Message(text) => f.write_str(text),
            Report::SlowPoll(slow) => slow.fmt(f),
            Report::Stall(stall) => stall.fmt(f),
            Report::Aborted(task) => write!(
                f,
                "treeloop watchdog: the grace period ran out; aborted {task}"
            ),
            Report::Dump(dump) => write!(f, "treeloop: task tree on request\n{dump}"),
        }
    }
}

/// Receives every [`Report`] of one runtime (see `Builder::report_sink`).
pub type Sink = Rc<dyn Fn(&Report)>;

/// Reports one line of text (see [`Report::Message`]).
pub fn report(args: fmt::Arguments<'_>) {
    report_message(Report::Message(args.to_string()));
}

/// Hands `report` to this thread's runtime's sink, or writes it to stderr.
pub fn report_message(report: Report) {
    let sink = SINK.try_with(|cell| cell.borrow().clone()).ok().flatten();
    let Some(sink) = sink else {
        return to_stderr(&report);
    };
    // A panicking sink must not take the runtime down (it may run while a poll or an
    // unwind is in progress): the report then goes to stderr, with the sink's panic.
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| sink(&report))) {
        to_stderr(&report);
        to_stderr(&Report::Message(format!(
            "treeloop: the report sink panicked on the report above: {}",
            crate::panic::panic_message(&payload)
        )));
    }
}

/// The default sink: one report per write, so concurrent writers do not interleave it.
pub fn to_stderr(report: &Report) {
    let _ = writeln!(std::io::stderr().lock(), "{report}");
}
