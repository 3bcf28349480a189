//! Ctrl-C: `ctrl_c()` to await it, and the option that makes it a root cancel (R19).
//!
//! signal-hook does the signal-handler side: on SIGINT it writes a byte to a socket pair
//! whose read end the reactor watches (the self-pipe trick; nothing but a `send` runs in the
//! handler). The reactor counts the bytes. A `ctrl_c()` future waits for the count to pass
//! the value it saw first; with [`Reactor::new`]'s `shutdown_on_ctrl_c`, the first SIGINT
//! also asks the executor to cancel the root, and signal-hook's conditional shutdown makes
//! the second one exit the process at once with status 130 (128 + SIGINT), even if a task
//! is stuck and the loop never turns again.
//!
//! Installing a handler replaces the default action (terminate): once a runtime watches
//! SIGINT, Ctrl-C does only what the program makes of it.
//!
//! [`Reactor::new`]: crate::Reactor::new

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io::{self, Read};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::task::{Context, Poll, Waker};

use mio::{Interest, Token};
use signal_hook::SigId;
use signal_hook::consts::SIGINT;
use treeloop_executor::poll_cancelled;

use crate::driver::{ReactorCore, expect_reactor};

/// The token of the SIGINT pipe.
pub(crate) const SIGNAL_TOKEN: Token = Token(usize::MAX - 1);

/// The token of the dump signal's (SIGUSR1) pipe.
pub(crate) const DUMP_TOKEN: Token = Token(usize::MAX - 2);

/// The read end of a signal's self-pipe (SIGINT, or the dump signal), and what arrived
/// through it.
pub(crate) struct SignalPipe {
    /// Read end, registered with the reactor.
    read: mio::net::UnixStream,
    /// signal-hook's registration of the write end, removed on drop.
    id: SigId,
    /// SIGINTs received so far.
    count: Cell<u64>,
    /// Tasks waiting in `ctrl_c()`.
    waiters: RefCell<Vec<Waker>>,
}

impl SignalPipe {
    /// Starts watching `signal`, reported under `token`.
    pub(crate) fn install(
        registry: &mio::Registry,
        signal: std::ffi::c_int,
        token: Token,
    ) -> io::Result<SignalPipe> {
        let (read, write) = std::os::unix::net::UnixStream::pair()?;
        read.set_nonblocking(true)?;
        let mut read = mio::net::UnixStream::from_std(read);
        registry.register(&mut read, token, Interest::READABLE)?;
        let id = signal_hook::low_level::pipe::register(signal, write)?;
        Ok(SignalPipe {
            read,
            id,
            count: Cell::new(0),
            waiters: RefCell::new(Vec::new()),
        })
    }

    /// Drains the pipe; returns how many signals arrived and pushes the waiters to wake.
    pub(crate) fn drain(&mut self, wake: &mut Vec<Waker>) -> u64 {
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
        if arrived > 0 {
            self.count.set(self.count.get() + arrived);
            wake.append(&mut self.waiters.borrow_mut());
        }
        arrived
    }
}

impl Drop for SignalPipe {
    fn drop(&mut self) {
        signal_hook::low_level::unregister(self.id);
    }
}

/// Arms the process-wide "second SIGINT exits with 130". Registered before the flag that
/// arms it, so the first SIGINT only arms (signal-hook runs actions in registration order).
pub(crate) fn arm_second_ctrl_c_exit() -> io::Result<()> {
    static ARMED: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    if ARMED.get().is_some() {
        return Ok(());
    }
    let armed = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register_conditional_shutdown(SIGINT, 130, armed.clone())?;
    signal_hook::flag::register(SIGINT, armed.clone())?;
    let _ = ARMED.set(armed);
    Ok(())
}

/// Waits for the next Ctrl-C (SIGINT) after the first poll.
///
/// A treeloop await point: in a cancelled region it fails with an `io::Error` wrapping
/// `Cancelled`. The first poll starts watching SIGINT for the whole runtime, which replaces
/// the default action (terminating the process).
pub fn ctrl_c() -> CtrlC {
    CtrlC { seen: None }
}

/// The future of [`ctrl_c`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct CtrlC {
    /// The signal count at the first poll.
    seen: Option<u64>,
}

impl Future for CtrlC {
    type Output = io::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(cancelled) = poll_cancelled(cx) {
            return cancelled.map(|cancelled| Err(cancelled.into()));
        }
        let seen = &mut self.seen;
        expect_reactor("ctrl_c", |reactor| {
            let count = match signal_count(reactor) {
                Ok(count) => count,
                Err(err) => return Poll::Ready(Err(err)),
            };
            let first = *seen.get_or_insert(count);
            if count > first {
                return Poll::Ready(Ok(()));
            }
            if let Some(pipe) = reactor.signal.borrow().as_ref() {
                pipe.waiters.borrow_mut().push(cx.waker().clone());
            }
            Poll::Pending
        })
    }
}

/// SIGINTs received so far, installing the pipe on first use.
fn signal_count(reactor: &ReactorCore) -> io::Result<u64> {
    let mut signal = reactor.signal.borrow_mut();
    if signal.is_none() {
        *signal = Some(SignalPipe::install(
            &reactor.registry,
            SIGINT,
            SIGNAL_TOKEN,
        )?);
    }
    Ok(signal.as_ref().map_or(0, |pipe| pipe.count.get()))
}
