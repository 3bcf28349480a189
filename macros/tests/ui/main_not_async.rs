// `main` without `async`, with options: the error is at `fn`.
#[treeloop::main(start_paused = true)]
fn main() {}
