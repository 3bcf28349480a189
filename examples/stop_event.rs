//! Stopping workers with a shared `Event`, then awaiting each worker so its cleanup finishes
//! before the program exits.
//!
//! Three workers poll a job queue until the stop event is set. `main` sets it after a while
//! and then *awaits* every worker: a worker that saw the event finishes its current job,
//! flushes, and only then does the program go on. Setting an event is a request, not a
//! cancellation: the workers decide when to stop (compare `task_group.rs`, where the tree
//! cancels them). The slow worker only looks at the event between long jobs, which is why
//! awaiting matters: without the join, the program would exit before its flush.
//!
//! Run with: cargo run --example stop_event

use std::rc::Rc;
use std::time::Duration;

use treeloop::sync::Event;
use treeloop::time::{Instant, sleep};
use treeloop::{Cancelled, spawn};

/// Works in `step`-long jobs until `stop` is set, then flushes; returns the jobs done.
async fn worker(
    name: &'static str,
    step: Duration,
    stop: Rc<Event>,
    start: Instant,
) -> Result<u32, Cancelled> {
    let mut jobs = 0;
    while !stop.is_set() {
        sleep(step).await?;
        jobs += 1;
    }
    println!(
        "[{:.2}s] {name}: saw the stop event after {jobs} jobs; flushing",
        start.elapsed().as_secs_f64()
    );
    sleep(Duration::from_millis(50)).await?;
    println!("[{:.2}s] {name}: flushed", start.elapsed().as_secs_f64());
    Ok(jobs)
}

fn main() -> Result<(), Cancelled> {
    treeloop::block_on(async {
        let start = Instant::now();
        let stop = Rc::new(Event::new());
        let steps = [("fast", 40), ("medium", 90), ("slow", 300)];
        let workers: Vec<_> = steps
            .iter()
            .map(|&(name, ms)| {
                let job = worker(name, Duration::from_millis(ms), stop.clone(), start);
                (name, spawn(job))
            })
            .collect();
        // Something else can wait for the same event, e.g. a status reporter.
        let reporter = spawn({
            let stop = stop.clone();
            async move {
                stop.wait().await?;
                println!(
                    "[{:.2}s] reporter: stop requested",
                    start.elapsed().as_secs_f64()
                );
                Ok::<_, Cancelled>(())
            }
        });

        sleep(Duration::from_millis(500)).await?;
        println!(
            "[{:.2}s] main: setting the stop event",
            start.elapsed().as_secs_f64()
        );
        stop.set();
        for (name, handle) in workers {
            match handle.await {
                Ok(Ok(jobs)) => println!(
                    "[{:.2}s] main: {name} done after {jobs} jobs",
                    start.elapsed().as_secs_f64()
                ),
                Ok(Err(cancelled)) => println!("main: {name}: {cancelled}"),
                Err(err) => println!("main: {name} failed: {err}"),
            }
        }
        let _ = reporter.await;
        println!(
            "[{:.2}s] main: every worker finished its cleanup",
            start.elapsed().as_secs_f64()
        );
        Ok(())
    })
}
