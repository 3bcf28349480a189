//! The shrinking report: what `test::check` prints after shrinking, with tasks named as a
//! reader knows them (`task "conn 2" (tests/foo.rs:41:9)`) and polls as English ordinals.
//!
//! # Ground rules
//!
//! - Every name comes from the shrunk run's own trace (`Trace::task`): its spawn site and
//!   `task::Builder::name`, never the process-wide task id.
//! - At most [`LISTED`] deviations are listed; the replay line always has them all.

use treeloop_executor::{Choice, Deviation, Trace};

use super::{DEFAULT_SHRINK_RUNS, Found, Shrunk};
use crate::run::replay_line;

/// The most deviations the report lists (a shrinking cut short can leave hundreds).
const LISTED: usize = 20;

impl Shrunk {
    /// The report: the counts, the deviations by name, the replay line (with the seed, as
    /// `TREELOOP_SEED`, where the schedule alone does not replay the failure).
    pub(super) fn describe(&self, seed: Option<u64>) -> String {
        let Found {
            deviations,
            preemptions,
            trace,
            ..
        } = &self.best;
        let (before, preempted) = self.before;
        let mut text = format!(
            "treeloop::test::check: shrunk from {} to {} in {} (preemptions: {preempted} to \
             {preemptions})",
            counted(before, "deviation"),
            deviations.len(),
            counted(self.runs as usize, "run"),
        );
        if self.ran_out {
            text += &format!(
                ", and stopped: that is its budget (TREELOOP_SHRINK_RUNS=n allows n runs, 0 \
                 none; the default is {DEFAULT_SHRINK_RUNS})"
            );
        }
        if deviations.is_empty() {
            text += ".\nFIFO order itself fails the same way, with no deviation; replay it with:";
        } else {
            text += &format!(
                ".\nFIFO order fails the same way with {} from it (a task run while another \
                 was first in line):",
                match deviations.len() {
                    1 => "this deviation".to_owned(),
                    n => format!("these {n} deviations"),
                }
            );
            for deviation in deviations.iter().take(LISTED) {
                text += &format!("\n    {}", describe(deviation, trace));
            }
            if deviations.len() > LISTED {
                text += &format!(
                    "\n    and {} more (the schedule below has them all)",
                    deviations.len() - LISTED
                );
            }
            text += "\nreplay the shrunk run with:";
        }
        let rng_seed = match (self.with_seed, seed) {
            (true, Some(seed)) => format!("TREELOOP_SEED={seed} "),
            _ => String::new(),
        };
        text += &format!("\n    {rng_seed}{}", replay_line(&self.best.schedule));
        text
    }
}

/// `task "conn 2" (tests/foo.rs:41:9) ran before task "reader" (tests/foo.rs:55:5) at its
/// 3rd poll`.
fn describe(deviation: &Deviation, trace: &Trace) -> String {
    format!(
        "{} ran before {} at its {} poll",
        job_name(deviation.taken, trace),
        job_name(deviation.over, trace),
        ordinal(deviation.poll)
    )
}

/// A job as a reader knows it: `the test body`; `task "name" (file:line:column)`;
/// `task #4 (file:line:column)` without a name; `task #4` if the trace did not keep it.
fn job_name(job: Choice, trace: &Trace) -> String {
    let Choice::Task(number) = job else {
        return "the test body".to_owned();
    };
    match trace.task(number) {
        Some(task) => match &task.name {
            Some(name) => format!("task {name:?} ({})", task.location),
            None => format!("task #{number} ({})", task.location),
        },
        None => format!("task #{number}"),
    }
}

/// `1st`, `2nd`, `3rd`, `4th`, `11th`, `12th`, `13th`, `21st`, `102nd`, `111th`.
fn ordinal(n: u64) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// "1 deviation", "37 deviations".
fn counted(n: usize, what: &str) -> String {
    let s = if n == 1 { "" } else { "s" };
    format!("{n} {what}{s}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_are_english() {
        let got: Vec<String> = [
            1, 2, 3, 4, 10, 11, 12, 13, 14, 21, 22, 23, 101, 102, 111, 112,
        ]
        .into_iter()
        .map(ordinal)
        .collect();
        assert_eq!(
            got,
            [
                "1st", "2nd", "3rd", "4th", "10th", "11th", "12th", "13th", "14th", "21st", "22nd",
                "23rd", "101st", "102nd", "111th", "112th"
            ]
        );
    }
}
