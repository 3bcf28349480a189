//! Signals on a real process (R19): the test runs its own binary again as a child, sends it
//! signals with `kill`, and asserts on what the child printed and how it exited.
//!
//! - With `Builder::shutdown_on_ctrl_c(true)`, the first SIGINT cancels the root with reason
//!   `Shutdown`: every task of a tree (sleeping, reading, accepting, in a scope, nested) sees
//!   it, runs a cleanup that awaits inside a shield, and `block_on` returns; exit status 0.
//!   With `Builder::shutdown_on_signal(true)`, SIGTERM does the same.
//! - A cleanup that never finishes keeps `block_on` waiting; the second shutdown signal of
//!   any kind exits the process at once with 128 + its number (130 for SIGINT, 143 for
//!   SIGTERM).
//! - A signal outside the shutdown set shuts nothing down (`shutdown_on_ctrl_c` is SIGINT
//!   only; `shutdown_signals` replaces the set).
//! - Without the option, `signal::ctrl_c()` completes once per SIGINT that arrives after its
//!   first poll, and nothing is cancelled; `signal::unix(kind)` receivers each complete once
//!   per delivery, keep a delivery their cancelled `recv` did not take, and see a shutdown
//!   signal's cancellation before its delivery.
//! - Signals that cannot be watched (SIGKILL, SIGSTOP, the fault signals) are refused.
//!
//! Each `child_*` test is the body of a child and returns at once unless the environment
//! variable [`CHILD`] is set, so in a normal run they pass trivially. A child reports through
//! lines on stdout marked with [`SAY`] (the test harness prints its own lines too); the
//! parent waits for them, so nothing here depends on timing.

use std::cell::Cell;
use std::future::{Future, poll_fn};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::pin::pin;
use std::process::{Command, ExitStatus, Stdio};
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use treeloop::net::{TcpListener, UnixStream};
use treeloop::signal::SignalKind;
use treeloop::sync::Event;
use treeloop::time::sleep;
use treeloop::{
    Builder, Cancelled, Runtime, block_on, cancelled, cancelled_here, scope, shield, signal, spawn,
    yield_now,
};

/// Set in a child's environment: the `child_*` test it runs does its work.
const CHILD: &str = "TREELOOP_SIGNAL_CHILD";

/// The marker of a child's report lines. Searched anywhere in a line: the test harness
/// prints `test NAME ... ` without a newline before the test's own output.
const SAY: &str = "@child@ ";

/// Whether this process is a child started by one of the tests below.
fn is_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// A child's report line.
fn say(line: impl AsRef<str>) {
    println!("{SAY}{}", line.as_ref());
}

/// A running child: this test binary, running only one `child_*` test.
struct Child {
    /// The process.
    process: std::process::Child,
    /// Its stdout, line by line.
    stdout: std::io::Lines<BufReader<std::process::ChildStdout>>,
    /// Its report lines so far (without the marker).
    said: Vec<String>,
}

impl Child {
    /// Starts the child that runs the test `name`.
    fn start(name: &str) -> Child {
        let mut process = Command::new(std::env::current_exe().expect("the test binary"))
            .args(["--exact", name, "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the child");
        let stdout = BufReader::new(process.stdout.take().expect("piped")).lines();
        Child {
            process,
            stdout,
            said: Vec::new(),
        }
    }

    /// Reads report lines until `line` (blocking on the child, whatever it takes).
    fn wait_for(&mut self, line: &str) {
        while !self.said.iter().any(|said| said == line) {
            match self.stdout.next() {
                Some(Ok(next)) => {
                    if let Some((_, said)) = next.split_once(SAY) {
                        self.said.push(said.to_owned());
                    }
                }
                Some(Err(err)) => panic!("reading the child's stdout: {err}"),
                None => {
                    let (status, _, stderr) = self.finish_inner();
                    panic!(
                        "the child ended ({status}) before saying {line:?}; it said {:#?}\n\
                         stderr:\n{stderr}",
                        self.said
                    );
                }
            }
        }
    }

    /// Sends the signal `name` (`INT`, `TERM`, ...) with `kill`.
    fn kill(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.process.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed: {status}");
    }

    /// Sends SIGINT, as Ctrl-C in a terminal does.
    fn interrupt(&self) {
        self.kill("INT");
    }

    /// Sends SIGTERM, as `kill`, systemd and container runtimes do to stop a program.
    fn terminate(&self) {
        self.kill("TERM");
    }

    /// Sends SIGHUP, as daemons are told to reload their configuration.
    fn hang_up(&self) {
        self.kill("HUP");
    }

    /// Reads the rest of stdout and waits for the exit: the status, every report line, and
    /// stderr.
    fn finish(mut self) -> (ExitStatus, Vec<String>, String) {
        let (status, said, stderr) = self.finish_inner();
        (status, said, stderr)
    }

    fn finish_inner(&mut self) -> (ExitStatus, Vec<String>, String) {
        for next in self.stdout.by_ref() {
            let next = next.expect("the child's stdout");
            if let Some((_, said)) = next.split_once(SAY) {
                self.said.push(said.to_owned());
            }
        }
        let mut stderr = String::new();
        if let Some(mut pipe) = self.process.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        let status = self.process.wait().expect("wait for the child");
        (status, self.said.clone(), stderr)
    }
}

/// Yields until `count` reaches `want` (each task bumps it right before its first await).
async fn until_waiting(count: &Cell<usize>, want: usize) {
    for _ in 0..100_000 {
        if count.get() == want {
            return;
        }
        yield_now().await.unwrap();
    }
    panic!("only {} of {want} tasks reached their await", count.get());
}

/// A task of the child's tree: `op` is where it waits until the shutdown. Reports the
/// cancellation it saw, then cleans up inside a shield with a timer and a yield (cleanup can
/// await), then reports that the cleanup finished.
async fn member<F>(name: &str, waiting: Rc<Cell<usize>>, op: F)
where
    F: Future<Output = Cancelled>,
{
    waiting.set(waiting.get() + 1);
    let why = op.await;
    say(format!("{name} saw Cancelled({:?})", why.reason()));
    shield(async {
        sleep(Duration::from_millis(1)).await.unwrap();
        yield_now().await.unwrap();
    })
    .await;
    assert!(
        cancelled_here().is_some(),
        "still cancelled after the shield"
    );
    say(format!("{name} cleaned up"));
}

/// The cancellation inside an I/O error.
fn io_cancelled<T: std::fmt::Debug>(result: std::io::Result<T>) -> Cancelled {
    let err = result.expect_err("only a cancellation ends this wait");
    Cancelled::from_io(&err).unwrap_or_else(|| panic!("not a cancellation: {err}"))
}

/// The tasks of the graceful child, in report order of their names.
const TREE: [&str; 6] = [
    "acceptor",
    "nested child",
    "parent",
    "reader",
    "scope member",
    "sleeper",
];

#[test]
fn child_graceful_shutdown_of_a_tree() {
    if is_child() {
        graceful_tree(Builder::new().shutdown_on_ctrl_c(true).build().unwrap());
    }
}

#[test]
fn child_graceful_shutdown_of_a_tree_on_the_default_signals() {
    if is_child() {
        graceful_tree(Builder::new().shutdown_on_signal(true).build().unwrap());
    }
}

/// The graceful child: a tree of every kind of waiting task, until the shutdown.
fn graceful_tree(runtime: Runtime) {
    let waiting = Rc::new(Cell::new(0));
    runtime.block_on(async {
        let w = || waiting.clone();
        let mut tasks = Vec::new();
        tasks.push(spawn(member("sleeper", w(), async {
            sleep(Duration::from_secs(3600)).await.unwrap_err()
        })));
        let (a, b) = UnixStream::pair().unwrap();
        tasks.push(spawn(member("reader", w(), async move {
            let mut buf = [0; 8];
            let why = io_cancelled(b.read(&mut buf).await);
            drop(a);
            why
        })));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        tasks.push(spawn(member("acceptor", w(), async move {
            io_cancelled(listener.accept().await)
        })));
        let nested = w();
        tasks.push(spawn(member("parent", w(), async move {
            let child = spawn(member("nested child", nested, cancelled()));
            let why = cancelled().await;
            drop(child);
            why
        })));
        let in_scope = w();
        let scoped = spawn(scope(move |s| async move {
            s.spawn(async move {
                member("scope member", in_scope, cancelled()).await;
                Ok(())
            })
            .unwrap();
            cancelled().await;
            Ok::<_, Cancelled>(())
        }));
        until_waiting(&waiting, TREE.len()).await;
        say("ready");
        let why = cancelled().await;
        say(format!("root saw Cancelled({:?})", why.reason()));
        drop((tasks, scoped));
    });
    say("done");
}

#[test]
fn the_first_ctrl_c_cancels_the_whole_tree_with_reason_shutdown_and_cleanups_finish() {
    let mut child = Child::start("child_graceful_shutdown_of_a_tree");
    child.wait_for("ready");
    child.interrupt();
    assert_graceful_shutdown(child);
}

#[test]
fn the_first_sigterm_cancels_the_whole_tree_with_reason_shutdown_and_cleanups_finish() {
    let mut child = Child::start("child_graceful_shutdown_of_a_tree_on_the_default_signals");
    child.wait_for("ready");
    child.terminate();
    assert_graceful_shutdown(child);
}

/// The graceful child exited 0 after every task of [`TREE`] saw `Cancelled(Shutdown)`, then
/// cleaned up, then `block_on` returned.
fn assert_graceful_shutdown(child: Child) {
    let (status, said, stderr) = child.finish();
    assert_eq!(status.code(), Some(0), "{status}; stderr:\n{stderr}");
    assert_eq!(said.first().map(String::as_str), Some("ready"));
    assert_eq!(
        said.last().map(String::as_str),
        Some("done"),
        "block_on returned after every cleanup: {said:#?}"
    );
    let mut middle = said[1..said.len() - 1].to_vec();
    for name in TREE {
        let saw = format!("{name} saw Cancelled(Shutdown)");
        let cleaned = format!("{name} cleaned up");
        let saw_at = middle.iter().position(|l| *l == saw);
        let cleaned_at = middle.iter().position(|l| *l == cleaned);
        assert!(
            matches!((saw_at, cleaned_at), (Some(s), Some(c)) if s < c),
            "{name}: {said:#?}"
        );
    }
    middle.sort();
    let mut expected: Vec<String> = TREE
        .iter()
        .flat_map(|name| {
            [
                format!("{name} cleaned up"),
                format!("{name} saw Cancelled(Shutdown)"),
            ]
        })
        .collect();
    expected.push("root saw Cancelled(Shutdown)".to_owned());
    expected.sort();
    assert_eq!(middle, expected);
}

#[test]
fn child_cleanup_that_never_finishes() {
    if is_child() {
        cleanup_that_never_finishes(Builder::new().shutdown_on_ctrl_c(true).build().unwrap());
    }
}

#[test]
fn child_cleanup_that_never_finishes_on_the_default_signals() {
    if is_child() {
        cleanup_that_never_finishes(Builder::new().shutdown_on_signal(true).build().unwrap());
    }
}

/// The hanging child: a task whose shielded cleanup never finishes.
fn cleanup_that_never_finishes(runtime: Runtime) {
    let waiting = Rc::new(Cell::new(0));
    runtime.block_on(async {
        let stuck = spawn({
            let waiting = waiting.clone();
            async move {
                waiting.set(1);
                let why = cancelled().await;
                say(format!(
                    "cleanup started after Cancelled({:?})",
                    why.reason()
                ));
                shield(std::future::pending::<()>()).await;
                say("cleanup finished");
            }
        });
        until_waiting(&waiting, 1).await;
        say("ready");
        let why = cancelled().await;
        say(format!("root saw Cancelled({:?})", why.reason()));
        drop(stuck);
    });
    say("done");
}

#[test]
fn a_second_ctrl_c_exits_at_once_with_status_130_while_a_cleanup_hangs() {
    let mut child = Child::start("child_cleanup_that_never_finishes");
    child.wait_for("ready");
    child.interrupt();
    child.wait_for("cleanup started after Cancelled(Shutdown)");
    child.interrupt();
    assert_exited_during_the_cleanup(child, 130);
}

#[test]
fn a_second_sigterm_exits_at_once_with_status_143_while_a_cleanup_hangs() {
    let mut child = Child::start("child_cleanup_that_never_finishes_on_the_default_signals");
    child.wait_for("ready");
    child.terminate();
    child.wait_for("cleanup started after Cancelled(Shutdown)");
    child.terminate();
    assert_exited_during_the_cleanup(child, 143);
}

#[test]
fn a_sigint_after_a_sigterm_exits_at_once_with_status_130_while_a_cleanup_hangs() {
    let mut child = Child::start("child_cleanup_that_never_finishes_on_the_default_signals");
    child.wait_for("ready");
    child.terminate();
    child.wait_for("cleanup started after Cancelled(Shutdown)");
    child.interrupt();
    assert_exited_during_the_cleanup(child, 130);
}

/// The hanging child exited with `code` (not killed by the signal) while its cleanup and
/// `block_on` were still running.
fn assert_exited_during_the_cleanup(child: Child, code: i32) {
    let (status, said, stderr) = child.finish();
    assert_eq!(status.code(), Some(code), "{status}; stderr:\n{stderr}");
    assert_eq!(status.signal(), None, "an exit, not death by the signal");
    let mut said = said;
    said.sort();
    assert_eq!(
        said,
        [
            "cleanup started after Cancelled(Shutdown)",
            "ready",
            "root saw Cancelled(Shutdown)",
        ],
        "neither the cleanup nor block_on finished"
    );
}

#[test]
fn child_swallows_its_cancellation_in_a_loop() {
    if !is_child() {
        return;
    }
    let runtime = Builder::new().shutdown_on_ctrl_c(true).build().unwrap();
    runtime.block_on(async {
        let started = Rc::new(Cell::new(0));
        let _stubborn = spawn({
            let started = started.clone();
            async move {
                started.set(1);
                let mut told = false;
                // Bounded, though only the second SIGINT is meant to end it.
                for _ in 0..1u64 << 40 {
                    if sleep(Duration::from_millis(1)).await.is_err() && !told {
                        told = true;
                        say("swallowed Cancelled(Shutdown) and carried on");
                    }
                }
            }
        });
        until_waiting(&started, 1).await;
        say("ready");
        let why = cancelled().await;
        // Reached only if the stubborn task's polls end: its cancelled sleeps yield.
        say(format!("root saw Cancelled({:?})", why.reason()));
    });
    say("done");
}

#[test]
fn a_second_ctrl_c_exits_with_status_130_while_a_task_swallows_its_cancellation() {
    let mut child = Child::start("child_swallows_its_cancellation_in_a_loop");
    child.wait_for("ready");
    child.interrupt();
    child.wait_for("swallowed Cancelled(Shutdown) and carried on");
    child.wait_for("root saw Cancelled(Shutdown)");
    child.interrupt();
    let (status, said, stderr) = child.finish();
    assert_eq!(status.code(), Some(130), "{status}; stderr:\n{stderr}");
    assert_eq!(status.signal(), None, "an exit, not death by the signal");
    assert!(!said.iter().any(|line| line == "done"), "{said:?}");
}

#[test]
fn child_awaits_ctrl_c_twice() {
    if !is_child() {
        return;
    }
    block_on(async {
        let finished = Event::new();
        let bystander = spawn({
            let finished = finished.clone();
            async move {
                finished.wait().await.unwrap();
                say(format!(
                    "bystander cancelled: {}",
                    cancelled_here().is_some()
                ));
            }
        });
        for round in 1..=2 {
            let mut ctrl_c = pin!(signal::ctrl_c());
            // The first poll starts watching SIGINT; nothing has arrived since.
            let pending = poll_fn(|cx| Poll::Ready(ctrl_c.as_mut().poll(cx).is_pending())).await;
            assert!(pending, "ctrl_c completed before any SIGINT");
            say(format!("ready {round}"));
            ctrl_c.await.unwrap();
            say(format!("ctrl_c {round} returned Ok"));
        }
        finished.set();
        bystander.await.unwrap();
    });
    say("done");
}

#[test]
fn ctrl_c_completes_once_per_sigint_and_cancels_nothing_without_the_builder_option() {
    let mut child = Child::start("child_awaits_ctrl_c_twice");
    child.wait_for("ready 1");
    child.interrupt();
    child.wait_for("ready 2");
    child.interrupt();
    let (status, said, stderr) = child.finish();
    assert_eq!(status.code(), Some(0), "{status}; stderr:\n{stderr}");
    assert_eq!(
        said,
        [
            "ready 1",
            "ctrl_c 1 returned Ok",
            "ready 2",
            "ctrl_c 2 returned Ok",
            "bystander cancelled: false",
            "done",
        ]
    );
}

#[test]
fn ctrl_c_in_a_cancelled_region_fails_with_cancelled_without_a_signal() {
    block_on(async {
        let task = spawn(async {
            cancelled().await;
            signal::ctrl_c().await
        });
        task.cancel();
        let err = task.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::Other);
        assert_eq!(
            Cancelled::from_io(&err).map(|c| c.reason()),
            Some(treeloop::CancelReason::Explicit)
        );
    });
}

#[test]
fn child_dumps_its_tree_on_sigusr1() {
    if !is_child() {
        return;
    }
    let runtime = Builder::new()
        .shutdown_on_ctrl_c(true)
        .dump_on_signal(true)
        .report_sink(|report| {
            if let treeloop::diag::Report::Dump(dump) = report {
                let entry = dump.named("dump me").next().expect("the named task");
                say(format!(
                    "dump: {} nodes, \"dump me\" is {} under {:?}",
                    dump.len(),
                    entry.state,
                    entry.parent.and_then(|p| dump.get(p)).map(|p| p.kind)
                ));
            }
        })
        .build()
        .unwrap();
    let waiting = Rc::new(Cell::new(0));
    runtime.block_on(async {
        let named = treeloop::task::Builder::new().name("dump me").spawn({
            let waiting = waiting.clone();
            async move {
                waiting.set(1);
                cancelled().await
            }
        });
        until_waiting(&waiting, 1).await;
        say("ready");
        let why = cancelled().await;
        say(format!("root saw Cancelled({:?})", why.reason()));
        drop(named);
    });
    say("done");
}

#[test]
fn sigusr1_reports_a_dump_of_the_live_tree_and_the_program_carries_on() {
    let mut child = Child::start("child_dumps_its_tree_on_sigusr1");
    child.wait_for("ready");
    child.kill("USR1");
    child.wait_for("dump: 2 nodes, \"dump me\" is waiting under Some(Root)");
    child.interrupt();
    let (status, said, stderr) = child.finish();
    assert!(status.success(), "{status}; stderr:\n{stderr}");
    assert_eq!(
        said,
        [
            "ready",
            "dump: 2 nodes, \"dump me\" is waiting under Some(Root)",
            "root saw Cancelled(Shutdown)",
            "done"
        ]
    );
}

#[test]
fn child_shuts_down_on_sigint_only() {
    if !is_child() {
        return;
    }
    let runtime = Builder::new().shutdown_on_ctrl_c(true).build().unwrap();
    runtime.block_on(async {
        // Without a receiver, SIGTERM would end the process by its default action.
        let mut terms = signal::unix(SignalKind::terminate()).unwrap();
        say("ready");
        terms.recv().await.unwrap();
        say(format!(
            "SIGTERM received, cancelled: {}",
            cancelled_here().is_some()
        ));
        let why = cancelled().await;
        say(format!("root saw Cancelled({:?})", why.reason()));
    });
    say("done");
}

#[test]
fn shutdown_on_ctrl_c_shuts_down_on_sigint_only_and_sigterm_only_reaches_its_receiver() {
    let mut child = Child::start("child_shuts_down_on_sigint_only");
    child.wait_for("ready");
    child.terminate();
    child.wait_for("SIGTERM received, cancelled: false");
    child.interrupt();
    let (status, said, stderr) = child.finish();
    assert_eq!(status.code(), Some(0), "{status}; stderr:\n{stderr}");
    assert_eq!(
        said,
        [
            "ready",
            "SIGTERM received, cancelled: false",
            "root saw Cancelled(Shutdown)",
            "done",
        ]
    );
}

#[test]
fn child_shuts_down_on_sigusr2_only() {
    if !is_child() {
        return;
    }
    let runtime = Builder::new()
        .shutdown_signals([SignalKind::user_defined2()])
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut interrupts = signal::unix(SignalKind::interrupt()).unwrap();
        let mut terms = signal::unix(SignalKind::terminate()).unwrap();
        say("ready");
        interrupts.recv().await.unwrap();
        say(format!(
            "SIGINT received, cancelled: {}",
            cancelled_here().is_some()
        ));
        terms.recv().await.unwrap();
        say(format!(
            "SIGTERM received, cancelled: {}",
            cancelled_here().is_some()
        ));
        let why = cancelled().await;
        say(format!("root saw Cancelled({:?})", why.reason()));
    });
    say("done");
}

#[test]
fn signals_outside_a_configured_shutdown_set_shut_nothing_down() {
    let mut child = Child::start("child_shuts_down_on_sigusr2_only");
    child.wait_for("ready");
    child.interrupt();
    child.wait_for("SIGINT received, cancelled: false");
    child.terminate();
    child.wait_for("SIGTERM received, cancelled: false");
    child.kill("USR2");
    let (status, said, stderr) = child.finish();
    assert_eq!(status.code(), Some(0), "{status}; stderr:\n{stderr}");
    assert_eq!(
        said,
        [
            "ready",
            "SIGINT received, cancelled: false",
            "SIGTERM received, cancelled: false",
            "root saw Cancelled(Shutdown)",
            "done",
        ]
    );
}

/// Polls `future` once: `Some(output)` if it completed, `None` if it is pending.
async fn poll_once<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    poll_fn(|cx| match future.as_mut().poll(cx) {
        Poll::Ready(output) => Poll::Ready(Some(output)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

#[test]
fn child_receives_sighup() {
    if !is_child() {
        return;
    }
    block_on(async {
        let finished = Event::new();
        let bystander = spawn({
            let finished = finished.clone();
            async move {
                finished.wait().await.unwrap();
                say(format!(
                    "bystander cancelled: {}",
                    cancelled_here().is_some()
                ));
            }
        });
        let hangup = SignalKind::hangup();
        let mut first = signal::unix(hangup).unwrap();
        let mut second = signal::unix(hangup).unwrap();
        let mut kept = signal::unix(hangup).unwrap();
        for round in 1..=2 {
            assert!(poll_once(first.recv()).await.is_none(), "no SIGHUP yet");
            say(format!("ready {round}"));
            first.recv().await.unwrap();
            // Not polled since the delivery, which it saw all the same.
            let at_once = poll_once(second.recv()).await;
            assert!(matches!(at_once, Some(Ok(()))), "{at_once:?}");
            // Once per delivery: both wait again.
            assert!(poll_once(first.recv()).await.is_none());
            assert!(poll_once(second.recv()).await.is_none());
            say(format!("SIGHUP {round} seen by both receivers"));
        }
        // `kept` has not been polled since it was made, before both deliveries.
        let task = spawn(async move {
            let err = kept.recv().await.unwrap_err();
            let why = Cancelled::from_io(&err).map(|c| c.reason());
            say(format!("cancelled recv failed with Cancelled({why:?})"));
            shield(kept.recv()).await.unwrap();
            let merged = shield(poll_once(kept.recv())).await.is_none();
            say(format!(
                "a shielded recv got the SIGHUPs the cancelled one left, merged: {merged}"
            ));
        });
        task.cancel();
        task.await.unwrap();
        let mut late = signal::unix(hangup).unwrap();
        let pending = poll_once(late.recv()).await.is_none();
        say(format!("a receiver made afterwards waits: {pending}"));
        finished.set();
        bystander.await.unwrap();
    });
    say("done");
}

#[test]
fn signal_unix_completes_once_per_sighup_for_each_receiver_and_cancels_nothing() {
    let mut child = Child::start("child_receives_sighup");
    child.wait_for("ready 1");
    child.hang_up();
    child.wait_for("ready 2");
    child.hang_up();
    let (status, said, stderr) = child.finish();
    assert_eq!(status.code(), Some(0), "{status}; stderr:\n{stderr}");
    assert_eq!(
        said,
        [
            "ready 1",
            "SIGHUP 1 seen by both receivers",
            "ready 2",
            "SIGHUP 2 seen by both receivers",
            "cancelled recv failed with Cancelled(Some(Explicit))",
            "a shielded recv got the SIGHUPs the cancelled one left, merged: true",
            "a receiver made afterwards waits: true",
            "bystander cancelled: false",
            "done",
        ]
    );
}

#[test]
fn child_receives_a_signal_of_its_shutdown_set() {
    if !is_child() {
        return;
    }
    let runtime = Builder::new().shutdown_on_signal(true).build().unwrap();
    let waiting = Rc::new(Cell::new(0));
    runtime.block_on(async {
        let receiver = spawn({
            let waiting = waiting.clone();
            async move {
                let mut terms = signal::unix(SignalKind::terminate()).unwrap();
                waiting.set(1);
                let err = terms.recv().await.unwrap_err();
                let why = Cancelled::from_io(&err).map(|c| c.reason());
                say(format!("recv failed with Cancelled({why:?})"));
                shield(terms.recv()).await.unwrap();
                say("the shielded recv got the SIGTERM");
            }
        });
        until_waiting(&waiting, 1).await;
        say("ready");
        let why = cancelled().await;
        say(format!("root saw Cancelled({:?})", why.reason()));
        drop(receiver);
    });
    say("done");
}

#[test]
fn a_receiver_of_a_shutdown_signal_sees_the_cancellation_first_and_the_delivery_in_a_shield() {
    let mut child = Child::start("child_receives_a_signal_of_its_shutdown_set");
    child.wait_for("ready");
    child.terminate();
    let (status, said, stderr) = child.finish();
    assert_eq!(status.code(), Some(0), "{status}; stderr:\n{stderr}");
    assert_eq!(said.first().map(String::as_str), Some("ready"));
    assert_eq!(said.last().map(String::as_str), Some("done"));
    let mut middle = said[1..said.len() - 1].to_vec();
    middle.sort();
    assert_eq!(
        middle,
        [
            "recv failed with Cancelled(Some(Shutdown))",
            "root saw Cancelled(Shutdown)",
            "the shielded recv got the SIGTERM",
        ]
    );
}

/// The number of the signal `name` on this system, from `kill -l`.
fn signal_number(name: &str) -> i32 {
    let out = Command::new("kill")
        .args(["-l", name])
        .output()
        .expect("run kill -l");
    let number = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    number
        .parse()
        .unwrap_or_else(|_| panic!("kill -l {name} printed {number:?}"))
}

#[test]
fn signals_that_cannot_be_watched_are_refused_by_signal_unix_and_by_the_builder() {
    for name in ["KILL", "STOP", "SEGV", "BUS", "ILL", "FPE"] {
        let kind = SignalKind::from_raw(signal_number(name));
        // The check comes before any handler is installed: this process is left as it was.
        let err = block_on(async { signal::unix(kind).unwrap_err() });
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::InvalidInput,
            "{name}: {err}"
        );
        assert!(
            err.to_string()
                .starts_with(&format!("treeloop cannot watch SIG{name}: ")),
            "{err}"
        );
        let built = Builder::new()
            .shutdown_signals([SignalKind::terminate(), kind])
            .build();
        let err = built
            .err()
            .expect("a forbidden shutdown signal fails the build");
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::InvalidInput,
            "{name}: {err}"
        );
    }
}

#[test]
fn signal_unix_outside_a_runtime_is_an_error_naming_the_fix() {
    let err = signal::unix(SignalKind::hangup()).unwrap_err();
    assert!(
        err.to_string().contains("inside a treeloop runtime"),
        "{err}"
    );
}
