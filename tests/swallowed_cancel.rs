//! A task that catches `Cancelled` and carries on cannot starve the runtime (R6, R20, §4).
//!
//! In a cancelled region every treeloop await point completes at once with `Err(Cancelled)`.
//! A task that ignores the error in a loop (`loop { let _ = sleep(d).await; }`) would never
//! return `Pending` if that completion were free. It is not: the cancelled path spends the
//! per-poll budget like any completion, so after `BUDGET` of them the await point yields,
//! and checkpoints yield every time, cancelled or not. Each test below runs such a loop over
//! one kind of await point and checks, with exact counts, that the rest of the runtime gets
//! its turn: the root is polled again, `abort()` ends the loop, other tasks and timers run,
//! and the watchdog names the task and its grace period aborts it.
//!
//! Every loop is bounded: [`Spins::spin`] panics after [`BOUND`] iterations, so a regression
//! fails instead of hanging.

mod common;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use common::{Counters, ms, paused};
use treeloop::diag::{Report, StallCause};
use treeloop::net::{TcpListener, TcpStream};
use treeloop::sync::{Mutex, mpsc};
use treeloop::time::{Instant, advance, sleep};
use treeloop::{Builder, checkpoint, shield, spawn, task, yield_now};
use treeloop_executor::coop::BUDGET;

/// A loop that swallows more errors than this has starved the runtime.
const BOUND: u64 = 1_000_000;

/// Counts the iterations of a swallowing loop and the errors it swallowed; panics past
/// [`BOUND`] iterations.
#[derive(Clone, Default)]
struct Spins(Rc<(Cell<u64>, Cell<u64>)>);

impl Spins {
    /// One iteration, which failed (`Err(Cancelled)`, swallowed) or not.
    fn spin(&self, failed: bool) {
        let spins = self.0.0.get() + 1;
        assert!(
            spins < BOUND,
            "a task ignoring its cancellation ran {spins} iterations without yielding"
        );
        self.0.0.set(spins);
        if failed {
            self.0.1.set(self.0.1.get() + 1);
        }
    }

    fn get(&self) -> u64 {
        self.0.0.get()
    }

    fn swallowed(&self) -> u64 {
        self.0.1.get()
    }
}

/// The scenario shared by every await point: a task runs `swallowing_loop`, which awaits
/// one kind of await point forever, ignoring its result; the root cancels it, and must be
/// polled again after the task's poll spent its budget (`swallowed_per_poll` errors for an
/// await point that does not yield by itself, one for a checkpoint); then `abort()` ends
/// the loop and drops its future.
fn a_swallowing_loop_yields_and_abort_reaches_it<F>(
    swallowed_per_poll: u32,
    swallowing_loop: impl FnOnce(Spins) -> F + 'static,
) where
    F: Future<Output = ()> + 'static,
{
    let swallowed_per_poll = u64::from(swallowed_per_poll);
    paused().block_on(async move {
        let spins = Spins::default();
        let probe = Counters::new();
        let stubborn = spawn(probe.probe(swallowing_loop(spins.clone())));
        // Let it start and park (or yield, for a checkpoint).
        yield_now().await.unwrap();
        assert_eq!(spins.swallowed(), 0, "nothing is cancelled yet");
        stubborn.cancel();
        // The root's yield puts it behind the stubborn task: it runs again only if the
        // stubborn task's poll ends.
        yield_now().await.unwrap();
        assert_eq!(
            spins.swallowed(),
            swallowed_per_poll,
            "the stubborn task swallowed this many Cancelled in its poll, then yielded"
        );
        yield_now().await.unwrap();
        assert_eq!(
            spins.swallowed(),
            2 * swallowed_per_poll,
            "and again, poll after poll"
        );
        stubborn.abort();
        assert!(stubborn.await.unwrap_err().is_aborted());
        assert_eq!(probe.drops(), 1, "the abort dropped its future");
    });
}

#[test]
fn a_loop_swallowing_checkpoint_errors_yields_at_every_checkpoint() {
    a_swallowing_loop_yields_and_abort_reaches_it(1, |spins| async move {
        loop {
            spins.spin(checkpoint().await.is_err());
        }
    });
}

#[test]
fn a_loop_swallowing_yield_now_errors_yields_at_every_yield() {
    a_swallowing_loop_yields_and_abort_reaches_it(1, |spins| async move {
        loop {
            spins.spin(yield_now().await.is_err());
        }
    });
}

#[test]
fn a_loop_swallowing_sleep_errors_yields_when_its_budget_is_spent() {
    a_swallowing_loop_yields_and_abort_reaches_it(BUDGET, |spins| async move {
        loop {
            spins.spin(sleep(ms(1)).await.is_err());
        }
    });
}

#[test]
fn a_loop_swallowing_join_errors_yields_when_its_budget_is_spent() {
    a_swallowing_loop_yields_and_abort_reaches_it(BUDGET, |spins| async move {
        // A child that outlives the loop's abort (its cleanup is shielded); a cancelled
        // join leaves its outcome in place, so the handle can be awaited again.
        let mut child = spawn(async {
            let _ = shield(sleep(ms(10))).await;
        });
        loop {
            spins.spin((&mut child).await.is_err());
        }
    });
}

#[test]
fn a_loop_swallowing_channel_recv_errors_yields_when_its_budget_is_spent() {
    a_swallowing_loop_yields_and_abort_reaches_it(BUDGET, |spins| async move {
        let (_tx, mut rx) = mpsc::bounded::<u32>(1);
        loop {
            spins.spin(rx.recv().await.is_err());
        }
    });
}

#[test]
fn a_loop_swallowing_lock_errors_yields_when_its_budget_is_spent() {
    a_swallowing_loop_yields_and_abort_reaches_it(BUDGET, |spins| async move {
        let mutex = Mutex::new(0u32);
        // Held: every lock below waits (until cancelled, when it fails at once).
        let _held = mutex.try_lock().unwrap();
        loop {
            spins.spin(mutex.lock().await.is_err());
        }
    });
}

#[test]
fn a_loop_swallowing_socket_read_errors_yields_when_its_budget_is_spent() {
    // Loopback sockets: the read has nothing to read, and would wait; cancelled, it fails.
    let runtime = Builder::new().start_paused(true).build().unwrap();
    let spins = Spins::default();
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let stubborn = spawn({
            let spins = spins.clone();
            async move {
                let mut buf = [0u8; 16];
                loop {
                    match server.read(&mut buf).await {
                        Err(err) => spins.spin(treeloop::Cancelled::from_io(&err).is_some()),
                        Ok(read) => panic!("nothing was sent, yet {read} bytes were read"),
                    }
                }
            }
        });
        yield_now().await.unwrap();
        assert_eq!(spins.get(), 0, "the read waits");
        stubborn.cancel();
        yield_now().await.unwrap();
        assert_eq!(spins.swallowed(), u64::from(BUDGET));
        stubborn.abort();
        assert!(stubborn.await.unwrap_err().is_aborted());
        drop(client);
    });
}

#[test]
fn other_tasks_and_timers_keep_running_beside_a_task_that_ignores_its_cancellation() {
    paused().block_on(async {
        let start = Instant::now();
        let spins = Spins::default();
        let stubborn = spawn({
            let spins = spins.clone();
            async move {
                loop {
                    spins.spin(sleep(ms(1)).await.is_err());
                }
            }
        });
        yield_now().await.unwrap();
        stubborn.cancel();
        // A sibling counts to ten, yielding each time.
        let counter = spawn(async {
            let mut count = 0;
            for _ in 0..10 {
                yield_now().await.unwrap();
                count += 1;
            }
            count
        });
        assert_eq!(counter.await.unwrap(), 10);
        // A timer fires: virtual time cannot jump while the stubborn task is always
        // runnable, so move it by hand, as the clock of a real loop would move.
        let timer = spawn(async { sleep(ms(50)).await.is_ok() });
        yield_now().await.unwrap();
        advance(ms(50)).await.unwrap();
        assert!(
            timer.is_finished(),
            "the timer fired at the loop's next turn"
        );
        assert!(timer.await.unwrap(), "and was not cancelled");
        assert_eq!(start.elapsed(), ms(50));
        stubborn.abort();
        assert!(stubborn.await.unwrap_err().is_aborted());
        assert!(
            spins.get() > u64::from(BUDGET),
            "it kept spinning meanwhile"
        );
    });
}

#[test]
fn the_watchdog_names_a_task_that_swallows_cancelled_and_its_grace_period_aborts_it() {
    let reports = Rc::new(RefCell::new(Vec::new()));
    let runtime = Builder::new()
        .start_paused(true)
        .stall_watchdog(Duration::from_secs(1))
        .stall_grace(Duration::from_secs(2))
        .report_sink({
            let reports = reports.clone();
            move |report| reports.borrow_mut().push(report.clone())
        })
        .build()
        .unwrap();
    let spins = Spins::default();
    let stubborn_line = line!() + 3;
    let (stubborn_id, elapsed) = runtime.block_on(async {
        let start = Instant::now();
        let stubborn = task::Builder::new().name("swallower").spawn({
            let spins = spins.clone();
            async move {
                loop {
                    spins.spin(checkpoint().await.is_err());
                }
            }
        });
        let id = stubborn.id();
        yield_now().await.unwrap();
        stubborn.cancel();
        // The clock of a real loop moves while the task spins; here, 100 ms per turn.
        let clock = spawn(async {
            for _ in 0..100 {
                advance(ms(100)).await.unwrap();
            }
        });
        assert!(stubborn.await.unwrap_err().is_aborted());
        let elapsed = start.elapsed();
        clock.abort();
        let _ = clock.await;
        (id, elapsed)
    });
    let reports = reports.borrow();
    assert_eq!(reports.len(), 2, "{reports:?}");
    let Report::Stall(stall) = &reports[0] else {
        panic!("expected a stall report first: {reports:?}")
    };
    assert_eq!(stall.stuck.len(), 1);
    let stuck = &stall.stuck[0];
    assert_eq!(stuck.id, stubborn_id);
    assert_eq!(stuck.name.as_deref(), Some("swallower"));
    assert_eq!(stuck.cause, StallCause::IgnoresCancellation);
    assert_eq!(stuck.location.file(), file!());
    assert_eq!(stuck.location.line(), stubborn_line);
    let text = reports[0].to_string();
    assert!(text.contains("ignores cancellation"), "{text}");
    assert!(
        text.contains(&format!("{}:{stubborn_line}", file!())),
        "the report gives the spawn location: {text}"
    );
    let Report::Aborted(aborted) = &reports[1] else {
        panic!("expected the abort second: {reports:?}")
    };
    assert_eq!(aborted.id, stubborn_id);
    // Reported 1 s after the cancel (it heard it first at the cancel), aborted 2 s later;
    // the clock moves in steps of 100 ms.
    assert_eq!(stuck.stuck_for, Duration::from_secs(1));
    assert_eq!(aborted.stuck_for, Duration::from_secs(3));
    // Aborted at 3 s; the clock task may take one more step before the root hears of it.
    assert!(elapsed == ms(3_000) || elapsed == ms(3_100), "{elapsed:?}");
    assert!(spins.get() > 10, "it spun all along");
}

#[test]
fn cleanup_that_awaits_a_few_cancelled_checkpoints_still_finishes() {
    // The other side of yielding on the cancelled path: a well-behaved cleanup that meets
    // cancelled checkpoints on its way out pays one turn per checkpoint, nothing more.
    paused().block_on(async {
        let probe = Counters::new();
        let worker = spawn(probe.probe(async {
            let first = sleep(ms(1_000)).await;
            let mut seen = vec![first.is_err()];
            for _ in 0..3 {
                seen.push(checkpoint().await.is_err());
            }
            seen
        }));
        yield_now().await.unwrap();
        worker.cancel();
        assert_eq!(worker.await.unwrap(), [true; 4]);
        assert_eq!(
            probe.polls(),
            2 + 3,
            "start, the cancel's wake, one per checkpoint"
        );
    });
}
