//! The client side: HTTP/1.1 requests with hyper's `client::conn` over a treeloop stream.
//!
//! [`handshake`] spawns the connection's task as a child of the caller, so it is part of
//! the caller's subtree: the caller finishes only after it (R2), and it ends when the
//! [`Client`] is dropped (hyper closes a connection whose sender is gone, once its request
//! in flight is done). The connection's own I/O never sees cancellation (it runs under
//! `on_cancel` with nothing to shut down but the client's requests); what the caller's
//! cancellation interrupts is [`Client::send`], an await point like any other: in a
//! cancelled region it fails with the `io::Error` wrapping `Cancelled`, and the request
//! it was waiting for is abandoned.

use std::error::Error as StdError;
use std::io;

use futures_io::{AsyncRead, AsyncWrite};
use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use treeloop::{FutureExt, JoinHandle};

use crate::io::HyperIo;

/// Starts an HTTP/1.1 client connection over `io` (connected already, and TLS-wrapped if
/// need be); see the module docs.
///
/// ```no_run
/// use http_body_util::{BodyExt, Empty};
/// use hyper::body::Bytes;
///
/// treeloop::block_on(async {
///     let stream = treeloop::net::TcpStream::connect("127.0.0.1:8080").await?;
///     let mut client = treeloop_hyper::client::handshake(stream).await?;
///     let request = hyper::Request::get("/").header("host", "localhost").body(Empty::<Bytes>::new()).unwrap();
///     let response = client.send(request).await?;
///     let body = response.into_body().collect().or_cancel().await?;
///     # let _ = body;
///     Ok::<_, std::io::Error>(())
/// })?;
/// # use treeloop::FutureExt;
/// # Ok::<_, std::io::Error>(())
/// ```
pub async fn handshake<I, B>(io: I) -> io::Result<Client<B>>
where
    I: AsyncRead + AsyncWrite + Unpin + 'static,
    B: Body + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let (sender, connection) = http1::Builder::new()
        .handshake(HyperIo::new(io))
        .or_cancel()
        .await?
        .map_err(io::Error::other)?;
    // Nothing to shut down gracefully but the requests, which the caller owns.
    let connection = treeloop::spawn(connection.on_cancel(|_, _| {}));
    Ok(Client { sender, connection })
}

/// An HTTP/1.1 client connection (see [`handshake`]).
#[derive(Debug)]
pub struct Client<B> {
    /// hyper's half that sends requests.
    sender: http1::SendRequest<B>,
    /// The connection's task, a child of the task that made the handshake.
    connection: JoinHandle<hyper::Result<()>>,
}

impl<B> Client<B>
where
    B: Body + 'static,
{
    /// Sends `request` and waits for the response's head (read its body with
    /// `http_body_util::BodyExt`, wrapped in `or_cancel()` to make that wait cancellable
    /// too). An await point: in a cancelled region it fails with the `io::Error` wrapping
    /// `Cancelled`, abandoning the request. hyper's errors come as `io::Error`s of kind
    /// `Other` with the `hyper::Error` as their source.
    pub async fn send(&mut self, request: Request<B>) -> io::Result<Response<Incoming>> {
        self.sender
            .ready()
            .or_cancel()
            .await?
            .map_err(io::Error::other)?;
        self.sender
            .send_request(request)
            .or_cancel()
            .await?
            .map_err(io::Error::other)
    }

    /// Whether the connection has ended (the server closed it, or it failed): requests
    /// would fail, make a new client.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed() || self.connection.is_finished()
    }
}
