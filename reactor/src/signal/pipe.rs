//! The self-pipes: how a signal reaches the loop, and the table of the signals a runtime
//! watches.
//!
//! # Ground rules
//!
//! - Only a `send` runs in the signal handler: signal-hook's pipe action writes one byte to
//!   a socket pair whose read end the reactor watches. Counting, waking and deciding what a
//!   delivery means all happen on the loop thread, in [`SignalTable::drain`].
//! - One pipe per signal per runtime, installed on first use and kept until the reactor
//!   drops, shared by every purpose of that signal: the shutdown set, the dump signal and any
//!   number of receivers. (Not a pipe per receiver: that is a handler action and two
//!   descriptors each, and removing one would not give the signal its default action back;
//!   signal-hook cannot restore it.)
//! - A pipe's count only grows. A receiver remembers the count it last saw, so many
//!   receivers share one counter and none can miss a delivery, however late it looks.
//! - Every pipe is registered under one token, [`SIGNAL_TOKEN`]: an event on it drains them
//!   all. There are a handful, and an empty one costs one non-blocking `read`.

use std::io::{self, Read};
use std::task::Waker;

use mio::{Interest, Token};
use signal_hook::SigId;

use super::SignalKind;

/// The token every signal pipe is registered under.
pub(crate) const SIGNAL_TOKEN: Token = Token(usize::MAX - 1);

/// What a signal is watched for. A signal may serve several purposes at once; each is a flag
/// of its pipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// In the shutdown set: a delivery asks for a root cancel.
    Shutdown,
    /// The dump signal: a delivery asks for a dump of the tree.
    Dump,
    /// Awaited by a receiver (`unix`, `ctrl_c`): a delivery wakes tasks.
    Receive,
}

/// The read end of one signal's self-pipe, and what arrived through it.
struct SignalPipe {
    /// The signal.
    signal: SignalKind,
    /// Read end, registered with the reactor.
    read: mio::net::UnixStream,
    /// signal-hook's registration of the write end, removed on drop.
    id: SigId,
    /// Deliveries so far.
    count: u64,
    /// Tasks waiting for the next delivery (one waker per task).
    waiters: Vec<Waker>,
    /// A delivery asks for a root cancel.
    shuts_down: bool,
    /// A delivery asks for a dump.
    dumps: bool,
    /// Some receiver was made for this signal: a delivery may wake a task.
    received: bool,
}

impl SignalPipe {
    /// Starts watching `signal` (already checked).
    fn install(registry: &mio::Registry, signal: SignalKind) -> io::Result<SignalPipe> {
        let (read, write) = std::os::unix::net::UnixStream::pair()?;
        read.set_nonblocking(true)?;
        let mut read = mio::net::UnixStream::from_std(read);
        registry.register(&mut read, SIGNAL_TOKEN, Interest::READABLE)?;
        let id = signal_hook::low_level::pipe::register(signal.as_raw(), write)
            .map_err(|err| io::Error::new(err.kind(), format!("cannot watch {signal}: {err}")))?;
        Ok(SignalPipe {
            signal,
            read,
            id,
            count: 0,
            waiters: Vec::new(),
            shuts_down: false,
            dumps: false,
            received: false,
        })
    }

    /// Reads everything the handler wrote; returns how many deliveries that was.
    fn read_all(&mut self) -> u64 {
        let mut buf = [0u8; 64];
        let mut arrived = 0;
        loop {
            match (&self.read).read(&mut buf) {
                Ok(0) => break,
                Ok(n) => arrived += n as u64,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break, // WouldBlock: drained
            }
        }
        arrived
    }
}

impl Drop for SignalPipe {
    fn drop(&mut self) {
        signal_hook::low_level::unregister(self.id);
    }
}

/// What one drain of the pipes found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Delivered {
    /// Deliveries of any watched signal.
    pub(crate) signals: u64,
    /// Deliveries of signals in the shutdown set.
    pub(crate) shutdown: u64,
    /// Deliveries of the dump signal.
    pub(crate) dumps: u64,
}

/// Every signal a runtime watches: one pipe each.
pub(crate) struct SignalTable {
    /// In installation order; a `Vec`, not a map, because a runtime watches a handful of
    /// signals and a linear search over them is the cheapest lookup there is.
    pipes: Vec<SignalPipe>,
}

impl SignalTable {
    pub(crate) fn new() -> SignalTable {
        SignalTable { pipes: Vec::new() }
    }

    /// Watches `signal` for `purpose`, installing its pipe on first use; returns its count of
    /// deliveries so far. Refuses the signals of [`SignalKind::check`].
    pub(crate) fn watch(
        &mut self,
        registry: &mio::Registry,
        signal: SignalKind,
        purpose: Purpose,
    ) -> io::Result<u64> {
        signal.check()?;
        let pipe = match self.pipes.iter().position(|pipe| pipe.signal == signal) {
            Some(at) => &mut self.pipes[at],
            None => {
                self.pipes.push(SignalPipe::install(registry, signal)?);
                self.pipes.last_mut().expect("just pushed")
            }
        };
        match purpose {
            Purpose::Shutdown => pipe.shuts_down = true,
            Purpose::Dump => pipe.dumps = true,
            Purpose::Receive => pipe.received = true,
        }
        Ok(pipe.count)
    }

    /// Deliveries of `signal` so far; `None` if this runtime does not watch it.
    pub(crate) fn count(&self, signal: SignalKind) -> Option<u64> {
        self.pipe(signal).map(|pipe| pipe.count)
    }

    /// Wakes `waker` at the next delivery of `signal` (a watched one).
    pub(crate) fn wake_on_next(&mut self, signal: SignalKind, waker: &Waker) {
        if let Some(pipe) = self.pipes.iter_mut().find(|pipe| pipe.signal == signal) {
            // A task polled again before the delivery keeps its one place.
            if !pipe.waiters.iter().any(|w| w.will_wake(waker)) {
                pipe.waiters.push(waker.clone());
            }
        }
    }

    /// Drains every pipe: counts the deliveries and moves the waiters of each signal that
    /// arrived to `wake` (the caller wakes them once no borrow is held).
    pub(crate) fn drain(&mut self, wake: &mut Vec<Waker>) -> Delivered {
        let mut delivered = Delivered::default();
        for pipe in &mut self.pipes {
            let arrived = pipe.read_all();
            if arrived == 0 {
                continue;
            }
            pipe.count += arrived;
            wake.append(&mut pipe.waiters);
            delivered.signals += arrived;
            if pipe.shuts_down {
                delivered.shutdown += arrived;
            }
            if pipe.dumps {
                delivered.dumps += arrived;
            }
        }
        delivered
    }

    /// Whether any signal is watched (the poller must then be asked even for a zero wait).
    pub(crate) fn is_empty(&self) -> bool {
        self.pipes.is_empty()
    }

    /// Whether a delivery could still wake a task or cancel the root: while it can, "nothing
    /// can ever wake a task" is not a deadlock. The dump signal alone does neither.
    pub(crate) fn may_wake(&self) -> bool {
        self.pipes
            .iter()
            .any(|pipe| pipe.shuts_down || pipe.received)
    }

    fn pipe(&self, signal: SignalKind) -> Option<&SignalPipe> {
        self.pipes.iter().find(|pipe| pipe.signal == signal)
    }
}
