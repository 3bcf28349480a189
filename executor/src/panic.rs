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
///
/// Optimisation: the last waker is woken directly, outside `catch_unwind`, unless an earlier
/// one panicked: if it panics, no wake after it can be lost, and its panic is the first. Most
/// calls wake zero or one waker (a channel's send wakes its receiver), so they pay nothing
/// for the panic safety: on the side-by-side ping_pong over `sync::mpsc`, catching every
/// wake made a round trip 133 ns instead of 126-128. Costs a reader: the last waker is a
/// special case.
pub fn wake_all(wakers: impl IntoIterator<Item = Waker>) {
    let mut wakers = wakers.into_iter();
    let mut first_panic = None;
    let mut next = wakers.next();
    while let Some(waker) = next.take() {
        next = wakers.next();
        if next.is_none() && first_panic.is_none() {
            // The last one, and nothing panicked: a panic here loses nothing.
            waker.wake();
            return;
        }
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| waker.wake())) {
            first_panic.get_or_insert(payload);
        }
    }
    if let Some(payload) = first_panic {
        panic::resume_unwind(payload);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};

    use super::*;

    /// A waker that counts its wakes and, if given a message, panics with it.
    struct Probe {
        woken: Arc<AtomicUsize>,
        panics_with: Option<&'static str>,
    }

    impl Wake for Probe {
        fn wake(self: Arc<Self>) {
            self.woken.fetch_add(1, Ordering::SeqCst);
            if let Some(message) = self.panics_with {
                panic!("{message}");
            }
        }
    }

    /// Wakers for `plan` (a panic message or `None` each), all counting into one counter.
    fn wakers(plan: &[Option<&'static str>]) -> (Vec<Waker>, Arc<AtomicUsize>) {
        let woken = Arc::new(AtomicUsize::new(0));
        let wakers = plan
            .iter()
            .map(|&panics_with| {
                Waker::from(Arc::new(Probe {
                    woken: woken.clone(),
                    panics_with,
                }))
            })
            .collect();
        (wakers, woken)
    }

    /// Runs `wake_all` on wakers for `plan`: how many were woken, and the panic raised.
    fn run(plan: &[Option<&'static str>]) -> (usize, Option<String>) {
        let (wakers, woken) = wakers(plan);
        let raised = panic::catch_unwind(AssertUnwindSafe(|| wake_all(wakers)))
            .err()
            .map(|payload| panic_message(&payload).to_owned());
        (woken.load(Ordering::SeqCst), raised)
    }

    #[test]
    fn every_waker_is_woken_once_when_none_panics() {
        assert_eq!(run(&[]), (0, None));
        assert_eq!(run(&[None]), (1, None));
        assert_eq!(run(&[None, None, None]), (3, None));
    }

    #[test]
    fn a_panicking_waker_loses_no_wake_after_it_and_its_panic_goes_on() {
        assert_eq!(
            run(&[None, Some("middle"), None]),
            (3, Some("middle".into()))
        );
        assert_eq!(run(&[Some("first"), None]), (2, Some("first".into())));
        // The last one, woken outside `catch_unwind`: nothing is after it.
        assert_eq!(run(&[None, None, Some("last")]), (3, Some("last".into())));
        assert_eq!(run(&[Some("only")]), (1, Some("only".into())));
    }

    #[test]
    fn with_several_panics_the_first_goes_on_and_every_waker_is_woken() {
        assert_eq!(
            run(&[Some("one"), None, Some("two"), Some("three")]),
            (4, Some("one".into()))
        );
        assert_eq!(run(&[Some("one"), Some("last")]), (2, Some("one".into())));
    }
}
