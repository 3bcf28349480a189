//! The TCP-like connections between simulated hosts: what the world does with them. It
//! sends a segment in order on its flow, ends, frees and resets connections, and takes a
//! segment that arrives.
//!
//! A SYN that reaches a listening port is queued in the listener's backlog (at most
//! [`BACKLOG`] connections) and answered with SYN-ACK; one that reaches a port nobody
//! listens on is answered with RST. Data and FIN join the flow towards their end; data for
//! an end that was dropped resets the connection, as TCP answers with RST. The records
//! (connections, their ends and flows, listeners) are `state.rs`'s; the pump (`pump.rs`)
//! hands each arriving segment to [`arrive`], and the sockets of `tcp.rs` call the rest.
//!
//! Invariants:
//! - A flow's segments arrive in the order they were sent: each arrives no earlier than
//!   the one before it, whatever the jitter (equal arrivals keep send order).
//! - A writer may have at most [`WINDOW`](super::state::WINDOW) bytes of a flow unread (in
//!   flight plus arrived); a read frees room at once (acknowledgements are not simulated).
//! - A reset (a crash of either host, bytes sent to an end that was dropped, a listener
//!   dropped with the connection still queued) is seen by both ends at their next
//!   operation, before any byte still buffered, and drops what is in flight.
//! - A connection stays in the world until both ends went and none of its segments is in
//!   flight, so a segment never finds its slot reused (identities are checked anyway).

use super::state::{CLIENT, ConnRef, Handshake, HostId, SERVER, Segment};
use super::world::{Cargo, Flight, World};
use crate::clock::Instant;

/// Most connections a listener queues before refusing.
const BACKLOG: usize = 1024;

impl World {
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
