//! Panics as values: the payload type, its message, and waking many wakers when any of them
//! may panic.
//!
//! # Ground rules
//!
//! - A payload is what `catch_unwind` returns; the runtime moves it to whoever awaits the
//!   task (R17) and never formats it except through [`panic_message`].
//! - [`wake_all`] wakes every waker even when one panics: the wakes after a panicking one
//!   are not lost (their tasks would sleep forever), and the first panic continues after.
//!
//! Nothing here knows the runtime: every other module may use it.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::task::Waker;

/// A panic payload, as `catch_unwind` returns it.
pub type Payload = Box<dyn Any + Send + 'static>;

/// The message of a panic payload, when it is a string. Takes the box itself: a
/// `&Box<dyn Any>` coerced to `&dyn Any` would downcast the box, not the payload.
pub fn panic_message(payload: &Payload) -> &str {
    if let Some(message) = payload.downcast_ref::<&'static str>() {
        message
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message
    } else {
        "<non-string panic payload>"
    }
}

/// Wakes every waker, even if one of them panics (a foreign waker may): the rest are still
/// woken, then the first panic continues. Public for the reactor and the scope crate's
/// primitives, which wake in bulk too.
#[doc(hidden)]
pub fn wake_all(wakers: impl IntoIterator<Item = Waker>) {
    let mut first_panic = None;
    for waker in wakers {
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| waker.wake())) {
            first_panic.get_or_insert(payload);
        }
    }
    if let Some(payload) = first_panic {
        panic::resume_unwind(payload);
    }
}
