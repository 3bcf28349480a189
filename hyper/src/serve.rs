//! `serve`: an HTTP server whose shutdown is graceful all the way down.
//!
//! ```text
//!   accept loop ──cancelled──> close the listener ──> cancel the connections' shield
//!    │ one task per connection                        each connection: graceful_shutdown()
//!    ▼ (in a shield: the outside's cancel             (in-flight requests finish, idle
//!       does not reach them directly)                  keep-alive connections close)
//!                                                      │ after the grace period: cut off
//!                                                      ▼
//!                                   every connection finished ──> Summary
//! ```
//!
//! # Ground rules
//!
//! - **Stop accepting, then drain.** The connections live in a shield region of their own,
//!   so the cancellation that stops the server reaches the accept loop alone. The loop
//!   closes the listener (new clients are refused at once instead of queueing in a backlog
//!   that is about to be closed), and only then cancels the connections' region. Cancelled
//!   in the same instant, the two would race: clients whose connection was closed reconnect
//!   into the dying backlog and see resets.
//! - **Each connection drains** with `on_cancel`: the cancellation calls hyper's
//!   `graceful_shutdown()` (HTTP/1.1: finish the request in flight, then close; HTTP/2:
//!   GOAWAY, finish the open streams) and the connection runs on with cancellation hidden,
//!   for at most the grace period; then it is cut off (its future dropped, its socket
//!   closed). A request's own handler, and the HTTP/2 streams hyper spawns, are children of
//!   the connection and drain with it.
//! - **`serve` returns only when every connection has finished** (R2, R3), with a
//!   [`Summary`]: connections served, drained (open at the shutdown and finished within the
//!   grace period), cut off.
//! - **The accept loop survives running out of descriptors** (EMFILE, ENFILE, ENOBUFS,
//!   ECONNABORTED): it backs off and retries (`treeloop::net::AcceptBackoff`), reporting the
//!   first time through the runtime's report sink. Any other accept error stops the server
//!   gracefully and is returned.
//! - **A connection's failure is the connection's**: a client that resets, a malformed
//!   request, a service that panics, end that connection and are counted, never the server.
//!   (A panic would otherwise fail the task tree around the server, R17; for a server, one
//!   bad request must not take down every other connection.) Panics are reported through
//!   the report sink.
//! - **Protocols**: HTTP/1.1 with keep-alive, and HTTP/2 with prior knowledge (h2c): a
//!   connection that opens with the HTTP/2 preface is served as HTTP/2. TLS (and ALPN) is the
//!   caller's: accept, handshake with futures-rustls, then [`Server::serve_connection`].

use std::cell::Cell;
use std::error::Error as StdError;
use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use futures_io::{AsyncRead, AsyncWrite};
use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper::service::Service;
use treeloop::net::AcceptBackoff;
use treeloop::{CancelReason, Cancelled, FutureExt};
use treeloop_executor::{Region, RegionKind};

use crate::io::HyperIo;
use crate::rt::{TreeloopExecutor, TreeloopTimer};

/// The bytes every HTTP/2 prior-knowledge connection starts with (RFC 9113, 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A boxed error that can cross threads, as hyper wants its services' errors.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// A hyper service `serve` can run: any `hyper::service::Service` of requests whose errors
/// and response bodies hyper can take, and whose futures live on this thread (no `Send`
/// needed). One name for the bounds hyper's connections put on a service, implemented for
/// every service that meets them (`hyper::service::service_fn(handler)`, say).
pub trait HttpService:
    Service<
        Request<Incoming>,
        Response = Response<Self::Body>,
        Error: Into<BoxError>,
        Future: 'static,
    > + 'static
{
    /// The response body.
    type Body: Body<Error: Into<BoxError>> + 'static;
}

impl<S, B> HttpService for S
where
    S: Service<Request<Incoming>, Response = Response<B>, Error: Into<BoxError>, Future: 'static>
        + 'static,
    B: Body<Error: Into<BoxError>> + 'static,
{
    type Body = B;
}

/// Something `serve` can accept connections from: treeloop's TCP and Unix listeners, the
/// in-memory `treeloop::sim::Listener` for seeded tests, or a listener of your own (a TLS
/// acceptor wrapping one). The same trait as [`treeloop::net::Listener`].
pub use treeloop::net::Listener;

/// Which protocols a server speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocols {
    /// HTTP/1.1, and HTTP/2 for connections that open with its preface.
    Auto,
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 (prior knowledge) only.
    Http2,
}

/// Options for [`serve`]; `Server::new().serve(listener, service)` with the defaults.
#[derive(Clone, Debug)]
pub struct Server {
    /// How long connections may take to drain once the server is cancelled.
    grace: Duration,
    /// Which protocols to speak.
    protocols: Protocols,
    /// hyper's HTTP/1.1 options.
    http1: hyper::server::conn::http1::Builder,
    /// hyper's HTTP/2 options.
    http2: hyper::server::conn::http2::Builder<TreeloopExecutor>,
}

impl Default for Server {
    fn default() -> Server {
        Server::new()
    }
}

impl Server {
    /// The default grace period: 30 s, Kubernetes' default `terminationGracePeriodSeconds`
    /// (what a container gets between SIGTERM and SIGKILL).
    pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

    /// HTTP/1.1 with keep-alive and HTTP/2 with prior knowledge, a 30 s grace period, and
    /// hyper's defaults otherwise (on treeloop's timer: a 30 s header read timeout).
    pub fn new() -> Server {
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1.timer(TreeloopTimer);
        let mut http2 = hyper::server::conn::http2::Builder::new(TreeloopExecutor);
        http2.timer(TreeloopTimer);
        Server {
            grace: Server::DEFAULT_GRACE,
            protocols: Protocols::Auto,
            http1,
            http2,
        }
    }

    /// How long connections may take to finish their requests once the server is
    /// cancelled; the ones still open then are cut off.
    pub fn grace_period(mut self, grace: Duration) -> Server {
        self.grace = grace;
        self
    }

    /// Speak HTTP/1.1 only.
    pub fn http1_only(mut self) -> Server {
        self.protocols = Protocols::Http1;
        self
    }

    /// Speak HTTP/2 (prior knowledge) only.
    pub fn http2_only(mut self) -> Server {
        self.protocols = Protocols::Http2;
        self
    }

    /// hyper's HTTP/1.1 options, to change (keep-alive, header read timeout, ...).
    pub fn http1(&mut self) -> &mut hyper::server::conn::http1::Builder {
        &mut self.http1
    }

    /// hyper's HTTP/2 options, to change (stream limits, keep-alive pings, ...).
    pub fn http2(&mut self) -> &mut hyper::server::conn::http2::Builder<TreeloopExecutor> {
        &mut self.http2
    }

    /// Serves `listener` until the task (or region) running this is cancelled, then shuts
    /// down gracefully (see the module docs) and returns what it did. `Err` only for an
    /// accept error that is not transient, after the connections drained.
    pub async fn serve<L, S>(self, listener: L, service: S) -> io::Result<Summary>
    where
        L: Listener,
        S: HttpService + Clone,
    {
        let server = Rc::new(self);
        let tally = Rc::new(Tally::default());
        // The connections' region: a shield, so only the accept loop hears the cancel.
        let connections = Region::open(RegionKind::Shield);
        let spawn_into = connections.handle();

        // 1. Accept until cancelled (or a fatal error).
        let mut backoff = AcceptBackoff::new();
        let (why, failed) = loop {
            // Transient errors are waited out in there; what comes back is a connection,
            // the cancellation (of the accept, or of the backoff's wait) or a fatal error.
            match backoff.accept(&listener).await {
                Ok((io, _peer)) => {
                    tally.accepted.set(tally.accepted.get() + 1);
                    let connection = serve_one(server.clone(), tally.clone(), io, service.clone());
                    // Refused only once the region closed, which happens after this loop.
                    let _ = spawn_into.spawn(connection);
                }
                Err(err) => {
                    break match Cancelled::from_io(&err) {
                        Some(cancelled) => (cancelled, None),
                        None => (Cancelled::new(CancelReason::Explicit), Some(err)),
                    };
                }
            }
        };

        // 2. Stop accepting: close the listener before anything else.
        drop(listener);

        // 3. Drain: each connection's `on_cancel` calls `graceful_shutdown`.
        connections.cancel(why.reason());
        poll_fn(|cx| {
            if connections.has_children() {
                connections.set_waker(cx.waker());
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
        drop(connections);
        let summary = tally.summary();
        match failed {
            Some(err) => Err(err),
            None => Ok(summary),
        }
    }

    /// Serves one connection (already accepted, and TLS-wrapped if need be) in the task or
    /// region polling this: HTTP/1.1 or HTTP/2 as configured, drained on cancel within the
    /// grace period. `Ok` when the connection ended normally or drained, `Err` with hyper's
    /// error or the grace period's expiry otherwise.
    pub async fn serve_connection<I, S>(&self, io: I, service: S) -> Result<(), ConnectionError>
    where
        I: AsyncRead + AsyncWrite + Unpin + 'static,
        S: HttpService,
    {
        let drained = Cell::new(false);
        self.drive(io, service, &drained).await
    }

    /// [`serve_connection`](Self::serve_connection), noting in `drained` whether the
    /// graceful shutdown was asked for.
    async fn drive<I, S>(
        &self,
        mut io: I,
        service: S,
        drained: &Cell<bool>,
    ) -> Result<(), ConnectionError>
    where
        I: AsyncRead + AsyncWrite + Unpin + 'static,
        S: HttpService,
    {
        // Which protocol: read until the bytes can no longer be the HTTP/2 preface.
        let (prefix, http2) = match self.protocols {
            Protocols::Http1 => (Vec::new(), false),
            Protocols::Http2 => (Vec::new(), true),
            Protocols::Auto => match sniff(&mut io).await {
                Sniffed::Http2(prefix) => (prefix, true),
                Sniffed::Http1(prefix) => (prefix, false),
                // Closed, or cancelled, before a request began: nothing was in flight.
                Sniffed::Gone => return Ok(()),
            },
        };
        let io = HyperIo::with_prefix(io, prefix);
        let grace = self.grace;
        // The two connection types share no trait for `graceful_shutdown`: one drain each.
        let outcome = if http2 {
            let connection = self.http2.serve_connection(io, service);
            connection
                .on_cancel(|connection, _| {
                    drained.set(true);
                    connection.graceful_shutdown();
                })
                .grace(grace)
                .await
        } else {
            let connection = self.http1.serve_connection(io, service);
            connection
                .on_cancel(|connection, _| {
                    drained.set(true);
                    connection.graceful_shutdown();
                })
                .grace(grace)
                .await
        };
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(ConnectionError::Http(err)),
            Err(expired) => Err(ConnectionError::CutOff(expired)),
        }
    }
}

/// Serves `listener` with `service` and the default [`Server`] options until cancelled,
/// then drains: see the module docs.
///
/// ```no_run
/// use std::convert::Infallible;
/// use http_body_util::Full;
/// use hyper::body::Bytes;
/// use hyper::{Request, Response, service::service_fn};
///
/// let runtime = treeloop::Builder::new().shutdown_on_signal(true).build()?;
/// let summary = runtime.block_on(async {
///     let listener = treeloop::net::TcpListener::bind("127.0.0.1:8080")?;
///     let hello = service_fn(|_: Request<hyper::body::Incoming>| async {
///         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("hello world"))))
///     });
///     treeloop_hyper::serve(listener, hello).await
/// })?;
/// println!("{summary}");
/// # Ok::<_, std::io::Error>(())
/// ```
pub async fn serve<L, S>(listener: L, service: S) -> io::Result<Summary>
where
    L: Listener,
    S: HttpService + Clone,
{
    Server::new().serve(listener, service).await
}

/// One connection's task: serve it, count how it ended, keep its panics to itself.
async fn serve_one<I, S>(server: Rc<Server>, tally: Rc<Tally>, io: I, service: S)
where
    I: AsyncRead + AsyncWrite + Unpin + 'static,
    S: HttpService,
{
    let drained = Cell::new(false);
    let outcome = {
        let mut connection = pin!(server.drive(io, service, &drained));
        // A panicking service ends its connection, not the server (see the module docs).
        poll_fn(|cx| {
            panic::catch_unwind(AssertUnwindSafe(|| connection.as_mut().poll(cx)))
                .map_or_else(|payload| Poll::Ready(Err(payload)), |polled| polled.map(Ok))
        })
        .await
    };
    match outcome {
        Ok(Ok(())) if drained.get() => bump(&tally.drained),
        Ok(Ok(())) => bump(&tally.completed),
        Ok(Err(ConnectionError::CutOff(_))) => bump(&tally.cut_off),
        Ok(Err(ConnectionError::Http(_))) => bump(&tally.failed),
        Err(payload) => {
            bump(&tally.failed);
            treeloop_executor::report::report(format_args!(
                "treeloop-hyper: a connection's service panicked, so the connection was \
                 closed (the server goes on): {}",
                treeloop_executor::panic_message(&payload)
            ));
        }
    }
}

fn bump(counter: &Cell<u64>) {
    counter.set(counter.get() + 1);
}

/// What the first bytes of a connection said.
enum Sniffed {
    /// The HTTP/2 preface (read: these bytes).
    Http2(Vec<u8>),
    /// Anything else: HTTP/1.1 (read: these bytes).
    Http1(Vec<u8>),
    /// Closed, failed or cancelled before a byte arrived.
    Gone,
}

/// Reads until the bytes either are the HTTP/2 preface or cannot be: one read for almost
/// every HTTP/1.1 client (its first byte is not `P`), and the 24 bytes of the preface for
/// an HTTP/2 one. A treeloop await point: a server cancelled meanwhile closes the connection.
async fn sniff<I: AsyncRead + Unpin>(io: &mut I) -> Sniffed {
    let mut read = Vec::with_capacity(H2_PREFACE.len());
    let mut buf = [0u8; 24];
    loop {
        let want = H2_PREFACE.len() - read.len();
        let n = poll_fn(|cx| Pin::new(&mut *io).poll_read(cx, &mut buf[..want])).await;
        match n {
            Ok(0) | Err(_) if read.is_empty() => return Sniffed::Gone,
            Ok(0) | Err(_) => return Sniffed::Http1(read),
            Ok(n) => read.extend_from_slice(&buf[..n]),
        }
        if !H2_PREFACE.starts_with(&read) {
            return Sniffed::Http1(read);
        }
        if read.len() == H2_PREFACE.len() {
            return Sniffed::Http2(read);
        }
    }
}

/// How a connection served by [`Server::serve_connection`] failed.
#[derive(Debug)]
pub enum ConnectionError {
    /// hyper's error: the client went away, sent something malformed, a timeout.
    Http(hyper::Error),
    /// It did not drain within the grace period and was cut off.
    CutOff(treeloop::GraceExpired),
}

impl fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionError::Http(err) => write!(f, "HTTP connection failed: {err}"),
            ConnectionError::CutOff(expired) => write!(f, "HTTP connection cut off: {expired}"),
        }
    }
}

impl StdError for ConnectionError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            ConnectionError::Http(err) => Some(err),
            ConnectionError::CutOff(expired) => Some(expired),
        }
    }
}

/// The server's counters, shared with its connection tasks.
#[derive(Debug, Default)]
struct Tally {
    /// Connections accepted.
    accepted: Cell<u64>,
    /// Ended normally before the shutdown reached them.
    completed: Cell<u64>,
    /// Asked to shut down, and finished within the grace period.
    drained: Cell<u64>,
    /// Cut off at the end of the grace period.
    cut_off: Cell<u64>,
    /// Ended with an error or a panic.
    failed: Cell<u64>,
}

impl Tally {
    fn summary(&self) -> Summary {
        Summary {
            served: self.accepted.get(),
            completed: self.completed.get(),
            drained: self.drained.get(),
            aborted: self.cut_off.get(),
            failed: self.failed.get(),
        }
    }
}

/// What a server did, returned by [`serve`] once every connection has finished.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Connections accepted and served.
    pub served: u64,
    /// Of those, connections that ended before the shutdown, normally (the client closed).
    pub completed: u64,
    /// Connections open at the shutdown that finished their requests in flight and closed
    /// within the grace period.
    pub drained: u64,
    /// Connections cut off at the end of the grace period.
    pub aborted: u64,
    /// Connections that failed: the client reset, sent a malformed request or timed out,
    /// or the service panicked.
    pub failed: u64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} connections served: {} completed, {} drained at shutdown, {} cut off, {} failed",
            self.served, self.completed, self.drained, self.aborted, self.failed
        )
    }
}
