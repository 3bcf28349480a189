//! Side-by-side benchmarks: treeloop against tokio (current_thread) and async-executor
//! (`LocalExecutor` + async-io), in one process, interleaved round by round, on seven
//! workloads (spawn_join, yield, ping_pong, timers, tcp_echo, cancel_tree, spawn_memory).
//! Prints a markdown table of medians, min and max per unit, and each runtime's ratio to
//! the best peer. What each workload measures: `benches/README.md`.
//!
//! Run with: `cargo bench --bench side_by_side` (about a minute), or
//! `cargo bench --bench side_by_side -- --quick` (seconds); add workload names to select.

mod suite;

fn main() {
    suite::harness::main();
}
