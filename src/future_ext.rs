//! `FutureExt`: the two ways a foreign future meets treeloop's cancellation.
//!
//! A future from another crate cannot see the task tree (R9). Wrapped with
//! [`or_cancel`](FutureExt::or_cancel) it is abandoned when its region is cancelled: it
//! resolves to `Err(Cancelled)` and is dropped. Wrapped with
//! [`on_cancel`](FutureExt::on_cancel) it is *asked to stop* instead: the cancellation is
//! hidden from it and a hook calls its own graceful shutdown (hyper's
//! `graceful_shutdown`), then it runs to completion. One trait for both, so one import
//! gives a facade user either.

use std::future::Future;
use std::pin::Pin;

use treeloop_executor::{Cancelled, OrCancel};
use treeloop_scope::OnCancel;

/// Extension methods for any future: how it answers treeloop's cancellation.
pub trait FutureExt: Future + Sized {
    /// Makes this future a treeloop await point: in a cancelled region it resolves to
    /// `Err(Cancelled)` instead of polling the inner future (which is then dropped with the
    /// wrapper, so whatever it was doing is abandoned).
    ///
    /// ```
    /// use treeloop::FutureExt;
    /// # treeloop::block_on(async {
    /// let value = std::future::ready(7).or_cancel().await;
    /// assert_eq!(value, Ok(7));
    /// # });
    /// ```
    fn or_cancel(self) -> OrCancel<Self> {
        treeloop_executor::FutureExt::or_cancel(self)
    }

    /// Runs this future with cancellation from outside hidden, and calls `hook` on it,
    /// once, when its region is cancelled: the way to let a protocol drain (a hyper
    /// connection's `graceful_shutdown()`) instead of being cut off. `.grace(d)` bounds the
    /// drain. See [`on_cancel`](crate::on_cancel) for the rules and an example.
    #[track_caller]
    fn on_cancel<H>(self, hook: H) -> OnCancel<Self, H>
    where
        H: FnOnce(Pin<&mut Self>, Cancelled),
    {
        treeloop_scope::on_cancel(self, hook)
    }
}

impl<F: Future> FutureExt for F {}
