//! A plain TCP echo server: one task per connection, all in one `scope`; Ctrl-C stops it.
//!
//! Every connection gets its own task, a member of the server's scope, which sends back
//! whatever it reads. The first Ctrl-C cancels the root: the accept loop and every
//! connection get `Err(Cancelled)` at their next await point. Each connection then closes
//! without a reset: it stops echoing, half-closes (its FIN tells the client "no more from
//! me"), and reads, discarding it, whatever the client still sends until the client hangs
//! up, for at most a second. (Closing a socket with unread bytes in its receive buffer makes
//! the kernel send RST instead of FIN, and a reset also throws away the echoes the client
//! has not read yet.) Each connection prints how it ended, the scope returns once all of
//! them have finished, and the server prints a summary and exits 0. A second Ctrl-C exits
//! at once (status 130). It listens on loopback only.
//!
//! Out of file descriptors (`EMFILE`: more clients than `ulimit -n` allows), `accept` fails
//! but the listener is fine: `AcceptBackoff` waits (5 ms, doubling up to 500 ms, reported
//! once on stderr) and accepts again once connections have closed, so the clients beyond the
//! limit wait in the listener's backlog instead of finding the server gone.
//!
//! Run with: cargo run --example echo_server [-- PORT or ADDR]   (default 127.0.0.1:7000)
//! Try it:   nc 127.0.0.1 7000   (type a line: it comes back; Ctrl-D hangs up)

use std::cell::Cell;
use std::io;
use std::net::{Ipv4Addr, Shutdown, SocketAddr};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use treeloop::net::{AcceptBackoff, TcpListener, TcpStream};
use treeloop::time::timeout;
use treeloop::{Builder, Cancelled, Scope, ScopeError, scope, shield};

/// How long a connection closed by the shutdown waits for its client to hang up.
const GRACE: Duration = Duration::from_secs(1);

/// Totals over the server's life (one thread: `Cell` is enough).
#[derive(Default)]
struct Totals {
    /// Connections accepted.
    accepted: Cell<u64>,
    /// Connections still open.
    open: Cell<u64>,
    /// Bytes echoed back, over all connections.
    bytes: Cell<u64>,
    /// Connections the shutdown closed without a reset (the client hung up after our FIN).
    closed_cleanly: Cell<u64>,
}

/// How a connection interrupted by the shutdown was closed.
enum Closed {
    /// The client hung up after our FIN; the `discarded` bytes it sent meanwhile were read
    /// and dropped, so none were left unread.
    Cleanly { discarded: u64 },
    /// The client was still connected after [`GRACE`]: closing now may send it a reset.
    GraceExpired { discarded: u64 },
    /// The half-close or the drain failed (the client reset the connection first, say).
    Failed(io::Error),
}

/// `7001` means `127.0.0.1:7001`; a full address is taken as given.
fn parse_addr(arg: Option<String>) -> io::Result<SocketAddr> {
    let Some(arg) = arg else {
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, 7000)));
    };
    let parsed = match arg.parse::<u16>() {
        Ok(port) => Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
        Err(_) => arg.parse::<SocketAddr>(),
    };
    parsed.map_err(|err| {
        let hint = "expected a port (7000) or an address (127.0.0.1:7000)";
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{arg:?}: {err}; {hint}"),
        )
    })
}

/// Echoes until the client hangs up; `echoed` counts the bytes sent back so far.
async fn echo(stream: &TcpStream, echoed: &mut u64) -> io::Result<()> {
    let mut buf = [0; 4096];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(()); // the client hung up
        }
        stream.write_all(&buf[..n]).await?;
        *echoed += n as u64;
    }
}

/// Closes a connection the shutdown interrupted without a reset: half-closes it (FIN), then
/// reads and drops what the client still sends until it hangs up, for at most [`GRACE`].
/// Inside a shield, since every await here would otherwise fail at once; the timeout still
/// bounds it.
async fn close_without_reset(stream: &TcpStream) -> Closed {
    let mut discarded = 0;
    let drained = shield(timeout(GRACE, async {
        stream.shutdown(Shutdown::Write)?;
        let mut buf = [0; 4096];
        loop {
            match stream.read(&mut buf).await? {
                0 => return io::Result::Ok(()), // the client hung up: nothing is left unread
                n => discarded += n as u64,
            }
        }
    }))
    .await;
    match drained {
        Ok(Ok(())) => Closed::Cleanly { discarded },
        Ok(Err(err)) => Closed::Failed(err),
        Err(_elapsed) => Closed::GraceExpired { discarded },
    }
}

/// One connection's task: echoes; if the shutdown interrupts it, closes without a reset;
/// then says how it ended.
async fn connection(stream: TcpStream, peer: SocketAddr, totals: Rc<Totals>) -> io::Result<()> {
    let mut echoed = 0;
    let ended = echo(&stream, &mut echoed).await;
    totals.bytes.set(totals.bytes.get() + echoed);
    let how = match ended {
        Ok(()) => format!("hung up after {echoed} bytes"),
        Err(err) => match Cancelled::from_io(&err) {
            None => format!("failed after {echoed} bytes: {err}"),
            Some(_) => {
                let stopped = format!("closed by the shutdown after {echoed} bytes");
                match close_without_reset(&stream).await {
                    Closed::Cleanly { discarded } => {
                        totals.closed_cleanly.set(totals.closed_cleanly.get() + 1);
                        format!("{stopped}; it hung up after our FIN ({discarded} bytes dropped)")
                    }
                    Closed::GraceExpired { discarded } => format!(
                        "{stopped}; still connected after {GRACE:?} ({discarded} bytes \
                         dropped): it may see a reset"
                    ),
                    Closed::Failed(err) => format!("{stopped}; closing failed: {err}"),
                }
            }
        },
    };
    totals.open.set(totals.open.get() - 1);
    println!("{peer}: {how}");
    // Not `Err(err)`: in a scope, a member's error would cancel every other connection.
    Ok(())
}

/// The scope's body: accepts connections until cancelled, one member each.
async fn accept_loop(
    s: Scope<io::Error>,
    listener: TcpListener,
    totals: Rc<Totals>,
) -> io::Result<()> {
    let mut backoff = AcceptBackoff::new();
    loop {
        let (stream, peer) = match backoff.accept(&listener).await {
            Ok(accepted) => accepted,
            Err(err) => {
                let why = Cancelled::from_io(&err).ok_or(err)?;
                let open = totals.open.get();
                println!("{why}: no more accepts; connections still open: {open}");
                return Ok(());
            }
        };
        // Echoes go out at once; a connection that refuses the option (it may already be
        // gone) is served all the same: one client must not stop the server.
        let _ = stream.set_nodelay(true);
        totals.accepted.set(totals.accepted.get() + 1);
        totals.open.set(totals.open.get() + 1);
        println!("{peer}: connected ({} open)", totals.open.get());
        s.spawn(connection(stream, peer, totals.clone()))?;
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("echo_server: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> io::Result<()> {
    let addr = parse_addr(std::env::args().nth(1))?;
    let runtime = Builder::new().shutdown_on_ctrl_c(true).build()?;
    let totals = Rc::new(Totals::default());
    runtime.block_on(async {
        let listener = match TcpListener::bind(addr) {
            Err(err) if err.kind() == io::ErrorKind::AddrInUse => {
                let hint = "pass another port: cargo run --example echo_server -- 7001";
                return Err(io::Error::new(
                    err.kind(),
                    format!("{addr} is in use; {hint}"),
                ));
            }
            bound => bound?,
        };
        let addr = listener.local_addr()?;
        println!(
            "echo server on {addr}; try: nc {} {}",
            addr.ip(),
            addr.port()
        );
        println!("press Ctrl-C to stop");
        match scope(|s| accept_loop(s, listener, totals.clone())).await {
            // Ctrl-C cancelled the root, so the scope too: the normal way to stop.
            Ok(_) | Err(ScopeError::Cancelled(_)) => Ok(()),
            Err(failed) => Err(failed.into_first()),
        }
    })?;
    println!(
        "stopped: served {} connections, echoed {} bytes, closed {} at the shutdown without a \
         reset; every connection task has finished",
        totals.accepted.get(),
        totals.bytes.get(),
        totals.closed_cleanly.get()
    );
    Ok(())
}
