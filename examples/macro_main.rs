//! `#[treeloop::main]`: an `async fn main` with graceful shutdown, in one attribute.
//!
//! A worker does 100 ms jobs until the tree is cancelled, then flushes inside a `shield`.
//! `main` serves until SIGINT or SIGTERM (`shutdown_on_signals = true`, or in the singular
//! as the `Builder` method is named), waits for the
//! worker's cleanup, and exits 0. Without the option, the signal would end the process at
//! once, flush or not. The attribute stands for
//! `Builder::new().shutdown_on_signal(true).build()?.block_on(main())`.
//!
//! Run with: cargo run --example macro_main (then press Ctrl-C)

use std::process::ExitCode;
use std::time::Duration;

use treeloop::time::sleep;
use treeloop::{Cancelled, shield, spawn};

#[treeloop::main(shutdown_on_signals = true)]
async fn main() -> ExitCode {
    let worker = spawn(async {
        let mut jobs = 0;
        while sleep(Duration::from_millis(100)).await.is_ok() {
            jobs += 1;
        }
        // Cancelled: the cleanup may still await, inside a shield.
        shield(sleep(Duration::from_millis(20))).await?;
        println!("worker: flushed after {jobs} jobs");
        Ok::<_, Cancelled>(())
    });
    println!(
        "macro_main: serving as pid {}; stop with Ctrl-C",
        std::process::id()
    );
    let why = treeloop::cancelled().await;
    println!("main: {why}; waiting for the worker");
    match shield(worker).await {
        Ok(Ok(())) => {
            println!("main: clean exit");
            ExitCode::SUCCESS
        }
        failed => {
            eprintln!("main: the worker failed: {failed:?}");
            ExitCode::FAILURE
        }
    }
}
