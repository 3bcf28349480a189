//! The macros' compile errors, collected so that a user sees every mistake at once.
//!
//! # Ground rules
//!
//! - Nothing stops at the first mistake: every check pushes its error and goes on, and the
//!   expansion reports them all together as one combined `syn::Error` (rustc shows each
//!   at its own span).
//! - This file knows nothing of options or values: `values.rs`, `options.rs` and `item.rs`
//!   all push into it, so it sits under all three.

use syn::Error;

/// Errors collected so that a user sees every mistake at once.
#[derive(Default)]
pub(crate) struct Errors {
    /// All of them, combined; `None` while there is none.
    first: Option<Error>,
}

impl Errors {
    /// Adds `error`.
    pub(crate) fn push(&mut self, error: Error) {
        match &mut self.first {
            Some(first) => first.combine(error),
            None => self.first = Some(error),
        }
    }

    /// The value of `result`, or `None` after keeping its error.
    pub(crate) fn keep<T>(&mut self, result: Result<T, Error>) -> Option<T> {
        result.map_err(|error| self.push(error)).ok()
    }

    /// `Err` with every error pushed, if any was.
    pub(crate) fn finish(self) -> Result<(), Error> {
        self.first.map_or(Ok(()), Err)
    }
}
