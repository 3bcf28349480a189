//! `Net`: a simulated network of hosts under one seed, and the faults a test injects.
//!
//! A `Net` owns a region of the task tree, opened where it was made. Every host's main
//! task and the pump that carries messages run in it, so a dump shows the hosts side by
//! side, a restart from any task lands in the same place, and dropping the last `Net`
//! handle cancels every host (their cleanups run; `block_on` waits for them) and stops the
//! pump.
//!
//! The host model, on the task tree:
//! - **crash** is [`JoinHandle::abort_subtree`](treeloop_executor::JoinHandle::abort_subtree)
//!   on the host's main task: no task of the host runs again, not even its cleanup, and
//!   before that every connection of the host is reset, so each peer's next read or write
//!   fails with `ConnectionReset` (never `Cancelled`: the peers are not cancelled, their
//!   connection is gone). Its listeners and sockets go at once; its port is free for a
//!   restart.
//! - **shutdown** is a cancel of the main task: every await point of the host returns
//!   `Cancelled`, its cleanups run and close their streams (the peers read an orderly end
//!   of stream after the bytes sent before it), and `shutdown` returns once the whole
//!   subtree has finished.
//! - **restart** is a crash (if the host runs) and a new main task: the host's next
//!   generation, with the same name and address and fresh sockets.
//!
//! Invariants: every fault is drawn from the net's generator, seeded once (from
//! [`treeloop::task::scheduling_seed`](treeloop_executor::scheduling_seed) or the seed
//! given), in the order the program sends, and every delay is on the runtime's clock, so a
//! seeded run replays the same messages at the same virtual instants.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::future::poll_fn;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use treeloop_executor::{CancelReason, JoinError, Region, RegionKind, TaskBuilder};

use super::host::{Host, HostTask, unregister, unregister_world};
use super::link::{Link, LinkStats};
use super::pump::pump;
use super::record::Message;
use super::state::HostState;
use super::world::{self, World};

/// A simulated network: hosts, the links between them, and their faults. Cheap to clone
/// (every clone is the same network); dropping the last clone cancels every host.
///
/// ```
/// use std::time::Duration;
/// use treeloop::sim::{Link, Net, UdpSocket};
/// use treeloop::time::Instant;
///
/// let runtime = treeloop::Builder::new().seed(3).build().unwrap();
/// runtime.block_on(async {
///     let net = Net::new();
///     let (a, b) = (net.host("a"), net.host("b"));
///     net.set_link(&a, &b, Link { latency: Duration::from_millis(20), ..Link::default() });
///     b.spawn(async {
///         let socket = UdpSocket::bind(53).unwrap();
///         let mut buf = [0; 8];
///         let (n, from) = socket.recv_from(&mut buf).await.unwrap();
///         socket.send_to(&buf[..n], from).await.unwrap();
///     });
///     let rtt = a.spawn(async {
///         let socket = UdpSocket::bind(0).unwrap();
///         let start = Instant::now();
///         socket.send_to(b"ping", "b:53").await.unwrap();
///         let mut buf = [0; 8];
///         socket.recv_from(&mut buf).await.unwrap();
///         start.elapsed()
///     });
///     assert_eq!(rtt.await.unwrap(), Duration::from_millis(40));
/// });
/// ```
#[derive(Clone)]
pub struct Net {
    /// The network and its region, dropped with the last clone.
    inner: Rc<Inner>,
}

/// What the clones of a `Net` share.
struct Inner {
    /// The network.
    world: Rc<RefCell<World>>,
    /// The region the hosts run in; closed (after a cancel) when the last clone goes.
    region: Option<Region>,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let world = self.inner.world.borrow();
        f.debug_struct("Net")
            .field("hosts", &world.hosts.len())
            .field("in_flight", &world.flights.len())
            .finish()
    }
}

impl Default for Net {
    #[track_caller]
    fn default() -> Self {
        Net::new()
    }
}

impl Net {
    /// A network seeded from the running runtime's seed
    /// ([`treeloop::task::scheduling_seed`](treeloop_executor::scheduling_seed)), so each
    /// seed of `test::check` draws other faults.
    ///
    /// # Panics
    ///
    /// Outside a treeloop runtime.
    #[track_caller]
    pub fn new() -> Net {
        let seed = treeloop_executor::scheduling_seed().unwrap_or_else(|| {
            panic!("sim::Net::new called outside a treeloop runtime: make it inside block_on")
        });
        Net::with_seed(seed)
    }

    /// A network whose faults (jitter, loss, duplication) are drawn from `seed`.
    ///
    /// # Panics
    ///
    /// Outside a treeloop runtime.
    #[track_caller]
    pub fn with_seed(seed: u64) -> Net {
        assert!(
            treeloop_executor::in_runtime(),
            "sim::Net::with_seed called outside a treeloop runtime: make it inside block_on"
        );
        let region = Region::open(RegionKind::Region);
        let world = Rc::new(RefCell::new(World::new(seed, region.handle())));
        TaskBuilder::new()
            .name("sim net pump")
            .spawn_in(&region.handle(), pump(world.clone()))
            .expect("a region just opened accepts spawns");
        Net {
            inner: Rc::new(Inner {
                world,
                region: Some(region),
            }),
        }
    }

    fn world(&self) -> &Rc<RefCell<World>> {
        &self.inner.world
    }

    /// The host named `name`, made (with the next address: 10.0.0.1, 10.0.0.2, ...) if it
    /// is new. It runs nothing until [`Host::spawn`].
    pub fn host(&self, name: &str) -> Host {
        let mut world = self.world().borrow_mut();
        let id = match world.hosts.iter().position(|host| host.name == name) {
            Some(id) => id,
            None => {
                let (index, limit) = (world.hosts.len(), world.ring_limit);
                world.hosts.push(HostState::new(name, index, limit));
                index
            }
        };
        Host {
            world: self.world().clone(),
            id,
        }
    }

    /// Crashes `host`: every connection it has is reset (each peer's next read or write
    /// fails with `ConnectionReset`), its listeners and sockets close, and its whole task
    /// subtree is aborted, so no task of it runs again, cleanups included. Nothing happens
    /// to a host that is not running.
    pub fn crash(&self, host: &Host) {
        let running = world::with(self.world(), |world| {
            let running = world.hosts[host.id].running.take();
            world.reset_host(host.id);
            world.close_udp(host.id);
            running
        });
        if let Some(running) = running {
            unregister(running.root);
            running.handle.borrow().abort_subtree();
        }
    }

    /// Shuts `host` down gracefully: its main task is cancelled, its tasks run their
    /// cleanup (streams they close send their FIN: the peers read end of stream), and this
    /// returns once the whole subtree has finished.
    ///
    /// # Errors
    ///
    /// The main task's `JoinError` if it panicked (or was crashed meanwhile), or a
    /// cancelled one if the task awaiting `shutdown` was cancelled (the host then goes on
    /// shutting down).
    pub async fn shutdown(&self, host: &Host) -> Result<(), JoinError> {
        let running = self.world().borrow().hosts[host.id]
            .running
            .as_ref()
            .map(|running| (running.handle.clone(), running.root));
        let Some((handle, root)) = running else {
            return Ok(());
        };
        handle.borrow().cancel();
        let joined = poll_fn(|cx| Pin::new(&mut *handle.borrow_mut()).poll(cx)).await;
        if joined.as_ref().is_err_and(JoinError::is_cancelled) {
            return joined;
        }
        world::with(self.world(), |world| {
            let host = &mut world.hosts[host.id];
            if host.running.as_ref().is_some_and(|r| r.root == root) {
                host.running = None;
            }
        });
        unregister(root);
        joined
    }

    /// Restarts `host` with `future` as its new main task: a crash first if it runs, then
    /// [`Host::spawn`]. The new generation has the host's name and address, no sockets, and
    /// fresh ports.
    #[track_caller]
    pub fn restart<F>(&self, host: &Host, future: F) -> HostTask<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.crash(host);
        host.spawn(future)
    }

    /// Sets both directions of the link between `a` and `b`.
    pub fn set_link(&self, a: &Host, b: &Host, link: Link) {
        let mut world = self.world().borrow_mut();
        world.link(a.id, b.id).config = link;
        world.link(b.id, a.id).config = link;
    }

    /// Sets what links not yet used start as (1 ms of latency, nothing else, by default).
    pub fn set_default_link(&self, link: Link) {
        self.world().borrow_mut().default_link = link;
    }

    /// Partitions `a` from `b`, both ways: stream segments in flight and sent later wait
    /// (TCP retransmits, so they are delivered after [`repair`](Self::repair), unless their
    /// connection is reset meanwhile), datagrams are dropped, and a connect waits for its
    /// SYN's answer until it times out.
    pub fn partition(&self, a: &Host, b: &Host) {
        self.switch(a, b, |link, on| link.partitioned = on, true);
    }

    /// Ends a partition: the segments it kept are delivered now, in order.
    pub fn repair(&self, a: &Host, b: &Host) {
        self.switch(a, b, |link, on| link.partitioned = on, false);
    }

    /// Holds every message between `a` and `b`, both ways, until [`release`](Self::release).
    pub fn hold(&self, a: &Host, b: &Host) {
        self.switch(a, b, |link, on| link.held = on, true);
    }

    /// Releases a hold: the messages it kept are delivered now, in the order they arrived.
    pub fn release(&self, a: &Host, b: &Host) {
        self.switch(a, b, |link, on| link.held = on, false);
    }

    fn switch(
        &self,
        a: &Host,
        b: &Host,
        set: impl Fn(&mut super::link::LinkState<world::Flight>, bool),
        on: bool,
    ) {
        world::with(self.world(), |world| {
            for (from, to) in [(a.id, b.id), (b.id, a.id)] {
                set(world.link(from, to), on);
            }
            if !on {
                world.flush(a.id, b.id);
                world.flush(b.id, a.id);
            }
        });
    }

    /// `true` with probability `p`, drawn from the net's generator: for a test's own fault
    /// schedule (partition or not, crash or not), so that it follows the seed too.
    pub fn chance(&self, p: f64) -> bool {
        self.world().borrow_mut().rng.chance(p)
    }

    /// How long a connect waits for its SYN's answer (10 s by default).
    pub fn set_connect_timeout(&self, timeout: Duration) {
        self.world().borrow_mut().connect_timeout = timeout;
    }

    /// The counters of the link `from -> to`.
    pub fn link_stats(&self, from: &Host, to: &Host) -> LinkStats {
        self.world().borrow_mut().link(from.id, to.id).stats
    }

    /// The counters of every link, added up.
    pub fn stats(&self) -> LinkStats {
        let world = self.world().borrow();
        world
            .links
            .values()
            .fold(LinkStats::default(), |sum, link| LinkStats {
                sent: sum.sent + link.stats.sent,
                delivered: sum.delivered + link.stats.delivered,
                dropped: sum.dropped + link.stats.dropped,
                held: sum.held + link.stats.held,
            })
    }

    /// The last messages `host` sent or received, oldest first (64 by default; see
    /// [`set_message_limit`](Self::set_message_limit)).
    pub fn last_messages(&self, host: &Host) -> Vec<Message> {
        self.world().borrow().hosts[host.id].ring.to_vec()
    }

    /// How many messages each host remembers (0: none, the cheapest).
    pub fn set_message_limit(&self, limit: usize) {
        let mut world = self.world().borrow_mut();
        world.ring_limit = limit;
        for host in &mut world.hosts {
            host.ring.set_limit(limit);
        }
    }

    /// The last messages of every host, as text: what a failing run reports (a `Net`
    /// dropped while its thread panics writes it to the runtime's report sink).
    pub fn report(&self) -> String {
        report(&self.world().borrow())
    }
}

/// Each host's name, address and last messages: what a report is made of.
type HostMessages = Vec<(String, std::net::IpAddr, Vec<Message>)>;

thread_local! {
    /// The last messages of the last `Net` dropped on this thread while it was not
    /// panicking, for [`take_last_messages`]: a test body that fails by returning `Err`
    /// has dropped its network before `test::check` sees the `Err`.
    static LAST_DROPPED: RefCell<Option<HostMessages>> = const { RefCell::new(None) };
}

/// The report of the last messages of each host of the last [`Net`] dropped on this thread
/// (since the last call), if one was dropped while the thread was not panicking.
/// `test::check` prints it when a body fails by returning `Err` (a panicking body's `Net`
/// reports as it is dropped).
#[doc(hidden)]
pub fn take_last_messages() -> Option<String> {
    LAST_DROPPED
        .with(|last| last.borrow_mut().take())
        .map(|hosts| report_hosts(&hosts))
}

fn report(world: &World) -> String {
    report_hosts(&host_messages(world))
}

fn host_messages(world: &World) -> HostMessages {
    let hosts = world.hosts.iter();
    hosts
        .map(|host| (host.name.clone(), host.ip, host.ring.to_vec()))
        .collect()
}

fn report_hosts(hosts: &HostMessages) -> String {
    let mut text = String::from("treeloop::sim: the last messages of each host");
    for (name, ip, messages) in hosts {
        let _ = write!(text, "\n  {name} ({ip}):");
        if messages.is_empty() {
            text.push_str(" none");
        }
        for message in messages {
            let _ = write!(text, "\n    {message}");
        }
    }
    text
}

impl Drop for Inner {
    fn drop(&mut self) {
        let failing = std::thread::panicking().then(|| report(&self.world.borrow()));
        if failing.is_none() {
            let hosts = host_messages(&self.world.borrow());
            LAST_DROPPED.with(|last| *last.borrow_mut() = Some(hosts));
        }
        world::with(&self.world, |world| {
            world.closed = true;
            if let Some(pump) = world.pump.take() {
                world.to_wake.push(pump);
            }
        });
        unregister_world(&Rc::downgrade(&self.world));
        if let Some(region) = self.region.take() {
            region.cancel(CancelReason::Explicit);
        }
        if let Some(report) = failing {
            treeloop_executor::report::report(format_args!("{report}"));
        }
    }
}
