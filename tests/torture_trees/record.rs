//! What a run records: the harness shared by every future of one run, its log (counters
//! and return instants, one slot per node), the task handles it keeps, and the instrumented
//! futures that fill the log and check two invariants as they go: a node returns only after
//! every task below it has finished, and no task finishes while a future below it is alive
//! (R2, R4).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use treeloop::time::Instant;
use treeloop::{JoinHandle, Scope, ScopedJoinHandle};

use crate::outcome::{NodeResult, TreeError};
use crate::plan::{NodeId, Plan, Time};

/// How a node's future ended, as recorded.
#[derive(Clone, Debug)]
pub enum Returned {
    Value(NodeResult),
    Panicked,
}

/// Counters and records, one slot per node.
#[derive(Default)]
pub struct Log {
    /// Node futures created and dropped.
    pub created: Vec<u32>,
    pub dropped: Vec<u32>,
    /// Helper futures (channel senders, stubborn timers) created and dropped, per leaf.
    pub helpers_created: Vec<u32>,
    pub helpers_dropped: Vec<u32>,
    /// A leaf's synchronous cleanup (a drop guard; runs even when it panics).
    pub finally_ran: Vec<u32>,
    /// A leaf's awaiting cleanup (inside a shield; skipped by a panic).
    pub cleanup_ran: Vec<u32>,
    /// When and how each node's future returned.
    pub returned: Vec<Option<(Time, Returned)>>,
    /// Panics a `Spawn` node took from a join and did not re-raise.
    pub absorbed_panics: Vec<NodeId>,
    /// Broken invariants seen while running.
    pub violations: Vec<String>,
}

/// The task handles the test keeps: to cancel on schedule, and to ask whether finished.
pub trait Control {
    fn cancel(&self);
    fn abort(&self);
    fn is_finished(&self) -> bool;
}

/// A `Spawn` child: joined through the `RefCell` (borrowed only while polling the handle,
/// which runs no user code), so it can be cancelled and watched meanwhile.
pub struct JoinedTask(pub RefCell<JoinHandle<NodeResult>>);

impl Control for JoinedTask {
    fn cancel(&self) {
        self.0.borrow().cancel();
    }
    fn abort(&self) {
        self.0.borrow().abort();
    }
    fn is_finished(&self) -> bool {
        self.0.borrow().is_finished()
    }
}

pub struct MemberTask(pub ScopedJoinHandle<()>);

impl Control for MemberTask {
    fn cancel(&self) {
        self.0.cancel();
    }
    fn abort(&self) {
        self.0.abort();
    }
    fn is_finished(&self) -> bool {
        self.0.is_finished()
    }
}

/// Shared by every future of one run.
pub struct Harness {
    pub plan: Rc<Plan>,
    /// The root's start: virtual time zero.
    pub origin: Cell<Option<Instant>>,
    /// Handles by node id, for nodes with [`Launch::has_handle`].
    pub tasks: RefCell<Vec<Option<Rc<dyn Control>>>>,
    /// Scope handles by node id, for the scheduled self-cancels.
    pub scopes: RefCell<Vec<Option<Scope<TreeError>>>>,
    pub log: RefCell<Log>,
}

impl Harness {
    pub fn new(plan: Rc<Plan>) -> Rc<Harness> {
        let n = plan.nodes.len();
        Rc::new(Harness {
            plan,
            origin: Cell::new(None),
            tasks: RefCell::new(vec![None; n]),
            scopes: RefCell::new(vec![None; n]),
            log: RefCell::new(Log {
                created: vec![0; n],
                dropped: vec![0; n],
                helpers_created: vec![0; n],
                helpers_dropped: vec![0; n],
                finally_ran: vec![0; n],
                cleanup_ran: vec![0; n],
                returned: vec![None; n],
                ..Log::default()
            }),
        })
    }

    fn origin(&self) -> Instant {
        self.origin.get().expect("the root sets the origin first")
    }

    /// The instant `at` ms after the origin.
    pub fn instant(&self, at: Time) -> Instant {
        self.origin() + Duration::from_millis(at)
    }

    fn now(&self) -> Time {
        let elapsed = Instant::now().duration_since(self.origin());
        Time::try_from(elapsed.as_millis()).expect("virtual time fits")
    }

    pub fn violation(&self, text: String) {
        self.log.borrow_mut().violations.push(text);
    }

    pub fn task(&self, id: NodeId) -> Rc<dyn Control> {
        self.tasks.borrow()[id]
            .clone()
            .unwrap_or_else(|| panic!("harness: no handle registered for #{id}"))
    }

    /// Whether the task of `id` has finished (tasks without a kept handle: never asked).
    fn finished(&self, id: NodeId) -> bool {
        let control = self.tasks.borrow()[id].clone();
        control.is_some_and(|control| control.is_finished())
    }

    /// R2: a future below a task is dropped before the task finishes.
    fn check_tasks_above_alive(&self, id: NodeId, what: &str) {
        for task in self.plan.tasks_above(id) {
            if self.finished(task) {
                self.violation(format!(
                    "task #{task} finished before the {what} of #{id} was dropped"
                ));
            }
        }
    }

    fn returned(&self, id: NodeId, returned: Returned) {
        let now = self.now();
        let previous = self.log.borrow_mut().returned[id].replace((now, returned));
        if previous.is_some() {
            self.violation(format!("#{id} returned twice"));
        }
        // R2, R4, R16: a node returns only after every task below it has finished.
        for task in self.plan.tasks_below(id) {
            if !self.finished(task) {
                self.violation(format!(
                    "#{id} returned at {now}ms before its descendant task #{task} finished"
                ));
            }
        }
    }
}

/// A node's future: counts its creation and drop, records when and how it returned, and
/// checks on drop that the tasks above it are still alive.
pub struct NodeFuture {
    pub harness: Rc<Harness>,
    pub id: NodeId,
    pub inner: Pin<Box<dyn Future<Output = NodeResult>>>,
}

impl Future for NodeFuture {
    type Output = NodeResult;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<NodeResult> {
        let this = &mut *self;
        match panic::catch_unwind(AssertUnwindSafe(|| this.inner.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(result)) => {
                this.harness
                    .returned(this.id, Returned::Value(result.clone()));
                Poll::Ready(result)
            }
            Err(payload) => {
                this.harness.returned(this.id, Returned::Panicked);
                panic::resume_unwind(payload)
            }
        }
    }
}

impl Drop for NodeFuture {
    fn drop(&mut self) {
        self.harness.log.borrow_mut().dropped[self.id] += 1;
        self.harness.check_tasks_above_alive(self.id, "future");
    }
}

/// A leaf's helper task's future: counted, and checked like a node's.
pub struct HelperFuture<F> {
    harness: Rc<Harness>,
    leaf: NodeId,
    inner: Pin<Box<F>>,
}

pub fn helper<F: Future>(harness: &Rc<Harness>, leaf: NodeId, inner: F) -> HelperFuture<F> {
    harness.log.borrow_mut().helpers_created[leaf] += 1;
    HelperFuture {
        harness: harness.clone(),
        leaf,
        inner: Box::pin(inner),
    }
}

impl<F: Future> Future for HelperFuture<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<F> Drop for HelperFuture<F> {
    fn drop(&mut self) {
        self.harness.log.borrow_mut().helpers_dropped[self.leaf] += 1;
        self.harness
            .check_tasks_above_alive(self.leaf, "helper future");
    }
}

/// A leaf's synchronous cleanup: a drop guard, which runs however the leaf ends.
pub struct Finally {
    pub harness: Rc<Harness>,
    pub leaf: NodeId,
}

impl Drop for Finally {
    fn drop(&mut self) {
        self.harness.log.borrow_mut().finally_ran[self.leaf] += 1;
    }
}
