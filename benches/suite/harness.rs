//! The harness: runs the workloads on the three runtimes interleaved round by round, and
//! prints the medians and the ratios to the best peer as a markdown table.
//!
//! # Why a custom harness and not criterion
//!
//! On a noisy 2-core machine, the CPU frequency, the page cache and the neighbours drift
//! over a run. Measuring all of treeloop, then all of tokio, would hand that drift to one
//! runtime. Here every round runs each runtime once (A B C, then B C A, then C A B: the
//! start rotates so that no runtime always runs right after another's garbage), so drift
//! hits all alike, and the ratios compare medians of samples taken side by side.

use std::env;
use std::fmt;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Metric, Mode, Runtime, Target, Workload};

/// The environment variable that makes the bench binary a child running one sample.
const CHILD_ENV: &str = "TREELOOP_BENCH_CHILD";

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Sizes and rounds.
    pub mode: Mode,
    /// The workloads selected (all by default).
    pub workloads: Vec<Workload>,
    /// `--scaling`: per-task cost at three task counts instead of the side-by-side table.
    pub scaling: bool,
}

impl Options {
    /// Reads the command line: `--quick`, `--smoke`, workload names to select. `cargo bench`
    /// adds `--bench`, which selects the full run; without it (`cargo test --benches`) the
    /// binary runs as a smoke test, like libtest's benches do.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
        let mut bench = false;
        let mut mode = None;
        let mut workloads = Vec::new();
        let mut scaling = false;
        for arg in args {
            match arg.as_str() {
                "--bench" => bench = true,
                "--scaling" => scaling = true,
                "--quick" => mode = Some(Mode::Quick),
                "--smoke" => mode = Some(Mode::Smoke),
                name => workloads.push(Workload::from_name(name).ok_or_else(|| {
                    let names: Vec<_> = Workload::ALL.iter().map(|w| w.name()).collect();
                    format!(
                        "unknown argument {name:?}: expected --quick, --smoke, --scaling or a \
                         workload name ({})",
                        names.join(", ")
                    )
                })?),
            }
        }
        if scaling {
            if let Some(other) = workloads.iter().find(|w| !Workload::SCALING.contains(w)) {
                return Err(format!(
                    "--scaling runs spawn_join, cancel_tree and spawn_memory, not {}",
                    other.name()
                ));
            }
            if workloads.is_empty() {
                workloads = Workload::SCALING.to_vec();
            }
        }
        if workloads.is_empty() {
            workloads = Workload::ALL.to_vec();
        }
        let mode = mode.unwrap_or(if bench { Mode::Full } else { Mode::Smoke });
        Ok(Options {
            mode,
            workloads,
            scaling,
        })
    }
}

/// The bench binary's `main`: a child sample if asked for one, else the whole run.
pub fn main() {
    if let Ok(request) = env::var(CHILD_ENV) {
        return run_child(&request);
    }
    let options = Options::from_args(env::args().skip(1)).unwrap_or_else(|err| {
        eprintln!("side_by_side: {err}");
        std::process::exit(2)
    });
    if options.scaling {
        print!("{}", scaling(&options));
    } else {
        print!("{}", run(&options));
    }
}

/// Runs every selected workload, interleaved, and returns the report.
pub fn run(options: &Options) -> Report {
    let mode = options.mode;
    let total_rounds = mode.warmup_rounds() + mode.rounds();
    let mut rows = Vec::new();
    for &workload in &options.workloads {
        let metrics = workload.metrics();
        // samples[metric][runtime]: one value per measured round.
        let mut samples = vec![[(); Runtime::ALL.len()].map(|()| Vec::new()); metrics.len()];
        for round in 0..total_rounds {
            eprintln!("{}: round {}/{total_rounds}", workload.name(), round + 1);
            for offset in 0..Runtime::ALL.len() {
                let index = (round + offset) % Runtime::ALL.len();
                let runtime = Runtime::ALL[index];
                if !workload.runs_on(runtime) {
                    continue;
                }
                let values = sample(workload, runtime, mode, None);
                if round >= mode.warmup_rounds() {
                    for (metric, value) in values.into_iter().enumerate() {
                        samples[metric][index].push(value);
                    }
                }
            }
        }
        for (&metric, per_runtime) in metrics.iter().zip(samples) {
            rows.push(Row {
                metric,
                stats: per_runtime.map(|values| (!values.is_empty()).then(|| Stats::of(values))),
            });
        }
    }
    Report { mode, rows }
}

/// Runs one sample, in a process of its own if the workload needs one; `tasks` overrides the
/// workload's task count (the scaling run).
fn sample(workload: Workload, runtime: Runtime, mode: Mode, tasks: Option<usize>) -> Vec<f64> {
    if workload.needs_fresh_process() && mode != Mode::Smoke {
        return sample_in_child(workload, runtime, mode, tasks);
    }
    let sizes = mode.sizes();
    let sizes = tasks.map_or(sizes, |tasks| sizes.with_tasks(workload, tasks));
    workload.run(runtime, &sizes)
}

/// Runs one sample in a new process (see [`Workload::needs_fresh_process`]).
fn sample_in_child(
    workload: Workload,
    runtime: Runtime,
    mode: Mode,
    tasks: Option<usize>,
) -> Vec<f64> {
    let exe = env::current_exe().expect("the bench binary's path");
    let mut request = format!("{} {} {}", workload.name(), runtime.key(), mode.name());
    if let Some(tasks) = tasks {
        request += &format!(" {tasks}");
    }
    let output = Command::new(exe)
        .env(CHILD_ENV, &request)
        .stderr(Stdio::inherit())
        .output()
        .expect("starting a child sample");
    assert!(output.status.success(), "child sample {request:?} failed");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(|value| value.parse().expect("a child sample prints numbers"))
        .collect()
}

/// The child's side of [`sample_in_child`]: runs the sample, prints its values.
fn run_child(request: &str) {
    let parts: Vec<&str> = request.split(' ').collect();
    let (workload, runtime, mode, tasks) = match parts[..] {
        [workload, runtime, mode] => (workload, runtime, mode, None),
        [workload, runtime, mode, tasks] => (workload, runtime, mode, Some(tasks)),
        _ => panic!("{CHILD_ENV} must be \"WORKLOAD RUNTIME MODE [TASKS]\", not {request:?}"),
    };
    let workload = Workload::from_name(workload).expect("a known workload");
    let runtime = Runtime::from_key(runtime).expect("a known runtime");
    let mode = Mode::from_name(mode).expect("a known mode");
    let sizes = match tasks {
        None => mode.sizes(),
        Some(tasks) => {
            let tasks = tasks.parse().expect("TASKS is a number");
            mode.sizes().with_tasks(workload, tasks)
        }
    };
    let values: Vec<String> = workload
        .run(runtime, &sizes)
        .iter()
        .map(f64::to_string)
        .collect();
    println!("{}", values.join(" "));
}

/// Median, min and max of one metric on one runtime.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    /// The median (the mean of the middle two for an even count).
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
}

impl Stats {
    fn of(mut values: Vec<f64>) -> Stats {
        assert!(!values.is_empty(), "a metric without samples");
        values.sort_by(f64::total_cmp);
        let middle = values.len() / 2;
        let median = if values.len() % 2 == 1 {
            values[middle]
        } else {
            (values[middle - 1] + values[middle]) / 2.0
        };
        Stats {
            median,
            min: values[0],
            max: values[values.len() - 1],
        }
    }
}

/// One metric's results, indexed like [`Runtime::ALL`].
#[derive(Clone, Debug)]
pub struct Row {
    /// What was measured.
    pub metric: Metric,
    /// Per runtime; `None` where the workload does not run ([`Workload::runs_on`]).
    pub stats: [Option<Stats>; 4],
}

impl Row {
    /// `runtime`'s median, if the workload ran on it.
    pub fn stats(&self, runtime: Runtime) -> Option<Stats> {
        let index = Runtime::ALL.iter().position(|&rt| rt == runtime);
        self.stats[index.expect("a runtime of the table")]
    }

    fn median(&self, runtime: Runtime) -> f64 {
        self.stats(runtime)
            .expect("treeloop and its peers run every workload")
            .median
    }

    /// The peer (tokio or async-executor) with the lower median.
    pub fn best_peer(&self) -> Runtime {
        let (tokio, async_executor) = (Runtime::Tokio, Runtime::AsyncExecutor);
        if self.median(tokio) <= self.median(async_executor) {
            tokio
        } else {
            async_executor
        }
    }

    /// `runtime`'s median over the best peer's.
    pub fn ratio_to_best_peer(&self, runtime: Runtime) -> f64 {
        self.median(runtime) / self.median(self.best_peer())
    }
}

/// The results of a run; `Display` renders the markdown table and the targets.
#[derive(Clone, Debug)]
pub struct Report {
    /// The mode it ran in.
    pub mode: Mode,
    /// One row per metric, in workload order.
    pub rows: Vec<Row>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} UTC, {} run: {}; {} measured rounds after {} warm-up, runtimes interleaved\n",
            today(),
            self.mode.name(),
            machine(),
            self.mode.rounds(),
            self.mode.warmup_rounds()
        )?;
        writeln!(
            f,
            "| workload | runtime | median | min | max | unit | × best peer | × tokio |"
        )?;
        writeln!(f, "|---|---|---:|---:|---:|---|---:|---:|")?;
        for row in &self.rows {
            for (runtime, stats) in Runtime::ALL.into_iter().zip(&row.stats) {
                let Some(stats) = stats else { continue };
                writeln!(
                    f,
                    "| {} | {} | {} | {} | {} | {} | {:.2} | {:.2} |",
                    row.metric.name,
                    runtime.name(),
                    value(stats.median),
                    value(stats.min),
                    value(stats.max),
                    row.metric.unit,
                    row.ratio_to_best_peer(runtime),
                    stats.median / row.median(Runtime::Tokio),
                )?;
            }
        }
        writeln!(f, "\nTargets, treeloop's medians:\n")?;
        for row in &self.rows {
            let ratio = row.ratio_to_best_peer(Runtime::Treeloop);
            let limit = row.metric.best_peer;
            writeln!(
                f,
                "- {}: {ratio:.3}x the best peer ({}), target ≤ {limit}: {}",
                row.metric.name,
                row.best_peer().name(),
                verdict(ratio <= limit)
            )?;
            let treeloop = row.median(Runtime::Treeloop);
            match row.metric.target {
                Some(Target::TimesTokio(limit)) => {
                    let ratio = treeloop / row.median(Runtime::Tokio);
                    writeln!(
                        f,
                        "- {}: {ratio:.3}x tokio, target ≤ {limit}: {}",
                        row.metric.name,
                        verdict(ratio <= limit)
                    )?;
                }
                Some(Target::AtMost(limit)) => writeln!(
                    f,
                    "- {}: {} {}, target ≤ {limit}: {}",
                    row.metric.name,
                    value(treeloop),
                    row.metric.unit,
                    verdict(treeloop <= limit)
                )?,
                None => {}
            }
            if let Some(floor) = row.stats(Runtime::Floor) {
                writeln!(
                    f,
                    "- {}: {:.2}x the async-task floor (not a target: what the task library \
                     alone costs)",
                    row.metric.name,
                    treeloop / floor.median
                )?;
            }
        }
        Ok(())
    }
}

/// Runs the scaling workloads at each of [`Mode::scaling_counts`], runtimes interleaved
/// within each round as in [`run`].
pub fn scaling(options: &Options) -> ScalingReport {
    let mode = options.mode;
    let counts = mode.scaling_counts();
    let mut rows = Vec::new();
    for &workload in &options.workloads {
        // This workload's rows: `rows[first..]`.
        let first = rows.len();
        for runtime in Runtime::ALL {
            if workload.runs_on(runtime) {
                rows.push(ScalingRow {
                    workload,
                    runtime,
                    medians: [0.0; 3],
                });
            }
        }
        for (column, &tasks) in counts.iter().enumerate() {
            let rounds = 1 + mode.scaling_rounds(tasks);
            let mut samples = vec![Vec::new(); rows.len() - first];
            for round in 0..rounds {
                eprintln!(
                    "{} at {tasks}: round {}/{rounds}",
                    workload.name(),
                    round + 1
                );
                for offset in 0..samples.len() {
                    let index = (round + offset) % samples.len();
                    let runtime = rows[first + index].runtime;
                    let values = sample(workload, runtime, mode, Some(tasks));
                    // The first round warms the allocator and caches up: not measured.
                    if round > 0 {
                        samples[index].push(values[0]);
                    }
                }
            }
            for (row, values) in rows[first..].iter_mut().zip(samples) {
                row.medians[column] = Stats::of(values).median;
            }
        }
    }
    ScalingReport { mode, counts, rows }
}

/// One workload on one runtime in the scaling run.
#[derive(Clone, Debug)]
pub struct ScalingRow {
    /// What ran.
    pub workload: Workload,
    /// Where.
    pub runtime: Runtime,
    /// The median per task at each count.
    pub medians: [f64; 3],
}

impl ScalingRow {
    /// The largest per-task median over the smallest: 1.0 is a flat cost.
    pub fn spread(&self) -> f64 {
        let max = self.medians.iter().copied().fold(f64::MIN, f64::max);
        let min = self.medians.iter().copied().fold(f64::MAX, f64::min);
        max / min
    }
}

/// The results of the scaling run; `Display` renders them as a markdown table.
#[derive(Clone, Debug)]
pub struct ScalingReport {
    /// The mode it ran in.
    pub mode: Mode,
    /// The task counts, one column each.
    pub counts: [usize; 3],
    /// One row per workload and runtime.
    pub rows: Vec<ScalingRow>,
}

impl fmt::Display for ScalingReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c] = self.counts;
        writeln!(
            f,
            "{} UTC, scaling run ({}): {}; medians of {}, {} and {} rounds after 1 warm-up \
             round, runtimes interleaved\n",
            today(),
            self.mode.name(),
            machine(),
            self.mode.scaling_rounds(a),
            self.mode.scaling_rounds(b),
            self.mode.scaling_rounds(c),
        )?;
        writeln!(
            f,
            "| workload | runtime | {a} tasks | {b} tasks | {c} tasks | unit | largest / smallest |"
        )?;
        writeln!(f, "|---|---|---:|---:|---:|---|---:|")?;
        for row in &self.rows {
            let [x, y, z] = row.medians.map(value);
            writeln!(
                f,
                "| {} | {} | {x} | {y} | {z} | {} | {:.2} |",
                row.workload.name(),
                row.runtime.name(),
                row.workload.metrics()[0].unit,
                row.spread()
            )?;
        }
        writeln!(f, "\nTargets, treeloop:\n")?;
        for row in &self.rows {
            if row.runtime == Runtime::Treeloop && row.workload != Workload::SpawnMemory {
                writeln!(
                    f,
                    "- {}: per-task cost within {:.2}x across the counts, target ≤ 1.3: {}",
                    row.workload.name(),
                    row.spread(),
                    verdict(row.spread() <= 1.3)
                )?;
            }
        }
        let memory = |runtime| {
            self.rows
                .iter()
                .find(|r| r.workload == Workload::SpawnMemory && r.runtime == runtime)
                .map(|r| r.medians[2])
        };
        if let (Some(treeloop), Some(peer)) =
            (memory(Runtime::Treeloop), memory(Runtime::AsyncExecutor))
        {
            if peer <= 0.0 {
                // Smoke sizes: too few tasks for the resident set to move, no ratio to judge.
                return writeln!(
                    f,
                    "- spawn_memory at {c} tasks: no growth measured (too few tasks), no verdict"
                );
            }
            writeln!(
                f,
                "- spawn_memory at {c} tasks: {:.3}x async-executor's growth, target ≤ 1.0: {}",
                treeloop / peer,
                verdict(treeloop <= peer)
            )?;
        }
        Ok(())
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

/// A value with as many digits as matter at its size.
fn value(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// The machine, as the report names it: cores and CPU model.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    format!("{cores} cores, {model}")
}

/// Today's date (UTC) as YYYY-MM-DD, from the system clock (civil-from-days, H. Hinnant).
fn today() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}
