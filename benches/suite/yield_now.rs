//! yield: `tasks` tasks each yield `yields` times, all runnable at once.
//!
//! Measures the scheduler's round trip: wake, queue, poll. Unit: ns per yield.

use std::time::Instant;

use super::{Runtime, floor, per_unit, tokio_runtime, treeloop_runtime};

/// Runs one sample; returns ns per yield.
pub fn run(runtime: Runtime, tasks: usize, yields: usize) -> f64 {
    let (elapsed, total) = match runtime {
        Runtime::Treeloop => treeloop_runtime().block_on(async {
            let start = Instant::now();
            let handles: Vec<_> = (0..tasks)
                .map(|_| {
                    treeloop::spawn(async move {
                        for _ in 0..yields {
                            treeloop::yield_now().await.expect("nothing cancels yield");
                        }
                        yields
                    })
                })
                .collect();
            let mut total = 0;
            for handle in handles {
                total += handle.await.expect("a yield task failed");
            }
            (start.elapsed(), total)
        }),
        Runtime::Tokio => tokio_runtime().block_on(async {
            let start = Instant::now();
            let handles: Vec<_> = (0..tasks)
                .map(|_| {
                    tokio::spawn(async move {
                        for _ in 0..yields {
                            tokio::task::yield_now().await;
                        }
                        yields
                    })
                })
                .collect();
            let mut total = 0;
            for handle in handles {
                total += handle.await.expect("a yield task failed");
            }
            (start.elapsed(), total)
        }),
        Runtime::AsyncExecutor => {
            let executor = async_executor::LocalExecutor::new();
            async_io::block_on(executor.run(async {
                let start = Instant::now();
                let handles: Vec<_> = (0..tasks)
                    .map(|_| {
                        executor.spawn(async move {
                            for _ in 0..yields {
                                futures_lite::future::yield_now().await;
                            }
                            yields
                        })
                    })
                    .collect();
                let mut total = 0;
                for handle in handles {
                    total += handle.await;
                }
                (start.elapsed(), total)
            }))
        }
        Runtime::Floor => floor::block_on(async move {
            let start = Instant::now();
            let handles: Vec<_> = (0..tasks)
                .map(|_| {
                    floor::spawn(async move {
                        for _ in 0..yields {
                            futures_lite::future::yield_now().await;
                        }
                        yields
                    })
                })
                .collect();
            let mut total = 0;
            for handle in handles {
                total += handle.await;
            }
            (start.elapsed(), total)
        }),
    };
    assert_eq!(total, tasks * yields, "yield: a task yielded too few times");
    per_unit(elapsed, tasks * yields)
}
