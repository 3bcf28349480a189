//! A hint to the processor: start loading a task's memory now, because it will be polled
//! next. The executor's one `unsafe` block.
//!
//! # Why it exists
//!
//! A seeded run under `Strategy::Random` polls ready tasks in a random order. With more
//! tasks than the cache holds (10,000 tasks of ~216 bytes are 2.2 MB, against 1 MB of L2
//! per core here), every pick's first read of its task's header misses the cache, and the
//! hardware prefetcher, which makes FIFO's walk over tasks spawned in order cheap, cannot
//! guess a random order. Issue 17 asks a Random run for at most 1.5x the time of a normal
//! one; measured with 10,000 ready tasks yielding 100 times, it took 1.53-1.74x (47-55 ns
//! per poll against 30-32), and perf put the stall on that header read.
//!
//! Normal mode has the same miss whenever tasks are woken in another order than the one
//! they were allocated in: timers by deadline, sockets by readiness. FIFO's next pick is
//! known exactly (the queue's front), so each pick hints the next one's header too. The
//! timers workload (100,000 tasks each sleeping once, woken in deadline order) went from
//! 743-781 to 675-694 ns per timer, 0.85-0.91x to 0.78-0.81x async-executor, 3 interleaved
//! runs each; the hint costs 12 instructions per pick where the cache already holds every
//! task (yield, 1,000 tasks: 28.8-29.1 -> 29.6-31.9 ns, still 0.72-0.78x tokio).
//!
//! Safe code cannot hide the latency: a plain read of the next pick's header, one pick
//! ahead, is a demand load, and a load that misses holds the poll's instructions up behind
//! it (measured: it made the pick slower). A prefetch instruction is not a load: it asks
//! for the line and retires at once. With it, the same run takes 39.6-42 ns per poll,
//! 1.32-1.38x normal mode (`what_a_pick` in tests/pct.rs, 3 rounds alternating with a build
//! without the hint, which gave 1.56-1.58x; ARCHITECTURE.md, "Optimisations").
//!
//! # Why it is sound
//!
//! See the `SAFETY` paragraph below. Elsewhere than on x86_64 the hint compiles to nothing.

/// Asks the processor to bring the cache line holding `value` into the cache. It reads
/// nothing, writes nothing and cannot fault; a wrong guess only costs the bandwidth of one
/// line.
#[inline(always)]
pub(crate) fn prefetch<T>(value: &T) {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse"))]
    #[allow(unsafe_code)]
    // SAFETY: `_mm_prefetch` is an `unsafe fn` only because it is declared with
    // `#[target_feature(enable = "sse")]`: calling it is sound wherever SSE is available,
    // and the `cfg` above compiles this call only where the build enables SSE (every
    // x86_64 target does: SSE and SSE2 are part of its baseline). The instruction itself
    // (`prefetcht0`) has no architectural effect: it neither reads nor writes memory
    // observably and never faults, whatever the address; here the address is that of a
    // live reference anyway.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast::<i8>());
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse")))]
    let _ = value;
}
