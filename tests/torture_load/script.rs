//! The seeded script: a [`SplitMix64`] generator and every client slot's [`Script`] (its
//! rounds, then the state its last connection stays in), all written from one seed before the
//! runtime starts, so the test knows its exact counts up front.

use crate::{DISCONNECT_ONE_IN, MAX_ECHO, ROUNDS, SEED};

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, fixed-seed, good-enough generator.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `1..=n`.
    fn one_to(&mut self, n: usize) -> usize {
        1 + (self.next() % n as u64) as usize
    }
}

/// One scripted round of a client slot.
#[derive(Clone, Copy, Debug)]
pub enum Round {
    /// Echo `len` bytes generated from `seed`.
    Echo { len: usize, seed: u64 },
    /// Send an echo header and `sent` of its `len` payload bytes, then drop the socket.
    DropMidRequest { len: usize, sent: usize },
    /// Ask for [`RESPONSE`] bytes, read `read` of them, then drop the socket.
    DropMidResponse { read: usize },
}

/// Where a slot's last connection stays until the shutdown.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Last {
    /// Waits with nothing in flight.
    Idle,
    /// Half-closed: shut its write side, keeps reading.
    HalfClosed,
    /// Asked for a flood, read `prefix` bytes, stalls.
    SlowReader { prefix: usize },
}

/// One client slot's script.
pub struct Script {
    /// The rounds, in order.
    pub rounds: Vec<Round>,
    /// The last state.
    pub last: Last,
}

impl Script {
    pub fn disconnects(&self) -> usize {
        let drops = |r: &&Round| !matches!(r, Round::Echo { .. });
        self.rounds.iter().filter(drops).count()
    }
}

/// Every slot's script, from one seed.
pub fn scripts(slots: usize) -> Vec<Script> {
    let mut rng = SplitMix64(SEED);
    (0..slots)
        .map(|_| {
            let rounds = (0..ROUNDS)
                .map(|_| {
                    if rng.next() % DISCONNECT_ONE_IN != 0 {
                        Round::Echo {
                            len: rng.one_to(MAX_ECHO),
                            seed: rng.next(),
                        }
                    } else if rng.next() % 2 == 0 {
                        let len = 2 + rng.one_to(MAX_ECHO - 2);
                        Round::DropMidRequest {
                            len,
                            sent: rng.one_to(len - 1),
                        }
                    } else {
                        Round::DropMidResponse {
                            read: rng.one_to(8 * 1024),
                        }
                    }
                })
                .collect();
            // Few slow readers: each holds megabytes of kernel buffers until the cancel.
            let last = match rng.next() % 8 {
                0 => Last::SlowReader {
                    prefix: rng.one_to(64),
                },
                1 | 2 => Last::HalfClosed,
                _ => Last::Idle,
            };
            Script { rounds, last }
        })
        .collect()
}
