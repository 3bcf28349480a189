//! `join` and `try_join`: run several futures as child tasks and wait for all of them.
//!
//! Both are a scope whose members are the branches, with the scope's rules (R13-R17):
//!
//! - **`join`** returns every branch's output, in the order given. A panic in one branch
//!   cancels the others and is re-raised once they have finished their cleanup. Cancelled
//!   from outside, every branch sees it and returns what it returns (typically its own
//!   `Err(Cancelled)`): nothing is lost, since each output is there.
//! - **`try_join`** takes branches returning `Result<_, E>`: the first `Err` cancels the
//!   others (fail-fast, as in a scope). Real errors give `Err(ScopeError::Failed)` with every
//!   one of them, first one first; a branch's `Err` that is only a cancellation (of a task
//!   it cancelled itself, say) gives `Err(ScopeError::Cancelled)` with its reason, as does a
//!   cancel from outside that cut a branch short. `Ok` holds every value, in order, when
//!   every branch returned `Ok` — even if a cancel from outside came meanwhile: values are
//!   work done, never thrown away (the caller's next await point reports that cancel, R6).
//! - A branch *aborted* before it returned (the stall watchdog's grace period aborts the
//!   tasks of a cancelled subtree that ignore their cancellation) has no output: `join` and
//!   `race` then panic saying so, naming the branch; `try_join` reports the cancellation.
//!
//! Unlike `futures::join!`, the branches are tasks: they run concurrently with each other
//! *and* get their own nodes in the tree (a dump shows them; a watchdog names them), and the
//! join returns only when all of them, and everything they spawned, are done. Branches are
//! `'static`: move what they need into them.

use std::cell::Cell;
use std::future::Future;
use std::panic::Location;
use std::rc::Rc;

use treeloop_executor::Cancelled;

use crate::error::{Cancellation, ScopeError};
use crate::scope::{Scope, scope};

/// Runs every branch as a child task and returns all their outputs, in order, once every
/// one has finished (see the module docs).
///
/// `branches` is a tuple of up to 8 futures (any output types), an array or a `Vec` (one
/// output type: the result is an array or a `Vec`).
///
/// ```
/// use std::time::Duration;
/// use treeloop::time::{sleep, Instant};
/// use treeloop::{join, Builder};
///
/// let runtime = Builder::new().start_paused(true).build().unwrap();
/// let (answer, name, took) = runtime.block_on(async {
///     let start = Instant::now();
///     let (answer, name) = join((
///         async {
///             sleep(Duration::from_secs(2)).await.unwrap();
///             42
///         },
///         async {
///             sleep(Duration::from_secs(3)).await.unwrap();
///             "treeloop"
///         },
///     ))
///     .await;
///     (answer, name, start.elapsed())
/// });
/// // Concurrent: three seconds, not five.
/// assert_eq!((answer, name, took), (42, "treeloop", Duration::from_secs(3)));
/// ```
///
/// # Panics
///
/// Re-raises a branch's panic, after every other branch has finished. When a branch was
/// aborted before it returned (see the module docs), there is no output to return: the
/// panic names the branch. Outside a treeloop runtime, when awaited.
#[track_caller]
pub fn join<J: Join>(branches: J) -> impl Future<Output = J::Output> {
    let location = Location::caller();
    let slots = branches.slots();
    let filled = J::clone_slots(&slots);
    let scope = scope(move |s: Scope<Cancelled>| async move {
        let spawner = Spawner {
            scope: s,
            count: J::count(&filled),
            location,
        };
        branches.spawn_all(&spawner, &filled);
        Ok(())
    });
    async move {
        // Members only return `Ok`, so the scope fails only by panicking (re-raised here)
        // or reports a cancellation, after which every branch still returned an output.
        let _ = scope.await;
        J::take(slots)
    }
}

/// Like [`join`], for branches returning `Result<_, E>`: the first real error cancels the
/// others; see the module docs.
///
/// ```
/// use std::io;
/// use std::time::Duration;
/// use treeloop::time::sleep;
/// use treeloop::{try_join, Builder, ScopeError};
///
/// let runtime = Builder::new().start_paused(true).build().unwrap();
/// let result = runtime.block_on(try_join((
///     async {
///         // Cancelled by the sibling's failure: its `Err(Cancelled)` is not a failure.
///         sleep(Duration::from_secs(60)).await?;
///         Ok::<_, io::Error>(1)
///     },
///     async { Err::<u32, _>(io::Error::other("disk full")) },
/// )));
/// let Err(ScopeError::Failed { first, rest }) = result else { panic!("{result:?}") };
/// assert_eq!(first.to_string(), "disk full");
/// assert!(rest.is_empty());
/// ```
///
/// # Panics
///
/// Re-raises a branch's panic, after every other branch has finished. Outside a treeloop
/// runtime, when awaited.
#[track_caller]
pub fn try_join<J, E>(branches: J) -> impl Future<Output = Result<J::Values, ScopeError<E>>>
where
    J: TryJoin<E>,
    E: Cancellation + 'static,
{
    let location = Location::caller();
    let slots = branches.slots();
    let filled = J::clone_slots(&slots);
    // A branch that returned only a cancellation, when nothing failed and no enclosing
    // region was cancelled (a cancel from inside the branch): reported as such.
    let stray = Rc::new(Cell::new(None::<Cancelled>));
    let noticed = stray.clone();
    let scope = scope(move |s: Scope<E>| async move {
        let spawner = TrySpawner {
            scope: s,
            count: J::count(&filled),
            location,
            stray: noticed,
        };
        branches.spawn_all(&spawner, &filled);
        Ok(())
    });
    async move {
        let cancelled = match scope.await {
            Ok(_) => None,
            // Cancelled from outside after every branch returned `Ok` (or before they could
            // see it): the values are real work, and are returned; the caller's next await
            // point reports the cancellation (R6), as for `race`.
            Err(ScopeError::Cancelled(cancelled)) => Some(cancelled),
            Err(failed) => return Err(failed),
        };
        match J::take(slots) {
            Some(values) => Ok(values),
            None => Err(ScopeError::Cancelled(
                cancelled.or(stray.get()).unwrap_or_else(|| {
                    panic!("treeloop::try_join: a branch has no value: {ABORTED}")
                }),
            )),
        }
    }
}

/// Spawns [`join`]'s branches into its scope. Only [`Join`] implementations see it.
pub struct Spawner {
    /// The join's scope; branches are its members.
    scope: Scope<Cancelled>,
    /// How many branches, for the names.
    count: usize,
    /// Where `join` was called, for the names.
    location: &'static Location<'static>,
}

impl Spawner {
    /// Spawns branch `index` (counted from 0), whose output goes to `slot`.
    pub fn spawn<F>(&self, index: usize, slot: Rc<Cell<Option<F::Output>>>, branch: F)
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let name = branch_name("join", index, self.count, self.location);
        self.scope
            .spawn_named(name, async move {
                slot.set(Some(branch.await));
                Ok(())
            })
            .expect("a join's scope is open while its branches are spawned");
    }
}

/// Spawns [`try_join`]'s branches into its scope. Only [`TryJoin`] implementations see it.
pub struct TrySpawner<E> {
    /// The join's scope; branches are its members, their real errors its failures.
    scope: Scope<E>,
    /// How many branches, for the names.
    count: usize,
    /// Where `try_join` was called, for the names.
    location: &'static Location<'static>,
    /// The cancellation a branch returned, if one did.
    stray: Rc<Cell<Option<Cancelled>>>,
}

impl<E: Cancellation + 'static> TrySpawner<E> {
    /// Spawns branch `index` (counted from 0), whose value goes to `slot`.
    pub fn spawn<F, T>(&self, index: usize, slot: Rc<Cell<Option<T>>>, branch: F)
    where
        F: Future<Output = Result<T, E>> + 'static,
        T: 'static,
    {
        let name = branch_name("try_join", index, self.count, self.location);
        let stray = self.stray.clone();
        let scope = self.scope.clone();
        self.scope
            .spawn_named(name, async move {
                match branch.await {
                    Ok(value) => {
                        slot.set(Some(value));
                        Ok(())
                    }
                    Err(error) => {
                        // Only a cancellation, so not a failure of the scope: but any `Err`
                        // ends a try_join, so stop the siblings (the first one is kept).
                        if let Some(cancelled) = error.as_cancelled() {
                            if stray.get().is_none() {
                                stray.set(Some(cancelled));
                            }
                            scope.cancel();
                        }
                        Err(error)
                    }
                }
            })
            .expect("a try_join's scope is open while its branches are spawned");
    }
}

/// "join branch 2 of 3 (src/main.rs:10:5)": what a dump or a watchdog report calls a branch.
fn branch_name(what: &str, index: usize, count: usize, location: &Location<'_>) -> String {
    format!("{what} branch {} of {count} ({location})", index + 1)
}

/// What [`join`] takes: a tuple of up to 8 futures, an array or a `Vec`. Sealed: its
/// methods are how `join` spawns the branches and collects their outputs.
pub trait Join: sealed::Sealed + 'static {
    /// The outputs, in order: a tuple, an array or a `Vec`.
    type Output;
    /// Where the outputs land, one slot per branch.
    type Slots: 'static;

    /// Empty slots for every branch.
    fn slots(&self) -> Self::Slots;
    /// A second handle to the same slots.
    fn clone_slots(slots: &Self::Slots) -> Self::Slots;
    /// How many branches there are.
    fn count(slots: &Self::Slots) -> usize;
    /// Spawns every branch, each writing to its slot.
    fn spawn_all(self, spawner: &Spawner, slots: &Self::Slots);
    /// The outputs, once every branch has finished.
    fn take(slots: Self::Slots) -> Self::Output;
}

/// What [`try_join`] takes: a tuple of up to 8 futures returning `Result<_, E>`, or a `Vec`.
/// Sealed, like [`Join`].
pub trait TryJoin<E>: sealed::Sealed + 'static {
    /// The `Ok` values, in order: a tuple, an array or a `Vec`.
    type Values;
    /// Where the values land, one slot per branch.
    type Slots: 'static;

    /// Empty slots for every branch.
    fn slots(&self) -> Self::Slots;
    /// A second handle to the same slots.
    fn clone_slots(slots: &Self::Slots) -> Self::Slots;
    /// How many branches there are.
    fn count(slots: &Self::Slots) -> usize;
    /// Spawns every branch, each writing its value to its slot.
    fn spawn_all(self, spawner: &TrySpawner<E>, slots: &Self::Slots);
    /// Every value, if every branch returned one.
    fn take(slots: Self::Slots) -> Option<Self::Values>;
}

/// One slot per branch.
type Slot<T> = Rc<Cell<Option<T>>>;

/// Why a finished join can lack a branch's output: the only way a branch ends without
/// returning.
const ABORTED: &str = "it was aborted before it returned (by the stall watchdog's grace period, \
     or a runtime torn down mid-way), so there is no output to return; a branch that ignores \
     cancellation is the usual cause: make it answer `Cancelled`, or wrap it in `or_cancel()`";

/// The output of branch `index`, or the panic that says it was aborted.
fn output<T>(slot: &Slot<T>, index: usize, count: usize) -> T {
    slot.take().unwrap_or_else(|| {
        panic!(
            "treeloop::join: branch {} of {count} has no output: {ABORTED}",
            index + 1
        )
    })
}

mod sealed {
    /// Seals [`Join`](super::Join) and [`TryJoin`](super::TryJoin).
    pub trait Sealed {}
    impl<F> Sealed for Vec<F> {}
    impl<F, const N: usize> Sealed for [F; N] {}
}

macro_rules! join_tuple {
    ($count:expr; $($branch:ident $value:ident $index:tt),+) => {
        impl<$($branch),+> sealed::Sealed for ($($branch,)+) {}

        impl<$($branch),+> Join for ($($branch,)+)
        where
            $($branch: Future + 'static, $branch::Output: 'static,)+
        {
            type Output = ($($branch::Output,)+);
            type Slots = ($(Slot<$branch::Output>,)+);

            fn slots(&self) -> Self::Slots {
                ($(Slot::<$branch::Output>::default(),)+)
            }

            fn clone_slots(slots: &Self::Slots) -> Self::Slots {
                ($(slots.$index.clone(),)+)
            }

            fn count(_: &Self::Slots) -> usize {
                $count
            }

            fn spawn_all(self, spawner: &Spawner, slots: &Self::Slots) {
                $(spawner.spawn($index, slots.$index.clone(), self.$index);)+
            }

            fn take(slots: Self::Slots) -> Self::Output {
                ($(output(&slots.$index, $index, $count),)+)
            }
        }

        impl<Err, $($branch, $value),+> TryJoin<Err> for ($($branch,)+)
        where
            Err: Cancellation + 'static,
            $($branch: Future<Output = Result<$value, Err>> + 'static, $value: 'static,)+
        {
            type Values = ($($value,)+);
            type Slots = ($(Slot<$value>,)+);

            fn slots(&self) -> Self::Slots {
                ($(Slot::<$value>::default(),)+)
            }

            fn clone_slots(slots: &Self::Slots) -> Self::Slots {
                ($(slots.$index.clone(),)+)
            }

            fn count(_: &Self::Slots) -> usize {
                $count
            }

            fn spawn_all(self, spawner: &TrySpawner<Err>, slots: &Self::Slots) {
                $(spawner.spawn($index, slots.$index.clone(), self.$index);)+
            }

            fn take(slots: Self::Slots) -> Option<Self::Values> {
                Some(($(slots.$index.take()?,)+))
            }
        }
    };
}

join_tuple!(1; A VA 0);
join_tuple!(2; A VA 0, B VB 1);
join_tuple!(3; A VA 0, B VB 1, C VC 2);
join_tuple!(4; A VA 0, B VB 1, C VC 2, D VD 3);
join_tuple!(5; A VA 0, B VB 1, C VC 2, D VD 3, E VE 4);
join_tuple!(6; A VA 0, B VB 1, C VC 2, D VD 3, E VE 4, F VF 5);
join_tuple!(7; A VA 0, B VB 1, C VC 2, D VD 3, E VE 4, F VF 5, G VG 6);
join_tuple!(8; A VA 0, B VB 1, C VC 2, D VD 3, E VE 4, F VF 5, G VG 6, H VH 7);

impl<F> Join for Vec<F>
where
    F: Future + 'static,
    F::Output: 'static,
{
    type Output = Vec<F::Output>;
    type Slots = Vec<Slot<F::Output>>;

    fn slots(&self) -> Self::Slots {
        self.iter().map(|_| Slot::default()).collect()
    }

    fn clone_slots(slots: &Self::Slots) -> Self::Slots {
        slots.clone()
    }

    fn count(slots: &Self::Slots) -> usize {
        slots.len()
    }

    fn spawn_all(self, spawner: &Spawner, slots: &Self::Slots) {
        for (index, (branch, slot)) in self.into_iter().zip(slots).enumerate() {
            spawner.spawn(index, slot.clone(), branch);
        }
    }

    fn take(slots: Self::Slots) -> Self::Output {
        let count = slots.len();
        let taken = slots.iter().enumerate();
        taken
            .map(|(index, slot)| output(slot, index, count))
            .collect()
    }
}

impl<F, const N: usize> Join for [F; N]
where
    F: Future + 'static,
    F::Output: 'static,
{
    type Output = [F::Output; N];
    type Slots = [Slot<F::Output>; N];

    fn slots(&self) -> Self::Slots {
        std::array::from_fn(|_| Slot::default())
    }

    fn clone_slots(slots: &Self::Slots) -> Self::Slots {
        slots.clone()
    }

    fn count(_: &Self::Slots) -> usize {
        N
    }

    fn spawn_all(self, spawner: &Spawner, slots: &Self::Slots) {
        for (index, (branch, slot)) in self.into_iter().zip(slots).enumerate() {
            spawner.spawn(index, slot.clone(), branch);
        }
    }

    fn take(slots: Self::Slots) -> Self::Output {
        let mut index = 0;
        slots.map(|slot| {
            index += 1;
            output(&slot, index - 1, N)
        })
    }
}

impl<F, T, E> TryJoin<E> for Vec<F>
where
    F: Future<Output = Result<T, E>> + 'static,
    T: 'static,
    E: Cancellation + 'static,
{
    type Values = Vec<T>;
    type Slots = Vec<Slot<T>>;

    fn slots(&self) -> Self::Slots {
        self.iter().map(|_| Slot::default()).collect()
    }

    fn clone_slots(slots: &Self::Slots) -> Self::Slots {
        slots.clone()
    }

    fn count(slots: &Self::Slots) -> usize {
        slots.len()
    }

    fn spawn_all(self, spawner: &TrySpawner<E>, slots: &Self::Slots) {
        for (index, (branch, slot)) in self.into_iter().zip(slots).enumerate() {
            spawner.spawn(index, slot.clone(), branch);
        }
    }

    fn take(slots: Self::Slots) -> Option<Self::Values> {
        slots.iter().map(|slot| slot.take()).collect()
    }
}
