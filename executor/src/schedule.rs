//! Schedules: which task each choice of a run took, written as a short printable string, and
//! the replay that takes the same choices again (ARCHITECTURE.md, "Schedules, replay and
//! exploration").
//!
//! # Ground rules
//!
//! - A *choice* is a pick made while two or more jobs were ready (a PCT *step*); a pick
//!   without a choice orders nothing and is not recorded.
//! - A choice names the job taken by its task's number within the runtime, the root as its
//!   own symbol ([`Choice`]); never by its index in the queue. A number survives any change
//!   that keeps the task structure (extra work between awaits, a different queue layout, a
//!   different strategy's bookkeeping); an index means something only in the queue order of
//!   the build that recorded it.
//! - Recorded under `Random`, `Pct` and replay (seeded runs), never under `Fifo`: FIFO's hot
//!   path pays nothing, and replaying the empty schedule *is* the FIFO run.
//! - A replay takes the recorded task at each choice if it is ready. Where the schedule has
//!   run out, or names a task that is not ready, it takes a planned [`Deviation`] that
//!   fits, else falls back ([`Fallback`]), and counts a divergence; it never resynchronises
//!   (the `i`th choice of the run is always compared with the `i`th of the schedule).

use std::fmt;
use std::str::FromStr;

use crate::choice::Choice;
use crate::deviation::{Deviation, Planned, Polls};
use crate::spare;

/// The choices of a run, in order: what `Runtime::schedule` returns and `Builder::replay`
/// takes.
///
/// Its `Display` is the replay string (`TREELOOP_SCHEDULE`), and `FromStr` reads it back:
/// `1.<table>.<n>.<bits>`: version 1; the jobs chosen, sorted, comma-separated (`r` the
/// root, a task by its number); the number of choices; and the choices as indices into the
/// table, of just enough bits each (`w`: 2 for up to 4 jobs), in URL-safe base 64. Every
/// character is shell-safe and it is one line. Each maximal run of one choice is its
/// `w`-bit index, and a run of `L >= 2` writes the index twice and then `L - 1` in Elias
/// gamma code, so a task running on through its yields costs a few bits. A 1,000-choice
/// run among 3 tasks takes about 350 characters under Random, 50 under PCT.
///
/// ```
/// # use treeloop_executor::{Choice, Schedule};
/// let schedule: Schedule = [Choice::Task(1), Choice::Task(1), Choice::Task(1), Choice::Root]
///     .into_iter()
///     .collect();
/// let text = schedule.to_string();
/// assert_eq!(text.parse::<Schedule>().unwrap(), schedule);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    /// The symbols of the choices ([`Choice::symbol`]). A `Vec`: a replay walks it by
    /// position, and a recording appends to it (8 bytes per choice; a labelled
    /// simplification, the string is what compresses).
    symbols: Vec<u64>,
    /// Choices made after the first [`SCHEDULE_KEPT`], not recorded.
    cut: u64,
}

/// How many choices a run's schedule records: the first 1,048,576 (8 MiB). A run that makes
/// more keeps only the count of the rest ([`Schedule::cut`]): a replay of it takes the
/// recorded choices and then goes on as FIFO. (Bounded like the trace: a ten-million-poll
/// seeded run would otherwise hold 80 MB of choices.)
pub const SCHEDULE_KEPT: usize = 1 << 20;

impl Schedule {
    /// The number of choices.
    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    /// No choice recorded (a FIFO run, or one where no two jobs were ever ready at once).
    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }

    /// The choices, in order.
    pub fn choices(&self) -> impl Iterator<Item = Choice> + '_ {
        self.symbols
            .iter()
            .map(|&symbol| Choice::from_symbol(symbol))
    }

    /// The `index`th choice.
    pub fn get(&self, index: usize) -> Option<Choice> {
        self.symbols
            .get(index)
            .map(|&symbol| Choice::from_symbol(symbol))
    }

    /// Choices the run made past the first [`SCHEDULE_KEPT`], which were not recorded
    /// (0 for any run a test would replay).
    pub fn cut(&self) -> u64 {
        self.cut
    }

    /// An empty schedule to record a run's choices in, in a buffer an earlier seeded run on
    /// this thread gave back if there is one ([`crate::spare`]).
    pub(crate) fn recording() -> Schedule {
        Schedule {
            symbols: spare::words(),
            cut: 0,
        }
    }

    /// Gives the buffer back for the next run's [`Schedule::recording`].
    pub(crate) fn recycle(self) {
        spare::give_words(self.symbols);
    }

    /// Records the choice of the job with trace number `id`.
    #[inline]
    pub(crate) fn push_trace_id(&mut self, id: u64) {
        self.push_symbol(Choice::from_trace_id(id).symbol());
    }

    /// Records a choice, or only counts it past [`SCHEDULE_KEPT`].
    #[inline]
    fn push_symbol(&mut self, symbol: u64) {
        if self.symbols.len() < SCHEDULE_KEPT {
            self.symbols.push(symbol);
        } else {
            self.cut += 1;
        }
    }
}

impl FromIterator<Choice> for Schedule {
    fn from_iter<I: IntoIterator<Item = Choice>>(choices: I) -> Schedule {
        Schedule {
            symbols: choices.into_iter().map(Choice::symbol).collect(),
            cut: 0,
        }
    }
}

/// The digits of the payload: URL-safe base 64 (RFC 4648 §5), no padding.
const DIGITS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The version the string starts with.
const VERSION: &str = "1";

/// Bits that index a table of `len` entries (0 for one entry: nothing to say).
fn index_width(len: usize) -> u32 {
    usize::BITS - len.saturating_sub(1).leading_zeros()
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // 1. The table: the jobs chosen, sorted (root first), so that each choice costs the
        //    bits of its index among them, however large the task numbers.
        let mut table = self.symbols.clone();
        table.sort_unstable();
        table.dedup();
        let width = index_width(table.len());
        // 2. The runs, as indices.
        let mut bits = BitWriter::default();
        let mut rest = &self.symbols[..];
        while let Some(&symbol) = rest.first() {
            let run = rest.iter().take_while(|&&s| s == symbol).count();
            let index = table.binary_search(&symbol).unwrap_or(0) as u64;
            bits.push(index, width);
            if run >= 2 {
                bits.push(index, width);
                bits.gamma(run as u64 - 1);
            }
            rest = &rest[run..];
        }
        write!(f, "{VERSION}.")?;
        for (i, &symbol) in table.iter().enumerate() {
            let comma = if i == 0 { "" } else { "," };
            match Choice::from_symbol(symbol) {
                Choice::Root => write!(f, "{comma}r")?,
                Choice::Task(number) => write!(f, "{comma}{number}")?,
            }
        }
        write!(f, ".{}.{}", self.symbols.len(), bits.finish())
    }
}

/// Why a string is not a schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseScheduleError(&'static str);

impl fmt::Display for ParseScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not a treeloop schedule ({}): pass the string printed after \
             TREELOOP_SCHEDULE= by a failed check or explore, whole",
            self.0
        )
    }
}

impl std::error::Error for ParseScheduleError {}

impl FromStr for Schedule {
    type Err = ParseScheduleError;

    fn from_str(text: &str) -> Result<Schedule, ParseScheduleError> {
        let mut parts = text.trim().split('.');
        if parts.next() != Some(VERSION) {
            return Err(ParseScheduleError("it does not start with `1.`"));
        }
        let table = parts.next().ok_or(ParseScheduleError("no table"))?;
        let table = match table {
            "" => Vec::new(),
            table => table
                .split(',')
                .map(|entry| match entry {
                    "r" => Some(Choice::Root.symbol()),
                    number => number.parse::<u64>().ok().and_then(|n| n.checked_add(1)),
                })
                .collect::<Option<Vec<u64>>>()
                .ok_or(ParseScheduleError("bad table"))?,
        };
        let width = index_width(table.len());
        let len = parts
            .next()
            .and_then(|part| part.parse::<u64>().ok())
            .ok_or(ParseScheduleError("bad length"))?;
        if len > 0 && table.is_empty() {
            return Err(ParseScheduleError("choices without a table"));
        }
        let payload = parts.next().ok_or(ParseScheduleError("no choices"))?;
        if parts.next().is_some() {
            return Err(ParseScheduleError("too many `.`"));
        }
        let mut bits = BitReader::new(payload)?;
        let mut symbols = Vec::with_capacity(len.min(1 << 16) as usize);
        // The last index read, while it may still be the first half of a run's pair.
        let mut single = None;
        while (symbols.len() as u64) < len {
            let index = bits.read(width)?;
            let symbol = *table
                .get(index as usize)
                .ok_or(ParseScheduleError("an index past the table"))?;
            if single == Some(index) {
                let more = bits.gamma()?;
                if symbols.len() as u64 + more > len {
                    return Err(ParseScheduleError("a run past the length"));
                }
                symbols.extend(std::iter::repeat_n(symbol, more as usize));
                single = None;
            } else {
                symbols.push(symbol);
                single = Some(index);
            }
        }
        Ok(Schedule { symbols, cut: 0 })
    }
}

/// Bits, most significant first, into base-64 digits.
#[derive(Default)]
struct BitWriter {
    /// Finished digits.
    out: String,
    /// Bits of the digit being filled.
    acc: u8,
    /// How many bits `acc` holds (0 to 5).
    filled: u32,
}

impl BitWriter {
    fn push(&mut self, value: u64, width: u32) {
        for shift in (0..width).rev() {
            self.acc = self.acc << 1 | ((value >> shift) & 1) as u8;
            self.filled += 1;
            if self.filled == 6 {
                self.out.push(char::from(DIGITS[usize::from(self.acc)]));
                (self.acc, self.filled) = (0, 0);
            }
        }
    }

    /// Elias gamma code of `value >= 1`: as many zeros as it has bits after the first,
    /// then its bits.
    fn gamma(&mut self, value: u64) {
        let bits = u64::BITS - value.leading_zeros();
        self.push(0, bits - 1);
        self.push(value, bits);
    }

    fn finish(mut self) -> String {
        if self.filled > 0 {
            self.push(0, 6 - self.filled);
        }
        self.out
    }
}

/// Reads back what [`BitWriter`] wrote.
struct BitReader {
    /// The digits' values.
    digits: Vec<u8>,
    /// The next bit's position.
    at: usize,
}

impl BitReader {
    fn new(payload: &str) -> Result<BitReader, ParseScheduleError> {
        let digits = payload
            .bytes()
            .map(|byte| DIGITS.iter().position(|&d| d == byte).map(|v| v as u8))
            .collect::<Option<Vec<u8>>>()
            .ok_or(ParseScheduleError("a character outside base 64"))?;
        Ok(BitReader { digits, at: 0 })
    }

    fn bit(&mut self) -> Result<u64, ParseScheduleError> {
        let digit = self
            .digits
            .get(self.at / 6)
            .ok_or(ParseScheduleError("it ends early"))?;
        let bit = (digit >> (5 - self.at % 6)) & 1;
        self.at += 1;
        Ok(u64::from(bit))
    }

    fn read(&mut self, width: u32) -> Result<u64, ParseScheduleError> {
        (0..width).try_fold(0, |value, _| Ok(value << 1 | self.bit()?))
    }

    fn gamma(&mut self) -> Result<u64, ParseScheduleError> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros >= 64 {
                return Err(ParseScheduleError("a run too long"));
            }
        }
        (0..zeros).try_fold(1, |value, _| Ok(value << 1 | self.bit()?))
    }
}

/// What a replay picks where its schedule has nothing to say: past its end, or where it
/// names a task that is not ready.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fallback {
    /// The front of the queue, as `Strategy::Fifo` (`Builder::replay`).
    #[default]
    Fifo,
    /// The job that ran last, if it is ready again (it yielded), else the front: a
    /// schedule without preemptions, what `test::explore` extends a prefix with. After 64
    /// such continuations in a row with others ready (a spin loop on `yield_now`), the
    /// front instead, so that a spinner's partner runs.
    Continue,
}

/// How a runtime replays a schedule (`Scheduling::replay`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replay {
    /// The choices to take, in order.
    pub schedule: Schedule,
    /// What to take where the schedule has nothing to say.
    pub fallback: Fallback,
    /// Keep every choice's ready jobs, for `Executor::choice_points` (`test::explore`,
    /// `test::check`'s shrinking).
    pub log_choice_points: bool,
    /// Where the schedule has nothing to say, these are taken before the fallback: at a
    /// choice where a deviation's job is ready for the poll it names and the job it names
    /// is at the front, that job runs (see [`Deviation`]). `test::check` shrinks a failing
    /// run by replaying fewer and fewer of its deviations.
    pub deviations: Vec<Deviation>,
}

/// One choice a replay made, with what it could have made instead (`test::explore`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChoicePoint {
    /// The jobs that were ready, in queue order.
    pub ready: Vec<Choice>,
    /// The job taken.
    pub chosen: Choice,
    /// The job that ran last, if it was ready again: taking another was a preemption.
    pub last: Option<Choice>,
    /// What the fallback would have taken: never a preemption (it is `last`, or a switch
    /// the spin rule forced).
    pub default: Choice,
    /// For each job of `ready`, the poll (from 1) it was waiting for.
    pub polls: Vec<u64>,
}

impl ChoicePoint {
    /// Whether taking `choice` here preempts the job that ran last: it is ready again, and
    /// `choice` is neither it nor the fallback's choice.
    pub fn preempts(&self, choice: Choice) -> bool {
        self.last.is_some_and(|last| last != choice) && choice != self.default
    }
}

/// How many ready jobs a logging replay keeps over all its choice points: 4,194,304
/// (about 100 MB). Past it the choices are made as before but not logged, so
/// `Executor::choice_points` is shorter than the schedule. (A run of 10,000 tasks spawned
/// at once would otherwise log 50,000,000 ready jobs on its way down; explore and
/// shrinking are for runs far smaller.)
pub(crate) const POINTS_KEPT: usize = 1 << 22;

/// Continuations in a row, each with another job ready, after which [`Fallback::Continue`]
/// switches to the front (as PCT's spin rule).
const SPIN_CONTINUATIONS: u32 = 64;

/// A replay in progress: the picker state of `Builder::replay`.
pub(crate) struct Replayer {
    /// What to replay, and how.
    replay: Replay,
    /// The next choice of `replay.schedule` to take.
    next: usize,
    /// Choices that could not follow the schedule.
    divergences: u64,
    /// The choices actually made (the run's own schedule).
    taken: Schedule,
    /// The job handed out last, until a pick found nothing ready.
    last: Option<Choice>,
    /// Continuations of `last` in a row, with others ready.
    streak: u32,
    /// The ready jobs of the pick being made (a buffer kept between picks).
    ready: Vec<Choice>,
    /// Every choice, with its alternatives, when logging.
    points: Vec<ChoicePoint>,
    /// Ready jobs in `points`, over all of them (at most [`POINTS_KEPT`]).
    logged: usize,
    /// Each job's polls so far, when logging or deviating (else never counted).
    polls: Option<Polls>,
    /// The deviations to take where the schedule has nothing to say.
    planned: Planned,
}

impl Replayer {
    pub(crate) fn new(replay: Replay) -> Replayer {
        let counts = replay.log_choice_points || !replay.deviations.is_empty();
        Replayer {
            planned: Planned::new(&replay.deviations),
            polls: counts.then(Polls::default),
            replay,
            next: 0,
            divergences: 0,
            taken: Schedule::default(),
            last: None,
            streak: 0,
            ready: Vec::new(),
            points: Vec::new(),
            logged: 0,
        }
    }

    /// The index, among the ready jobs with trace numbers `ready` (queue order, two or
    /// more), of the job to take.
    pub(crate) fn choose(&mut self, ready: impl Iterator<Item = u64>) -> usize {
        self.ready.clear();
        self.ready.extend(ready.map(Choice::from_trace_id));
        let last = self.last.filter(|last| self.ready.contains(last));
        // 1. The fallback's choice.
        let default = match (self.replay.fallback, last) {
            (Fallback::Continue, Some(last)) if self.streak < SPIN_CONTINUATIONS => {
                position(&self.ready, last)
            }
            _ => 0,
        };
        // 2. The schedule's, if it has one and that job is ready.
        let wanted = self.replay.schedule.get(self.next);
        self.next += 1;
        let index = match wanted.and_then(|choice| self.ready.iter().position(|&r| r == choice)) {
            Some(index) => index,
            None => {
                self.divergences += 1;
                let planned = self
                    .polls
                    .as_ref()
                    .and_then(|polls| self.planned.pick(&self.ready, polls));
                planned.unwrap_or(default)
            }
        };
        let chosen = self.ready[index];
        // 3. Keep count of continuations in a row (the spin rule).
        if last == Some(chosen) {
            self.streak += 1;
        } else {
            self.streak = 0;
        }
        // 4. Log it, within the bound.
        if self.replay.log_choice_points && self.logged + self.ready.len() <= POINTS_KEPT {
            self.logged += self.ready.len();
            self.points.push(ChoicePoint {
                ready: self.ready.clone(),
                chosen,
                last,
                default: self.ready[default],
                polls: match &self.polls {
                    Some(polls) => self.ready.iter().map(|&job| polls.next(job)).collect(),
                    None => Vec::new(),
                },
            });
        }
        self.taken.push_symbol(chosen.symbol());
        index
    }

    /// The job with trace number `id` was handed out (`None`: nothing was ready).
    pub(crate) fn handed_out(&mut self, id: Option<u64>) {
        self.last = id.map(Choice::from_trace_id);
        if let (Some(polls), Some(job)) = (&mut self.polls, self.last) {
            polls.count(job);
        }
        if id.is_none() {
            self.streak = 0;
        }
    }

    pub(crate) fn taken(&self) -> &Schedule {
        &self.taken
    }

    pub(crate) fn divergences(&self) -> u64 {
        self.divergences
    }

    pub(crate) fn points(&self) -> &[ChoicePoint] {
        &self.points
    }
}

/// Where `choice` is in `ready` (it is there).
fn position(ready: &[Choice], choice: Choice) -> usize {
    ready.iter().position(|&r| r == choice).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tasks(numbers: &[u64]) -> Schedule {
        numbers.iter().map(|&n| Choice::Task(n)).collect()
    }

    #[test]
    fn a_schedule_reads_back_what_it_wrote() {
        let cases = [
            Schedule::default(),
            tasks(&[0]),
            tasks(&[1, 1]),
            tasks(&[1, 2, 2, 2, 3, 1, 1]),
            [Choice::Root, Choice::Task(u64::MAX - 2), Choice::Root]
                .into_iter()
                .collect(),
            tasks(&vec![5; 100_000]),
        ];
        for schedule in cases {
            let text = schedule.to_string();
            assert_eq!(text.parse::<Schedule>(), Ok(schedule), "{text}");
        }
    }

    #[test]
    fn a_long_run_of_one_task_is_a_few_characters() {
        // One job in the table: indices take no bits, so the run is 999 in gamma code,
        // 9 zeros then `1111100111`: `000000 000111 110011 100000`.
        assert_eq!(tasks(&vec![2; 1000]).to_string(), "1.2.1000.AHzg");
        // Two jobs: 1 bit each. `0 1 1`, then `1` (gamma 1) for the run of two: `011100`.
        assert_eq!(tasks(&[4, 7, 7]).to_string(), "1.4,7.3.c");
    }

    #[test]
    fn a_schedule_keeps_its_first_choices_and_counts_the_rest() {
        let mut schedule = Schedule::default();
        for id in 0..SCHEDULE_KEPT as u64 + 5 {
            schedule.push_trace_id(id % 3);
        }
        assert_eq!(schedule.len(), SCHEDULE_KEPT);
        assert_eq!(schedule.cut(), 5);
        let last = (SCHEDULE_KEPT as u64 - 1) % 3;
        assert_eq!(schedule.get(SCHEDULE_KEPT - 1), Some(Choice::Task(last)));
    }

    #[test]
    fn malformed_strings_are_refused() {
        for text in [
            "",
            "2.1.1.A",
            "1..1.A",
            "1.x.1.A",
            "1.1.5.A",
            "1.1,2.1.*",
            "1.1.1",
        ] {
            assert!(text.parse::<Schedule>().is_err(), "{text}");
        }
    }
}
