//! Child processes as nodes of the task tree (`treeloop::process`), with real children
//! (`sh -c`, `sleep`, `cat`, `true`, `false`, `seq`).
//!
//! - Exit statuses, stdin written then closed, stdout and stderr read to their ends,
//!   `output()` reading both pipes at once.
//! - Cancelling the owner: the child gets SIGTERM (a trap proves it by what it prints and
//!   its exit status), or SIGKILL after the grace period if it ignores SIGTERM, and the
//!   owner's cancellation completes only after the reap: `/proc/PID` is gone the moment the
//!   owner's `JoinHandle` resolves (no process, and no zombie either: a zombie keeps its
//!   `/proc` entry). `block_on` waits for the reap after `shutdown()`.
//! - A paused clock does not jump while a child runs: the grace period and a timeout are
//!   real time then.
//! - Many children at once (their SIGCHLDs and pidfd events), dropped handles, the stop
//!   policies, and the errors: a missing program, a seeded runtime, no runtime.
//!
//! Waiting for a process to exit is the only waiting here: no fixed sleep, and every wait is
//! bounded by [`within`]. Where a child must have installed its trap first, it says `ready`
//! on stdout and the test reads that line.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use treeloop::process::{ChildStdout, Command, Stdio};
use treeloop::sync::oneshot;
use treeloop::time::{sleep, timeout};
use treeloop::{Builder, CancelReason, Cancelled, block_on, shield, spawn};

/// Whether the kernel still has process `pid`, running or zombie.
fn exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Awaits `future` for at most 30 s, so that a bug fails the test instead of hanging it.
async fn within<F: Future>(future: F) -> F::Output {
    timeout(Duration::from_secs(30), future)
        .await
        .expect("not done within 30 s")
}

/// Reads `stdout` until the child said `ready` (its trap is installed by then).
async fn until_ready(stdout: &mut ChildStdout) {
    let mut said = Vec::new();
    let mut byte = [0u8; 1];
    for _ in 0..64 {
        assert_eq!(stdout.read(&mut byte).await.expect("read"), 1, "{said:?}");
        said.push(byte[0]);
        if said.ends_with(b"ready\n") {
            return;
        }
    }
    panic!("the child never said ready: {said:?}");
}

/// A file name no other test run uses.
fn scratch_file(what: &str) -> PathBuf {
    std::env::temp_dir().join(format!("treeloop-process-{what}-{}", std::process::id()))
}

#[test]
fn exit_statuses_of_true_false_and_exit_7() {
    let codes = block_on(async {
        let mut codes = Vec::new();
        for (program, args) in [("true", &[][..]), ("false", &[]), ("sh", &["-c", "exit 7"])] {
            let status = within(Command::new(program).args(args).status())
                .await
                .expect("status");
            codes.push((status.success(), status.code()));
        }
        codes
    });
    assert_eq!(codes, [(true, Some(0)), (false, Some(1)), (false, Some(7))]);
}

#[test]
fn cat_echoes_what_was_written_once_stdin_is_closed() {
    let (echoed, status) = block_on(async {
        let mut cat = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn cat");
        let mut stdin = cat.stdin.take().expect("piped stdin");
        let mut stdout = cat.stdout.take().expect("piped stdout");
        stdin.write_all(b"line one\n").await.expect("write");
        stdin.write_all(b"line two\n").await.expect("write");
        stdin.close();
        let mut echoed = Vec::new();
        within(stdout.read_to_end(&mut echoed)).await.expect("read");
        (echoed, within(cat.wait()).await.expect("wait"))
    });
    assert_eq!(echoed, b"line one\nline two\n");
    assert!(status.success());
}

#[test]
fn stdout_and_stderr_are_read_to_their_ends() {
    let (out, err, status) = block_on(async {
        let mut child = Command::new("sh")
            .args(["-c", "seq 1 20000; echo oops >&2; exit 2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sh");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let stdout = child.stdout.as_mut().expect("piped stdout");
        within(stdout.read_to_end(&mut out)).await.expect("stdout");
        let stderr = child.stderr.as_mut().expect("piped stderr");
        within(stderr.read_to_end(&mut err)).await.expect("stderr");
        (out, err, within(child.wait()).await.expect("wait"))
    });
    let expected: String = (1..=20000).map(|i| format!("{i}\n")).collect();
    assert_eq!(out.len(), expected.len());
    assert_eq!(out, expected.as_bytes());
    assert_eq!(err, b"oops\n");
    assert_eq!(status.code(), Some(2));
}

#[test]
fn output_reads_both_pipes_at_once_and_returns_the_status() {
    let output = block_on(async {
        // More than a pipe holds on stderr before anything on stdout: reading stdout first
        // and alone would deadlock.
        let script = "seq 1 30000 >&2; echo out; exit 3";
        within(Command::new("sh").args(["-c", script]).output())
            .await
            .expect("output")
    });
    let expected: String = (1..=30000).map(|i| format!("{i}\n")).collect();
    assert_eq!(output.stdout, b"out\n");
    assert_eq!(output.stderr, expected.as_bytes());
    assert_eq!(output.status.code(), Some(3));
}

#[test]
fn a_cancelled_owner_sends_its_child_sigterm_and_its_cleanup_sees_the_exit() {
    let (waited, said, status, pid) = block_on(async {
        let (ready, mut is_ready) = oneshot::channel();
        let owner = spawn(async move {
            let script = "trap 'echo got TERM; exit 3' TERM; echo ready; \
                          while :; do sleep 0.05; done";
            let mut child = Command::new("sh")
                .args(["-c", script])
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn sh");
            let mut stdout = child.stdout.take().expect("piped stdout");
            until_ready(&mut stdout).await;
            let _ = ready.send(child.id());
            let waited = child.wait().await.map_err(|err| Cancelled::from_io(&err));
            // Cleanup: what the child said after the signal, and how it exited.
            shield(async move {
                let mut said = Vec::new();
                stdout.read_to_end(&mut said).await.expect("read");
                (waited, said, child.wait().await.expect("the exit"))
            })
            .await
        });
        let pid = within(is_ready.recv()).await.expect("ready");
        owner.cancel();
        let (waited, said, status) = within(owner).await.expect("the owner");
        (waited, said, status, pid)
    });
    assert!(
        matches!(waited, Err(Some(_))),
        "wait was cancelled: {waited:?}"
    );
    assert_eq!(said, b"got TERM\n");
    assert_eq!(status.code(), Some(3));
    assert!(!exists(pid));
}

#[test]
fn the_cancellation_of_the_owner_completes_only_after_the_reap() {
    block_on(async {
        let (spawned, mut is_spawned) = oneshot::channel();
        let owner = spawn(async move {
            let mut child = Command::new("sleep").arg("1000").spawn().expect("spawn");
            let _ = spawned.send(child.id());
            // Not shielded: fails at once, and the owner returns without waiting.
            child.wait().await
        });
        let pid = within(is_spawned.recv()).await.expect("spawned");
        let name = format!("process {pid} (sleep)");
        let tree = treeloop::dump();
        let guardian: Vec<_> = tree.named(&name).collect();
        assert_eq!(guardian.len(), 1, "{tree}");
        assert_eq!(guardian[0].parent, Some(owner.id()), "the owner's child");
        assert!(exists(pid));

        owner.cancel();
        let waited = within(owner).await.expect("the owner");
        let err = waited.expect_err("cancelled");
        assert_eq!(
            Cancelled::from_io(&err).map(|c| c.reason()),
            Some(CancelReason::Explicit)
        );
        // The owner's handle resolved: the guardian had finished, the process was reaped.
        assert!(!exists(pid), "process {pid} still exists");
        assert_eq!(treeloop::dump().named(&name).count(), 0);
    });
}

#[test]
fn a_child_that_ignores_sigterm_gets_sigkill_after_the_grace_period() {
    let runtime = Builder::new().build().expect("runtime");
    let (status, elapsed) = runtime.block_on(sigkill_after_grace(Duration::from_millis(100)));
    assert_eq!(status.signal(), Some(9), "SIGKILL: {status:?}");
    assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
}

#[test]
fn under_a_paused_clock_the_grace_period_is_real_time() {
    // The pidfd counts as I/O: the clock waits for the deadline instead of jumping to it.
    let runtime = Builder::new().start_paused(true).build().expect("runtime");
    let (status, elapsed) = runtime.block_on(sigkill_after_grace(Duration::from_millis(100)));
    assert_eq!(status.signal(), Some(9), "SIGKILL: {status:?}");
    assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
}

/// Cancels the owner of a child that ignores SIGTERM; the exit status and the real time
/// from the cancel to the owner's end.
async fn sigkill_after_grace(grace: Duration) -> (std::process::ExitStatus, Duration) {
    let (ready, mut is_ready) = oneshot::channel();
    let owner = spawn(async move {
        // `exec`: the process that ignores SIGTERM is the child itself, not a grandchild
        // that SIGKILL would leave behind.
        let mut child = Command::new("sh")
            .args(["-c", "trap '' TERM; echo ready; exec sleep 1000"])
            .stdout(Stdio::piped())
            .grace(grace)
            .spawn()
            .expect("spawn sh");
        until_ready(child.stdout.as_mut().expect("piped")).await;
        let _ = ready.send(());
        assert!(child.wait().await.is_err(), "cancelled");
        (shield(child.wait()).await.expect("the exit"), child.id())
    });
    within(is_ready.recv()).await.expect("ready");
    let cancelled_at = std::time::Instant::now();
    owner.cancel();
    let (status, pid) = within(owner).await.expect("the owner");
    let elapsed = cancelled_at.elapsed();
    assert!(!exists(pid));
    (status, elapsed)
}

#[test]
fn under_a_paused_clock_a_timeout_does_not_fire_while_a_child_runs() {
    let runtime = Builder::new().start_paused(true).build().expect("runtime");
    let status = runtime.block_on(async {
        let mut child = Command::new("sh");
        child.args(["-c", "sleep 0.2; exit 4"]);
        timeout(Duration::from_secs(1000), child.status()).await
    });
    let status = status.expect("no timeout").expect("status");
    assert_eq!(status.code(), Some(4));
}

#[test]
fn block_on_returns_after_shutdown_only_once_every_child_was_reaped() {
    let (err, pids) = block_on(async {
        // One child waited for by the root, one whose handle a finished task dropped.
        let mut waited = Command::new("sleep").arg("1000").spawn().expect("spawn");
        let (spawned, mut is_spawned) = oneshot::channel();
        let dropped = spawn(async move {
            let child = Command::new("sleep").arg("1000").spawn().expect("spawn");
            let _ = spawned.send(child.id()); // and the handle is dropped
        });
        let dropped_pid = within(is_spawned.recv()).await.expect("spawned");
        treeloop::yield_now().await.expect("not cancelled");
        assert!(
            !dropped.is_finished(),
            "the task waits for its child's guardian"
        );
        treeloop::shutdown();
        let err = waited.wait().await.expect_err("cancelled");
        (err, [waited.id(), dropped_pid])
    });
    assert_eq!(
        Cancelled::from_io(&err).map(|c| c.reason()),
        Some(CancelReason::Shutdown)
    );
    for pid in pids {
        assert!(!exists(pid), "process {pid} still exists");
    }
}

#[test]
fn fifty_children_at_once_are_all_reaped() {
    let (statuses, pids) = block_on(async {
        let mut waited = Vec::new();
        let mut pids = Vec::new();
        for i in 0..50 {
            let child = Command::new(if i % 2 == 0 { "true" } else { "false" })
                .spawn()
                .expect("spawn");
            pids.push(child.id());
            if i < 40 {
                waited.push(child);
            } // else dropped: its guardian reaps it, block_on waits for that
        }
        let mut statuses = Vec::new();
        for child in &mut waited {
            statuses.push(within(child.wait()).await.expect("wait").success());
        }
        (statuses, pids)
    });
    let expected: Vec<bool> = (0..40).map(|i| i % 2 == 0).collect();
    assert_eq!(statuses, expected);
    let left: Vec<_> = pids.into_iter().filter(|&pid| exists(pid)).collect();
    assert!(left.is_empty(), "not reaped: {left:?}");
}

#[test]
fn a_dropped_handle_leaves_the_child_running_and_its_owner_waits_for_it() {
    let marker = scratch_file("dropped");
    let _ = std::fs::remove_file(&marker);
    let script = format!("sleep 0.2; echo finished > '{}'", marker.display());
    let (pid, written) = block_on({
        let marker = marker.clone();
        async move {
            let owner = spawn(async move {
                let child = Command::new("sh")
                    .args(["-c", &script])
                    .spawn()
                    .expect("spawn");
                child.id() // the handle is dropped here
            });
            let pid = within(owner).await.expect("the owner");
            // Read here, not after block_on (which waits for every process anyway): the
            // owner's own completion waited for its child to run to its end.
            (pid, std::fs::read_to_string(&marker))
        }
    });
    let _ = std::fs::remove_file(&marker);
    assert_eq!(written.expect("the child ran to its end"), "finished\n");
    assert!(!exists(pid));
}

#[test]
fn stop_on_drop_stops_the_child_when_its_handle_is_dropped() {
    let (pid, elapsed) = block_on(async {
        let started = std::time::Instant::now();
        let owner = spawn(async {
            let child = Command::new("sleep")
                .arg("1000")
                .stop_on_drop(true)
                .spawn()
                .expect("spawn");
            child.id()
        });
        (within(owner).await.expect("the owner"), started.elapsed())
    });
    assert!(!exists(pid));
    // SIGTERM ended `sleep`: well before the 5 s grace period.
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
}

#[test]
fn kill_terminate_stop_and_try_wait_act_on_the_child() {
    block_on(async {
        let mut terminated = Command::new("sleep").arg("1000").spawn().expect("spawn");
        assert_eq!(terminated.try_wait().expect("try_wait"), None);
        terminated.terminate().expect("SIGTERM");
        let status = within(terminated.wait()).await.expect("wait");
        assert_eq!(status.signal(), Some(15));
        assert_eq!(terminated.try_wait().expect("try_wait"), Some(status));
        // Reaped: signalling again does nothing (the pid may belong to someone else now).
        terminated.kill().expect("a no-op");

        let mut killed = Command::new("sleep").arg("1000").spawn().expect("spawn");
        killed.kill().expect("SIGKILL");
        assert_eq!(within(killed.wait()).await.expect("wait").signal(), Some(9));

        let script = "trap 'exit 5' TERM; echo ready; while :; do sleep 0.05; done";
        let mut stopped = Command::new("sh")
            .args(["-c", script])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn");
        until_ready(stopped.stdout.as_mut().expect("piped")).await;
        assert_eq!(within(stopped.stop()).await.expect("stop").code(), Some(5));
    });
}

#[test]
fn writing_to_the_stdin_of_a_child_that_exited_fails_with_broken_pipe() {
    let err = block_on(async {
        let mut child = Command::new("true")
            .stdin(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut stdin = child.stdin.take().expect("piped");
        assert!(within(child.wait()).await.expect("wait").success());
        // Another test's spawn on another thread may hold the reading end for a moment
        // (inherited between its fork and its exec, which closes it): a write then fills
        // the buffer instead. Bounded retries until that holder is gone too.
        for _ in 0..2000 {
            match stdin.write_all(b"anyone?").await {
                Ok(()) => sleep(Duration::from_millis(1))
                    .await
                    .expect("not cancelled"),
                Err(err) => return err,
            }
        }
        panic!("writes to the stdin of an exited child kept succeeding");
    });
    assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe, "{err}");
}

#[test]
fn a_program_that_does_not_exist_is_not_found() {
    let err = block_on(async {
        Command::new("treeloop-no-such-program")
            .spawn()
            .expect_err("no such program")
    });
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    assert!(
        err.to_string()
            .contains("cannot spawn `treeloop-no-such-program`"),
        "{err}"
    );
}

#[test]
fn a_seeded_runtime_refuses_a_child_process_unless_real_io_is_allowed() {
    let seeded = Builder::new().seed(7).build().expect("runtime");
    let err = seeded.block_on(async { Command::new("true").spawn().expect_err("refused") });
    assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
    assert!(
        err.to_string().contains("Builder::allow_real_io(true)"),
        "{err}"
    );

    let allowed = Builder::new()
        .seed(7)
        .allow_real_io(true)
        .build()
        .expect("runtime");
    let status = allowed.block_on(async { Command::new("true").status().await });
    assert!(status.expect("status").success());
}

#[test]
fn spawn_outside_a_runtime_is_an_error_naming_block_on() {
    let err = Command::new("true").spawn().expect_err("outside a runtime");
    assert!(err.to_string().contains("treeloop::block_on"), "{err}");
}

#[test]
fn a_command_in_a_cancelled_region_starts_nothing_and_a_shielded_one_runs() {
    let marker = std::env::temp_dir().join(format!("treeloop-cancelled-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let (refused, shielded) = block_on({
        let marker = marker.clone();
        async move {
            let task = spawn(async move {
                let touch = format!("touch '{}'", marker.display());
                let refused = Command::new("sh").arg("-c").arg(&touch).status().await;
                let shielded =
                    shield(async { Command::new("sh").arg("-c").arg("exit 6").status().await })
                        .await;
                (refused, shielded)
            });
            task.cancel();
            task.await.unwrap()
        }
    });
    let err = refused.unwrap_err();
    assert_eq!(
        Cancelled::from_io(&err).map(|c| c.reason()),
        Some(CancelReason::Explicit)
    );
    assert!(!marker.exists(), "the cancelled command ran");
    assert_eq!(shielded.unwrap().code(), Some(6));
}
