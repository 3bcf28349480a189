//! timers: `n` tasks each sleep once, for durations spread over `0..=max` by a fixed-seed
//! generator (the same durations on every runtime), then are joined.
//!
//! Measures timer registration, expiry and the wake it causes. Two rows: wall time (which
//! includes waiting for the longest sleep) and CPU time of the whole process (every thread,
//! so async-io's helper thread counts too). Unit: ns per timer.

use std::time::{Duration, Instant};

use super::proc::process_cpu_time;
use super::{Runtime, per_unit, tokio_runtime, treeloop_runtime};

/// Runs one sample; returns [wall, cpu] in ns per timer.
pub fn run(runtime: Runtime, n: usize, max: Duration) -> [f64; 2] {
    let durations = durations(n, max);
    let cpu_start = process_cpu_time();
    let (wall, woken) = match runtime {
        Runtime::Treeloop => treeloop_runtime().block_on(async {
            let start = Instant::now();
            let handles: Vec<_> = durations
                .iter()
                .map(|&duration| {
                    treeloop::spawn(async move {
                        let slept = Instant::now();
                        treeloop::time::sleep(duration)
                            .await
                            .expect("nothing cancels the sleep");
                        slept.elapsed() >= duration
                    })
                })
                .collect();
            let mut woken = 0;
            for handle in handles {
                woken += usize::from(handle.await.expect("a timer task failed"));
            }
            (start.elapsed(), woken)
        }),
        Runtime::Tokio => tokio_runtime().block_on(async {
            let start = Instant::now();
            let handles: Vec<_> = durations
                .iter()
                .map(|&duration| {
                    tokio::spawn(async move {
                        let slept = Instant::now();
                        tokio::time::sleep(duration).await;
                        slept.elapsed() >= duration
                    })
                })
                .collect();
            let mut woken = 0;
            for handle in handles {
                woken += usize::from(handle.await.expect("a timer task failed"));
            }
            (start.elapsed(), woken)
        }),
        Runtime::AsyncExecutor => {
            let executor = async_executor::LocalExecutor::new();
            async_io::block_on(executor.run(async {
                let start = Instant::now();
                let handles: Vec<_> = durations
                    .iter()
                    .map(|&duration| {
                        executor.spawn(async move {
                            let slept = Instant::now();
                            async_io::Timer::after(duration).await;
                            slept.elapsed() >= duration
                        })
                    })
                    .collect();
                let mut woken = 0;
                for handle in handles {
                    woken += usize::from(handle.await);
                }
                (start.elapsed(), woken)
            }))
        }
        Runtime::Floor => unreachable!("no floor without a reactor (Workload::has_floor)"),
    };
    let cpu = process_cpu_time() - cpu_start;
    assert_eq!(woken, n, "timers: a sleep returned before its duration");
    [per_unit(wall, n), per_unit(cpu, n)]
}

/// `n` durations in `0..=max`, from xorshift64 with a fixed seed: the same on every run.
fn durations(n: usize, max: Duration) -> Vec<Duration> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let span = max.as_micros() as u64 + 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            Duration::from_micros(state % span)
        })
        .collect()
}
