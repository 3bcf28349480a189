//! Ctrl-C as a root cancel (R19), checked on a real process: the test runs itself again as a
//! child (`TREELOOP_CTRL_C_CHILD` selects what the child does), sends it SIGINT with `kill`,
//! and asserts on its output and exit status.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use treeloop::time::sleep;
use treeloop::{Builder, cancelled, shield, spawn};

/// The environment variable that turns a test into the child's body.
const CHILD: &str = "TREELOOP_CTRL_C_CHILD";

/// Starts this test binary again, running only `test`, as the child `mode`.
fn start_child(test: &str, mode: &str) -> Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("child process")
}

/// Reads the child's lines until one ends with `line` (libtest may have printed the test's
/// name in front of the first one); returns the lines read, without that prefix.
fn read_until(reader: &mut impl BufRead, line: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for next in reader.lines() {
        let next = next.expect("child stdout");
        let next = match next.rsplit_once(" ... ") {
            Some((_, ours)) => ours.to_string(),
            None => next,
        };
        let done = next == line;
        lines.push(next);
        if done {
            return lines;
        }
    }
    panic!("the child ended before printing {line:?}: {lines:?}");
}

fn interrupt(child: &Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// The child: a root with two workers; each prints when it sees the cancellation and after
/// its shielded cleanup; "ready" once all wait, "done" after `block_on` returned.
fn graceful_child() {
    let runtime = Builder::new().shutdown_on_ctrl_c(true).build().unwrap();
    runtime.block_on(async {
        let workers: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|name| {
                spawn(async move {
                    let why = cancelled().await;
                    println!("{name}: cancelled ({:?})", why.reason());
                    shield(sleep(std::time::Duration::from_millis(20)))
                        .await
                        .unwrap();
                    println!("{name}: cleaned up");
                })
            })
            .collect();
        treeloop::yield_now().await.unwrap();
        println!("ready");
        let why = cancelled().await;
        println!("root: cancelled ({:?})", why.reason());
        for worker in workers {
            shield(worker).await.unwrap();
        }
    });
    println!("done");
}

#[test]
fn the_first_ctrl_c_cancels_the_whole_tree_and_cleanups_finish() {
    if std::env::var(CHILD).as_deref() == Ok("graceful") {
        return graceful_child();
    }
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let mut child = start_child(
        "the_first_ctrl_c_cancels_the_whole_tree_and_cleanups_finish",
        "graceful",
    );
    let mut out = BufReader::new(child.stdout.take().unwrap());
    read_until(&mut out, "ready");
    interrupt(&child);
    let mut rest = read_until(&mut out, "done");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        rest.pop().as_deref(),
        Some("done"),
        "block_on returned last"
    );
    rest.sort();
    assert_eq!(
        rest,
        [
            "a: cancelled (Shutdown)",
            "a: cleaned up",
            "b: cancelled (Shutdown)",
            "b: cleaned up",
            "root: cancelled (Shutdown)",
        ]
    );
}

/// The child: a cleanup that never finishes, so only a second Ctrl-C can end it.
fn stuck_child() {
    let runtime = Builder::new().shutdown_on_ctrl_c(true).build().unwrap();
    runtime.block_on(async {
        println!("ready");
        let _ = cancelled().await;
        println!("cleanup started");
        // Shielded forever: the graceful path cannot end.
        shield(std::future::pending::<()>()).await;
    });
    println!("unreachable");
}

#[test]
fn a_second_ctrl_c_exits_at_once_with_status_130() {
    if std::env::var(CHILD).as_deref() == Ok("stuck") {
        return stuck_child();
    }
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let mut child = start_child("a_second_ctrl_c_exits_at_once_with_status_130", "stuck");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    read_until(&mut out, "ready");
    interrupt(&child);
    read_until(&mut out, "cleanup started");
    interrupt(&child);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
}

/// The child: `signal::ctrl_c()` without the Builder option.
fn await_child() {
    treeloop::block_on(async {
        let ctrl_c = treeloop::signal::ctrl_c();
        let mut ctrl_c = std::pin::pin!(ctrl_c);
        // First poll starts watching; then tell the parent.
        let _ = futures_poll_once(ctrl_c.as_mut()).await;
        println!("ready");
        ctrl_c.await.unwrap();
        println!("got ctrl-c");
    });
}

/// Polls `fut` once and returns whether it was ready.
async fn futures_poll_once<F: std::future::Future>(fut: std::pin::Pin<&mut F>) -> bool {
    let mut fut = Some(fut);
    std::future::poll_fn(|cx| {
        let ready = fut.take().unwrap().poll(cx).is_ready();
        std::task::Poll::Ready(ready)
    })
    .await
}

#[test]
fn ctrl_c_completes_on_sigint_without_the_builder_option() {
    if std::env::var(CHILD).as_deref() == Ok("await") {
        return await_child();
    }
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let mut child = start_child(
        "ctrl_c_completes_on_sigint_without_the_builder_option",
        "await",
    );
    let mut out = BufReader::new(child.stdout.take().unwrap());
    read_until(&mut out, "ready");
    interrupt(&child);
    read_until(&mut out, "got ctrl-c");
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
