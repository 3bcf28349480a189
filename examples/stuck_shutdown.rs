//! A shutdown that would hang, and how treeloop tells you why.
//!
//! ```text
//! cargo run --example stuck_shutdown
//! ```
//!
//! A small service runs three workers. Two of them clean up when cancelled; the third,
//! `legacy poller`, loops on a foreign future (a timer of another library, here a thread)
//! that knows nothing about cancellation, so it never sees it: a cancellation blind spot.
//!
//! Press Ctrl-C (or wait: without a terminal the program shuts itself down after 1.5 s).
//! One second into the shutdown the watchdog reports the stuck task, why it is stuck, and the
//! whole tree with the task marked; two seconds later the grace period aborts it and the
//! program exits normally. While it runs, `kill -USR1 <pid>` prints the live tree.
//!
//! The fix the report suggests: `ForeignTimer::new(..).or_cancel().await`.

use std::future::Future;
use std::io::IsTerminal;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use treeloop::time::sleep;
use treeloop::{Builder, Cancelled, scope, shield, task};

fn main() {
    let runtime = Builder::new()
        .shutdown_on_ctrl_c(true)
        .dump_on_signal(true)
        .stall_watchdog(Duration::from_secs(1))
        .stall_grace(Duration::from_secs(2))
        .build()
        .expect("runtime");
    eprintln!(
        "stuck_shutdown: pid {}; Ctrl-C to shut down, `kill -USR1 {}` for a dump",
        std::process::id(),
        std::process::id()
    );
    let result = runtime.block_on(async {
        if !std::io::stdin().is_terminal() {
            let _auto = task::Builder::new().name("auto shutdown").spawn(async {
                if sleep(Duration::from_millis(1500)).await.is_ok() {
                    eprintln!("no terminal: shutting down by itself");
                    treeloop::shutdown();
                }
            });
        }
        scope(|s| async move {
            s.spawn_named("worker 1", worker("worker 1"))
                .expect("the scope is open");
            s.spawn_named("worker 2", worker("worker 2"))
                .expect("the scope is open");
            s.spawn_named("legacy poller", legacy_poller())
                .expect("the scope is open");
            Ok(())
        })
        .await
    });
    match result {
        Ok(_) => eprintln!("service: finished"),
        Err(error) => eprintln!("service: ended with {error}"),
    }
}

/// A well-behaved worker: waits for work until cancelled, then cleans up (an awaited,
/// shielded goodbye).
async fn worker(name: &'static str) -> Result<(), Cancelled> {
    loop {
        if let Err(cancelled) = sleep(Duration::from_millis(300)).await {
            shield(async {
                let _ = sleep(Duration::from_millis(200)).await;
                eprintln!("{name}: cleaned up");
            })
            .await;
            return Err(cancelled);
        }
    }
}

/// The blind spot: only foreign futures are awaited, so cancellation is never seen.
async fn legacy_poller() -> Result<(), Cancelled> {
    let mut polls = 0u64;
    loop {
        ForeignTimer::new(Duration::from_millis(100)).await;
        polls += 1;
        if polls % 10 == 0 {
            eprintln!("legacy poller: {polls} polls of the legacy system");
        }
    }
}

/// A timer from "another library": a thread sleeps, then wakes the task. It has no idea
/// treeloop exists, so it cannot report cancellation.
struct ForeignTimer {
    duration: Duration,
    fired: Option<Arc<AtomicBool>>,
}

impl ForeignTimer {
    fn new(duration: Duration) -> Self {
        ForeignTimer {
            duration,
            fired: None,
        }
    }
}

impl Future for ForeignTimer {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match &self.fired {
            Some(fired) if fired.load(Ordering::Acquire) => Poll::Ready(()),
            Some(_) => Poll::Pending,
            None => {
                let fired = Arc::new(AtomicBool::new(false));
                let (flag, waker, duration) = (fired.clone(), cx.waker().clone(), self.duration);
                std::thread::spawn(move || {
                    std::thread::sleep(duration);
                    flag.store(true, Ordering::Release);
                    waker.wake();
                });
                self.fired = Some(fired);
                Poll::Pending
            }
        }
    }
}
