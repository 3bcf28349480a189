//! In-memory networking for deterministic tests: [`duplex()`] streams and a [`listener()`] with
//! its [`Connector`], and [`Net`], a simulated network of hosts.
//!
//! Real sockets make a seeded run unreproducible (the OS decides when bytes arrive), so a
//! seeded runtime refuses them. These live in memory instead: what one end writes the other
//! reads, in the order the scheduler runs them, so a seed replays exactly. They have the
//! same shape as the sockets of [`net`](crate::net): a [`DuplexStream`] reads and writes through `&self`,
//! implements futures-io's `AsyncRead`/`AsyncWrite`, splits with `into_split`, half-closes
//! with `shutdown`; a [`Listener`] accepts like a `TcpListener` and implements
//! [`net::Listener`](crate::net::Listener), so one accept loop, generic over the listener,
//! serves real clients in production and in-memory ones under a seed.
//!
//! ```
//! use treeloop::net::Listener as _;
//! use treeloop::sim;
//!
//! let runtime = treeloop::Builder::new().seed(7).build().unwrap();
//! let echoed = runtime.block_on(async {
//!     let (listener, connector) = sim::listener(1024);
//!     let server = treeloop::spawn(async move {
//!         let (stream, _peer) = listener.accept().await?;
//!         let mut buf = [0; 5];
//!         let n = stream.read(&mut buf).await?;
//!         stream.write_all(&buf[..n]).await
//!     });
//!     let client = connector.connect().await.unwrap();
//!     client.write_all(b"hello").await.unwrap();
//!     let mut buf = [0; 5];
//!     let n = client.read(&mut buf).await.unwrap();
//!     server.await.unwrap().unwrap();
//!     buf[..n].to_vec()
//! });
//! assert_eq!(echoed, b"hello");
//! ```
//!
//! Every operation is a treeloop await point: in a cancelled region a read fails without
//! consuming anything, a write without writing, an accept without taking a connection off
//! the queue, a connect without connecting (R7).
//!
//! # A network of hosts
//!
//! A [`Net`] holds named [`Host`]s, each with an address and a task subtree started by
//! [`Host::spawn`]; inside it, [`TcpListener`], [`TcpStream`] and [`UdpSocket`] (the shapes
//! of `treeloop::net`'s) belong to the host, found through the task tree. Messages cross
//! [`Link`]s with latency, jitter, bandwidth, loss and duplication drawn from the net's
//! seed, on virtual time; [`Net::partition`]/[`Net::repair`] and [`Net::hold`]/
//! [`Net::release`] cut links on demand. A crash ([`Net::crash`]) aborts the host's
//! subtree and resets its connections (peers see `ConnectionReset`); a shutdown
//! ([`Net::shutdown`]) cancels it (cleanups run, peers read an orderly end of stream);
//! [`Net::restart`] starts its next generation. Each host keeps its last [`Message`]s.
//!
//! Files, from the top: `net.rs` (the `Net` and its faults), `pump.rs` (the pump that
//! delivers on time, and what a message meets on arrival), `tcp.rs` and `udp.rs` (the
//! sockets), `host.rs` (hosts, their registry and addresses), `conn.rs` (what the world
//! does with a connection: its segments sent, taken on arrival, its ends and resets),
//! `world.rs` (the shared state, and how a message is put in flight), `state.rs` (the
//! records the world keeps of hosts, connections, listeners and UDP-like sockets), `link.rs`
//! (link settings and the generator), `record.rs` (the message rings). A file imports only
//! files after it in this list (and `duplex.rs`, whose await point the sockets share).

mod conn;
mod duplex;
mod host;
mod link;
mod listener;
mod net;
mod pump;
mod record;
mod state;
mod tcp;
mod udp;
mod world;

pub use duplex::{DuplexStream, duplex};
pub use host::{Host, HostError, HostTask, ToSimAddr};
pub use link::{Link, LinkStats};
pub use listener::{ConnectionId, Connector, Listener, listener};
pub use net::{Net, take_last_messages};
pub use record::{Event, Message, Payload, Protocol};
pub use state::WINDOW;
pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;
