//! Concurrency bugs ported to treeloop, and the check of one seeded run against one of them:
//! shared by tests/bug_benchmark.rs (the table of twelve bugs under every strategy) and
//! tests/pct.rs (PCT's own checks), which count the seeds that find them.
//!
//! A bug is an `async fn() -> bool`: `true` when the run's interleaving hit it. A run that
//! deadlocks (the runtime panics saying "treeloop deadlock") found its bug too.
#![allow(dead_code)] // each of the two test binaries uses a different subset

use std::cell::Cell;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Once;

use treeloop::sync::Mutex;
use treeloop::{Runtime, spawn, yield_now};

/// One run of a ported bug: `true` if this interleaving hit it.
pub type Bug = Pin<Box<dyn Future<Output = bool>>>;

/// The panic a test expects from a failing seed (tests/pct.rs's replay test): kept out of the
/// output like a deadlock's.
pub const TORN: &str = "the checker saw a torn pair";

/// Lost update: two tasks read a shared counter, yield, and write it back plus one. The bug:
/// both read before either writes, and the counter ends at 1.
pub async fn lost_update() -> bool {
    let counter = Rc::new(Cell::new(0));
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let counter = counter.clone();
            spawn(async move {
                let read = counter.get();
                yield_now().await.unwrap();
                counter.set(read + 1);
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    counter.get() != 2
}

/// Lock-order deadlock: one task takes `m1` then `m2`, the other `m2` then `m1`, each
/// yielding while it holds the first. The bug: each holds its first lock when it asks for
/// the second; a seeded run then reports the deadlock by panicking (counted as found).
pub async fn lock_order() -> bool {
    let m1 = Rc::new(Mutex::new(()));
    let m2 = Rc::new(Mutex::new(()));
    let forward = {
        let (m1, m2) = (m1.clone(), m2.clone());
        spawn(async move {
            let _first = m1.lock().await.unwrap();
            yield_now().await.unwrap();
            let _second = m2.lock().await.unwrap();
        })
    };
    let backward = spawn(async move {
        let _first = m2.lock().await.unwrap();
        yield_now().await.unwrap();
        let _second = m1.lock().await.unwrap();
    });
    forward.await.unwrap();
    backward.await.unwrap();
    false
}

/// Whether one seeded run of `bug` found it: it returned `true`, or it deadlocked.
pub fn found(runtime: &Runtime, bug: fn() -> Bug) -> bool {
    quiet_deadlocks();
    match panic::catch_unwind(AssertUnwindSafe(|| runtime.block_on(bug()))) {
        Ok(found) => found,
        Err(payload) if panic_text(&*payload).contains("treeloop deadlock") => true,
        Err(payload) => panic::resume_unwind(payload),
    }
}

/// A deadlocking seed's panic is a found bug here, not news: keep its message (the whole
/// tree) out of the output, and [`TORN`] too. Every other panic is printed as usual.
pub fn quiet_deadlocks() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let text = panic_text(info.payload());
            if !text.contains("treeloop deadlock") && text != TORN {
                default(info);
            }
        }));
    });
}

/// A panic payload's message, or `""` when it is not a string.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("")
}
