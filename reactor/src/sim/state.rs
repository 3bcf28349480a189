//! The records a simulated network's world keeps: of hosts ([`HostState`]), of TCP-like
//! connections and listeners ([`Conn`], [`ListenerState`]) and of UDP-like sockets
//! ([`UdpState`]). The world (`world.rs`) stores them and puts messages in flight; what
//! works on them is above it: `conn.rs` for connections, `udp.rs` for datagrams, `host.rs`
//! for hosts, `pump.rs` for what arrives. Of the sim, this file imports only the rings and
//! payloads of `record.rs`.
//!
//! A connection has two ends ([`CLIENT`], [`SERVER`]) and a [`Flow`] towards each: the
//! bytes that arrived and wait to be read, the count still in flight, and whether the FIN
//! arrived. The invariants that hold over these records are listed in `conn.rs`, which
//! keeps them.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::task::Waker;

use treeloop_executor::{JoinHandle, TaskId};

use super::record::{Payload, Ring};
use crate::clock::Instant;

/// A host's index in the world's `hosts`.
pub(crate) type HostId = usize;

/// The first port `bind(0)` and `connect` hand out.
const EPHEMERAL: u16 = 49_152;

/// A host's state in the world.
pub(crate) struct HostState {
    /// Its name (`net.host("a")`).
    pub(crate) name: String,
    /// Its address (10.0.0.1 for the first host, and so on).
    pub(crate) ip: IpAddr,
    /// The generation started last (0: never started).
    pub(crate) generation: u64,
    /// Its main task, while started and not crashed or shut down.
    pub(crate) running: Option<Running>,
    /// The next ephemeral port to try.
    pub(crate) next_port: u16,
    /// Bound TCP-like listeners by port (keys into `World::listeners`).
    pub(crate) tcp_ports: BTreeMap<u16, usize>,
    /// Bound UDP-like sockets by port (keys into `World::udp`).
    pub(crate) udp_ports: BTreeMap<u16, usize>,
    /// Its last messages.
    pub(crate) ring: Ring,
}

/// A started generation of a host.
pub(crate) struct Running {
    /// The main task; the net aborts it (a crash) or cancels and joins it (a shutdown,
    /// through a clone of the `Rc`, borrowed only inside a poll).
    pub(crate) handle: Rc<RefCell<JoinHandle<()>>>,
    /// The main task's id, its key in the registry.
    pub(crate) root: TaskId,
}

impl HostState {
    pub(crate) fn new(name: &str, index: usize, ring_limit: usize) -> HostState {
        let n = index + 1;
        let ip = IpAddr::from([10, (n >> 16) as u8, (n >> 8) as u8, n as u8]);
        HostState {
            name: name.to_owned(),
            ip,
            generation: 0,
            running: None,
            next_port: EPHEMERAL,
            tcp_ports: BTreeMap::new(),
            udp_ports: BTreeMap::new(),
            ring: Ring::new(ring_limit),
        }
    }

    /// A free ephemeral port (TCP and UDP share the counter, which only grows until it
    /// wraps back to the start of the range).
    pub(crate) fn ephemeral_port(&mut self, taken: impl Fn(&HostState, u16) -> bool) -> u16 {
        loop {
            let port = self.next_port;
            self.next_port = if port == u16::MAX {
                EPHEMERAL
            } else {
                port + 1
            };
            if !taken(self, port) {
                return port;
            }
        }
    }
}

/// A bound socket in the world's slab.
#[derive(Debug)]
pub(crate) struct UdpState {
    /// Its host.
    pub(crate) host: HostId,
    /// Datagrams that arrived, oldest first, with their senders.
    pub(crate) queue: VecDeque<(Vec<u8>, SocketAddr)>,
    /// The task waiting in `recv_from`.
    pub(crate) waker: Option<Waker>,
    /// Its host crashed.
    pub(crate) closed: bool,
}

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
