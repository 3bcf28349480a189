//! TCP: a listener and a stream, on mio, as treeloop await points.
//!
//! Addresses are resolved with the standard library, which may block on DNS: pass socket
//! addresses (as the examples and tests do) to stay non-blocking.

use std::io;
use std::net::SocketAddr;

use treeloop_executor::Cancelled;

use crate::io::slots::Direction;
use crate::io::source::{IoSource, sockets_allowed};
use crate::net::resolve::{ToSocketAddrs, each_addr, target_of};
use crate::net::stream::impl_socket_stream;

/// A TCP socket listening for connections.
///
/// ```
/// use std::io;
/// use treeloop::net::{TcpListener, TcpStream};
/// use treeloop::spawn;
///
/// treeloop::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0")?; // port 0: the OS picks one
///     let addr = listener.local_addr()?;
///     let server = spawn(async move {
///         let (stream, peer) = listener.accept().await?;
///         stream.write_all(b"welcome").await?;
///         io::Result::Ok(peer)
///     });
///     let client = TcpStream::connect(addr).await?;
///     // The server saw the client's own address.
///     assert_eq!(server.await.unwrap()?, client.local_addr()?);
///     let mut greeting = [0; 7];
///     let mut got = 0;
///     while got < greeting.len() {
///         got += client.read(&mut greeting[got..]).await?;
///     }
///     assert_eq!(&greeting, b"welcome");
///     io::Result::Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Debug)]
pub struct TcpListener(IoSource<mio::net::TcpListener>);

impl TcpListener {
    /// Binds to the first address of `addr` that works (`SO_REUSEADDR` is set, so a
    /// restarted server can rebind at once). Must be called inside a treeloop runtime.
    ///
    /// `addr` is any [`ToSocketAddrs`]; a host name (`"localhost:8080"`) is resolved right
    /// here, blocking (binding happens once, at start-up; use an address to avoid it).
    ///
    /// An address in use is `io::ErrorKind::AddrInUse`.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        sockets_allowed()?;
        each_addr(addr, |addr| {
            let listener = mio::net::TcpListener::bind(addr)?;
            Ok(TcpListener(IoSource::new(listener)?))
        })
    }

    /// Takes over a standard listener (made non-blocking here).
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        sockets_allowed()?;
        listener.set_nonblocking(true)?;
        Ok(TcpListener(IoSource::new(
            mio::net::TcpListener::from_std(listener),
        )?))
    }

    /// Waits for a connection. A cancelled accept takes no connection off the queue: the
    /// next `accept` gets it (R7).
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, peer) = self.0.io(Direction::Read, |l| l.accept()).await?;
        Ok((TcpStream(IoSource::new(stream)?), peer))
    }

    /// The address it listens on (with the port the OS chose for port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().local_addr()
    }
}

/// A TCP connection.
///
/// Reads and writes go through `&self` (`read`, `write`, `write_all`), so one task can read
/// while another writes through a shared reference, or split it with
/// [`into_split`](TcpStream::into_split). It implements futures-io's `AsyncRead` and
/// `AsyncWrite`, for `TcpStream` and `&TcpStream`, so the futures-io ecosystem works on it
/// (hyper through treeloop-hyper, async-tungstenite, `treeloop::io`'s buffered readers).
///
/// **Closing.** futures-io's `close()` (`poll_close`) is a *half-close*: it calls
/// [`shutdown(Shutdown::Write)`](TcpStream::shutdown), which sends FIN, so the peer reads
/// end of stream once it has read everything sent before. It does not close the
/// descriptor, and reading goes on: that is how a server says goodbye and still reads the
/// client's last bytes. Dropping the stream closes the descriptor; if unread bytes are
/// still in its receive buffer, the kernel sends a reset (RST) instead of FIN, and the peer
/// may lose data it had not yet read. `poll_flush` has nothing to do (there is no
/// user-space buffer) and returns at once.
///
/// ```
/// use std::io;
/// use std::net::Shutdown;
/// use treeloop::net::{TcpListener, TcpStream};
/// use treeloop::spawn;
///
/// treeloop::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let addr = listener.local_addr()?;
///     // An echo server: it writes back what it reads, until the client's half-close.
///     let server = spawn(async move {
///         let (stream, _) = listener.accept().await?;
///         let mut buf = [0; 64];
///         loop {
///             let n = stream.read(&mut buf).await?;
///             if n == 0 {
///                 return io::Result::Ok(());
///             }
///             stream.write_all(&buf[..n]).await?;
///         }
///     });
///     let stream = TcpStream::connect(addr).await?;
///     stream.write_all(b"ping").await?;
///     stream.shutdown(Shutdown::Write)?; // FIN: the server reads end of stream
///     let mut echoed = Vec::new();
///     let mut buf = [0; 64];
///     loop {
///         let n = stream.read(&mut buf).await?;
///         if n == 0 {
///             break; // the server's side closed after the echo
///         }
///         echoed.extend_from_slice(&buf[..n]);
///     }
///     assert_eq!(echoed, b"ping");
///     server.await.unwrap()
/// })
/// .unwrap();
/// ```
#[derive(Debug)]
pub struct TcpStream(IoSource<mio::net::TcpStream>);

impl_socket_stream!(TcpStream);

impl TcpStream {
    /// Connects to `addr`: a `SocketAddr`, `"127.0.0.1:8080"`, `("localhost", 8080)`, a list
    /// of addresses, … (see [`ToSocketAddrs`]). A host name is resolved on the blocking
    /// pool, never on the loop; each address it gives is tried in turn, and the last error
    /// is returned if none answers.
    ///
    /// In a cancelled region it fails before resolving or sending anything; cancelled while
    /// a lookup or a handshake is under way, it abandons the attempt (the socket is closed).
    ///
    /// ```
    /// # treeloop::block_on(async {
    /// use treeloop::net::{TcpListener, TcpStream};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    /// let port = listener.local_addr().unwrap().port();
    /// let stream = TcpStream::connect(("localhost", port)).await.unwrap();
    /// assert_eq!(stream.peer_addr().unwrap().port(), port);
    /// # });
    /// ```
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        // An await point: a cancelled connect must not even resolve a name or send its SYN
        // (R7); and no socket is made where it could not be registered.
        super::not_cancelled().await?;
        sockets_allowed()?;
        let mut last_error = None;
        for addr in target_of(addr).resolve().await? {
            match TcpStream::connect_addr(addr).await {
                Ok(stream) => return Ok(stream),
                Err(err) if Cancelled::from_io(&err).is_some() => return Err(err),
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.expect("resolve returns at least one address"))
    }

    /// Connects to one address.
    async fn connect_addr(addr: SocketAddr) -> io::Result<TcpStream> {
        let stream = TcpStream(IoSource::new(mio::net::TcpStream::connect(addr)?)?);
        // Writable means the handshake ended; `take_error` says how.
        stream
            .0
            .io(Direction::Write, |s| match s.take_error()? {
                Some(err) => Err(err),
                None => match s.peer_addr() {
                    Ok(_) => Ok(()),
                    Err(err) if err.kind() == io::ErrorKind::NotConnected => {
                        Err(io::ErrorKind::WouldBlock.into())
                    }
                    Err(err) => Err(err),
                },
            })
            .await?;
        Ok(stream)
    }

    /// Takes over a connected standard stream (made non-blocking here).
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        sockets_allowed()?;
        stream.set_nonblocking(true)?;
        Ok(TcpStream(IoSource::new(mio::net::TcpStream::from_std(
            stream,
        ))?))
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().local_addr()
    }

    /// Sets `TCP_NODELAY` (no Nagle batching: what request/response protocols want).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.0.get_ref().set_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.0.get_ref().nodelay()
    }
}
