//! The simulated network (`treeloop::sim::Net`): hosts with addresses running task
//! subtrees; TCP-like streams between them with the sockets' surface (latency on virtual
//! time, order kept under jitter, refused connects, half-close, the window, R7); crash as
//! an abort (peers see `ConnectionReset`, no cleanup runs) against shutdown as a cancel
//! (cleanups run, peers read an orderly end of stream); restart; every fault kind
//! (partition and repair, hold and release, bandwidth, datagram loss, duplication and
//! reordering); the per-host message rings and the report of a failing run; and a seed
//! replaying the same messages.

#[path = "common/child.rs"]
mod child;

use std::cell::{Cell, RefCell};
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use treeloop::sim::{
    Event, HostError, Link, Message, Net, Payload, Protocol, TcpListener, TcpStream, UdpSocket,
    WINDOW,
};
use treeloop::time::{Instant, sleep};
use treeloop::{Builder, Cancelled, spawn, yield_now};

/// Runs `body` on a runtime seeded with `seed` (virtual time, no real sockets).
fn run<F: Future>(seed: u64, body: impl FnOnce() -> F) -> F::Output {
    Builder::new()
        .seed(seed)
        .build()
        .expect("runtime")
        .block_on(body())
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A link with only a latency.
fn latency(n: u64) -> Link {
    Link {
        latency: ms(n),
        ..Link::default()
    }
}

/// A host's task that does nothing until the net cancels it (`std::future::pending` would
/// ignore the cancel, and the run would end in a reported deadlock).
async fn idle() {
    treeloop::cancelled().await;
}

/// Reads until end of stream (bounded).
async fn read_to_end(stream: &TcpStream) -> io::Result<Vec<u8>> {
    let mut all = Vec::new();
    let mut buf = [0; 4096];
    for _ in 0..10_000 {
        match stream.read(&mut buf).await? {
            0 => return Ok(all),
            n => all.extend_from_slice(&buf[..n]),
        }
    }
    panic!("no end of stream after 10,000 reads")
}

/// Accepts connections on `port` and echoes each one's bytes until it closes.
async fn echo_server(port: u16) -> io::Result<()> {
    let listener = TcpListener::bind(port)?;
    loop {
        let (stream, _) = listener.accept().await?;
        spawn(async move {
            let mut buf = [0; 1024];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if stream.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}

// ---------------------------------------------------------------------------------------
// Hosts and streams
// ---------------------------------------------------------------------------------------

#[test]
fn hosts_get_addresses_in_order_and_connect_by_name_address_or_pair() {
    let seen = run(1, || async {
        let net = Net::new();
        let (a, b) = (net.host("a"), net.host("b"));
        assert_eq!(a.addr(80), "10.0.0.1:80".parse::<SocketAddr>().unwrap());
        assert_eq!(b.ip().to_string(), "10.0.0.2");
        assert_eq!(
            net.host("b").addr(1),
            b.addr(1),
            "the same name is the same host"
        );
        b.spawn(echo_server(80));
        let b_addr = b.addr(80);
        a.spawn(async move {
            let mut seen = Vec::new();
            for stream in [
                TcpStream::connect("b:80").await?,
                TcpStream::connect(b_addr).await?,
                TcpStream::connect(("b", 80)).await?,
                TcpStream::connect("10.0.0.2:80").await?,
            ] {
                seen.push((stream.local_addr()?, stream.peer_addr()?));
            }
            io::Result::Ok(seen)
        })
        .await
        .unwrap()
        .unwrap()
    });
    let peers: Vec<String> = seen.iter().map(|(_, peer)| peer.to_string()).collect();
    assert_eq!(peers, ["10.0.0.2:80"; 4]);
    let locals: Vec<String> = seen.iter().map(|(local, _)| local.to_string()).collect();
    assert_eq!(
        locals,
        [
            "10.0.0.1:49152",
            "10.0.0.1:49153",
            "10.0.0.1:49154",
            "10.0.0.1:49155"
        ]
    );
}

#[test]
fn bytes_arrive_after_the_link_latency_on_virtual_time() {
    let (connected, echoed) = run(2, || async {
        let net = Net::new();
        let (a, b) = (net.host("a"), net.host("b"));
        net.set_link(&a, &b, latency(5));
        b.spawn(echo_server(7));
        a.spawn(async {
            let start = Instant::now();
            let stream = TcpStream::connect("b:7").await?;
            let connected = start.elapsed();
            stream.write_all(b"ping").await?;
            let mut buf = [0; 4];
            let n = stream.read(&mut buf).await?;
            assert_eq!(&buf[..n], b"ping");
            io::Result::Ok((connected, start.elapsed()))
        })
        .await
        .unwrap()
        .unwrap()
    });
    // SYN there and SYN-ACK back; then the bytes there and back.
    assert_eq!(connected, ms(10));
    assert_eq!(echoed, ms(20));
}

#[test]
fn a_connect_to_a_port_nobody_listens_on_is_refused_after_a_round_trip() {
    let (kind, elapsed) = run(3, || async {
        let net = Net::new();
        let (a, b) = (net.host("a"), net.host("b"));
        net.set_link(&a, &b, latency(4));
        b.spawn(idle());
        a.spawn(async {
            let start = Instant::now();
            let err = TcpStream::connect("b:81").await.unwrap_err();
            (err.kind(), start.elapsed())
        })
        .await
        .unwrap()
    });
    assert_eq!(kind, io::ErrorKind::ConnectionRefused);
    assert_eq!(elapsed, ms(8));
}

#[test]
fn a_connect_to_an_unknown_host_fails_at_once() {
    let kinds = run(4, || async {
        let net = Net::new();
        net.host("a")
            .spawn(async {
                let by_name = TcpStream::connect("nobody:80").await.unwrap_err().kind();
                let by_ip = TcpStream::connect("10.9.9.9:80").await.unwrap_err().kind();
                let no_port = TcpStream::connect("a").await.unwrap_err().kind();
                [by_name, by_ip, no_port]
            })
            .await
            .unwrap()
    });
    assert_eq!(
        kinds,
        [
            io::ErrorKind::NotFound,
            io::ErrorKind::HostUnreachable,
            io::ErrorKind::InvalidInput
        ]
    );
}

#[test]
fn jitter_never_reorders_the_bytes_of_a_connection() {
    let (received, arrivals) = run(5, || async {
        let net = Net::new();
        let (a, b) = (net.host("a"), net.host("b"));
        net.set_link(
            &a,
            &b,
            Link {
                latency: ms(1),
                jitter: ms(20),
                ..Link::default()
            },
        );
        let arrivals = Rc::new(RefCell::new(Vec::new()));
        let log = arrivals.clone();
        let received = b.spawn(async move {
            let listener = TcpListener::bind(9)?;
            let (stream, _) = listener.accept().await?;
            let mut all = Vec::new();
            let mut buf = [0; 1];
            while stream.read(&mut buf).await? == 1 {
                all.push(buf[0]);
                log.borrow_mut().push(Instant::now());
            }
            io::Result::Ok(all)
        });
        a.spawn(async {
            let stream = TcpStream::connect("b:9").await?;
            for n in 0..200u8 {
                stream.write_all(&[n]).await?;
                sleep(Duration::from_micros(100)).await.unwrap();
            }
            io::Result::Ok(())
        });
        let received = received.await.unwrap().unwrap();
        (received, arrivals.take())
    });
    assert_eq!(received, (0..200u8).collect::<Vec<_>>());
    assert!(arrivals.windows(2).all(|w| w[0] <= w[1]));
    let mut distinct = arrivals.clone();
    distinct.dedup();
    assert!(
        distinct.len() < 200,
        "jitter made later bytes wait for earlier ones: {} distinct arrival times",
        distinct.len()
    );
}

#[test]
fn half_close_ends_one_direction_after_its_bytes_and_the_other_stays_open() {
    let (server_read, client_read) = run(6, || async {
        let net = Net::new();
        let (a, b) = (net.host("a"), net.host("b"));
        let server = b.spawn(async {
            let listener = TcpListener::bind(1)?;
            let (stream, _) = listener.accept().await?;
            let got = read_to_end(&stream).await?;
            stream.write_all(b"after your FIN").await?;
            io::Result::Ok(got)
        });
        let client = a.spawn(async {
            let stream = TcpStream::connect("b:1").await?;
            stream.write_all(b"one ").await?;
            stream.write_all(b"two").await?;
            stream.shutdown(Shutdown::Write)?;
            let write_after = stream.write(b"x").await.unwrap_err().kind();
            assert_eq!(write_after, io::ErrorKind::BrokenPipe);
            read_to_end(&stream).await
        });
        (
            server.await.unwrap().unwrap(),
            client.await.unwrap().unwrap(),
        )
    });
    assert_eq!(server_read, b"one two");
    assert_eq!(client_read, b"after your FIN");
}

#[test]
fn a_cancelled_read_consumes_nothing_and_a_cancelled_write_sends_nothing() {
    let (first, rest, sent) = run(7, || async {
        let net = Net::new();
        let (a, b) = (net.host("a"), net.host("b"));
        let server = b.spawn(async {
            let listener = TcpListener::bind(1)?;
            let (stream, _) = listener.accept().await?;
            // A read cancelled while waiting, then one cancelled with bytes ready.
            let stream = Rc::new(stream);
            let reader = stream.clone();
            let waiting = spawn(async move {
                let mut buf = [0; 8];
                reader.read(&mut buf).await
            });
            yield_now().await.unwrap();
            waiting.cancel();
            let err = waiting.await.unwrap().unwrap_err();
            assert!(Cancelled::from_io(&err).is_some());
            sleep(ms(50)).await.unwrap();
            let reader = stream.clone();
            let ready = spawn(async move {
                treeloop::cancelled().await;
                let mut buf = [0; 8];
                reader.read(&mut buf).await
            });
            ready.cancel();
            assert!(Cancelled::from_io(&ready.await.unwrap().unwrap_err()).is_some());
            let mut buf = [0; 3];
            let n = stream.read(&mut buf).await?;
            let first = buf[..n].to_vec();
            let rest = read_to_end(&stream).await?;
            io::Result::Ok((first, rest))
        });
        let client = a.spawn(async {
            let stream = Rc::new(TcpStream::connect("b:1").await?);
            stream.write_all(b"abcdef").await?;
            let writer = stream.clone();
            let cancelled_write = spawn(async move {
                treeloop::cancelled().await;
                writer.write(b"never").await
            });
            cancelled_write.cancel();
            assert!(Cancelled::from_io(&cancelled_write.await.unwrap().unwrap_err()).is_some());
            stream.shutdown(Shutdown::Write)?;
            io::Result::Ok(())
        });
        client.await.unwrap().unwrap();
        let (first, rest) = server.await.unwrap().unwrap();
        let sent = net.link_stats(&a, &b).sent;
        (first, rest, sent)
    });
    assert_eq!(first, b"abc");
    assert_eq!(rest, b"def");
    // SYN, the six bytes, the FIN: the cancelled write sent no segment.
    assert_eq!(sent, 3);
}

#[test]
fn the_stream_has_the_futures_io_traits_and_splits_into_halves() {
    use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
    let (echoed, reunited) = run(33, || async {
        let net = Net::new();
        let (a, b) = (net.host("a"), net.host("b"));
        b.spawn(echo_server(7));
        a.spawn(async {
            let stream = TcpStream::connect("b:7").await?;
            let (mut reader, mut writer) = stream.into_split();
            let write = spawn(async move {
                writer.write_all(b"through the traits").await?;
                writer.close().await?;
                io::Result::Ok(writer)
            });
            let mut echoed = Vec::new();
            reader.read_to_end(&mut echoed).await?;
            let writer = write.await.unwrap()?;
            let stream = reader.reunite(writer).unwrap();
            io::Result::Ok((echoed, stream.peer_addr()?))
        })
        .await
        .unwrap()
        .unwrap()
    });
    assert_eq!(echoed, b"through the traits");
    assert_eq!(reunited.to_string(), "10.0.0.2:7");
}

#[test]
fn a_cancelled_connect_sends_nothing() {
    let (err, sent) = run(34, || async {
        let net = Net::new();
        let (a, b) = (net.host("a"), net.host("b"));
        b.spawn(echo_server(7));
        let err = a
            .spawn(async {
                let connect = spawn(async {
                    treeloop::cancelled().await;
                    TcpStream::connect("b:7").await
                });
                connect.cancel();
                connect.await.unwrap().unwrap_err()
            })
            .await
            .unwrap();
        (err, net.link_stats(&a, &b).sent)
    });
    assert!(Cancelled::from_io(&err).is_some());
    assert_eq!(sent, 0, "no SYN left");
}

#[test]
fn a_dropped_listener_resets_what_it_queued_and_refuses_later_connects() {
    let (queued, later) = run(35, || async {
        let net = Net::new();
        let (a, b) = (net.host("a"), net.host("b"));
        b.spawn(async {
            let listener = TcpListener::bind(7)?;
            sleep(ms(10)).await.unwrap();
            drop(listener);
            treeloop::cancelled().await;
            io::Result::Ok(())
        });
        a.spawn(async {
            let queued = TcpStream::connect("b:7").await?;
            sleep(ms(20)).await.unwrap();
            let mut buf = [0; 1];
            let queued = queued.read(&mut buf).await.unwrap_err().kind();
            let later = TcpStream::connect("b:7").await.unwrap_err().kind();
            io::Result::Ok((queued, later))
        })
        .await
        .unwrap()
        .unwrap()
    });
    assert_eq!(queued, io::ErrorKind::ConnectionReset);
    assert_eq!(later, io::ErrorKind::ConnectionRefused);
}

#[test]
fn bytes_sent_to_a_closed_end_are_answered_with_a_reset() {
    let (eof, reset) = run(36, || async {
        let net = Net::new();
        let (a, b) = (net.host("a"), net.host("b"));
        b.spawn(async {
            let listener = TcpListener::bind(7)?;
            let (stream, _) = listener.accept().await?;
            drop(stream);
            treeloop::cancelled().await;
            io::Result::Ok(())
        });
        a.spawn(async {
            let stream = TcpStream::connect("b:7").await?;
            let mut buf = [0; 1];
            // The server's FIN: end of stream; writing is still allowed (a half-close).
            let eof = stream.read(&mut buf).await?;
            stream.write_all(b"anyone?").await?;
            sleep(ms(10)).await.unwrap();
            let reset = stream.write(b"x").await.unwrap_err().kind();
            io::Result::Ok((eof, reset))
        })
        .await
        .unwrap()
        .unwrap()
    });
    assert_eq!(eof, 0);
    assert_eq!(reset, io::ErrorKind::ConnectionReset);
}

#[test]
fn shutdown_read_ends_reading_and_discards_what_arrives_later() {
    let (read, delivered, dropped) = run(37, || async {
        let net = Net::new();
        let (a, b) = (net.host("a"), net.host("b"));
        b.spawn(async {
            let listener = TcpListener::bind(7)?;
            let (stream, _) = listener.accept().await?;
            sleep(ms(5)).await.unwrap();
            stream.write_all(b"ignored").await?;
            treeloop::cancelled().await;
            io::Result::Ok(())
        });
        let read = a
            .spawn(async {
                let stream = TcpStream::connect("b:7").await?;
                stream.shutdown(Shutdown::Read)?;
                sleep(ms(20)).await.unwrap();
                let mut buf = [0; 8];
                stream.read(&mut buf).await
            })
            .await
            .unwrap()
            .unwrap();
        let stats = net.link_stats(&b, &a);
        (read, stats.delivered, stats.dropped)
    });
    assert_eq!(read, 0);
    // The SYN-ACK was delivered; the bytes after the shutdown were not taken.
    assert_eq!((delivered, dropped), (1, 1));
}

#[test]
fn a_bandwidth_limit_paces_a_stream_too() {
    let (took, at) = run(38, || async {
        let net = Net::new();
        let (a, b) = (net.host("a"), net.host("b"));
        net.set_link(
            &a,
            &b,
            Link {
                latency: ms(1),
                bandwidth: Some(10_000),
                ..Link::default()
            },
        );
        let server = b.spawn(async {
            let listener = TcpListener::bind(7)?;
            let (stream, _) = listener.accept().await?;
            let accepted = Instant::now();
            let all = read_to_end(&stream).await?;
            io::Result::Ok((all.len(), accepted.elapsed()))
        });
        a.spawn(async {
            let stream = TcpStream::connect("b:7").await?;
            stream.write_all(&[1; 5_000]).await?;
            stream.shutdown(Shutdown::Write)
        });
        server.await.unwrap().unwrap()
    });
    // Accepted when the SYN arrived (1 ms); the 5,000 bytes left at 2 ms, once the
    // SYN-ACK was back, took 500 ms on the wire and 1 ms to travel; the FIN behind them.
    assert_eq!((took, at), (5_000, ms(502)));
}

#[test]
fn a_writer_waits_when_the_window_is_full_until_the_reader_reads() {
    let (first, blocked_until, total) = run(8, || async {
        let net = Net::new();
        let (a, b) = (net.host("a"), net.host("b"));
        let server = b.spawn(async {
            let listener = TcpListener::bind(1)?;
            let (stream, _) = listener.accept().await?;
            sleep(ms(100)).await.unwrap();
            let all = read_to_end(&stream).await?;
            io::Result::Ok(all.len())
        });
        let client = a.spawn(async {
            let stream = TcpStream::connect("b:1").await?;
            let big = vec![7u8; WINDOW + 10];
            let first = stream.write(&big).await?;
            let start = Instant::now();
            stream.write_all(&big[first..]).await?;
            let blocked = start.elapsed();
            stream.shutdown(Shutdown::Write)?;
            io::Result::Ok((first, blocked))
        });
        let (first, blocked) = client.await.unwrap().unwrap();
        (first, blocked, server.await.unwrap().unwrap())
    });
    assert_eq!(first, WINDOW);
    // The server starts reading 100 ms after it accepted (when the SYN arrived, 1 ms in),
    // which is 99 ms after the client's first write (once the SYN-ACK was back, 2 ms in).
    assert_eq!(blocked_until, ms(99));
    assert_eq!(total, WINDOW + 10);
}

#[test]
fn tasks_spawned_inside_a_host_are_the_hosts_and_binding_a_port_twice_is_refused() {
    let (peer, in_use) = run(9, || async {
        let net = Net::new();
        let (a, b) = (net.host("a"), net.host("b"));
        let server = b.spawn(async {
            let listener = TcpListener::bind(80)?;
            let in_use = TcpListener::bind(80).unwrap_err().kind();
            let (_stream, peer) = listener.accept().await?;
            io::Result::Ok((peer, in_use))
        });
        a.spawn(async {
            // Two levels down, plain `spawn`: still host a's.
            spawn(async { spawn(async { TcpStream::connect("b:80").await }).await }).await
        });
        server.await.unwrap().unwrap()
    });
    assert_eq!(peer.ip().to_string(), "10.0.0.1");
    assert_eq!(in_use, io::ErrorKind::AddrInUse);
}

#[test]
#[should_panic(
    expected = "called outside a sim host: call it inside a task started with host.spawn"
)]
fn a_socket_made_outside_any_host_panics_naming_the_fix() {
    run(10, || async {
        let _net = Net::new();
        let _ = TcpListener::bind(80);
    });
}

// ---------------------------------------------------------------------------------------
// Crash, shutdown, restart
// ---------------------------------------------------------------------------------------

/// A server host whose connection handler counts its cleanups and whose main task counts
/// its own; the handler answers "hello" and then waits for more.
async fn counting_server(cleanups: Rc<Cell<u32>>) -> io::Result<()> {
    let listener = TcpListener::bind(80)?;
    let (stream, _) = listener.accept().await?;
    let handler_cleanups = cleanups.clone();
    spawn(async move {
        stream.write_all(b"hello").await.unwrap();
        let mut buf = [0; 8];
        let outcome = stream.read(&mut buf).await;
        // Reached on cancellation (a shutdown), never on a crash.
        assert!(Cancelled::from_io(&outcome.unwrap_err()).is_some());
        handler_cleanups.set(handler_cleanups.get() + 1);
        drop(stream);
    });
    let cancelled = treeloop::cancelled().await;
    cleanups.set(cleanups.get() + 1);
    Err(io::Error::from(cancelled))
}

#[test]
fn a_crash_resets_the_peers_connections_and_runs_no_cleanup_of_the_host() {
    let (read_kind, write_kind, server_exit, cleanups, reconnect) = run(11, || async {
        let net = Net::new();
        let (client, server) = (net.host("client"), net.host("server"));
        let cleanups = Rc::new(Cell::new(0));
        let exit = server.spawn(counting_server(cleanups.clone()));
        let net2 = net.clone();
        let server2 = server.clone();
        let client_side = client
            .spawn(async move {
                let stream = TcpStream::connect("server:80").await.unwrap();
                let mut buf = [0; 5];
                assert_eq!(stream.read(&mut buf).await.unwrap(), 5);
                net2.crash(&server2);
                assert!(!server2.is_running());
                let read = stream.read(&mut buf).await.unwrap_err();
                assert!(Cancelled::from_io(&read).is_none(), "a reset, not a cancel");
                let write = stream.write(b"x").await.unwrap_err();
                let reconnect = TcpStream::connect("server:80").await.unwrap_err();
                (read.kind(), write.kind(), reconnect.kind())
            })
            .await
            .unwrap();
        let (read, write, reconnect) = client_side;
        (read, write, exit.await, cleanups.get(), reconnect)
    });
    assert_eq!(read_kind, io::ErrorKind::ConnectionReset);
    assert_eq!(write_kind, io::ErrorKind::ConnectionReset);
    assert_eq!(reconnect, io::ErrorKind::ConnectionRefused);
    assert!(matches!(server_exit, Err(HostError::Crashed)));
    assert_eq!(cleanups, 0, "a crash runs no cleanup");
}

#[test]
fn a_shutdown_cancels_the_host_runs_its_cleanups_and_its_peers_read_an_orderly_end() {
    let (after, exit, cleanups, running) = run(13, || async {
        let net = Net::new();
        let (client, server) = (net.host("client"), net.host("server"));
        let cleanups = Rc::new(Cell::new(0));
        let exit = server.spawn(counting_server(cleanups.clone()));
        let net2 = net.clone();
        let server2 = server.clone();
        let after = client
            .spawn(async move {
                let stream = TcpStream::connect("server:80").await.unwrap();
                let mut buf = [0; 5];
                assert_eq!(stream.read(&mut buf).await.unwrap(), 5);
                net2.shutdown(&server2).await.unwrap();
                // The handler's drop sent a FIN: end of stream, not an error.
                stream.read(&mut buf).await
            })
            .await
            .unwrap();
        let exit = exit.await.unwrap().unwrap_err();
        (after, exit, cleanups.get(), server.is_running())
    });
    assert_eq!(after.unwrap(), 0);
    assert!(Cancelled::from_io(&exit).is_some());
    assert_eq!(
        cleanups, 2,
        "the handler's and the main task's cleanups ran"
    );
    assert!(!running);
}

#[test]
fn a_restart_runs_a_new_generation_on_the_same_address_and_port() {
    let answers = run(14, || async {
        let net = Net::new();
        let (client, server) = (net.host("client"), net.host("server"));
        let serve = |greeting: &'static [u8]| async move {
            let listener = TcpListener::bind(80)?;
            loop {
                let (stream, _) = listener.accept().await?;
                stream.write_all(greeting).await?;
            }
            #[allow(unreachable_code)]
            io::Result::Ok(())
        };
        server.spawn(serve(b"gen 1"));
        let greet = || async {
            let stream = TcpStream::connect("server:80").await?;
            read_to_end(&stream).await
        };
        let first = client.spawn(greet()).await.unwrap().unwrap();
        let old = net.restart(&server, serve(b"gen 2"));
        let second = client.spawn(greet()).await.unwrap().unwrap();
        net.restart(&server, serve(b"gen 3"));
        assert!(matches!(old.await, Err(HostError::Crashed)));
        let third = client.spawn(greet()).await.unwrap().unwrap();
        [first, second, third]
    });
    assert_eq!(
        answers,
        [b"gen 1".to_vec(), b"gen 2".to_vec(), b"gen 3".to_vec()]
    );
}

#[test]
fn a_panicking_host_fails_the_run_with_its_panic() {
    let exit = Rc::new(RefCell::new(None));
    let seen = exit.clone();
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run(39, || async move {
            let net = Net::new();
            let a = net.host("a");
            let task = a.spawn(async {
                sleep(ms(1)).await.unwrap();
                panic!("the host's bug");
            });
            *seen.borrow_mut() = Some(task.await);
        })
    }));
    let payload = failed.expect_err("the host's panic is re-raised by block_on");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"the host's bug"));
    assert_eq!(*exit.borrow(), Some(Err(HostError::Crashed)));
}

#[test]
fn a_host_cannot_be_spawned_twice_while_it_runs() {
    let message = run(15, || async {
        let net = Net::new();
        let a = net.host("a");
        a.spawn(idle());
        let twice = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            a.spawn(async {});
        }));
        let payload = twice.unwrap_err();
        payload.downcast_ref::<String>().cloned().unwrap()
    });
    assert!(
        message.contains("sim host \"a\" is already running"),
        "{message}"
    );
}

/// Counts its drops, and whether the future it lives in ran past its await.
struct DropCount(Rc<Cell<u32>>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn abort_subtree_drops_every_task_below_shields_included_without_running_it_again() {
    let (dropped, ran_on, joined_aborted, ancestry_len) = run(40, || async {
        let dropped = Rc::new(Cell::new(0));
        let ran_on = Rc::new(Cell::new(0));
        let (d, r) = (dropped.clone(), ran_on.clone());
        let parent = spawn(async move {
            let (d2, r2) = (d.clone(), r.clone());
            let child = spawn(async move {
                let _guard = DropCount(d2.clone());
                // A shielded grandchild: a cancel would not reach it, a crash does.
                treeloop::shield(async move {
                    spawn(async move {
                        let _guard = DropCount(d2);
                        sleep(ms(10)).await.unwrap();
                        r2.set(r2.get() + 1);
                    });
                    sleep(ms(10)).await.unwrap();
                })
                .await;
                treeloop::task::ancestry().len()
            });
            let _guard = DropCount(d);
            let _ = treeloop::cancelled().await;
            r.set(r.get() + 1);
            child.await.unwrap()
        });
        sleep(ms(1)).await.unwrap();
        parent.abort_subtree();
        let joined = parent.await.unwrap_err().is_aborted();
        (
            dropped.get(),
            ran_on.get(),
            joined,
            treeloop::task::ancestry().len(),
        )
    });
    assert_eq!(
        dropped, 3,
        "parent, child and shielded grandchild futures dropped"
    );
    assert_eq!(ran_on, 0, "none of them ran again");
    assert!(joined_aborted);
    assert_eq!(ancestry_len, 1, "the root alone");
}

// ---------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------

#[test]
fn a_partition_holds_segments_until_repair_and_then_delivers_them_in_order() {
    let (got, at, held) = run(16, || async {
        let net = Net::new();
        let (a, b) = (net.host("a"), net.host("b"));
        let server = b.spawn(async {
            let listener = TcpListener::bind(1)?;
            let (stream, _) = listener.accept().await?;
            let mut buf = [0; 16];
            let n = stream.read(&mut buf).await?;
            let first = (buf[..n].to_vec(), Instant::now());
            let rest = read_to_end(&stream).await?;
            io::Result::Ok((first, rest))
        });
        let ready_tx = Rc::new(Cell::new(false));
        let flag = ready_tx.clone();
        a.spawn(async move {
            let stream = TcpStream::connect("b:1").await?;
            flag.set(true);
            sleep(ms(10)).await.unwrap();
            stream.write_all(b"held ").await?;
            stream.write_all(b"in order").await?;
            stream.shutdown(Shutdown::Write)
        });
        while !ready_tx.get() {
            sleep(ms(1)).await.unwrap();
        }
        net.partition(&a, &b);
        let start = Instant::now();
        sleep(ms(100)).await.unwrap();
        net.repair(&a, &b);
        let ((first, at), rest) = server.await.unwrap().unwrap();
        let mut got = first;
        got.extend(rest);
        (got, at - start, net.link_stats(&a, &b).held)
    });
    assert_eq!(got, b"held in order");
    assert_eq!(at, ms(100), "delivered at the repair");
    assert_eq!(held, 3, "two data segments and the FIN waited");
}

#[test]
fn a_connect_across_a_partition_times_out_unless_repaired_in_time() {
    let (timed_out, elapsed, repaired) = run(17, || async {
        let net = Net::new();
        let (a, b) = (net.host("a"), net.host("b"));
        net.set_connect_timeout(ms(50));
        b.spawn(echo_server(80));
        net.partition(&a, &b);
        let first = a
            .spawn(async {
                let start = Instant::now();
                let err = TcpStream::connect("b:80").await.unwrap_err();
                (err.kind(), start.elapsed())
            })
            .await
            .unwrap();
        let second = a.spawn(async { TcpStream::connect("b:80").await.map(|_| ()) });
        sleep(ms(20)).await.unwrap();
        net.repair(&a, &b);
        (first.0, first.1, second.await.unwrap())
    });
    assert_eq!(timed_out, io::ErrorKind::TimedOut);
    assert_eq!(elapsed, ms(50));
    repaired.unwrap();
}

#[test]
fn held_bytes_of_a_connection_reset_during_the_partition_are_dropped() {
    let (kind, dropped) = run(18, || async {
        let net = Net::new();
        let (a, b) = (net.host("a"), net.host("b"));
        let connected = Rc::new(Cell::new(false));
        let flag = connected.clone();
        b.spawn(async move {
            let listener = TcpListener::bind(1)?;
            let (_stream, _) = listener.accept().await?;
            treeloop::cancelled().await;
            io::Result::Ok(())
        });
        let client = a.spawn(async move {
            let stream = TcpStream::connect("b:1").await?;
            flag.set(true);
            sleep(ms(10)).await.unwrap();
            stream.write_all(b"lost").await?;
            sleep(ms(100)).await.unwrap();
            let mut buf = [0; 4];
            io::Result::Ok(stream.read(&mut buf).await.unwrap_err().kind())
        });
        while !connected.get() {
            sleep(ms(1)).await.unwrap();
        }
        net.partition(&a, &b);
        sleep(ms(20)).await.unwrap();
        net.crash(&b);
        net.repair(&a, &b);
        let kind = client.await.unwrap().unwrap();
        (kind, net.link_stats(&a, &b).dropped)
    });
    assert_eq!(kind, io::ErrorKind::ConnectionReset);
    assert_eq!(dropped, 1, "the held segment found its connection reset");
}

#[test]
fn hold_keeps_streams_and_datagrams_until_release_in_arrival_order() {
    let (stream_at, datagrams, held) = run(19, || async {
        let net = Net::new();
        let (a, b) = (net.host("a"), net.host("b"));
        let server = b.spawn(async {
            let listener = TcpListener::bind(1)?;
            let socket = UdpSocket::bind(2)?;
            let (stream, _) = listener.accept().await?;
            let mut buf = [0; 8];
            stream.read(&mut buf).await?;
            let stream_at = Instant::now();
            let mut datagrams = Vec::new();
            for _ in 0..3 {
                let (n, _) = socket.recv_from(&mut buf).await?;
                datagrams.push((buf[..n].to_vec(), Instant::now()));
            }
            io::Result::Ok((stream_at, datagrams))
        });
        let client = a.spawn(async {
            let stream = TcpStream::connect("b:1").await?;
            let socket = UdpSocket::bind(0)?;
            sleep(ms(10)).await.unwrap();
            stream.write_all(b"s").await?;
            for d in [b"1", b"2", b"3"] {
                socket.send_to(d, "b:2").await?;
                sleep(ms(1)).await.unwrap();
            }
            io::Result::Ok(())
        });
        sleep(ms(5)).await.unwrap();
        let start = Instant::now();
        net.hold(&a, &b);
        sleep(ms(60)).await.unwrap();
        net.release(&a, &b);
        client.await.unwrap().unwrap();
        let (stream_at, datagrams) = server.await.unwrap().unwrap();
        let datagrams: Vec<_> = datagrams
            .into_iter()
            .map(|(d, at)| (d, at - start))
            .collect();
        (stream_at - start, datagrams, net.link_stats(&a, &b).held)
    });
    assert_eq!(stream_at, ms(60));
    assert_eq!(
        datagrams,
        [
            (b"1".to_vec(), ms(60)),
            (b"2".to_vec(), ms(60)),
            (b"3".to_vec(), ms(60))
        ]
    );
    // The segment, three datagrams, and the FIN of the client's stream, dropped when its
    // task returned.
    assert_eq!(held, 5);
}

#[test]
fn a_bandwidth_limit_makes_delivery_time_grow_with_size() {
    let arrivals = run(20, || async {
        let net = Net::new();
        let (a, b) = (net.host("a"), net.host("b"));
        net.set_link(
            &a,
            &b,
            Link {
                latency: ms(1),
                bandwidth: Some(1_000),
                ..Link::default()
            },
        );
        let server = b.spawn(async {
            let socket = UdpSocket::bind(9)?;
            let start = Instant::now();
            let mut arrivals = Vec::new();
            let mut buf = [0; 1024];
            for _ in 0..3 {
                let (n, _) = socket.recv_from(&mut buf).await?;
                arrivals.push((n, start.elapsed()));
            }
            io::Result::Ok(arrivals)
        });
        a.spawn(async {
            let socket = UdpSocket::bind(0)?;
            socket.send_to(&[0; 100], "b:9").await?;
            socket.send_to(&[0; 500], "b:9").await?;
            sleep(ms(2_000)).await.unwrap();
            socket.send_to(&[0; 10], "b:9").await?;
            io::Result::Ok(())
        });
        server.await.unwrap().unwrap()
    });
    // 100 bytes take 100 ms on the wire, the 500 after them 500 ms more; the last one
    // finds the wire free again.
    assert_eq!(arrivals, [(100, ms(101)), (500, ms(601)), (10, ms(2_011))]);
}

// ---------------------------------------------------------------------------------------
// Datagrams
// ---------------------------------------------------------------------------------------

/// Sends `count` numbered datagrams from a to b over `link`, `gap` apart, and returns the
/// numbers b received in order (waiting long enough for every survivor) and the net.
fn datagrams(
    seed: u64,
    link: Link,
    count: u16,
    gap: Duration,
) -> (Vec<u16>, treeloop::sim::LinkStats) {
    run(seed, || async move {
        let net = Net::with_seed(seed);
        let (a, b) = (net.host("a"), net.host("b"));
        net.set_link(&a, &b, link);
        let received = Rc::new(RefCell::new(Vec::new()));
        let log = received.clone();
        b.spawn(async move {
            let socket = UdpSocket::bind(5).unwrap();
            let mut buf = [0; 2];
            // Until the net goes and cancels the host.
            while let Ok((_, from)) = socket.recv_from(&mut buf).await {
                assert_eq!(from.to_string(), "10.0.0.1:49152");
                log.borrow_mut().push(u16::from_be_bytes(buf));
            }
        });
        a.spawn(async move {
            let socket = UdpSocket::bind(0).unwrap();
            for n in 0..count {
                socket.send_to(&n.to_be_bytes(), "b:5").await.unwrap();
                sleep(gap).await.unwrap();
            }
        })
        .await
        .unwrap();
        sleep(Duration::from_secs(1)).await.unwrap();
        let stats = net.link_stats(&a, &b);
        (received.take(), stats)
    })
}

#[test]
fn datagrams_arrive_after_the_latency_with_their_sender() {
    let (got, stats) = datagrams(21, latency(3), 5, ms(1));
    assert_eq!(got, [0, 1, 2, 3, 4]);
    assert_eq!((stats.sent, stats.delivered, stats.dropped), (5, 5, 0));
}

#[test]
fn loss_drops_a_seeded_share_of_datagrams_the_same_ones_on_replay() {
    let lossy = Link {
        loss: 0.3,
        ..Link::default()
    };
    let (got, stats) = datagrams(22, lossy, 1_000, ms(1));
    assert!(
        (600..=800).contains(&got.len()),
        "{} of 1,000 arrived",
        got.len()
    );
    assert_eq!(stats.dropped as usize, 1_000 - got.len());
    assert_eq!(stats.delivered as usize, got.len());
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "no jitter: no reordering"
    );
    assert_eq!(
        datagrams(22, lossy, 1_000, ms(1)).0,
        got,
        "the same seed loses the same"
    );
    assert_ne!(
        datagrams(23, lossy, 1_000, ms(1)).0,
        got,
        "another seed, other losses"
    );
}

#[test]
fn duplication_delivers_copies() {
    let always = Link {
        duplicate: 1.0,
        ..Link::default()
    };
    let (got, stats) = datagrams(24, always, 10, ms(1));
    let mut sorted = got.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..10).flat_map(|n| [n, n]).collect::<Vec<_>>());
    assert_eq!((stats.sent, stats.delivered), (10, 20));
    let half = Link {
        duplicate: 0.5,
        ..Link::default()
    };
    let (got, _) = datagrams(25, half, 1_000, ms(1));
    assert!(
        (1_400..=1_600).contains(&got.len()),
        "{} datagrams",
        got.len()
    );
}

#[test]
fn jitter_larger_than_the_gap_reorders_datagrams() {
    let jittery = Link {
        latency: ms(1),
        jitter: ms(20),
        ..Link::default()
    };
    let (got, _) = datagrams(26, jittery, 100, ms(1));
    let mut sorted = got.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..100).collect::<Vec<_>>(), "nothing lost");
    assert_ne!(got, sorted, "reordered");
    assert_eq!(
        datagrams(26, jittery, 100, ms(1)).0,
        got,
        "the same order on replay"
    );
    let smooth = Link {
        jitter: Duration::from_micros(500),
        ..jittery
    };
    assert_eq!(
        datagrams(26, smooth, 100, ms(1)).0,
        sorted,
        "jitter below the gap"
    );
}

#[test]
fn a_partition_drops_datagrams_and_an_unbound_port_drops_them_too() {
    let (partitioned, unbound) = run(27, || async {
        let net = Net::new();
        let (a, b) = (net.host("a"), net.host("b"));
        b.spawn(idle());
        net.partition(&a, &b);
        a.spawn(async {
            let socket = UdpSocket::bind(0).unwrap();
            socket.send_to(b"x", "b:5").await.unwrap();
        })
        .await
        .unwrap();
        sleep(ms(10)).await.unwrap();
        let partitioned = net.link_stats(&a, &b);
        net.repair(&a, &b);
        a.spawn(async {
            let socket = UdpSocket::bind(0).unwrap();
            socket.send_to(b"x", "b:5").await.unwrap();
        })
        .await
        .unwrap();
        sleep(ms(10)).await.unwrap();
        (partitioned, net.link_stats(&a, &b))
    });
    assert_eq!(
        (partitioned.sent, partitioned.dropped, partitioned.held),
        (1, 1, 0)
    );
    assert_eq!(
        (unbound.sent, unbound.dropped, unbound.delivered),
        (2, 2, 0)
    );
}

#[test]
fn a_cancelled_recv_takes_no_datagram() {
    let got = run(28, || async {
        let net = Net::new();
        let (a, b) = (net.host("a"), net.host("b"));
        let server = b.spawn(async {
            let socket = Rc::new(UdpSocket::bind(5).unwrap());
            sleep(ms(10)).await.unwrap();
            let receiver = socket.clone();
            let cancelled = spawn(async move {
                treeloop::cancelled().await;
                let mut buf = [0; 4];
                receiver.recv_from(&mut buf).await
            });
            cancelled.cancel();
            assert!(Cancelled::from_io(&cancelled.await.unwrap().unwrap_err()).is_some());
            let mut buf = [0; 4];
            let (n, _) = socket.recv_from(&mut buf).await.unwrap();
            buf[..n].to_vec()
        });
        a.spawn(async {
            let socket = UdpSocket::bind(0).unwrap();
            socket.send_to(b"kept", "b:5").await.unwrap();
        });
        server.await.unwrap()
    });
    assert_eq!(got, b"kept");
}

// ---------------------------------------------------------------------------------------
// Observability and replay
// ---------------------------------------------------------------------------------------

/// `(event, protocol, payload, from, to)` of each message, without the instants.
fn shapes(messages: &[Message]) -> Vec<(Event, Protocol, Payload, String, String)> {
    messages
        .iter()
        .map(|m| {
            (
                m.event,
                m.protocol,
                m.payload,
                m.from.to_string(),
                m.to.to_string(),
            )
        })
        .collect()
}

#[test]
fn each_host_records_the_messages_it_sent_and_received() {
    let (a_log, b_log, at) = run(29, || async {
        let net = Net::new();
        let (a, b) = (net.host("a"), net.host("b"));
        net.set_link(&a, &b, latency(2));
        b.spawn(async {
            let listener = TcpListener::bind(80)?;
            let (stream, _) = listener.accept().await?;
            read_to_end(&stream).await
        });
        let start = Instant::now();
        a.spawn(async {
            let stream = TcpStream::connect("b:80").await?;
            stream.write_all(b"hey").await?;
            stream.shutdown(Shutdown::Write)?;
            read_to_end(&stream).await
        })
        .await
        .unwrap()
        .unwrap();
        sleep(ms(10)).await.unwrap();
        let at: Vec<Duration> = net.last_messages(&b).iter().map(|m| m.at - start).collect();
        (net.last_messages(&a), net.last_messages(&b), at)
    });
    let (ca, sb) = ("10.0.0.1:49152".to_owned(), "10.0.0.2:80".to_owned());
    use Event::{Delivered, Sent};
    use Payload::{Data, Fin, Syn, SynAck};
    use Protocol::Tcp;
    assert_eq!(
        shapes(&a_log),
        [
            (Sent, Tcp, Syn, ca.clone(), sb.clone()),
            (Delivered, Tcp, SynAck, sb.clone(), ca.clone()),
            (Sent, Tcp, Data(3), ca.clone(), sb.clone()),
            (Sent, Tcp, Fin, ca.clone(), sb.clone()),
            (Delivered, Tcp, Fin, sb.clone(), ca.clone()),
        ]
    );
    assert_eq!(
        shapes(&b_log),
        [
            (Delivered, Tcp, Syn, ca.clone(), sb.clone()),
            (Sent, Tcp, SynAck, sb.clone(), ca.clone()),
            (Delivered, Tcp, Data(3), ca.clone(), sb.clone()),
            (Delivered, Tcp, Fin, ca.clone(), sb.clone()),
            (Sent, Tcp, Fin, sb.clone(), ca.clone()),
        ]
    );
    assert_eq!(at, [ms(2), ms(2), ms(6), ms(6), ms(6)]);
    assert_eq!(
        a_log[0].to_string(),
        format!(
            "{:?} tcp 10.0.0.1:49152 -> 10.0.0.2:80 SYN sent",
            a_log[0].at
        )
    );
}

#[test]
fn a_hosts_ring_keeps_only_its_last_messages() {
    let log = run(30, || async {
        let net = Net::new();
        net.set_message_limit(3);
        let (a, b) = (net.host("a"), net.host("b"));
        b.spawn(idle());
        a.spawn(async {
            let socket = UdpSocket::bind(0).unwrap();
            for n in 1..=5u8 {
                socket.send_to(&vec![0; n.into()], "b:9").await.unwrap();
            }
        })
        .await
        .unwrap();
        net.last_messages(&a)
    });
    let payloads: Vec<Payload> = log.iter().map(|m| m.payload).collect();
    assert_eq!(
        payloads,
        [Payload::Data(3), Payload::Data(4), Payload::Data(5)]
    );
}

#[test]
fn a_failing_run_reports_the_last_messages_of_each_host() {
    let reports = Rc::new(RefCell::new(Vec::new()));
    let sink = reports.clone();
    let runtime = Builder::new()
        .seed(31)
        .report_sink(move |report| sink.borrow_mut().push(report.to_string()))
        .build()
        .unwrap();
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async {
            let net = Net::new();
            let (a, b) = (net.host("a"), net.host("b"));
            b.spawn(echo_server(80));
            let answer = a
                .spawn(async {
                    let stream = TcpStream::connect("b:80").await?;
                    stream.write_all(b"42").await?;
                    let mut buf = [0; 2];
                    stream.read(&mut buf).await?;
                    io::Result::Ok(buf)
                })
                .await
                .unwrap()
                .unwrap();
            assert_eq!(&answer, b"43", "the planted failure");
        })
    }));
    assert!(failed.is_err());
    let reports = reports.borrow();
    let report = reports
        .iter()
        .find(|r| r.starts_with("treeloop::sim: the last messages of each host"))
        .expect("the net reported");
    assert!(report.contains("\n  a (10.0.0.1):\n"), "{report}");
    assert!(
        report.contains("10.0.0.1:49152 -> 10.0.0.2:80 SYN sent"),
        "{report}"
    );
    assert!(
        report.contains("10.0.0.2:80 -> 10.0.0.1:49152 2 bytes delivered"),
        "{report}"
    );
}

/// A small jittery exchange: the message log of both hosts, with instants.
fn exchange(seed: u64) -> (Vec<Message>, Vec<Message>, u64) {
    let runtime = Builder::new().seed(seed).build().unwrap();
    let logs = runtime.block_on(async {
        let net = Net::new();
        let (a, b) = (net.host("a"), net.host("b"));
        net.set_default_link(Link {
            jitter: ms(5),
            ..Link::default()
        });
        b.spawn(echo_server(80));
        for _ in 0..3 {
            a.spawn(async {
                let stream = TcpStream::connect("b:80").await?;
                for _ in 0..5 {
                    stream.write_all(b"abc").await?;
                    let mut buf = [0; 3];
                    stream.read(&mut buf).await?;
                }
                io::Result::Ok(())
            })
            .await
            .unwrap()
            .unwrap();
        }
        (net.last_messages(&a), net.last_messages(&b))
    });
    (logs.0, logs.1, runtime.trace().hash)
}

#[test]
fn a_seed_replays_the_same_messages_at_the_same_instants() {
    let first = exchange(32);
    assert_eq!(exchange(32), first);
    assert_ne!(exchange(33).0, first.0, "another seed draws other jitter");
}

// ---------------------------------------------------------------------------------------
// Scale (ignored: run with `cargo test --test sim_net -- --ignored --nocapture`)
// ---------------------------------------------------------------------------------------

/// 10 hosts (5 servers, 5 clients), 1,000 connections (200 per client host, spread over
/// the servers), each making `rounds` echo round trips of 16 bytes on jittery links; the
/// counters of all links (segments: SYN, SYN-ACK, data, FIN) and the wall time.
fn ten_hosts_thousand_connections(
    seed: u64,
    rounds: usize,
) -> (treeloop::sim::LinkStats, Duration) {
    let runtime = Builder::new().seed(seed).build().unwrap();
    let started = std::time::Instant::now();
    let delivered = runtime.block_on(async move {
        let net = Net::new();
        net.set_message_limit(0);
        net.set_default_link(Link {
            latency: ms(2),
            jitter: ms(1),
            ..Link::default()
        });
        for s in 0..5 {
            net.host(&format!("server{s}")).spawn(echo_server(80));
        }
        let mut clients = Vec::new();
        for c in 0..5 {
            clients.push(net.host(&format!("client{c}")).spawn(async move {
                let mut connections = Vec::new();
                for n in 0..200usize {
                    connections.push(spawn(async move {
                        let server = format!("server{}:80", (c + n) % 5);
                        let stream = TcpStream::connect(server).await?;
                        let mut buf = [0; 16];
                        for _ in 0..rounds {
                            stream.write_all(&[7; 16]).await?;
                            let mut got = 0;
                            while got < 16 {
                                got += stream.read(&mut buf[got..]).await?;
                            }
                        }
                        io::Result::Ok(())
                    }));
                }
                for connection in connections {
                    connection.await.unwrap().unwrap();
                }
            }));
        }
        for client in clients {
            client.await.unwrap();
        }
        // Let the last FINs land.
        sleep(ms(10)).await.unwrap();
        net.stats()
    });
    (delivered, started.elapsed())
}

#[test]
fn ten_hosts_and_a_thousand_connections_deliver_every_segment() {
    let (stats, _) = ten_hosts_thousand_connections(40, 3);
    // Per connection: SYN, SYN-ACK, 3 requests, 3 echoes and both FINs.
    assert_eq!(
        (stats.sent, stats.delivered, stats.dropped, stats.held),
        (10_000, 10_000, 0, 0)
    );
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn scale_messages_per_second_with_10_hosts_and_1000_connections() {
    let (stats, elapsed) = ten_hosts_thousand_connections(41, 100);
    let delivered = stats.delivered;
    let rate = delivered as f64 / elapsed.as_secs_f64();
    println!(
        "sim scale: {delivered} messages delivered in {elapsed:.2?} over 10 hosts and 1,000 \
         connections: {rate:.0} messages per second"
    );
    assert!(rate >= 100_000.0, "{rate:.0} messages per second");
}

// ---------------------------------------------------------------------------------------
// The examples
// ---------------------------------------------------------------------------------------

#[path = "../examples/sim_echo.rs"]
#[allow(dead_code)]
mod sim_echo;

#[path = "../examples/sim_partition.rs"]
#[allow(dead_code)]
mod sim_partition;

#[test]
fn the_echo_example_runs_the_same_code_on_loopback_tcp_and_on_the_simulation() {
    let real = sim_echo::on_loopback().unwrap();
    let (simulated, took) = sim_echo::on_sim(1).unwrap();
    assert_eq!(real, sim_echo::WORDS);
    assert_eq!(simulated, sim_echo::WORDS);
    // Connect (50 ms: SYN and SYN-ACK over 25 ms links), then three 50 ms round trips.
    assert_eq!(took, ms(200));
}

/// One seed of the register example, on its own runtime: the faults and the outcome.
fn register_run(seed: u64, ack: sim_partition::Ack) -> (sim_partition::Faults, Result<(), String>) {
    run(seed, || async move {
        let net = Net::new();
        sim_partition::run(&net, ack).await
    })
}

#[test]
fn the_planted_bug_loses_a_write_exactly_when_a_partition_is_followed_by_a_crash() {
    use sim_partition::Ack::{AfterLocalWrite, AfterMajority};
    let mut kinds = [0; 4];
    for seed in 0..100 {
        let (faults, outcome) = register_run(seed, AfterLocalWrite);
        kinds[usize::from(faults.partitioned) * 2 + usize::from(faults.crashed)] += 1;
        assert_eq!(
            outcome.is_err(),
            faults.partitioned && faults.crashed,
            "seed {seed}: {faults:?} {outcome:?}"
        );
        let (same_faults, fixed) = register_run(seed, AfterMajority);
        assert_eq!(
            same_faults, faults,
            "the faults follow the seed, not the variant"
        );
        assert_eq!(fixed, Ok(()), "seed {seed}");
    }
    assert!(
        kinds.iter().all(|&n| n > 10),
        "every combination ran: {kinds:?}"
    );
}

#[test]
fn check_finds_the_planted_bug_with_the_last_messages_and_the_fix_passes_1000_seeds() {
    use sim_partition::Ack::{AfterLocalWrite, AfterMajority};
    let reports = Rc::new(RefCell::new(Vec::<String>::new()));
    let sink = reports.clone();
    let builder = Builder::new().report_sink(move |r| sink.borrow_mut().push(r.to_string()));
    let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        treeloop::test::check_with(builder, 1_000, || sim_partition::checked(AfterLocalWrite));
    }));
    let payload = found.expect_err("check finds the bug");
    let message = payload.downcast_ref::<String>().unwrap();
    assert!(
        message.contains("the acknowledged write (2, 2) is lost"),
        "{message}"
    );
    let reports = reports.borrow();
    let report = reports
        .iter()
        .find(|r| r.starts_with("treeloop::sim: the last messages of each host"))
        .expect("the failing run reported the messages");
    assert!(report.contains("\n  r1 (10.0.0.1):"), "{report}");
    assert!(report.contains("SYN held"), "the partition shows: {report}");

    let start = std::time::Instant::now();
    let runs = Cell::new(0);
    treeloop::test::check(1_000, || {
        runs.set(runs.get() + 1);
        sim_partition::checked(AfterMajority)
    });
    let took = start.elapsed();
    assert_eq!(runs.get(), 1_000);
    println!("1,000 seeds of the 3-replica register (4 hosts) in {took:.2?}");
    assert!(took < Duration::from_secs(60), "{took:?}");
}

#[test]
fn the_trace_records_every_message_sent_and_delivered_per_link() {
    use treeloop::{LinkMessage, TraceEvent};
    let runtime = Builder::new().seed(3).build().expect("runtime");
    runtime.block_on(async {
        let net = Net::new();
        let (a, b) = (net.host("a"), net.host("b"));
        let server = b.spawn(async {
            let listener = TcpListener::bind(80)?;
            let (stream, _peer) = listener.accept().await?;
            let mut buf = [0; 5];
            let mut got = 0;
            while got < 5 {
                got += stream.read(&mut buf[got..]).await?;
            }
            io::Result::Ok(buf)
        });
        let client = a.spawn(async {
            let stream = TcpStream::connect("b:80").await?;
            stream.write_all(b"hello").await
        });
        client.await.unwrap().unwrap();
        assert_eq!(&server.await.unwrap().unwrap(), b"hello");
    });
    let messages: Vec<LinkMessage> = runtime
        .trace()
        .events
        .iter()
        .filter_map(|event| match event {
            TraceEvent::Message(message) => Some(*message),
            _ => None,
        })
        .collect();
    let message = |delivered, from, to, bytes| LinkMessage {
        delivered,
        from,
        to,
        bytes,
    };
    // The connect's round trip (control messages, 0 bytes) and the five bytes, each sent
    // before it is delivered; a is host 0, b host 1.
    let data_sent = messages.iter().position(|m| *m == message(false, 0, 1, 5));
    let data_delivered = messages.iter().position(|m| *m == message(true, 0, 1, 5));
    assert!(
        data_sent.is_some() && data_sent < data_delivered,
        "{messages:?}"
    );
    assert_eq!(
        messages[..4],
        [
            message(false, 0, 1, 0), // the SYN
            message(true, 0, 1, 0),
            message(false, 1, 0, 0), // the SYN-ACK, sent when the SYN arrived
            message(true, 1, 0, 0),
        ],
        "{messages:?}"
    );
    // Every delivery follows a send of its own kind on its link; what is still in flight
    // when the run ends (a last FIN) was sent and not delivered.
    for (i, m) in messages.iter().enumerate().filter(|(_, m)| m.delivered) {
        let before = &messages[..i];
        let sent = before.iter().filter(|s| {
            **s == LinkMessage {
                delivered: false,
                ..*m
            }
        });
        let delivered = before.iter().filter(|d| *d == m);
        assert!(sent.count() > delivered.count(), "{i}: {messages:?}");
    }
}

/// The variable that marks a child run of this file's tests.
const CHILD: &str = "TREELOOP_SIM_NET_CHILD";

/// Child: a checked body that sends five bytes over a simulated network, then fails by
/// returning `Err` (its `Net` is dropped by then).
#[test]
fn child_a_checked_body_that_returns_err() {
    if !child::is_child(CHILD) {
        return;
    }
    treeloop::test::check(1, || async {
        let net = Net::new();
        let (a, b) = (net.host("a"), net.host("b"));
        let server = b.spawn(async {
            let listener = TcpListener::bind(80)?;
            let (stream, _peer) = listener.accept().await?;
            let mut buf = [0; 5];
            let mut got = 0;
            while got < 5 {
                got += stream.read(&mut buf[got..]).await?;
            }
            io::Result::Ok(())
        });
        let client = a.spawn(async {
            let stream = TcpStream::connect("b:80").await?;
            stream.write_all(b"hello").await
        });
        client.await.unwrap().unwrap();
        server.await.unwrap().unwrap();
        Err::<(), _>("the register lost a write")
    });
}

#[test]
fn a_checked_body_that_fails_by_returning_err_reports_each_hosts_last_messages() {
    let run = child::rerun(
        "child_a_checked_body_that_returns_err",
        CHILD,
        false,
        &[("TREELOOP_SHRINK_RUNS", "0")],
    );
    assert!(!run.passed, "{}", run.stdout);
    let report = run.stderr;
    assert_eq!(
        report
            .matches("treeloop::sim: the last messages of each host")
            .count(),
        1,
        "{report}"
    );
    for line in [
        "  a (10.0.0.1):",
        "  b (10.0.0.2):",
        "5 bytes sent",
        "5 bytes delivered",
    ] {
        assert!(report.contains(line), "no {line:?} in:\n{report}");
    }
    assert!(
        run.stdout.contains("the register lost a write"),
        "{}",
        run.stdout
    );
}
