//! Sockets: TCP, UDP and Unix, registered once with the reactor, every operation a treeloop
//! await point.
//!
//! In a cancelled region every operation fails at once with an `io::Error` of kind `Other`
//! wrapping [`Cancelled`](treeloop_executor::Cancelled) (recognise it with
//! `Cancelled::from_io`), before touching the socket: a cancelled accept drops no connection,
//! a cancelled read consumes no bytes, a cancelled write writes nothing (R7). Failing is a
//! completion: it spends the per-poll budget like a successful operation, so a task that
//! ignores the error in a loop still yields to the others.

mod backoff;
mod listener;
mod resolve;
pub(crate) mod stream;
mod tcp;
mod udp;
mod unix;

pub use backoff::{AcceptBackoff, is_transient_accept_error};
pub use listener::Listener;
pub use resolve::ToSocketAddrs;
pub use stream::{ReadHalf, ReuniteError, WriteHalf};
pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixListener, UnixStream};

use std::io;
use std::task::Poll;

/// The first step of an `async fn` that touches a socket (a connect): `Err`, wrapping
/// `Cancelled`, in a cancelled region, spending budget like every await point.
pub(crate) async fn not_cancelled() -> io::Result<()> {
    std::future::poll_fn(|cx| match treeloop_executor::poll_cancelled(cx) {
        None => Poll::Ready(Ok(())),
        Some(cancelled) => cancelled.map(|cancelled| Err(cancelled.into())),
    })
    .await
}
