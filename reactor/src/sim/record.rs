//! What the simulated network remembers of its messages: a bounded ring of the last
//! records per host, for tests to read and for the report of a failing run.
//!
//! Invariants: a host's ring holds at most its limit, oldest dropped first; a message is
//! recorded on the sender's ring when sent and on the receiver's when it arrives (or is
//! lost, held, dropped), each with the virtual time it happened, so the rings of one seed
//! are the same in every run.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;

use crate::clock::Instant;

/// The protocol a message belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// A TCP-like stream.
    Tcp,
    /// A UDP-like datagram.
    Udp,
}

/// What a message carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload {
    /// A connection request.
    Syn,
    /// The answer to a `Syn` that was queued by a listener.
    SynAck,
    /// A reset: the answer to a `Syn` nobody listens for, or to bytes for a closed end.
    Rst,
    /// Stream bytes, or a datagram, of this many bytes.
    Data(usize),
    /// End of stream (a half-close or a close).
    Fin,
}

/// What happened to a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// It left the sender.
    Sent,
    /// It reached the receiving host.
    Delivered,
    /// A held or partitioned link kept it (it may be delivered later).
    Held,
    /// It was lost (a datagram's `loss`, a partition, a reset connection, nobody bound).
    Dropped,
}

/// One thing that happened to one message, as [`Net::last_messages`](super::Net::last_messages)
/// returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message {
    /// When (virtual time).
    pub at: Instant,
    /// What happened.
    pub event: Event,
    /// Stream or datagram.
    pub protocol: Protocol,
    /// What it carries.
    pub payload: Payload,
    /// The sending socket.
    pub from: SocketAddr,
    /// The receiving socket.
    pub to: SocketAddr,
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let protocol = match self.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        let event = match self.event {
            Event::Sent => "sent",
            Event::Delivered => "delivered",
            Event::Held => "held",
            Event::Dropped => "dropped",
        };
        write!(f, "{:?} {protocol} {} -> {} ", self.at, self.from, self.to)?;
        match self.payload {
            Payload::Syn => f.write_str("SYN")?,
            Payload::SynAck => f.write_str("SYN-ACK")?,
            Payload::Rst => f.write_str("RST")?,
            Payload::Fin => f.write_str("FIN")?,
            Payload::Data(n) => write!(f, "{n} bytes")?,
        }
        write!(f, " {event}")
    }
}

/// The last messages of one host.
#[derive(Debug)]
pub(crate) struct Ring {
    /// Oldest first.
    messages: VecDeque<Message>,
    /// Most kept.
    limit: usize,
    /// Messages pushed so far (dropped ones included): the number of the next.
    pushed: u64,
}

impl Ring {
    pub(crate) fn new(limit: usize) -> Ring {
        Ring {
            messages: VecDeque::new(),
            limit,
            pushed: 0,
        }
    }

    /// Keeps `message` (dropping the oldest if full) and returns its number.
    pub(crate) fn push(&mut self, message: Message) -> u64 {
        let number = self.pushed;
        self.pushed += 1;
        if self.limit > 0 {
            if self.messages.len() == self.limit {
                self.messages.pop_front();
            }
            self.messages.push_back(message);
        }
        number
    }

    /// Changes what happened to message `number`, if it is still kept.
    pub(crate) fn set_event(&mut self, number: u64, event: Event) {
        let back = usize::try_from(self.pushed - number).unwrap_or(usize::MAX);
        if let Some(index) = self.messages.len().checked_sub(back) {
            self.messages[index].event = event;
        }
    }

    pub(crate) fn to_vec(&self) -> Vec<Message> {
        self.messages.iter().copied().collect()
    }

    pub(crate) fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
        while self.messages.len() > limit {
            self.messages.pop_front();
        }
    }
}
