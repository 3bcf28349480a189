//! Diagnostics: what the loop and the tasks tell [`crate::diag`], and what the core does
//! with its verdicts (reports them, aborts the tasks past their grace period).
//!
//! # Ground rules
//!
//! - With diagnostics off every hook here is one branch on `None`, and the poll hook is
//!   not even called (the callers branch first).
//! - `diag` only reads the tree; the changes its verdicts call for are made here, through
//!   `core.rs` ([`Core::abort`]).

use std::collections::HashMap;

use super::Core;
use crate::diag::{Seen, TreeDump, dump, watchdog};
use crate::report::{Report, report_message};
use crate::tree::Key;

impl Core {
    /// Runs `poll` (one poll of the task or root at `key`) with the diagnostics'
    /// bookkeeping around it, and reports the poll if it was slow. Callers branch on `diag`
    /// themselves and poll directly when it is off, so the hot path does not even pass
    /// through this function (measured: wrapping every poll in it cost 26 instructions per
    /// poll through lost inlining).
    #[inline(never)]
    pub(crate) fn observe_poll<R>(&self, key: Key, poll: impl FnOnce() -> R) -> R {
        let Some(diag) = &self.policy.diag else {
            return poll();
        };
        let (result, slow) = diag.observe_poll(&self.structure.tree, key, poll);
        if let Some(slow) = slow {
            report_message(Report::SlowPoll(slow));
        }
        result
    }

    /// Stamps progress on the task being polled (see [`Diag::progress`](crate::diag::Diag::progress)).
    #[inline]
    pub(crate) fn note_progress(&self) {
        if let Some(diag) = &self.policy.diag {
            diag.progress();
        }
    }

    /// The task being polled is told of its cancellation (see [`Diag::saw_cancel`](crate::diag::Diag::saw_cancel)).
    #[inline]
    pub(crate) fn note_saw_cancel(&self) {
        if let Some(diag) = &self.policy.diag {
            diag.saw_cancel();
        }
    }

    /// Runs the watchdog if its check is due, and acts on its verdict: reports the tasks
    /// newly found stuck (with a dump that marks them), then aborts those past their grace
    /// period (see [`watchdog`]).
    pub(crate) fn watch(&self) {
        let Some(diag) = &self.policy.diag else {
            return;
        };
        let Some(now) = diag.check_due() else {
            return;
        };
        let verdict = watchdog::check(&self.tree(), diag, now);
        if !verdict.newly_stuck.is_empty() {
            let dump = self.dump_marking(&verdict.stuck);
            report_message(Report::Stall(crate::diag::StallReport {
                stuck: verdict.newly_stuck,
                dump,
                grace: diag.grace(),
            }));
        }
        for (key, task) in verdict.to_abort {
            self.abort(key);
            report_message(Report::Aborted(task));
        }
    }

    /// A dump of the live tree (the watchdog's reports carry their own, with verdicts).
    pub(crate) fn dump(&self) -> TreeDump {
        self.dump_marking(&HashMap::new())
    }

    /// A dump with the watchdog's verdicts marked.
    fn dump_marking(&self, stuck: &HashMap<Key, crate::diag::StallCause>) -> TreeDump {
        let tree = self.tree();
        let queue = self.dispatch.queue.borrow();
        let seen = Seen {
            tree: &tree,
            queue: &queue,
            root: self.structure.root.get(),
            current: self.frame.current(),
            diag: self.policy.diag.as_ref(),
        };
        dump::take(&seen, stuck)
    }
}
