//! treeloop in one file: the model of the real runtime, small enough to read in 30 minutes.
//!
//! The same five ideas as the real executor, on `std` and `async-task` alone:
//!
//! 1. a **task tree**: a task's parent is the task that was being polled when it was spawned;
//! 2. **subtree marks**: cancelling a task marks it and everything below it, and wakes them;
//! 3. **level-triggered `Cancelled`**: every await point of a marked task fails, every time;
//! 4. **completion waits for children**: a handle resolves once its future *and* children did;
//! 5. **`block_on` waits for the tree**: it returns when the root and every task are done.
//!
//! Each section names the real module that does its job properly, and what that one adds.
//!
//! Invariants: only the thread running `block_on` touches the runtime; no `RefCell` borrow
//! is held while a task is polled or a waker woken; if a node is marked, so is its whole
//! subtree; a node finishes only after all its children did.
//!
//! Run with: cargo run --example tiny_treeloop
#![forbid(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::thread;

use async_task::{Runnable, Task};

// ---- 1. The tree and the loop's state -----------------------------------------------------
//
// The real one: executor/src/tree.rs keeps nodes in a slab (keys reused, so handles also
// carry a never-reused id), linked intrusively (no allocation per walk or unlink), with
// shields, regions (scopes, timeouts) and an aborting phase. Here a node stays in a `Vec`
// for the whole `block_on`: one node per task ever spawned (fine for a demo, not a server).

/// Where a task is in its life.
#[derive(Clone, Copy, Default, PartialEq)]
enum Phase {
    /// Its future has not returned.
    #[default]
    Active,
    /// Its future returned (and was dropped); it waits for its children.
    Completing,
    /// It and all its children are done; its handle has resolved.
    Finished,
}

/// One task of the tree.
#[derive(Default)]
struct Node {
    /// The task that spawned it; `None` for the root.
    parent: Option<usize>,
    /// Every child it spawned, in spawn order (what `cancel` walks).
    children: Vec<usize>,
    /// Children not finished yet: completion counts down to zero.
    live_children: usize,
    /// The cancellation mark: set once, never cleared.
    cancelled: bool,
    /// Active, completing or finished.
    phase: Phase,
    /// Queues the task to be polled again; `None` once finished.
    waker: Option<Waker>,
}

// The real one: `Core` in executor/src/executor.rs (tree, run queue, current node), found
// through executor/src/context.rs; executor/src/queue.rs adds `Shared`, through which other
// threads wake tasks (a lock-free injector, and an unpark when the loop sleeps). Here it is
// all one thread-local, and a wake from another thread is out of scope (`spawn` refuses it).

/// The runtime: one per thread.
#[derive(Default)]
struct Rt {
    /// Every task spawned by the running `block_on`, indexed by key.
    tree: RefCell<Vec<Node>>,
    /// Tasks ready to be polled, in wake order (FIFO).
    queue: RefCell<VecDeque<Runnable>>,
    /// The task being polled: await points read its mark, `spawn` makes it the parent.
    current: Cell<Option<usize>>,
    /// Virtual time in ticks: it moves only when nothing is runnable.
    now: Cell<u64>,
    /// Pending sleeps by (deadline, registration number): earliest first, ties in order.
    timers: RefCell<BTreeMap<(u64, u64), Waker>>,
    /// Sleeps registered so far (the next registration number).
    sleeps: Cell<u64>,
}

thread_local!(static RT: Rt = Rt::default());

/// Runs `f` on this thread's runtime. Callers end every borrow inside `f`.
fn rt<R>(f: impl FnOnce(&Rt) -> R) -> R {
    RT.with(f)
}

/// Reads the node of the task being polled; `None` outside a task.
fn current<R>(f: impl FnOnce(&Node) -> R) -> Option<R> {
    rt(|rt| Some(f(&rt.tree.borrow()[rt.current.get()?])))
}

/// The current tick.
fn now() -> u64 {
    rt(|rt| rt.now.get())
}

// ---- 2. Spawning, and completion that waits for children -----------------------------------
//
// The real one: executor/src/task.rs. Its wrapper also catches panics in the user's future
// (in poll and in drop): to the handle, or with no handle they cancel the parent and reach
// `block_on` (R17). It handles `abort()` and teardown, drops the future as the current node
// (here a `Drop` that spawns makes a new root) and needs no `Box` (pin projection). The wait
// for children is `Tree::finish` in executor/src/tree.rs, on a child list, not a count.

/// Spawns `future` as a child of the task being polled (outside any task: as the root).
fn spawn<T: 'static>(future: impl Future<Output = T> + 'static) -> JoinHandle<T> {
    let key = rt(|rt| {
        let parent = rt.current.get();
        let mut tree = rt.tree.borrow_mut();
        let key = tree.len();
        // Born marked in a marked parent: the mark invariant holds for new nodes too.
        let cancelled = parent.is_some_and(|p| tree[p].cancelled);
        tree.push(Node::default());
        (tree[key].parent, tree[key].cancelled) = (parent, cancelled);
        if let Some(p) = parent {
            tree[p].children.push(key);
            tree[p].live_children += 1;
        }
        key
    });
    // What async-task polls. It calls a task complete when this block returns, so "the
    // handle resolves" means "the future returned and every child finished".
    let mut future = Box::pin(future);
    let wrapped = async move {
        let output = poll_fn(|cx| {
            let outer = rt(|rt| rt.current.replace(Some(key)));
            let polled = future.as_mut().poll(cx);
            rt(|rt| rt.current.set(outer));
            polled
        })
        .await;
        drop(future); // at once: its resources go before the wait for the children
        rt(|rt| rt.tree.borrow_mut()[key].phase = Phase::Completing);
        // Woken by the last child to finish (`finish`), not before.
        poll_fn(|_| match rt(|rt| rt.tree.borrow()[key].live_children) {
            0 => Poll::Ready(()),
            _ => Poll::Pending,
        })
        .await;
        finish(key);
        output
    };
    let home = thread::current().id();
    let schedule = move |runnable| {
        assert_eq!(thread::current().id(), home, "woken on another thread");
        rt(|rt| rt.queue.borrow_mut().push_back(runnable));
    };
    let (runnable, task) = async_task::spawn_local(wrapped, schedule);
    rt(|rt| rt.tree.borrow_mut()[key].waker = Some(runnable.waker()));
    runnable.schedule();
    let task = Some(task);
    JoinHandle { task, key }
}

/// The task at `key` finished: count it off its parent and, if it was the last child of a
/// completing parent, wake the parent. No recursion: the parent finishes in its own poll,
/// through the run queue, so a 1,000,000-deep chain completes one level per poll.
fn finish(key: usize) {
    let wake_parent = rt(|rt| {
        let mut tree = rt.tree.borrow_mut();
        tree[key].phase = Phase::Finished;
        tree[key].waker = None;
        let parent = tree[key].parent?;
        let parent = &mut tree[parent];
        parent.live_children -= 1;
        let last = parent.live_children == 0 && parent.phase == Phase::Completing;
        parent.waker.clone().filter(|_| last)
    });
    if let Some(waker) = wake_parent {
        waker.wake(); // after the borrow: a waker may re-enter the runtime
    }
}

// ---- 3. The handle, and cancelling a subtree ------------------------------------------------
//
// The real one: executor/src/join.rs, whose handle is also an await point (a join fails in a
// cancelled task), hands over panics as a `JoinError`, and can `abort()` a task that ignores
// its cancellation. `Tree::cancel` (executor/src/tree.rs) walks with no stack at all, along
// parent and sibling links, and stops at shields (executor/src/shield.rs): cleanup can await.

/// Awaits a task's output. Dropping it lets the task run on, still its parent's child.
struct JoinHandle<T> {
    /// async-task's half; taken only by `drop`.
    task: Option<Task<T>>,
    /// The task's node.
    key: usize,
}

impl<T> JoinHandle<T> {
    /// Marks the task and its subtree and wakes every newly marked task: each one meets
    /// `Err(Cancelled)` at its next await point, without waiting for its timer. An explicit
    /// stack, as recursion would overflow the thread's stack on a 1,000,000-deep chain. A
    /// marked node's subtree is marked already (the invariant): it is skipped, so a second
    /// cancel is free.
    fn cancel(&self) {
        let wakers = rt(|rt| {
            let mut tree = rt.tree.borrow_mut();
            let (mut stack, mut wakers) = (vec![self.key], Vec::new());
            while let Some(key) = stack.pop() {
                let node = &mut tree[key];
                if !node.cancelled && node.phase != Phase::Finished {
                    node.cancelled = true;
                    wakers.extend(node.waker.clone());
                    stack.extend(node.children.iter().rev()); // popped in spawn order
                }
            }
            wakers
        });
        wakers.into_iter().for_each(Waker::wake); // after the borrow, as in `finish`
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        Pin::new(self.task.as_mut().expect("a live handle")).poll(cx)
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        // Dropping async-task's `Task` would drop the task's future unfinished, skipping its
        // cleanup: what the tree exists to prevent. Detach it instead.
        self.task.take().into_iter().for_each(Task::detach);
    }
}

// ---- 4. Await points: level-triggered `Cancelled` -------------------------------------------
//
// The real ones: executor/src/checkpoint.rs (`yield_now`; `poll_cancelled`, step one of every
// leaf future) and reactor/src/sleep.rs on the timers of reactor/src/timers.rs and the clock
// of reactor/src/clock.rs. They spend a per-poll budget (executor/src/coop.rs), so a task
// that swallows `Cancelled` in a loop still lets others run, and a dropped sleep removes its
// timer at once; here it stays, and when it fires it wakes its task for nothing (spuriously).

/// The error of every await point in a cancelled task.
#[derive(Debug)]
struct Cancelled;

/// The first step of every await point: is the task being polled marked? One lookup, no walk
/// up the tree, since a mark is pushed down to every node of the subtree when it is set.
fn check() -> Result<(), Cancelled> {
    match current(|node| node.cancelled) {
        Some(true) => Err(Cancelled),
        _ => Ok(()),
    }
}

/// Lets the other ready tasks run once, then reports the mark: `Err(Cancelled)` if the task
/// is marked, at this await and at every later one (level-triggered, not a one-off event).
async fn yield_now() -> Result<(), Cancelled> {
    let mut yielded = false;
    poll_fn(|cx| {
        if !std::mem::replace(&mut yielded, true) {
            cx.waker().wake_by_ref(); // to the back of the queue
            return Poll::Pending;
        }
        Poll::Ready(check())
    })
    .await
}

/// Waits `ticks` ticks of virtual time, unless the task is or gets cancelled.
async fn sleep_ticks(ticks: u64) -> Result<(), Cancelled> {
    let (deadline, n) = rt(|rt| (rt.now.get() + ticks, rt.sleeps.replace(rt.sleeps.get() + 1)));
    poll_fn(|cx| {
        check()?; // the mark first, even past the deadline: a cancelled await fails
        if now() >= deadline {
            return Poll::Ready(Ok(()));
        }
        let waker = cx.waker().clone();
        rt(|rt| rt.timers.borrow_mut().insert((deadline, n), waker));
        Poll::Pending
    })
    .await
}

// ---- 5. block_on: the loop, until the whole tree is done ------------------------------------
//
// The real one: `Executor::block_on` in executor/src/executor.rs. Its root future may borrow
// from the caller, so it is a job of its own, not a task (executor/src/root.rs); a tick runs
// at most 61 jobs before looking at I/O; it parks through executor/src/park.rs in the reactor
// (epoll, signals, all due timers, or a jump of virtual time); it re-raises panics after every
// cleanup, can follow a seed (executor/src/strategy.rs), and reports deadlocks with the tree.

/// Runs `future` as the root task; returns its output once it *and every task of the tree*
/// finished. With nothing runnable the clock jumps to the next deadline: ticks take no time.
fn block_on<T: 'static>(future: impl Future<Output = T> + 'static) -> T {
    rt(|rt| {
        assert!(rt.current.get().is_none(), "block_on inside a task");
        rt.tree.borrow_mut().clear();
        rt.timers.borrow_mut().clear(); // what earlier sleeps left behind
        rt.now.set(0);
    });
    let mut root = spawn(future);
    loop {
        // 1. Tick: poll every ready task, including those woken meanwhile.
        while let Some(runnable) = rt(|rt| rt.queue.borrow_mut().pop_front()) {
            runnable.run();
        }
        // 2. Done? The root finishes only after its whole subtree (section 2).
        if rt(|rt| rt.tree.borrow()[root.key].phase == Phase::Finished) {
            break;
        }
        // 3. Park: nothing is runnable, so jump to the earliest deadline and wake its sleep.
        let Some(((deadline, _), waker)) = rt(|rt| rt.timers.borrow_mut().pop_first()) else {
            panic!("deadlock: nothing is runnable and no sleep is pending");
        };
        rt(|rt| rt.now.set(deadline));
        waker.wake();
    }
    match Pin::new(&mut root).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("a finished task has its output"),
    }
}

// ---- 6. The demo ----------------------------------------------------------------------------
//
// A root spawns a parent, which spawns two children that work one tick at a time. At tick 3
// the root cancels the parent: all three are marked and woken; the parent's future returns
// at once, the children clean up, and only then does the parent's handle resolve.

/// The lines `main` prints, in this order (tests/tiny_treeloop.rs checks them too).
const EXPECTED: [&str; 9] = [
    "parent: spawned 2 children at tick 0",
    "root: cancelling the parent at tick 3",
    "parent: cancelled at tick 3, returns with 2 children still live",
    "child 1: cancelled at tick 3 after 2 ticks of work",
    "child 2: cancelled at tick 3 after 2 ticks of work",
    "child 1: cancelled at tick 3, cleaned up (2 of 2 cleanup awaits failed too)",
    "child 2: cancelled at tick 3, cleaned up (2 of 2 cleanup awaits failed too)",
    "parent: done after its 2 children",
    "block_on: tree empty, 4 tasks ran",
];

// What the demo said, for the check at the end.
thread_local!(static LOG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) });

/// Prints a line and keeps it in `LOG`.
macro_rules! say {
    ($($arg:tt)*) => {{
        let line = format!($($arg)*);
        println!("{line}");
        LOG.with_borrow_mut(|log| log.push(line));
    }};
}

async fn child(n: u32) {
    let mut worked = 0;
    while sleep_ticks(1).await.is_ok() {
        worked += 1;
    }
    let at = now();
    say!("child {n}: cancelled at tick {at} after {worked} ticks of work");
    // A two-step cleanup. The mark stays, so each of its awaits fails too: a cleanup that
    // must await runs inside `shield(..)` in the real runtime, left out here.
    let mut failed = 0;
    for _ in 0..2 {
        failed += usize::from(yield_now().await.is_err());
    }
    say!("child {n}: cancelled at tick {at}, cleaned up ({failed} of 2 cleanup awaits failed too)");
}

async fn parent() {
    for n in 1..=2 {
        spawn(child(n)); // the handle is dropped: still a child, still waited for
    }
    say!("parent: spawned 2 children at tick {}", now());
    while sleep_ticks(10).await.is_ok() {}
    let (at, live) = (now(), current(|node| node.live_children).unwrap_or(0));
    say!("parent: cancelled at tick {at}, returns with {live} children still live");
}

fn main() {
    block_on(async {
        let parent = spawn(parent());
        sleep_ticks(3).await.expect("nobody cancels the root");
        say!("root: cancelling the parent at tick {}", now());
        parent.cancel();
        parent.await; // resolves only once the parent's children finished too
        let cleaned = LOG.with_borrow(|log| log.iter().filter(|l| l.contains("cleaned")).count());
        say!("parent: done after its {cleaned} children");
    });
    let phases: Vec<Phase> = rt(|rt| rt.tree.borrow().iter().map(|n| n.phase).collect());
    let live = phases.iter().filter(|&&p| p != Phase::Finished).count();
    let tree = if live == 0 { "empty" } else { "NOT EMPTY" };
    say!("block_on: tree {tree}, {} tasks ran", phases.len());
    LOG.with_borrow(|log| assert_eq!(*log, EXPECTED, "the model broke: see the log above"));
}
