//! Graceful shutdown of a real TCP echo server: Ctrl-C cancels the task tree, every
//! connection says goodbye to its client, and each level cleans up before the one above it.
//!
//! ```text
//! root           block_on's future: binds 127.0.0.1:0, then runs a `scope` whose body
//! │              waits for Ctrl-C
//! └── server     a member of the root's scope, itself running a `scope` (a nursery) whose
//!     │          body accepts connections
//!     ├── stats  a member of the server's scope: reports the counters every second
//!     └── conn N a member per connection: echoes lines back
//! ```
//!
//! Three demo clients (plain threads with std's blocking sockets, standing in for other
//! programs, untouched by the runtime) connect during the first 2 s and send a few lines.
//! Ctrl-C cancels the root: every task in the tree gets `Err(Cancelled)` at its next await
//! point. Each connection stops reading requests and sends a goodbye inside `shield(..)`
//! (outside it the write would fail at once), half-closes (FIN), and reads what its client
//! still sends until the client hangs up, for at most 1 s, so that no unread byte makes the
//! kernel reset the connection when it closes. The server's scope returns once every member
//! has finished; then the server, then the root's scope; `block_on` returns; exit status 0.
//! A second Ctrl-C during a slow cleanup (a client that does not hang up) exits at once
//! with status 130.
//!
//! Errors do not go unnoticed either. Out of file descriptors (`EMFILE`: more clients than
//! `ulimit -n` allows), `accept` fails but the listener is fine: `AcceptBackoff` waits
//! (5 ms, doubling up to 500 ms, reported once on stderr) and accepts again. An error no
//! wait can cure fails the server's scope, which closes every connection as above; the
//! server's error then fails the root's scope, which cancels the wait for Ctrl-C (a scope's
//! first failure cancels the rest of it), and the program says what failed and exits 1,
//! instead of living on without a listener. `TREELOOP_DEMO_FAIL_ACCEPT=N` makes `accept`
//! fail that way after N connections, to show (and test) this path.
//!
//! With no terminal on stdin (CI, `< /dev/null`) nobody can press Ctrl-C: after 3 s the root
//! calls `treeloop::shutdown()`, which takes the very path Ctrl-C takes (a root cancel).
//! `TREELOOP_DEMO_WAIT_FOR_CTRL_C=1` waits for a real SIGINT anyway (try `kill -INT <pid>`),
//! and `kill -USR1 <pid>` meanwhile prints the live task tree with the tasks' names.
//!
//! Run with: cargo run --release --example graceful_shutdown

use std::cell::Cell;
use std::fmt::Display;
use std::io::{self, BufRead, BufReader, IsTerminal, Write};
use std::net::{Shutdown, SocketAddr};
use std::process::ExitCode;
use std::rc::Rc;
use std::thread;
use std::time::{Duration, Instant};

use treeloop::net::{AcceptBackoff, TcpListener, TcpStream};
use treeloop::time::{interval, sleep, timeout};
use treeloop::{Builder, Cancelled, ScopeError, cancelled, scope, shield};

const CLIENTS: u32 = 3;
const LINES_PER_CLIENT: u32 = 3;
const LEGEND: &str = "\
graceful_shutdown: a TCP echo server whose task tree is shut down by Ctrl-C
legend: [time since start] message, indented by level in the task tree:
  root             block_on's future: a scope holding the server
    server         a member of it, running a scope (nursery)
      stats        scope member: reports every second
      conn N       scope member: serves one connection
        client N   the demo client at the other end (a thread, outside the tree)

";
/// Without a terminal, how long the server runs before the stand-in for Ctrl-C.
const RUN_FOR: Duration = Duration::from_secs(3);
/// How long a connection waits, after its goodbye, for the client to hang up.
const LINGER: Duration = Duration::from_secs(1);
/// Set to N, `accept` fails for good after N connections (see the module docs).
const FAIL_ACCEPT_VAR: &str = "TREELOOP_DEMO_FAIL_ACCEPT";

/// A task's voice: prints with the time since start, indented by its level in the tree.
#[derive(Clone)]
struct Log {
    start: Instant,
    depth: usize,
    name: String,
}

impl Log {
    fn new(start: Instant, depth: usize, name: impl Display) -> Log {
        let name = name.to_string();
        Log { start, depth, name }
    }

    fn child(&self, name: impl Display) -> Log {
        Log::new(self.start, self.depth + 1, name)
    }

    fn say(&self, message: impl Display) {
        let (secs, indent) = (self.start.elapsed().as_secs_f64(), "  ".repeat(self.depth));
        println!("[{secs:4.2}s] {indent}{}: {message}", self.name);
    }
}

/// The server's counters, shared by its tasks (one thread: `Cell` is enough).
#[derive(Default)]
struct Stats {
    open: Cell<usize>,
    echoed: Cell<usize>,
    goodbyes_sent: Cell<usize>,
    closed_cleanly: Cell<usize>,
}

fn bump(counter: &Cell<usize>, by: isize) {
    counter.set(counter.get().saturating_add_signed(by));
}

/// One connection: echoes lines until cancelled, then says goodbye.
async fn connection(log: &Log, stats: &Stats, stream: TcpStream) -> io::Result<()> {
    let mut buf = [0; 1024];
    let serving = async {
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break io::Result::Ok(()); // the client hung up first
            }
            stream.write_all(&buf[..n]).await?;
            bump(&stats.echoed, 1);
            let text = String::from_utf8_lossy(&buf[..n]);
            log.say(format!("echoed {:?}", text.trim_end()));
        }
    };
    // Serving ends with an error: the cancellation we wait for, or a real one (`?`).
    let why = match serving.await {
        Ok(()) => return Ok(()),
        Err(err) => Cancelled::from_io(&err).ok_or(err)?,
    };
    log.say(format!("{why}; sending goodbye (shielded)"));
    // Every await below would fail at once without the shield; the timeout bounds it.
    let goodbye = shield(timeout(LINGER, async {
        let goodbye = format!("goodbye from {}: the server is shutting down\n", log.name);
        stream.write_all(goodbye.as_bytes()).await?;
        bump(&stats.goodbyes_sent, 1);
        stream.shutdown(Shutdown::Write)?; // FIN: no more from us
        // Read (and drop) what the client still sends until it hangs up: closing with
        // unread bytes in the receive buffer would make the kernel send a reset.
        while stream.read(&mut buf).await? > 0 {}
        io::Result::Ok(())
    }));
    match goodbye.await {
        Ok(Ok(())) => {
            bump(&stats.closed_cleanly, 1);
            log.say("the client hung up after the goodbye; closed");
        }
        Ok(Err(err)) => log.say(format!("goodbye failed ({err}); closed")),
        Err(_elapsed) => log.say(format!("client still there after {LINGER:?}; closed")),
    }
    Ok(())
}

/// Reports the counters every second until cancelled.
async fn report_stats(log: Log, stats: Rc<Stats>) -> io::Result<()> {
    let mut every_second = interval(Duration::from_secs(1));
    every_second.tick().await?; // the first tick is immediate
    let why = loop {
        if let Err(cancelled) = every_second.tick().await {
            break cancelled;
        }
        let (open, echoed) = (stats.open.get(), stats.echoed.get());
        log.say(format!("{open} connections open, {echoed} lines echoed"));
    };
    log.say(format!("{why}; stopped"));
    Ok(())
}

/// The error `TREELOOP_DEMO_FAIL_ACCEPT=N` puts in place of the accept after the N-th.
fn injected_accept_failure(after: u32) -> io::Error {
    io::Error::other(format!(
        "accept failed for good (injected by {FAIL_ACCEPT_VAR}={after})"
    ))
}

/// The server: a scope (nursery) whose body accepts connections, each served by a member.
/// If accepting fails for good, the body's error cancels the scope (every connection says
/// goodbye) and the server returns it once they all have finished.
async fn server(
    log: Log,
    stats: Rc<Stats>,
    listener: TcpListener,
    fail_accept: Option<u32>,
) -> io::Result<()> {
    let (log, stats) = (&log, &stats); // borrowed by the scope's body, still ours after it
    let nursery = scope(|s| async move {
        s.spawn_named("stats", report_stats(log.child("stats"), stats.clone()))?;
        let mut backoff = AcceptBackoff::new();
        for id in 1.. {
            let accepted = match fail_accept {
                Some(after) if id > after => Err(injected_accept_failure(after)),
                _ => backoff.accept(&listener).await,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    let open = stats.open.get();
                    let Some(why) = Cancelled::from_io(&err) else {
                        log.say(format!(
                            "{err}; listener closed, the scope cancels {open} connections"
                        ));
                        return Err(err); // the scope's first failure: it cancels the rest
                    };
                    log.say(format!(
                        "{why}; listener closed, waiting for {open} connections"
                    ));
                    break;
                }
            };
            let (log, stats) = (log.child(format!("conn {id}")), stats.clone());
            log.say(format!("connected from {peer}"));
            bump(&stats.open, 1);
            // A member's `Err` would cancel the whole scope (fail-fast): report it instead.
            s.spawn_named(format!("conn {id}"), async move {
                if let Err(err) = connection(&log, &stats, stream).await {
                    log.say(format!("failed: {err}"));
                }
                bump(&stats.open, -1);
                io::Result::Ok(())
            })?;
        }
        Ok(())
    });
    let ended = match nursery.await {
        // Cancelled from outside, as expected.
        Ok(_) | Err(ScopeError::Cancelled(_)) => Ok(()),
        Err(failed) => Err(failed.into_first()),
    };
    log.say("every member finished; scope closed");
    ended
}

/// A demo client, on a thread with blocking sockets. Returns whether a goodbye arrived.
fn client(log: Log, id: u32, addr: SocketAddr) -> io::Result<bool> {
    thread::sleep(Duration::from_millis(200) * id);
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_nodelay(true)?; // one line, one packet
    let mut replies = BufReader::new(stream.try_clone()?).lines();
    // Send the lines, reading each echo; then stay connected: the server has the last word.
    for n in 1.. {
        if n <= LINES_PER_CLIENT {
            stream.write_all(format!("line {n} from client {id}\n").as_bytes())?;
        }
        match replies.next().transpose()? {
            Some(reply) if reply.starts_with("goodbye") => {
                log.say(format!("got {reply:?}; hanging up"));
                return Ok(true); // dropping the stream hangs up
            }
            Some(_echo) => thread::sleep(Duration::from_millis(500)),
            None => break,
        }
    }
    Ok(false)
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("graceful_shutdown: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `TREELOOP_DEMO_FAIL_ACCEPT`, if set: after how many connections `accept` fails.
fn fail_accept_after() -> io::Result<Option<u32>> {
    let Some(value) = std::env::var_os(FAIL_ACCEPT_VAR) else {
        return Ok(None);
    };
    let value = value.to_string_lossy();
    value.parse().map(Some).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{FAIL_ACCEPT_VAR}={value:?}: expected a number of connections, such as 1"),
        )
    })
}

fn run() -> io::Result<()> {
    let wait_for_ctrl_c =
        io::stdin().is_terminal() || std::env::var_os("TREELOOP_DEMO_WAIT_FOR_CTRL_C").is_some();
    let fail_accept = fail_accept_after()?;
    print!("{LEGEND}");
    let runtime = Builder::new()
        .shutdown_on_ctrl_c(true)
        // `kill -USR1 <pid>` prints the live task tree; a cleanup stuck for 5 s is reported
        // with the reason (see examples/stuck_shutdown.rs).
        .dump_on_signal(true)
        .stall_watchdog(Duration::from_secs(5))
        .build()?;
    let (start, stats) = (Instant::now(), Rc::new(Stats::default()));
    let log = Log::new(start, 0, "root");
    let (clients, served) = runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        log.say(format!(
            "echo server on {addr}; starting {CLIENTS} demo clients"
        ));
        let clients: Vec<_> = (1..=CLIENTS)
            .map(|id| {
                let log = Log::new(start, 3, format!("client {id}"));
                thread::spawn(move || client(log, id, addr))
            })
            .collect();
        // The server is a member of the root's scope, so its failure cannot go unnoticed:
        // it cancels the body (the wait for Ctrl-C) and the scope returns it, after the
        // server has finished its cleanup.
        let (log, stats) = (&log, &stats); // borrowed by the scope's body, still ours after it
        let served = scope(|s| async move {
            let server = server(log.child("server"), stats.clone(), listener, fail_accept);
            s.spawn_named("server", server)?;
            if wait_for_ctrl_c {
                log.say(format!("press Ctrl-C to stop (or try: nc {addr})"));
                let why = cancelled().await; // Ctrl-C cancels the root and its whole subtree
                log.say(why);
            } else if let Err(why) = sleep(RUN_FOR).await {
                log.say(why); // a real Ctrl-C came first, or the server failed
            } else {
                log.say("no terminal, so standing in for Ctrl-C: treeloop::shutdown()");
                // Exactly what Ctrl-C does: cancel the root (and so the whole tree), reason
                // Shutdown.
                treeloop::shutdown();
            }
            io::Result::Ok(())
        });
        // The scope returns only once the server has finished its cleanup.
        let served = match served.await {
            // Ctrl-C (or its stand-in) cancelled the root, so the scope too: the normal way.
            Ok(_) | Err(ScopeError::Cancelled(_)) => {
                log.say("the server finished its cleanup; root done");
                Ok(())
            }
            Err(failed) => {
                let err = failed.into_first();
                log.say(format!("the server failed ({err}); root done"));
                Err(io::Error::new(
                    err.kind(),
                    format!("the server failed: {err}"),
                ))
            }
        };
        io::Result::Ok((clients, served))
    })?;

    let mut goodbyes_received = 0;
    for (id, handle) in (1..).zip(clients) {
        match handle.join().expect("a demo client panicked") {
            Ok(got_goodbye) => goodbyes_received += usize::from(got_goodbye),
            Err(err) => println!("client {id} failed: {err} (did it start after the shutdown?)"),
        }
    }
    println!(
        "\n{} connections closed cleanly, {} goodbyes sent and {goodbyes_received} received; \
         block_on returned after {:.2}s",
        stats.closed_cleanly.get(),
        stats.goodbyes_sent.get(),
        start.elapsed().as_secs_f64()
    );
    served
}
