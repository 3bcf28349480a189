//! `test::rng`: random numbers for the program under test that replay with the run's seed.
//!
//! # Ground rules
//!
//! - Each [`Runtime`](crate::Runtime) owns one [`Streams`]: the seed of a deterministic
//!   runtime (`None` in an unseeded one) and how many generators it has handed out. While a
//!   `block_on` runs, this thread's `CURRENT` points at it (set by [`enter`], cleared by the
//!   guard, even when unwinding); `rng()` only reads it.
//! - A seeded generator is a function of the seed and of its index among the runtime's
//!   `rng()` calls, nothing else: not the task that asks, not the time, not the trace. So
//!   the scheduler (which orders the calls) and the seed together fix every number drawn.
//! - `rng()` never touches the executor: it takes no task number and records nothing, so a
//!   body's trace is the same whether or not it draws.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

thread_local! {
    /// The generators of the runtime whose `block_on` runs on this thread.
    static CURRENT: RefCell<Option<Rc<Streams>>> = const { RefCell::new(None) };
}

/// A runtime's source of generators.
#[derive(Debug)]
pub(crate) struct Streams {
    /// The seed of a deterministic runtime (0 for a replay without a seed); `None`: entropy.
    seed: Option<u64>,
    /// Generators handed out so far.
    handed_out: Cell<u64>,
}

impl Streams {
    /// The generators of a runtime with `seed` (`None`: unseeded).
    pub(crate) fn new(seed: Option<u64>) -> Rc<Streams> {
        Rc::new(Streams {
            seed,
            handed_out: Cell::new(0),
        })
    }

    /// How many seeded generators were handed out (none in an unseeded runtime).
    pub(crate) fn handed_out(&self) -> u64 {
        self.handed_out.get()
    }

    /// The next generator: the `n`th of a seeded runtime, or one from entropy.
    fn next(&self) -> fastrand::Rng {
        let Some(seed) = self.seed else {
            return fastrand::Rng::new();
        };
        let n = self.handed_out.get();
        self.handed_out.set(n + 1);
        fastrand::Rng::with_seed(stream_seed(seed, n))
    }
}

/// The seed of the `n`th generator under `seed`: both words mixed (SplitMix64's finaliser),
/// with a constant of its own so that the stream does not echo the scheduler's, which
/// draws from the bare seed.
fn stream_seed(seed: u64, n: u64) -> u64 {
    /// "test rng" in ASCII: keeps these streams apart from any other use of the seed.
    const DOMAIN: u64 = 0x7465_7374_2072_6e67;
    mix(mix(seed ^ DOMAIN).wrapping_add(n))
}

/// SplitMix64's output for state `z`: every input bit reaches every output bit.
fn mix(z: u64) -> u64 {
    treeloop_executor::SplitMix64::new(z).next_u64()
}

/// Restores this thread's previous generators when dropped.
pub(crate) struct EnterGuard(Option<Rc<Streams>>);

/// Makes `streams` this thread's generators until the guard is dropped.
pub(crate) fn enter(streams: &Rc<Streams>) -> EnterGuard {
    EnterGuard(CURRENT.with(|cell| cell.replace(Some(streams.clone()))))
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let previous = self.0.take();
        let _ = CURRENT.try_with(|cell| cell.replace(previous));
    }
}

/// A random number generator for the code under test, which replays with the run's seed.
///
/// In a seeded runtime ([`Builder::seed`](crate::Builder::seed), so every
/// [`test::check`](crate::test::check) seed), the numbers a generator yields depend only on
/// the seed and on how many times `rng()` was called before in that runtime: the same seed
/// draws the same numbers in every run, the replay line of a failing seed
/// (`TREELOOP_SEED=...`) included, and two calls give two different streams. A replay
/// without a seed ([`Builder::replay`](crate::Builder::replay)) draws as seed 0 does. In
/// an unseeded runtime the generator is seeded from entropy (as `fastrand::Rng::new`),
/// different in every run.
///
/// Calls are numbered in the order the scheduler makes them: call it where the order is
/// fixed (the body's start, or once per task as it starts) and keep the generator, rather
/// than calling it from tasks racing each other, and the streams stay tied to what uses
/// them even when the interleaving changes. Calling it takes no task number and records
/// nothing: a body's [trace](crate::Runtime::trace) is the same with or without it.
///
/// ```
/// use treeloop::test::{self, Rng};
///
/// fn shuffled(rng: &mut Rng, mut keys: Vec<u32>) -> Vec<u32> {
///     rng.shuffle(&mut keys);
///     keys
/// }
///
/// let run = |seed| {
///     let runtime = treeloop::Builder::new().seed(seed).build().unwrap();
///     runtime.block_on(async {
///         let mut rng = test::rng();
///         let delay = rng.u64(1..=10);
///         (delay, shuffled(&mut rng, (0..8).collect()))
///     })
/// };
/// // The same seed draws the same numbers in every run.
/// assert_eq!(run(7), run(7));
/// ```
///
/// # Panics
///
/// Outside a treeloop runtime: the generator comes from the runtime's seed.
#[track_caller]
pub fn rng() -> fastrand::Rng {
    let streams = CURRENT.with(|cell| cell.borrow().clone());
    match streams {
        Some(streams) => streams.next(),
        None => panic!(
            "treeloop::test::rng called outside a treeloop runtime: call it inside the test \
             body (`treeloop::test::check`, `Runtime::block_on`) or a task spawned from it, \
             where it draws from the runtime's seed; outside one, use \
             `treeloop::test::Rng::with_seed`"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_differ_by_seed_and_by_index_and_repeat() {
        let draws = |seed, n| {
            let mut rng = fastrand::Rng::with_seed(stream_seed(seed, n));
            [rng.u64(..), rng.u64(..)]
        };
        assert_eq!(draws(3, 0), draws(3, 0));
        assert_ne!(draws(3, 0), draws(3, 1));
        assert_ne!(draws(3, 0), draws(4, 0));
        // Not what a generator seeded with the bare seed draws.
        let mut bare = fastrand::Rng::with_seed(3);
        assert_ne!(draws(3, 0), [bare.u64(..), bare.u64(..)]);
    }
}
