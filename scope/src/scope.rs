//! `scope`: a nursery. The body and every member run in one region of the tree; the scope
//! ends only when all of them have finished (R4).
//!
//! ```text
//!   poll body in the region ──body returned──> wait for members ──none left──> close region
//!        │ a member fails (fail-fast): cancel region, keep going │   and report (R13–R15, R17)
//! ```
//!
//! # Ground rules
//!
//! - The region is opened at the first poll, under the node awaiting the scope, so the
//!   scope is cancelled with whatever encloses it.
//! - Members are spawned *into the region* through any clone of [`Scope`], from anywhere
//!   (R1); once the scope has ended, spawning is refused and the future dropped unrun (R4).
//! - Nothing is returned before every member has finished its cleanup: errors and panics
//!   are collected meanwhile and reported at the end, a panic by re-raising it.
//! - Dropping an unfinished scope future cancels its region: the members clean up and
//!   finish under the enclosing task, which still waits for them (R2).
//!
//! # What a scope returns, and who wins
//!
//! The outcome is decided once, when the last member has finished, from what is true at
//! that moment, in this order:
//!
//! 1. a panic of the body or a member is re-raised (R17);
//! 2. real errors: `Err(ScopeError::Failed)` with every one of them (R13, R14);
//! 3. **the enclosing region is cancelled** (the task or region that awaits the scope is
//!    marked, not hidden by a shield): `Err(ScopeError::Cancelled)` with *its* reason, even
//!    if the scope also cancelled itself, before or after (R15, as in trio). A scope's own
//!    cancel is meant to stop the scope, not to swallow a shutdown of everything around
//!    it;
//! 4. the scope cancelled itself ([`Scope::cancel`]): `Ok(Some(value))` if the body still
//!    returned a value, `Ok(None)` if it was interrupted;
//! 5. otherwise `Ok(Some(value))`.
//!
//! An enclosing cancel that comes only after the scope returned is the enclosing code's
//! business: its next await point reports it (R6).

use std::future::Future;
use std::panic::{self, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;

use treeloop_executor::{CancelReason, Region, RegionKind, TaskBuilder};

use crate::error::{Cancellation, ScopeError};
use crate::member::{Member, ScopedJoinHandle, SpawnError};
use crate::state::{Policy, ScopeState, SelfCancel};

/// A handle to a running scope: spawn members into it, or cancel it. Cheap to clone and
/// `'static`, so members can spawn siblings through it.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use std::time::Duration;
/// use treeloop::time::sleep;
/// use treeloop::{Builder, Cancelled, Scope, scope};
///
/// let runtime = Builder::new().start_paused(true).build().unwrap();
/// let siblings_done = Rc::new(Cell::new(0));
/// let done = siblings_done.clone();
/// let result = runtime.block_on(scope(|s: Scope<Cancelled>| async move {
///     let handle = s.clone();
///     s.spawn(async move {
///         // A member spawns a sibling through its clone of the handle...
///         handle
///             .spawn(async move {
///                 sleep(Duration::from_secs(1)).await?;
///                 done.set(done.get() + 1);
///                 Ok(())
///             })
///             .unwrap();
///         sleep(Duration::from_secs(2)).await?;
///         // ...and ends the whole scope: the body's sleep below fails.
///         handle.cancel();
///         Ok(())
///     })
///     .unwrap();
///     sleep(Duration::from_secs(3600)).await?;
///     Ok("the body finished")
/// }));
/// // The scope cancelled itself before the body had a value: `Ok(None)`.
/// assert_eq!(result.unwrap(), None);
/// assert_eq!(siblings_done.get(), 1);
/// ```
pub struct Scope<E> {
    /// Shared with the scope future and the members.
    state: Rc<ScopeState<E>>,
}

impl<E> Clone for Scope<E> {
    fn clone(&self) -> Self {
        Scope {
            state: self.state.clone(),
        }
    }
}

impl<E: Cancellation + 'static> Scope<E> {
    /// Spawns `future` as a member of this scope, whoever calls it (R1).
    ///
    /// Its `Err` (unless it is only a cancellation) is a failure of the scope: in a
    /// fail-fast scope it cancels the others. Refused once the scope has ended (R4).
    #[track_caller]
    pub fn spawn<F, R>(&self, future: F) -> Result<ScopedJoinHandle<R>, SpawnError>
    where
        F: Future<Output = Result<R, E>> + 'static,
        R: 'static,
    {
        self.spawn_with(TaskBuilder::new(), future)
    }

    /// [`spawn`](Self::spawn) with a name, shown in dumps, watchdog reports and slow-poll
    /// warnings.
    #[track_caller]
    pub fn spawn_named<F, R>(
        &self,
        name: impl Into<String>,
        future: F,
    ) -> Result<ScopedJoinHandle<R>, SpawnError>
    where
        F: Future<Output = Result<R, E>> + 'static,
        R: 'static,
    {
        self.spawn_with(TaskBuilder::new().name(name), future)
    }

    /// Spawns `future` as a member, configured by `builder`.
    #[track_caller]
    fn spawn_with<F, R>(
        &self,
        builder: TaskBuilder,
        future: F,
    ) -> Result<ScopedJoinHandle<R>, SpawnError>
    where
        F: Future<Output = Result<R, E>> + 'static,
        R: 'static,
    {
        let member = Member::new(future, self.state.clone());
        let handle = builder.spawn_in(&self.state.region, member)?;
        Ok(ScopedJoinHandle::new(handle))
    }

    /// Cancels the body and every member. The scope then returns normally once they have
    /// finished (R15): `Ok(Some(value))` if the body still returned a value, `Ok(None)` if
    /// the body itself was interrupted. If the enclosing region is cancelled too (before or
    /// after), that wins: the scope reports `Err(ScopeError::Cancelled)` (see the module
    /// docs).
    pub fn cancel(&self) {
        self.state.self_cancel.set(SelfCancel::Requested);
        self.state.region.cancel(CancelReason::Explicit);
    }

    /// Whether members can still be spawned.
    pub fn is_open(&self) -> bool {
        self.state.region.is_open()
    }
}

/// Runs `body` as a nursery (trio), `TaskGroup` (asyncio), `coroutineScope` (Kotlin).
///
/// The body gets a [`Scope`] to spawn members. The scope returns once the body *and* every
/// member have finished:
///
/// - `Ok(Some(value))`: the body returned `Ok(value)` and nothing failed;
/// - `Ok(None)`: the scope cancelled itself ([`Scope::cancel`]) and the body was
///   interrupted before it had a value (R15);
/// - `Err(ScopeError::Failed { first, rest })`: the body or members failed; the first
///   failure cancelled the rest, and every real error is kept (R13, R14);
/// - `Err(ScopeError::Cancelled(_))`: an enclosing region was cancelled, with its reason;
///   this wins over the scope's own cancel, in either order (R15);
/// - a panic of the body or a member is re-raised here, after all cleanup (R17).
///
/// # Which one for a server with one member per client
///
/// Not this one. A scope is for one unit of work whose parts depend on each other (the
/// sub-requests of one reply, the steps of one job): once a part failed the rest is wasted
/// work, so the first real failure or panic of the body or a member cancels the body and
/// every other member (reason `Failure`). With one member per client connection, one
/// client's broken connection would cancel every other client. Use [`supervisor`]: it keeps
/// the others running and collects the failures.
///
/// ```
/// use treeloop::{block_on, scope, ScopeError};
///
/// let result = block_on(scope(|s| async move {
///     s.spawn(async { Ok::<_, std::io::Error>(()) }).unwrap();
///     s.spawn(async { Err::<(), _>(std::io::Error::other("disk full")) }).unwrap();
///     Ok(())
/// }));
/// let Err(ScopeError::Failed { first, rest }) = result else { panic!() };
/// assert_eq!(first.to_string(), "disk full");
/// assert!(rest.is_empty());
/// ```
#[track_caller]
pub fn scope<T, E, F, Fut>(body: F) -> impl Future<Output = Result<Option<T>, ScopeError<E>>>
where
    F: FnOnce(Scope<E>) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Cancellation + 'static,
{
    run(body, Policy::FailFast, Location::caller())
}

/// Like [`scope`], but supervising: a member's failure does not cancel the others (R18).
/// Every failure is collected and reported once all members have finished.
///
/// # Which one for a server with one member per client
///
/// This one. A supervisor is for members that do not depend on each other, like one member
/// per client connection: a failure or panic, of a member or of the body, cancels nothing,
/// and the other clients go on being served. The supervisor returns once the body and every
/// member have finished, as [`scope`] does: with `Err(ScopeError::Failed { first, rest })`
/// holding every real error, or the first panic re-raised. A cancel from outside (a
/// shutdown) still cancels every member. Since every error is kept until the supervisor
/// returns, a long-running server handles a connection's error inside its member (logs it,
/// returns `Ok`) and keeps `Err` for what the supervisor's caller must hear. For a unit of
/// work whose parts depend on each other, use [`scope`]: the first failure cancels the rest.
///
/// ```
/// use std::cell::Cell;
/// use std::io;
/// use std::rc::Rc;
/// use treeloop::{Scope, ScopeError, block_on, scope, supervisor, yield_now};
///
/// /// One member per client; client 1's connection fails at once.
/// async fn serve(s: Scope<io::Error>, served: Rc<Cell<u32>>) -> io::Result<()> {
///     for client in 0..3 {
///         let served = served.clone();
///         s.spawn(async move {
///             if client == 1 {
///                 return Err(io::Error::other("client 1 reset"));
///             }
///             yield_now().await?;
///             served.set(served.get() + 1);
///             Ok(())
///         })
///         .unwrap();
///     }
///     Ok(())
/// }
///
/// let served = Rc::new(Cell::new(0));
/// let result = block_on(supervisor(|s| serve(s, served.clone())));
/// assert_eq!(served.get(), 2); // clients 0 and 2 were served
/// let Err(ScopeError::Failed { first, rest }) = result else { panic!() };
/// assert_eq!(first.to_string(), "client 1 reset");
/// assert!(rest.is_empty());
///
/// let served = Rc::new(Cell::new(0));
/// let result = block_on(scope(|s| serve(s, served.clone())));
/// assert_eq!(served.get(), 0); // client 1's failure cancelled clients 0 and 2
/// assert!(matches!(result, Err(ScopeError::Failed { .. })));
/// ```
#[track_caller]
pub fn supervisor<T, E, F, Fut>(body: F) -> impl Future<Output = Result<Option<T>, ScopeError<E>>>
where
    F: FnOnce(Scope<E>) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Cancellation + 'static,
{
    run(body, Policy::Supervise, Location::caller())
}

async fn run<T, E, F, Fut>(
    body: F,
    policy: Policy,
    location: &'static Location<'static>,
) -> Result<Option<T>, ScopeError<E>>
where
    F: FnOnce(Scope<E>) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Cancellation + 'static,
{
    let region = CancelOnDrop(Some(Region::open_at(RegionKind::Region, location)));
    let state = Rc::new(ScopeState::new(region.get().handle(), policy));

    // 1. The body, inside the region, its panics caught. Boxed so it can be dropped as
    //    soon as it returns, releasing what it holds before the members finish.
    let mut future: Option<Pin<Box<Fut>>> = Some(Box::pin(body(Scope {
        state: state.clone(),
    })));
    let body_result = std::future::poll_fn(|cx| {
        let Some(body_future) = future.as_mut() else {
            unreachable!("the body is polled until it returns, then dropped")
        };
        let polled = region.get().enter(cx.waker(), || {
            panic::catch_unwind(AssertUnwindSafe(|| body_future.as_mut().poll(cx)))
        });
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(result)) => Poll::Ready(Ok(result)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    })
    .await;
    let dropped = panic::catch_unwind(AssertUnwindSafe(|| future = None));
    let value = match body_result {
        Ok(Ok(value)) => Some(value),
        Ok(Err(error)) => {
            state.fail(error);
            None
        }
        Err(payload) => {
            state.panicked(payload);
            None
        }
    };
    if let Err(payload) = dropped {
        state.panicked(payload);
    }

    // 2. The members: the region wakes us when its last child finishes (or it is
    //    cancelled, after which we keep waiting for the cleanup).
    std::future::poll_fn(|cx| {
        if region.get().has_children() {
            region.get().set_waker(cx.waker());
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;

    // 3. Close the region, then report.
    let cancellation = region.get().cancellation();
    let enclosing = region.get().enclosing_cancellation();
    region.close();
    if let Some(payload) = state.panic.borrow_mut().take() {
        panic::resume_unwind(payload);
    }
    let mut failures = std::mem::take(&mut *state.failures.borrow_mut()).into_iter();
    if let Some(first) = failures.next() {
        return Err(ScopeError::Failed {
            first,
            rest: failures.collect(),
        });
    }
    // R15: a cancel from outside wins over the scope's own, in either order, so the
    // enclosing code sees it and unwinds (trio's rule).
    if let Some(outside) = enclosing {
        return Err(ScopeError::Cancelled(outside));
    }
    match (cancellation, state.self_cancel.get()) {
        (Some(cancelled), SelfCancel::No) => Err(ScopeError::Cancelled(cancelled)),
        _ => Ok(value),
    }
}

/// The scope's region; cancelled if the scope future is dropped before it finished.
struct CancelOnDrop(Option<Region>);

impl CancelOnDrop {
    fn get(&self) -> &Region {
        self.0.as_ref().expect("the region is open until `close`")
    }

    /// The scope ran to its end: close the region without cancelling anything.
    fn close(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(region) = &self.0 {
            region.cancel(CancelReason::Explicit);
        }
    }
}
