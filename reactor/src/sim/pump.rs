//! The pump: the task that delivers a simulated network's messages on virtual time, and
//! what a message meets at the far end of its link.
//!
//! The pump is a task in the net's region. It sleeps until the earliest arrival in the
//! world's heap, delivers everything due (at most [`PUMP_BATCH`] per poll, then it yields),
//! and sleeps again; a send that becomes the earliest wakes it. A delivery first asks the
//! link: held or partitioned, the message waits in the link, in order (a datagram on a
//! partition is dropped), until `release`/`repair` lets the link's queue through
//! ([`World::flush`]); otherwise the receiving socket takes it (`conn.rs` for a stream
//! segment, `udp.rs` for a datagram) or nothing does, and it counts as dropped.
//!
//! Ground rules: every arrival and every delivery is recorded on the receiving host's ring,
//! and every delivery in the runtime's trace, before the socket takes it (a SYN-ACK is sent
//! while its SYN is delivered); the record is corrected to `Dropped` if nothing took it.
//! The world is borrowed for one batch, and the wakers found are woken after it
//! ([`with`]).

use std::cell::RefCell;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::Poll;

use super::conn;
use super::record::Event;
use super::state::HostId;
use super::udp;
use super::world::{Cargo, Flight, World, trace, with};
use crate::clock::Instant;
use crate::timer::Timer;

/// How many deliveries the pump makes per poll before letting other tasks run.
const PUMP_BATCH: usize = 256;

impl World {
    /// A message has reached the far end of its link: held, dropped, or delivered.
    fn arrive(&mut self, flight: Flight) {
        let link = self.link(flight.from_host, flight.to_host);
        let partitioned = link.partitioned;
        if link.held || partitioned {
            if partitioned && matches!(flight.cargo, Cargo::Udp(_)) {
                link.stats.dropped += 1;
                self.record(flight.to_host, Event::Dropped, &flight);
                return;
            }
            link.stats.held += 1;
            self.record(flight.to_host, Event::Held, &flight);
            self.link(flight.from_host, flight.to_host)
                .waiting
                .push_back(flight);
            return;
        }
        self.deliver(flight);
    }

    /// Hands `flight` to its socket (a link let it through).
    pub(crate) fn deliver(&mut self, flight: Flight) {
        let (from_host, to_host) = (flight.from_host, flight.to_host);
        // Recorded before the hand-over, which may answer (a SYN-ACK is sent after its
        // SYN arrived), and corrected if nothing took it.
        let number = self.record(to_host, Event::Delivered, &flight);
        // In the trace a delivery is the link's: it reached the far end, taken or not.
        trace(&flight, true);
        if self.hand_over(&flight) {
            self.link(from_host, to_host).stats.delivered += 1;
        } else {
            self.link(from_host, to_host).stats.dropped += 1;
            self.hosts[to_host].ring.set_event(number, Event::Dropped);
        }
    }

    /// Gives `flight`'s cargo to the socket it is for; `false` if nothing took it.
    fn hand_over(&mut self, flight: &Flight) -> bool {
        match &flight.cargo {
            Cargo::Tcp {
                conn,
                to_end,
                segment,
            } => conn::arrive(self, *conn, *to_end, segment),
            Cargo::Udp(data) => udp::arrive(self, flight, data),
        }
    }

    /// Lets the messages `from -> to` held by `hold` or `partition` through, in the order
    /// they arrived, if the link is neither held nor partitioned any more.
    pub(crate) fn flush(&mut self, from: HostId, to: HostId) {
        let link = self.link(from, to);
        if link.held || link.partitioned {
            return;
        }
        let waiting = std::mem::take(&mut link.waiting);
        for flight in waiting {
            self.deliver(flight);
        }
    }

    /// Delivers what is due; the next arrival after that.
    fn pump_due(&mut self, now: Instant) -> Step {
        for _ in 0..PUMP_BATCH {
            match self.flights.peek() {
                Some(top) if top.at <= now => {
                    let flight = self.flights.pop().expect("peeked");
                    self.arrive(flight);
                }
                Some(top) => return Step::Wait(Some(top.at)),
                None => return Step::Wait(None),
            }
        }
        Step::Yield
    }
}

/// What the pump does after a batch.
enum Step {
    /// Sleep until this arrival (or until a send, for `None`).
    Wait(Option<Instant>),
    /// More is due: let other tasks run first.
    Yield,
}

/// The pump: delivers messages as they arrive, until the `Net` is dropped.
///
/// It keeps a plain [`Timer`], not a cancellable sleep: a host being shut down gracefully
/// (its region cancelled) still needs its last bytes and FINs carried.
pub(crate) async fn pump(world: Rc<RefCell<World>>) {
    let mut timer: Option<Timer> = None;
    poll_fn(|cx| {
        loop {
            let now = Instant::now();
            let step = with(&world, |world| {
                if world.closed {
                    return None;
                }
                let step = world.pump_due(now);
                if let Step::Wait(deadline) = step {
                    world.pump = Some(cx.waker().clone());
                    world.pump_deadline = deadline;
                }
                Some(step)
            });
            match step {
                None => return Poll::Ready(()),
                Some(Step::Yield) => {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Some(Step::Wait(None)) => return Poll::Pending,
                Some(Step::Wait(Some(deadline))) => {
                    let timer = timer.get_or_insert_with(|| Timer::at(deadline));
                    if timer.deadline() != deadline {
                        timer.reset(deadline);
                    }
                    if timer.poll_expired(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
            }
        }
    })
    .await;
}
