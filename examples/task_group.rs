//! A task group (asyncio's `TaskGroup`, trio's nursery) in which one worker fails.
//!
//! Four workers download "files" in a `scope`. Worker `c` hits a corrupt file and returns an
//! error. That first failure cancels the rest of the group: every other worker gets
//! `Err(Cancelled)` at its next await point and runs its cleanup, which itself awaits
//! (removing a partial file) inside `shield(..)`. One cleanup fails too. The scope returns
//! only after every worker has finished, with the first error *and* the cleanup error: no
//! error is lost, and the cancellations themselves are not reported as errors.
//!
//! Run with: cargo run --example task_group

use std::io;
use std::time::Duration;

use treeloop::time::{Instant, sleep};
use treeloop::{ScopeError, scope, shield};

/// Each worker's name and how long one chunk of its download takes.
const WORKERS: [(&str, u64); 4] = [("a", 120), ("b", 90), ("c", 100), ("d", 150)];

fn say(start: Instant, message: impl std::fmt::Display) {
    println!("[{:5.3}s] {message}", start.elapsed().as_secs_f64());
}

/// Downloads chunks until done or cancelled; `c` fails on its third chunk.
async fn download(start: Instant, name: &'static str, chunk: Duration) -> io::Result<u32> {
    let mut chunks = 0;
    loop {
        if let Err(cancelled) = sleep(chunk).await {
            say(
                start,
                format!("  worker {name}: {cancelled} after {chunks} chunks"),
            );
            // Cleanup that awaits: it must be shielded, or it would fail at once.
            shield(sleep(Duration::from_millis(40))).await?;
            if name == "d" {
                let err = io::Error::other("worker d: could not remove its partial file");
                say(start, format!("  worker {name}: cleanup failed: {err}"));
                return Err(err);
            }
            say(start, format!("  worker {name}: removed its partial file"));
            return Err(cancelled.into());
        }
        chunks += 1;
        if name == "c" && chunks == 3 {
            say(start, "  worker c: corrupt chunk, failing");
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "worker c: corrupt chunk",
            ));
        }
    }
}

fn main() {
    let start = Instant::now();
    println!("a group of 4 workers; worker c fails at ~0.3s; the group cancels the others\n");
    let result = treeloop::block_on(scope(|group| async move {
        for (name, ms) in WORKERS {
            group
                .spawn(download(start, name, Duration::from_millis(ms)))
                .map_err(io::Error::other)?;
        }
        say(start, "group: 4 workers started");
        Ok(())
    }));
    match result {
        Ok(_) => say(start, "group: every worker finished"),
        Err(ScopeError::Failed { first, rest }) => {
            say(start, format!("group: failed with: {first}"));
            for later in &rest {
                say(start, format!("group: also (kept, not lost): {later}"));
            }
        }
        Err(ScopeError::Cancelled(cancelled)) => say(start, format!("group: {cancelled}")),
    }
}
