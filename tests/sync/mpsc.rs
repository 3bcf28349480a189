//! `mpsc`: order, FIFO hand-off of slots to waiting senders, closing, and the cancel cases
//! (a cancelled recv loses no message; a cancelled send enqueues nothing and returns the
//! value).

use std::cell::Cell;
use std::rc::Rc;

use crate::common::{Log, ms, ms_since, paused};
use treeloop::sync::mpsc::{self, RecvError, SendError, TryRecvError, TrySendError};
use treeloop::time::{Instant, sleep};
use treeloop::{CancelReason, Cancelled, checkpoint, shield, spawn};

fn explicit() -> Cancelled {
    Cancelled::new(CancelReason::Explicit)
}

#[test]
fn messages_arrive_in_order_and_recv_reports_closed_when_every_sender_is_gone() {
    paused().block_on(async {
        let (tx, mut rx) = mpsc::unbounded();
        let second = tx.clone();
        let first_sender = spawn(async move {
            tx.send(1).await.unwrap();
            tx.send(2).await.unwrap();
        });
        let second_sender = spawn(async move {
            sleep(ms(5)).await.unwrap();
            second.send(3).await.unwrap();
        });
        let mut got = Vec::new();
        loop {
            match rx.recv().await {
                Ok(value) => got.push(value),
                Err(err) => {
                    assert_eq!(err, RecvError::Closed);
                    break;
                }
            }
        }
        assert_eq!(got, [1, 2, 3]);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
        first_sender.await.unwrap();
        second_sender.await.unwrap();
    });
}

#[test]
fn waiting_senders_on_a_full_channel_are_served_in_arrival_order() {
    let log = Log::new();
    let got = paused().block_on({
        let log = log.clone();
        async move {
            let start = Instant::now();
            let (tx, mut rx) = mpsc::bounded(1);
            tx.try_send(0).unwrap();
            // Spawned 1, 2, 3 but arriving at the full channel 3, 2, 1.
            let mut senders = Vec::new();
            for value in 1..=3u64 {
                let (tx, log) = (tx.clone(), log.clone());
                senders.push(spawn(async move {
                    sleep(ms(4 - value)).await.unwrap();
                    tx.send(value).await.unwrap();
                    log.push(format!("sent {value} at {} ms", ms_since(start)));
                }));
            }
            drop(tx);
            sleep(ms(10)).await.unwrap();
            let mut got = Vec::new();
            while let Ok(value) = rx.recv().await {
                got.push(value);
                sleep(ms(10)).await.unwrap();
            }
            for sender in senders {
                sender.await.unwrap();
            }
            got
        }
    });
    assert_eq!(got, [0, 3, 2, 1]);
    assert_eq!(
        log.take(),
        ["sent 3 at 10 ms", "sent 2 at 20 ms", "sent 1 at 30 ms"],
        "each freed slot went to the oldest waiting sender"
    );
}

#[test]
fn try_send_does_not_take_a_slot_reserved_for_a_waiting_sender() {
    paused().block_on(async {
        let (tx, mut rx) = mpsc::bounded(1);
        tx.try_send(0).unwrap();
        let waiting = spawn({
            let tx = tx.clone();
            async move { tx.send(1).await.unwrap() }
        });
        checkpoint().await.unwrap(); // the sender is now in line
        assert_eq!(rx.try_recv(), Ok(0));
        match tx.try_send(9) {
            Err(TrySendError::Full(9)) => {}
            other => panic!("the newcomer barged in: {other:?}"),
        }
        waiting.await.unwrap();
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    });
}

#[test]
fn a_cancelled_send_on_a_full_channel_enqueues_nothing_and_returns_the_value() {
    paused().block_on(async {
        let start = Instant::now();
        let (tx, mut rx) = mpsc::bounded(1);
        tx.try_send("first".to_string()).unwrap();
        let sender = spawn({
            let tx = tx.clone();
            async move {
                let result = tx.send("second".to_string()).await;
                (result, ms_since(start))
            }
        });
        sleep(ms(3)).await.unwrap();
        sender.cancel();
        let (result, at) = sender.await.unwrap();
        match result {
            Err(SendError::Cancelled(value, cancelled)) => {
                assert_eq!(value, "second");
                assert_eq!(cancelled, explicit());
            }
            other => panic!("expected a cancelled send, got {other:?}"),
        }
        assert_eq!(at, 3, "woken by the cancel (R12)");
        assert_eq!(rx.len(), 1);
        assert_eq!(rx.try_recv().as_deref(), Ok("first"));
        assert_eq!(
            rx.try_recv(),
            Err(TryRecvError::Empty),
            "nothing was enqueued"
        );
    });
}

#[test]
fn send_in_a_cancelled_region_fails_every_time_even_with_free_slots() {
    paused().block_on(async {
        let (tx, mut rx) = mpsc::unbounded();
        let task = spawn(async move {
            let _ = sleep(ms(1_000)).await; // wait to be cancelled
            let mut back = Vec::new();
            for value in 0..3 {
                let err = tx.send(value).await.unwrap_err();
                assert_eq!(err.cancelled(), Some(explicit()));
                back.push(err.into_inner());
            }
            let shielded = shield(tx.send(7)).await;
            (back, shielded.is_ok())
        });
        checkpoint().await.unwrap();
        task.cancel();
        assert_eq!(task.await.unwrap(), (vec![0, 1, 2], true));
        assert_eq!(rx.try_recv(), Ok(7));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
    });
}

#[test]
fn a_slot_reserved_for_a_sender_cancelled_before_filling_it_passes_to_the_next() {
    paused().block_on(async {
        let (tx, mut rx) = mpsc::bounded(1);
        tx.try_send(0).unwrap();
        let first = spawn({
            let tx = tx.clone();
            async move { tx.send(1).await.map_err(SendError::into_inner) }
        });
        let second = spawn({
            let tx = tx.clone();
            async move { tx.send(2).await.map_err(SendError::into_inner) }
        });
        drop(tx);
        checkpoint().await.unwrap(); // both senders wait in line
        // The freed slot is reserved for `first` and `first` is woken; it is cancelled
        // before it runs, so it must pass the slot on.
        assert_eq!(rx.try_recv(), Ok(0));
        first.cancel();
        assert_eq!(first.await.unwrap(), Err(1));
        assert_eq!(second.await.unwrap(), Ok(()));
        assert_eq!(rx.recv().await, Ok(2));
        assert_eq!(rx.recv().await, Err(RecvError::Closed));
    });
}

#[test]
fn recv_in_a_cancelled_region_fails_every_time_and_takes_no_message() {
    paused().block_on(async {
        let (tx, rx) = mpsc::unbounded();
        let task = spawn(async move {
            let mut rx = rx;
            let _ = sleep(ms(1_000)).await; // wait to be cancelled
            let mut results = Vec::new();
            for _ in 0..3 {
                results.push(rx.recv().await);
            }
            let waiting = rx.len();
            let shielded = shield(rx.recv()).await;
            (results, waiting, shielded, rx)
        });
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        checkpoint().await.unwrap();
        task.cancel();
        let (results, waiting, shielded, mut rx) = task.await.unwrap();
        assert_eq!(results, [Err(RecvError::Cancelled(explicit())); 3]);
        assert_eq!(waiting, 2, "no message was taken by a cancelled recv");
        assert_eq!(shielded, Ok(1));
        assert_eq!(rx.try_recv(), Ok(2));
    });
}

#[test]
fn a_recv_waiting_when_cancelled_fails_at_once_and_the_next_message_is_kept() {
    paused().block_on(async {
        let start = Instant::now();
        let (tx, mut rx) = mpsc::bounded(4);
        let receiver = spawn(async move {
            let cancelled = rx.recv().await;
            let at = ms_since(start);
            // Cleanup drains one more message, inside a shield.
            let drained = shield(rx.recv()).await;
            (cancelled, at, drained, ms_since(start))
        });
        sleep(ms(5)).await.unwrap();
        receiver.cancel();
        sleep(ms(10)).await.unwrap();
        tx.send("late").await.unwrap();
        let (cancelled, at, drained, drained_at) = receiver.await.unwrap();
        assert_eq!(cancelled, Err(RecvError::Cancelled(explicit())));
        assert_eq!(at, 5);
        assert_eq!(drained, Ok("late"));
        assert_eq!(drained_at, 15);
    });
}

#[test]
fn dropping_the_receiver_fails_blocked_senders_with_their_value() {
    paused().block_on(async {
        let (tx, rx) = mpsc::bounded(1);
        tx.try_send(0).unwrap();
        let blocked = spawn({
            let tx = tx.clone();
            async move {
                match tx.send(1).await {
                    Err(SendError::Closed(value)) => value,
                    other => panic!("expected Closed, got {other:?}"),
                }
            }
        });
        checkpoint().await.unwrap();
        assert!(!tx.is_closed());
        drop(rx);
        assert_eq!(blocked.await.unwrap(), 1);
        assert!(tx.is_closed());
        assert!(matches!(tx.try_send(2), Err(TrySendError::Closed(2))));
    });
}

#[test]
fn close_rejects_new_sends_but_keeps_the_buffered_messages() {
    paused().block_on(async {
        let (tx, mut rx) = mpsc::unbounded();
        tx.try_send(1).unwrap();
        tx.send(2).await.unwrap();
        rx.close();
        assert!(matches!(tx.try_send(3), Err(TrySendError::Closed(3))));
        assert!(matches!(tx.send(4).await, Err(SendError::Closed(4))));
        assert_eq!(rx.recv().await, Ok(1));
        assert_eq!(rx.recv().await, Ok(2));
        assert_eq!(
            rx.recv().await,
            Err(RecvError::Closed),
            "closed although a sender lives"
        );
    });
}

#[test]
fn dropping_the_receiver_drops_messages_that_hold_senders_of_the_same_channel() {
    struct Carrier(#[allow(dead_code)] mpsc::Sender<Carrier>, Rc<Cell<usize>>);
    impl Drop for Carrier {
        fn drop(&mut self) {
            self.1.set(self.1.get() + 1);
        }
    }
    let drops = Rc::new(Cell::new(0));
    let (tx, rx) = mpsc::unbounded();
    tx.try_send(Carrier(tx.clone(), drops.clone())).unwrap();
    tx.try_send(Carrier(tx.clone(), drops.clone())).unwrap();
    drop(tx);
    // Each message's drop drops a sender: the channel must not be borrowed then.
    drop(rx);
    assert_eq!(drops.get(), 2);
}

#[test]
fn a_receiver_that_always_has_a_message_still_yields_to_other_tasks() {
    paused().block_on(async {
        let (tx, mut rx) = mpsc::unbounded();
        for value in 0..300 {
            tx.try_send(value).unwrap();
        }
        drop(tx);
        let received = Rc::new(Cell::new(0));
        let consumer = spawn({
            let received = received.clone();
            async move {
                while rx.recv().await.is_ok() {
                    received.set(received.get() + 1);
                }
            }
        });
        let observer = spawn({
            let received = received.clone();
            async move { received.get() }
        });
        assert_eq!(
            observer.await.unwrap(),
            128,
            "the consumer yielded after one poll's budget"
        );
        consumer.await.unwrap();
        assert_eq!(received.get(), 300);
    });
}

#[test]
#[should_panic(expected = "mpsc::bounded capacity must be at least 1")]
fn a_bounded_channel_of_capacity_zero_is_rejected() {
    let _ = mpsc::bounded::<u8>(0);
}
