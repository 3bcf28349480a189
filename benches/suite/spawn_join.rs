//! spawn_join: spawn `n` tasks that each return a `u64`, then await every handle in order.
//!
//! Measures a task's whole life: allocation, first schedule, poll, completion, join.
//! The scaling run repeats the spawn-then-join batch `batches` times in one sample, so that
//! a small batch is measured over as much work as a large one (a lone batch of 10,000 tasks
//! takes 2 ms, and its per-task figure then mostly says how warm the machine was).
//! Unit: ns per task.

use std::time::Instant;

use super::{Runtime, floor, per_unit, tokio_runtime, treeloop_runtime};

/// Runs one sample; returns ns per task.
pub fn run(runtime: Runtime, n: usize, batches: usize) -> f64 {
    let (elapsed, sum) = match runtime {
        Runtime::Treeloop => treeloop_runtime().block_on(async {
            let start = Instant::now();
            let mut sum = 0;
            for _ in 0..batches {
                let handles: Vec<_> = (0..n as u64)
                    .map(|i| treeloop::spawn(async move { i }))
                    .collect();
                for handle in handles {
                    sum += handle.await.expect("a spawn_join task failed");
                }
            }
            (start.elapsed(), sum)
        }),
        Runtime::Tokio => tokio_runtime().block_on(async {
            let start = Instant::now();
            let mut sum = 0;
            for _ in 0..batches {
                let handles: Vec<_> = (0..n as u64)
                    .map(|i| tokio::spawn(async move { i }))
                    .collect();
                for handle in handles {
                    sum += handle.await.expect("a spawn_join task failed");
                }
            }
            (start.elapsed(), sum)
        }),
        Runtime::AsyncExecutor => {
            let executor = async_executor::LocalExecutor::new();
            async_io::block_on(executor.run(async {
                let start = Instant::now();
                let mut sum = 0;
                for _ in 0..batches {
                    let handles: Vec<_> = (0..n as u64)
                        .map(|i| executor.spawn(async move { i }))
                        .collect();
                    for handle in handles {
                        sum += handle.await;
                    }
                }
                (start.elapsed(), sum)
            }))
        }
        Runtime::Floor => floor::block_on(async move {
            let start = Instant::now();
            let mut sum = 0;
            for _ in 0..batches {
                let handles: Vec<_> = (0..n as u64)
                    .map(|i| floor::spawn(async move { i }))
                    .collect();
                for handle in handles {
                    sum += handle.await;
                }
            }
            (start.elapsed(), sum)
        }),
    };
    let (tasks, batch_sum) = (n * batches, n as u64 * (n as u64).saturating_sub(1) / 2);
    assert_eq!(sum, batch_sum * batches as u64, "spawn_join: wrong sum");
    per_unit(elapsed, tasks)
}
