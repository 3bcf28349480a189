//! The interpreter: runs a plan on treeloop, one future per node (see [`run`]), plus the
//! scheduled canceller, recording what happens through the [`Harness`].
//!
//! Everything but the plan's timed events takes no virtual time: cleanups await a shielded
//! `yield_now`, and joins are shielded so that a cancelled region still waits for outcomes.

use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::panic;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use treeloop::sync::mpsc::{self, RecvError};
use treeloop::time::{Instant, sleep_until, timeout, timeout_at};
use treeloop::{
    Cancelled, JoinError, Scope, ScopeError, checkpoint, scope, shield, spawn, supervisor,
    yield_now,
};

use crate::outcome::{INJECTED_PANIC, NodeResult, TreeError, injected_panic_in, payload_text};
use crate::plan::{Action, Kind, Launch, NodeId, Target, Time};
use crate::record::{Finally, Harness, JoinedTask, MemberTask, NodeFuture, helper};

/// A one-shot signal that knows nothing of treeloop: waiting on it is a foreign future,
/// which cancellation cannot interrupt (R9).
#[derive(Clone, Default)]
struct Gate(Rc<GateState>);

#[derive(Default)]
struct GateState {
    open: Cell<bool>,
    waiter: RefCell<Option<Waker>>,
}

impl Gate {
    fn open(&self) {
        self.0.open.set(true);
        let waiter = self.0.waiter.borrow_mut().take();
        if let Some(waker) = waiter {
            waker.wake();
        }
    }

    async fn wait(&self) {
        poll_fn(|cx| {
            if self.0.open.get() {
                Poll::Ready(())
            } else {
                *self.0.waiter.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
    }
}

/// Opens a gate once every tracked future has been dropped: how a `Spawn` node waits for
/// detached children it has no handle to.
#[derive(Clone)]
struct Countdown(Rc<(Cell<usize>, Gate)>);

impl Countdown {
    fn new(count: usize) -> Countdown {
        let countdown = Countdown(Rc::new((Cell::new(count), Gate::default())));
        if count == 0 {
            countdown.0.1.open();
        }
        countdown
    }

    fn track<F: Future>(&self, inner: F) -> Tracked<F> {
        Tracked {
            inner: Box::pin(inner),
            countdown: self.clone(),
        }
    }

    async fn wait(&self) {
        self.0.1.wait().await;
    }
}

struct Tracked<F> {
    inner: Pin<Box<F>>,
    countdown: Countdown,
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<F> Drop for Tracked<F> {
    fn drop(&mut self) {
        let (left, gate) = &*self.countdown.0;
        left.set(left.get() - 1);
        if left.get() == 0 {
            gate.open();
        }
    }
}

/// The future of node `id`.
pub fn run(harness: &Rc<Harness>, id: NodeId) -> NodeFuture {
    let h = harness.clone();
    let inner: Pin<Box<dyn Future<Output = NodeResult>>> = match h.plan.nodes[id].kind.clone() {
        Kind::Leaf {
            action,
            at,
            cleanup_fails,
        } => Box::pin(leaf_node(h.clone(), id, action, at, cleanup_fails)),
        Kind::Spawn(children) => Box::pin(spawn_node(h.clone(), id, children)),
        Kind::Scope {
            supervise, members, ..
        } => Box::pin(scope_node(h.clone(), id, supervise, members)),
        Kind::Shield(inner) => Box::pin(shield(run(&h, inner))),
        Kind::Timeout { deadline: 0, body } => {
            let body = run(&h, body);
            Box::pin(async move {
                timeout(Duration::ZERO, body)
                    .await
                    .unwrap_or(Err(TreeError::Elapsed(id)))
            })
        }
        Kind::Timeout { deadline, body } => {
            let deadline = h.instant(deadline);
            let body = run(&h, body);
            Box::pin(async move {
                timeout_at(deadline, body)
                    .await
                    .unwrap_or(Err(TreeError::Elapsed(id)))
            })
        }
    };
    h.log.borrow_mut().created[id] += 1;
    NodeFuture {
        harness: h,
        id,
        inner,
    }
}

/// A leaf: its action, then its cleanups: a drop guard, and an awaiting one in a shield,
/// which may fail on purpose.
async fn leaf_node(
    h: Rc<Harness>,
    id: NodeId,
    action: Action,
    at: Time,
    cleanup_fails: bool,
) -> NodeResult {
    let _finally = Finally {
        harness: h.clone(),
        leaf: id,
    };
    let until = h.instant(at);
    let acted: NodeResult = async {
        match action {
            Action::Sleep => sleep_until(until).await?,
            Action::Yield(times) => {
                sleep_until(until).await?;
                for _ in 0..times {
                    yield_now().await?;
                }
            }
            Action::Channel(count) => receive_messages(&h, id, until, count).await?,
            Action::Fail => {
                sleep_until(until).await?;
                return Err(TreeError::Injected(id));
            }
            Action::Panic => {
                sleep_until(until).await?;
                panic::panic_any(format!("{INJECTED_PANIC}{id}"));
            }
            Action::Stubborn => {
                ignore_cancellation_until(&h, id, until).await;
                checkpoint().await?;
            }
        }
        Ok(())
    }
    .await;
    // Cleanup that awaits: in a shield, so it runs to its end even when cancelled (R11).
    if let Err(cancelled) = shield(yield_now()).await {
        h.violation(format!(
            "#{id}: a shielded await in cleanup failed: {cancelled}"
        ));
    }
    h.log.borrow_mut().cleanup_ran[id] += 1;
    if cleanup_fails {
        return Err(TreeError::CleanupFailed(id));
    }
    acted
}

/// Receives `count` messages from a helper task that starts sending at `until`; a cancelled
/// receive ends it early. The helper is a child of the region the leaf runs in, so the same
/// cancellation reaches it.
async fn receive_messages(
    h: &Rc<Harness>,
    id: NodeId,
    until: Instant,
    count: u8,
) -> Result<(), Cancelled> {
    let (tx, mut rx) = mpsc::bounded(1);
    let sender = spawn(helper(h, id, async move {
        if sleep_until(until).await.is_ok() {
            for message in 0..count {
                if tx.send(message).await.is_err() {
                    break;
                }
            }
        }
    }));
    let mut received = Ok(());
    for expected in 0..count {
        match rx.recv().await {
            Ok(message) if message == expected => {}
            Ok(message) => h.violation(format!("#{id} received {message}, expected {expected}")),
            Err(RecvError::Cancelled(cancelled)) => {
                received = Err(cancelled);
                break;
            }
            Err(RecvError::Closed) => {
                h.violation(format!(
                    "#{id}: the channel closed before message {expected}"
                ));
                break;
            }
        }
    }
    drop(rx);
    if let Err(err) = shield(sender).await {
        h.violation(format!("#{id}: joining the sender failed: {err}"));
    }
    received
}

/// Waits until `until` on a foreign future (a [`Gate`] opened by a shielded timer task):
/// cancellation wakes the task (R9) but cannot end the wait.
async fn ignore_cancellation_until(h: &Rc<Harness>, id: NodeId, until: Instant) {
    let gate = Gate::default();
    let opener = gate.clone();
    let timer = spawn(helper(
        h,
        id,
        shield(async move {
            let slept = sleep_until(until).await;
            opener.open();
            slept
        }),
    ));
    gate.wait().await;
    match shield(timer).await {
        Ok(Ok(())) => {}
        Ok(Err(cancelled)) => h.violation(format!("#{id}: a shielded sleep failed: {cancelled}")),
        Err(err) => h.violation(format!("#{id}: joining the timer failed: {err}")),
    }
}

/// Spawns the children (joined ones keep their handle in the registry; detached ones drop
/// it at once; delayed ones only at their time), joins the joined ones in a shield, waits for the detached ones to be gone,
/// and combines the results (see [`combine_joined`]).
async fn spawn_node(h: Rc<Harness>, id: NodeId, children: Vec<NodeId>) -> NodeResult {
    let detached = |child: NodeId| h.plan.nodes[child].launch == Launch::Detached;
    let all_gone = Countdown::new(children.iter().filter(|&&c| detached(c)).count());
    let spawn_joined = |child: NodeId| {
        let task = Rc::new(JoinedTask(RefCell::new(spawn(run(&h, child)))));
        h.tasks.borrow_mut()[child] = Some(task.clone());
        task
    };
    let mut joined = Vec::new();
    let mut delayed = Vec::new();
    for &child in &children {
        if detached(child) {
            drop(spawn(all_gone.track(run(&h, child))));
        } else if let Some(at) = h.plan.nodes[child].launch.delay() {
            delayed.push((at, child));
        } else {
            joined.push((child, spawn_joined(child)));
        }
    }
    // The late ones, each at its time (a shielded sleep: the spawn happens even when the
    // region was cancelled meanwhile, R8).
    delayed.sort_unstable();
    for (at, child) in delayed {
        if let Err(cancelled) = shield(sleep_until(h.instant(at))).await {
            h.violation(format!("#{id}: a shielded sleep failed: {cancelled}"));
        }
        joined.push((child, spawn_joined(child)));
    }
    joined.sort_by_key(|&(child, _)| child);
    let mut outcomes = Vec::new();
    for (child, task) in joined {
        // A join in a possibly cancelled region: shielded, so it waits for the outcome.
        let outcome = shield(poll_fn(|cx| Pin::new(&mut *task.0.borrow_mut()).poll(cx))).await;
        outcomes.push((child, outcome));
    }
    all_gone.wait().await;
    combine_joined(&h, id, outcomes)
}

/// The first panic (in child order) is re-raised, the later ones are kept as absorbed;
/// otherwise the real errors in child order; otherwise the first cancellation.
fn combine_joined(
    h: &Harness,
    id: NodeId,
    outcomes: Vec<(NodeId, Result<NodeResult, JoinError>)>,
) -> NodeResult {
    let mut first_panic = None;
    let mut errors = Vec::new();
    let mut cancelled = None;
    for (child, outcome) in outcomes {
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(TreeError::Cancelled(c))) => {
                cancelled.get_or_insert(c);
            }
            Ok(Err(error)) => errors.push(error),
            // R20: the abort is this child's failure, in child order like the others.
            Err(err) if err.is_aborted() => errors.push(TreeError::Aborted(child)),
            Err(err) if err.is_panic() => {
                let payload = err.into_panic();
                if first_panic.is_none() {
                    first_panic = Some(payload);
                } else {
                    let leaf = payload_text(&*payload).and_then(injected_panic_in);
                    match leaf {
                        Some(leaf) => h.log.borrow_mut().absorbed_panics.push(leaf),
                        None => h.violation(format!("#{child} panicked with a foreign payload")),
                    }
                }
            }
            Err(err) => h.violation(format!(
                "#{id}: the shielded join of #{child} failed: {err}"
            )),
        }
    }
    if let Some(payload) = first_panic {
        panic::resume_unwind(payload);
    }
    match (errors.is_empty(), cancelled) {
        (false, _) => Err(TreeError::Joined(id, errors)),
        (true, Some(c)) => Err(TreeError::Cancelled(c)),
        (true, None) => Ok(()),
    }
}

/// A `scope` or `supervisor` whose body spawns the members (registering their handles and
/// its own, for the scheduled cancels), then runs the body node, if any, in the scope's
/// region. A `ScopeError` becomes the node's `TreeError`.
async fn scope_node(
    h: Rc<Harness>,
    id: NodeId,
    supervise: bool,
    members: Vec<NodeId>,
) -> NodeResult {
    let body = |s: Scope<TreeError>| {
        let h = h.clone();
        async move {
            h.scopes.borrow_mut()[id] = Some(s.clone());
            let mut body = None;
            for member in members {
                if h.plan.nodes[member].launch == Launch::Body {
                    body = Some(member);
                    continue;
                }
                let handle = s
                    .spawn(run(&h, member))
                    .expect("a scope is open while its body runs");
                h.tasks.borrow_mut()[member] = Some(Rc::new(MemberTask(handle)));
            }
            match body {
                Some(body) => run(&h, body).await,
                None => Ok(()),
            }
        }
    };
    let result = if supervise {
        supervisor(body).await
    } else {
        scope(body).await
    };
    match result {
        Ok(_) => Ok(()),
        Err(ScopeError::Failed { first, rest }) => Err(TreeError::Scope(
            id,
            std::iter::once(first).chain(rest).collect(),
        )),
        Err(ScopeError::Cancelled(cancelled)) => Err(TreeError::Cancelled(cancelled)),
    }
}

/// The root: sets the origin, starts the scheduled canceller (in a shield, so a cancelled
/// root cannot stop it), runs the top node, then joins the canceller.
pub async fn root(h: Rc<Harness>) -> NodeResult {
    h.origin.set(Some(Instant::now()));
    let canceller = spawn(shield(cancel_on_schedule(h.clone())));
    let result = run(&h, 0).await;
    if let Err(err) = shield(canceller).await {
        h.violation(format!("joining the canceller failed: {err}"));
    }
    result
}

/// Sleeps to each scheduled cancel's instant and cancels (or aborts) its target.
async fn cancel_on_schedule(h: Rc<Harness>) {
    for &(at, target) in &h.plan.cancels {
        if let Err(cancelled) = sleep_until(h.instant(at)).await {
            h.violation(format!("the shielded canceller was cancelled: {cancelled}"));
        }
        match target {
            Target::Task(id) if h.plan.nodes[id].launch.abort().is_some() => h.task(id).abort(),
            Target::Task(id) => h.task(id).cancel(),
            Target::Scope(id) => {
                let scope = h.scopes.borrow()[id].clone();
                scope
                    .expect("the scope's body registers it at 0 ms")
                    .cancel();
            }
        }
    }
}
