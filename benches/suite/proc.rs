//! Readings from `/proc` (Linux only, like treeloop): process CPU time and resident set.

use std::fs;
use std::time::Duration;

/// CPU time used so far by every live thread of this process, in nanoseconds of
/// `schedstat` (exact, unlike the 10 ms ticks of `/proc/self/stat`).
pub fn process_cpu_time() -> Duration {
    let threads = fs::read_dir("/proc/self/task").expect("/proc/self/task is readable");
    let nanos: u64 = threads
        .filter_map(|thread| {
            let path = thread.ok()?.path().join("schedstat");
            let text = fs::read_to_string(path).ok()?;
            text.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum();
    Duration::from_nanos(nanos)
}

/// The process's resident set size in bytes (`VmRSS` of `/proc/self/status`).
pub fn resident_bytes() -> i64 {
    let status = fs::read_to_string("/proc/self/status").expect("/proc/self/status is readable");
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<i64>()
                .ok()
        })
        .expect("/proc/self/status has a VmRSS line");
    kib * 1024
}
