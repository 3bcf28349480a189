//! `race`: the first branch to finish wins; the others are cancelled *and awaited*.
//!
//! `tokio::select!` drops the losing branches where they stand: a loser cannot run an async
//! cleanup, and whatever it was half-way through is cut off. `race` runs each branch as a
//! child task in a scope of its own instead:
//!
//! ```text
//!   spawn every branch ──first one returns──> keep its output, cancel the scope
//!                                               │
//!                  the losers see `Cancelled` at their next await point, clean up
//!                  (shields work), finish ──last one done──> return the winner's output
//! ```
//!
//! # Ground rules
//!
//! - **The winner is the first branch to return**, whatever it returns: an `Err` is a result
//!   like any other (as in `select!`). Ties go to the branch polled first (in spawn order
//!   under FIFO scheduling; a seeded run may pick either).
//! - **Nothing is returned before every loser has finished its cleanup** (R4), and a loser's
//!   output is dropped. A winner's output is never lost to an enclosing cancel: it is
//!   returned even if the enclosing region is cancelled while the losers clean up (the
//!   caller's next await point reports that cancellation, R6). A loser's panic does win
//!   over it (next rule), and dropping the race future drops it.
//! - **Cancelled from outside**, every branch sees the cancellation; the first of them to
//!   return (typically with its own `Err(Cancelled)`) is the winner, so the output says what
//!   happened in the branch's own words. A race started in an already cancelled region is
//!   won by the first branch polled that returns: its `Err(Cancelled)` can win over a later
//!   branch that would have been ready.
//! - **Panics follow the scope rules** (R17): a panic in any branch, winner or loser, cancels
//!   the others and is re-raised by `race` after all of them finished.
//! - Branches are tasks, so they are `'static`: move what they need into them.

use std::cell::Cell;
use std::future::Future;
use std::panic::Location;
use std::rc::Rc;

use treeloop_executor::Cancelled;

use crate::scope::{Scope, scope};

/// Runs every branch as a child task and returns the output of the first to finish, after
/// cancelling the others and waiting for their cleanup (see the module docs).
///
/// `branches` is a tuple of up to 8 futures with one output type, an array, or a `Vec`.
///
/// ```
/// use std::time::Duration;
/// use treeloop::time::sleep;
/// use treeloop::{race, shield, Builder};
///
/// let runtime = Builder::new().start_paused(true).build().unwrap();
/// let (winner, cleaned_up) = runtime.block_on(async {
///     let cleaned_up = std::rc::Rc::new(std::cell::Cell::new(false));
///     let flag = cleaned_up.clone();
///     let winner = race((
///         async {
///             sleep(Duration::from_secs(1)).await.unwrap();
///             "fast"
///         },
///         async move {
///             if sleep(Duration::from_secs(60)).await.is_err() {
///                 // The loser is cancelled, and may await its cleanup.
///                 shield(sleep(Duration::from_millis(10))).await.unwrap();
///                 flag.set(true);
///             }
///             "slow"
///         },
///     ))
///     .await;
///     (winner, cleaned_up.get())
/// });
/// assert_eq!((winner, cleaned_up), ("fast", true));
/// ```
///
/// # Panics
///
/// With no branches (an empty `Vec`): a race nobody runs never ends. Re-raises a branch's
/// panic, after every other branch has finished. When every branch was aborted before it
/// returned (the stall watchdog's grace period does that to tasks that ignore their
/// cancellation), there is nothing to return: the panic says so. Outside a treeloop
/// runtime, when awaited.
#[track_caller]
pub fn race<R: Race>(branches: R) -> impl Future<Output = R::Output> {
    let count = branches.count();
    assert!(
        count > 0,
        "treeloop::race: no branches to race (an empty Vec or array never finishes); give it at \
         least one future"
    );
    let winner: Rc<Cell<Option<R::Output>>> = Rc::new(Cell::new(None));
    let slot = winner.clone();
    let location = Location::caller();
    let scope = scope(move |s: Scope<Cancelled>| async move {
        branches.spawn_all(&Racers {
            scope: s,
            winner: slot,
            count,
            location,
        });
        Ok(())
    });
    async move {
        // Members only return `Ok`, so the scope fails only by panicking (re-raised here)
        // or reports a cancellation, which a branch has answered with its own output.
        let _ = scope.await;
        winner.take().unwrap_or_else(|| {
            panic!(
                "treeloop::race: no branch returned: every branch was aborted before it \
                 returned (by the stall watchdog's grace period, or a runtime torn down \
                 mid-way); a branch that ignores cancellation is the usual cause: make it \
                 answer `Cancelled`, or wrap it in `or_cancel()`"
            )
        })
    }
}

/// What [`race`] takes: a tuple of up to 8 futures with one output type, an array or a
/// `Vec`. Sealed: its methods are how `race` spawns the branches, nothing to call or
/// implement.
pub trait Race: sealed::Sealed + 'static {
    /// What every branch returns, and so the race.
    type Output: 'static;

    /// How many branches there are.
    fn count(&self) -> usize;

    /// Spawns every branch into the race's scope.
    fn spawn_all(self, racers: &Racers<Self::Output>);
}

/// The race being run: its scope and the winner's slot. Only [`Race`] implementations see
/// it.
pub struct Racers<T> {
    /// The race's scope; branches are its members.
    scope: Scope<Cancelled>,
    /// The first output, once there is one.
    winner: Rc<Cell<Option<T>>>,
    /// How many branches, for the names.
    count: usize,
    /// Where `race` was called, for the names.
    location: &'static Location<'static>,
}

impl<T: 'static> Racers<T> {
    /// Spawns branch `index` (counted from 0): when it returns first, its output wins and
    /// the scope is cancelled.
    pub fn spawn<F>(&self, index: usize, branch: F)
    where
        F: Future<Output = T> + 'static,
    {
        let winner = self.winner.clone();
        let scope = self.scope.clone();
        let name = format!(
            "race branch {} of {} ({})",
            index + 1,
            self.count,
            self.location
        );
        self.scope
            .spawn_named(name, async move {
                let output = branch.await;
                if !has_value(&winner) {
                    winner.set(Some(output));
                    scope.cancel();
                }
                Ok(())
            })
            .expect("a race's scope is open while its branches are spawned");
    }
}

/// Whether the cell holds a value, without needing `T: Copy`.
fn has_value<T>(cell: &Cell<Option<T>>) -> bool {
    let value = cell.take();
    let present = value.is_some();
    cell.set(value);
    present
}

mod sealed {
    /// Seals [`Race`](super::Race).
    pub trait Sealed {}
    impl<F> Sealed for Vec<F> {}
    impl<F, const N: usize> Sealed for [F; N] {}
}

macro_rules! race_tuple {
    ($count:expr; $($branch:ident $index:tt),+) => {
        impl<$($branch),+> sealed::Sealed for ($($branch,)+) {}

        impl<T: 'static, $($branch),+> Race for ($($branch,)+)
        where
            $($branch: Future<Output = T> + 'static,)+
        {
            type Output = T;

            fn count(&self) -> usize {
                $count
            }

            fn spawn_all(self, racers: &Racers<T>) {
                $(racers.spawn($index, self.$index);)+
            }
        }
    };
}

race_tuple!(1; A 0);
race_tuple!(2; A 0, B 1);
race_tuple!(3; A 0, B 1, C 2);
race_tuple!(4; A 0, B 1, C 2, D 3);
race_tuple!(5; A 0, B 1, C 2, D 3, E 4);
race_tuple!(6; A 0, B 1, C 2, D 3, E 4, F 5);
race_tuple!(7; A 0, B 1, C 2, D 3, E 4, F 5, G 6);
race_tuple!(8; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);

impl<F> Race for Vec<F>
where
    F: Future + 'static,
    F::Output: 'static,
{
    type Output = F::Output;

    fn count(&self) -> usize {
        self.len()
    }

    fn spawn_all(self, racers: &Racers<F::Output>) {
        for (index, branch) in self.into_iter().enumerate() {
            racers.spawn(index, branch);
        }
    }
}

impl<F, const N: usize> Race for [F; N]
where
    F: Future + 'static,
    F::Output: 'static,
{
    type Output = F::Output;

    fn count(&self) -> usize {
        N
    }

    fn spawn_all(self, racers: &Racers<F::Output>) {
        for (index, branch) in self.into_iter().enumerate() {
            racers.spawn(index, branch);
        }
    }
}
