//! The side-by-side benchmark suite (`benches/`), run once at tiny sizes so that it cannot
//! rot: every workload runs on every runtime and checks its own result. Nothing is timed.

// The bench binary uses parts (its `main`, child processes) that this test does not.
#[allow(dead_code)]
#[path = "../benches/suite/mod.rs"]
mod suite;

use suite::harness::{Options, run};
use suite::{Mode, Runtime, Workload};

#[test]
fn every_workload_runs_and_checks_its_result_on_every_runtime() {
    let sizes = Mode::Smoke.sizes();
    for workload in Workload::ALL {
        for runtime in Runtime::ALL {
            if !workload.runs_on(runtime) {
                continue;
            }
            let values = workload.run(runtime, &sizes);
            assert_eq!(
                values.len(),
                workload.metrics().len(),
                "{} on {}: one value per metric",
                workload.name(),
                runtime.name()
            );
        }
    }
}

#[test]
fn the_harness_reports_every_metric_on_every_runtime() {
    let options = Options::from_args(["--smoke".to_owned()]).unwrap();
    let report = run(&options);
    let metrics: usize = Workload::ALL.iter().map(|w| w.metrics().len()).sum();
    assert_eq!(report.rows.len(), metrics);
    let table = report.to_string();
    for row in &report.rows {
        for runtime in Runtime::ALL {
            let line = format!("| {} | {} |", row.metric.name, runtime.name());
            let ran = row.stats(runtime).is_some();
            assert_eq!(table.contains(&line), ran, "line {line:?} in\n{table}");
        }
    }
}

#[test]
fn the_command_line_selects_mode_and_workloads() {
    let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let full = Options::from_args(args(&["--bench"])).unwrap();
    assert_eq!(full.mode, Mode::Full);
    assert_eq!(full.workloads, Workload::ALL);
    let quick = Options::from_args(args(&["--bench", "--quick", "tcp_echo"])).unwrap();
    assert_eq!(quick.mode, Mode::Quick);
    assert_eq!(quick.workloads, [Workload::TcpEcho]);
    let as_test = Options::from_args(args(&[])).unwrap();
    assert_eq!(
        as_test.mode,
        Mode::Smoke,
        "cargo test --benches passes no --bench"
    );
    assert!(Options::from_args(args(&["tcp"])).is_err());
}

#[test]
fn the_scaling_run_reports_every_count_on_every_runtime() {
    let args = ["--smoke", "--scaling"].map(String::from);
    let options = Options::from_args(args).unwrap();
    assert_eq!(options.workloads, Workload::SCALING);
    let report = suite::harness::scaling(&options);
    // spawn_join, cancel_tree and spawn_memory on treeloop, tokio, async-executor, the floor.
    assert_eq!(report.rows.len(), 3 * 4);
    for row in &report.rows {
        // (Resident-set growth reads 0 in a smoke run: no fresh process, pages reused.)
        if row.workload != Workload::SpawnMemory {
            assert!(row.medians.iter().all(|&m| m > 0.0), "{row:?}");
            assert!(row.spread() >= 1.0, "{row:?}");
        }
    }
    let table = report.to_string();
    assert!(
        table.contains("| 100 tasks | 200 tasks | 400 tasks |"),
        "{table}"
    );
    assert!(
        table.contains("- cancel_tree: per-task cost within"),
        "{table}"
    );
    // A growth of nothing against nothing is no ratio, and no target met.
    let memory = table
        .lines()
        .find(|line| line.starts_with("- spawn_memory at 400 tasks:"))
        .unwrap_or_else(|| panic!("no spawn_memory verdict line: {table}"));
    assert!(!memory.contains("NaN"), "{memory}");
    let not_scaling = ["--scaling", "tcp_echo"].map(String::from);
    assert!(Options::from_args(not_scaling).is_err());
}
