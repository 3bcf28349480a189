//! ping_pong: two tasks bounce a counter `n` times over a pair of bounded(1) channels.
//!
//! Measures a wake across tasks through a channel: send, wake the receiver, poll it, and
//! back. Two rows: each runtime's own channel (treeloop `sync::mpsc`, tokio `sync::mpsc`,
//! and async-channel for async-executor, smol's channel), then async-channel on all three,
//! which isolates the executors from the channels. Unit: ns per round trip.

use std::time::{Duration, Instant};

use super::{Runtime, floor, per_unit, tokio_runtime, treeloop_runtime};

/// Runs one sample of each row; returns [own channel, async-channel] in ns per round trip.
pub fn run(runtime: Runtime, n: usize) -> [f64; 2] {
    let own = match runtime {
        Runtime::Treeloop => treeloop_own(n),
        Runtime::Tokio => tokio_own(n),
        Runtime::AsyncExecutor => on_async_executor(n),
        Runtime::Floor => on_floor(n),
    };
    let shared = match runtime {
        Runtime::Treeloop => treeloop_runtime().block_on(async {
            let start = Instant::now();
            let (ping, pong) = shared_pair(n);
            let pong = treeloop::spawn(pong);
            let count = treeloop::spawn(ping).await.expect("ping task failed");
            pong.await.expect("pong task failed");
            (start.elapsed(), count)
        }),
        Runtime::Tokio => tokio_runtime().block_on(async {
            let start = Instant::now();
            let (ping, pong) = shared_pair(n);
            let pong = tokio::spawn(pong);
            let count = tokio::spawn(ping).await.expect("ping task failed");
            pong.await.expect("pong task failed");
            (start.elapsed(), count)
        }),
        Runtime::AsyncExecutor => on_async_executor(n),
        Runtime::Floor => on_floor(n),
    };
    [check(own, n), check(shared, n)]
}

/// Checks that every round trip came back, and returns ns per round trip.
fn check((elapsed, count): (Duration, usize), n: usize) -> f64 {
    assert_eq!(count, n, "ping_pong: round trips lost");
    per_unit(elapsed, n)
}

/// The ping and pong tasks over async-channel, for any runtime. Ping sends `i`, expects
/// `i + 1` back, and returns how many came back; pong answers until ping hangs up.
fn shared_pair(
    n: usize,
) -> (
    impl Future<Output = usize> + Send + 'static,
    impl Future<Output = ()> + Send + 'static,
) {
    let (to_pong, from_ping) = async_channel::bounded::<usize>(1);
    let (to_ping, from_pong) = async_channel::bounded::<usize>(1);
    let ping = async move {
        let mut count = 0;
        for i in 0..n {
            to_pong.send(i).await.expect("pong hung up");
            count += usize::from(from_pong.recv().await == Ok(i + 1));
        }
        count
    };
    let pong = async move {
        while let Ok(value) = from_ping.recv().await {
            to_ping.send(value + 1).await.expect("ping hung up");
        }
    };
    (ping, pong)
}

/// Both rows on async-executor: its ecosystem's channel is async-channel.
fn on_async_executor(n: usize) -> (Duration, usize) {
    let executor = async_executor::LocalExecutor::new();
    async_io::block_on(executor.run(async {
        let start = Instant::now();
        let (ping, pong) = shared_pair(n);
        let pong = executor.spawn(pong);
        let count = executor.spawn(ping).await;
        pong.await;
        (start.elapsed(), count)
    }))
}

/// Both rows on the async-task floor, over async-channel.
fn on_floor(n: usize) -> (Duration, usize) {
    floor::block_on(async move {
        let start = Instant::now();
        let (ping, pong) = shared_pair(n);
        let pong = floor::spawn(pong);
        let count = floor::spawn(ping).await;
        pong.await;
        (start.elapsed(), count)
    })
}

/// treeloop's own `sync::mpsc`.
fn treeloop_own(n: usize) -> (Duration, usize) {
    use treeloop::sync::mpsc;
    treeloop_runtime().block_on(async {
        let start = Instant::now();
        let (to_pong, mut from_ping) = mpsc::bounded::<usize>(1);
        let (to_ping, mut from_pong) = mpsc::bounded::<usize>(1);
        let pong = treeloop::spawn(async move {
            while let Ok(value) = from_ping.recv().await {
                to_ping.send(value + 1).await.expect("ping hung up");
            }
        });
        let ping = treeloop::spawn(async move {
            let mut count = 0;
            for i in 0..n {
                to_pong.send(i).await.expect("pong hung up");
                count += usize::from(from_pong.recv().await.ok() == Some(i + 1));
            }
            count
        });
        let count = ping.await.expect("ping task failed");
        pong.await.expect("pong task failed");
        (start.elapsed(), count)
    })
}

/// tokio's own `sync::mpsc`.
fn tokio_own(n: usize) -> (Duration, usize) {
    use tokio::sync::mpsc;
    tokio_runtime().block_on(async {
        let start = Instant::now();
        let (to_pong, mut from_ping) = mpsc::channel::<usize>(1);
        let (to_ping, mut from_pong) = mpsc::channel::<usize>(1);
        let pong = tokio::spawn(async move {
            while let Some(value) = from_ping.recv().await {
                to_ping.send(value + 1).await.expect("ping hung up");
            }
        });
        let ping = tokio::spawn(async move {
            let mut count = 0;
            for i in 0..n {
                to_pong.send(i).await.expect("pong hung up");
                count += usize::from(from_pong.recv().await == Some(i + 1));
            }
            count
        });
        let count = ping.await.expect("ping task failed");
        pong.await.expect("pong task failed");
        (start.elapsed(), count)
    })
}
