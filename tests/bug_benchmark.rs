//! A benchmark of eleven classic concurrency bugs and one liveness bug, ported to treeloop:
//! for each strategy (seeded FIFO, Random, PCT at depths 1, 2 and 3) how many of N seeds
//! find each bug, and the first seed that does. FIFO is the baseline: it finds the bugs its
//! one order happens to hit (all 200 runs or none), and hides the other seven.
//!
//! The seeds are deterministic, so every count is exact and reproducible. The fast test runs
//! 200 seeds and asserts what the table shows (Random and PCT find every bug, no strategy
//! starves the spin loop, and the seven FIFO-hidden bugs stay hidden from FIFO); the full
//! table over 1,000 seeds is `cargo test --test bug_benchmark -- --ignored --nocapture`.
//! PCT learns its horizon as `test::check_with` does: each seed runs with the most
//! scheduling steps an earlier seed took.

#[path = "common/bugs.rs"]
mod bugs;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use treeloop::sync::mpsc;
use treeloop::time::sleep;
use treeloop::{Builder, Strategy, spawn, yield_now};

// Bugs 1 (lost update) and 4 (lock-order deadlock), and the check of one run, are shared
// with tests/pct.rs.
use bugs::{Bug, found, lock_order, lost_update};

/// What starts one run of a bug.
type MakeBug = fn() -> Bug;

/// The benchmark: a name and the bug.
const BUGS: [(&str, MakeBug); 12] = [
    ("lost update", || Box::pin(lost_update())),
    ("check then act", || Box::pin(check_then_act())),
    ("use before init", || Box::pin(use_before_init())),
    ("lock-order deadlock", || Box::pin(lock_order())),
    ("message reorder", || Box::pin(message_reorder())),
    ("double init", || Box::pin(double_init())),
    ("timer race", || Box::pin(timer_race())),
    ("cancel mid-transfer", || Box::pin(cancel_mid_transfer())),
    ("depth-3 chain", || Box::pin(depth_three_chain())),
    ("close before send", || Box::pin(close_before_send())),
    ("stale read", || Box::pin(stale_read())),
    ("yield spin starves", || Box::pin(spin_starves())),
];

/// The strategies of the table, in column order.
const STRATEGIES: [(&str, Strategy); 5] = [
    ("FIFO", Strategy::Fifo),
    ("Random", Strategy::Random),
    ("PCT d=1", Strategy::Pct { depth: 1 }),
    ("PCT d=2", Strategy::Pct { depth: 2 }),
    ("PCT d=3", Strategy::Pct { depth: 3 }),
];

/// Joins every task, in order.
async fn join_all<T>(tasks: Vec<treeloop::JoinHandle<T>>) -> Vec<T> {
    let mut outputs = Vec::new();
    for task in tasks {
        outputs.push(task.await.unwrap());
    }
    outputs
}

/// Bug 2: Check then act (atomicity violation): two withdrawals of 80 from 100 each check the
/// balance, yield (the "database"), then debit. The bug: both pass the check; overdrawn.
async fn check_then_act() -> bool {
    let balance = Rc::new(Cell::new(100i64));
    let tasks = (0..2)
        .map(|_| {
            let balance = balance.clone();
            spawn(async move {
                if balance.get() >= 80 {
                    yield_now().await.unwrap();
                    balance.set(balance.get() - 80);
                }
            })
        })
        .collect();
    join_all(tasks).await;
    balance.get() < 0
}

/// Bug 3: Use before init (order violation): the initialiser yields once before it sets the
/// value; the user yields twice before it reads. The bug: the user reads first.
async fn use_before_init() -> bool {
    let config = Rc::new(Cell::new(None));
    let init = {
        let config = config.clone();
        spawn(async move {
            yield_now().await.unwrap();
            config.set(Some(5));
        })
    };
    let user = spawn(async move {
        yield_now().await.unwrap();
        yield_now().await.unwrap();
        config.get().is_none()
    });
    init.await.unwrap();
    user.await.unwrap()
}

/// Bug 5: Message reorder: producers 0 and 1 each yield, then send their number; the consumer
/// assumes producer 0's message comes first.
async fn message_reorder() -> bool {
    let (tx, mut rx) = mpsc::unbounded();
    let producers = (0..2u8)
        .map(|n| {
            let tx = tx.clone();
            spawn(async move {
                yield_now().await.unwrap();
                tx.send(n).await.unwrap();
            })
        })
        .collect();
    drop(tx);
    join_all(producers).await;
    rx.recv().await.unwrap() != 0
}

/// Bug 6: Double init: "if not initialised: (yield) initialise", run by two tasks.
async fn double_init() -> bool {
    let initialised = Rc::new(Cell::new(false));
    let inits = Rc::new(Cell::new(0));
    let tasks = (0..2)
        .map(|_| {
            let (initialised, inits) = (initialised.clone(), inits.clone());
            spawn(async move {
                yield_now().await.unwrap();
                if !initialised.get() {
                    yield_now().await.unwrap();
                    inits.set(inits.get() + 1);
                    initialised.set(true);
                }
            })
        })
        .collect();
    join_all(tasks).await;
    inits.get() > 1
}

/// Bug 7: Timer race: two timers due at the same instant; the checker assumes the setter's
/// fired first because it was armed first.
async fn timer_race() -> bool {
    let flag = Rc::new(Cell::new(false));
    let setter = {
        let flag = flag.clone();
        spawn(async move {
            sleep(Duration::from_millis(10)).await.unwrap();
            flag.set(true);
        })
    };
    let checker = spawn(async move {
        sleep(Duration::from_millis(10)).await.unwrap();
        !flag.get()
    });
    setter.await.unwrap();
    checker.await.unwrap()
}

/// Bug 8: Cancellation mid-transfer: the mover debits, awaits, then credits; a supervisor
/// cancels it. The bug: cancelled between the two halves, 50 vanish (the await's
/// `Cancelled` ends the transfer with only its first half done).
async fn cancel_mid_transfer() -> bool {
    let accounts = Rc::new(RefCell::new([100i64, 0]));
    let mover = {
        let accounts = accounts.clone();
        spawn(async move {
            accounts.borrow_mut()[0] -= 50;
            if yield_now().await.is_err() {
                return; // the bug: no rollback
            }
            accounts.borrow_mut()[1] += 50;
        })
    };
    let supervisor = spawn(async move {
        yield_now().await.unwrap();
        mover.cancel();
        mover.await.unwrap();
    });
    supervisor.await.unwrap();
    let [a, b] = *accounts.borrow();
    a + b != 100
}

/// Bug 9: A depth-3 chain: the bug needs three orderings at once: the first writer's `x = 1`
/// before the relay reads `x`, the relay's `y = 1` before the checker reads `y`, and the
/// checker's read of `z` before the first writer's `z = 1`.
async fn depth_three_chain() -> bool {
    let (x, y, z) = (
        Rc::new(Cell::new(0)),
        Rc::new(Cell::new(0)),
        Rc::new(Cell::new(0)),
    );
    let writer = {
        let (x, z) = (x.clone(), z.clone());
        spawn(async move {
            yield_now().await.unwrap();
            x.set(1);
            yield_now().await.unwrap();
            yield_now().await.unwrap();
            z.set(1);
        })
    };
    let relay = {
        let y = y.clone();
        spawn(async move {
            yield_now().await.unwrap();
            yield_now().await.unwrap();
            if x.get() == 1 {
                y.set(1);
            }
        })
    };
    let checker = spawn(async move {
        for _ in 0..3 {
            yield_now().await.unwrap();
        }
        y.get() == 1 && z.get() == 0
    });
    writer.await.unwrap();
    relay.await.unwrap();
    checker.await.unwrap()
}

/// Bug 10: Close before send: the receiver polls once (after two yields) and hangs up if
/// nothing came; the sender yields once, then sends. The bug: the receiver gave up first,
/// and the send fails.
async fn close_before_send() -> bool {
    let (tx, mut rx) = mpsc::bounded::<u8>(1);
    let receiver = spawn(async move {
        yield_now().await.unwrap();
        yield_now().await.unwrap();
        let got = rx.try_recv().is_ok();
        drop(rx);
        got
    });
    let sender = spawn(async move {
        yield_now().await.unwrap();
        tx.send(1).await.is_err()
    });
    let _ = receiver.await.unwrap();
    sender.await.unwrap()
}

/// Bug 11: Stale read: a reader takes the configuration's version, awaits, then acts on it; a
/// writer bumps the version in between. The bug: the reader acted on a stale version.
async fn stale_read() -> bool {
    let version = Rc::new(Cell::new(0));
    let reader = {
        let version = version.clone();
        spawn(async move {
            let seen = version.get();
            yield_now().await.unwrap();
            version.get() != seen
        })
    };
    let writer = spawn(async move {
        yield_now().await.unwrap();
        version.set(version.get() + 1);
    });
    let stale = reader.await.unwrap();
    writer.await.unwrap();
    stale
}

/// The bound on the spin loop of bug 12.
const SPIN_BOUND: u32 = 10_000;

/// Bug 12: Liveness: a task spins on `yield_now` until another sets a flag. The bug: the setter
/// never runs (a strategy that always resumes the spinner), and the spinner gives up.
async fn spin_starves() -> bool {
    let flag = Rc::new(Cell::new(false));
    let spinner = {
        let flag = flag.clone();
        spawn(async move {
            let mut spins = 0;
            while !flag.get() && spins < SPIN_BOUND {
                yield_now().await.unwrap();
                spins += 1;
            }
            !flag.get()
        })
    };
    let setter = spawn(async move {
        yield_now().await.unwrap();
        flag.set(true);
    });
    setter.await.unwrap();
    spinner.await.unwrap()
}

/// One cell of the table: seeds that found the bug, and the first of them.
#[derive(Clone, Copy, Debug, Default)]
struct Found {
    hits: u64,
    first: Option<u64>,
}

/// `bug` under `strategy` over `seeds` seeds, learning PCT's horizon as `check_with` does.
fn measure(strategy: Strategy, seeds: u64, bug: fn() -> Bug) -> Found {
    let mut horizon: Option<u64> = None;
    let mut cell = Found::default();
    for seed in 0..seeds {
        let mut builder = Builder::new().seed(seed).strategy(strategy);
        if let Some(steps) = horizon {
            builder = builder.pct_horizon(steps);
        }
        let runtime = builder.build().expect("runtime");
        if found(&runtime, bug) {
            cell.hits += 1;
            cell.first.get_or_insert(seed);
        }
        let steps = runtime.scheduling_steps();
        horizon = Some(horizon.map_or(steps, |known| known.max(steps)).max(1));
    }
    cell
}

/// The whole table over `seeds` seeds, printed (markdown) and returned, by bug then
/// strategy.
fn table(seeds: u64) -> Vec<[Found; 5]> {
    eprintln!(
        "| bug ({seeds} seeds: hits, first failing seed) | {} |",
        STRATEGIES.map(|(label, _)| label).join(" | ")
    );
    eprintln!("|---|{}", "---|".repeat(STRATEGIES.len()));
    BUGS.iter()
        .map(|(name, bug)| {
            let cells = STRATEGIES.map(|(_, strategy)| measure(strategy, seeds, *bug));
            let shown: Vec<String> = cells
                .iter()
                .map(|cell| match cell.first {
                    Some(first) => format!("{} (seed {first})", cell.hits),
                    None => "0".to_owned(),
                })
                .collect();
            eprintln!("| {name} | {} |", shown.join(" | "));
            cells
        })
        .collect()
}

#[test]
fn random_and_pct_find_every_bug_within_200_seeds_and_fifo_hides_seven() {
    let measured = table(200);
    let fifo_found: Vec<&str> = BUGS
        .iter()
        .zip(&measured)
        .filter(|(_, cells)| cells[0].hits > 0)
        .map(|((name, _), _)| *name)
        .collect();
    // FIFO's one order: a yield hands over to the other task at once, so read-yield-write
    // races show; orderings that need a task to run ahead of the queue never do.
    assert_eq!(
        fifo_found,
        [
            "lost update",
            "check then act",
            "lock-order deadlock",
            "double init"
        ]
    );
    for ((name, _), cells) in BUGS.iter().zip(&measured) {
        let [_, random, _, pct2, pct3] = cells;
        if *name == "yield spin starves" {
            // Liveness: no strategy may starve the setter.
            for (cell, (label, _)) in cells.iter().zip(STRATEGIES) {
                assert_eq!(cell.hits, 0, "{name}: {label} starved the setter");
            }
            continue;
        }
        assert!(random.hits > 0, "{name}: Random never found it");
        assert!(
            pct2.hits + pct3.hits > 0,
            "{name}: PCT at depths 2 and 3 never found it"
        );
    }
}

#[test]
#[ignore = "the full table, 1,000 seeds per cell: run with --ignored --nocapture"]
fn the_full_table_over_1000_seeds() {
    table(1_000);
}
