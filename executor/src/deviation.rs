//! Deviations from FIFO: the form in which `test::check` shrinks a failing schedule, and
//! the count of polls a replay keeps to recognise one (ARCHITECTURE.md, "Shrinking").
//!
//! A FIFO run takes the front of the run queue at every choice. A [`Deviation`] is a choice
//! that took another job: "task `taken`, at its `poll`th poll, ran while `over` was at the
//! front". A replay given deviations ([`Replay::deviations`](crate::Replay::deviations))
//! runs FIFO and takes each deviation's job where it recognises it.
//!
//! # Ground rules
//!
//! - A deviation names jobs by task number and a poll by its ordinal, never a choice by its
//!   position in the run: removing an earlier deviation shifts every later choice, but the
//!   moment "`taken` is ready for its `poll`th poll and `over` is at the front" is still
//!   there if the run still gets to it.
//! - A deviation is taken at the first choice where its moment comes, and at most once
//!   (the poll it names happens once). Where two fit one choice, the one listed first wins.
//! - A run's own deviations, given back to a replay, reproduce that run choice for choice:
//!   while `taken` waits for its poll, `over` can reach the front only once, since a job
//!   taken from the front goes back behind it.

use std::collections::BTreeMap;

use crate::choice::Choice;

/// A choice that took another job than the front of the queue, which FIFO would have
/// taken, named so that it survives changes to the choices around it.
///
/// ```
/// # use treeloop_executor::{Choice, Deviation};
///
/// // Task #2 ran its 3rd poll while task #1 was first in line.
/// let deviation = Deviation { taken: Choice::Task(2), poll: 3, over: Choice::Task(1) };
/// assert_eq!(deviation.to_string(), "#2 ran before #1 at its poll 3");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deviation {
    /// The job taken.
    pub taken: Choice,
    /// Which of its polls it was taken for, from 1.
    pub poll: u64,
    /// The job at the front of the queue, which FIFO would have taken.
    pub over: Choice,
}

impl std::fmt::Display for Deviation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ran before {} at its poll {}",
            self.taken, self.over, self.poll
        )
    }
}

/// How many times each job has been handed out so far (its polls): what tells which poll a
/// ready job is waiting for. Kept by a replay that logs its choices or deviates.
#[derive(Default)]
pub(crate) struct Polls {
    /// The root's polls.
    root: u64,
    /// Task `n`'s polls at index `n` (task numbers are dense from 0). A `Vec`, not a map:
    /// a replay is for small tests, and a lookup is then an index.
    tasks: Vec<u64>,
}

impl Polls {
    /// The poll, from 1, that `job` is waiting for.
    pub(crate) fn next(&self, job: Choice) -> u64 {
        1 + match job {
            Choice::Root => self.root,
            Choice::Task(number) => usize::try_from(number)
                .ok()
                .and_then(|index| self.tasks.get(index))
                .copied()
                .unwrap_or(0),
        }
    }

    /// `job` was handed out once more.
    pub(crate) fn count(&mut self, job: Choice) {
        match job {
            Choice::Root => self.root += 1,
            Choice::Task(number) => {
                let Ok(index) = usize::try_from(number) else {
                    return;
                };
                if self.tasks.len() <= index {
                    self.tasks.resize(index + 1, 0);
                }
                self.tasks[index] += 1;
            }
        }
    }
}

/// The deviations a replay is to take, by the job they are taken over.
#[derive(Default)]
pub(crate) struct Planned {
    /// For each front job, the `(taken, poll)` of the deviations taken over it, in the
    /// order given. A map by front: a choice looks only at the deviations its front allows.
    by_front: BTreeMap<Choice, Vec<(Choice, u64)>>,
}

impl Planned {
    pub(crate) fn new(deviations: &[Deviation]) -> Planned {
        let mut by_front: BTreeMap<Choice, Vec<(Choice, u64)>> = BTreeMap::new();
        for deviation in deviations {
            by_front
                .entry(deviation.over)
                .or_default()
                .push((deviation.taken, deviation.poll));
        }
        Planned { by_front }
    }

    /// The index in `ready` (queue order, two or more jobs) of the job a planned deviation
    /// takes here, if one fits: its job is ready for its poll, and its front is the front.
    pub(crate) fn pick(&self, ready: &[Choice], polls: &Polls) -> Option<usize> {
        let (&front, _) = ready.split_first()?;
        let planned = self.by_front.get(&front)?;
        planned.iter().find_map(|&(taken, poll)| {
            let index = ready.iter().skip(1).position(|&job| job == taken)? + 1;
            (polls.next(taken) == poll).then_some(index)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deviation_is_taken_only_over_its_front_at_its_poll() {
        let (a, b, c) = (Choice::Task(0), Choice::Task(1), Choice::Task(2));
        let planned = Planned::new(&[
            Deviation {
                taken: c,
                poll: 2,
                over: a,
            },
            Deviation {
                taken: b,
                poll: 1,
                over: a,
            },
        ]);
        let mut polls = Polls::default();
        // c waits for its first poll: only b's deviation fits.
        assert_eq!(planned.pick(&[a, b, c], &polls), Some(1));
        // Another front: nothing fits.
        assert_eq!(planned.pick(&[b, a, c], &polls), None);
        polls.count(c);
        // Now c waits for its second poll, and its deviation is listed first.
        assert_eq!(planned.pick(&[a, b, c], &polls), Some(2));
        assert_eq!(polls.next(c), 2);
        assert_eq!(polls.next(Choice::Root), 1);
    }
}
