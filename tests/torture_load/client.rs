//! The clients: one task per slot plays its [`Script`] against the server, reconnecting after
//! each scripted disconnect, settles in its last state, and on the shutdown reads to the end
//! of the stream inside a `shield`, where it must find exactly the server's goodbye.

use std::cell::Cell;
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;

use crate::script::{Last, Round, Script, SplitMix64};
use crate::wire::{
    ECHO, FILL, FLOOD_ME, GOODBYE, HALF_CLOSE, HALF_CLOSE_ACK, RESPOND, header, read_exact,
};
use crate::{FLOOD, Goal, MAX_STEPS, RESPONSE};
use treeloop::net::TcpStream;
use treeloop::sync::Semaphore;
use treeloop::{CancelReason, Cancelled, cancelled, shield};

/// What the clients share with the test.
pub struct Clients {
    /// Where the server listens.
    pub addr: SocketAddr,
    /// Paces connects below the listen backlog.
    pub connecting: Semaphore,
    /// Connects that completed (and whose first echo came back).
    pub connected: Cell<usize>,
    /// Slots settled in their last state.
    pub settled: Goal,
}

/// The bytes of an echo payload.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = SplitMix64(seed);
    (0..len).map(|_| rng.next() as u8).collect()
}

/// Sends an echo frame and checks that exactly its payload comes back.
async fn echo(stream: &TcpStream, len: usize, seed: u64) {
    let sent = payload(len, seed);
    stream.write_all(&header(ECHO, len)).await.unwrap();
    stream.write_all(&sent).await.unwrap();
    let mut back = vec![0; len];
    read_exact(stream, &mut back).await.unwrap();
    assert!(back == sent, "an echo came back different");
}

/// Connects, paced, and echoes once: the echo proves the server accepted the connection.
async fn connect(clients: &Clients, slot: usize) -> TcpStream {
    let _permit = clients.connecting.acquire().await.unwrap();
    let stream = TcpStream::connect(clients.addr).await.unwrap();
    echo(&stream, 8, slot as u64).await;
    clients.connected.set(clients.connected.get() + 1);
    stream
}

/// Reads exactly `len` bytes and checks they are FILL.
async fn read_fill(stream: &TcpStream, len: usize) {
    let mut got = vec![0; len];
    read_exact(stream, &mut got).await.unwrap();
    assert!(got.iter().all(|&b| b == FILL), "a response is not all FILL");
}

/// Reads to the end of the stream: how many FILL bytes came first, then what followed.
async fn read_to_end(stream: &TcpStream) -> (usize, Vec<u8>) {
    let mut fill = 0;
    let mut tail = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    for _ in 0..MAX_STEPS {
        let n = stream.read(&mut buf).await.unwrap();
        if n == 0 {
            return (fill, tail);
        }
        let mut got = &buf[..n];
        if tail.is_empty() {
            let fills = got.iter().take_while(|&&b| b == FILL).count();
            fill += fills;
            got = &got[fills..];
        }
        tail.extend_from_slice(got);
        assert!(tail.len() <= GOODBYE.len(), "more than a goodbye: {tail:?}");
    }
    panic!("no end of stream after {MAX_STEPS} reads");
}

/// What a slot saw after the shutdown.
#[derive(Debug)]
pub struct Farewell {
    /// The slot's last state.
    pub last: Last,
    /// FILL bytes read after the cancel (the rest of a slow reader's flood).
    pub drained: usize,
}

/// One client slot: its rounds, its last state, then (on the shutdown) its shielded cleanup.
pub async fn client(slot: usize, script: Script, clients: Rc<Clients>) -> Farewell {
    let mut stream = connect(&clients, slot).await;
    for round in script.rounds {
        match round {
            Round::Echo { len, seed } => echo(&stream, len, seed).await,
            Round::DropMidRequest { len, sent } => {
                stream.write_all(&header(ECHO, len)).await.unwrap();
                stream.write_all(&payload(sent, 0)).await.unwrap();
                drop(stream);
                stream = connect(&clients, slot).await;
            }
            Round::DropMidResponse { read } => {
                stream.write_all(&header(RESPOND, RESPONSE)).await.unwrap();
                read_fill(&stream, read).await;
                drop(stream);
                stream = connect(&clients, slot).await;
            }
        }
    }
    let cancel = match script.last {
        Last::Idle => {
            clients.settled.add();
            cancelled().await
        }
        Last::HalfClosed => {
            stream.write_all(&header(HALF_CLOSE, 0)).await.unwrap();
            stream.shutdown(Shutdown::Write).unwrap();
            let mut ack = [0; HALF_CLOSE_ACK.len()];
            read_exact(&stream, &mut ack).await.unwrap();
            assert_eq!(ack, HALF_CLOSE_ACK);
            clients.settled.add();
            // Keeps reading: nothing comes until the server's goodbye, after the cancel.
            let err = stream.read(&mut [0; 16]).await.unwrap_err();
            Cancelled::from_io(&err).expect("a half-closed read fails only with the cancel")
        }
        Last::SlowReader { prefix } => {
            stream.write_all(&header(FLOOD_ME, FLOOD)).await.unwrap();
            read_fill(&stream, prefix).await;
            clients.settled.add();
            cancelled().await // stalls: reads nothing until the cancel
        }
    };
    assert_eq!(cancel.reason(), CancelReason::Shutdown);
    let (drained, tail) = shield(read_to_end(&stream)).await;
    assert_eq!(tail, GOODBYE, "slot {slot} ({:?})", script.last);
    if let Last::SlowReader { prefix } = script.last {
        assert!(
            prefix + drained < FLOOD,
            "the flood was written whole: the server was never stalled at the cancel"
        );
    } else {
        assert_eq!(drained, 0);
    }
    Farewell {
        last: script.last,
        drained,
    }
}
