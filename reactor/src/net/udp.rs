//! UDP: datagrams as treeloop await points. A cancelled `recv` takes no datagram off the
//! queue; a cancelled `send` sends nothing.

use std::io;
use std::net::SocketAddr;

use crate::io::slots::Direction;
use crate::io::source::{IoSource, sockets_allowed};
use crate::net::resolve::{ToSocketAddrs, each_addr};

/// A UDP socket.
///
/// ```
/// use std::io;
/// use treeloop::net::UdpSocket;
///
/// treeloop::block_on(async {
///     let a = UdpSocket::bind("127.0.0.1:0")?;
///     let b = UdpSocket::bind("127.0.0.1:0")?;
///     a.send_to(b"hello", b.local_addr()?).await?;
///     let mut buf = [0; 16];
///     let (n, from) = b.recv_from(&mut buf).await?;
///     assert_eq!(&buf[..n], b"hello");
///     assert_eq!(from, a.local_addr()?);
///     io::Result::Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Debug)]
pub struct UdpSocket(IoSource<mio::net::UdpSocket>);

impl UdpSocket {
    /// Binds to the first address of `addr` that works. Must be called inside a runtime.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        sockets_allowed()?;
        each_addr(addr, |addr| {
            Ok(UdpSocket(IoSource::new(mio::net::UdpSocket::bind(addr)?)?))
        })
    }

    /// Takes over a standard socket (made non-blocking here).
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        sockets_allowed()?;
        socket.set_nonblocking(true)?;
        Ok(UdpSocket(IoSource::new(mio::net::UdpSocket::from_std(
            socket,
        ))?))
    }

    /// Sets the default peer for `send` and `recv`, and filters out datagrams from others.
    pub fn connect(&self, addr: SocketAddr) -> io::Result<()> {
        self.0.get_ref().connect(addr)
    }

    /// Sends a datagram to `target`.
    pub async fn send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        self.0
            .io(Direction::Write, |s| s.send_to(buf, target))
            .await
    }

    /// Receives a datagram and who sent it.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.0.io(Direction::Read, |s| s.recv_from(buf)).await
    }

    /// Sends a datagram to the connected peer.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.0.io(Direction::Write, |s| s.send(buf)).await
    }

    /// Receives a datagram from the connected peer.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.io(Direction::Read, |s| s.recv(buf)).await
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().local_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().peer_addr()
    }
}
