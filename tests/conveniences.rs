//! The small conveniences: fire-and-forget spawns without a warning, `connect` to names and
//! lists of addresses, a `()` sleep, and `Cancelled::find` through third-party error chains.
// A `#[must_use]` JoinHandle would fail this file's spawn statements.
#![deny(unused_must_use)]

mod common;

use std::cell::Cell;
use std::error::Error;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use common::{ms, paused};
use treeloop::net::{TcpListener, TcpStream};
use treeloop::time::{Instant, delay, delay_until, sleep};
use treeloop::{CancelReason, Cancelled, block_on, spawn, yield_now};

#[test]
fn a_spawn_statement_is_a_fire_and_forget_child_that_block_on_waits_for() {
    let done = Rc::new(Cell::new(0));
    let runtime = paused();
    let start = runtime.block_on(async { Instant::now() });
    runtime.block_on({
        let done = done.clone();
        async move {
            for delay_ms in [30, 10] {
                let done = done.clone();
                spawn(async move {
                    sleep(ms(delay_ms)).await.unwrap();
                    done.set(done.get() + 1);
                });
            }
        }
    });
    // block_on returned after both detached children (R2): at 30 ms of virtual time.
    assert_eq!(done.get(), 2);
    assert_eq!(runtime.block_on(async move { start.elapsed() }), ms(30));
}

/// A listener on a free loopback port, and an address on which nothing listens.
fn listener_and_dead_port() -> (TcpListener, u16, SocketAddr) {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port, dead_addr)
}

#[test]
fn connect_takes_strings_pairs_and_lists_and_tries_each_address() {
    block_on(async {
        let (listener, port, dead) = listener_and_dead_port();
        let live: SocketAddr = ([127, 0, 0, 1], port).into();
        let accepted = spawn(async move {
            let mut peers = Vec::new();
            for _ in 0..5 {
                peers.push(listener.accept().await.unwrap().1);
            }
            peers.len()
        });
        let text = format!("127.0.0.1:{port}");
        let streams = [
            TcpStream::connect(text.as_str()).await.unwrap(),
            TcpStream::connect(text.clone()).await.unwrap(),
            TcpStream::connect(("127.0.0.1", port)).await.unwrap(),
            // A name: resolved on the blocking pool (localhost is in /etc/hosts).
            TcpStream::connect(("localhost", port)).await.unwrap(),
            // A list: the refused address first, then the live one.
            TcpStream::connect(&[dead, live][..]).await.unwrap(),
        ];
        for stream in &streams {
            assert_eq!(stream.peer_addr().unwrap().port(), port);
        }
        assert_eq!(accepted.await.unwrap(), 5);

        // Every address refused: the last error.
        let err = TcpStream::connect(&[dead, dead][..]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        // Nothing to try: a clear error.
        let err = TcpStream::connect(Vec::new()).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("no address"), "{err}");
    });
}

#[test]
fn a_connect_in_a_cancelled_region_sends_nothing() {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let port = std_listener.local_addr().unwrap().port();
    let err = block_on(async move {
        let task = spawn(async move { TcpStream::connect(("localhost", port)).await });
        task.cancel();
        task.await.unwrap().unwrap_err()
    });
    assert_eq!(
        Cancelled::from_io(&err).map(|c| c.reason()),
        Some(CancelReason::Explicit)
    );
    // No SYN was sent: the backlog is empty.
    let accepted = std_listener.accept().map(|_| ()).map_err(|e| e.kind());
    assert_eq!(accepted, Err(io::ErrorKind::WouldBlock));
}

#[test]
fn delay_is_a_unit_future_that_ends_at_once_when_cancelled() {
    let (slept, cancelled_after, next) = paused().block_on(async {
        let start = Instant::now();
        delay(Duration::from_secs(2)).await;
        delay_until(start + Duration::from_secs(3)).await;
        let slept = start.elapsed();

        let task = spawn(async move {
            let begin = Instant::now();
            delay(Duration::from_secs(3600)).await;
            let after = begin.elapsed();
            // The cancellation shows at the next await point (level-triggered).
            (after, yield_now().await.map_err(|c| c.reason()))
        });
        sleep(ms(10)).await.unwrap();
        task.cancel();
        let (after, next) = task.await.unwrap();
        (slept, after, next)
    });
    assert_eq!(slept, Duration::from_secs(3));
    assert_eq!(cancelled_after, ms(10));
    assert_eq!(next, Err(CancelReason::Explicit));
}

/// A third-party error whose cause is another error, as protocol crates report I/O failures.
#[derive(Debug)]
struct Wrapper(&'static str, Box<dyn Error + Send + Sync>);

impl fmt::Display for Wrapper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Error for Wrapper {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(self.1.as_ref())
    }
}

#[test]
fn cancelled_is_found_anywhere_in_a_chain_of_causes() {
    let cancelled = Cancelled::new(CancelReason::Shutdown);
    // protocol error -> io::Error (custom) -> framing error -> io::Error from Cancelled.
    let deep = Wrapper(
        "protocol",
        Box::new(io::Error::other(Wrapper(
            "framing",
            Box::new(io::Error::from(cancelled)),
        ))),
    );
    assert_eq!(Cancelled::find(&deep), Some(cancelled));
    assert_eq!(
        Cancelled::find(&io::Error::from(cancelled)),
        Some(cancelled)
    );
    assert_eq!(Cancelled::find(&cancelled), Some(cancelled));
    let unrelated = Wrapper("protocol", Box::new(io::Error::other("connection reset")));
    assert_eq!(Cancelled::find(&unrelated), None);
    assert_eq!(
        Cancelled::find(&io::Error::from(io::ErrorKind::BrokenPipe)),
        None
    );

    // A chain that loops (a buggy `source`) ends the search instead of hanging it.
    #[derive(Debug)]
    struct Looping;
    impl fmt::Display for Looping {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("looping")
        }
    }
    impl Error for Looping {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&Looping)
        }
    }
    assert_eq!(Cancelled::find(&Looping), None);
}

#[test]
fn cancelled_is_found_in_what_a_cancelled_socket_gives_a_wrapping_crate() {
    let err = block_on(async {
        let (listener, port, _) = listener_and_dead_port();
        let (accepted, mut reading) = treeloop::sync::oneshot::channel();
        let task = spawn(async move {
            let (stream, _) = listener.accept().await?;
            accepted.send(()).unwrap();
            let mut buf = [0u8; 1];
            // What a protocol crate would do with the socket's error: wrap it.
            match stream.read(&mut buf).await {
                Ok(_) => Ok(()),
                Err(io) => Err(io::Error::other(Wrapper("handshake failed", Box::new(io)))),
            }
        });
        let _client = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        // The task sent this, then began its read, which waits: no data comes.
        reading.recv().await.unwrap();
        task.cancel();
        task.await.unwrap().unwrap_err()
    });
    assert_eq!(Cancelled::from_io(&err), None, "wrapped, so not directly");
    assert_eq!(
        Cancelled::find(&err).map(|c| c.reason()),
        Some(CancelReason::Explicit)
    );
}

#[test]
fn a_join_error_converts_into_io_error_so_that_double_question_marks_work() {
    async fn run() -> io::Result<u32> {
        let ok = spawn(async { Ok::<_, io::Error>(7) }).await??;
        spawn(async { Err::<u32, _>(io::Error::other("refused")) }).await??;
        Ok(ok)
    }
    let err = block_on(run()).unwrap_err();
    assert_eq!(err.to_string(), "refused");

    // A panic: kind Other, the JoinError (and its payload) inside.
    let err = block_on(async {
        let handle = spawn(async { panic!("boom") });
        io::Error::from(handle.await.unwrap_err())
    });
    assert_eq!(err.kind(), io::ErrorKind::Other);
    let join = err
        .into_inner()
        .unwrap()
        .downcast::<treeloop::JoinError>()
        .unwrap();
    assert!(join.is_panic());
    assert_eq!(common::message(join.into_panic().as_ref()), "boom");

    // An interrupted join: the cancellation itself.
    let err = paused().block_on(async {
        let sleeper = spawn(sleep(ms(100)));
        let waiter = spawn(async move { io::Error::from(sleeper.await.unwrap_err()) });
        waiter.cancel();
        waiter.await.unwrap()
    });
    assert_eq!(
        Cancelled::from_io(&err).map(|c| c.reason()),
        Some(CancelReason::Explicit)
    );
}

#[test]
fn ok_if_cancelled_turns_only_an_outside_cancel_into_success() {
    use treeloop::{ScopeError, ScopeResultExt, scope};
    paused().block_on(async {
        // The body's value comes through.
        let value = scope(|_| async { Ok::<_, io::Error>(7) }).await;
        assert_eq!(value.ok_if_cancelled().unwrap(), Some(7));
        // A scope that cancelled itself before its body had a value: `None`, as before.
        let own = scope(|s| async move {
            s.cancel();
            sleep(ms(3_600_000)).await?;
            Ok::<_, io::Error>(8)
        })
        .await;
        assert_eq!(own.ok_if_cancelled().unwrap(), None);

        // Cancelled from outside while nothing failed: success, with no value.
        let server = spawn(async {
            scope(|s| async move {
                s.spawn(async { sleep(ms(3_600_000)).await.map_err(io::Error::from) })
                    .unwrap();
                Ok::<_, io::Error>(())
            })
            .await
            .ok_if_cancelled()
            .map_err(|err| err.to_string())
        });
        sleep(ms(10)).await.unwrap();
        server.cancel();
        assert_eq!(server.await.unwrap(), Ok(None));

        // A real failure stays a failure, even when the scope is also cancelled from
        // outside (R15).
        let failing = spawn(async {
            scope(|s| async move {
                s.spawn(async {
                    let _ = sleep(ms(3_600_000)).await;
                    Err::<(), _>(io::Error::other("disk full"))
                })
                .unwrap();
                Ok::<_, io::Error>(())
            })
            .await
            .ok_if_cancelled()
        });
        sleep(ms(10)).await.unwrap();
        failing.cancel();
        match failing.await.unwrap() {
            Err(ScopeError::Failed { first, rest }) => {
                assert_eq!(first.to_string(), "disk full");
                assert!(rest.is_empty());
            }
            other => panic!("expected the failure, got {other:?}"),
        }
    });
}
