//! `treeloop::sync`: events, channels, mutexes and semaphores as cancellation-aware await
//! points. For each primitive: the basic behaviour, FIFO order where it applies, and the
//! cancel-has-no-effect cases (R6 level-triggered, R7 no effect, R12 no hang), then misuse.
//!
//! One test binary; the cases live in `tests/sync/`, one file per primitive.

mod common;

#[path = "sync/broadcast.rs"]
mod broadcast;
#[path = "sync/event.rs"]
mod event;
#[path = "sync/misuse.rs"]
mod misuse;
#[path = "sync/mpsc.rs"]
mod mpsc;
#[path = "sync/mutex.rs"]
mod mutex;
#[path = "sync/oneshot.rs"]
mod oneshot;
#[path = "sync/semaphore.rs"]
mod semaphore;

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;

/// Polls `future` exactly once from inside the task (so it registers as a waiter), and
/// returns whether it completed.
pub async fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    poll_fn(|cx| Poll::Ready(Pin::new(&mut *future).poll(cx))).await
}
