//! Links: what a message meets between two hosts, and the generator that draws its faults.
//!
//! A link is one direction, `from -> to`, created on first use from the net's default
//! [`Link`]; [`Net::set_link`](super::Net::set_link) and the partition and hold switches set
//! both directions of a pair at once. Its state is the configuration, the two switches,
//! when its wire is free again (bandwidth), the messages it holds, and its counters.
//!
//! Invariants: a held message leaves only through `release`/`repair`, in the order it was
//! held; every random draw comes from the net's [`Rng`], seeded once, in the order the
//! program sends, so a seed replays the same faults.

use std::collections::VecDeque;
use std::time::Duration;

use treeloop_executor::SplitMix64;

use crate::clock::Instant;

/// What a link does to the messages that cross it, on virtual time.
///
/// ```
/// use std::time::Duration;
/// use treeloop::sim::Link;
///
/// let slow = Link {
///     latency: Duration::from_millis(50),
///     jitter: Duration::from_millis(10),
///     loss: 0.1,
///     ..Link::default()
/// };
/// assert_eq!(slow.duplicate, 0.0);
/// assert_eq!(Link::default().latency, Duration::from_millis(1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Link {
    /// Time from leaving the sender to arriving at the receiver (1 ms by default).
    pub latency: Duration,
    /// A uniform random extra delay in `0..=jitter`, drawn per message. A TCP-like
    /// connection never lets it reorder its bytes (a segment waits for the one before it);
    /// datagrams are reordered when it exceeds the gap between two sends.
    pub jitter: Duration,
    /// Probability that a datagram is lost (0.0 to 1.0). TCP-like streams are reliable:
    /// they are delayed by holds and partitions, never lose bytes.
    pub loss: f64,
    /// Probability that a datagram is delivered twice (the copy with its own jitter).
    pub duplicate: f64,
    /// Bytes per virtual second the link carries; `None` for no limit. A message of `n`
    /// bytes occupies the link for `n / bandwidth` seconds, after those sent before it.
    pub bandwidth: Option<u64>,
}

impl Default for Link {
    fn default() -> Self {
        Link {
            latency: Duration::from_millis(1),
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            bandwidth: None,
        }
    }
}

/// How many messages a link has seen, by what became of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Messages put on the link (a duplicated datagram counts once).
    pub sent: u64,
    /// Messages that reached the receiving host (a duplicate counts again).
    pub delivered: u64,
    /// Datagrams lost, or dropped by a partition.
    pub dropped: u64,
    /// Messages that arrived while the link was held or partitioned (delivered later, on
    /// `release` or `repair`, unless their connection was reset meanwhile).
    pub held: u64,
}

/// One direction of a link between two hosts.
#[derive(Debug)]
pub(crate) struct LinkState<M> {
    /// What it does to messages.
    pub(crate) config: Link,
    /// `partition(a, b)`: stream segments wait, datagrams are dropped, until `repair`.
    pub(crate) partitioned: bool,
    /// `hold(a, b)`: every message waits until `release`.
    pub(crate) held: bool,
    /// When the wire is free for the next message (bandwidth limit).
    pub(crate) busy_until: Option<Instant>,
    /// Messages that arrived while held or partitioned, oldest first.
    pub(crate) waiting: VecDeque<M>,
    /// Counters.
    pub(crate) stats: LinkStats,
}

impl<M> LinkState<M> {
    pub(crate) fn new(config: Link) -> Self {
        LinkState {
            config,
            partitioned: false,
            held: false,
            busy_until: None,
            waiting: VecDeque::new(),
            stats: LinkStats::default(),
        }
    }

    /// When a message of `len` bytes sent `now` arrives, before holds: it waits for the
    /// wire (bandwidth), then travels `latency` plus a jitter drawn from `rng`.
    pub(crate) fn arrival(&mut self, now: Instant, len: usize, rng: &mut Rng) -> Instant {
        let mut departs = now;
        if let Some(bandwidth) = self.config.bandwidth.filter(|&b| b > 0) {
            departs = departs.max(self.busy_until.unwrap_or(now));
            let nanos = (len as u128 * 1_000_000_000).div_ceil(u128::from(bandwidth));
            departs += Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
            self.busy_until = Some(departs);
        }
        departs + self.config.latency + rng.duration_up_to(self.config.jitter)
    }
}

/// The net's own generator (the runtime's SplitMix64), so its faults depend on its seed and
/// on nothing the scheduler draws.
#[derive(Clone, Debug)]
pub(crate) struct Rng(SplitMix64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(SplitMix64::new(seed))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// `true` with probability `p` (no draw when `p` is 0 or 1, so a fault-free link costs
    /// nothing and leaves the sequence alone).
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        if p >= 1.0 {
            return true;
        }
        // The top 53 bits as a float in [0, 1).
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// A uniform duration in `0..=max` (no draw for zero).
    pub(crate) fn duration_up_to(&mut self, max: Duration) -> Duration {
        let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.next_u64() % (nanos.saturating_add(1)).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_its_published_outputs() {
        // Seed 1234567, as in the reference implementation's test vector.
        let mut rng = Rng::new(1_234_567);
        assert_eq!(rng.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(rng.next_u64(), 3_203_168_211_198_807_973);
    }
}
