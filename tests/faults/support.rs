//! The harness every fault scenario runs in: [`no_hang`] (a hang detector: the scenario runs on
//! its own thread), [`panic_message_of`] and [`until_cancelled`], the [`Ledger`] of poll and
//! drop counts with its [`Tracked`] futures, hand-written faulty futures ([`Bomb`], a foreign
//! waker that panics, a waker [`Stash`]), and [`assert_still_usable`], the check that ends
//! every scenario.
//!
//! Ground rules: each future a scenario instruments is tracked under a name unique to its
//! test, and the test ends with [`Ledger::assert_each_dropped_once`], so a leak, a double drop
//! or a future that kept a clone of the ledger fails it; nothing here holds state between
//! tests.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, mpsc};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use crate::common::{Log, message, ms, ms_since};
use treeloop::time::{Instant, sleep};
use treeloop::{Cancelled, Runtime, checkpoint, spawn};

/// How long a scenario may take before it counts as hung. Each takes milliseconds; only a
/// lost wake or a cleanup that never ends comes anywhere near this. A hang detector, not a
/// timing assertion.
const HANG_LIMIT: Duration = Duration::from_secs(60);

/// Runs `scenario` on its own thread and returns its result, re-raising its panic. Fails the
/// test if it has not finished within [`HANG_LIMIT`] (the hung thread cannot be joined then;
/// the failing test ends the process anyway).
pub fn no_hang<T: Send + 'static>(scenario: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, finished) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("fault scenario".into())
        .spawn(move || {
            // A send error means the test already failed as hung: nobody listens.
            let _ = done.send(scenario());
        })
        .expect("spawn the scenario thread");
    match finished.recv_timeout(HANG_LIMIT) {
        Ok(value) => {
            thread.join().expect("the scenario returned");
            value
        }
        // The scenario panicked: the sender was dropped while unwinding.
        Err(mpsc::RecvTimeoutError::Disconnected) => match thread.join() {
            Err(payload) => resume_unwind(payload),
            Ok(()) => unreachable!("the scenario neither returned nor panicked"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("the scenario hung: not finished after {HANG_LIMIT:?}")
        }
    }
}

/// Runs `f`, which must panic, and returns the message of its payload.
pub fn panic_message_of<T>(f: impl FnOnce() -> T) -> String {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(_) => panic!("expected a panic"),
        Err(payload) => message(&*payload),
    }
}

/// Sleeps until the region is cancelled and returns the cancellation; an hour of virtual
/// time passing first fails the test (so a lost cancellation cannot hang it).
pub async fn until_cancelled() -> Cancelled {
    sleep(Duration::from_secs(3600))
        .await
        .expect_err("expected to be cancelled before the hour passed")
}

/// Poll and drop counts of every instrumented future of one test, by name.
#[derive(Clone, Default)]
pub struct Ledger(Rc<RefCell<BTreeMap<&'static str, Counts>>>);

/// What happened to one instrumented future.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Times it was polled.
    pub polls: usize,
    /// Times it was dropped: exactly 1 is right, 0 is a leak, 2 a double drop.
    drops: usize,
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// Wraps `future` so its polls and its drop are counted under `name` (unique per test).
    pub fn track<F: Future>(&self, name: &'static str, future: F) -> Tracked<F> {
        let fresh = self.0.borrow_mut().insert(name, Counts::default());
        assert!(fresh.is_none(), "two futures named {name:?}");
        Tracked {
            inner: Box::pin(future),
            name,
            ledger: self.clone(),
        }
    }

    pub fn counts(&self, name: &str) -> Counts {
        self.0.borrow()[name]
    }

    /// Asserts that exactly the futures named `names` were tracked, that each was dropped
    /// exactly once, and that none of them (nor anything else) still holds a clone of
    /// this ledger: every future that captured one was freed.
    pub fn assert_each_dropped_once(self, names: &[&str]) {
        let drops: Vec<(&str, usize)> =
            self.0.borrow().iter().map(|(n, c)| (*n, c.drops)).collect();
        let mut expected: Vec<(&str, usize)> = names.iter().map(|n| (*n, 1)).collect();
        expected.sort();
        assert_eq!(drops, expected, "every future dropped exactly once");
        assert_eq!(
            Rc::strong_count(&self.0),
            1,
            "a future holding a clone of the ledger was leaked"
        );
    }
}

/// A future counted by a [`Ledger`].
pub struct Tracked<F> {
    /// The future itself.
    inner: Pin<Box<F>>,
    /// Its name in the ledger.
    name: &'static str,
    /// Where its polls and drop are counted; every clone is one more owner of the counts.
    ledger: Ledger,
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if let Some(counts) = self.ledger.0.borrow_mut().get_mut(self.name) {
            counts.polls += 1;
        }
        self.inner.as_mut().poll(cx)
    }
}

impl<F> Drop for Tracked<F> {
    fn drop(&mut self) {
        // Counted before the inner future is dropped, so a panicking inner `Drop` is counted.
        if let Some(counts) = self.ledger.0.borrow_mut().get_mut(self.name) {
            counts.drops += 1;
        }
    }
}

/// Logs `what` with the virtual time when dropped: shows *when* the runtime dropped the
/// future holding it.
pub struct LogOnDrop {
    /// Where to log.
    pub log: Log,
    /// What to log.
    pub what: &'static str,
    /// Time zero of the logged milliseconds.
    pub start: Instant,
}

impl Drop for LogOnDrop {
    fn drop(&mut self) {
        self.log
            .push(format!("{} at {}", self.what, ms_since(self.start)));
    }
}

/// A hand-written future that panics when polled or stays pending, and may panic when
/// dropped. Hand-written on purpose: an `async` block drops its locals inside `poll`, so only
/// such a future's `Drop` runs where the runtime itself drops it.
pub struct Bomb {
    /// `Some(message)`: panic at the first poll; `None`: pending forever.
    pub poll_panic: Option<&'static str>,
    /// `Some(message)`: panic when dropped.
    pub drop_panic: Option<&'static str>,
}

impl Future for Bomb {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        match self.poll_panic {
            Some(text) => panic!("{text}"),
            None => Poll::Pending,
        }
    }
}

impl Drop for Bomb {
    fn drop(&mut self) {
        if let Some(text) = self.drop_panic {
            panic!("{text}");
        }
    }
}

/// A waker whose `wake` panics: what a buggy foreign combinator might pass down.
struct PanickingWake;

impl Wake for PanickingWake {
    fn wake(self: Arc<Self>) {
        panic!("foreign wake boom");
    }
}

/// A foreign future that polls `inner` with a waker of its own, one that panics when woken.
/// Whatever the runtime registers that waker with (a timer, a region) calls it later from
/// inside the runtime.
pub struct PanickingWakePath<F> {
    /// The treeloop future it wraps.
    inner: Pin<Box<F>>,
    /// A [`PanickingWake`], passed to `inner` instead of the task's waker.
    waker: Waker,
}

pub fn with_panicking_waker<F: Future>(inner: F) -> PanickingWakePath<F> {
    PanickingWakePath {
        inner: Box::pin(inner),
        waker: Waker::from(Arc::new(PanickingWake)),
    }
}

impl<F: Future> Future for PanickingWakePath<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<F::Output> {
        let waker = self.waker.clone();
        self.inner.as_mut().poll(&mut Context::from_waker(&waker))
    }
}

/// A future that stashes a clone of its task's waker, then waits forever (ignoring
/// cancellation, like any foreign future).
pub fn stash_waker_and_wait(stash: Rc<RefCell<Vec<Waker>>>) -> impl Future<Output = ()> {
    poll_fn(move |cx| {
        stash.borrow_mut().push(cx.waker().clone());
        Poll::Pending
    })
}

/// Collects the wakers the runtime will later be asked to wake from another thread.
pub type Stash = Rc<RefCell<Vec<Waker>>>;

/// Asserts that `rt` still works after the fault: a fresh root is not cancelled, a child
/// sleeps exactly 5 virtual ms and returns its value, and the tree is empty afterwards.
pub fn assert_still_usable(rt: &Runtime) {
    assert_eq!(rt.live_nodes(), 0, "the fault left nodes in the tree");
    let ledger = Ledger::new();
    let (root_mark, value, elapsed) = rt.block_on({
        let ledger = ledger.clone();
        async move {
            let start = Instant::now();
            let child =
                spawn(ledger.track("fresh child", async { sleep(ms(5)).await.map(|()| 9) }));
            let root_mark = checkpoint().await;
            (root_mark, child.await.unwrap(), ms_since(start))
        }
    });
    assert_eq!((root_mark, value, elapsed), (Ok(()), Ok(9), 5));
    assert_eq!(ledger.counts("fresh child").polls, 2);
    ledger.assert_each_dropped_once(&["fresh child"]);
    assert_eq!(rt.live_nodes(), 0);
}
