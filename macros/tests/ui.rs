//! Compile-fail tests: each misuse of `#[treeloop::main]` and `#[treeloop::test]` is an
//! error at the mistake, naming the fix, and nothing else (no follow-on rustc errors such as
//! "`main` function not found"). One file per family; `ui/*.stderr` holds the expected
//! errors, regenerated with `TRYBUILD=overwrite cargo test -p treeloop-macros --test ui`.
//!
//! The expected output is rustc's rendering of our `compile_error!`s, so a new rustc may
//! change its layout: regenerate, and check that the messages themselves did not change.

#[test]
fn misuse_is_a_compile_error_that_names_the_fix() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
