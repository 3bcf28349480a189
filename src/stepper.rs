//! A run of a [`Runtime`] taken one turn of the loop at a time ([`Runtime::start`]).
//!
//! The executor's [`treeloop_executor::Stepper`] does the work; this one hands it the
//! runtime's reactor as its park at every turn, with the reactor entered, so that timers,
//! sockets and signals work inside the turn and outside it nothing of the runtime is
//! current (spawning between turns is "outside a runtime", as after `block_on`).
//!
//! A `Stepper` dropped before its run finished tears the tree down, with the reactor
//! entered, so the tasks' sockets and timers are released where they were made.

use std::future::Future;

use treeloop_executor::Tick;

use crate::Runtime;

/// A run of a [`Runtime`], one turn at a time: made by [`Runtime::start`].
///
/// Each [`step`](Stepper::step) takes one turn of the loop: runs the ready tasks (up to 61),
/// checks whether the run finished, then parks (looks at I/O and timers; waits for them
/// when nothing is runnable, or with virtual time jumps the clock). [`finish`](Stepper::finish)
/// takes the remaining turns and returns what `block_on` would.
pub struct Stepper<'r, F: Future> {
    /// The runtime whose reactor each turn parks in.
    runtime: &'r Runtime,
    /// The executor's run; `None` once `finish` took it.
    run: Option<treeloop_executor::Stepper<'r, F>>,
}

impl<'r, F: Future> Stepper<'r, F> {
    /// The stepper of `run`, a run of `runtime`'s executor.
    pub(crate) fn new(runtime: &'r Runtime, run: treeloop_executor::Stepper<'r, F>) -> Self {
        Stepper {
            runtime,
            run: Some(run),
        }
    }

    /// Takes one turn of the loop and says what it did ([`Tick`]); after the run finished,
    /// does nothing and says `finished` again.
    ///
    /// # Panics
    ///
    /// When the park reports a deadlock (deterministic mode: nothing can ever wake a task),
    /// and when called again after a turn panicked.
    pub fn step(&mut self) -> Tick {
        let run = self
            .run
            .as_mut()
            .expect("a Stepper is only taken by finish");
        self.runtime.with_park(|reactor| run.step(reactor))
    }

    /// Whether the run has finished: the root future returned and its whole tree finished.
    pub fn is_finished(&self) -> bool {
        self.run.as_ref().is_some_and(|run| run.is_finished())
    }

    /// Takes the remaining turns and returns the root future's output, as `block_on` does.
    ///
    /// # Panics
    ///
    /// Like `block_on`, after every task has finished: with the root future's panic, else
    /// with the first panic nobody took from a `JoinHandle`.
    pub fn finish(mut self) -> F::Output {
        let run = self.run.take().expect("a Stepper is only taken by finish");
        self.runtime.with_park(|reactor| run.finish(reactor))
    }
}

impl<F: Future> Drop for Stepper<'_, F> {
    fn drop(&mut self) {
        if let Some(run) = self.run.take() {
            // Tear down (or report what `finish` would have raised) with the reactor entered.
            self.runtime.with_park(|_| drop(run));
        }
    }
}
