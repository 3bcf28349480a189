//! spawn_memory: resident-set growth for `n` idle tasks, each holding 64 bytes across its
//! await.
//!
//! Every task is polled once (it counts itself) and then waits forever on `pending()`. On
//! treeloop the whole future is wrapped in `or_cancel()`, as the performance issue measures
//! it (each task a child of one holder task that is cancelled at the end, which ends them);
//! tokio's and async-executor's are detached tasks that the runtime drops at the end; the
//! async-task floor's handles are dropped at the end, which cancels them.
//! The resident set is read before the first spawn and once every task has been polled, so
//! it counts the task, its future, the scheduler's bookkeeping (treeloop's tree node) and
//! the allocator's overhead. The bench runs each sample in a fresh process: a process whose
//! allocator already holds pages freed by an earlier sample would grow by nothing.
//! Unit: bytes per task.

use std::cell::Cell;
use std::hint::black_box;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use treeloop::FutureExt;

use super::proc::resident_bytes;
use super::{Runtime, floor, tokio_runtime, treeloop_runtime};

/// What each task holds across its await.
const PAYLOAD: usize = 64;

/// Runs one sample; returns resident bytes per idle task.
pub fn run(runtime: Runtime, n: usize) -> f64 {
    let (growth, idle) = match runtime {
        Runtime::Treeloop => treeloop_runtime().block_on(async {
            let polled = Rc::new(Cell::new(0));
            let before = resident_bytes();
            let holder = treeloop::spawn({
                let polled = polled.clone();
                async move {
                    for i in 0..n {
                        let polled = polled.clone();
                        let task = async move {
                            let payload = [i as u8; PAYLOAD];
                            polled.set(polled.get() + 1);
                            std::future::pending::<()>().await;
                            black_box(payload);
                        };
                        drop(treeloop::spawn(task.or_cancel()));
                    }
                    treeloop::cancelled().await
                }
            });
            while polled.get() < n {
                treeloop::yield_now().await.expect("not cancelled");
            }
            let growth = resident_bytes() - before;
            holder.cancel();
            holder.await.expect("the holder task failed");
            (growth, polled.get())
        }),
        Runtime::Tokio => tokio_runtime().block_on(async {
            let polled = Arc::new(AtomicUsize::new(0));
            let before = resident_bytes();
            for i in 0..n {
                let polled = polled.clone();
                drop(tokio::spawn(async move {
                    let payload = [i as u8; PAYLOAD];
                    polled.fetch_add(1, Relaxed);
                    std::future::pending::<()>().await;
                    black_box(payload);
                }));
            }
            while polled.load(Relaxed) < n {
                tokio::task::yield_now().await;
            }
            (resident_bytes() - before, polled.load(Relaxed))
        }),
        Runtime::AsyncExecutor => {
            let executor = async_executor::LocalExecutor::new();
            let polled = Rc::new(Cell::new(0));
            async_io::block_on(executor.run(async {
                let before = resident_bytes();
                for i in 0..n {
                    let polled = polled.clone();
                    executor
                        .spawn(async move {
                            let payload = [i as u8; PAYLOAD];
                            polled.set(polled.get() + 1);
                            std::future::pending::<()>().await;
                            black_box(payload);
                        })
                        .detach();
                }
                while polled.get() < n {
                    futures_lite::future::yield_now().await;
                }
                (resident_bytes() - before, polled.get())
            }))
        }
        Runtime::Floor => floor::block_on(async move {
            let polled = Rc::new(Cell::new(0));
            let before = resident_bytes();
            let tasks: Vec<_> = (0..n)
                .map(|i| {
                    let polled = polled.clone();
                    floor::spawn(async move {
                        let payload = [i as u8; PAYLOAD];
                        polled.set(polled.get() + 1);
                        std::future::pending::<()>().await;
                        black_box(payload);
                    })
                })
                .collect();
            while polled.get() < n {
                futures_lite::future::yield_now().await;
            }
            // Less the handles' own `Vec` (8 bytes a task), which the peers do not keep.
            let handles = tasks.capacity() * size_of::<async_task::Task<()>>();
            let growth = resident_bytes() - before - handles as i64;
            drop(tasks);
            (growth, polled.get())
        }),
    };
    assert_eq!(idle, n, "spawn_memory: a task was never polled");
    growth as f64 / n as f64
}
