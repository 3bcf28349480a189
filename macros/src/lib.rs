//! `#[treeloop::main]` and `#[treeloop::test]`: an `async fn` run on a treeloop runtime.
//!
//! Use them through the `treeloop` crate, which re-exports them; the code they generate
//! names only `::treeloop::` paths, so `treeloop` is the one dependency a program needs.
//!
//! ```
//! use std::time::Duration;
//!
//! #[treeloop::main]
//! async fn main() -> Result<(), treeloop::Cancelled> {
//!     let child = treeloop::spawn(async { 6 * 7 });
//!     treeloop::time::sleep(Duration::from_millis(1)).await?;
//!     assert_eq!(child.await.unwrap(), 42);
//!     Ok(())
//! }
//! ```
//!
//! Each macro is sugar for a [`Builder`] chain and one call, nothing more:
//!
//! | you write | it runs |
//! |---|---|
//! | `#[treeloop::main(opts)] async fn main() -> R` | `Builder::new().opts.build()?.block_on(main())` |
//! | `#[treeloop::test(opts)] async fn t() -> R` | the same, in a `#[test] fn t() -> R` |
//! | `#[treeloop::test(seeds = N, opts)] async fn t()` | `test::check_with(Builder::new().opts, N, t)` |
//!
//! # Ground rules
//!
//! - Options are `name = value` pairs named after the [`Builder`] method they call, and are
//!   checked at compile time: an unknown name, a value of the wrong kind, a duplicate, a
//!   combination that does nothing (`strategy` without a seed, `stall_grace` without
//!   `stall_watchdog`) or `seeds = 0` is a compile error that says what to write instead.
//! - The annotated fn must be an `async fn` without arguments or generic parameters; its
//!   other attributes (`#[should_panic]`, `#[ignore]`, docs, lints) stay on the generated fn.
//! - Options that install process-wide signal handlers belong to `main` only: a test
//!   binary runs its tests in parallel, in one process.
//!
//! [`Builder`]: https://docs.rs/treeloop/latest/treeloop/struct.Builder.html
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod errors;
mod item;
mod options;
mod values;

use proc_macro::TokenStream;

use crate::options::Macro;

/// Runs `async fn main` on a treeloop runtime.
///
/// The `async fn main()` becomes the program's sync `fn main()`, with the same return type
/// (`()`, `Result<(), E>`, `ExitCode`, ...). It builds a runtime from the options and
/// `block_on`s the body, so it returns once the body *and every task spawned under it*
/// have finished. If the runtime cannot be built (the OS refuses an epoll instance or a
/// signal handler), it panics with the reason.
///
/// A bare `#[treeloop::main]` is [`treeloop::block_on`]: real time, no signal handling, so
/// Ctrl-C ends the process at once, as in a program without treeloop (and as
/// `#[tokio::main]` does). Graceful shutdown is one option away, and worth it for any
/// server: `shutdown_on_signal = true` turns the first SIGINT or SIGTERM into a
/// cancellation of the whole task tree, whose cleanups run before `main` returns.
///
/// ```
/// use std::process::ExitCode;
/// use std::time::Duration;
///
/// // SIGINT or SIGTERM cancels the tree; a second one exits at once.
/// #[treeloop::main(shutdown_on_signal = true, stall_watchdog = "5s")]
/// async fn main() -> ExitCode {
///     let server = treeloop::spawn(async {
///         // Serve until cancelled (here: for 10 ms), then clean up.
///         let _ = treeloop::time::sleep(Duration::from_millis(10)).await;
///     });
///     match server.await {
///         Ok(()) => ExitCode::SUCCESS,
///         Err(_) => ExitCode::FAILURE,
///     }
/// }
/// ```
///
/// # Options
///
/// Each calls the [`Builder`] method of the same name. A bool option may be written bare
/// (`start_paused` means `start_paused = true`). A duration is a string: an integer and one
/// unit of `us`, `ms`, `s`, `m`, `h` (`"250ms"`, `"5s"`, `"2m"`).
///
/// | option | value | |
/// |---|---|---|
/// | `shutdown_on_signal` (or `shutdown_on_signals`) | bool | SIGINT and SIGTERM cancel the root |
/// | `shutdown_on_ctrl_c` | bool | SIGINT alone cancels the root |
/// | `shutdown_signals` | `[SIGINT, SIGTERM, SIGQUIT, ...]` | exactly these signals do |
/// | `dump_on_signal` | bool | SIGUSR1 prints the task tree |
/// | `stall_watchdog` | duration | report tasks of a cancelled subtree that make no progress |
/// | `stall_grace` | duration | and abort them this long after the report |
/// | `slow_poll_threshold` | duration | report polls that block the loop this long |
/// | `diagnostics` | bool | poll counts and times in dumps |
/// | `start_paused` | bool | virtual time |
/// | `report_deadlocks` | bool | panic with the tree instead of hanging when nothing can progress |
/// | `seed` | integer | a deterministic run with this seed |
/// | `strategy` | `Fifo`, `Random`, `Pct(depth)` | how a seeded run picks the next task |
/// | `allow_real_io` | bool | real sockets in a seeded run |
///
/// For anything else (a report sink, signals chosen at run time), build the runtime with
/// `treeloop::Builder` in a plain `fn main`.
///
/// The fn need not be called `main`: `#[treeloop::main] async fn run() -> R` makes a sync
/// `fn run() -> R` that starts its own runtime, callable from anywhere outside a runtime.
///
/// [`treeloop::block_on`]: https://docs.rs/treeloop/latest/treeloop/fn.block_on.html
/// [`Builder`]: https://docs.rs/treeloop/latest/treeloop/struct.Builder.html
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    item::expand(Macro::Main, args.into(), item.into()).into()
}

/// Runs an async test body on a treeloop runtime, or under many seeds.
///
/// `#[treeloop::test] async fn name()` becomes `#[test] fn name()`. The body may return `()`
/// or `Result<(), E>` with `E: Debug` (an `Err` fails the test). Other attributes stay:
/// `#[should_panic]`, `#[ignore]` and doc comments work as on any test.
///
/// ```
/// use std::time::Duration;
/// use treeloop::time::{Instant, sleep};
///
/// // Virtual time: the hour passes at once, and exactly.
/// #[treeloop::test(start_paused = true)]
/// async fn an_hour_passes_at_once() -> Result<(), treeloop::Cancelled> {
///     let start = Instant::now();
///     sleep(Duration::from_secs(3600)).await?;
///     assert_eq!(start.elapsed(), Duration::from_secs(3600));
///     Ok(())
/// }
/// ```
///
/// With `seeds = N` the body runs N times, under seeds 0 to N - 1, each a different
/// reproducible interleaving of its tasks on virtual time (through
/// `treeloop::test::check_with`; the strategy is `Random` unless `strategy` says
/// otherwise). On the first failure it prints the seed and the command that replays it,
/// then fails with the original panic:
///
/// ```text
/// treeloop::test::check: failed with seed 3; replay it with:
///     TREELOOP_SEED=3 cargo test my_test -- --exact
/// ```
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
///
/// #[treeloop::test(seeds = 50, strategy = Pct(2))]
/// async fn both_increments_land() {
///     let hits = Rc::new(Cell::new(0));
///     let tasks: Vec<_> = (0..2)
///         .map(|_| {
///             let hits = hits.clone();
///             treeloop::spawn(async move {
///                 treeloop::yield_now().await.unwrap();
///                 hits.set(hits.get() + 1);
///             })
///         })
///         .collect();
///     for task in tasks {
///         task.await.unwrap();
///     }
///     assert_eq!(hits.get(), 2);
/// }
/// ```
///
/// The body runs once per seed, so everything it uses must be created inside it (an
/// `async fn` without arguments already is).
///
/// # Options
///
/// Each calls the `treeloop::Builder` method of the same name, except `seeds`. A bool
/// option may be written bare (`start_paused`); a duration is a string, an integer and a
/// unit of `us`, `ms`, `s`, `m`, `h`.
///
/// | option | value | |
/// |---|---|---|
/// | `start_paused` | bool | virtual time (implied by a seed) |
/// | `seeds` | integer ≥ 1 | run under seeds `0..N`, print the replay line on failure |
/// | `seed` | integer | one deterministic run under this seed |
/// | `strategy` | `Fifo`, `Random`, `Pct(depth)` | how a seeded run picks the next task (needs `seeds` or `seed`) |
/// | `report_deadlocks` | bool | panic with the tree instead of hanging when nothing can progress |
/// | `allow_real_io` | bool | real sockets in a seeded run |
/// | `diagnostics` | bool | poll counts and times in dumps |
/// | `stall_watchdog` | duration | report tasks of a cancelled subtree that make no progress |
/// | `stall_grace` | duration | and abort them this long after the report |
/// | `slow_poll_threshold` | duration | report polls that block the loop this long |
///
/// The signal options of [`main`](macro@main) are refused: signal handlers belong to the
/// whole process, and a test binary runs many tests at once. A test stops its runtime with
/// `treeloop::shutdown()` instead. `TREELOOP_SEED=s` replays one seed; `TREELOOP_SEEDS=n`
/// changes how many are tried.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    item::expand(Macro::Test, args.into(), item.into()).into()
}
