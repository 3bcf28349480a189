//! Which ready job runs next: FIFO, or chosen from a seed (deterministic mode, SPEC §5).
//!
//! # Ground rules
//!
//! - Every choice comes from [`SplitMix64`], seeded once: the same seed and the same program
//!   make the same choices, run after run, build after build (no `std` hasher, no address,
//!   no clock is ever consulted, and nothing is keyed by a randomly seeded map).
//! - [`Strategy::Fifo`] makes no choice at all and costs nothing: it is the default.
//! - [`Strategy::Random`] picks uniformly among the ready jobs: good at finding bugs that
//!   need *some* unusual order.
//! - [`Strategy::Pct`] is probabilistic concurrency testing (Burckhardt et al., ASPLOS 2010):
//!   see [`Pct`] for the algorithm and [`Strategy::Pct`] for the guarantee.
//! - A *step* is a pick made while two or more jobs were ready (a pick with no choice
//!   cannot order anything; the paper's §4.1 skips such steps too). Random and PCT count
//!   them, and a run's count is the `k` that PCT's next run spreads its change points over
//!   (`test::check_with` learns it run by run).
//!
//! # How PCT knows a poll ended in a yield
//!
//! A job that is woken *while it is being polled* (between its pick and the next one) woke
//! itself: `yield_now`/`checkpoint` wake their own task and return `Pending`, and so does a
//! leaf future whose task spent its per-poll budget. The run queue sees it without any help
//! from the future: the woken job's slot equals the slot of the job it handed out last
//! ([`Woken::ByItself`]). This is the fact async-task reports as
//! `ScheduleInfo::woken_while_running`, observed one level up so that the `block_on` root
//! (not an async-task task) is covered too. (A labelled simplification: a wake of the last
//! job of a batch that arrives between its poll and the next pick, say a due timer in a
//! non-blocking park after a full batch, counts as its own; an idle loop clears the mark, so
//! a jump of virtual time never does.)

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::schedule::{Replay, Replayer, Schedule};
use crate::spare;

/// How the scheduler picks the next ready job.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Strategy {
    /// First woken, first run. No randomness.
    #[default]
    Fifo,
    /// Uniformly random among the ready jobs.
    Random,
    /// Priority-based probabilistic concurrency testing (PCT) with bug depth `depth` (≥ 1).
    ///
    /// Each task gets a random priority when first queued, the highest-priority ready task
    /// always runs, and at `depth - 1` steps drawn uniformly from `1..=k` the task picked
    /// drops below every other. A *step* is a pick made while at least two tasks were ready
    /// (the `block_on` future counts as a task); `k`, the *horizon*, is the run's number of
    /// steps. A yield is a step like any other: the yielder keeps its priority, so the top
    /// task runs on through its yields and is preempted only at a change point (depth 1 has
    /// none: priorities alone, never a preemption).
    ///
    /// The guarantee (Burckhardt et al., ASPLOS 2010): for a run of `n` tasks and `k` steps,
    /// a bug that needs `d` ordering constraints (its depth: 1 for "B runs before A", 2 for
    /// "A is preempted between its read and its write, and B writes in between") is found
    /// with probability at least 1 / (n · k^(d-1)) by one seed when `depth >= d` and `k`
    /// covers the run. Uniform choice, by contrast, needs luck at every step of a long run.
    ///
    /// The horizon is an estimate. `treeloop::test::check_with` learns it: each seed runs
    /// with the most steps an earlier seed took (the first seed with the default, 100
    /// steps). `Builder::pct_horizon` fixes it. A runtime built directly uses the fixed
    /// horizon or the default, so the seed and the options alone determine the run.
    ///
    /// One departure from the paper, for spin loops: a task yielding 64 times in a row while
    /// others are ready (spinning on `yield_now` for another task to act) drops below every
    /// other, so the task it waits for runs.
    Pct {
        /// How many ordering constraints the bugs sought need (1 = plain random priorities).
        depth: u32,
    },
}

/// The horizon PCT assumes when it has no estimate: the first seed of `test::check_with`,
/// or a runtime built without `Builder::pct_horizon`. Small tests take tens of steps; a
/// default far above that would waste change points past the end of the run.
pub(crate) const DEFAULT_PCT_HORIZON: u64 = 100;

/// Yields in a row, each with another job ready, after which PCT takes a task for a spinner
/// and drops its priority below every other. Far above the handful of yields a task makes
/// between the interleavings a test cares about (so PCT can still run a task through them
/// unpreempted), far below the iterations a spin loop runs before a test gives up on it.
const SPIN_YIELDS: u32 = 64;

/// The lowest fresh priority: fresh priorities are drawn from `FRESH..2^63`, and every
/// lowering takes the next number below `FRESH`, so a lowered job runs after every job that
/// was never lowered, and after every job lowered before it.
const FRESH: u64 = 1 << 62;

/// A priority not assigned yet (every assigned priority is above it).
const UNSET: u64 = 0;

/// SplitMix64 (Steele, Lea, Flood 2014): a 64-bit state, one addition and three
/// xor-shift-multiplies per number. Tiny, fast, and fully specified, so sequences are
/// stable forever. Not for cryptography. The one generator of the runtime's crates: the
/// scheduler's strategies, `treeloop::sim`'s faults and `test::rng`'s stream seeds all draw
/// from it (each from a seed of its own).
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    /// The state; advanced by the golden-ratio increment each call.
    state: u64,
}

impl SplitMix64 {
    /// The generator whose state starts at `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), by Lemire's multiply-shift (its bias is below 2^-32 for
    /// the bounds seen here, and the result is deterministic either way).
    fn below_u64(&mut self, n: u64) -> u64 {
        scale(self.next_u64(), n)
    }
}

/// `drawn` (uniform over `u64`) scaled to `0..n`: the high half of the product.
#[inline]
fn scale(drawn: u64, n: u64) -> u64 {
    ((u128::from(drawn) * u128::from(n)) >> 64) as u64
}

/// The strategy's state. `J` is the queue's job type: the picker never looks inside a job,
/// it asks the queue for the two numbers it needs (see [`Pct::pop`]).
pub(crate) enum Picker<J> {
    /// Front of the queue.
    Fifo,
    /// Uniform choice, which keeps the ready jobs itself.
    Random(Uniform<J>),
    /// PCT state, which keeps the ready jobs itself.
    Pct(Pct<J>),
    /// A recorded schedule, replayed (see [`crate::schedule`]).
    Replay(Replayer),
}

impl<J> Picker<J> {
    /// The picker for `strategy`, drawing from `seed`; `horizon` is PCT's `k` (see
    /// [`Strategy::Pct`]), [`DEFAULT_PCT_HORIZON`] if `None`. A `replay` overrides the
    /// strategy.
    pub(crate) fn new(
        strategy: Strategy,
        seed: u64,
        horizon: Option<u64>,
        replay: Option<Replay>,
    ) -> Picker<J> {
        if let Some(replay) = replay {
            return Picker::Replay(Replayer::new(replay));
        }
        let rng = SplitMix64::new(seed);
        match strategy {
            Strategy::Fifo => Picker::Fifo,
            Strategy::Random => Picker::Random(Uniform::new(rng)),
            Strategy::Pct { depth } => Picker::Pct(Pct::new(
                rng,
                u64::from(depth.max(1)),
                horizon.unwrap_or(DEFAULT_PCT_HORIZON).max(1),
            )),
        }
    }

    /// Steps taken so far (picks made with a choice); 0 under FIFO, which does not count.
    pub(crate) fn steps(&self) -> u64 {
        match self {
            Picker::Fifo => 0,
            Picker::Random(uniform) => uniform.steps,
            Picker::Pct(pct) => pct.steps,
            Picker::Replay(replay) => replay.taken().len() as u64,
        }
    }

    /// The choices made so far (empty under FIFO, which records none: replaying the empty
    /// schedule is the FIFO run).
    pub(crate) fn schedule(&self) -> Schedule {
        match self {
            Picker::Fifo => Schedule::default(),
            Picker::Random(uniform) => uniform.taken.clone(),
            Picker::Pct(pct) => pct.taken.clone(),
            Picker::Replay(replay) => replay.taken().clone(),
        }
    }
}

/// Uniformly random choice.
///
/// The ready jobs live in a `Vec` in no particular order: a pick draws an index and the last
/// job takes the chosen one's place, O(1). Wake order need not be kept: every pick is uniform
/// over all of them, and the moves are deterministic. (Removing from the middle of the run
/// queue's deque kept wake order by shifting up to half of it: 4x FIFO's cost per poll at
/// 10,000 ready tasks; a swap inside the deque still paid its ring-buffer index arithmetic.)
pub(crate) struct Uniform<J> {
    /// The generator.
    rng: SplitMix64,
    /// Picks made with a choice.
    steps: u64,
    /// The choices made.
    taken: Schedule,
    /// The ready jobs, in no order.
    ready: Vec<J>,
    /// The generator's number for the next pick, drawn one pick ahead (see
    /// [`Uniform::pop`]'s optimisation).
    ahead: u64,
}

impl<J> Uniform<J> {
    fn new(mut rng: SplitMix64) -> Uniform<J> {
        Uniform {
            ahead: rng.next_u64(),
            rng,
            steps: 0,
            taken: Schedule::recording(),
            ready: Vec::new(),
        }
    }

    /// Queues `job`.
    #[inline]
    pub(crate) fn push(&mut self, job: J) {
        self.ready.push(job);
    }

    /// The next job, chosen uniformly; `number` gives a job's number within the runtime,
    /// asked for only at a pick with a choice (it goes into the schedule). One number is
    /// drawn per pick, choice or not: the sequence (and so every trace) is the one it
    /// always was.
    ///
    /// Optimisation: the generator runs one pick ahead, so this pick can also say which job
    /// the next one takes if the queue keeps its length (the common case: the job taken
    /// yields and is queued again), and `prefetch` asks for that job's memory now. A random
    /// order defeats the hardware prefetcher that a FIFO walk over tasks spawned in order
    /// enjoys, so with more tasks than the cache holds each pick would wait for its task's
    /// header; the hint overlaps that wait with this poll. It must be a hint, not a read:
    /// a read that misses holds the poll up behind it (measured: slower than nothing). With
    /// 10,000 ready tasks yielding 100 times: 47-48 -> 39.6-40.2 ns per poll (normal mode
    /// 30-31). The choices are the same: the hint only asks for a cache line.
    #[inline]
    pub(crate) fn pop(
        &mut self,
        number: impl FnOnce(&J) -> u64,
        prefetch: impl FnOnce(&J),
    ) -> Option<J> {
        let len = self.ready.len();
        if len == 0 {
            return None;
        }
        let drawn = std::mem::replace(&mut self.ahead, self.rng.next_u64());
        let job = self.ready.swap_remove(scale(drawn, len as u64) as usize);
        // The job at this index now is the one the next pick takes at length `len` (the
        // index past the end is where the job just taken goes if it is queued again: its
        // memory is at hand).
        if let Some(next) = self.ready.get(scale(self.ahead, len as u64) as usize) {
            prefetch(next);
        }
        if len >= 2 {
            self.steps += 1;
            self.taken.push_trace_id(number(&job));
        }
        Some(job)
    }

    /// The jobs waiting, in no particular order (for dumps).
    pub(crate) fn jobs(&self) -> impl Iterator<Item = &J> {
        self.ready.iter()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ready.is_empty()
    }

    /// Gives back the memory of a buffer that a burst grew beyond `above` slots, keeping
    /// `keep`, once nothing is queued (see `RunQueue::pop`).
    pub(crate) fn shrink_if_drained(&mut self, above: usize, keep: usize) {
        if self.ready.is_empty() && self.ready.capacity() > above {
            self.ready.shrink_to(keep);
        }
    }
}

impl<J> Drop for Uniform<J> {
    /// Optimisation: the choices' buffer goes to the thread's next seeded run
    /// ([`crate::spare`]).
    fn drop(&mut self) {
        std::mem::take(&mut self.taken).recycle();
    }
}

/// Why a job was queued: the fact PCT's spin rule needs (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Woken {
    /// By another job, a timer, I/O, another thread, or its spawn.
    ByOther,
    /// By itself, during its own poll: a yield.
    ByItself,
}

/// A ready job in PCT's heap, ordered by priority (then number, so no two compare equal).
struct Ranked<J> {
    /// Its priority when it was queued.
    priority: u64,
    /// Its number within the runtime (see `Job::trace_id`).
    number: u64,
    /// Why it was queued.
    woken: Woken,
    /// The job.
    job: J,
}

impl<J> Ranked<J> {
    fn key(&self) -> (u64, u64) {
        (self.priority, self.number)
    }
}

impl<J> PartialEq for Ranked<J> {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl<J> Eq for Ranked<J> {}

impl<J> PartialOrd for Ranked<J> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<J> Ord for Ranked<J> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// Priority-based probabilistic concurrency testing.
///
/// The algorithm, as in the paper: every task gets a random priority when first queued
/// (above every lowered one); each pick runs the highest-priority ready job; `depth - 1`
/// distinct change points are drawn from `1..=horizon` up front, and the job picked at step
/// `c_i` drops below every other once it has run that step (a later drop lands below an
/// earlier one, as the paper's `d - i`). One departure, for spin loops: a job picked again
/// after [`SPIN_YIELDS`] consecutive yields with others ready drops the same way.
///
/// The ready jobs live in a binary heap keyed by priority, so a pick costs O(log n) whatever
/// the queue's length (the first version scanned the queue and looked every job's priority
/// up in a map: 1,000x the cost of FIFO at 10,000 ready tasks). A job's priority never
/// changes while it is queued (drops happen to the job just picked, or as a self-woken job
/// is ranked), so the heap needs no deletion. Jobs queued since the last pick wait in
/// `woken` and are ranked at the next pick, where the tree (which numbers them) is at hand:
/// a wake may come from inside a borrow of the tree, a pick never does.
pub(crate) struct Pct<J> {
    /// The generator.
    rng: SplitMix64,
    /// Ranked ready jobs; the highest priority on top.
    ready: BinaryHeap<Ranked<J>>,
    /// Jobs queued since the last pick, in queue order, with why.
    woken: Vec<(J, Woken)>,
    /// Each task's priority by its number ([`UNSET`] until first queued). A `Vec`, not a
    /// map: numbers are dense (creation order within the runtime) and never reused, so this
    /// costs 8 bytes per node the run ever created, and a lookup is an index.
    priority: Vec<u64>,
    /// The `block_on` future's priority (its number, `u64::MAX`, is not an index).
    root_priority: u64,
    /// The priority the next drop gives: below [`FRESH`] and below every earlier drop.
    next_low: u64,
    /// Steps at which the job picked drops, ascending and distinct.
    change_points: Vec<u64>,
    /// How many of `change_points` have passed.
    passed: usize,
    /// Steps taken: picks made with two or more jobs ready.
    steps: u64,
    /// The job taken at each step.
    taken: Schedule,
    /// The job handed out last, until a pick finds nothing ready: a job queued with its
    /// slot woke itself during its poll.
    last_handed_out: Option<HandedOut>,
}

/// What PCT remembers of the job it handed out last.
#[derive(Clone, Copy, Debug)]
struct HandedOut {
    /// Its slot: a job queued with this slot woke itself.
    slot: u64,
    /// Its number within the runtime.
    number: u64,
    /// Its priority from now on (lowered if it was picked at a change point).
    priority: u64,
    /// How many yields in a row (each with others ready) it has been picked again after.
    yields: u32,
}

impl<J> Drop for Pct<J> {
    /// Optimisation: the choices' and priorities' buffers go to the thread's next seeded run
    /// ([`crate::spare`]).
    fn drop(&mut self) {
        std::mem::take(&mut self.taken).recycle();
        spare::give_words(std::mem::take(&mut self.priority));
    }
}

impl<J> Pct<J> {
    fn new(mut rng: SplitMix64, depth: u64, horizon: u64) -> Pct<J> {
        // `depth - 1` distinct steps in 1..=horizon (fewer if the horizon is shorter).
        let wanted = (depth - 1).min(horizon) as usize;
        let mut change_points = Vec::with_capacity(wanted);
        while change_points.len() < wanted {
            let step = 1 + rng.below_u64(horizon);
            if !change_points.contains(&step) {
                change_points.push(step);
            }
        }
        change_points.sort_unstable();
        Pct {
            rng,
            ready: BinaryHeap::new(),
            woken: Vec::new(),
            priority: spare::words(),
            root_priority: UNSET,
            next_low: FRESH - 1,
            change_points,
            passed: 0,
            steps: 0,
            taken: Schedule::recording(),
            last_handed_out: None,
        }
    }

    /// Queues `job`, whose slot (a key unique among live jobs) is `slot`. No tree access:
    /// this runs inside wakes.
    pub(crate) fn push(&mut self, job: J, slot: u64) {
        let woken = if self.last_handed_out.is_some_and(|last| last.slot == slot) {
            Woken::ByItself
        } else {
            Woken::ByOther
        };
        self.woken.push((job, woken));
    }

    /// The next job: the highest-priority ready one. `number` gives a job's number within
    /// the runtime (stable across runs: what priorities are kept by), `slot` its slot.
    pub(crate) fn pop(
        &mut self,
        number: impl Fn(&J) -> u64,
        slot: impl Fn(&J) -> u64,
    ) -> Option<J> {
        // 1. Rank the jobs queued since the last pick, in the order they were queued (so
        //    fresh priorities are drawn in a reproducible order).
        let others_ready = self.ready.len() + self.woken.len() > 1;
        // (Taken out and put back, so the buffer is reused and `self` stays free to borrow.)
        //    Optimisation: the best of them is held out of the heap, and taken directly if
        //    it beats the heap's top, which is the common case (a task that yields keeps
        //    the highest priority): a push that sifts to the top and a pop that sifts back
        //    down, 2 log n moves, become one comparison. The job taken is the same: the
        //    order is total (priority, then number), so the maximum is unique.
        let waiting = self.ready.len() + self.woken.len();
        let mut best: Option<Ranked<J>> = None;
        let mut woken = std::mem::take(&mut self.woken);
        for (job, why) in woken.drain(..) {
            // Optimisation: a job that woke itself is the one handed out last, whose number
            // and priority are at hand; only a job woken by another is looked up.
            let (number, priority) = match (why, self.last_handed_out) {
                (Woken::ByItself, Some(last)) => (last.number, self.yielded(others_ready)),
                _ => {
                    let number = number(&job);
                    (number, self.priority_of(number))
                }
            };
            let ranked = Ranked {
                priority,
                number,
                woken: why,
                job,
            };
            match &best {
                Some(held) if *held >= ranked => self.ready.push(ranked),
                _ => {
                    if let Some(held) = best.replace(ranked) {
                        self.ready.push(held);
                    }
                }
            }
        }
        self.woken = woken;
        // 2. Take the highest.
        let choice = waiting >= 2;
        let top = match best {
            Some(held) if self.ready.peek().is_none_or(|top| held > *top) => Some(held),
            Some(held) => {
                self.ready.push(held);
                self.ready.pop()
            }
            None => self.ready.pop(),
        };
        let Some(Ranked {
            mut priority,
            number,
            woken,
            job,
        }) = top
        else {
            // Idle: whatever wakes a job from now on (a timer after a jump of virtual
            // time, say) is not that job's own poll.
            self.last_handed_out = None;
            return None;
        };
        // 3. Keep count of its yields in a row: they go on only if the job handed out
        //    last is picked again after waking itself.
        let yields = match self.last_handed_out {
            Some(last) if last.number == number && woken == Woken::ByItself => last.yields,
            _ => 0,
        };
        // 4. A change point: it runs this step, then drops below every other.
        if choice {
            self.steps += 1;
            self.taken.push_trace_id(number);
            if self.change_points.get(self.passed) == Some(&self.steps) {
                self.passed += 1;
                priority = self.lowest();
                *self.slot_mut(number) = priority;
            }
        }
        self.last_handed_out = Some(HandedOut {
            slot: slot(&job),
            number,
            priority,
            yields,
        });
        Some(job)
    }

    /// The jobs waiting, in no particular order (for dumps).
    pub(crate) fn jobs(&self) -> impl Iterator<Item = &J> {
        let ranked = self.ready.iter().map(|ranked| &ranked.job);
        ranked.chain(self.woken.iter().map(|(job, _)| job))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ready.is_empty() && self.woken.is_empty()
    }

    /// Gives back the memory of a heap that a burst grew beyond `above` slots, keeping
    /// `keep`, once nothing is queued (see `RunQueue::pop`).
    pub(crate) fn shrink_if_drained(&mut self, above: usize, keep: usize) {
        if self.is_empty() && self.ready.capacity() > above {
            self.ready.shrink_to(keep);
            self.woken.shrink_to(keep);
        }
    }

    /// The priority of the job handed out last, which just yielded: its own, unless this
    /// is its [`SPIN_YIELDS`]th yield in a row with others ready, which drops it.
    fn yielded(&mut self, others_ready: bool) -> u64 {
        let Some(mut job) = self.last_handed_out else {
            unreachable!("only the job handed out last wakes itself");
        };
        if others_ready {
            job.yields += 1;
            if job.yields >= SPIN_YIELDS {
                job.yields = 0;
                job.priority = self.lowest();
                *self.slot_mut(job.number) = job.priority;
            }
            self.last_handed_out = Some(job);
        }
        job.priority
    }

    /// A job's priority, drawn the first time it is asked for.
    fn priority_of(&mut self, number: u64) -> u64 {
        let known = *self.slot_mut(number);
        if known != UNSET {
            return known;
        }
        let fresh = FRESH | (self.rng.next_u64() >> 2);
        *self.slot_mut(number) = fresh;
        fresh
    }

    /// The next drop's priority: below every priority given so far.
    fn lowest(&mut self) -> u64 {
        let low = self.next_low;
        // `FRESH - 1` drops before reaching UNSET: no run gets near.
        self.next_low = self.next_low.saturating_sub(1).max(UNSET + 1);
        low
    }

    fn slot_mut(&mut self, number: u64) -> &mut u64 {
        if number == u64::MAX {
            return &mut self.root_priority;
        }
        let index = number as usize;
        if index >= self.priority.len() {
            self.priority.resize(index + 1, UNSET);
        }
        &mut self.priority[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_is_the_published_sequence() {
        // First outputs for seed 1234567, as published with the reference implementation.
        let mut rng = SplitMix64::new(1234567);
        assert_eq!(rng.next_u64(), 6457827717110365317);
        assert_eq!(rng.next_u64(), 3203168211198807973);
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = SplitMix64::new(7);
        assert!((0..1000).all(|_| rng.below_u64(3) < 3));
    }

    /// Drawing one pick ahead for the prefetch hint changes no choice: the pick takes the
    /// index the generator's next number gives, as a pick that draws at once would, and the
    /// hint names the job the next pick takes when the queue keeps its length.
    #[test]
    fn a_random_pick_takes_the_generators_next_number_and_hints_the_one_after() {
        let mut uniform = Uniform::new(SplitMix64::new(7));
        let mut draws = SplitMix64::new(7);
        let mut model: Vec<u64> = (0..50).collect();
        uniform.ready = model.clone();
        for round in 0..200 {
            let len = model.len() as u64;
            let expected = model.swap_remove(scale(draws.next_u64(), len) as usize);
            let mut hinted = None;
            let taken = uniform.pop(|job| *job, |job| hinted = Some(*job)).unwrap();
            assert_eq!(taken, expected, "pick {round}");
            // The job queued again at the back keeps the length, as a yield does.
            model.push(taken);
            uniform.push(taken);
            assert_eq!(uniform.ready, model);
            // The next pick's index; the last one is where the job just taken went back,
            // whose memory is at hand: no hint then.
            let next = scale(draws.clone().next_u64(), len) as usize;
            let expected_hint = (next < model.len() - 1).then(|| model[next]);
            assert_eq!(hinted, expected_hint, "pick {round}");
        }
    }
}
