//! Letting a foreign future observe cancellation.
//!
//! A future from another crate knows nothing of treeloop's tree: in a cancelled region it
//! keeps waiting for whatever it waits for (R9). The runtime still wakes every task it marks,
//! once, so a wrapper gets polled promptly and can answer for it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::cancel::Cancelled;
use crate::checkpoint::poll_cancelled;

/// Extension methods for any future.
///
/// Users get `or_cancel` from `treeloop::FutureExt`, which adds `on_cancel` and calls this
/// one. Hidden so that this trait's blanket impl is not listed, unlinked, beside that one's
/// on the facade's page of every future type.
#[doc(hidden)]
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
        OrCancel { inner: self }
    }
}

impl<F: Future> FutureExt for F {}

pin_project! {
    /// The future of `or_cancel` (`treeloop::FutureExt::or_cancel`).
    #[derive(Debug)]
    #[must_use = "futures do nothing unless awaited"]
    pub struct OrCancel<F> {
        #[pin]
        inner: F,
    }
}

impl<F: Future> Future for OrCancel<F> {
    type Output = Result<F::Output, Cancelled>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(cancelled) = poll_cancelled(cx) {
            return cancelled.map(Err);
        }
        self.project().inner.poll(cx).map(Ok)
    }
}
