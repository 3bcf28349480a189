//! cancel_tree: a root with `children` children, each with `leaves` leaves waiting forever;
//! cancel the root and time until every task has finished its cleanup.
//!
//! Each runtime cancels the way its users would:
//! - treeloop: `JoinHandle::cancel` on the root; the scheduler marks the subtree, every
//!   leaf's `cancelled()` returns, and each leaf runs an *async* cleanup (one yield inside a
//!   `shield`). Awaiting the root's handle returns once the whole tree has finished (R2).
//! - tokio: a tokio-util `CancellationToken` per task (children and leaves hold child tokens
//!   of their parent's) and a `JoinSet` per parent; leaves run the same async cleanup (one
//!   yield) and parents drain their `JoinSet` before returning.
//! - async-executor: drop the root's `Task`, which drops the children's, which drop the
//!   leaves'; cleanup is a synchronous `Drop` guard, as async cleanup cannot run there.
//! - the async-task floor: tokio's shape with the least bookkeeping that does it: one shared
//!   flag and the leaves' wakers in one `Vec` instead of a token per task, and each parent
//!   awaiting its children's handles in order instead of a `JoinSet`; leaves run the same
//!   async cleanup (one yield).
//!
//! A counter of finished cleanups must reach `children * leaves`. Setup (spawning, and
//! waiting until every leaf is parked) is not timed. Unit: ns per leaf.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use super::{Runtime, floor, per_unit, tokio_runtime, treeloop_runtime};

/// Runs one sample; returns ns per leaf from the cancel to the last cleanup.
pub fn run(runtime: Runtime, children: usize, leaves: usize) -> f64 {
    let total = children * leaves;
    let (elapsed, cleaned) = match runtime {
        Runtime::Treeloop => on_treeloop(children, leaves),
        Runtime::Tokio => on_tokio(children, leaves),
        Runtime::AsyncExecutor => on_async_executor(children, leaves),
        Runtime::Floor => on_floor(children, leaves),
    };
    assert_eq!(cleaned, total, "cancel_tree: a leaf missed its cleanup");
    per_unit(elapsed, total)
}

fn on_treeloop(children: usize, leaves: usize) -> (Duration, usize) {
    let started = Rc::new(Cell::new(0));
    let cleaned = Rc::new(Cell::new(0));
    treeloop_runtime().block_on(async {
        let root = treeloop::spawn({
            let (started, cleaned) = (started.clone(), cleaned.clone());
            async move {
                for _ in 0..children {
                    let (started, cleaned) = (started.clone(), cleaned.clone());
                    // The handles are dropped: a task stays its parent's child anyway,
                    // and a parent finishes only after its children (R2).
                    drop(treeloop::spawn(async move {
                        for _ in 0..leaves {
                            let (started, cleaned) = (started.clone(), cleaned.clone());
                            drop(treeloop::spawn(async move {
                                started.set(started.get() + 1);
                                let _: treeloop::Cancelled = treeloop::cancelled().await;
                                treeloop::shield(treeloop::yield_now())
                                    .await
                                    .expect("a shield hides the cancel");
                                cleaned.set(cleaned.get() + 1);
                            }));
                        }
                        treeloop::cancelled().await
                    }));
                }
                treeloop::cancelled().await
            }
        });
        while started.get() < children * leaves {
            treeloop::yield_now()
                .await
                .expect("the root is not cancelled");
        }
        let start = Instant::now();
        root.cancel();
        root.await.expect("the root task failed");
        (start.elapsed(), cleaned.get())
    })
}

fn on_tokio(children: usize, leaves: usize) -> (Duration, usize) {
    use tokio::task::{JoinSet, yield_now};
    use tokio_util::sync::CancellationToken;
    let started = Arc::new(AtomicUsize::new(0));
    let cleaned = Arc::new(AtomicUsize::new(0));
    tokio_runtime().block_on(async {
        let token = CancellationToken::new();
        let root = tokio::spawn({
            let (token, started, cleaned) = (token.clone(), started.clone(), cleaned.clone());
            async move {
                let mut child_tasks = JoinSet::new();
                for _ in 0..children {
                    let token = token.child_token();
                    let (started, cleaned) = (started.clone(), cleaned.clone());
                    child_tasks.spawn(async move {
                        let mut leaf_tasks = JoinSet::new();
                        for _ in 0..leaves {
                            let token = token.child_token();
                            let (started, cleaned) = (started.clone(), cleaned.clone());
                            leaf_tasks.spawn(async move {
                                started.fetch_add(1, Relaxed);
                                token.cancelled().await;
                                yield_now().await;
                                cleaned.fetch_add(1, Relaxed);
                            });
                        }
                        token.cancelled().await;
                        while let Some(leaf) = leaf_tasks.join_next().await {
                            leaf.expect("a leaf task failed");
                        }
                    });
                }
                token.cancelled().await;
                while let Some(child) = child_tasks.join_next().await {
                    child.expect("a child task failed");
                }
            }
        });
        while started.load(Relaxed) < children * leaves {
            yield_now().await;
        }
        let start = Instant::now();
        token.cancel();
        root.await.expect("the root task failed");
        (start.elapsed(), cleaned.load(Relaxed))
    })
}

/// Counts a leaf's cleanup when its future is dropped.
struct CleanupOnDrop(Rc<Cell<usize>>);

impl Drop for CleanupOnDrop {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

fn on_async_executor(children: usize, leaves: usize) -> (Duration, usize) {
    use async_executor::{LocalExecutor, Task};
    use futures_lite::future::{pending, yield_now};
    let started = Rc::new(Cell::new(0));
    let cleaned = Rc::new(Cell::new(0));
    // In an `Rc` so that tasks can spawn: a `LocalExecutor` borrowed by its own tasks would
    // have to outlive them.
    let executor = Rc::new(LocalExecutor::new());
    async_io::block_on(executor.run(async {
        let root = executor.spawn({
            let (executor, started, cleaned) = (executor.clone(), started.clone(), cleaned.clone());
            async move {
                let child_tasks: Vec<Task<()>> = (0..children)
                    .map(|_| {
                        let (spawner, started, cleaned) =
                            (executor.clone(), started.clone(), cleaned.clone());
                        executor.spawn(async move {
                            let leaf_tasks: Vec<Task<()>> = (0..leaves)
                                .map(|_| {
                                    let (started, cleaned) = (started.clone(), cleaned.clone());
                                    spawner.spawn(async move {
                                        let _cleanup = CleanupOnDrop(cleaned);
                                        started.set(started.get() + 1);
                                        pending::<()>().await;
                                    })
                                })
                                .collect();
                            pending::<()>().await;
                            drop(leaf_tasks);
                        })
                    })
                    .collect();
                pending::<()>().await;
                drop(child_tasks);
            }
        });
        while started.get() < children * leaves {
            yield_now().await;
        }
        let start = Instant::now();
        drop(root);
        while cleaned.get() < children * leaves {
            yield_now().await;
        }
        (start.elapsed(), cleaned.get())
    }))
}

/// The floor's cancel signal: a flag, and the wakers of the tasks waiting for it.
#[derive(Default)]
struct Signal {
    set: Cell<bool>,
    waiting: RefCell<Vec<Waker>>,
}

impl Signal {
    async fn wait(&self) {
        poll_fn(|cx| {
            if self.set.get() {
                Poll::Ready(())
            } else {
                self.waiting.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
    }

    fn raise(&self) {
        self.set.set(true);
        for waker in self.waiting.take() {
            waker.wake();
        }
    }
}

fn on_floor(children: usize, leaves: usize) -> (Duration, usize) {
    use futures_lite::future::yield_now;
    let started = Rc::new(Cell::new(0));
    let cleaned = Rc::new(Cell::new(0));
    let signal = Rc::new(Signal::default());
    floor::block_on({
        let cleaned = cleaned.clone();
        async move {
            let root = floor::spawn({
                let (signal, started, cleaned) = (signal.clone(), started.clone(), cleaned.clone());
                async move {
                    let child_tasks: Vec<_> = (0..children)
                        .map(|_| {
                            let (signal, started, cleaned) =
                                (signal.clone(), started.clone(), cleaned.clone());
                            floor::spawn(async move {
                                let leaf_tasks: Vec<_> = (0..leaves)
                                    .map(|_| {
                                        let (signal, started, cleaned) =
                                            (signal.clone(), started.clone(), cleaned.clone());
                                        floor::spawn(async move {
                                            started.set(started.get() + 1);
                                            signal.wait().await;
                                            yield_now().await;
                                            cleaned.set(cleaned.get() + 1);
                                        })
                                    })
                                    .collect();
                                signal.wait().await;
                                for leaf in leaf_tasks {
                                    leaf.await;
                                }
                            })
                        })
                        .collect();
                    signal.wait().await;
                    for child in child_tasks {
                        child.await;
                    }
                }
            });
            while started.get() < children * leaves {
                yield_now().await;
            }
            let start = Instant::now();
            signal.raise();
            root.await;
            (start.elapsed(), cleaned.get())
        }
    })
}
