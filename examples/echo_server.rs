//! A plain TCP echo server: one task per connection, all in one `scope`; Ctrl-C stops it.
//!
//! Every connection gets its own task, a member of the server's scope, which sends back
//! whatever it reads. The first Ctrl-C cancels the root: the accept loop and every
//! connection get `Err(Cancelled)` at their next await point, each connection prints how it
//! ended, the scope returns once all of them have finished, and the server prints a summary
//! and exits 0. A second Ctrl-C exits at once (status 130). It listens on loopback only.
//!
//! Run with: cargo run --example echo_server [-- PORT or ADDR]   (default 127.0.0.1:7000)
//! Try it:   nc 127.0.0.1 7000   (type a line: it comes back; Ctrl-D hangs up)

use std::cell::Cell;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::rc::Rc;

use treeloop::net::{TcpListener, TcpStream};
use treeloop::{Builder, Cancelled, Scope, ScopeError, scope};

/// Totals over the server's life (one thread: `Cell` is enough).
#[derive(Default)]
struct Totals {
    /// Connections accepted.
    accepted: Cell<u64>,
    /// Connections still open.
    open: Cell<u64>,
    /// Bytes echoed back, over all connections.
    bytes: Cell<u64>,
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

/// One connection's task: echoes, then says how it ended.
async fn connection(stream: TcpStream, peer: SocketAddr, totals: Rc<Totals>) -> io::Result<()> {
    let mut echoed = 0;
    let ended = echo(&stream, &mut echoed).await;
    totals.bytes.set(totals.bytes.get() + echoed);
    totals.open.set(totals.open.get() - 1);
    match ended {
        Ok(()) => println!("{peer}: hung up after {echoed} bytes"),
        Err(err) => match Cancelled::from_io(&err) {
            Some(_) => println!("{peer}: closed by the shutdown after {echoed} bytes"),
            None => println!("{peer}: failed after {echoed} bytes: {err}"),
        },
    }
    // Not `Err(err)`: in a scope, a member's error would cancel every other connection.
    Ok(())
}

/// The scope's body: accepts connections until cancelled, one member each.
async fn accept_loop(
    s: Scope<io::Error>,
    listener: TcpListener,
    totals: Rc<Totals>,
) -> io::Result<()> {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                let why = Cancelled::from_io(&err).ok_or(err)?;
                let open = totals.open.get();
                println!("{why}: no more accepts; connections still open: {open}");
                return Ok(());
            }
        };
        stream.set_nodelay(true)?;
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
        "stopped: served {} connections, echoed {} bytes; every connection task has finished",
        totals.accepted.get(),
        totals.bytes.get()
    );
    Ok(())
}
