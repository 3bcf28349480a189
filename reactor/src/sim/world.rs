//! The state one simulated network shares: the [`World`] (hosts, links, connections,
//! listeners, sockets, and the messages in flight) and how a message is put in flight.
//!
//! A send computes the message's arrival (the link's bandwidth, latency and jitter) and
//! pushes it on a heap ordered by `(arrival, sequence)`, recording it on the sending host's
//! ring and in the runtime's trace. What happens at the far end (the link holds, drops or
//! delivers it; the socket takes it) and the pump task that delivers on time are
//! `pump.rs`'s.
//!
//! The records the world stores (hosts, connections, listeners, UDP-like sockets) are
//! `state.rs`'s. This file imports no file that works on the world (`pump.rs`, `conn.rs`,
//! `host.rs`, `tcp.rs`, `udp.rs`, `net.rs`): they all stand on it.
//!
//! Ground rules: the `World` is borrowed for one step at a time and never across user code
//! or an await; wakers found during a step are pushed on `to_wake` and woken once the
//! borrow is released ([`with`]). Equal arrivals are delivered in send order (the
//! sequence), so a seed replays the same deliveries.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::SocketAddr;
use std::task::Waker;
use std::time::Duration;

use slab::Slab;
use treeloop_executor::RegionHandle;

use super::link::{Link, LinkState, Rng};
use super::record::{Event, Message, Payload, Protocol};
use super::state::{Conn, ConnRef, HostId, HostState, ListenerState, Segment, UdpState};
use crate::clock::Instant;

/// What a message carries, by protocol.
#[derive(Debug)]
pub(crate) enum Cargo {
    /// A stream segment for end `to_end` of a connection.
    Tcp {
        /// The connection.
        conn: ConnRef,
        /// The end it travels to.
        to_end: usize,
        /// What it is.
        segment: Segment,
    },
    /// A datagram.
    Udp(Vec<u8>),
}

/// A message on its way.
#[derive(Debug)]
pub(crate) struct Flight {
    /// When it arrives at the far end of its link.
    pub(crate) at: Instant,
    /// Send order, to break ties.
    pub(crate) seq: u64,
    /// The sending host.
    pub(crate) from_host: HostId,
    /// The receiving host.
    pub(crate) to_host: HostId,
    /// The sending socket.
    pub(crate) from: SocketAddr,
    /// The receiving socket.
    pub(crate) to: SocketAddr,
    /// The message.
    pub(crate) cargo: Cargo,
}

impl Flight {
    fn protocol(&self) -> Protocol {
        match self.cargo {
            Cargo::Tcp { .. } => Protocol::Tcp,
            Cargo::Udp(_) => Protocol::Udp,
        }
    }

    fn payload(&self) -> Payload {
        match &self.cargo {
            Cargo::Tcp { segment, .. } => segment.payload(),
            Cargo::Udp(data) => Payload::Data(data.len()),
        }
    }

    fn len(&self) -> usize {
        match self.payload() {
            Payload::Data(n) => n,
            _ => 0,
        }
    }
}

/// Records `flight`'s send, or its delivery, in the runtime's trace.
pub(crate) fn trace(flight: &Flight, delivered: bool) {
    // Host numbers past 65,535 and sizes past the trace's limit are kept saturated.
    let host = |id: HostId| u16::try_from(id).unwrap_or(u16::MAX);
    treeloop_executor::trace_message(treeloop_executor::LinkMessage {
        delivered,
        from: host(flight.from_host),
        to: host(flight.to_host),
        bytes: u32::try_from(flight.len()).unwrap_or(u32::MAX),
    });
}

// A min-heap on (at, seq): `BinaryHeap` is a max-heap, so the order is reversed.
impl Ord for Flight {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl PartialOrd for Flight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Flight {
    fn eq(&self, other: &Self) -> bool {
        self.seq == other.seq
    }
}

impl Eq for Flight {}

/// Everything one simulated network holds.
pub(crate) struct World {
    /// Every random fault comes from here.
    pub(crate) rng: Rng,
    /// The hosts, by id (never removed).
    pub(crate) hosts: Vec<HostState>,
    /// What a link starts as.
    pub(crate) default_link: Link,
    /// Links by `(from, to)`, made on first use.
    pub(crate) links: BTreeMap<(HostId, HostId), LinkState<Flight>>,
    /// TCP-like connections.
    pub(crate) conns: Slab<Conn>,
    /// Identity of the next connection (slab keys are reused, identities are not).
    pub(crate) next_conn: u64,
    /// TCP-like listeners.
    pub(crate) listeners: Slab<ListenerState>,
    /// UDP-like sockets.
    pub(crate) udp: Slab<UdpState>,
    /// Messages in flight, earliest arrival on top.
    pub(crate) flights: BinaryHeap<Flight>,
    /// Messages sent so far (the next sequence number).
    pub(crate) seq: u64,
    /// The pump, while it waits.
    pub(crate) pump: Option<Waker>,
    /// When the pump's timer fires (`None`: it waits for a send).
    pub(crate) pump_deadline: Option<Instant>,
    /// Wakers to wake once the borrow is released.
    pub(crate) to_wake: Vec<Waker>,
    /// How long a connect waits for an answer before `TimedOut`.
    pub(crate) connect_timeout: Duration,
    /// How many messages each host's ring keeps.
    pub(crate) ring_limit: usize,
    /// The region every host's task (and the pump) runs in.
    pub(crate) region: RegionHandle,
    /// The `Net` was dropped: the pump stops.
    pub(crate) closed: bool,
}

/// Runs `f` on the world, then wakes what it found to wake (after the borrow is released:
/// a waker may re-enter).
pub(crate) fn with<R>(world: &RefCell<World>, f: impl FnOnce(&mut World) -> R) -> R {
    let (result, wake) = {
        let mut world = world.borrow_mut();
        let result = f(&mut world);
        (result, std::mem::take(&mut world.to_wake))
    };
    treeloop_executor::wake_all(wake);
    result
}

impl World {
    pub(crate) fn new(seed: u64, region: RegionHandle) -> World {
        World {
            rng: Rng::new(seed),
            hosts: Vec::new(),
            default_link: Link::default(),
            links: BTreeMap::new(),
            conns: Slab::new(),
            next_conn: 0,
            listeners: Slab::new(),
            udp: Slab::new(),
            flights: BinaryHeap::new(),
            seq: 0,
            pump: None,
            pump_deadline: None,
            to_wake: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            ring_limit: 64,
            region,
            closed: false,
        }
    }

    /// The link `from -> to`, made from the default if it is new.
    pub(crate) fn link(&mut self, from: HostId, to: HostId) -> &mut LinkState<Flight> {
        let default = self.default_link;
        self.links
            .entry((from, to))
            .or_insert_with(|| LinkState::new(default))
    }

    /// The connection `conn` names, if it is still the one there.
    pub(crate) fn conn(&mut self, conn: ConnRef) -> Option<&mut Conn> {
        self.conns.get_mut(conn.key).filter(|c| c.id == conn.id)
    }

    /// Records what happened to `flight` on `host`'s ring; returns its number there. A send
    /// also goes into the runtime's trace (and a delivery, in `World::deliver`, in `pump.rs`), so the
    /// trace hash covers the network.
    pub(crate) fn record(&mut self, host: HostId, event: Event, flight: &Flight) -> u64 {
        if event == Event::Sent {
            trace(flight, false);
        }
        let message = Message {
            at: Instant::now(),
            event,
            protocol: flight.protocol(),
            payload: flight.payload(),
            from: flight.from,
            to: flight.to,
        };
        self.hosts[host].ring.push(message)
    }

    /// Puts a message on the link `from_host -> to_host`, arriving no earlier than
    /// `not_before` (a stream's previous segment), and returns when it arrives.
    pub(crate) fn send(&mut self, mut flight: Flight, not_before: Option<Instant>) -> Instant {
        let now = Instant::now();
        let len = flight.len();
        let link = self
            .links
            .entry((flight.from_host, flight.to_host))
            .or_insert_with(|| LinkState::new(self.default_link));
        let mut at = link.arrival(now, len, &mut self.rng);
        link.stats.sent += 1;
        if let Some(previous) = not_before {
            at = at.max(previous);
        }
        flight.at = at;
        self.record(flight.from_host, Event::Sent, &flight);
        self.enqueue(flight);
        at
    }

    /// Puts `flight` (whose `at` is set) in flight, with the next sequence number.
    pub(crate) fn enqueue(&mut self, mut flight: Flight) {
        flight.seq = self.seq;
        self.seq += 1;
        if self
            .pump_deadline
            .is_none_or(|deadline| flight.at < deadline)
        {
            if let Some(pump) = self.pump.take() {
                self.to_wake.push(pump);
            }
        }
        self.flights.push(flight);
    }
}
