//! Reruns one test of the running test binary as a child process, to read what it printed
//! (treeloop's reports go to stderr, which libtest does not capture for a child) and whether
//! it failed. A test that is only meant to run as such a child checks [`is_child`] with its
//! file's marker variable and returns at once otherwise.
#![allow(dead_code)] // each test binary uses a different subset

use std::process::Command;

/// What a child run did.
pub struct ChildRun {
    /// The test passed (a `#[should_panic]` test passes by panicking).
    pub passed: bool,
    /// What it wrote to stderr: treeloop's reports (seeds, schedules, shrinking).
    pub stderr: String,
    /// What it wrote to stdout: libtest's summary, and a failed test's panic.
    pub stdout: String,
}

/// Reruns test `name` of this binary, alone, with `marker=1` set (so the test knows it is
/// the child) and then `env`. The variables that steer `test::check` are cleared first, so
/// the parent's environment never leaks into the child; `env` may set them again.
/// `nocapture` passes libtest's `--nocapture`.
///
/// # Panics
///
/// When the binary cannot be run, or `name` did not run exactly one test.
pub fn rerun(name: &str, marker: &str, nocapture: bool, env: &[(&str, &str)]) -> ChildRun {
    let exe = std::env::current_exe().expect("this test binary");
    let mut command = Command::new(exe);
    command.args([name, "--exact", "--test-threads=1"]);
    if nocapture {
        command.arg("--nocapture");
    }
    for steering in [
        "TREELOOP_SEED",
        "TREELOOP_SEEDS",
        "TREELOOP_SCHEDULE",
        "TREELOOP_SHRINK_RUNS",
        "TREELOOP_PCT_HORIZON",
    ] {
        command.env_remove(steering);
    }
    let output = command
        .env(marker, "1")
        .envs(env.iter().copied())
        .output()
        .expect("run this test binary");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        stdout.contains("1 passed") || stdout.contains("1 failed"),
        "{stdout}"
    );
    ChildRun {
        passed: output.status.success(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        stdout,
    }
}

/// Whether this process is a child run started with `marker` (see [`rerun`]).
pub fn is_child(marker: &str) -> bool {
    std::env::var_os(marker).is_some()
}
