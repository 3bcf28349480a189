//! Sockets: TCP, UDP and Unix, registered once with the reactor, every operation a treeloop
//! await point.
//!
//! In a cancelled region every operation fails at once with an `io::Error` of kind `Other`
//! wrapping [`Cancelled`](treeloop_executor::Cancelled) (recognise it with
//! `Cancelled::from_io`), before touching the socket: a cancelled accept drops no connection,
//! a cancelled read consumes no bytes, a cancelled write writes nothing (R7).

pub(crate) mod stream;
mod tcp;
mod udp;
mod unix;

pub use stream::{ReadHalf, WriteHalf};
pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixListener, UnixStream};
