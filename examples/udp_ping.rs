//! UDP request/response on loopback, and the difference between `Elapsed` and `Cancelled`.
//!
//! A responder task answers each `ping N` datagram with `pong N`, except ping 3, which it
//! drops on purpose (UDP may lose any datagram). The pinger sends 5 pings and waits for each
//! pong under `timeout(200 ms, ..)`:
//!
//! - a pong arrives: the round-trip time is printed;
//! - ping 3's pong never comes: the deadline cancels the timeout's region, so the `recv`
//!   waiting inside it returns an error wrapping `Cancelled` (reason: a deadline passed), and
//!   the timeout itself returns `Err(Elapsed)`. `Elapsed` means *our own deadline passed*; the
//!   pinger treats it as a lost ping and carries on.
//!
//! At the end the pinger cancels the responder. Its pending `recv_from` returns `Cancelled`
//! (reason: cancel was requested): *someone else stopped us*, so it stops. Same error inside,
//! different meaning outside: a timeout is a decision the caller made, a cancellation one made
//! above it.
//!
//! Run with: cargo run --example udp_ping

use std::io;
use std::time::Duration;

use treeloop::net::UdpSocket;
use treeloop::time::{Instant, sleep, timeout};
use treeloop::{Cancelled, spawn};

const PINGS: u32 = 5;
/// The ping the responder ignores.
const DROPPED: u32 = 3;
/// How long the pinger waits for each pong.
const WAIT: Duration = Duration::from_millis(200);

/// Answers `ping N` with `pong N` until cancelled; returns how many it answered.
async fn responder(socket: UdpSocket) -> io::Result<u32> {
    let mut buf = [0; 64];
    let mut answered = 0;
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(err) => {
                // Not a cancellation: a real error, returned with `?`.
                let cancelled = Cancelled::from_io(&err).ok_or(err)?;
                println!("responder: recv_from returned Err: {cancelled}; stopping");
                return Ok(answered);
            }
        };
        let ping = String::from_utf8_lossy(&buf[..n]);
        let Some(seq) = ping.strip_prefix("ping ") else {
            continue; // not a ping
        };
        if seq == DROPPED.to_string() {
            println!("responder: dropping {ping:?} on purpose");
            continue;
        }
        socket
            .send_to(format!("pong {seq}").as_bytes(), from)
            .await?;
        answered += 1;
    }
}

/// Waits for `pong {seq}`, skipping anything else (a late pong of an earlier ping).
async fn wait_for_pong(socket: &UdpSocket, seq: u32) -> io::Result<()> {
    let expected = format!("pong {seq}");
    let mut buf = [0; 64];
    loop {
        let n = socket.recv(&mut buf).await.inspect_err(|err| {
            if let Some(cancelled) = Cancelled::from_io(err) {
                println!("pinger:   inside the timeout, recv returned Err: {cancelled}");
            }
        })?;
        if buf[..n] == *expected.as_bytes() {
            return Ok(());
        }
    }
}

fn main() -> io::Result<()> {
    treeloop::block_on(async {
        let responder_socket = UdpSocket::bind("127.0.0.1:0")?;
        let responder_addr = responder_socket.local_addr()?;
        let responder = spawn(responder(responder_socket));

        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.connect(responder_addr)?; // `send` and `recv` now talk to the responder only
        let local = socket.local_addr()?;
        println!("pinger: {local}, responder: {responder_addr}");

        let mut replies = 0;
        for seq in 1..=PINGS {
            let sent = Instant::now();
            socket.send(format!("ping {seq}").as_bytes()).await?;
            match timeout(WAIT, wait_for_pong(&socket, seq)).await {
                Ok(Ok(())) => {
                    replies += 1;
                    println!("pinger: ping {seq}: pong after {:.1?}", sent.elapsed());
                }
                Ok(Err(err)) => return Err(err), // a real socket error
                Err(elapsed) => println!(
                    "pinger: ping {seq}: timeout returned Err(Elapsed): {elapsed} after {:.1?}; \
                     counting it as lost",
                    sent.elapsed()
                ),
            }
            sleep(Duration::from_millis(100)).await?;
        }

        println!("pinger: done; cancelling the responder");
        responder.cancel();
        // The pinger itself is not cancelled, so this join simply waits for the responder.
        let answered = responder.await.map_err(io::Error::other)??;
        let lost = PINGS - replies;
        println!("\n{replies}/{PINGS} pongs received, {answered} sent, {lost} lost (on purpose)");
        println!("Elapsed:   our own deadline passed (what `timeout` returns to its caller)");
        println!("Cancelled: our region was cancelled (what every await point inside it returns)");
        Ok(())
    })
}
