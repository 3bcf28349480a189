//! Instruments shared by the integration tests: futures that count their polls and drops,
//! an ordered event log, and a runtime on virtual time.
#![allow(dead_code)] // each test binary uses a different subset

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use treeloop::Runtime;

/// A runtime on virtual time: sleeps cost nothing and `Instant::now()` is exact.
pub fn paused() -> Runtime {
    treeloop::Builder::new()
        .start_paused(true)
        .build()
        .expect("runtime")
}

/// Milliseconds of (virtual) time since `start`.
pub fn ms_since(start: treeloop::time::Instant) -> u128 {
    start.elapsed().as_millis()
}

/// Shorthand for `Duration::from_millis`.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Poll and drop counters of one instrumented future.
#[derive(Clone, Default)]
pub struct Counters(Rc<(Cell<usize>, Cell<usize>)>);

impl Counters {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn polls(&self) -> usize {
        self.0.0.get()
    }
    pub fn drops(&self) -> usize {
        self.0.1.get()
    }
    /// Wraps `future` so its polls and its drop are counted here.
    pub fn probe<F: Future>(&self, future: F) -> Probe<F> {
        Probe {
            inner: Box::pin(future),
            counters: self.clone(),
        }
    }
}

/// A future whose polls and drop are counted.
pub struct Probe<F> {
    inner: Pin<Box<F>>,
    counters: Counters,
}

impl<F: Future> Future for Probe<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let c = &self.counters.0.0;
        c.set(c.get() + 1);
        self.inner.as_mut().poll(cx)
    }
}

impl<F> Drop for Probe<F> {
    fn drop(&mut self) {
        let d = &self.counters.0.1;
        d.set(d.get() + 1);
    }
}

/// A foreign future that never completes and knows nothing of treeloop: it ignores
/// cancellation and counts how often it is polled.
pub struct Forever(pub Rc<Cell<usize>>);

impl Future for Forever {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        self.0.set(self.0.get() + 1);
        Poll::Pending
    }
}

/// An ordered log of events, shared between tasks.
#[derive(Clone, Default)]
pub struct Log(Rc<RefCell<Vec<String>>>);

impl Log {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn push(&self, event: impl Into<String>) {
        self.0.borrow_mut().push(event.into());
    }
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.borrow_mut())
    }
    pub fn snapshot(&self) -> Vec<String> {
        self.0.borrow().clone()
    }
}

/// The message of a string panic payload.
pub fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        panic!("payload is not a string")
    }
}
