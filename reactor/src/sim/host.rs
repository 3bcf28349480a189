//! Hosts: a name, an address, and a task subtree, which is how a socket knows its host.
//!
//! A running host is one task in the net's region (its *main task*) and everything spawned
//! under it. A socket created anywhere in that subtree belongs to the host: `bind` and
//! `connect` walk the tree from the node being polled to the root
//! ([`treeloop::task::ancestry`](treeloop_executor::ancestry)) and take the nearest
//! ancestor that is a host's main task, looked up in this thread's registry of main tasks.
//!
//! Why the tree and not a task-local or an explicit `host.bind(..)`: the tree already says
//! who belongs to whom, so a connection handler spawned with plain `treeloop::spawn`, a
//! scope's member or a shielded cleanup inside the host need no wrapping and no argument,
//! and code generic over the stream type (which calls `bind`/`connect` with the shapes of
//! `treeloop::net`) runs unchanged on a host. A task-local would have to be copied into
//! every spawn, which treeloop's `spawn` knows nothing about.
//!
//! The record the world keeps of a host (`HostState`: name, address, ports, ring) is
//! `state.rs`'s; this file is what works on it.
//!
//! Invariants: a host's generation grows by one each time it is started; the registry
//! holds the main task of each running generation and nothing else (a crash, a finished
//! shutdown, a restart and the net's drop remove entries); a lookup that finds a stale
//! world or generation finds no host.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use treeloop_executor::{Cancelled, TaskId, poll_cancelled};

use super::state::{HostId, Running};
use super::world::World;

/// A simulated host: a name, an address, and (once started) a task subtree. Cheap to
/// clone; [`Net::host`](super::Net::host) makes one.
#[derive(Clone)]
pub struct Host {
    /// The network.
    pub(crate) world: Rc<RefCell<World>>,
    /// Which host.
    pub(crate) id: HostId,
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let world = self.world.borrow();
        let host = &world.hosts[self.id];
        write!(f, "Host({} {})", host.name, host.ip)
    }
}

impl Host {
    /// The host's name.
    pub fn name(&self) -> String {
        self.world.borrow().hosts[self.id].name.clone()
    }

    /// The host's address: 10.0.0.1 for the first host a net makes, 10.0.0.2 for the
    /// second, and so on (in memory only: nothing is ever sent to it).
    pub fn ip(&self) -> IpAddr {
        self.world.borrow().hosts[self.id].ip
    }

    /// The socket address of `port` on this host.
    pub fn addr(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.ip(), port)
    }

    /// Whether the host's task subtree was started and has not crashed, been shut down,
    /// or finished.
    pub fn is_running(&self) -> bool {
        self.world.borrow().hosts[self.id]
            .running
            .as_ref()
            .is_some_and(|running| !running.handle.borrow().is_finished())
    }

    /// Starts the host: `future` runs as its main task, in the net's region, and every
    /// task spawned under it is the host's (its sockets are the host's sockets). The
    /// [`HostTask`] resolves to the future's output, or to [`HostError::Crashed`] if the
    /// host crashed first.
    ///
    /// ```
    /// use treeloop::sim::{Net, TcpListener, TcpStream};
    ///
    /// let runtime = treeloop::Builder::new().seed(1).build().unwrap();
    /// runtime.block_on(async {
    ///     let net = Net::new();
    ///     net.host("server").spawn(async {
    ///         let listener = TcpListener::bind(80)?;
    ///         let (stream, _peer) = listener.accept().await?;
    ///         stream.write_all(b"hi").await
    ///     });
    ///     let reply = net.host("client").spawn(async {
    ///         let stream = TcpStream::connect("server:80").await?;
    ///         let mut buf = [0; 2];
    ///         let n = stream.read(&mut buf).await?;
    ///         std::io::Result::Ok(buf[..n].to_vec())
    ///     });
    ///     assert_eq!(reply.await.unwrap().unwrap(), b"hi");
    /// });
    /// ```
    ///
    /// # Panics
    ///
    /// If the host is running already (crash it, shut it down, or use
    /// [`Net::restart`](super::Net::restart)), or once its `Net` is gone.
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> HostTask<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        assert!(
            !self.is_running(),
            "sim host {:?} is already running: crash or shut it down first, use \
             net.restart(host, fut), or spawn from inside its task",
            self.name()
        );
        let slot = Rc::new(RefCell::new(Exit::Running(None)));
        let guard = ExitGuard(slot.clone());
        let main = async move {
            let guard = guard;
            let output = future.await;
            guard.returned(output);
        };
        let (region, name, generation) = {
            let mut world = self.world.borrow_mut();
            let host = &mut world.hosts[self.id];
            host.generation += 1;
            let name = format!("sim host {}", host.name);
            (world.region, name, world.hosts[self.id].generation)
        };
        let handle = treeloop_executor::TaskBuilder::new()
            .name(name)
            .spawn_in(&region, main)
            .unwrap_or_else(|refused| {
                panic!("sim host spawned after its Net was dropped ({refused:?}): keep the Net")
            });
        let root = handle.id();
        register(root, &self.world, self.id, generation);
        let running = Running {
            handle: Rc::new(RefCell::new(handle)),
            root,
        };
        // A generation that finished by itself leaves its entry until now.
        let finished = self.world.borrow_mut().hosts[self.id]
            .running
            .replace(running);
        if let Some(finished) = finished {
            unregister(finished.root);
        }
        HostTask { slot }
    }
}

/// How a host's main future ended, for its [`HostTask`].
enum Exit<T> {
    /// Still running; the waker of the task awaiting the `HostTask`.
    Running(Option<Waker>),
    /// It returned this (taken once).
    Returned(Option<T>),
    /// It was dropped before returning: the host crashed (or panicked).
    Crashed,
}

/// Marks the host's exit when the main future returns, or is dropped without returning.
struct ExitGuard<T>(Rc<RefCell<Exit<T>>>);

impl<T> ExitGuard<T> {
    fn returned(self, output: T) {
        let previous = self.0.replace(Exit::Returned(Some(output)));
        if let Exit::Running(Some(waker)) = previous {
            waker.wake();
        }
    }
}

impl<T> Drop for ExitGuard<T> {
    fn drop(&mut self) {
        let mut exit = self.0.borrow_mut();
        if let Exit::Running(waker) = &mut *exit {
            let waker = waker.take();
            *exit = Exit::Crashed;
            drop(exit);
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

/// Why a [`HostTask`] has no output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostError {
    /// The host crashed (or its main future panicked) before the future returned.
    Crashed,
    /// The task awaiting the `HostTask` was cancelled (the host is not affected).
    Cancelled(Cancelled),
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Crashed => f.write_str("the sim host crashed before its task returned"),
            HostError::Cancelled(cancelled) => cancelled.fmt(f),
        }
    }
}

impl std::error::Error for HostError {}

/// The output of a host's main future, from [`Host::spawn`] or
/// [`Net::restart`](super::Net::restart). It resolves when the main future returns (its
/// children may still be running, unlike a `JoinHandle`) or crashes. Dropping it changes
/// nothing. A treeloop await point: in a cancelled region it returns
/// `Err(HostError::Cancelled)` and the output stays for a later await.
pub struct HostTask<T> {
    /// Where the main future's exit lands.
    slot: Rc<RefCell<Exit<T>>>,
}

impl<T> fmt::Debug for HostTask<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &*self.slot.borrow() {
            Exit::Running(_) => "running",
            Exit::Returned(_) => "returned",
            Exit::Crashed => "crashed",
        };
        write!(f, "HostTask({state})")
    }
}

impl<T> Future for HostTask<T> {
    type Output = Result<T, HostError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(cancelled) = poll_cancelled(cx) {
            return cancelled.map(|cancelled| Err(HostError::Cancelled(cancelled)));
        }
        let mut exit = self.slot.borrow_mut();
        match &mut *exit {
            Exit::Running(waker) => {
                *waker = Some(cx.waker().clone());
                Poll::Pending
            }
            Exit::Returned(output) => Poll::Ready(Ok(output
                .take()
                .expect("HostTask polled after it returned its output: await it once"))),
            Exit::Crashed => Poll::Ready(Err(HostError::Crashed)),
        }
    }
}

/// Where a socket's host is: the world, the host, and its generation.
pub(crate) struct Here {
    /// The network.
    pub(crate) world: Rc<RefCell<World>>,
    /// The host.
    pub(crate) host: HostId,
}

/// A registered main task: which world, host and generation it starts.
type Entry = (Weak<RefCell<World>>, HostId, u64);

thread_local! {
    /// The main task of every running host generation on this thread, by task id. A
    /// `BTreeMap`, not a `HashMap`: nothing here may depend on a random hasher.
    static REGISTRY: RefCell<BTreeMap<TaskId, Entry>> = const { RefCell::new(BTreeMap::new()) };
}

fn register(root: TaskId, world: &Rc<RefCell<World>>, host: HostId, generation: u64) {
    REGISTRY.with(|registry| {
        registry
            .borrow_mut()
            .insert(root, (Rc::downgrade(world), host, generation))
    });
}

/// Forgets a main task (its generation ended).
pub(crate) fn unregister(root: TaskId) {
    REGISTRY.with(|registry| registry.borrow_mut().remove(&root));
}

/// Forgets every main task of `world` (the net is going).
pub(crate) fn unregister_world(world: &Weak<RefCell<World>>) {
    REGISTRY.with(|registry| {
        registry
            .borrow_mut()
            .retain(|_, (entry, _, _)| !entry.ptr_eq(world) && entry.strong_count() > 0);
    });
}

/// The host whose subtree is being polled, if any: the nearest ancestor that is the main
/// task of a running generation.
pub(crate) fn here() -> Option<Here> {
    let ancestry = treeloop_executor::ancestry();
    REGISTRY.with(|registry| {
        let registry = registry.borrow();
        ancestry.iter().find_map(|id| {
            let (world, host, generation) = registry.get(id)?;
            let world = world.upgrade()?;
            let current = world.borrow().hosts[*host].generation == *generation;
            current.then(|| Here { world, host: *host })
        })
    })
}

/// [`here`], or the panic that names the fix.
#[track_caller]
pub(crate) fn expect_here(what: &str) -> Here {
    here().unwrap_or_else(|| {
        panic!(
            "{what} called outside a sim host: call it inside a task started with \
             host.spawn(..) (or spawned under one)"
        )
    })
}

/// Something [`TcpStream::connect`](super::TcpStream::connect) and
/// [`UdpSocket::send_to`](super::UdpSocket::send_to) can reach: a `SocketAddr` of a host,
/// or `"name:port"` / `"10.0.0.2:port"` as text, or `(name, port)`.
pub trait ToSimAddr {
    /// The host (a name, or an address as text) and the port.
    fn to_sim_addr(&self) -> io::Result<(String, u16)>;
}

impl ToSimAddr for SocketAddr {
    fn to_sim_addr(&self) -> io::Result<(String, u16)> {
        Ok((self.ip().to_string(), self.port()))
    }
}

impl ToSimAddr for str {
    fn to_sim_addr(&self) -> io::Result<(String, u16)> {
        let (host, port) = self.rsplit_once(':').ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("sim address {self:?} has no port: write \"host:port\""),
            )
        })?;
        let port = port.parse().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("sim address {self:?} has an invalid port"),
            )
        })?;
        Ok((host.to_owned(), port))
    }
}

impl ToSimAddr for String {
    fn to_sim_addr(&self) -> io::Result<(String, u16)> {
        self.as_str().to_sim_addr()
    }
}

impl ToSimAddr for (&str, u16) {
    fn to_sim_addr(&self) -> io::Result<(String, u16)> {
        Ok((self.0.to_owned(), self.1))
    }
}

impl<T: ToSimAddr + ?Sized> ToSimAddr for &T {
    fn to_sim_addr(&self) -> io::Result<(String, u16)> {
        (**self).to_sim_addr()
    }
}

impl World {
    /// The host a target names and the socket address it stands for.
    pub(crate) fn resolve(&self, name: &str, port: u16) -> io::Result<(HostId, SocketAddr)> {
        let ip: Option<IpAddr> = name.parse().ok();
        let found = self
            .hosts
            .iter()
            .position(|host| Some(host.ip) == ip || host.name == name);
        match found {
            Some(id) => Ok((id, SocketAddr::new(self.hosts[id].ip, port))),
            None if ip.is_some() => Err(io::Error::new(
                io::ErrorKind::HostUnreachable,
                format!("no sim host has the address {name}"),
            )),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no sim host is named {name:?}"),
            )),
        }
    }
}
