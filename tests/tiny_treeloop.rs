//! `examples/tiny_treeloop.rs`, the one-file miniature of the runtime: it runs and prints its
//! log exactly, and it stays what it promises to be.
//!
//! - **It runs.** The example is built (by `cargo build`, into this test binary's target
//!   directory and profile, as `common/examples.rs` does for the others) and run as a child
//!   process: it exits 0 with exactly the nine lines of its cancelled tree, in order, and
//!   nothing on stderr. (The example also asserts its own log, so a broken model fails there
//!   first; this test pins the output a reader is told to expect.)
//! - **It stays small and self-contained.** At most 400 lines, `#![forbid(unsafe_code)]`,
//!   and no crate but `std` and `async_task`: neither in its `use` lines nor as the root of
//!   any path in its code (the example lives in the treeloop package, so a `treeloop::` path
//!   would compile).
//! - **Its pointers are real.** Every module path its comments name exists in the workspace,
//!   and it names each of the executor modules a reader is sent to.
//!
//! The only wait is for the child to exit, bounded by [`PATIENCE`]; nothing sleeps.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// How long the example may run before the test kills it and fails: it takes milliseconds
/// (its ticks are virtual); a broken model can spin through virtual time forever instead.
const PATIENCE: Duration = Duration::from_secs(20);

/// What the example prints, line by line.
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

/// The example's source.
fn source() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tiny_treeloop.rs");
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// Builds the example into this test binary's target directory, with its profile (so
/// nothing is rebuilt), and returns the binary's path.
fn build() -> PathBuf {
    // This binary is <target>/<profile dir>/deps/tiny_treeloop-<hash>.
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in <target>/<profile>/deps");
    let target = profile_dir.parent().expect("a target directory");
    let profile = match profile_dir.file_name().and_then(|name| name.to_str()) {
        Some("release") => "release",
        _ => "test",
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--profile",
            profile,
            "--example",
            "tiny_treeloop",
        ])
        .arg("--manifest-path")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target)
        .status()
        .expect("run cargo to build the example");
    assert!(
        status.success(),
        "building examples/tiny_treeloop.rs failed: {status}"
    );
    let binary = profile_dir.join("examples/tiny_treeloop");
    assert!(binary.exists(), "{} was not built", binary.display());
    binary
}

#[test]
fn the_miniature_prints_its_cancelled_tree_in_order_and_exits_0() {
    let binary = build();
    let child = Command::new(&binary)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("start {}: {err}", binary.display()));
    let pid = child.id();
    let (done, finished) = mpsc::channel();
    thread::spawn(move || done.send(child.wait_with_output()));
    let output = match finished.recv_timeout(PATIENCE) {
        Ok(output) => output.expect("wait for the example"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("examples/tiny_treeloop.rs still ran after {PATIENCE:?}: killed");
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{}\n{stdout}\n{stderr}",
        output.status
    );
    assert_eq!(stdout.lines().collect::<Vec<_>>(), EXPECTED, "{stderr}");
    assert_eq!(stderr, "");
}

/// Rust's primitive types, which start paths too (`usize::from`).
const PRIMITIVES: [&str; 17] = [
    "bool", "char", "str", "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64",
    "i128", "isize", "f32", "f64",
];

/// The first segment of every path in `code` (`a::b` gives `a`) that starts with a lower-case
/// letter or `_`: the crate or module a path starts from. A segment after `::` is not a
/// root, nor is a method's turbofish (`.collect::<T>()`).
fn path_roots(code: &str) -> Vec<&str> {
    let bytes = code.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut roots = Vec::new();
    let mut i = 0;
    while let Some(at) = code[i..].find("::").map(|at| at + i) {
        let mut start = at;
        while start > 0 && ident(bytes[start - 1]) {
            start -= 1;
        }
        let word = &code[start..at];
        let inside = start >= 2 && &code[start - 2..start] == "::";
        let method = start >= 1 && bytes[start - 1] == b'.';
        if !inside && !method && word.starts_with(|c: char| c.is_ascii_lowercase() || c == '_') {
            roots.push(word);
        }
        i = at + 2;
    }
    roots
}

#[test]
fn the_miniature_fits_in_400_lines_of_std_and_async_task_without_unsafe() {
    // The path parser itself, on a line with every case it must tell apart.
    let sample = "treeloop::spawn(a::b::c); Phase::Active; x.collect::<u8>(); usize::from(1)";
    assert_eq!(path_roots(sample), ["treeloop", "a", "usize"]);

    let source = source();
    let lines = source.lines().count();
    assert!(
        lines <= 400,
        "examples/tiny_treeloop.rs has {lines} lines, more than 400"
    );
    assert!(
        source.contains("\n#![forbid(unsafe_code)]\n"),
        "it must forbid unsafe code"
    );
    assert!(!source.contains("extern crate"), "no extern crate");

    // Every `use` line (a multi-line `use a::{..}` names its root on its first line).
    let uses: Vec<&str> = source
        .lines()
        .map(str::trim_start)
        .filter(|line| line.starts_with("use ") || line.starts_with("pub use "))
        .collect();
    assert!(uses.len() >= 2, "found its use lines: {uses:?}");
    for line in &uses {
        let path = line.trim_start_matches("pub ").trim_start_matches("use ");
        let root = path.split("::").next().unwrap_or(path);
        assert!(
            root == "std" || root == "async_task",
            "examples/tiny_treeloop.rs uses a crate other than std and async_task: {line}"
        );
    }
    assert!(
        uses.iter().any(|line| line.starts_with("use async_task::")),
        "it is built on async-task: {uses:?}"
    );

    // And no path in the code (comments cut off) starts from another crate: a lower-case
    // root is a crate, a module that a `use std::` line brings in (`thread`), or a
    // primitive type (`usize::from`).
    let imported: Vec<&str> = uses
        .iter()
        .filter(|line| line.starts_with("use std::"))
        .flat_map(|line| line.split(|c: char| "{},; ".contains(c)))
        .filter_map(|item| item.rsplit("::").next())
        .collect();
    let code: String = source
        .lines()
        .map(|line| line.split_once("//").map_or(line, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n");
    for root in path_roots(&code) {
        assert!(
            ["std", "async_task"].contains(&root)
                || imported.contains(&root)
                || PRIMITIVES.contains(&root),
            "a path in examples/tiny_treeloop.rs starts from `{root}::`: only std and \
             async_task may be used"
        );
    }
}

#[test]
fn the_miniature_names_real_modules_that_exist() {
    let source = source();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut named = Vec::new();
    for word in source.split(|c: char| c.is_whitespace() || "(),;:`".contains(c)) {
        let word = word.trim_end_matches('.');
        let in_a_crate = [
            "executor/src/",
            "reactor/src/",
            "scope/src/",
            "src/",
            "tests/",
        ]
        .iter()
        .any(|dir| word.starts_with(dir));
        if in_a_crate && word.ends_with(".rs") {
            assert!(
                root.join(word).exists(),
                "examples/tiny_treeloop.rs names {word}, which does not exist"
            );
            named.push(word);
        }
    }
    let modules = [
        "tree",
        "task",
        "queue",
        "executor",
        "root",
        "join",
        "context",
        "checkpoint",
        "shield",
    ];
    for module in modules {
        let path = format!("executor/src/{module}.rs");
        assert!(
            named.contains(&path.as_str()),
            "examples/tiny_treeloop.rs never names {path}: {named:?}"
        );
    }
}
