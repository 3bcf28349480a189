//! The SIGCHLD fallback, tested on Linux too: the same guardian with the pidfd watch
//! replaced by SIGCHLD (tests/process.rs covers the pidfd path through the facade). These
//! run on a `Reactor` and an `Executor` built here, because the facade's runtime would use
//! another copy of this crate, with another reactor thread-local.

use std::cell::Cell;
use std::future::Future;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::rc::Rc;

use treeloop_executor::{Cancelled, Executor, shield, spawn, yield_now};

use super::Command;
use super::exit::Watch;
use crate::{Reactor, ReactorOptions};

fn run<F: Future>(future: F) -> F::Output {
    let mut reactor = Reactor::new(ReactorOptions::default()).expect("a reactor");
    let _enter = reactor.enter();
    let executor = Executor::new(reactor.unparker());
    executor.block_on(future, &mut reactor)
}

/// Whether the kernel still has the process, zombie or not.
fn exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn the_sigchld_watch_sees_every_exit_of_many_children_at_once() {
    let (codes, pids) = run(async {
        // All spawned before any is waited for: their SIGCHLDs coalesce.
        let mut children: Vec<_> = (0..30)
            .map(|i| {
                Command::new("sh")
                    .args(["-c", &format!("exit {}", i % 5)])
                    .spawn_with(Watch::Sigchld)
                    .expect("spawn sh")
            })
            .collect();
        let pids: Vec<u32> = children.iter().map(|child| child.id()).collect();
        let mut codes = Vec::new();
        for child in &mut children {
            codes.push(child.wait().await.expect("wait").code());
        }
        (codes, pids)
    });
    let expected: Vec<_> = (0..30).map(|i| Some(i % 5)).collect();
    assert_eq!(codes, expected);
    assert!(pids.iter().all(|&pid| !exists(pid)), "every child reaped");
}

#[test]
fn the_sigchld_watch_stops_the_child_of_a_cancelled_owner() {
    let (waited, status, pid) = run(async {
        let pid = Rc::new(Cell::new(None));
        let owner = spawn({
            let pid = pid.clone();
            async move {
                let mut child = Command::new("sleep")
                    .arg("1000")
                    .spawn_with(Watch::Sigchld)
                    .expect("spawn sleep");
                pid.set(Some(child.id()));
                let waited = child.wait().await.map_err(|err| Cancelled::from_io(&err));
                // In cleanup, the exit the guardian brought about.
                let status = shield(child.wait()).await.expect("the exit");
                (waited, status)
            }
        });
        for _ in 0..100 {
            if pid.get().is_some() {
                break;
            }
            yield_now().await.expect("not cancelled");
        }
        owner.cancel();
        let (waited, status) = owner.await.expect("the owner");
        (waited, status, pid.get().expect("spawned"))
    });
    assert!(matches!(waited, Err(Some(_))), "{waited:?}");
    assert_eq!(status.signal(), Some(15), "SIGTERM: {status:?}");
    assert!(!exists(pid), "reaped before the owner finished");
}
