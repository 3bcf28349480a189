//! The trace: every scheduling decision of a run, and a stable 64-bit hash of it.
//!
//! # Ground rules
//!
//! - Recorded only when asked for (deterministic mode or `record_trace`): the FIFO hot path
//!   pays one branch.
//! - Events name tasks by their number *within the runtime* (spawn order), not by the
//!   process-wide id, so two runs of one program in one process compare equal.
//! - The hash folds a fixed encoding, a word at a time (see `Recorder`): stable across
//!   runs, builds and platforms. Nothing the program prints or logs enters it.
//! - Memory is bounded: the hash covers every event, but only the last [`EVENTS_KEPT`] are
//!   kept (a ring), with the count of all of them. Ten million polls used to keep ten
//!   million events (314 MB); the end of a run is what a failure report needs.
//! - **Which task is which.** A task number says when a task was created, not what it is:
//!   a body that spawns in `HashMap` order makes the same numbers run different code. So
//!   each task's spawn identity ([`TaskIdentity`]: spawn site, name, parent task) enters the
//!   hash when it is spawned (not as an event: the events and their count are unchanged),
//!   and the trace also keeps the *first* [`STEPS_KEPT`] events with the identity of every
//!   task spawned meanwhile, which is what finding the first divergence of two runs needs
//!   ([`Trace::first_divergence`]). Nothing of this exists unless tracing.

use std::collections::VecDeque;
use std::fmt;
use std::panic::Location;

use crate::spare;
use crate::tree::{Key, Tree};

/// How many of the latest events a trace keeps: 65,536 (1 MiB of events).
pub const EVENTS_KEPT: usize = 1 << 16;

/// How many of the *first* events a trace keeps to compare runs step by step, with the
/// identity of every task spawned during them: 65,536 (1 MiB of events, plus about 48 bytes
/// per task spawned in them).
pub const STEPS_KEPT: usize = 1 << 16;

/// One scheduling decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TraceEvent {
    /// The task with this number (spawn order within the runtime) was polled.
    Poll(u64),
    /// The `block_on` future was polled.
    PollRoot,
    /// The loop parked: time may have moved and timers or I/O may have woken tasks.
    Park,
    /// A message crossed a simulated link (`treeloop::sim::Net`): recorded by the simulator
    /// with [`trace_message`](crate::trace_message), so that two runs whose tasks agree but
    /// whose networks did not still differ, and a divergence can name the message.
    Message(LinkMessage),
}

/// A message on a simulated link, as the trace keeps it: which hosts, which way it went,
/// and its size. Packed into 62 bits in the trace (see `pack`): host numbers up to 65,535,
/// sizes up to 536,870,911 bytes (larger ones are kept as that).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinkMessage {
    /// `true` when it arrived at `to`; `false` when `from` sent it.
    pub delivered: bool,
    /// The sending host's number within its network.
    pub from: u16,
    /// The receiving host's number.
    pub to: u16,
    /// Its size in bytes (0 for a control message: a connect, a reset, an end of stream).
    pub bytes: u32,
}

/// The largest size a [`LinkMessage`] keeps.
const MESSAGE_BYTES_MAX: u32 = (1 << 29) - 1;

impl LinkMessage {
    /// The message in 62 bits: delivered (1), from (16), to (16), bytes (29).
    fn to_bits(self) -> u64 {
        (u64::from(self.delivered) << 61)
            | (u64::from(self.from) << 45)
            | (u64::from(self.to) << 29)
            | u64::from(self.bytes.min(MESSAGE_BYTES_MAX))
    }

    fn from_bits(bits: u64) -> LinkMessage {
        LinkMessage {
            delivered: (bits >> 61) & 1 == 1,
            from: (bits >> 45) as u16,
            to: (bits >> 29) as u16,
            bytes: (bits as u32) & MESSAGE_BYTES_MAX,
        }
    }
}

impl fmt::Display for LinkMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.delivered { "delivered" } else { "sent" };
        write!(
            f,
            "a message of {} bytes from host {} to host {} {what}",
            self.bytes, self.from, self.to
        )
    }
}

/// A run's decisions, as recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trace {
    /// The latest decisions, in order: all of them, or the last 65,536 (`EVENTS_KEPT`) of a
    /// longer run.
    pub events: Vec<TraceEvent>,
    /// How many decisions were recorded in all (more than `events.len()` once the ring
    /// dropped the oldest).
    pub recorded: u64,
    /// The hash of every event recorded, dropped ones included, and of every task's spawn
    /// identity.
    pub hash: u64,
    /// The first events: all of them, or the first 65,536 (`STEPS_KEPT`).
    pub first_steps: Vec<TraceEvent>,
    /// Who the tasks spawned during `first_steps` are, in spawn (hence number) order.
    pub tasks: Vec<TaskIdentity>,
}

/// What tells a task apart from another across runs of one program: where it was spawned,
/// its name, its parent, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskIdentity {
    /// Its number within the runtime (as in [`TraceEvent::Poll`] and dumps).
    pub number: u64,
    /// The name given with `task::Builder::name`, if any.
    pub name: Option<Box<str>>,
    /// Where it was spawned.
    pub location: &'static Location<'static>,
    /// The number of the task (or `block_on` root) it was spawned under; `None` if that was
    /// gone.
    pub parent: Option<u64>,
    /// The step (1-based index into the events) during which it was spawned; 0 before the
    /// first.
    pub step: u64,
}

impl TaskIdentity {
    /// The part that must be equal in two runs of a deterministic program.
    fn same_as(&self, other: &TaskIdentity) -> bool {
        self == other
    }

    /// What differs between `self` and `other`, for a report.
    fn differences(&self, other: &TaskIdentity) -> Vec<&'static str> {
        let mut differ = Vec::new();
        if self.location != other.location {
            differ.push("spawn site");
        }
        if self.name != other.name {
            differ.push("name");
        }
        if self.parent != other.parent {
            differ.push("parent");
        }
        if self.step != other.step {
            differ.push("step spawned in");
        }
        differ
    }
}

impl TaskIdentity {
    /// "task #4 "name" at file:line:column (parent #2)": the identity after "spawned".
    fn as_spawned(&self) -> String {
        let name = self
            .name
            .as_ref()
            .map(|name| format!(" {name:?}"))
            .unwrap_or_default();
        let parent = match self.parent {
            Some(parent) => format!("parent #{parent}"),
            None => "parent gone".to_owned(),
        };
        format!(
            "task #{}{name} at {} ({parent})",
            self.number, self.location
        )
    }
}

impl fmt::Display for TaskIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task #{}", self.number)?;
        if let Some(name) = &self.name {
            write!(f, " {name:?}")?;
        }
        write!(f, " spawned at {}", self.location)?;
        match self.parent {
            Some(parent) => write!(f, " (parent #{parent})"),
            None => f.write_str(" (parent gone)"),
        }
    }
}

/// Where two traces of one program part ways (see [`Trace::first_divergence`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Divergence {
    /// At this step (1-based) the two runs did different things: polled different tasks,
    /// polled tasks with different identities under one number, or one parked or ended.
    Step {
        /// The step.
        step: u64,
        /// What the first trace did there (`None`: it had ended).
        ours: Option<StepTaken>,
        /// What the second trace did there.
        theirs: Option<StepTaken>,
    },
    /// During this step (the same in both runs) the task numbered `ours.number` was spawned
    /// with a different identity (or by one run only).
    Spawn {
        /// The step.
        step: u64,
        /// What both runs did in that step (who was being polled).
        during: Option<StepTaken>,
        /// The task as the first trace spawned it (`None`: not spawned then).
        ours: Option<TaskIdentity>,
        /// The task as the second trace spawned it.
        theirs: Option<TaskIdentity>,
    },
    /// The first steps agree, and so does every identity kept, but the hashes differ: the
    /// runs part ways after the [`STEPS_KEPT`] first steps.
    Later {
        /// Steps compared one by one.
        compared: u64,
    },
}

/// One step of a trace, with the polled task's identity when the trace kept it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepTaken {
    /// The decision.
    pub event: TraceEvent,
    /// For a `Poll`: who the task is.
    pub task: Option<TaskIdentity>,
}

impl fmt::Display for StepTaken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.event, &self.task) {
            (TraceEvent::Poll(_), Some(task)) => write!(f, "polled {task}"),
            (TraceEvent::Poll(n), None) => write!(f, "polled task #{n}"),
            (TraceEvent::PollRoot, _) => f.write_str("polled the block_on future"),
            (TraceEvent::Park, _) => f.write_str("parked (nothing was runnable)"),
            (TraceEvent::Message(message), _) => write!(f, "recorded {message}"),
        }
    }
}

impl Divergence {
    /// The 1-based step where the runs part ways (for `Later`, the last step compared).
    pub fn step(&self) -> u64 {
        match self {
            Divergence::Step { step, .. } | Divergence::Spawn { step, .. } => *step,
            Divergence::Later { compared } => *compared,
        }
    }

    /// Describes the divergence with the two runs called `ours` and `theirs` ("run 1").
    pub fn describe(&self, ours: &str, theirs: &str) -> String {
        let show = |taken: &Option<StepTaken>| match taken {
            Some(taken) => taken.to_string(),
            None => "had ended".to_owned(),
        };
        match self {
            Divergence::Step {
                step,
                ours: a,
                theirs: b,
            } => {
                let mut text = format!(
                    "{theirs} diverged from {ours} at step {step}: {ours} {}, {theirs} {}",
                    show(a),
                    show(b)
                );
                if let (
                    Some(StepTaken { task: Some(a), .. }),
                    Some(StepTaken { task: Some(b), .. }),
                ) = (a, b)
                {
                    if a.number == b.number {
                        text += &format!(" (differs: {})", a.differences(b).join(", "));
                    }
                }
                text
            }
            Divergence::Spawn {
                step,
                during,
                ours: a,
                theirs: b,
            } => {
                let show = |task: &Option<TaskIdentity>| match task {
                    Some(task) => format!("spawned {}", task.as_spawned()),
                    None => "spawned no such task".to_owned(),
                };
                let during = during
                    .as_ref()
                    .map(|taken| format!(" (both {taken})"))
                    .unwrap_or_default();
                let mut text = format!(
                    "{theirs} diverged from {ours} at step {step}{during}: {ours} {}, {theirs} {}",
                    show(a),
                    show(b)
                );
                if let (Some(a), Some(b)) = (a, b) {
                    text += &format!(" (differs: {})", a.differences(b).join(", "));
                }
                text
            }
            Divergence::Later { compared } => format!(
                "{theirs} diverged from {ours} after step {compared}: the first {compared} steps \
                 and the tasks spawned in them agree, the trace hashes do not"
            ),
        }
    }
}

impl Trace {
    /// The identity of task `number`, if it was spawned during the steps kept.
    pub fn task(&self, number: u64) -> Option<&TaskIdentity> {
        let index = self
            .tasks
            .binary_search_by_key(&number, |task| task.number)
            .ok()?;
        Some(&self.tasks[index])
    }

    /// Step `index` (0-based) of the first steps, with the polled task's identity.
    fn step_taken(&self, index: usize) -> Option<StepTaken> {
        let event = *self.first_steps.get(index)?;
        let task = match event {
            TraceEvent::Poll(n) => self.task(n).cloned(),
            _ => None,
        };
        Some(StepTaken { event, task })
    }

    /// Where `other`, a trace of another run of the same program with the same seed, first
    /// departs from this one; `None` when the two are the same run (equal hashes).
    ///
    /// The first steps are compared one by one, a polled task by its identity as well as
    /// its number, and so are the identities of the tasks spawned in them; the earlier of
    /// the first differing step and the step that spawned the first differing task is the
    /// answer. Past the steps kept only the hashes can tell: then [`Divergence::Later`].
    pub fn first_divergence(&self, other: &Trace) -> Option<Divergence> {
        if self.hash == other.hash && self.recorded == other.recorded {
            return None;
        }
        let steps = self.first_steps.len().max(other.first_steps.len());
        let step = (0..steps).find_map(|i| {
            let (a, b) = (self.step_taken(i), other.step_taken(i));
            (a != b).then_some((i, a, b))
        });
        let tasks = self.tasks.len().max(other.tasks.len());
        let spawn = (0..tasks).find_map(|i| {
            let (a, b) = (self.tasks.get(i), other.tasks.get(i));
            match (a, b) {
                (Some(a), Some(b)) if a.same_as(b) => None,
                _ => Some((a.cloned(), b.cloned())),
            }
        });
        let spawn_step = spawn.as_ref().map(|(a, b)| {
            let step = |task: &Option<TaskIdentity>| task.as_ref().map_or(u64::MAX, |t| t.step);
            step(a).min(step(b))
        });
        match (step, spawn) {
            // A different poll first (a different task polled in the step that spawned
            // differently counts as the poll).
            (Some((i, a, b)), _) if spawn_step.is_none_or(|s| (i as u64) < s) => {
                Some(Divergence::Step {
                    step: i as u64 + 1,
                    ours: a,
                    theirs: b,
                })
            }
            (_, Some((a, b))) => {
                let step = spawn_step.unwrap_or(0);
                let during = usize::try_from(step)
                    .ok()
                    .and_then(|step| step.checked_sub(1))
                    .and_then(|index| self.step_taken(index));
                Some(Divergence::Spawn {
                    step,
                    during,
                    ours: a,
                    theirs: b,
                })
            }
            _ => Some(Divergence::Later {
                compared: steps as u64,
            }),
        }
    }
}

/// The hash's starting value and multiplier: FNV-1a's 64-bit offset basis, and an odd
/// constant with well-spread bits (the golden ratio's, as in Fibonacci hashing).
const HASH_START: u64 = 0xcbf2_9ce4_8422_2325;
const HASH_MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

/// `hash` with one word folded in: xor, multiply, and a rotation that brings the product's
/// well-mixed high bits down to where the next word's low bits land.
#[inline]
fn fold(hash: u64, word: u64) -> u64 {
    (hash ^ word).wrapping_mul(HASH_MULTIPLIER).rotate_left(29)
}

/// `hash` with `bytes` folded in, eight to a word, then their length (so `"ab"` then `"c"`
/// differs from `"a"` then `"bc"`); `\` is taken as `/`, so a spawn site hashes the same on
/// every platform.
fn fold_text(mut hash: u64, bytes: &[u8]) -> u64 {
    for chunk in bytes.chunks(8) {
        let mut word = [0u8; 8];
        for (slot, &byte) in word.iter_mut().zip(chunk) {
            *slot = if byte == b'\\' { b'/' } else { byte };
        }
        hash = fold(hash, u64::from_le_bytes(word));
    }
    fold(hash, bytes.len() as u64)
}

/// An event as one word, for the hash and for keeping: a task's number as itself (top bits
/// `00`: numbers count from 0 and never get near 2^62), a message as its 62 bits under
/// `10`, the root's poll and a park as the two largest words (top bits `11`).
fn pack(event: TraceEvent) -> u64 {
    match event {
        TraceEvent::Poll(number) => number,
        TraceEvent::PollRoot => ROOT_WORD,
        TraceEvent::Park => PARK_WORD,
        TraceEvent::Message(message) => MESSAGE_TAG | message.to_bits(),
    }
}

/// The top bits of a packed message (see [`pack`]).
const MESSAGE_TAG: u64 = 0b10 << 62;

/// The words of the root's poll and of a park (see [`pack`]).
const ROOT_WORD: u64 = u64::MAX - 1;
const PARK_WORD: u64 = u64::MAX;

/// The event packed by [`pack`].
fn unpack(word: u64) -> TraceEvent {
    match word {
        PARK_WORD => TraceEvent::Park,
        ROOT_WORD => TraceEvent::PollRoot,
        word if word >> 62 == 0b10 => TraceEvent::Message(LinkMessage::from_bits(word)),
        number => TraceEvent::Poll(number),
    }
}

/// Records events and keeps the hash of those so far.
///
/// Optimisation: the trace runs on every poll of a seeded run, so it costs about what the
/// poll does. Events are kept packed as one word each ([`pack`]), the first
/// [`STEPS_KEPT`] once (they are also the latest while the run is short), and the hash
/// takes one multiply per word (it took one per byte, nine per event, as byte-wise FNV-1a:
/// about half the trace's cost per poll). A reader can take `Recorder` as "a `Vec` of
/// events and a hash".
pub(crate) struct Recorder {
    /// The first events (at most [`STEPS_KEPT`]), packed.
    first: Vec<u64>,
    /// The events after the first [`STEPS_KEPT`]: the latest [`EVENTS_KEPT`] of them.
    later: VecDeque<u64>,
    /// Events recorded in all.
    recorded: u64,
    /// The hash so far.
    hash: u64,
    /// The identities of the tasks spawned during the first steps.
    tasks: Vec<TaskIdentity>,
    /// The last spawn site seen, and its word (see [`Recorder::site_word`]).
    last_site: Option<(&'static Location<'static>, u64)>,
}

impl Recorder {
    pub(crate) fn new() -> Recorder {
        Recorder {
            first: spare::words(),
            later: VecDeque::from(spare::words()),
            recorded: 0,
            hash: HASH_START,
            tasks: spare::tasks(),
            last_site: None,
        }
    }

    /// Folds one word into the hash.
    #[inline]
    fn fold(&mut self, word: u64) {
        self.hash = fold(self.hash, word);
    }

    /// The word a spawn site folds into the hash, from the last spawn's site if it is the
    /// same one. Optimisation: most tasks of a run come from a few spawn sites, and hashing
    /// the site's path eight bytes at a time was the larger part of what tracing a spawn
    /// cost. A site is a `'static` `Location`, so one address always holds the same site.
    fn site_word(&mut self, location: &'static Location<'static>) -> u64 {
        if let Some((cached, word)) = self.last_site {
            if std::ptr::eq(cached, location) {
                return word;
            }
        }
        let file = fold_text(HASH_START, location.file().as_bytes());
        let word = fold(
            file,
            u64::from(location.line()) << 32 | u64::from(location.column()),
        );
        self.last_site = Some((location, word));
        word
    }

    #[inline]
    pub(crate) fn record(&mut self, event: TraceEvent) {
        let word = pack(event);
        self.fold(word);
        self.recorded += 1;
        if self.first.len() < STEPS_KEPT {
            self.first.push(word);
        } else {
            if self.later.len() == EVENTS_KEPT {
                self.later.pop_front();
            }
            self.later.push_back(word);
        }
    }

    /// The task at `key` was just spawned: its identity enters the hash (a tag, its number,
    /// its parent's, the spawn site's file, line and column, its name: nothing that differs
    /// between two runs of one build), and the task table while the first steps are kept.
    pub(crate) fn spawned(&mut self, tree: &Tree, key: Key) {
        /// Marks a spawn in the hash (an event's word is never folded right after it).
        const SPAWN: u64 = u64::MAX - 2;
        let node = tree.node(key);
        let number = node.id.number();
        let location = node.location;
        let name = tree.name(key);
        let parent = tree.owner(key).map(|owner| tree.node(owner).id.number());
        self.fold(SPAWN);
        self.fold(number);
        self.fold(parent.unwrap_or(u64::MAX));
        let site = self.site_word(location);
        self.fold(site);
        match name {
            Some(name) => self.hash = fold_text(self.hash, name.as_bytes()),
            None => self.fold(u64::MAX),
        }
        if self.first.len() < STEPS_KEPT {
            self.tasks.push(TaskIdentity {
                number,
                name: name.map(Box::from),
                location,
                parent,
                step: self.recorded,
            });
        }
    }

    pub(crate) fn snapshot(&self) -> Trace {
        // The latest EVENTS_KEPT: the end of `first`, then all of `later`.
        let from_first = EVENTS_KEPT.saturating_sub(self.later.len());
        let first_tail = &self.first[self.first.len().saturating_sub(from_first)..];
        Trace {
            events: first_tail
                .iter()
                .chain(&self.later)
                .map(|&word| unpack(word))
                .collect(),
            recorded: self.recorded,
            hash: self.hash,
            first_steps: self.first.iter().map(|&word| unpack(word)).collect(),
            tasks: self.tasks.clone(),
        }
    }
}

impl Drop for Recorder {
    /// Optimisation: the buffers go to the thread's next seeded run ([`crate::spare`]).
    fn drop(&mut self) {
        spare::give_words(std::mem::take(&mut self.first));
        spare::give_words(Vec::from(std::mem::take(&mut self.later)));
        spare::give_tasks(std::mem::take(&mut self.tasks));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_survives_its_packing() {
        let events = [
            TraceEvent::Poll(0),
            TraceEvent::Poll((1 << 62) - 1),
            TraceEvent::PollRoot,
            TraceEvent::Park,
            TraceEvent::Message(LinkMessage {
                delivered: true,
                from: u16::MAX,
                to: 0,
                bytes: MESSAGE_BYTES_MAX,
            }),
            TraceEvent::Message(LinkMessage {
                delivered: false,
                from: 3,
                to: 65_000,
                bytes: 0,
            }),
        ];
        for event in events {
            assert_eq!(unpack(pack(event)), event);
        }
        // A size past the limit is kept as the limit.
        let big = LinkMessage {
            delivered: false,
            from: 1,
            to: 2,
            bytes: u32::MAX,
        };
        let kept = unpack(pack(TraceEvent::Message(big)));
        assert_eq!(
            kept,
            TraceEvent::Message(LinkMessage {
                bytes: MESSAGE_BYTES_MAX,
                ..big
            })
        );
    }
}
