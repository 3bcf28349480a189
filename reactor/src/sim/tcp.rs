//! TCP-like streams between simulated hosts: [`TcpListener`] and [`TcpStream`], with the
//! shapes of `treeloop::net`'s (the connections themselves are in `conn.rs`, their records
//! in `state.rs`).
//!
//! A `connect` sends a SYN and waits: the listener's host queues the connection and answers
//! SYN-ACK, or answers RST when nobody listens on the port (`ConnectionRefused`); a SYN held
//! by a partition makes the connect wait, and it fails with `TimedOut` after the net's
//! connect timeout (10 s by default) unless the partition is repaired first.
//!
//! Invariants: every operation is a treeloop await point that checks cancellation first: a
//! cancelled read consumes nothing, a cancelled write sends nothing, a cancelled accept
//! takes no connection, a connect cancelled before its SYN left sends nothing, and one
//! cancelled after resets the half-open connection.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};
use treeloop_executor::{coop, poll_cancelled};

use super::duplex::await_point;
use super::host::{ToSimAddr, expect_here};
use super::state::{
    CLIENT, Conn, ConnRef, End, Flow, Handshake, ListenerState, SERVER, Segment, WINDOW,
};
use super::world::{self, World};
use crate::clock::Instant;
use crate::net::stream::impl_stream_api;
use crate::timer::Timer;

/// A TCP-like listener on a simulated host; implements [`net::Listener`](crate::net::Listener).
pub struct TcpListener {
    /// The network.
    world: Rc<RefCell<World>>,
    /// Its slab key.
    key: usize,
    /// Where it listens.
    local: SocketAddr,
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sim::TcpListener({})", self.local)
    }
}

impl TcpListener {
    /// Listens on `port` of the host whose task calls it (0: a free ephemeral port).
    ///
    /// # Errors
    ///
    /// `AddrInUse` if another listener has the port.
    ///
    /// # Panics
    ///
    /// Outside a sim host's task subtree.
    #[track_caller]
    pub fn bind(port: u16) -> io::Result<TcpListener> {
        let here = expect_here("sim::TcpListener::bind");
        let mut world = here.world.borrow_mut();
        let host = &mut world.hosts[here.host];
        let port = match port {
            0 => host.ephemeral_port(|host, port| host.tcp_ports.contains_key(&port)),
            port if host.tcp_ports.contains_key(&port) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("port {port} of sim host {:?} is in use", host.name),
                ));
            }
            port => port,
        };
        let local = SocketAddr::new(host.ip, port);
        let key = world.listeners.insert(ListenerState {
            host: here.host,
            backlog: VecDeque::new(),
            acceptors: Vec::new(),
            closed: false,
        });
        world.hosts[here.host].tcp_ports.insert(port, key);
        drop(world);
        Ok(TcpListener {
            world: here.world,
            key,
            local,
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    /// Waits for a connection and takes the oldest queued. A cancelled accept takes
    /// nothing (R7).
    ///
    /// # Errors
    ///
    /// `ConnectionReset` once the host crashed; the `io::Error` wrapping `Cancelled` in a
    /// cancelled region.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        poll_fn(|cx| {
            if let Some(cancelled) = poll_cancelled(cx) {
                return cancelled.map(|cancelled| Err(cancelled.into()));
            }
            let mut world = self.world.borrow_mut();
            let listener = &mut world.listeners[self.key];
            if listener.closed {
                return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
            }
            if listener.backlog.is_empty() {
                if !listener.acceptors.iter().any(|w| w.will_wake(cx.waker())) {
                    listener.acceptors.push(cx.waker().clone());
                }
                return Poll::Pending;
            }
            if coop::poll_proceed(cx).is_pending() {
                return Poll::Pending;
            }
            let conn = listener.backlog.pop_front().expect("checked above");
            let c = world.conn(conn).expect("a queued connection is kept");
            let (local, peer) = (c.ends[SERVER].addr, c.ends[CLIENT].addr);
            let stream = TcpStream {
                world: self.world.clone(),
                conn,
                end: SERVER,
                local,
                peer,
            };
            Poll::Ready(Ok((stream, peer)))
        })
        .await
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        world::with(&self.world, |world| {
            let listener = world.listeners.remove(self.key);
            let host = &mut world.hosts[listener.host];
            if host.tcp_ports.get(&self.local.port()) == Some(&self.key) {
                host.tcp_ports.remove(&self.local.port());
            }
            for conn in listener.backlog {
                if let Some(c) = world.conn(conn) {
                    let mut wake = Vec::new();
                    c.reset(&mut wake);
                    world.to_wake.append(&mut wake);
                }
                world.drop_end(conn, SERVER);
            }
        });
    }
}

impl crate::net::Listener for TcpListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    fn accept(&self) -> impl Future<Output = io::Result<(Self::Io, Self::Addr)>> {
        TcpListener::accept(self)
    }
}

/// A TCP-like stream between simulated hosts, with the surface of
/// [`net::TcpStream`](crate::net::TcpStream): `read`/`write`/`write_all` through `&self`,
/// futures-io's traits, `shutdown(how)`, `into_split`, `peer_addr`/`local_addr`.
pub struct TcpStream {
    /// The network.
    world: Rc<RefCell<World>>,
    /// The connection.
    conn: ConnRef,
    /// Which end this is.
    end: usize,
    /// This end's address.
    local: SocketAddr,
    /// The other end's.
    peer: SocketAddr,
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sim::TcpStream({} -> {})", self.local, self.peer)
    }
}

impl_stream_api!(TcpStream);

/// Resets a connection whose connect did not finish (cancelled, failed, dropped).
struct Connecting {
    /// The network.
    world: Rc<RefCell<World>>,
    /// The connection.
    conn: ConnRef,
    /// Whether it became a stream.
    done: bool,
}

impl Drop for Connecting {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        world::with(&self.world, |world| {
            if let Some(c) = world.conn(self.conn) {
                let mut wake = Vec::new();
                c.reset(&mut wake);
                world.to_wake.append(&mut wake);
            }
            world.drop_end(self.conn, CLIENT);
        });
    }
}

impl TcpStream {
    /// Connects from the host whose task calls it to `addr` (`"b:80"`, `"10.0.0.2:80"`,
    /// a `SocketAddr`): a SYN travels to the host, which answers once its listener queued
    /// the connection.
    ///
    /// # Errors
    ///
    /// `ConnectionRefused` when nobody listens on the port (or the backlog is full),
    /// `TimedOut` when no answer came within the net's connect timeout (a partition),
    /// `ConnectionReset` when either host crashed meanwhile, `NotFound` or
    /// `HostUnreachable` for an unknown host, the `io::Error` wrapping `Cancelled` in a
    /// cancelled region (before the SYN: nothing is sent).
    ///
    /// # Panics
    ///
    /// Outside a sim host's task subtree.
    #[track_caller]
    pub fn connect(addr: impl ToSimAddr) -> impl Future<Output = io::Result<TcpStream>> {
        let here = expect_here("sim::TcpStream::connect");
        let target = addr.to_sim_addr();
        async move {
            crate::net::not_cancelled().await?;
            let target = target?;
            let (conn, deadline) = world::with(&here.world, |world| {
                let (server, peer) = world.resolve(&target.0, target.1)?;
                let host = &mut world.hosts[here.host];
                let port = host.ephemeral_port(|_, _| false);
                let local = SocketAddr::new(host.ip, port);
                let end = |host, addr| End {
                    host,
                    addr,
                    dropped: false,
                    read_shut: false,
                    write_shut: false,
                };
                let id = world.next_conn;
                world.next_conn += 1;
                let mut server_end = end(server, peer);
                // Until a listener queues it, nobody holds the server end.
                server_end.dropped = true;
                let key = world.conns.insert(Conn {
                    id,
                    ends: [end(here.host, local), server_end],
                    flows: [Flow::default(), Flow::default()],
                    handshake: Handshake::Connecting,
                    reset: false,
                    connect_waker: None,
                    flights: 0,
                });
                let conn = ConnRef { key, id };
                world.send_segment(conn, SERVER, Segment::Syn);
                io::Result::Ok((conn, Instant::now() + world.connect_timeout))
            })?;
            let mut pending = Connecting {
                world: here.world.clone(),
                conn,
                done: false,
            };
            let mut timer = Timer::at(deadline);
            poll_fn(|cx| {
                if let Some(cancelled) = poll_cancelled(cx) {
                    return cancelled.map(|cancelled| Err(cancelled.into()));
                }
                let mut world = here.world.borrow_mut();
                let Some(c) = world.conn(conn) else {
                    return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
                };
                if c.reset {
                    return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
                }
                match c.handshake {
                    Handshake::Established => {
                        Poll::Ready(Ok((c.ends[CLIENT].addr, c.ends[SERVER].addr)))
                    }
                    Handshake::Refused => Poll::Ready(Err(io::ErrorKind::ConnectionRefused.into())),
                    Handshake::Connecting => {
                        c.connect_waker = Some(cx.waker().clone());
                        drop(world);
                        match timer.poll_expired(cx) {
                            Poll::Ready(()) => Poll::Ready(Err(io::ErrorKind::TimedOut.into())),
                            Poll::Pending => Poll::Pending,
                        }
                    }
                }
            })
            .await
            .map(|(local, peer)| {
                pending.done = true;
                TcpStream {
                    world: here.world.clone(),
                    conn,
                    end: CLIENT,
                    local,
                    peer,
                }
            })
        }
    }

    /// The other end's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.peer)
    }

    /// This end's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    /// Shuts down the read, write, or both directions. `Shutdown::Write` sends a FIN after
    /// the bytes written before it: the peer reads end of stream once it has read them,
    /// and this end can still read. `Shutdown::Read`: this end reads end of stream, and
    /// bytes that arrive later are discarded (the peer's writes still succeed, as TCP's
    /// do).
    pub fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        use std::net::Shutdown;
        world::with(&self.world, |world| {
            let Some(c) = world.conn(self.conn) else {
                return Err(io::ErrorKind::NotConnected.into());
            };
            if c.reset {
                return Err(io::ErrorKind::ConnectionReset.into());
            }
            if matches!(how, Shutdown::Read | Shutdown::Both) {
                c.ends[self.end].read_shut = true;
                let flow = &mut c.flows[self.end];
                flow.arrived.clear();
                let waker = flow.write_waker.take();
                world.to_wake.extend(waker);
            }
            let c = world.conn(self.conn).expect("looked up above");
            if matches!(how, Shutdown::Write | Shutdown::Both) && !c.ends[self.end].write_shut {
                c.ends[self.end].write_shut = true;
                world.send_segment(self.conn, 1 - self.end, Segment::Fin);
            }
            Ok(())
        })
    }
}

impl AsyncRead for &TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        await_point(cx, |cx| {
            let (polled, wake) = {
                let mut world = self.world.borrow_mut();
                let Some(c) = world.conn(self.conn) else {
                    return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
                };
                if c.reset {
                    return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
                }
                if c.ends[self.end].read_shut {
                    return Poll::Ready(Ok(0));
                }
                let flow = &mut c.flows[self.end];
                if flow.arrived.is_empty() {
                    if flow.fin || buf.is_empty() {
                        return Poll::Ready(Ok(0));
                    }
                    flow.read_waker = Some(cx.waker().clone());
                    return Poll::Pending;
                }
                let n = buf.len().min(flow.arrived.len());
                for (slot, byte) in buf.iter_mut().zip(flow.arrived.drain(..n)) {
                    *slot = byte;
                }
                (Poll::Ready(Ok(n)), flow.write_waker.take())
            };
            // Release the borrow before waking: a waker may re-enter.
            if let Some(waker) = wake {
                waker.wake();
            }
            polled
        })
    }
}

impl AsyncWrite for &TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        await_point(cx, |cx| {
            world::with(&self.world, |world| {
                let Some(c) = world.conn(self.conn) else {
                    return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
                };
                if c.reset {
                    return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
                }
                if c.ends[self.end].write_shut {
                    return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
                }
                let peer = 1 - self.end;
                let flow = &mut c.flows[peer];
                let room = WINDOW - flow.arrived.len() - flow.in_flight;
                if buf.is_empty() {
                    return Poll::Ready(Ok(0));
                }
                if room == 0 {
                    flow.write_waker = Some(cx.waker().clone());
                    return Poll::Pending;
                }
                let n = room.min(buf.len());
                flow.in_flight += n;
                world.send_segment(self.conn, peer, Segment::Data(buf[..n].to_vec()));
                Poll::Ready(Ok(n))
            })
        })
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Half-closes: `shutdown(Shutdown::Write)`, so the peer reads end of stream. A
    /// connection already reset or gone has nothing left to close: that is success.
    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(match self.shutdown(std::net::Shutdown::Write) {
            Err(err) if err.kind() == io::ErrorKind::NotConnected => Ok(()),
            closed => closed,
        })
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        world::with(&self.world, |world| world.drop_end(self.conn, self.end));
    }
}
