//! UDP-like datagrams between simulated hosts: [`UdpSocket`], with the shapes of
//! `treeloop::net::UdpSocket`'s `bind`/`send_to`/`recv_from`.
//!
//! A datagram meets its link's faults: it is lost with probability `loss`, delivered twice
//! with probability `duplicate`, delayed by `latency` plus its own jitter (so two datagrams
//! are reordered when the jitter exceeds the gap between their sends), dropped by a
//! partition, kept by a hold until the release. One that finds no socket bound on its port,
//! or a full receive queue, is dropped, as UDP does.
//!
//! Invariants: a datagram is delivered whole or not at all; a `recv_from` into a smaller
//! buffer takes the datagram and truncates it (as `recvfrom` does); a cancelled
//! `recv_from` takes nothing and a cancelled `send_to` sends nothing (R7).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::Poll;

use super::duplex::await_point;
use super::host::{ToSimAddr, expect_here};
use super::record::Event;
use super::state::{HostId, UdpState};
use super::world::{self, Cargo, Flight, World};
use crate::clock::Instant;

/// Most datagrams a socket queues unread before dropping new ones.
const QUEUE: usize = 1024;

/// A datagram reached its host: queue it on the socket bound to its port.
pub(crate) fn arrive(world: &mut World, flight: &Flight, data: &[u8]) -> bool {
    let host = &world.hosts[flight.to_host];
    let Some(&key) = host.udp_ports.get(&flight.to.port()) else {
        return false;
    };
    let socket = &mut world.udp[key];
    if socket.queue.len() >= QUEUE {
        return false;
    }
    socket.queue.push_back((data.to_vec(), flight.from));
    let waker = socket.waker.take();
    world.to_wake.extend(waker);
    true
}

impl World {
    /// Closes every socket of a crashed host.
    pub(crate) fn close_udp(&mut self, host: HostId) {
        let ports = std::mem::take(&mut self.hosts[host].udp_ports);
        for key in ports.into_values() {
            let socket = &mut self.udp[key];
            socket.closed = true;
            socket.queue.clear();
            let waker = socket.waker.take();
            self.to_wake.extend(waker);
        }
    }
}

/// A UDP-like socket on a simulated host.
pub struct UdpSocket {
    /// The network.
    world: Rc<RefCell<World>>,
    /// Its slab key.
    key: usize,
    /// Its host.
    host: HostId,
    /// Where it is bound.
    local: SocketAddr,
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sim::UdpSocket({})", self.local)
    }
}

impl UdpSocket {
    /// Binds `port` of the host whose task calls it (0: a free ephemeral port).
    ///
    /// # Errors
    ///
    /// `AddrInUse` if another socket has the port.
    ///
    /// # Panics
    ///
    /// Outside a sim host's task subtree.
    #[track_caller]
    pub fn bind(port: u16) -> io::Result<UdpSocket> {
        let here = expect_here("sim::UdpSocket::bind");
        let mut world = here.world.borrow_mut();
        let host = &mut world.hosts[here.host];
        let port = match port {
            0 => host.ephemeral_port(|host, port| host.udp_ports.contains_key(&port)),
            port if host.udp_ports.contains_key(&port) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("UDP port {port} of sim host {:?} is in use", host.name),
                ));
            }
            port => port,
        };
        let local = SocketAddr::new(host.ip, port);
        let key = world.udp.insert(UdpState {
            host: here.host,
            queue: VecDeque::new(),
            waker: None,
            closed: false,
        });
        world.hosts[here.host].udp_ports.insert(port, key);
        drop(world);
        Ok(UdpSocket {
            world: here.world,
            key,
            host: here.host,
            local,
        })
    }

    /// Where it is bound.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    /// Sends `buf` as one datagram to `target` (`"b:53"`, a `SocketAddr`); `Ok(len)` once
    /// it left, whatever becomes of it (lost, duplicated, held, nobody bound).
    ///
    /// # Errors
    ///
    /// `NotFound`/`HostUnreachable` for an unknown host, `ConnectionReset` once this
    /// socket's host crashed, the `io::Error` wrapping `Cancelled` in a cancelled region
    /// (nothing sent).
    pub async fn send_to(&self, buf: &[u8], target: impl ToSimAddr) -> io::Result<usize> {
        let target = target.to_sim_addr()?;
        poll_fn(|cx| {
            await_point(cx, |_| {
                Poll::Ready(world::with(&self.world, |world| {
                    if world.udp[self.key].closed {
                        return Err(io::ErrorKind::ConnectionReset.into());
                    }
                    let (to_host, to) = world.resolve(&target.0, target.1)?;
                    self.send_in(world, to_host, to, buf);
                    Ok(buf.len())
                }))
            })
        })
        .await
    }

    /// Puts the datagram (and its duplicate, unless lost) on the link.
    fn send_in(&self, world: &mut World, to_host: HostId, to: SocketAddr, buf: &[u8]) {
        let flight = |data: Vec<u8>| Flight {
            at: Instant::now(),
            seq: 0,
            from_host: self.host,
            to_host,
            from: self.local,
            to,
            cargo: Cargo::Udp(data),
        };
        let config = world.link(self.host, to_host).config;
        if world.rng.chance(config.loss) {
            let lost = flight(buf.to_vec());
            world.link(self.host, to_host).stats.sent += 1;
            world.link(self.host, to_host).stats.dropped += 1;
            world.record(self.host, Event::Sent, &lost);
            world.record(to_host, Event::Dropped, &lost);
            return;
        }
        let twice = world.rng.chance(config.duplicate);
        world.send(flight(buf.to_vec()), None);
        if twice {
            // The network's copy: its own jitter, no second turn on the wire.
            let mut copy = flight(buf.to_vec());
            copy.at = Instant::now() + config.latency + world.rng.duration_up_to(config.jitter);
            world.enqueue(copy);
        }
    }

    /// Waits for a datagram and takes it: its length (truncated to `buf`) and sender. A
    /// cancelled receive takes nothing.
    ///
    /// # Errors
    ///
    /// `ConnectionReset` once this socket's host crashed; the `io::Error` wrapping
    /// `Cancelled` in a cancelled region.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        poll_fn(|cx| {
            await_point(cx, |cx| {
                let mut world = self.world.borrow_mut();
                let socket = &mut world.udp[self.key];
                if socket.closed {
                    return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
                }
                match socket.queue.pop_front() {
                    Some((data, from)) => {
                        let n = data.len().min(buf.len());
                        buf[..n].copy_from_slice(&data[..n]);
                        Poll::Ready(Ok((n, from)))
                    }
                    None => {
                        socket.waker = Some(cx.waker().clone());
                        Poll::Pending
                    }
                }
            })
        })
        .await
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        let mut world = self.world.borrow_mut();
        let socket = world.udp.remove(self.key);
        let ports = &mut world.hosts[socket.host].udp_ports;
        if ports.get(&self.local.port()) == Some(&self.key) {
            ports.remove(&self.local.port());
        }
    }
}
