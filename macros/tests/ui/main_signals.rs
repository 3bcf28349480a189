// Two ways of choosing the shutdown signals at once, a signal that cannot be watched, and
// an empty list.
#[treeloop::main(shutdown_on_signal = true, shutdown_on_ctrl_c = true)]
async fn main() {}

#[treeloop::main(shutdown_signals = [SIGINT, SIGKILL])]
async fn uncatchable() {}

#[treeloop::main(shutdown_signals = [])]
async fn empty() {}
