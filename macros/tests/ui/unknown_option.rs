// Unknown names (a typo gets a suggestion), a path, and options of the other macro.
#[treeloop::test(start_pause = true)]
async fn typo() {}

#[treeloop::test(threads = 4)]
async fn unknown() {}

#[treeloop::test(shutdown_on_signal = true)]
async fn signals_in_a_test() {}

#[treeloop::main(seeds = 8)]
async fn main() {}
