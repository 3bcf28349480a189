// Values of the wrong kind, reported all at once; and `name(value)` instead of `name = value`.
#[treeloop::test(start_paused = "yes", stall_watchdog = 5000, slow_poll_threshold = "10 ms")]
async fn wrong_kinds() {}

#[treeloop::test(seeds = 4, strategy = Pct(0), stall_watchdog = "5d")]
async fn bad_strategy_and_unit() {}

#[treeloop::test(seeds = 4, strategy = Roundrobin)]
async fn unknown_strategy() {}

#[treeloop::test(seeds(4))]
async fn list_form() {}

fn main() {}
