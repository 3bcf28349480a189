//! The side-by-side benchmark suite: the same workloads on treeloop, tokio (current_thread)
//! and async-executor (`LocalExecutor` driven by async-io), shared by the bench binary
//! (`benches/side_by_side.rs`, which times them) and `tests/bench_smoke.rs` (which runs them
//! once at tiny sizes, so the suite cannot rot).
//!
//! # Ground rules
//!
//! - **Same program, three runtimes.** Each workload module has one function per runtime;
//!   they differ only in the runtime's spelling of spawn, join, yield, sleep, channel, socket.
//! - **The runtime is built outside the timed part.** A sample times what happens inside
//!   `block_on`, from the first spawn to the last check.
//! - **Every run checks its own result** (sums, counts, echoed bytes) with `assert!`, so a
//!   fast wrong answer fails instead of winning.
//! - A sample is one run on one runtime, reported per unit of work (ns per task, B per task).

pub mod harness;

mod cancel_tree;
mod floor;
mod ping_pong;
mod proc;
mod spawn_join;
mod spawn_memory;
mod tcp_echo;
mod timers;
mod yield_now;

use std::time::Duration;

/// The runtimes compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// This crate.
    Treeloop,
    /// tokio's current_thread runtime.
    Tokio,
    /// async-executor's `LocalExecutor` inside `async_io::block_on` (smol's single-thread
    /// setup).
    AsyncExecutor,
    /// Not a peer: a bare executor on async-task (`floor.rs`), what the task library alone
    /// costs. Only for the workloads that need no reactor ([`Workload::has_floor`]).
    Floor,
}

impl Runtime {
    /// Every runtime, in report order.
    pub const ALL: [Runtime; 4] = [
        Runtime::Treeloop,
        Runtime::Tokio,
        Runtime::AsyncExecutor,
        Runtime::Floor,
    ];

    /// The name used in the report and on the command line of a child process.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Treeloop => "treeloop",
            Runtime::Tokio => "tokio",
            Runtime::AsyncExecutor => "async-executor",
            Runtime::Floor => "async-task floor",
        }
    }

    /// Its name on a child process's command line: one word.
    fn key(self) -> &'static str {
        match self {
            Runtime::Floor => "floor",
            _ => self.name(),
        }
    }

    fn from_key(key: &str) -> Option<Runtime> {
        Runtime::ALL.into_iter().find(|rt| rt.key() == key)
    }
}

/// How long a run is: the full sizes, a quick pass, or a smoke test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The sizes `benches/README.md` reports, 1 warm-up round and 21 measured rounds
    /// (`cargo bench`).
    Full,
    /// A tenth of the work, 1 warm-up and 3 rounds: seconds (`cargo bench -- --quick`).
    Quick,
    /// Tiny sizes, 1 round, no child processes: only checks that everything runs
    /// (`tests/bench_smoke.rs`, and `cargo test --benches`).
    Smoke,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Quick => "quick",
            Mode::Smoke => "smoke",
        }
    }

    fn from_name(name: &str) -> Option<Mode> {
        [Mode::Full, Mode::Quick, Mode::Smoke]
            .into_iter()
            .find(|mode| mode.name() == name)
    }

    /// Rounds run before measuring (allocator, page cache and CPU frequency warm up).
    fn warmup_rounds(self) -> usize {
        match self {
            Mode::Full | Mode::Quick => 1,
            Mode::Smoke => 0,
        }
    }

    /// Rounds measured; each round runs every runtime once.
    fn rounds(self) -> usize {
        match self {
            Mode::Full => 21,
            Mode::Quick => 3,
            Mode::Smoke => 1,
        }
    }

    /// The size of every workload in this mode.
    pub fn sizes(self) -> Sizes {
        match self {
            Mode::Full => Sizes {
                spawn_join_tasks: 100_000,
                spawn_join_batches: 1,
                yield_tasks: 1_000,
                yields_per_task: 200,
                ping_pongs: 200_000,
                timers: 100_000,
                timer_max: Duration::from_millis(20),
                tcp_connections: 32,
                tcp_round_trips: 2_000,
                cancel_children: 100,
                cancel_leaves_per_child: 1_000,
                memory_tasks: 100_000,
            },
            Mode::Quick => Sizes {
                spawn_join_tasks: 10_000,
                spawn_join_batches: 1,
                yield_tasks: 1_000,
                yields_per_task: 20,
                ping_pongs: 20_000,
                timers: 10_000,
                timer_max: Duration::from_millis(20),
                tcp_connections: 32,
                tcp_round_trips: 200,
                cancel_children: 100,
                cancel_leaves_per_child: 100,
                memory_tasks: 10_000,
            },
            Mode::Smoke => Sizes {
                spawn_join_tasks: 100,
                spawn_join_batches: 1,
                yield_tasks: 10,
                yields_per_task: 5,
                ping_pongs: 100,
                timers: 100,
                timer_max: Duration::from_millis(2),
                tcp_connections: 4,
                tcp_round_trips: 10,
                cancel_children: 3,
                cancel_leaves_per_child: 5,
                memory_tasks: 100,
            },
        }
    }
}

impl Mode {
    /// The task counts of the scaling run (`--scaling`): per-task cost as work grows.
    pub fn scaling_counts(self) -> [usize; 3] {
        match self {
            Mode::Full => [10_000, 100_000, 1_000_000],
            Mode::Quick => [1_000, 10_000, 100_000],
            Mode::Smoke => [100, 200, 400],
        }
    }

    /// Measured rounds of the scaling run at `tasks` tasks, after one warm-up round: more
    /// for the small counts, whose samples are short (2 ms for 10,000 tasks), so that each
    /// count's median covers about as much work as the others'.
    fn scaling_rounds(self, tasks: usize) -> usize {
        match self {
            Mode::Full => (2_500_000 / tasks).clamp(5, 25),
            Mode::Quick => 3,
            Mode::Smoke => 1,
        }
    }
}

/// The size of every workload.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// spawn_join: tasks spawned, then joined.
    pub spawn_join_tasks: usize,
    /// spawn_join: how many times a sample spawns and joins its tasks (1 but in the
    /// scaling run).
    pub spawn_join_batches: usize,
    /// yield: tasks that yield in a loop.
    pub yield_tasks: usize,
    /// yield: yields per task.
    pub yields_per_task: usize,
    /// ping_pong: round trips between the two tasks.
    pub ping_pongs: usize,
    /// timers: tasks, each sleeping once.
    pub timers: usize,
    /// timers: the longest sleep (durations are spread over `0..=timer_max`).
    pub timer_max: Duration,
    /// tcp_echo: loopback connections.
    pub tcp_connections: usize,
    /// tcp_echo: 64-byte round trips per connection.
    pub tcp_round_trips: usize,
    /// cancel_tree: children of the root.
    pub cancel_children: usize,
    /// cancel_tree: leaves under each child.
    pub cancel_leaves_per_child: usize,
    /// spawn_memory: idle tasks alive at once.
    pub memory_tasks: usize,
}

impl Sizes {
    /// These sizes with `workload`'s task count set to `tasks` (cancel_tree: 100 children,
    /// `tasks / 100` leaves each), for the scaling run. Only the workloads with a task count
    /// scale: spawn_join, cancel_tree and spawn_memory. spawn_join repeats its batch so that
    /// every count's sample spawns ten times the mode's usual number of tasks.
    pub fn with_tasks(self, workload: Workload, tasks: usize) -> Sizes {
        match workload {
            Workload::SpawnJoin => Sizes {
                spawn_join_batches: (self.spawn_join_tasks * 10 / tasks).max(1),
                spawn_join_tasks: tasks,
                ..self
            },
            Workload::CancelTree => Sizes {
                cancel_children: 100,
                cancel_leaves_per_child: tasks.div_ceil(100),
                ..self
            },
            Workload::SpawnMemory => Sizes {
                memory_tasks: tasks,
                ..self
            },
            _ => panic!("{} has no task count to scale", workload.name()),
        }
    }
}

/// A target a workload has besides "ratio ≤ 1.0 to the best peer" (`benches/README.md`).
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// treeloop's median at most this fraction of tokio's.
    TimesTokio(f64),
    /// treeloop's median at most this many units.
    AtMost(f64),
}

/// One row of the report: a value each sample produces.
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    /// The row's name.
    pub name: &'static str,
    /// What one value counts, e.g. "ns/task".
    pub unit: &'static str,
    /// treeloop's median at most this many times the best peer's: 0.8 where the executor
    /// is the work (spawning, yielding, timers, cancelling), 1.0 where a channel or the
    /// kernel is (the performance issue's targets).
    pub best_peer: f64,
    /// A target of its own, if it has one.
    pub target: Option<Target>,
}

const fn metric(name: &'static str, unit: &'static str) -> Metric {
    Metric {
        name,
        unit,
        best_peer: 1.0,
        target: None,
    }
}

/// [`metric`] for an executor-bound row: at most 0.8x the best peer.
const fn executor_bound(name: &'static str, unit: &'static str) -> Metric {
    Metric {
        best_peer: 0.8,
        ..metric(name, unit)
    }
}

/// The workloads, in report order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// See `spawn_join.rs`.
    SpawnJoin,
    /// See `yield_now.rs`.
    Yield,
    /// See `ping_pong.rs`.
    PingPong,
    /// See `timers.rs`.
    Timers,
    /// See `tcp_echo.rs`.
    TcpEcho,
    /// See `cancel_tree.rs`.
    CancelTree,
    /// See `spawn_memory.rs`.
    SpawnMemory,
}

impl Workload {
    /// Every workload, in report order.
    pub const ALL: [Workload; 7] = [
        Workload::SpawnJoin,
        Workload::Yield,
        Workload::PingPong,
        Workload::Timers,
        Workload::TcpEcho,
        Workload::CancelTree,
        Workload::SpawnMemory,
    ];

    /// The workloads of the scaling run (`--scaling`).
    pub const SCALING: [Workload; 3] = [
        Workload::SpawnJoin,
        Workload::CancelTree,
        Workload::SpawnMemory,
    ];

    /// The name used on the command line to select it.
    pub fn name(self) -> &'static str {
        match self {
            Workload::SpawnJoin => "spawn_join",
            Workload::Yield => "yield",
            Workload::PingPong => "ping_pong",
            Workload::Timers => "timers",
            Workload::TcpEcho => "tcp_echo",
            Workload::CancelTree => "cancel_tree",
            Workload::SpawnMemory => "spawn_memory",
        }
    }

    fn from_name(name: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == name)
    }

    /// The rows it reports; [`Workload::run`] returns one value per row, in this order.
    pub fn metrics(self) -> &'static [Metric] {
        match self {
            Workload::SpawnJoin => const { &[executor_bound("spawn_join", "ns/task")] },
            Workload::Yield => const { &[executor_bound("yield", "ns/yield")] },
            Workload::PingPong => {
                const {
                    &[
                        metric("ping_pong (own channel)", "ns/round trip"),
                        metric("ping_pong (async-channel)", "ns/round trip"),
                    ]
                }
            }
            Workload::Timers => {
                const {
                    &[
                        executor_bound("timers (wall)", "ns/timer"),
                        executor_bound("timers (cpu)", "ns/timer"),
                    ]
                }
            }
            Workload::TcpEcho => const { &[metric("tcp_echo", "ns/round trip")] },
            Workload::CancelTree => {
                const {
                    &[Metric {
                        target: Some(Target::TimesTokio(0.2)),
                        ..executor_bound("cancel_tree", "ns/task")
                    }]
                }
            }
            Workload::SpawnMemory => {
                const {
                    &[Metric {
                        target: Some(Target::AtMost(150.0)),
                        ..metric("spawn_memory", "B/task")
                    }]
                }
            }
        }
    }

    /// Whether a sample needs a process of its own: resident-set growth means nothing in a
    /// process whose allocator already holds the pages freed by earlier samples.
    fn needs_fresh_process(self) -> bool {
        self == Workload::SpawnMemory
    }

    /// Whether it runs on [`Runtime::Floor`]: not the workloads that need sockets or timers.
    pub fn has_floor(self) -> bool {
        !matches!(self, Workload::Timers | Workload::TcpEcho)
    }

    /// Whether it runs on `runtime`.
    pub fn runs_on(self, runtime: Runtime) -> bool {
        runtime != Runtime::Floor || self.has_floor()
    }

    /// Runs one sample on `runtime` and returns one value per [`Workload::metrics`] row.
    ///
    /// # Panics
    ///
    /// If the run's result is wrong (every workload checks its own), or if the workload does
    /// not run on `runtime` ([`Workload::runs_on`]).
    pub fn run(self, runtime: Runtime, sizes: &Sizes) -> Vec<f64> {
        assert!(
            self.runs_on(runtime),
            "{} does not run on {}",
            self.name(),
            runtime.name()
        );
        match self {
            Workload::SpawnJoin => vec![spawn_join::run(
                runtime,
                sizes.spawn_join_tasks,
                sizes.spawn_join_batches,
            )],
            Workload::Yield => vec![yield_now::run(
                runtime,
                sizes.yield_tasks,
                sizes.yields_per_task,
            )],
            Workload::PingPong => ping_pong::run(runtime, sizes.ping_pongs).to_vec(),
            Workload::Timers => timers::run(runtime, sizes.timers, sizes.timer_max).to_vec(),
            Workload::TcpEcho => vec![tcp_echo::run(
                runtime,
                sizes.tcp_connections,
                sizes.tcp_round_trips,
            )],
            Workload::CancelTree => vec![cancel_tree::run(
                runtime,
                sizes.cancel_children,
                sizes.cancel_leaves_per_child,
            )],
            Workload::SpawnMemory => vec![spawn_memory::run(runtime, sizes.memory_tasks)],
        }
    }
}

/// A treeloop runtime with the default configuration.
fn treeloop_runtime() -> treeloop::Runtime {
    treeloop::Builder::new().build().expect("treeloop runtime")
}

/// A tokio current_thread runtime with I/O and timers.
fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// `elapsed` divided by `units`, in nanoseconds.
fn per_unit(elapsed: Duration, units: usize) -> f64 {
    elapsed.as_nanos() as f64 / units as f64
}
