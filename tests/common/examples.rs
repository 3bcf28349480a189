//! Running the built examples as child processes, for the tests that check them against
//! real clients (tests/examples.rs, tests/http_server.rs, tests/ws_echo.rs, tests/macros.rs):
//! build them once per test binary, start one (under a descriptor limit if asked), read its
//! output line by line as it comes, wait for a line, signal it, and kill it if a test fails
//! halfway.
//!
//! Every wait is for a line of output or a process exit, bounded by [`PATIENCE`]: nothing
//! waits on the clock to let something happen.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// The longest any single wait may take before the test fails (instead of hanging). The
/// waits normally take milliseconds; this is room for a loaded CI machine.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The examples the tests run (built together, once).
const EXAMPLES: [&str; 5] = [
    "echo_server",
    "graceful_shutdown",
    "http_server",
    "macro_main",
    "ws_echo",
];

/// The path of the built example `name`, building the examples first (once per test
/// binary) into the target directory this test binary was built in, with its profile.
pub fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        // This binary is <target>/<profile dir>/deps/examples-<hash>.
        let exe = std::env::current_exe().expect("the test binary's path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test binary lives in <target>/<profile>/deps");
        let target = profile_dir.parent().expect("a target directory");
        // `cargo test` builds with the test profile (target/debug), `cargo test --release`
        // with the release one: build the examples the same way, so nothing is rebuilt.
        let profile = match profile_dir.file_name().and_then(|name| name.to_str()) {
            Some("release") => "release",
            _ => "test",
        };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args(["build", "--quiet", "--profile", profile, "--manifest-path"])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", target);
        for name in EXAMPLES {
            build.args(["--example", name]);
        }
        let examples = profile_dir.join("examples");
        match build.status() {
            Ok(status) => assert!(status.success(), "building the examples failed: {status}"),
            // No cargo here (the test binary run by hand): take the binaries as they are.
            Err(err) if EXAMPLES.iter().all(|name| examples.join(name).exists()) => {
                eprintln!("cannot run cargo ({err}): testing the examples already built")
            }
            Err(err) => panic!("cannot run cargo to build the examples: {err}"),
        }
        examples
    });
    let path = dir.join(name);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// Which pipe of the child a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pipe {
    Stdout,
    Stderr,
}

/// A running example, its output read line by line as it comes (so it never blocks on a
/// full pipe), and killed if a test fails before it exits.
pub struct Running {
    /// Which example, for messages.
    name: &'static str,
    /// The process (`sh` exec'd into the example, so its pid is the example's).
    process: Child,
    /// Lines from the two reader threads; disconnected once both pipes are closed.
    lines: Receiver<(Pipe, String)>,
    /// Every line received so far, in order.
    seen: Vec<(Pipe, String)>,
}

impl Running {
    /// Starts the example `name` with `args` and `env`, under `ulimit -n fd_limit` if given.
    pub fn start(
        name: &'static str,
        args: &[&str],
        env: &[(&str, &str)],
        fd_limit: Option<u32>,
    ) -> Running {
        let binary = example(name);
        let limit = fd_limit.map_or(String::new(), |n| format!("ulimit -n {n} && "));
        let mut process = Command::new("sh")
            .arg("-c")
            .arg(format!(r#"{limit}exec "$0" "$@""#))
            .arg(&binary)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("start {}: {err}", binary.display()));
        let (sender, lines) = mpsc::channel();
        let stdout = process.stdout.take().expect("piped");
        let stderr = process.stderr.take().expect("piped");
        for (pipe, reader) in [
            (Pipe::Stdout, Box::new(stdout) as Box<dyn Read + Send>),
            (Pipe::Stderr, Box::new(stderr)),
        ] {
            let sender = sender.clone();
            thread::spawn(move || {
                for line in BufReader::new(reader).lines() {
                    let Ok(line) = line else { break };
                    if sender.send((pipe, line)).is_err() {
                        break;
                    }
                }
            });
        }
        Running {
            name,
            process,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line of `pipe` containing `text`; returns it.
    pub fn wait_for(&mut self, pipe: Pipe, text: &str) -> String {
        let already = self
            .seen
            .iter()
            .find(|(p, line)| *p == pipe && line.contains(text));
        if let Some((_, line)) = already {
            return line.clone();
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((p, line)) => {
                    self.seen.push((p, line.clone()));
                    if p == pipe && line.contains(text) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    let (name, transcript) = (self.name, self.transcript());
                    panic!(
                        "{name}: no {pipe:?} line with {text:?} within {PATIENCE:?}:\n{transcript}"
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.process.wait().expect("wait for the example");
                    let (name, transcript) = (self.name, self.transcript());
                    panic!("{name} exited ({status}) before printing {text:?}:\n{transcript}");
                }
            }
        }
    }

    /// The address the example listens on, from its first stdout line with `marker`
    /// (followed by the address).
    pub fn listening_on(&mut self, marker: &str) -> SocketAddr {
        let line = self.wait_for(Pipe::Stdout, marker);
        let addr = line
            .split(marker)
            .nth(1)
            .and_then(|rest| rest.split([';', ' ']).next())
            .unwrap_or_default();
        addr.parse()
            .unwrap_or_else(|err| panic!("{addr:?} in {line:?}: {err}"))
    }

    /// Whether the process is still running.
    pub fn is_alive(&mut self) -> bool {
        self.process
            .try_wait()
            .expect("query the example")
            .is_none()
    }

    /// Sends SIGINT, as Ctrl-C does.
    pub fn interrupt(&self) {
        self.signal("INT");
    }

    /// Sends SIGTERM, as `kill`, systemd or `docker stop` do.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends the signal `name` (`INT`, `TERM`, ...) with `kill`.
    pub fn signal(&self, name: &str) {
        let pid = self.process.id().to_string();
        let status = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {pid}: {status}");
    }

    /// Reads the rest of the output and waits for the exit (bounded: the pipes close when
    /// the process exits).
    pub fn finish(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    let (name, transcript) = (self.name, self.transcript());
                    panic!("{name} did not exit within {PATIENCE:?}:\n{transcript}")
                }
            }
        }
        self.process.wait().expect("wait for the example")
    }

    /// The lines of `pipe` so far.
    pub fn lines_of(&self, pipe: Pipe) -> impl Iterator<Item = &str> {
        self.seen
            .iter()
            .filter(move |(p, _)| *p == pipe)
            .map(|(_, line)| line.as_str())
    }

    /// Everything printed so far, stderr lines marked, for a failure message (the last
    /// lines, if long).
    pub fn transcript(&mut self) -> String {
        self.seen.extend(self.lines.try_iter());
        let skip = self.seen.len().saturating_sub(60);
        let mut text = format!("({skip} lines before these)\n");
        for (pipe, line) in &self.seen[skip..] {
            let mark = if *pipe == Pipe::Stderr {
                "stderr| "
            } else {
                ""
            };
            text.push_str(&format!("{mark}{line}\n"));
        }
        text
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A test that failed halfway must not leave its server behind.
        if let Ok(None) = self.process.try_wait() {
            let _ = self.process.kill();
            let _ = self.process.wait();
        }
    }
}
