// The attribute on something other than a fn.
#[treeloop::test]
struct NotAFunction;

fn main() {}
