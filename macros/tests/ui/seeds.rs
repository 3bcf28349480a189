// `seeds = 0`, a duplicate, `seed` with `seeds`, and options that need another one.
#[treeloop::test(seeds = 0)]
async fn zero_seeds() {}

#[treeloop::test(start_paused = true, start_paused = false)]
async fn duplicate() {}

#[treeloop::test(seeds = 8, seed = 3)]
async fn seed_and_seeds() {}

#[treeloop::test(strategy = Random, allow_real_io = true)]
async fn strategy_without_a_seed() {}

#[treeloop::test(stall_grace = "10s")]
async fn grace_without_watchdog() {}

fn main() {}
