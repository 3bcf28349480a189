//! Graceful shutdown of a task tree: root → 3 services → 7 workers, all driven by timers.
//!
//! After 2 seconds the root cancels each service. Cancelling a service marks its whole
//! subtree, so its workers get `Err(Cancelled)` at their next `sleep`. Each worker then
//! flushes its results inside `shield(..)` (cleanup that awaits); each service waits for its
//! workers, again inside a shield, then closes; the root finishes last, and `block_on`
//! returns only once every task has finished its cleanup.
//!
//! Run with: cargo run --release --example graceful_shutdown

use std::cell::Cell;
use std::error::Error;
use std::fmt::Display;
use std::rc::Rc;
use std::time::Duration;

use treeloop::time::{Instant, sleep};
use treeloop::{Cancelled, JoinHandle, shield, spawn};

/// Each service, and its workers with the time one job takes them (in ms).
const SERVICES: [(&str, &[(&str, u64)]); 3] = [
    ("http", &[("accept", 380), ("conn-1", 260), ("conn-2", 310)]),
    ("db-pool", &[("conn-a", 340), ("conn-b", 450)]),
    ("metrics", &[("collector", 220), ("exporter", 470)]),
];

/// How long the tree runs before the root shuts it down.
const RUN_FOR: Duration = Duration::from_secs(2);

/// Writing one buffered result during a worker's cleanup.
const FLUSH_PER_RESULT: Duration = Duration::from_millis(30);

/// Shared by every task: the start time for timestamps, and how many tasks finished cleanup.
#[derive(Clone)]
struct Log {
    start: Instant,
    cleaned_up: Rc<Cell<usize>>,
}

impl Log {
    /// Prints `message` with a timestamp, indented by the task's depth in the tree.
    fn say(&self, depth: usize, message: impl Display) {
        let secs = self.start.elapsed().as_secs_f64();
        println!("[{secs:4.2}s] {}{message}", "    ".repeat(depth));
    }

    /// Prints a task's last line: its cleanup has finished.
    fn finished(&self, depth: usize, message: impl Display) {
        self.say(depth, message);
        self.cleaned_up.set(self.cleaned_up.get() + 1);
    }
}

/// Does one job every `period` until the task is cancelled; returns the job count and why.
async fn work_until_cancelled(period: Duration) -> (u32, Cancelled) {
    let mut jobs = 0;
    loop {
        if let Err(cancelled) = sleep(period).await {
            return (jobs, cancelled);
        }
        jobs += 1;
    }
}

/// A worker: one result per job, kept in memory until shutdown flushes them.
async fn worker(log: Log, path: String, period: Duration) -> u32 {
    let (jobs, _cancelled) = work_until_cancelled(period).await;
    log.say(2, format!("{path}: cancelled after {jobs} jobs, flushing"));
    // Outside the shield this sleep would return Err(Cancelled) at once.
    match shield(sleep(FLUSH_PER_RESULT * jobs)).await {
        Ok(()) => log.finished(2, format!("{path}: flushed {jobs} results")),
        Err(err) => log.finished(2, format!("{path}: flush failed: {err}")),
    }
    jobs
}

/// A service: starts its workers, runs health checks until cancelled, then waits for its
/// workers before closing itself.
async fn service(log: Log, name: &'static str, workers: &'static [(&'static str, u64)]) -> u32 {
    let handles: Vec<JoinHandle<u32>> = workers
        .iter()
        .map(|&(worker_name, ms)| {
            let path = format!("{name}/{worker_name}");
            spawn(worker(log.clone(), path, Duration::from_millis(ms)))
        })
        .collect();
    log.say(1, format!("{name}: started {} workers", handles.len()));

    let (_checks, cancelled) = work_until_cancelled(Duration::from_millis(500)).await;
    log.say(1, format!("{name}: {cancelled}; waiting for workers"));
    // A join in a cancelled region returns Err at once; shielded, it waits for the worker.
    let jobs = shield(async {
        let mut total = 0;
        for handle in handles {
            match handle.await {
                Ok(jobs) => total += jobs,
                Err(err) => log.say(1, format!("{name}: a worker failed: {err}")),
            }
        }
        total
    })
    .await;
    log.finished(1, format!("{name}: all workers done; service closed"));
    jobs
}

fn main() -> Result<(), Box<dyn Error>> {
    println!(
        "legend: [time] root → service → worker, indented by tree level; after {RUN_FOR:?} the \
         root cancels the services and cleanup runs bottom-up\n"
    );
    let log = Log {
        start: Instant::now(),
        cleaned_up: Rc::new(Cell::new(0)),
    };
    let tasks = 1 + SERVICES.len() + SERVICES.iter().map(|(_, w)| w.len()).sum::<usize>();

    treeloop::block_on(async {
        let services: Vec<(&str, JoinHandle<u32>)> = SERVICES
            .iter()
            .map(|&(name, workers)| (name, spawn(service(log.clone(), name, workers))))
            .collect();
        log.say(0, format!("root: started {} services", services.len()));

        sleep(RUN_FOR).await?;
        log.say(0, "root: shutting down: cancelling every service");
        for (_, handle) in &services {
            handle.cancel();
        }
        // The root itself is not cancelled, so these joins simply wait.
        let mut total = 0;
        for (name, handle) in services {
            match handle.await {
                Ok(jobs) => total += jobs,
                Err(err) => log.say(0, format!("root: service {name} failed: {err}")),
            }
        }
        log.finished(0, format!("root: all services stopped ({total} jobs)"));
        Ok::<(), Cancelled>(())
    })?;

    println!(
        "\nall {}/{tasks} tasks finished their cleanup; block_on returned after {:.2}s",
        log.cleaned_up.get(),
        log.start.elapsed().as_secs_f64()
    );
    Ok(())
}
