//! Timeouts on each kind of wait, and what `Elapsed` and `Cancelled` mean.
//!
//! - `Elapsed` is what `timeout(..)` returns when *its* deadline passed: the waiting code's
//!   region was cancelled (reason `Deadline`), it cleaned up, and the timeout reports it.
//! - `Cancelled` is what an await point *inside* a cancelled region returns: the code being
//!   cut short sees it, whoever cancelled (a deadline, `cancel()`, a failing sibling, Ctrl-C).
//!
//! Three waits are put under a 100 ms deadline: a sleep, a channel receive and a mutex lock.
//! Each first times out, then succeeds once its counterpart arrives; the receive shows that
//! a timed-out `recv` loses no message.
//!
//! Run with: cargo run --example timeouts

use std::rc::Rc;
use std::time::Duration;

use treeloop::sync::{Mutex, mpsc};
use treeloop::time::{Elapsed, sleep, timeout};
use treeloop::{Cancelled, cancelled_here, spawn};

const DEADLINE: Duration = Duration::from_millis(100);

fn describe<T: std::fmt::Debug, E: std::fmt::Debug>(
    result: &Result<Result<T, E>, Elapsed>,
) -> String {
    match result {
        Ok(Ok(value)) => format!("completed in time: {value:?}"),
        Ok(Err(err)) => format!("the wait itself failed: {err:?}"),
        Err(elapsed) => format!("Err({elapsed}): our deadline passed"),
    }
}

fn main() -> Result<(), Cancelled> {
    treeloop::block_on(async {
        // 1. A sleep longer than the deadline.
        let slow = timeout(DEADLINE, async {
            let inside = sleep(Duration::from_secs(1)).await;
            // Inside the timed-out region, the await point returned Cancelled:
            println!("  inside: the sleep returned {inside:?}");
            inside
        })
        .await;
        println!("sleep 1s under a 100ms timeout -> {}", describe(&slow));

        // 2. A receive with nothing to receive yet; the message sent later is not lost.
        let (tx, mut rx) = mpsc::bounded::<&str>(1);
        let first = timeout(DEADLINE, rx.recv()).await;
        println!("recv on an empty channel -> {}", describe(&first));
        let sender = spawn(async move {
            sleep(Duration::from_millis(30)).await?;
            tx.send("hello").await.map_err(|_| "receiver gone").ok();
            Ok::<_, Cancelled>(())
        });
        let second = timeout(DEADLINE, rx.recv()).await;
        println!(
            "recv while a message arrives at 30ms -> {}",
            describe(&second)
        );
        let _ = sender.await;

        // 3. A lock held by another task for 150ms.
        let mutex = Rc::new(Mutex::new(0u32));
        let holder = spawn({
            let mutex = mutex.clone();
            async move {
                let mut guard = mutex.lock().await?;
                sleep(Duration::from_millis(150)).await?;
                *guard += 1;
                Ok::<_, Cancelled>(())
            }
        });
        treeloop::yield_now().await?;
        let locked = timeout(DEADLINE, async { mutex.lock().await.map(|g| *g) }).await;
        println!("lock held for 150ms -> {}", describe(&locked));
        let later = timeout(DEADLINE, async { mutex.lock().await.map(|g| *g) }).await;
        println!("lock again, 50ms later -> {}", describe(&later));
        let _ = holder.await;

        println!(
            "\noutside every timeout, cancelled_here() = {:?}",
            cancelled_here()
        );
        Ok(())
    })
}
