//! The reactor's cached readiness: edge-triggered registration, cleared on `WouldBlock` or a
//! short transfer, and a close that arrived together with the last bytes never forgotten.

use std::time::Duration;

use treeloop::net::{TcpListener, TcpStream};
use treeloop::spawn;
use treeloop::time::timeout;

#[test]
fn a_close_that_arrives_with_the_last_bytes_is_seen_after_a_short_read() {
    treeloop::block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        // The reader waits first, so the OS reports the bytes and the close in one event.
        let reader = spawn(async move {
            let mut buf = [0u8; 64];
            let first = client.read(&mut buf).await.unwrap();
            let text = String::from_utf8_lossy(&buf[..first]).into_owned();
            // The short read cleared READABLE; the end of stream must still be seen.
            let end = timeout(Duration::from_secs(5), client.read(&mut buf)).await;
            (text, end.map(|r| r.unwrap()))
        });
        treeloop::yield_now().await.unwrap();
        server.write_all(b"bye").await.unwrap();
        drop(server);
        let (text, end) = reader.await.unwrap();
        assert_eq!(text, "bye");
        assert_eq!(
            end,
            Ok(0),
            "end of stream, not a wait for an edge that never comes"
        );
    });
}

#[test]
fn a_short_read_then_more_data_is_read_on_the_next_edge() {
    treeloop::block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        for chunk in [&b"one"[..], b"two", b"three"] {
            server.write_all(chunk).await.unwrap();
            let mut buf = [0u8; 64];
            let n = timeout(Duration::from_secs(5), client.read(&mut buf))
                .await
                .expect("the next chunk's edge wakes the reader")
                .unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"onetwothree");
    });
}
