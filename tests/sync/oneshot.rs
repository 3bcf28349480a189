//! `oneshot`: one value; a cancelled `recv` leaves it in the channel (R7).

use crate::common::{ms, ms_since, paused};
use treeloop::sync::oneshot::{self, RecvError, TryRecvError};
use treeloop::time::{Instant, sleep};
use treeloop::{CancelReason, Cancelled, shield, spawn};

fn explicit() -> Cancelled {
    Cancelled::new(CancelReason::Explicit)
}

#[test]
fn recv_waits_for_the_value_sent_later() {
    paused().block_on(async {
        let start = Instant::now();
        let (tx, mut rx) = oneshot::channel();
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        let sender = spawn(async move {
            sleep(ms(10)).await.unwrap();
            tx.send("hello").unwrap();
        });
        assert_eq!(rx.recv().await, Ok("hello"));
        assert_eq!(ms_since(start), 10);
        assert_eq!(
            rx.recv().await,
            Err(RecvError::Closed),
            "the value was received already"
        );
        sender.await.unwrap();
    });
}

#[test]
fn recv_reports_closed_when_the_sender_is_dropped_without_sending() {
    paused().block_on(async {
        let start = Instant::now();
        let (tx, mut rx) = oneshot::channel::<u32>();
        let sender = spawn(async move {
            sleep(ms(4)).await.unwrap();
            drop(tx);
        });
        assert_eq!(rx.recv().await, Err(RecvError::Closed));
        assert_eq!(ms_since(start), 4);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
        sender.await.unwrap();
    });
}

#[test]
fn send_hands_the_value_back_when_the_receiver_is_gone() {
    let (tx, rx) = oneshot::channel::<String>();
    assert!(!tx.is_closed());
    drop(rx);
    assert!(tx.is_closed());
    assert_eq!(tx.send("kept".to_string()), Err("kept".to_string()));
}

#[test]
fn a_cancelled_recv_loses_nothing_and_fails_every_time_while_the_value_waits() {
    paused().block_on(async {
        let start = Instant::now();
        let (tx, mut rx) = oneshot::channel();
        let receiver = spawn(async move {
            // Waiting when the cancel arrives: fails at once (R12).
            let first = rx.recv().await;
            let first_at = ms_since(start);
            // The value arrived meanwhile; every recv in the cancelled region still fails
            // and takes nothing (R6, R7).
            let mut again = Vec::new();
            for _ in 0..3 {
                again.push(rx.recv().await);
            }
            let shielded = shield(rx.recv()).await;
            (first, first_at, again, shielded)
        });
        sleep(ms(5)).await.unwrap();
        receiver.cancel();
        tx.send(42).unwrap();
        let (first, first_at, again, shielded) = receiver.await.unwrap();
        assert_eq!(first, Err(RecvError::Cancelled(explicit())));
        assert_eq!(first_at, 5);
        assert_eq!(again, [Err(RecvError::Cancelled(explicit())); 3]);
        assert_eq!(
            shielded,
            Ok(42),
            "the value waited for a recv that was not cancelled"
        );
    });
}
