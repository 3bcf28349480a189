//! One echo server and one client, written once, run on loopback TCP and on the simulated
//! network (`treeloop::sim`) with the same bytes.
//!
//! The server is generic over [`net::Listener`] (which `net::TcpListener` and
//! `sim::TcpListener` implement); the client over a two-method [`Stream`] trait that both
//! `TcpStream`s have. Only `main` knows which network it is on: on loopback it binds
//! `127.0.0.1:0`; on the simulation it starts two hosts under a seed, with 25 ms links, so
//! the run takes 150 ms of virtual time and no real time.
//!
//! Run with: `cargo run --example sim_echo`

use std::io;
use std::time::Duration;

use treeloop::net::{self, Listener};
use treeloop::sim::{self, Link, Net};
use treeloop::time::Instant;

/// What the echo protocol needs from a stream.
pub trait Stream {
    /// Reads into `buf`; `Ok(0)` at end of stream.
    fn read(&self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>>;
    /// Writes all of `buf`.
    fn write_all(&self, buf: &[u8]) -> impl Future<Output = io::Result<()>>;
}

/// Both `TcpStream`s have the methods already; the trait only names them.
macro_rules! stream {
    ($type:ty) => {
        impl Stream for $type {
            fn read(&self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>> {
                <$type>::read(self, buf)
            }
            fn write_all(&self, buf: &[u8]) -> impl Future<Output = io::Result<()>> {
                <$type>::write_all(self, buf)
            }
        }
    };
}
stream!(net::TcpStream);
stream!(sim::TcpStream);

/// Accepts connections and echoes every byte of each one back until it closes.
pub async fn serve<L>(listener: L) -> io::Result<()>
where
    L: Listener,
    L::Io: Stream,
{
    loop {
        let (stream, _peer) = listener.accept().await?;
        treeloop::spawn(async move {
            let mut buf = [0; 1024];
            while let Ok(n @ 1..) = stream.read(&mut buf).await {
                if stream.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
    }
}

/// Sends each word and reads its echo; returns the echoes.
pub async fn client(stream: impl Stream, words: &[&str]) -> io::Result<Vec<String>> {
    let mut echoes = Vec::new();
    for word in words {
        stream.write_all(word.as_bytes()).await?;
        let mut echo = vec![0; word.len()];
        let mut got = 0;
        while got < echo.len() {
            match stream.read(&mut echo[got..]).await? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => got += n,
            }
        }
        echoes.push(String::from_utf8_lossy(&echo).into_owned());
    }
    Ok(echoes)
}

/// The words the client sends.
pub const WORDS: [&str; 3] = ["one", "two", "three"];

/// The echoes over loopback TCP (real sockets, real time).
pub fn on_loopback() -> io::Result<Vec<String>> {
    treeloop::block_on(async {
        let listener = net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let server = treeloop::spawn(serve(listener));
        let echoes = client(net::TcpStream::connect(addr).await?, &WORDS).await;
        server.cancel();
        echoes
    })
}

/// The echoes over the simulated network under `seed`, and the virtual time they took.
pub fn on_sim(seed: u64) -> io::Result<(Vec<String>, Duration)> {
    let runtime = treeloop::Builder::new().seed(seed).build()?;
    runtime.block_on(async {
        let net = Net::new();
        let (server, client_host) = (net.host("server"), net.host("client"));
        let link = Link {
            latency: Duration::from_millis(25),
            ..Link::default()
        };
        net.set_link(&server, &client_host, link);
        server.spawn(async { serve(sim::TcpListener::bind(7)?).await });
        let start = Instant::now();
        let echoes = client_host
            .spawn(async { client(sim::TcpStream::connect("server:7").await?, &WORDS).await })
            .await
            .map_err(io::Error::other)??;
        Ok((echoes, start.elapsed()))
    })
}

fn main() -> io::Result<()> {
    let real = on_loopback()?;
    let (simulated, took) = on_sim(1)?;
    println!("loopback TCP: {real:?}");
    println!("simulated:    {simulated:?} in {took:?} of virtual time");
    assert_eq!(real, simulated);
    Ok(())
}
