//! Where runnable tasks wait for their turn: a local FIFO for wakes on the loop thread, an
//! injector for wakes from other threads.
//!
//! # Ground rules
//!
//! - [`RunQueue`] is touched only on the loop thread, in borrows that never span a poll or
//!   a drop of a `Runnable` (dropping one may drop a future, which may wake another task).
//! - [`Shared`] is the only part of a runtime other threads see: a task's waker finds it by
//!   the runtime's tag in the task's metadata ([`crate::registry`]), the root's waker holds
//!   an `Arc<Shared>` (what a wake does then is [`crate::wake`]'s). A remote wake pushes to
//!   the lock-free injector and unparks the loop only if it is asleep (the `sleeping`
//!   handshake below), so a busy loop pays no syscall.
//! - Once `closed` (the runtime was dropped), a wake drops its `Runnable` on the spot: by then
//!   every task's future has been dropped, so nothing but the allocation goes with it.
//!
//! Read next: [`crate::executor`], the loop that takes jobs from this queue and parks when
//! it is empty.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_task::Runnable;
use crossbeam_queue::SegQueue;

use crate::park::Unpark;
use crate::registry::{self, RuntimeTag, TaskMeta};
use crate::schedule::{ChoicePoint, Replay, Schedule};
use crate::strategy::{Pct, Picker, Strategy};

/// One turn on the loop: a task, or the `block_on` future (which is not `'static`, so it
/// cannot be an async-task task, yet must take its turn in the same FIFO to be fair).
pub(crate) enum Job {
    /// Poll this task (its node's slab key and its runtime's tag ride along as async-task
    /// metadata: see [`crate::task`] for why the key and not the id).
    Task(Runnable<TaskMeta>),
    /// Poll the root future.
    Root,
}

impl Job {
    /// The job's number in traces and strategies: the task's number within the runtime,
    /// `u64::MAX` for the root. Read from the task's metadata, not its node: a seeded pick
    /// would otherwise read the node of a task chosen at random, a cache miss before the
    /// poll has begun.
    #[inline]
    pub(crate) fn trace_id(&self) -> u64 {
        match self {
            Job::Task(runnable) => runnable.metadata().number(),
            Job::Root => u64::MAX,
        }
    }

    /// Asks the processor for the task's header, which its poll reads first (see
    /// `crate::prefetch`); nothing for the root.
    #[inline(always)]
    fn prefetch(&self) {
        if let Job::Task(runnable) = self {
            crate::prefetch::prefetch(runnable.metadata());
        }
    }

    /// A key no other live job has, known without the tree: the task's slab key, or
    /// `u64::MAX` for the root. (A key is reused only after its task completed, and a
    /// completed task is never queued again.)
    fn slot(&self) -> u64 {
        match self {
            Job::Task(runnable) => u64::from(runnable.metadata().key()),
            Job::Root => u64::MAX,
        }
    }
}

/// A drained queue whose buffer holds more slots than this gives the memory back (see
/// [`RunQueue::pop`]): 4,096 jobs, 64 KiB.
const SHRINK_ABOVE: usize = 4096;

/// What a drained queue keeps of its buffer: enough for an ordinary batch's worth of wakes
/// without growing again.
const KEEP: usize = 256;

/// [`RunQueue::push`] under Random or PCT. Random's push is one `Vec::push`; PCT's is a
/// function of its own, so that a Random push does not save and restore the registers PCT's
/// needs. (Inline in `RunQueue::push`, Random's arm made the match a jump table, which cost
/// FIFO's path, every wake of a normal run, 4 instructions.)
#[inline(never)]
fn push_seeded(picker: &mut Picker<Job>, job: Job) {
    match picker {
        Picker::Random(uniform) => uniform.push(job),
        Picker::Pct(pct) => push_pct(pct, job),
        Picker::Fifo | Picker::Replay(_) => unreachable!("RunQueue::push keeps these itself"),
    }
}

/// [`push_seeded`] under PCT.
#[inline(never)]
fn push_pct(pct: &mut Pct<Job>, job: Job) {
    let slot = job.slot();
    pct.push(job, slot);
}

/// Runnable jobs of the loop thread, in wake order.
///
/// By default a plain FIFO: a task woken while it runs goes to the back like any other, so
/// one task cannot monopolise the loop (the per-poll budget in [`crate::coop`] handles the
/// task that stays ready *within* a poll). In deterministic mode the [`Picker`] chooses which
/// ready job runs next from the seed; the loop does not know the difference. FIFO keeps the
/// jobs here and takes the front; Random keeps them in its own `Vec` (a swap with the last
/// is its O(1) removal), PCT in its own priority heap (a scan of this deque per pick cost
/// O(n)), so `ready` stays empty under them. A replay keeps them here, and scans them for the
/// recorded task at each choice (O(n), for reproducing small tests).
pub(crate) struct RunQueue {
    /// Waiting jobs, oldest first (FIFO and replay; empty under Random and PCT).
    ready: VecDeque<Job>,
    /// Which one runs next.
    picker: Picker<Job>,
    /// Jobs queued so far (a `Tick` counts its wakes by the difference).
    queued: u64,
}

impl RunQueue {
    /// A queue for `strategy` seeded with `seed`; `pct_horizon` is PCT's step horizon; a
    /// `replay` overrides the strategy.
    pub(crate) fn new(
        strategy: Strategy,
        seed: u64,
        pct_horizon: Option<u64>,
        replay: Option<Replay>,
    ) -> Self {
        RunQueue {
            ready: VecDeque::new(),
            picker: Picker::new(strategy, seed, pct_horizon, replay),
            queued: 0,
        }
    }

    /// Queues `job`: at the back under FIFO (and a replay), else where the strategy keeps
    /// its jobs. Inlined into the wake (every wake comes here); the seeded strategies' own
    /// pushes are not.
    #[inline(always)]
    pub(crate) fn push(&mut self, job: Job) {
        self.queued += 1;
        match &mut self.picker {
            Picker::Fifo | Picker::Replay(_) => self.ready.push_back(job),
            picker => push_seeded(picker, job),
        }
    }

    /// The next job to run. When a pick finds empty a queue that a burst grew large
    /// (100,000 tasks spawned at once leave a 2 MiB buffer), the buffer is given back: an
    /// idle or steady program should not keep its worst moment's queue forever. Regrowing
    /// for the next burst costs what the first growth did, once per burst. The test waits
    /// for the pick that finds nothing (the end of the batch that drained the queue), so a
    /// pick that returns a job does not look at the buffer; the one job that can see the
    /// drained buffer, the batch's last, is given it back before its poll when it is the
    /// root (`Core::shrink_queue_before_root`).
    #[inline(always)]
    pub(crate) fn pop(&mut self) -> Option<Job> {
        let job = match &mut self.picker {
            Picker::Fifo => {
                let job = self.ready.pop_front();
                // Optimisation: the next pick is known; ask for its task's header now (see
                // `crate::prefetch`).
                if let Some(next) = self.ready.front() {
                    next.prefetch();
                }
                job
            }
            // Optimisation: inline, like FIFO (a call's prologue and epilogue were a tenth of
            // a pick); PCT and replays go through `RunQueue::pick`.
            Picker::Random(uniform) => uniform.pop(Job::trace_id, Job::prefetch),
            _ => self.pick(),
        };
        if job.is_none() {
            self.shrink_if_drained();
        }
        job
    }

    /// [`RunQueue::pop`] under PCT or a replay (FIFO and Random are taken inline there).
    #[inline(never)]
    fn pick(&mut self) -> Option<Job> {
        match &mut self.picker {
            Picker::Fifo | Picker::Random(_) => unreachable!("RunQueue::pop takes these inline"),
            Picker::Pct(pct) => pct.pop(Job::trace_id, Job::slot),
            Picker::Replay(replay) => {
                let index = match self.ready.len() {
                    0 => {
                        replay.handed_out(None);
                        return None;
                    }
                    1 => 0,
                    _ => replay.choose(self.ready.iter().map(Job::trace_id)),
                };
                // `remove`, not a swap: the fallback is FIFO, so the rest keep wake order.
                let job = self.ready.remove(index)?;
                replay.handed_out(Some(job.trace_id()));
                Some(job)
            }
        }
    }

    /// The choices made so far (empty under FIFO).
    pub(crate) fn schedule(&self) -> Schedule {
        self.picker.schedule()
    }

    /// Choices a replay could not take from its schedule (0 unless replaying).
    pub(crate) fn divergences(&self) -> u64 {
        match &self.picker {
            Picker::Replay(replay) => replay.divergences(),
            _ => 0,
        }
    }

    /// A replay's choices with their alternatives, if it logs them.
    pub(crate) fn choice_points(&self) -> Vec<ChoicePoint> {
        match &self.picker {
            Picker::Replay(replay) => replay.points().to_vec(),
            _ => Vec::new(),
        }
    }

    /// Jobs queued so far.
    pub(crate) fn queued(&self) -> u64 {
        self.queued
    }

    /// Picks made so far while two or more jobs were ready: the steps of PCT's horizon
    /// (counted under Random and PCT; 0 under FIFO).
    pub(crate) fn steps(&self) -> u64 {
        self.picker.steps()
    }

    /// Gives back the buffer of an empty queue, wherever the strategy keeps its jobs, if a
    /// burst grew it beyond [`SHRINK_ABOVE`] slots.
    #[cold]
    pub(crate) fn shrink_if_drained(&mut self) {
        if self.ready.is_empty() && self.ready.capacity() > SHRINK_ABOVE {
            self.ready.shrink_to(KEEP);
        }
        match &mut self.picker {
            Picker::Random(uniform) => uniform.shrink_if_drained(SHRINK_ABOVE, KEEP),
            Picker::Pct(pct) => pct.shrink_if_drained(SHRINK_ABOVE, KEEP),
            Picker::Fifo | Picker::Replay(_) => {}
        }
    }

    /// Slots the buffer has room for (for tests of the shrinking).
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.ready.capacity()
    }

    /// The jobs waiting, in no particular order (for dumps).
    pub(crate) fn jobs(&self) -> impl Iterator<Item = &Job> {
        let (pct, uniform) = match &self.picker {
            Picker::Pct(pct) => (Some(pct), None),
            Picker::Random(uniform) => (None, Some(uniform)),
            _ => (None, None),
        };
        self.ready
            .iter()
            .chain(pct.into_iter().flat_map(|pct| pct.jobs()))
            .chain(uniform.into_iter().flat_map(|uniform| uniform.jobs()))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ready.is_empty()
            && match &self.picker {
                Picker::Pct(pct) => pct.is_empty(),
                Picker::Random(uniform) => uniform.is_empty(),
                _ => true,
            }
    }
}

/// The part of a runtime that wakers on any thread may reach.
pub(crate) struct Shared {
    /// Jobs woken from other threads, waiting to be moved into the local queue.
    pub(crate) injector: SegQueue<Job>,
    /// The loop is about to block, or blocked, in `park(Wait)`: a remote wake must unpark.
    pub(crate) sleeping: AtomicBool,
    /// The runtime is gone: wakes drop their runnable instead of queueing it.
    pub(crate) closed: AtomicBool,
    /// Interrupts the loop's blocking park (the reactor's `mio::Waker`).
    unparker: Arc<dyn Unpark>,
    /// The runtime's name in the registry, which its tasks carry.
    pub(crate) tag: RuntimeTag,
}

impl Shared {
    /// A runtime's shared part, registered under a fresh tag.
    pub(crate) fn new(unparker: Arc<dyn Unpark>) -> Arc<Self> {
        Arc::new_cyclic(|this| Shared {
            injector: SegQueue::new(),
            sleeping: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            unparker,
            tag: registry::register(this.clone()),
        })
    }

    /// A wake from a thread on which this runtime is not current.
    pub(crate) fn push_remote(&self, job: Job) {
        if self.closed.load(Ordering::Acquire) {
            drop(job);
            return;
        }
        self.injector.push(job);
        // Optimisation: unpark only a loop that sleeps. The model unparks at every remote
        // wake (an eventfd write, a syscall); this handshake makes one per sleep of the
        // loop, however many wakes arrive while it is awake. The loop (`park_idle` in
        // executor.rs) sets `sleeping` and then looks at the injector; we push and then look
        // at `sleeping`. With SeqCst on both sides at least one of us sees the other, so no
        // wake is lost. Costs a reader: the two-sided protocol, which a plain unpark has not.
        if self.sleeping.swap(false, Ordering::SeqCst) {
            self.unparker.unpark();
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        registry::unregister(self.tag);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_drained_after_a_burst_gives_its_buffer_back() {
        let mut queue = RunQueue::new(Strategy::Fifo, 0, None, None);
        for _ in 0..100_000 {
            queue.push(Job::Root);
        }
        assert!(queue.capacity() >= 100_000);
        for _ in 0..99_999 {
            queue.pop().unwrap();
        }
        // One job left: the buffer is still in use.
        assert!(queue.capacity() >= 100_000);
        queue.pop().unwrap();
        assert!(queue.pop().is_none());
        assert!(queue.capacity() <= KEEP, "kept {} slots", queue.capacity());
        // A small queue is never shrunk: no reallocation in the steady state.
        for _ in 0..SHRINK_ABOVE {
            queue.push(Job::Root);
        }
        let steady = queue.capacity();
        while queue.pop().is_some() {}
        assert_eq!(queue.capacity(), steady);
    }

    /// The root often runs last in the batch that drained the queue, before the pick that
    /// finds it empty: the buffer is given back before its poll, so a program that measures
    /// itself there (benches/suite/spawn_memory.rs) sees no burst's buffer.
    #[test]
    fn the_root_polled_after_a_burst_finds_the_buffer_given_back() {
        const TASKS: usize = 10_000;
        let capacity = crate::block_on(async {
            let polled = std::rc::Rc::new(std::cell::Cell::new(0));
            let handles: Vec<_> = (0..TASKS)
                .map(|_| {
                    let polled = polled.clone();
                    crate::spawn(async move {
                        polled.set(polled.get() + 1);
                        crate::cancelled().await
                    })
                })
                .collect();
            let mut grown = 0;
            while polled.get() < TASKS {
                grown = grown.max(crate::context::with_core(|core| core.queue_capacity()).unwrap());
                crate::yield_now().await.unwrap();
            }
            assert!(grown >= TASKS, "the burst grew the buffer to {grown} slots");
            let capacity = crate::context::with_core(|core| core.queue_capacity()).unwrap();
            for handle in &handles {
                handle.cancel();
            }
            capacity
        });
        assert!(capacity <= KEEP, "the root's poll saw {capacity} slots");
    }
}
