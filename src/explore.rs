//! `test::explore`: run a small test body under *every* schedule, up to a preemption bound,
//! and replay a failing schedule from `TREELOOP_SCHEDULE`.
//!
//! # How
//!
//! Stateless model checking over the choices a run makes (a choice: a pick while two or more
//! tasks are ready), depth first. Each run replays a *prefix* of choices with
//! `Builder::replay` and then continues without preemption (the task that just ran goes on
//! if it is ready, else the first woken; `Fallback::Continue`), logging at every choice the
//! tasks that were ready. The next prefix is the deepest choice with an alternative not yet
//! tried, that alternative taken. No state is saved or compared: a body that is deterministic
//! given its schedule (what a seeded runtime guarantees) is simply run again.
//!
//! A *preemption* is a choice of another task while the one that just ran is ready again
//! (it yielded). Schedules with at most `preemption_bound` of them are explored
//! (iterative context bounding, Musuvathi and Qadeer, PLDI 2007): most concurrency bugs
//! need one or two, and the count of schedules grows with the bound, not with the length
//! of the run. The continuation past a prefix never preempts, so every run is within the
//! bound and each schedule within it runs exactly once.
//!
//! Rejected: continuing a prefix in FIFO order, as a plain replay does. In treeloop a yield
//! is the scheduling point of a test, and FIFO switches at every yield, so its own run of
//! three tasks that yield once already has three preemptions, over any small bound.
//!
//! # Ground rules
//!
//! - Each schedule runs on a fresh runtime built from the options' builder.
//! - A run that does not follow its prefix (the body is not deterministic under a fixed
//!   schedule: real time, a thread, state kept from an earlier run) stops the exploration
//!   with a panic that says so, instead of exploring a tree that is not there.

use std::fmt;
use std::future::Future;
use std::panic::Location;

use treeloop_executor::{Choice, ChoicePoint, Schedule};

use crate::run::{CheckOutcome, replay_line, run_once};
use crate::runtime::Builder;

/// The preemption bound of [`explore`]: bugs that need more than two preemptions are rare
/// (CHESS's experience), and the space stays small.
pub const DEFAULT_PREEMPTION_BOUND: u32 = 2;

/// The schedule budget of [`explore`].
pub const DEFAULT_MAX_SCHEDULES: u64 = 10_000;

/// How [`explore_with`] explores: the runtime's options, the preemption bound and the budget.
///
/// ```
/// use treeloop::test::{Explore, explore_with};
///
/// let report = explore_with(Explore::new().preemption_bound(1), || async {
///     let a = treeloop::spawn(async { treeloop::yield_now().await.unwrap() });
///     a.await.unwrap();
/// });
/// assert!(report.exhausted);
/// ```
#[derive(Clone, Debug)]
pub struct Explore {
    /// The runtime options of every run (its strategy and seed are overridden).
    builder: Builder,
    /// The most preemptions a schedule may have.
    preemption_bound: u32,
    /// The most schedules to run.
    max_schedules: u64,
}

impl Default for Explore {
    fn default() -> Explore {
        Explore {
            builder: Builder::new(),
            preemption_bound: DEFAULT_PREEMPTION_BOUND,
            max_schedules: DEFAULT_MAX_SCHEDULES,
        }
    }
}

impl Explore {
    /// The defaults: 2 preemptions, 10,000 schedules, a default runtime (in deterministic
    /// mode, as every replay).
    pub fn new() -> Explore {
        Explore::default()
    }

    /// The runtime options of every run, `start_paused` or diagnostics say; its strategy
    /// and seed choose nothing here.
    pub fn builder(mut self, builder: Builder) -> Explore {
        self.builder = builder;
        self
    }

    /// Explores the schedules with at most `bound` preemptions (choices of another task
    /// while the one that just ran is ready again). 0: only the choices at which the task
    /// that ran last is not ready.
    pub fn preemption_bound(mut self, bound: u32) -> Explore {
        self.preemption_bound = bound;
        self
    }

    /// Stops after `schedules` schedules, exhausted or not.
    pub fn max_schedules(mut self, schedules: u64) -> Explore {
        self.max_schedules = schedules.max(1);
        self
    }
}

/// What an exploration did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exploration {
    /// Schedules run.
    pub schedules: u64,
    /// Every schedule within the bound ran: the space is exhausted. `false` when the budget
    /// stopped it first, or for the single run of a `TREELOOP_SCHEDULE` replay.
    pub exhausted: bool,
    /// The bound explored under.
    pub preemption_bound: u32,
    /// The most choices one schedule made.
    pub longest: usize,
}

impl fmt::Display for Exploration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Exploration {
            schedules,
            preemption_bound,
            longest,
            ..
        } = self;
        if self.exhausted {
            write!(
                f,
                "explored all {schedules} schedules with at most {preemption_bound} \
                 preemptions (up to {longest} choices each)"
            )
        } else {
            write!(
                f,
                "ran {schedules} schedules (up to {longest} choices each) and stopped before \
                 exhausting those with at most {preemption_bound} preemptions: raise \
                 max_schedules or lower the bound to cover them all"
            )
        }
    }
}

/// Runs `body` under every schedule with at most 2 preemptions, up to 10,000 schedules;
/// see [`explore_with`].
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
///
/// let report = treeloop::test::explore(|| async {
///     let hits = Rc::new(Cell::new(0));
///     let tasks: Vec<_> = (0..2)
///         .map(|_| {
///             let hits = hits.clone();
///             treeloop::spawn(async move {
///                 treeloop::yield_now().await.unwrap();
///                 hits.set(hits.get() + 1);
///             })
///         })
///         .collect();
///     for task in tasks {
///         task.await.unwrap();
///     }
///     assert_eq!(hits.get(), 2);
/// });
/// assert!(report.exhausted, "{report}");
/// ```
///
/// # Panics
///
/// With the first failure, after printing the replay line of its schedule.
#[track_caller]
pub fn explore<F, Fut>(body: F) -> Exploration
where
    F: Fn() -> Fut,
    Fut: Future,
    Fut::Output: CheckOutcome,
{
    explore_with(Explore::new(), body)
}

/// Runs `body` on a fresh runtime under every schedule (the order in which ready tasks run)
/// with at most `options.preemption_bound` preemptions, depth first, until every such
/// schedule ran or `options.max_schedules` did, and returns what it did. Exhaustive where
/// [`check`](crate::test::check)'s seeds sample: for small bodies, a few tasks with a few
/// awaits each (the count of schedules grows exponentially with the tasks' awaits).
///
/// On the first failure (a panic or an `Err`), prints the failing schedule's replay line,
/// `TREELOOP_SCHEDULE=<schedule> cargo test <name> -- --exact`, and fails with the original
/// panic. With `TREELOOP_SCHEDULE` set, runs that one schedule instead.
///
/// # Panics
///
/// With the first failure; when the body does not follow a schedule it was given (it is
/// not deterministic given its schedule); when a runtime cannot be built.
#[track_caller]
pub fn explore_with<F, Fut>(options: Explore, body: F) -> Exploration
where
    F: Fn() -> Fut,
    Fut: Future,
    Fut::Output: CheckOutcome,
{
    let location = Location::caller();
    let Explore {
        builder,
        preemption_bound: bound,
        max_schedules,
    } = options;
    let mut report = Exploration {
        schedules: 0,
        exhausted: false,
        preemption_bound: bound,
        longest: 0,
    };
    if replay_from_env(&builder, &body, location, "explore") {
        report.schedules = 1;
        return report;
    }
    // The choices of the current schedule, deepest last, with what was tried at each.
    let mut stack: Vec<Node> = Vec::new();
    loop {
        let prefix: Schedule = stack.iter().map(|node| node.point.chosen).collect();
        let (runtime, failed) = run_once(&builder.clone().explore_prefix(prefix), &body, location);
        report.schedules += 1;
        if let Some(failed) = failed {
            let preemptions = preemptions(&runtime.choice_points());
            report_schedule(
                &format!(
                    "treeloop::test::explore: failed on schedule {} (preemptions: \
                     {preemptions})",
                    report.schedules
                ),
                &runtime.schedule(),
            );
            failed.raise(&format!("on schedule {}", report.schedules));
        }
        let points = runtime.choice_points();
        report.longest = report.longest.max(points.len());
        // 1. The run followed its prefix (else there is no tree to explore).
        if let Some(at) = (0..stack.len()).find(|&i| points.get(i) != Some(&stack[i].point)) {
            panic!(
                "treeloop::test::explore: schedule {} did not follow its own first {} choices \
                 (it went another way at choice {at}): the body does not run the same way under \
                 the same schedule. Keep it deterministic given its schedule: no real time, \
                 threads, or state carried over from an earlier run",
                report.schedules,
                stack.len()
            );
        }
        // 2. Its new choices join the stack.
        for point in points.into_iter().skip(stack.len()) {
            let preemptions = stack.last().map_or(0, |node| {
                node.preemptions + u32::from(node.point.preempts(node.point.chosen))
            });
            stack.push(Node {
                tried: vec![point.chosen],
                point,
                preemptions,
            });
        }
        // 3. Backtrack to the deepest choice with an alternative left within the bound.
        loop {
            let Some(node) = stack.last_mut() else {
                report.exhausted = true;
                return report;
            };
            if let Some(alternative) = node.untried(bound) {
                node.tried.push(alternative);
                node.point.chosen = alternative;
                break;
            }
            stack.pop();
        }
        if report.schedules >= max_schedules {
            return report;
        }
    }
}

/// One choice of the schedule being explored.
struct Node {
    /// The choice, as the run made it (`chosen` replaced by each alternative in turn).
    point: ChoicePoint,
    /// The choices tried here so far, the current one included.
    tried: Vec<Choice>,
    /// Preemptions of the choices before this one.
    preemptions: u32,
}

impl Node {
    /// An alternative not tried yet that keeps the schedule within `bound` preemptions, in
    /// queue order.
    fn untried(&self, bound: u32) -> Option<Choice> {
        self.point.ready.iter().copied().find(|&choice| {
            !self.tried.contains(&choice)
                && self.preemptions + u32::from(self.point.preempts(choice)) <= bound
        })
    }
}

/// The preemptions of a run's choices.
fn preemptions(points: &[ChoicePoint]) -> usize {
    points
        .iter()
        .filter(|point| point.preempts(point.chosen))
        .count()
}

/// With `TREELOOP_SCHEDULE` set, runs `body` once under that schedule (`check` or
/// `explore`, named by `who`) and fails the test as the original run did; `false` when the
/// variable is not set.
///
/// # Panics
///
/// When the variable is not a schedule, and when the run fails.
pub(crate) fn replay_from_env<F, Fut>(
    builder: &Builder,
    body: &F,
    location: &'static Location<'static>,
    who: &str,
) -> bool
where
    F: Fn() -> Fut,
    Fut: Future,
    Fut::Output: CheckOutcome,
{
    let Ok(text) = std::env::var("TREELOOP_SCHEDULE") else {
        return false;
    };
    let schedule: Schedule = text
        .parse()
        .unwrap_or_else(|err| panic!("TREELOOP_SCHEDULE: {err}"));
    let mut replay = builder.clone().replay(schedule.clone());
    // A seed given too chooses nothing, but seeds `test::rng` as in the failing run.
    if let Some(seed) = crate::runtime::seed_from_env() {
        replay = replay.seed(seed);
    }
    let (runtime, failed) = run_once(&replay, body, location);
    if let Some(failed) = failed {
        let diverged = match runtime.replay_divergences() {
            0 => String::new(),
            n => format!(" (diverging from it at {n} choices)"),
        };
        report_schedule(
            &format!("treeloop::test::{who}: failed replaying TREELOOP_SCHEDULE{diverged}"),
            &schedule,
        );
        failed.raise("on the replayed schedule");
    }
    true
}

/// Reports `what` and the line that replays `schedule`.
fn report_schedule(what: &str, schedule: &Schedule) {
    treeloop_executor::report::report(format_args!(
        "{what}; replay it with:\n    {}",
        replay_line(schedule)
    ));
}
