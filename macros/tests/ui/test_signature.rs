// A sync test, a test with arguments, and a `#[test]` left next to the attribute.
#[treeloop::test]
fn not_async() {}

#[treeloop::test(start_paused = true)]
async fn with_arguments(n: u32) {
    let _ = n;
}

#[treeloop::test]
#[test]
async fn declared_twice() {}

fn main() {}
