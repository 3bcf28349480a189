//! hyper 1.x on treeloop, with a shutdown that is graceful all the way down.
//!
//! - [`HyperIo`] adapts any futures-io stream (treeloop's TCP and Unix sockets, `sim`
//!   streams, futures-rustls) to hyper's `rt::Read`/`rt::Write`.
//! - [`TreeloopExecutor`] is hyper's `rt::Executor`: it spawns into the task tree, so what
//!   hyper spawns (HTTP/2 streams) is a child of its connection, cancelled and awaited with
//!   it. [`TreeloopTimer`] is hyper's `rt::Timer` on treeloop's clock (virtual in tests).
//! - [`serve()`] (and [`Server`] for options) runs a hyper service on a listener: a task per
//!   connection, HTTP/1.1 with keep-alive and HTTP/2 with prior knowledge. Cancelled (Ctrl-C,
//!   SIGTERM with `Builder::shutdown_on_signal`, a parent's cancel), it stops accepting and
//!   closes the listener first, then calls hyper's `graceful_shutdown()` on every
//!   connection, so requests in flight finish and idle keep-alive connections close; what is
//!   still open after the grace period is cut off. It returns a [`Summary`].
//! - [`client::handshake`] makes HTTP/1.1 requests over a treeloop stream, its connection a
//!   child task of the caller.
//!
//! Cancellation reaches hyper two ways, and the difference is the point of this crate: as an
//! I/O error (a plain `conn.await` in a cancelled task: treeloop's socket reads fail with
//! `Cancelled`, hyper fails the connection, a request in flight gets no response), or as a
//! graceful shutdown (`serve`, or `conn.on_cancel(|c, _| c.graceful_shutdown())` by hand:
//! hyper finishes what it started).
//!
//! ```no_run
//! use std::convert::Infallible;
//! use http_body_util::Full;
//! use hyper::body::{Bytes, Incoming};
//! use hyper::{Request, Response, service::service_fn};
//!
//! let runtime = treeloop::Builder::new().shutdown_on_signal(true).build()?;
//! runtime.block_on(async {
//!     let listener = treeloop::net::TcpListener::bind("127.0.0.1:8080")?;
//!     let service = service_fn(|_: Request<Incoming>| async {
//!         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("hello world"))))
//!     });
//!     let summary = treeloop_hyper::serve(listener, service).await?;
//!     println!("{summary}");
//!     Ok::<_, std::io::Error>(())
//! })?;
//! # Ok::<_, std::io::Error>(())
//! ```
//!
//! tokio appears in the dependency tree only as hyper's (and h2's) own dependency, with its
//! `sync`, `io-util` and `bytes` features: no tokio runtime, sockets or timers run here
//! (`cargo tree -e features -i tokio -p treeloop-hyper` shows no `rt`, `net` or `time`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
mod io;
mod rt;
mod serve;

pub use io::{HyperIo, SCRATCH};
pub use rt::{TreeloopExecutor, TreeloopTimer};
pub use serve::{BoxError, ConnectionError, HttpService, Listener, Server, Summary, serve};
