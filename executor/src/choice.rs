//! A scheduling choice: which job a pick took, named so that it means the same job in
//! every run of one program (the root, or a task by its number within the runtime).
//!
//! Schedules ([`crate::schedule`]) are sequences of these, and deviations
//! ([`crate::deviation`]) compare two of them.

use std::fmt;

/// One recorded choice: the job that was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Choice {
    /// The `block_on` future.
    Root,
    /// The task with this number within the runtime (`TaskId::number`, the trace's
    /// `Poll(n)`).
    Task(u64),
}

impl Choice {
    /// The job with this trace number (`Job::trace_id`: `u64::MAX` is the root).
    pub(crate) fn from_trace_id(id: u64) -> Choice {
        match id {
            u64::MAX => Choice::Root,
            number => Choice::Task(number),
        }
    }

    /// Its symbol in the encoding: 0 for the root, `n + 1` for task `n`.
    pub(crate) fn symbol(self) -> u64 {
        match self {
            Choice::Root => 0,
            Choice::Task(number) => number + 1,
        }
    }

    pub(crate) fn from_symbol(symbol: u64) -> Choice {
        match symbol {
            0 => Choice::Root,
            n => Choice::Task(n - 1),
        }
    }
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Choice::Root => f.write_str("root"),
            Choice::Task(number) => write!(f, "#{number}"),
        }
    }
}
