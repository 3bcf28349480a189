//! The [`Listener`] trait: what an accept loop needs, so one loop serves TCP, Unix and
//! in-memory connections alike.

use std::fmt;
use std::future::Future;
use std::io;

use futures_io::{AsyncRead, AsyncWrite};

/// Something that accepts connections: [`TcpListener`](super::TcpListener),
/// [`UnixListener`](super::UnixListener), [`sim::Listener`](crate::sim::Listener) (in memory,
/// for seeded tests), or your own (a TLS acceptor wrapping one of them).
///
/// Write the accept loop once, generic over the listener, and run it on real sockets in
/// production and on `sim::listener` under a seed:
///
/// ```
/// use futures_io::{AsyncRead, AsyncWrite};
/// use treeloop::net::Listener;
///
/// /// Accepts `n` connections and says hello on each.
/// async fn greet<L: Listener>(listener: &L, n: usize) -> std::io::Result<()> {
///     for _ in 0..n {
///         let (stream, peer) = listener.accept().await?;
///         let hello = format!("hello {peer:?}\n");
///         treeloop::spawn(async move {
///             let mut stream = stream;
///             std::future::poll_fn(|cx| {
///                 std::pin::Pin::new(&mut stream).poll_write(cx, hello.as_bytes())
///             })
///             .await
///         });
///     }
///     Ok(())
/// }
///
/// let runtime = treeloop::Builder::new().seed(1).build().unwrap();
/// let greeting = runtime.block_on(async {
///     let (listener, connector) = treeloop::sim::listener(64);
///     let client = connector.connect().await.unwrap();
///     greet(&listener, 1).await.unwrap();
///     let mut buf = [0; 64];
///     let n = client.read(&mut buf).await.unwrap();
///     String::from_utf8(buf[..n].to_vec()).unwrap()
/// });
/// assert_eq!(greeting, "hello ConnectionId(1)\n");
/// ```
pub trait Listener {
    /// A connection.
    type Io: AsyncRead + AsyncWrite + Unpin + 'static;
    /// The peer's address.
    type Addr: fmt::Debug;

    /// Waits for the next connection; a treeloop await point (fails with the `io::Error`
    /// wrapping `Cancelled` when its region is cancelled, taking no connection).
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Io, Self::Addr)>>;
}

impl Listener for super::TcpListener {
    type Io = super::TcpStream;
    type Addr = std::net::SocketAddr;

    fn accept(&self) -> impl Future<Output = io::Result<(Self::Io, Self::Addr)>> {
        super::TcpListener::accept(self)
    }
}

impl Listener for super::UnixListener {
    type Io = super::UnixStream;
    type Addr = std::os::unix::net::SocketAddr;

    fn accept(&self) -> impl Future<Output = io::Result<(Self::Io, Self::Addr)>> {
        super::UnixListener::accept(self)
    }
}

impl Listener for crate::sim::Listener {
    type Io = crate::sim::DuplexStream;
    type Addr = crate::sim::ConnectionId;

    fn accept(&self) -> impl Future<Output = io::Result<(Self::Io, Self::Addr)>> {
        crate::sim::Listener::accept(self)
    }
}
