// Arguments and generics on `main`: both reported, and no "`main` not found" after them.
#[treeloop::main]
async fn main<T: Default>(args: Vec<String>) {
    let _ = (args, T::default());
}
