//! Three replicas of a tiny replicated register on the simulated network, with a planted
//! bug that shows only when a partition is followed by a crash: `test::check` finds it
//! (and prints the seed, the replay line and each host's last messages), and the fix makes
//! 1,000 seeds pass.
//!
//! The register: replica r1 coordinates writes. A `WRITE` gets the next version, is stored
//! at r1 and sent (`PUT`) to r2 and r3, each answer awaited for at most 100 ms; a read asks
//! all three (`GET`), needs two answers, and takes the highest version. The property: once
//! a write was acknowledged, a read returns it (or something newer).
//!
//! The bug: r1 acknowledges a write once it stored it itself, even when neither peer
//! answered ("degraded mode"). Cut off by a partition, r1 then acknowledges a write only it
//! holds; if r1 crashes before the partition heals, the write is gone (its register lived in
//! memory), and the read after the repair, answered by r2 and r3, misses it. A partition
//! alone is harmless (r1 still answers the read with the newer version), and so is a crash
//! alone (r2 and r3 had the write). The fix acknowledges only with a majority (r1 and one
//! peer); under the partition the write fails, and nothing acknowledged is lost.
//!
//! Each seed decides, from the net's generator, whether to partition r1 before the second
//! write and whether to crash (and restart) r1 after it: a quarter of the seeds do both.
//!
//! Run with: `cargo run --example sim_partition`

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use treeloop::sim::{Net, TcpListener, TcpStream};
use treeloop::time::timeout;

/// When r1 acknowledges a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ack {
    /// Once r1 stored it: the planted bug.
    AfterLocalWrite,
    /// Once r1 and a peer stored it: the fix.
    AfterMajority,
}

/// The port every replica listens on.
const PORT: u16 = 7000;

/// How long a replica waits for a peer's answer, and a read for each replica's.
const PATIENCE: Duration = Duration::from_millis(100);

/// How long the client waits for a write's answer (the coordinator may wait for both
/// peers in turn).
const WRITE_PATIENCE: Duration = Duration::from_secs(1);

/// A register: (version, value).
type Register = (u64, u64);

/// Reads one line (without its `'\n'`).
async fn read_line(stream: &TcpStream) -> io::Result<String> {
    let mut line = Vec::new();
    let mut buf = [0; 64];
    while !line.ends_with(b"\n") {
        match stream.read(&mut buf).await? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => line.extend_from_slice(&buf[..n]),
        }
    }
    line.pop();
    String::from_utf8(line).map_err(io::Error::other)
}

/// Sends `request` to `addr` on a new connection and returns the answer, within
/// `patience`.
async fn call(addr: &str, request: &str, patience: Duration) -> io::Result<String> {
    timeout(patience, async {
        let stream = TcpStream::connect(addr).await?;
        stream.write_all(format!("{request}\n").as_bytes()).await?;
        read_line(&stream).await
    })
    .await?
}

/// One replica: its register lives in memory, so a crash loses it.
async fn replica(ack: Ack, peers: [&'static str; 2]) -> io::Result<()> {
    let register = Rc::new(Cell::new((0, 0)));
    let listener = TcpListener::bind(PORT)?;
    loop {
        let (stream, _) = listener.accept().await?;
        let register = register.clone();
        treeloop::spawn(async move {
            let _ = serve(&stream, &register, ack, peers).await;
        });
    }
}

/// Answers one request.
async fn serve(
    stream: &TcpStream,
    register: &Cell<Register>,
    ack: Ack,
    peers: [&'static str; 2],
) -> io::Result<()> {
    let request = read_line(stream).await?;
    let words: Vec<&str> = request.split(' ').collect();
    let number = |word: &str| word.parse::<u64>().map_err(io::Error::other);
    let answer = match words[..] {
        ["GET"] => {
            let (version, value) = register.get();
            format!("{version} {value}")
        }
        ["PUT", version, value] => {
            let (version, value) = (number(version)?, number(value)?);
            if version > register.get().0 {
                register.set((version, value));
            }
            "OK".to_owned()
        }
        ["WRITE", value] => {
            let version = register.get().0 + 1;
            register.set((version, number(value)?));
            let mut stored = 1;
            for peer in peers {
                let put = format!("PUT {version} {value}");
                if call(peer, &put, PATIENCE)
                    .await
                    .is_ok_and(|answer| answer == "OK")
                {
                    stored += 1;
                }
            }
            let acknowledged = match ack {
                Ack::AfterLocalWrite => true,
                Ack::AfterMajority => stored >= 2,
            };
            if acknowledged { "OK" } else { "FAIL" }.to_owned()
        }
        _ => "ERROR".to_owned(),
    };
    stream.write_all(format!("{answer}\n").as_bytes()).await
}

/// Reads the register from a majority: the highest version among at least two answers.
async fn read_majority() -> io::Result<Register> {
    let mut answers = Vec::new();
    for replica in ["r1:7000", "r2:7000", "r3:7000"] {
        if let Ok(answer) = call(replica, "GET", PATIENCE).await {
            let (version, value) = answer.split_once(' ').ok_or(io::ErrorKind::InvalidData)?;
            let parse = |word: &str| word.parse::<u64>().map_err(io::Error::other);
            answers.push((parse(version)?, parse(value)?));
        }
    }
    if answers.len() < 2 {
        return Err(io::Error::other("no majority answered"));
    }
    Ok(answers.into_iter().max().expect("two answers"))
}

/// Which faults a seed chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Faults {
    /// r1 was cut off from r2 and r3 during the second write.
    pub partitioned: bool,
    /// r1 crashed (and restarted, empty) after the second write.
    pub crashed: bool,
}

/// One run on `net`: two writes through r1, the seed's faults, a majority read; the
/// faults chosen, and whether the acknowledged write was read back.
pub async fn run(net: &Net, ack: Ack) -> (Faults, Result<(), String>) {
    let names = ["r1", "r2", "r3"];
    let peers = |me: usize| {
        let others: Vec<&'static str> = (0..3)
            .filter(|&i| i != me)
            .map(|i| ["r1:7000", "r2:7000", "r3:7000"][i])
            .collect();
        [others[0], others[1]]
    };
    let replicas = names.map(|name| net.host(name));
    for (i, host) in replicas.iter().enumerate() {
        host.spawn(replica(ack, peers(i)));
    }
    let [r1, r2, r3] = &replicas;
    let client = net.host("client");
    let faults = Faults {
        partitioned: net.chance(0.5),
        crashed: net.chance(0.5),
    };
    let write = |value: u64| {
        client
            .spawn(async move { call("r1:7000", &format!("WRITE {value}"), WRITE_PATIENCE).await })
    };
    let mut acknowledged = (0, 0);
    if write(1)
        .await
        .expect("the client host runs")
        .is_ok_and(|a| a == "OK")
    {
        acknowledged = (1, 1);
    }
    if faults.partitioned {
        net.partition(r1, r2);
        net.partition(r1, r3);
    }
    if write(2)
        .await
        .expect("the client host runs")
        .is_ok_and(|a| a == "OK")
    {
        acknowledged = (2, 2);
    }
    if faults.crashed {
        net.restart(r1, replica(ack, peers(0)));
    }
    if faults.partitioned {
        net.repair(r1, r2);
        net.repair(r1, r3);
    }
    let read = client
        .spawn(read_majority())
        .await
        .expect("the client host runs");
    let outcome = match read {
        Ok(read) if read.0 >= acknowledged.0 => Ok(()),
        Ok(read) => Err(format!(
            "the acknowledged write {acknowledged:?} is lost: a majority read returned {read:?} \
             ({faults:?})"
        )),
        Err(err) => Err(format!("the read failed: {err} ({faults:?})")),
    };
    (faults, outcome)
}

/// [`run`] as a `test::check` body: a lost acknowledged write panics, while the `Net` is
/// alive, so that it reports each host's last messages as it goes.
pub async fn checked(ack: Ack) {
    let net = Net::new();
    let (_, outcome) = run(&net, ack).await;
    if let Err(lost) = outcome {
        panic!("{lost}");
    }
}

fn main() {
    println!("1,000 seeds with the planted bug (acknowledge after the local write):");
    let found = std::panic::catch_unwind(|| {
        treeloop::test::check(1_000, || checked(Ack::AfterLocalWrite));
    });
    assert!(
        found.is_err(),
        "test::check should have found the planted bug"
    );
    println!("found: the failing seed, its replay line and the last messages are above\n");
    let start = std::time::Instant::now();
    treeloop::test::check(1_000, || checked(Ack::AfterMajority));
    println!(
        "1,000 seeds with the fix (acknowledge with a majority) pass in {:.2?}",
        start.elapsed()
    );
}
