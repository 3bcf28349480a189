//! File descriptors: how many client slots the soft descriptor limit leaves room for, and how
//! many descriptors this process has open (both read from `/proc`: Linux only).

use crate::WANTED;

/// Client slots run: `WANTED`, unless the soft descriptor limit cannot hold both ends of that
/// many plus the dropped connections not yet closed by the server (then as many as fit, said
/// on stderr; `.ci/run` raises the limit).
pub fn slots() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse::<usize>().ok()
        })
        .unwrap_or(usize::MAX);
    let fit = soft.saturating_sub(256) / 3;
    if fit < WANTED {
        eprintln!("descriptor limit {soft}: running {fit} slots instead of {WANTED}");
    }
    WANTED.min(fit)
}

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd (Linux)")
        .count()
}
