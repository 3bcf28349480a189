//! Finding a race with a seed, then replaying it.
//!
//! A tiny bank: two tasks withdraw from one account. Each checks the balance, awaits
//! something (an audit log write), then withdraws: a check-then-act across an await point.
//! Under the default FIFO order it happens to work. Here the program is run under many
//! seeds (what `treeloop::test::check` does inside a test), each a different reproducible
//! interleaving; the first seed that overdraws the account is printed, and re-running that
//! seed shows the same failure, step by step, with the same trace hash, every time.
//!
//! Run with: cargo run --example find_race

use std::cell::Cell;
use std::rc::Rc;

use treeloop::{Builder, Strategy, spawn, yield_now};

/// Withdraws `amount` if the balance allows, with an await between check and act (the bug).
async fn withdraw(balance: Rc<Cell<i64>>, who: &'static str, amount: i64, log: bool) {
    if balance.get() >= amount {
        // "Write an audit record": an await point, where another task may run.
        yield_now().await.unwrap();
        balance.set(balance.get() - amount);
        if log {
            println!("  {who} withdrew {amount}, balance now {}", balance.get());
        }
    } else if log {
        println!("  {who} refused: balance {} < {amount}", balance.get());
    }
}

/// The program under test: two withdrawals of 70 from an account holding 100.
async fn bank(log: bool) -> Result<(), String> {
    let balance = Rc::new(Cell::new(100));
    let alice = spawn(withdraw(balance.clone(), "alice", 70, log));
    let bob = spawn(async {
        // Bob is a little later: under FIFO he sees Alice's withdrawal.
        yield_now().await.unwrap();
        yield_now().await.unwrap();
    });
    bob.await.unwrap();
    let bob = spawn(withdraw(balance.clone(), "bob", 70, log));
    alice.await.unwrap();
    bob.await.unwrap();
    match balance.get() {
        b if b < 0 => Err(format!("overdrawn: balance {b}")),
        _ => Ok(()),
    }
}

fn main() {
    println!("1. FIFO, the default order:");
    let fifo = Builder::new()
        .build()
        .expect("runtime")
        .block_on(bank(true));
    println!("   -> {fifo:?}\n");

    println!("2. Searching 100 seeds with the Random strategy...");
    let found = (0..100u64).find(|&seed| {
        let runtime = Builder::new()
            .seed(seed)
            .strategy(Strategy::Random)
            .build()
            .expect("runtime");
        runtime.block_on(bank(false)).is_err()
    });
    let Some(seed) = found else {
        println!("   no seed found the race (try more seeds)");
        return;
    };
    println!("   seed {seed} overdraws the account.\n");

    println!("3. Replaying seed {seed} twice: the same steps, the same trace hash:");
    for _ in 0..2 {
        let runtime = Builder::new()
            .seed(seed)
            .strategy(Strategy::Random)
            .build()
            .expect("runtime");
        let result = runtime.block_on(bank(true));
        println!(
            "   -> {result:?}, trace hash {:#018x}",
            runtime.trace().hash
        );
    }
    println!(
        "\nIn a test, `treeloop::test::check(100, || bank(false))` does the search and prints\n\
         `TREELOOP_SEED={seed} cargo test <name>` to replay the failure."
    );
}
