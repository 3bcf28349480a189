//! One run of a test body, and what the test harness says about it: what a body may return
//! ([`CheckOutcome`]), how a run failed ([`Failed`]) and how it ended as runs compare it
//! ([`Ending`]), [`run_once`], and the line that replays a schedule ([`replay_line`]).
//!
//! `test::check` (`check.rs`) stands on the three ways of running a body again that sit
//! above this file: `determinism.rs` (a seed once more, or many times), `explore.rs`
//! (every schedule; a `TREELOOP_SCHEDULE` replay) and `shrink.rs` (the run closest to FIFO
//! that fails the same way). They share these words and nothing else; this file stands on
//! the runtime alone, so none of them points back up at another.
//!
//! # Ground rules
//!
//! - Every run is one fresh runtime built from the builder given: no state is carried from
//!   one run to the next.
//! - A run fails by panicking (the payload is kept, to be raised again as is) or by
//!   returning `Err` (kept as its `Debug` text); two runs end the same way when their
//!   [`Ending`]s are equal, which compares panics by message.

use std::fmt;
use std::fmt::Debug;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe, Location};

use treeloop_executor::{Schedule, panic_message};

use crate::runtime::{Builder, Runtime};

/// What a checked test body may return: `()`, or a `Result` whose `Err` is a failure.
#[diagnostic::on_unimplemented(
    message = "a checked test body returns `{Self}`; it must return `()` or `Result<(), E>` with `E: Debug`",
    label = "this body's output",
    note = "return `()`, or `Result<(), E>` so that `Err` fails the seed; assert on values inside the body"
)]
pub trait CheckOutcome {
    /// `Err(description)` for a failure.
    fn into_failure(self) -> Result<(), String>;
}

impl CheckOutcome for () {
    fn into_failure(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: Debug> CheckOutcome for Result<(), E> {
    fn into_failure(self) -> Result<(), String> {
        self.map_err(|err| format!("{err:?}"))
    }
}

/// How a run failed.
pub(crate) enum Failed {
    /// It panicked.
    Panicked(treeloop_executor::Payload),
    /// It returned `Err`.
    Returned(String),
}

impl Failed {
    /// Fails the test: the original panic again, or a panic naming the `Err`.
    pub(crate) fn raise(self, when: &str) -> ! {
        match self {
            Failed::Panicked(payload) => panic::resume_unwind(payload),
            Failed::Returned(description) => panic!("test body failed {when}: {description}"),
        }
    }
}

/// Runs `body()` once on a runtime built from `builder`.
pub(crate) fn run_once<F, Fut>(
    builder: &Builder,
    body: &F,
    location: &'static Location<'static>,
) -> (Runtime, Option<Failed>)
where
    F: Fn() -> Fut,
    Fut: Future,
    Fut::Output: CheckOutcome,
{
    let runtime = builder
        .build()
        .unwrap_or_else(|err| panic!("treeloop::test could not build a runtime: {err}"));
    let run = panic::catch_unwind(AssertUnwindSafe(|| runtime.block_on_at(body(), location)));
    let failed = match run {
        Ok(outcome) => outcome.into_failure().err().map(Failed::Returned),
        Err(payload) => Some(Failed::Panicked(payload)),
    };
    (runtime, failed)
}

/// How a run ended, as compared between runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The body returned `()` or `Ok(())`.
    Passed,
    /// It returned `Err`, described with `Debug`.
    Returned(String),
    /// It panicked with this message.
    Panicked(String),
}

impl Ending {
    /// How a run ended that failed as `failed` (`None`: it passed).
    pub(crate) fn of(failed: Option<&Failed>) -> Ending {
        match failed {
            None => Ending::Passed,
            Some(Failed::Returned(description)) => Ending::Returned(description.clone()),
            Some(Failed::Panicked(payload)) => Ending::Panicked(panic_message(payload).to_owned()),
        }
    }
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ending::Passed => f.write_str("passed"),
            Ending::Returned(description) => write!(f, "returned Err({description})"),
            Ending::Panicked(message) => write!(f, "panicked: {message:?}"),
        }
    }
}

/// `TREELOOP_SCHEDULE=<schedule> cargo test <this test> -- --exact`.
/// A schedule cut at `SCHEDULE_KEPT` choices says so after the line.
pub(crate) fn replay_line(schedule: &Schedule) -> String {
    let cut = match schedule.cut() {
        0 => String::new(),
        n => format!(
            "\n    (only its first {} choices were kept, {n} later ones were not: it replays \
             the failure only if that happens within them)",
            schedule.len()
        ),
    };
    format!(
        "TREELOOP_SCHEDULE={schedule} cargo test {} -- --exact{cut}",
        test_name()
    )
}

/// The running test's name: libtest names each test's thread after it.
pub(crate) fn test_name() -> String {
    std::thread::current()
        .name()
        .filter(|name| *name != "main")
        .map(str::to_owned)
        .unwrap_or_else(|| "<test name>".into())
}
