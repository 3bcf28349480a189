//! Unix domain sockets: stream listener, stream, datagram.

use std::io;
use std::os::unix::net::SocketAddr;
use std::path::Path;

use crate::io::slots::Direction;
use crate::io::source::{IoSource, sockets_allowed};
use crate::net::stream::impl_socket_stream;

/// A Unix stream socket listening for connections.
#[derive(Debug)]
pub struct UnixListener(IoSource<mio::net::UnixListener>);

impl UnixListener {
    /// Binds to the socket file `path` (which must not exist yet).
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        sockets_allowed()?;
        Ok(UnixListener(IoSource::new(mio::net::UnixListener::bind(
            path,
        )?)?))
    }

    /// Waits for a connection; a cancelled accept takes none off the queue.
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (stream, peer) = self.0.io(Direction::Read, |l| l.accept()).await?;
        Ok((UnixStream(IoSource::new(stream)?), peer))
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().local_addr()
    }
}

/// A Unix stream connection: the same surface as [`TcpStream`](super::TcpStream) (reads
/// and writes through `&self`, `into_split`, futures-io traits; `close()` is a half-close
/// with `shutdown(Shutdown::Write)`).
#[derive(Debug)]
pub struct UnixStream(IoSource<mio::net::UnixStream>);

impl_socket_stream!(UnixStream);

impl UnixStream {
    /// Connects to the socket at `path`.
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        // An await point: a cancelled connect must not even send its SYN (R7); and no
        // socket is made where it could not be registered.
        super::not_cancelled().await?;
        sockets_allowed()?;
        let stream = UnixStream(IoSource::new(mio::net::UnixStream::connect(path)?)?);
        stream
            .0
            .io(Direction::Write, |s| match s.take_error()? {
                Some(err) => Err(err),
                None => Ok(()),
            })
            .await?;
        Ok(stream)
    }

    /// A connected pair, e.g. to talk to a child thread or process.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        sockets_allowed()?;
        let (a, b) = mio::net::UnixStream::pair()?;
        Ok((UnixStream(IoSource::new(a)?), UnixStream(IoSource::new(b)?)))
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().local_addr()
    }
}

/// A Unix datagram socket.
#[derive(Debug)]
pub struct UnixDatagram(IoSource<mio::net::UnixDatagram>);

impl UnixDatagram {
    /// Binds to the socket file `path`.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixDatagram> {
        sockets_allowed()?;
        Ok(UnixDatagram(IoSource::new(mio::net::UnixDatagram::bind(
            path,
        )?)?))
    }

    /// A socket bound to no address.
    pub fn unbound() -> io::Result<UnixDatagram> {
        sockets_allowed()?;
        Ok(UnixDatagram(IoSource::new(
            mio::net::UnixDatagram::unbound()?,
        )?))
    }

    /// A connected pair.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        sockets_allowed()?;
        let (a, b) = mio::net::UnixDatagram::pair()?;
        Ok((
            UnixDatagram(IoSource::new(a)?),
            UnixDatagram(IoSource::new(b)?),
        ))
    }

    /// Sets the default peer.
    pub fn connect(&self, path: impl AsRef<Path>) -> io::Result<()> {
        self.0.get_ref().connect(path)
    }

    /// Sends a datagram to the socket at `path`.
    pub async fn send_to(&self, buf: &[u8], path: impl AsRef<Path>) -> io::Result<usize> {
        let path = path.as_ref();
        self.0.io(Direction::Write, |s| s.send_to(buf, path)).await
    }

    /// Receives a datagram and who sent it.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.0.io(Direction::Read, |s| s.recv_from(buf)).await
    }

    /// Sends to the connected peer.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.0.io(Direction::Write, |s| s.send(buf)).await
    }

    /// Receives from the connected peer.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.io(Direction::Read, |s| s.recv(buf)).await
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().local_addr()
    }
}
