//! The property tests' driver: the case count and seed from the environment, proptest's
//! runner, and on failure the minimal tree with a replay command.

use std::cell::Cell;

use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};

use crate::check::{Order, check_case};
use crate::generate::arb_case;
use crate::outcome::silence_injected_panics;
use crate::plan::{Case, Plan};

/// Cases per property test in the default run.
pub const DEFAULT_CASES: u32 = 400;

/// The default run's seed; a long run draws its own unless `TREELOOP_TORTURE_SEED` is set.
pub const DEFAULT_SEED: u64 = 0x5eed_7ee5;

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a number")),
    )
}

/// 32 seed bytes for proptest's ChaCha generator, from one number.
pub fn proptest_rng(seed: u64) -> TestRng {
    let mut bytes = [0u8; 32];
    let mut state = seed;
    for chunk in bytes.chunks_mut(8) {
        // SplitMix64, to spread one number over the whole seed.
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

/// Runs the property over `TREELOOP_TORTURE_CASES` (default [`DEFAULT_CASES`]) generated
/// cases; a failure shrinks to a minimal tree and panics with it and the seed.
pub fn torture(test: &str, stream: u64, order: fn(&Case) -> Order) {
    silence_injected_panics();
    let long_run = env_number("TREELOOP_TORTURE_CASES");
    let cases = long_run.map_or(DEFAULT_CASES, |n| {
        u32::try_from(n).expect("case count fits u32")
    });
    let seed = env_number("TREELOOP_TORTURE_SEED").unwrap_or_else(|| match long_run {
        None => DEFAULT_SEED,
        Some(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    });
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(config, proptest_rng(seed ^ stream));
    let tried = Cell::new(0usize);
    let biggest = Cell::new(0usize);
    let started = std::time::Instant::now();
    let result = runner.run(&arb_case(), |case| {
        tried.set(tried.get() + 1);
        biggest.set(biggest.get().max(Plan::new(&case.tree).tasks()));
        check_case(&case, order(&case))
    });
    match result {
        Ok(()) => eprintln!(
            "{test}: {cases} cases passed in {:.1?} (seed {seed}; largest tree: {} tasks)",
            started.elapsed(),
            biggest.get()
        ),
        Err(TestError::Fail(why, case)) => panic!(
            "{test} failed (after {} runs, shrinking included).\n{why}\n\nminimal case: {case:?}\n\
             replay: TREELOOP_TORTURE_SEED={seed} TREELOOP_TORTURE_CASES={cases} \
             cargo test --test torture_trees {test}",
            tried.get()
        ),
        Err(TestError::Abort(why)) => panic!("{test} aborted: {why} (seed {seed})"),
    }
}
