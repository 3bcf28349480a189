//! spawn_join: spawn `n` tasks that each return a `u64`, then await every handle in order.
//!
//! Measures a task's whole life: allocation, first schedule, poll, completion, join.
//! Unit: ns per task.

use std::time::Instant;

use super::{Runtime, floor, per_unit, tokio_runtime, treeloop_runtime};

/// Runs one sample; returns ns per task.
pub fn run(runtime: Runtime, n: usize) -> f64 {
    let (elapsed, sum) = match runtime {
        Runtime::Treeloop => treeloop_runtime().block_on(async {
            let start = Instant::now();
            let handles: Vec<_> = (0..n as u64)
                .map(|i| treeloop::spawn(async move { i }))
                .collect();
            let mut sum = 0;
            for handle in handles {
                sum += handle.await.expect("a spawn_join task failed");
            }
            (start.elapsed(), sum)
        }),
        Runtime::Tokio => tokio_runtime().block_on(async {
            let start = Instant::now();
            let handles: Vec<_> = (0..n as u64)
                .map(|i| tokio::spawn(async move { i }))
                .collect();
            let mut sum = 0;
            for handle in handles {
                sum += handle.await.expect("a spawn_join task failed");
            }
            (start.elapsed(), sum)
        }),
        Runtime::AsyncExecutor => {
            let executor = async_executor::LocalExecutor::new();
            async_io::block_on(executor.run(async {
                let start = Instant::now();
                let handles: Vec<_> = (0..n as u64)
                    .map(|i| executor.spawn(async move { i }))
                    .collect();
                let mut sum = 0;
                for handle in handles {
                    sum += handle.await;
                }
                (start.elapsed(), sum)
            }))
        }
        Runtime::Floor => floor::block_on(async move {
            let start = Instant::now();
            let handles: Vec<_> = (0..n as u64)
                .map(|i| floor::spawn(async move { i }))
                .collect();
            let mut sum = 0;
            for handle in handles {
                sum += handle.await;
            }
            (start.elapsed(), sum)
        }),
    };
    let n = n as u64;
    assert_eq!(sum, n * n.saturating_sub(1) / 2, "spawn_join: wrong sum");
    per_unit(elapsed, n as usize)
}
