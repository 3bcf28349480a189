//! Buffers that a seeded run's bookkeeping grew, kept on its thread for the next seeded run.
//!
//! A seeded run records as it goes: the trace keeps one word per event and the identity of
//! every task spawned in its first steps, the strategy one word per choice (and PCT one per
//! task's priority). A test that runs a thousand seeds builds a thousand runtimes one after
//! another on one thread, and each used to grow these from empty: every doubling copied what
//! it held, and each new buffer came as fresh pages the kernel had to fault in (malloc hands
//! large blocks back to the system when they are freed). With 10,000 tasks yielding 4 times,
//! that was about 280 page faults a run and 35 instructions of copying a poll, which a run
//! without a seed does not pay: seeded FIFO took 1.28x the time of the unseeded run, and
//! 1.02-1.10x with the spares.
//!
//! # Ground rules
//!
//! - A spare buffer is empty: what a run recorded never reaches the next one. Taking one
//!   only saves its growth; a run that takes a fresh `Vec` behaves the same.
//! - At most [`KEPT`] word buffers and one task table are kept per thread, each no larger
//!   than [`LARGEST`] (the largest schedule a run records, [`SCHEDULE_KEPT`] choices), and
//!   together no more than [`BUDGET`]: a thread that ran seeded tests holds at most 16 MiB of
//!   spares until it exits. A buffer that does not fit is freed.
//! - Runs without a seed never come here: they record nothing.

use std::cell::RefCell;
use std::mem::size_of;

use crate::schedule::SCHEDULE_KEPT;
use crate::trace::TaskIdentity;

/// The word buffers kept per thread: a run takes up to four (the trace's first and latest
/// events, the strategy's choices, PCT's priorities).
const KEPT: usize = 4;

/// The largest buffer kept, in bytes: a full schedule's 8 MiB.
const LARGEST: usize = SCHEDULE_KEPT * size_of::<u64>();

/// The most a thread keeps in all, in bytes: 16 MiB.
const BUDGET: usize = 2 * LARGEST;

/// The spares of one thread.
#[derive(Default)]
struct Spares {
    /// Empty word buffers, the most recently given back last.
    words: Vec<Vec<u64>>,
    /// An empty task table.
    tasks: Option<Vec<TaskIdentity>>,
    /// The bytes all of them hold.
    bytes: usize,
}

impl Spares {
    /// Whether a buffer of `bytes` may be kept.
    fn fits(&self, bytes: usize) -> bool {
        bytes > 0 && bytes <= LARGEST && self.bytes + bytes <= BUDGET
    }
}

thread_local! {
    static SPARES: RefCell<Spares> = RefCell::default();
}

/// An empty word buffer: a spare if the thread has one, else a new one.
pub(crate) fn words() -> Vec<u64> {
    take(|spares| spares.words.pop().map(|buffer| (bytes(&buffer), buffer)))
}

/// Keeps `buffer`, emptied, for a later [`words`], if it fits ([`KEPT`], [`LARGEST`],
/// [`BUDGET`]); frees it otherwise.
pub(crate) fn give_words(mut buffer: Vec<u64>) {
    buffer.clear();
    give(bytes(&buffer), |spares| {
        (spares.words.len() < KEPT).then(|| spares.words.push(buffer))
    });
}

/// An empty task table: the spare if the thread has one, else a new one.
pub(crate) fn tasks() -> Vec<TaskIdentity> {
    take(|spares| spares.tasks.take().map(|table| (bytes(&table), table)))
}

/// Keeps `table`, emptied, for a later [`tasks`], if it fits and none is kept already.
pub(crate) fn give_tasks(mut table: Vec<TaskIdentity>) {
    // The names go now, with the run that recorded them.
    table.clear();
    give(bytes(&table), |spares| {
        spares.tasks.is_none().then(|| spares.tasks = Some(table))
    });
}

/// The bytes `buffer` holds.
fn bytes<T>(buffer: &Vec<T>) -> usize {
    buffer.capacity() * size_of::<T>()
}

/// The spare `pick` takes out (with its size), or a new buffer.
fn take<T: Default>(pick: impl FnOnce(&mut Spares) -> Option<(usize, T)>) -> T {
    // At thread exit the spares may be gone already: the run then starts from empty.
    let spare = SPARES
        .try_with(|spares| {
            let mut spares = spares.borrow_mut();
            let (bytes, buffer) = pick(&mut spares)?;
            spares.bytes -= bytes;
            Some(buffer)
        })
        .ok()
        .flatten();
    spare.unwrap_or_default()
}

/// Offers a buffer of `bytes` to the thread's spares: `keep` keeps it (returning
/// `Some`) if there is a place for it; a buffer not kept is dropped with `keep`.
fn give(bytes: usize, keep: impl FnOnce(&mut Spares) -> Option<()>) {
    let _ = SPARES.try_with(|spares| {
        let mut spares = spares.borrow_mut();
        if spares.fits(bytes) && keep(&mut spares).is_some() {
            spares.bytes += bytes;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Starts from no spares (an earlier test on this thread may have left some).
    fn fresh() {
        SPARES.with(|spares| *spares.borrow_mut() = Spares::default());
    }

    #[test]
    fn a_buffer_given_back_comes_back_empty_with_its_room() {
        fresh();
        let mut buffer = words();
        buffer.extend(0..1000);
        let room = buffer.capacity();
        give_words(buffer);
        let again = words();
        assert!(again.is_empty());
        assert_eq!(again.capacity(), room);
    }

    #[test]
    fn a_thread_keeps_a_bounded_number_of_buffers_and_bytes() {
        fresh();
        for _ in 0..KEPT + 3 {
            give_words(Vec::with_capacity(16));
        }
        give_words(Vec::with_capacity(LARGEST / size_of::<u64>() + 1));
        let (kept, bytes) = SPARES.with(|spares| {
            let spares = spares.borrow();
            (spares.words.len(), spares.bytes)
        });
        assert_eq!(kept, KEPT);
        assert_eq!(bytes, KEPT * 16 * size_of::<u64>());
        // The oversized one was freed, not kept: every spare is a small one.
        for _ in 0..KEPT {
            assert_eq!(words().capacity(), 16);
        }
        assert_eq!(words().capacity(), 0);
        assert_eq!(SPARES.with(|spares| spares.borrow().bytes), 0);

        // Two full-size buffers fill the budget; a third, however small, is freed.
        let full = LARGEST / size_of::<u64>();
        give_words(Vec::with_capacity(full));
        give_words(Vec::with_capacity(full));
        give_words(Vec::with_capacity(16));
        assert_eq!(SPARES.with(|spares| spares.borrow().words.len()), 2);
        assert_eq!(SPARES.with(|spares| spares.borrow().bytes), BUDGET);
    }

    #[test]
    fn a_task_table_comes_back_empty() {
        fresh();
        let mut table = tasks();
        table.push(TaskIdentity {
            number: 3,
            name: Some("conn".into()),
            location: std::panic::Location::caller(),
            parent: None,
            step: 0,
        });
        let room = table.capacity();
        give_tasks(table);
        let again = tasks();
        assert!(again.is_empty());
        assert_eq!(again.capacity(), room);
    }
}
