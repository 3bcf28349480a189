//! The state of the TCP-like connections between simulated hosts, and what a segment does
//! when it arrives.
//!
//! A connection has two ends (0: the client, 1: the server) and a flow towards each: the
//! bytes that arrived and wait to be read, the count still in flight, and whether the FIN
//! arrived. A SYN that reaches a listening port is queued in the listener's backlog and
//! answered with SYN-ACK; one that reaches a port nobody listens on is answered with RST.
//!
//! Invariants:
//! - A flow's segments arrive in the order they were sent: each arrives no earlier than
//!   the one before it, whatever the jitter (equal arrivals keep send order).
//! - A writer may have at most [`WINDOW`] bytes of a flow unread (in flight plus
//!   arrived); a read frees room at once (acknowledgements are not simulated).
//! - A reset (a crash of either host, bytes sent to an end that was dropped, a listener
//!   dropped with the connection still queued) is seen by both ends at their next
//!   operation, before any byte still buffered, and drops what is in flight.
//! - A connection stays in the world until both ends went and none of its segments is in
//!   flight, so a segment never finds its slot reused (identities are checked anyway).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::task::Waker;

use super::record::Payload;
use super::world::{Cargo, Flight, HostId, World};
use crate::clock::Instant;

/// Most bytes of one direction of a connection that may be unread.
pub const WINDOW: usize = 64 * 1024;

/// The client end of a connection.
pub(crate) const CLIENT: usize = 0;
/// The server end.
pub(crate) const SERVER: usize = 1;

/// A connection in the world's slab: its key and its never-reused identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConnRef {
    /// The slab key.
    pub(crate) key: usize,
    /// Who was there.
    pub(crate) id: u64,
}

/// A stream segment.
#[derive(Debug)]
pub(crate) enum Segment {
    /// Connect.
    Syn,
    /// Connected.
    SynAck,
    /// Nobody listens.
    Rst,
    /// Bytes.
    Data(Vec<u8>),
    /// End of stream.
    Fin,
}

impl Segment {
    pub(crate) fn payload(&self) -> Payload {
        match self {
            Segment::Syn => Payload::Syn,
            Segment::SynAck => Payload::SynAck,
            Segment::Rst => Payload::Rst,
            Segment::Data(bytes) => Payload::Data(bytes.len()),
            Segment::Fin => Payload::Fin,
        }
    }
}

/// Where a connection is in its handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Handshake {
    /// The SYN is out.
    Connecting,
    /// The SYN-ACK arrived at the client.
    Established,
    /// An RST answered the SYN.
    Refused,
}

/// One end of a connection.
#[derive(Debug)]
pub(crate) struct End {
    /// Its host.
    pub(crate) host: HostId,
    /// Its socket address.
    pub(crate) addr: SocketAddr,
    /// Its stream was dropped (or never existed: a refused or unaccepted connection).
    pub(crate) dropped: bool,
    /// `shutdown(Read)`: reads see end of stream, arriving bytes are discarded.
    pub(crate) read_shut: bool,
    /// `shutdown(Write)` (or a drop): the FIN is sent, writes fail.
    pub(crate) write_shut: bool,
}

/// The bytes travelling towards one end.
#[derive(Debug, Default)]
pub(crate) struct Flow {
    /// Arrived, not yet read.
    pub(crate) arrived: VecDeque<u8>,
    /// Sent, not yet arrived.
    pub(crate) in_flight: usize,
    /// The FIN arrived.
    pub(crate) fin: bool,
    /// When the last segment sent on this flow arrives (the next one arrives no earlier).
    pub(crate) last_arrival: Option<Instant>,
    /// The end's reader, waiting for bytes.
    pub(crate) read_waker: Option<Waker>,
    /// The other end's writer, waiting for room.
    pub(crate) write_waker: Option<Waker>,
}

/// A connection.
#[derive(Debug)]
pub(crate) struct Conn {
    /// Its identity.
    pub(crate) id: u64,
    /// Client and server.
    pub(crate) ends: [End; 2],
    /// Towards the client, towards the server.
    pub(crate) flows: [Flow; 2],
    /// The handshake.
    pub(crate) handshake: Handshake,
    /// Reset: every operation of either end fails with `ConnectionReset`.
    pub(crate) reset: bool,
    /// The connecting task.
    pub(crate) connect_waker: Option<Waker>,
    /// Segments sent and not yet arrived: the connection stays until they have (a FIN
    /// that reaches a closed end is delivered, as to a socket in TIME-WAIT).
    pub(crate) flights: usize,
}

impl Conn {
    /// Resets the connection and collects every waker to wake.
    pub(crate) fn reset(&mut self, wake: &mut Vec<Waker>) {
        self.reset = true;
        for flow in &mut self.flows {
            flow.arrived.clear();
            wake.extend(flow.read_waker.take());
            wake.extend(flow.write_waker.take());
        }
        wake.extend(self.connect_waker.take());
    }
}

/// A listener in the world's slab.
#[derive(Debug)]
pub(crate) struct ListenerState {
    /// Its host.
    pub(crate) host: HostId,
    /// Connections whose SYN arrived, oldest first.
    pub(crate) backlog: VecDeque<ConnRef>,
    /// Tasks waiting in `accept` (one waker per task).
    pub(crate) acceptors: Vec<Waker>,
    /// Its host crashed: accepts fail.
    pub(crate) closed: bool,
}

/// Most connections a listener queues before refusing.
const BACKLOG: usize = 1024;

impl World {
    pub(crate) fn conn(&mut self, conn: ConnRef) -> Option<&mut Conn> {
        self.conns.get_mut(conn.key).filter(|c| c.id == conn.id)
    }

    /// Sends `segment` from the other end of `conn` to `to_end`, in order on its flow.
    pub(crate) fn send_segment(&mut self, conn: ConnRef, to_end: usize, segment: Segment) {
        let Some(c) = self.conn(conn) else { return };
        let (from, to) = (&c.ends[1 - to_end], &c.ends[to_end]);
        let flight = Flight {
            at: Instant::now(),
            seq: 0,
            from_host: from.host,
            to_host: to.host,
            from: from.addr,
            to: to.addr,
            cargo: Cargo::Tcp {
                conn,
                to_end,
                segment,
            },
        };
        let not_before = c.flows[to_end].last_arrival;
        c.flights += 1;
        let at = self.send(flight, not_before);
        if let Some(c) = self.conn(conn) {
            c.flows[to_end].last_arrival = Some(at);
        }
    }

    /// Ends `end` of `conn` (its stream went): sends the FIN if it was not sent, and frees
    /// the connection once both ends went and nothing is in flight.
    pub(crate) fn drop_end(&mut self, conn: ConnRef, end: usize) {
        let Some(c) = self.conn(conn) else { return };
        c.ends[end].dropped = true;
        let send_fin = !c.reset && !c.ends[end].write_shut;
        c.ends[end].write_shut = true;
        if send_fin && c.handshake != Handshake::Refused {
            self.send_segment(conn, 1 - end, Segment::Fin);
        }
        self.free_if_done(conn);
    }

    /// Removes `conn` if both ends went and no segment of it is in flight.
    fn free_if_done(&mut self, conn: ConnRef) {
        if let Some(c) = self.conn(conn) {
            if c.flights == 0 && c.ends.iter().all(|e| e.dropped) {
                self.conns.remove(conn.key);
            }
        }
    }

    /// Resets every connection with an end on `host` and closes its listeners: a crash.
    pub(crate) fn reset_host(&mut self, host: HostId) {
        let mut wake = Vec::new();
        for (_, conn) in self.conns.iter_mut() {
            if !conn.reset && conn.ends.iter().any(|end| end.host == host) {
                conn.reset(&mut wake);
            }
        }
        let ports = std::mem::take(&mut self.hosts[host].tcp_ports);
        for key in ports.into_values() {
            let listener = &mut self.listeners[key];
            listener.closed = true;
            wake.append(&mut listener.acceptors);
        }
        self.to_wake.append(&mut wake);
    }
}

/// A segment reached end `to_end` of `conn`; `false` if nobody took it.
pub(crate) fn arrive(world: &mut World, conn: ConnRef, to_end: usize, segment: &Segment) -> bool {
    let Some(c) = world.conn(conn) else {
        return false;
    };
    c.flights -= 1;
    let taken = !c.reset && take(world, conn, to_end, segment);
    world.free_if_done(conn);
    taken
}

/// [`arrive`] at a connection that was not reset.
fn take(world: &mut World, conn: ConnRef, to_end: usize, segment: &Segment) -> bool {
    let c = world.conn(conn).expect("looked up by arrive");
    match segment {
        Segment::Syn => {
            let server = &c.ends[SERVER];
            let (host, port) = (server.host, server.addr.port());
            let listener = world.hosts[host].tcp_ports.get(&port).copied();
            match listener.filter(|&key| world.listeners[key].backlog.len() < BACKLOG) {
                Some(key) => {
                    let listener = &mut world.listeners[key];
                    listener.backlog.push_back(conn);
                    world.to_wake.append(&mut listener.acceptors);
                    let c = world.conn(conn).expect("looked up above");
                    c.ends[SERVER].dropped = false;
                    world.send_segment(conn, CLIENT, Segment::SynAck);
                }
                None => world.send_segment(conn, CLIENT, Segment::Rst),
            }
            true
        }
        Segment::SynAck | Segment::Rst => {
            c.handshake = match segment {
                Segment::SynAck => Handshake::Established,
                _ => Handshake::Refused,
            };
            let waker = c.connect_waker.take();
            world.to_wake.extend(waker);
            true
        }
        Segment::Data(bytes) => {
            let (end, flow) = (&c.ends[to_end], &mut c.flows[to_end]);
            flow.in_flight -= bytes.len();
            if end.dropped {
                // Bytes for a closed socket: TCP answers with RST.
                let mut wake = Vec::new();
                c.reset(&mut wake);
                world.to_wake.append(&mut wake);
                return false;
            }
            if end.read_shut {
                let waker = flow.write_waker.take();
                world.to_wake.extend(waker);
                return false;
            }
            flow.arrived.extend(bytes);
            let waker = flow.read_waker.take();
            world.to_wake.extend(waker);
            true
        }
        Segment::Fin => {
            let flow = &mut c.flows[to_end];
            flow.fin = true;
            let waker = flow.read_waker.take();
            world.to_wake.extend(waker);
            true
        }
    }
}
