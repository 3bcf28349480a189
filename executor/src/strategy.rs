//! Which ready job runs next: FIFO, or chosen from a seed (deterministic mode, SPEC §5).
//!
//! # Ground rules
//!
//! - Every choice comes from [`SplitMix64`], seeded once: the same seed and the same program
//!   make the same choices, run after run, build after build (no `std` hasher, no address,
//!   no clock is ever consulted).
//! - [`Strategy::Fifo`] makes no choice at all and costs nothing: it is the default.
//! - [`Strategy::Random`] picks uniformly among the ready jobs: good at finding bugs that
//!   need *some* unusual order.
//! - [`Strategy::Pct`] is probabilistic concurrency testing (Burckhardt et al., ASPLOS 2010):
//!   each task gets a random priority, the highest-priority ready job always runs, and at
//!   `depth - 1` random steps the running task drops to a low priority. A bug that needs `d`
//!   specific ordering constraints is found with probability at least 1/(n·k^(d-1)) per run.

use std::collections::HashMap;
use std::collections::VecDeque;

/// How the scheduler picks the next ready job.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Strategy {
    /// First woken, first run. No randomness.
    #[default]
    Fifo,
    /// Uniformly random among the ready jobs.
    Random,
    /// Priority-based probabilistic concurrency testing with bug depth `depth` (≥ 1).
    Pct {
        /// How many ordering constraints the bugs sought need (1 = plain random priorities).
        depth: u32,
    },
}

/// The steps PCT spreads its priority changes over.
const PCT_STEPS: u64 = 10_000;

/// SplitMix64 (Steele, Lea, Flood 2014): a 64-bit state, one addition and three
/// xor-shift-multiplies per number. Tiny, fast, and fully specified, so sequences are
/// stable forever. Not for cryptography.
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64 {
    /// The state; advanced by the golden-ratio increment each call.
    state: u64,
}

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), by Lemire's multiply-shift (its bias is below 2^-32 for
    /// the queue lengths seen here, and the result is deterministic either way).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// The strategy's state.
pub(crate) enum Picker {
    /// Front of the queue.
    Fifo,
    /// Uniform choice.
    Random(SplitMix64),
    /// PCT state.
    Pct(Pct),
}

/// Priority-based probabilistic concurrency testing.
pub(crate) struct Pct {
    /// The generator.
    rng: SplitMix64,
    /// Each job's priority, by trace id; high runs first. Assigned on first sight.
    priority: HashMap<u64, u64>,
    /// Steps (picks) at which the picked job drops to a low priority, ascending.
    change_points: Vec<u64>,
    /// Picks made so far.
    step: u64,
    /// The bug depth.
    depth: u64,
}

impl Picker {
    pub(crate) fn new(strategy: Strategy, seed: u64) -> Picker {
        let mut rng = SplitMix64::new(seed);
        match strategy {
            Strategy::Fifo => Picker::Fifo,
            Strategy::Random => Picker::Random(rng),
            Strategy::Pct { depth } => {
                let depth = u64::from(depth.max(1));
                let mut change_points: Vec<u64> =
                    (1..depth).map(|_| 1 + rng.next_u64() % PCT_STEPS).collect();
                change_points.sort_unstable();
                Picker::Pct(Pct {
                    rng,
                    priority: HashMap::new(),
                    change_points,
                    step: 0,
                    depth,
                })
            }
        }
    }

    /// The index in `ready` of the job to run next; `id` gives a job's trace id.
    pub(crate) fn pick<J>(&mut self, ready: &VecDeque<J>, id: impl Fn(&J) -> u64) -> usize {
        match self {
            Picker::Fifo => 0,
            Picker::Random(rng) => rng.below(ready.len()),
            Picker::Pct(pct) => pct.pick(ready, id),
        }
    }
}

impl Pct {
    fn pick<J>(&mut self, ready: &VecDeque<J>, id: impl Fn(&J) -> u64) -> usize {
        self.step += 1;
        let mut best = (0, 0);
        for (index, job) in ready.iter().enumerate() {
            let job_id = id(job);
            let depth = self.depth;
            let rng = &mut self.rng;
            // Fresh tasks get a random priority above every change-point priority.
            let priority = *self
                .priority
                .entry(job_id)
                .or_insert_with(|| depth + (rng.next_u64() >> 1));
            if index == 0 || priority > best.1 {
                best = (index, priority);
            }
        }
        // At the i-th change point the chosen job drops to priority i (below all fresh ones).
        if let Some(position) = self.change_points.iter().position(|&s| s == self.step) {
            let chosen = id(&ready[best.0]);
            self.priority.insert(chosen, position as u64 + 1);
        }
        best.0
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
        assert!((0..1000).all(|_| rng.below(3) < 3));
    }
}
