//! Faults in every position (R17, R20): a panic in a task's poll, in its cleanup after it saw
//! `Cancelled`, inside a shield, in the `Drop` of its future (the root's included), on
//! another thread right after a wake, in a foreign waker that the runtime itself calls, and in
//! a timeout's body; `abort()` while a task awaits inside a cleanup shield; a task cancelling
//! or aborting itself from its own cleanup; a `block_on` abandoned with tasks parked, and a
//! runtime dropped after such a run.
//!
//! Every test checks the same five things:
//!
//! - **no abort**: the test process survives (the one fault that aborts it runs in a child
//!   process, see `bug_...aborts_the_process`);
//! - **no hang**: each scenario runs under [`no_hang`], on virtual time, and waits for
//!   cancellation with a one-hour virtual sleep that fails the test if nothing comes;
//! - **the exact outcome**: which `JoinError` (panic, aborted, cancelled), which payload
//!   `block_on` re-raises (checked by its message), at which virtual millisecond;
//! - **no leak**: every instrumented future is dropped exactly once, the tree is empty
//!   afterwards (`Runtime::live_nodes`), and no future kept a clone of the [`Ledger`];
//! - **a usable runtime**: a second `block_on` on the same `Runtime` runs a child on time.
//!
//! Tests named `bug_*` are regressions for runtime bugs this suite found; each bug is fixed,
//! and each test's doc says what went wrong and what is expected.
//!
//! One test binary; the scenarios live in `tests/faults/`, one file per place the fault is:
//! `poll_and_drop.rs`, `wakers.rs`, `cleanup.rs` and `teardown.rs`, on the shared harness in
//! `support.rs`. A test's name carries its file (`cleanup::a_panic_in_cleanup_...`).
//!
//! Run with: cargo test --test faults
//! The bug regressions alone: cargo test --test faults bug_

#[path = "../common/mod.rs"]
mod common;

mod cleanup;
mod poll_and_drop;
mod support;
mod teardown;
mod wakers;
