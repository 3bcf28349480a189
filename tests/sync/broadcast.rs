//! `broadcast`: fan-out in order, subscribing, lagging, closing, each message stored once
//! and dropped once, and the cancel cases (a cancelled recv takes no message and consumes no
//! `Lagged` report; a dropped or cancelled pending recv leaves no waker behind), then misuse.

use std::cell::{Cell, RefCell};
use std::error::Error;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use crate::common::{message, ms, ms_since, paused};
use crate::poll_once;
use treeloop::sync::broadcast::{self, RecvError, SendError, TryRecvError};
use treeloop::time::{Instant, sleep};
use treeloop::{CancelReason, Cancelled, checkpoint, spawn, yield_now};

fn explicit() -> Cancelled {
    Cancelled::new(CancelReason::Explicit)
}

/// How many copies of [`Tracked`] values were made and dropped.
#[derive(Clone, Default)]
struct Tally(Rc<(Cell<usize>, Cell<usize>)>);

impl Tally {
    fn clones(&self) -> usize {
        self.0.0.get()
    }
    fn drops(&self) -> usize {
        self.0.1.get()
    }
    fn value(&self, id: u32) -> Tracked {
        Tracked {
            id,
            tally: self.clone(),
        }
    }
}

/// A message that counts its clones and drops in a [`Tally`].
struct Tracked {
    id: u32,
    tally: Tally,
}

impl Clone for Tracked {
    fn clone(&self) -> Self {
        let clones = &self.tally.0.0;
        clones.set(clones.get() + 1);
        self.tally.value(self.id)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let drops = &self.tally.0.1;
        drops.set(drops.get() + 1);
    }
}

/// Receives until the channel reports something other than a message.
async fn drain<T: Clone>(rx: &mut broadcast::Receiver<T>) -> (Vec<T>, RecvError) {
    let mut got = Vec::new();
    loop {
        match rx.recv().await {
            Ok(value) => got.push(value),
            Err(err) => return (got, err),
        }
    }
}

#[test]
fn every_receiver_gets_every_message_in_order_then_closed() {
    paused().block_on(async {
        let (tx, rx) = broadcast::channel(4);
        let receivers = [rx, tx.subscribe(), tx.subscribe()];
        let listeners: Vec<_> = receivers
            .into_iter()
            .map(|mut rx| spawn(async move { drain(&mut rx).await }))
            .collect();
        checkpoint().await.unwrap(); // all three wait
        // A burst that fills the ring, then more while they keep up.
        for value in 1..=4 {
            assert_eq!(tx.send(value), Ok(3));
        }
        sleep(ms(1)).await.unwrap();
        for value in 5..=6 {
            assert_eq!(tx.send(value), Ok(3));
            sleep(ms(1)).await.unwrap();
        }
        assert_eq!(tx.len(), 0, "every message was read by all three");
        drop(tx);
        for listener in listeners {
            assert_eq!(
                listener.await.unwrap(),
                (vec![1, 2, 3, 4, 5, 6], RecvError::Closed)
            );
        }
    });
}

#[test]
fn send_returns_the_receiver_count_and_hands_the_value_back_when_none_is_alive() {
    let (tx, rx) = broadcast::channel::<String>(2);
    assert_eq!(tx.receiver_count(), 1);
    let second = tx.subscribe();
    let third = rx.resubscribe();
    assert_eq!(tx.receiver_count(), 3);
    assert_eq!(tx.send("a".to_string()), Ok(3));
    drop(second);
    assert_eq!(tx.send("b".to_string()), Ok(2));
    drop(rx);
    drop(third);
    assert_eq!(tx.receiver_count(), 0);
    assert_eq!(tx.len(), 0, "nothing is held for nobody");
    let err = tx.send("lost".to_string()).unwrap_err();
    assert_eq!(err, SendError("lost".to_string()));
    assert_eq!(err.into_inner(), "lost");
    assert!(tx.is_empty(), "a failed send stores nothing");
    // A receiver subscribed later is counted again.
    let mut late = tx.subscribe();
    assert_eq!(tx.send("c".to_string()), Ok(1));
    assert_eq!(late.try_recv().as_deref(), Ok("c"));
}

#[test]
fn a_subscriber_sees_only_the_messages_sent_after_it_subscribed() {
    paused().block_on(async {
        let (tx, mut rx) = broadcast::channel(8);
        tx.send(1).unwrap();
        tx.send(2).unwrap();
        let mut subscribed = tx.subscribe();
        // Not the two `rx` has yet to read either.
        let mut resubscribed = rx.resubscribe();
        assert_eq!((subscribed.len(), resubscribed.len()), (0, 0));
        assert_eq!(tx.send(3), Ok(3));
        assert_eq!(rx.len(), 3);
        assert_eq!(subscribed.recv().await, Ok(3));
        assert_eq!(resubscribed.recv().await, Ok(3));
        for expected in 1..=3 {
            assert_eq!(rx.recv().await, Ok(expected));
        }
        for rx in [&mut rx, &mut subscribed, &mut resubscribed] {
            assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
            assert!(rx.is_empty());
        }
    });
}

#[test]
fn a_receiver_that_falls_behind_gets_lagged_once_then_the_oldest_messages_held() {
    paused().block_on(async {
        let (tx, mut slow) = broadcast::channel(2);
        let mut fast = tx.subscribe();
        for value in 1..=5 {
            assert_eq!(tx.send(value), Ok(2));
            assert_eq!(fast.recv().await, Ok(value));
        }
        assert_eq!(
            slow.len(),
            5,
            "sent and not yet received, missed ones included"
        );
        assert_eq!(tx.len(), 2, "the ring holds the last two");
        assert_eq!(slow.recv().await, Err(RecvError::Lagged(3)));
        assert_eq!(slow.len(), 2);
        assert_eq!(slow.recv().await, Ok(4));
        assert_eq!(slow.recv().await, Ok(5));
        assert_eq!(slow.try_recv(), Err(TryRecvError::Empty));
        assert_eq!(tx.len(), 0);
        // A new gap is reported once more, with its own count; both receivers lag now.
        for value in 6..=8 {
            tx.send(value).unwrap();
        }
        for rx in [&mut slow, &mut fast] {
            assert_eq!(rx.try_recv(), Err(TryRecvError::Lagged(1)));
            assert_eq!(rx.recv().await, Ok(7));
            assert_eq!(rx.recv().await, Ok(8));
        }
    });
}

#[test]
fn receivers_drain_what_is_held_then_get_closed_once_every_sender_is_gone() {
    paused().block_on(async {
        let start = Instant::now();
        let (tx, mut rx) = broadcast::channel(4);
        let other_tx = tx.clone();
        tx.send(1).unwrap();
        tx.send(2).unwrap();
        let mut waiting = tx.subscribe(); // nothing for it: it waits
        let waiter = spawn(async move { (waiting.recv().await, ms_since(start)) });
        sleep(ms(5)).await.unwrap();
        drop(tx);
        sleep(ms(5)).await.unwrap();
        assert!(!waiter.is_finished(), "a sender is still alive");
        drop(other_tx);
        assert_eq!(waiter.await.unwrap(), (Err(RecvError::Closed), 10));
        assert_eq!(drain(&mut rx).await, (vec![1, 2], RecvError::Closed));
        assert_eq!(rx.recv().await, Err(RecvError::Closed), "and again");
        assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
        assert_eq!(rx.resubscribe().try_recv(), Err(TryRecvError::Closed));
    });
}

#[test]
fn recv_in_a_cancelled_region_fails_every_time_even_with_a_message_ready_and_takes_nothing() {
    paused().block_on(async {
        let (tx, mut rx) = broadcast::channel(4);
        tx.send("ready").unwrap();
        let task = spawn(async move {
            let _ = sleep(ms(1_000)).await; // wait to be cancelled
            let mut results = Vec::new();
            for _ in 0..3 {
                results.push(rx.recv().await);
            }
            let held = rx.len();
            // `send` is not an await point: synchronous code is never interrupted.
            let sent = tx.send("sent from a cancelled region");
            (results, held, sent, rx)
        });
        checkpoint().await.unwrap();
        task.cancel();
        let (results, held, sent, mut rx) = task.await.unwrap();
        assert_eq!(results, [Err(RecvError::Cancelled(explicit())); 3]);
        assert_eq!(held, 1, "no message was taken by a cancelled recv");
        assert_eq!(sent, Ok(1));
        // Outside the cancelled region, the next recv gets them.
        assert_eq!(rx.recv().await, Ok("ready"));
        assert_eq!(rx.recv().await, Ok("sent from a cancelled region"));
        assert_eq!(rx.recv().await, Err(RecvError::Closed));
    });
}

#[test]
fn a_cancelled_recv_does_not_consume_the_lagged_report() {
    paused().block_on(async {
        let (tx, mut rx) = broadcast::channel(2);
        for value in 1..=5 {
            tx.send(value).unwrap();
        }
        let task = spawn(async move {
            let _ = sleep(ms(1_000)).await; // wait to be cancelled
            let results = [rx.recv().await, rx.recv().await];
            (results, rx)
        });
        checkpoint().await.unwrap();
        task.cancel();
        let (results, mut rx) = task.await.unwrap();
        assert_eq!(results, [Err(RecvError::Cancelled(explicit())); 2]);
        assert_eq!(rx.recv().await, Err(RecvError::Lagged(3)));
        assert_eq!(rx.recv().await, Ok(4));
        assert_eq!(rx.recv().await, Ok(5));
    });
}

#[test]
fn a_recv_waiting_when_cancelled_fails_at_once_and_later_sends_reach_every_receiver() {
    paused().block_on(async {
        let start = Instant::now();
        let (tx, rx) = broadcast::channel(4);
        let mut other = tx.subscribe();
        let cancelled = spawn(async move {
            let mut rx = rx;
            let result = rx.recv().await;
            (result, ms_since(start), rx)
        });
        let listener = spawn(async move { (other.recv().await, ms_since(start)) });
        sleep(ms(5)).await.unwrap();
        cancelled.cancel();
        let (result, at, mut rx) = cancelled.await.unwrap();
        assert_eq!(result, Err(RecvError::Cancelled(explicit())));
        assert_eq!(at, 5, "woken by the cancel (R12)");
        sleep(ms(5)).await.unwrap();
        assert!(!listener.is_finished());
        assert_eq!(tx.send("late"), Ok(2));
        assert_eq!(listener.await.unwrap(), (Ok("late"), 10));
        assert_eq!(
            rx.try_recv(),
            Ok("late"),
            "the cancelled receiver lost nothing"
        );
        assert!(tx.is_empty());
    });
}

/// A waker that counts its wakes; `Arc::strong_count` says how many clones exist.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_dropped_pending_recv_leaves_no_waker_behind_and_the_next_send_still_reaches_everyone() {
    paused().block_on(async {
        let tally = Tally::default();
        let (tx, mut rx) = broadcast::channel::<Tracked>(2);
        let mut other = tx.subscribe();
        // Polled from inside the task with a waker we can count.
        let probe = Arc::new(CountingWaker::default());
        let waker = Waker::from(probe.clone());
        {
            let mut recv = rx.recv();
            let polled = poll_fn(|_| {
                Poll::Ready(Pin::new(&mut recv).poll(&mut Context::from_waker(&waker)))
            })
            .await;
            assert!(polled.is_pending());
            assert_eq!(Arc::strong_count(&probe), 3, "the channel holds a clone");
        }
        assert_eq!(
            Arc::strong_count(&probe),
            2,
            "dropping the recv took it back"
        );
        // The same with the task's own waker.
        {
            let mut recv = other.recv();
            assert!(poll_once(&mut recv).await.is_pending());
        }
        let listener = spawn(async move { other.recv().await.map(|value| value.id) });
        checkpoint().await.unwrap(); // the listener waits
        assert_eq!(tx.send(tally.value(1)).ok(), Some(2));
        assert_eq!(listener.await.unwrap(), Ok(1));
        assert_eq!(
            probe.0.load(Ordering::SeqCst),
            0,
            "the dropped recv was not woken"
        );
        assert_eq!(rx.try_recv().map(|value| value.id), Ok(1));
        assert_eq!(
            (tally.clones(), tally.drops()),
            (1, 2),
            "one clone for the first reader, the original moved to the last; both dropped"
        );
        assert!(tx.is_empty());
    });
}

#[test]
fn each_message_is_dropped_once_after_its_last_reader_or_when_it_is_overwritten() {
    let tally = Tally::default();
    let (tx, mut a) = broadcast::channel(1);
    let mut b = tx.subscribe();
    let mut c = tx.subscribe();
    tx.send(tally.value(1)).unwrap();
    let from_a = a.try_recv().unwrap();
    let from_b = b.try_recv().unwrap();
    assert_eq!((tally.clones(), tally.drops()), (2, 0));
    assert_eq!(tx.len(), 1, "still held for c");
    let from_c = c.try_recv().unwrap();
    assert_eq!(tx.len(), 0);
    assert_eq!(
        tally.clones(),
        2,
        "the last reader got the original by move"
    );
    assert_eq!([from_a.id, from_b.id, from_c.id], [1, 1, 1]);
    drop((from_a, from_b, from_c));
    assert_eq!(tally.drops(), 3);

    // Overwritten before b and c read it: the channel drops it, at the send.
    tx.send(tally.value(2)).unwrap();
    drop(a.try_recv().unwrap());
    assert_eq!((tally.clones(), tally.drops()), (3, 4));
    tx.send(tally.value(3)).unwrap();
    assert_eq!(tally.drops(), 5, "message 2 dropped by the overwrite");
    for rx in [&mut b, &mut c] {
        assert_eq!(
            rx.try_recv().map(|value| value.id),
            Err(TryRecvError::Lagged(1))
        );
    }
    for rx in [&mut a, &mut b, &mut c] {
        assert_eq!(rx.try_recv().map(|value| value.id), Ok(3));
    }
    assert_eq!((tally.clones(), tally.drops()), (5, 8));

    // A failed send hands its value back; the channel drops nothing.
    drop((a, b, c));
    let back = tx.send(tally.value(4)).unwrap_err();
    assert_eq!(tally.drops(), 8);
    drop(back);
    assert_eq!(
        (tally.clones(), tally.drops()),
        (5, 9),
        "one drop per copy made"
    );
}

#[test]
fn dropping_a_receiver_releases_the_messages_only_it_had_yet_to_read() {
    let tally = Tally::default();
    let (tx, mut a) = broadcast::channel(4);
    let b = tx.subscribe();
    tx.send(tally.value(1)).unwrap();
    tx.send(tally.value(2)).unwrap();
    drop(a.try_recv().unwrap());
    assert_eq!((tally.clones(), tally.drops()), (1, 1));
    assert_eq!(tx.len(), 2, "b has read neither");
    drop(b);
    assert_eq!(
        tx.len(),
        1,
        "message 1 is released; a has yet to read message 2"
    );
    assert_eq!((tally.clones(), tally.drops()), (1, 2));
    assert_eq!(a.try_recv().map(|value| value.id), Ok(2));
    assert_eq!(
        (tally.clones(), tally.drops()),
        (1, 3),
        "the last reader took it by move"
    );
    tx.send(tally.value(3)).unwrap();
    drop(a);
    assert_eq!((tally.clones(), tally.drops()), (1, 4));
    assert!(tx.is_empty());
}

/// A message that looks at its own channel when it is cloned and dropped.
struct Loopback {
    tx: broadcast::Sender<Loopback>,
    seen: Rc<RefCell<Vec<String>>>,
}

impl Clone for Loopback {
    fn clone(&self) -> Self {
        let receivers = self.tx.receiver_count();
        self.seen
            .borrow_mut()
            .push(format!("clone: {receivers} receivers"));
        Loopback {
            tx: self.tx.clone(),
            seen: self.seen.clone(),
        }
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        let held = self.tx.len();
        self.seen.borrow_mut().push(format!("drop: {held} held"));
    }
}

#[test]
fn a_message_may_clone_and_drop_through_its_own_channel() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let (tx, mut a) = broadcast::channel(1);
    let mut b = tx.subscribe();
    let loopback = |tx: &broadcast::Sender<Loopback>| Loopback {
        tx: tx.clone(),
        seen: seen.clone(),
    };
    tx.send(loopback(&tx)).unwrap();
    drop(a.try_recv().unwrap()); // cloned after the borrow is released
    drop(b.try_recv().unwrap()); // moved out: the last reader
    tx.send(loopback(&tx)).unwrap();
    tx.send(loopback(&tx)).unwrap(); // overwrites; dropped after the borrow
    drop((a, b)); // releases the last one (and its `Sender`) after the borrow
    assert_eq!(
        seen.take(),
        [
            "clone: 2 receivers",
            "drop: 1 held",
            "drop: 0 held",
            "drop: 1 held",
            "drop: 0 held",
        ]
    );
}

#[test]
fn a_receiver_that_always_has_a_message_still_yields_to_other_tasks() {
    paused().block_on(async {
        let (tx, mut rx) = broadcast::channel(300);
        for value in 0..300 {
            tx.send(value).unwrap();
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
fn waiting_receivers_get_every_message_under_many_seeded_schedules() {
    treeloop::test::check(50, || async {
        let (tx, rx) = broadcast::channel(8);
        let receivers = [rx, tx.subscribe(), tx.subscribe()];
        let listeners: Vec<_> = receivers
            .into_iter()
            .map(|mut rx| spawn(async move { drain(&mut rx).await }))
            .collect();
        for value in 1..=6 {
            assert_eq!(tx.send(value), Ok(3));
            yield_now().await.unwrap();
        }
        drop(tx);
        for listener in listeners {
            assert_eq!(
                listener.await.unwrap(),
                (vec![1, 2, 3, 4, 5, 6], RecvError::Closed)
            );
        }
    });
}

#[test]
fn the_errors_say_what_happened_and_cancellation_converts_with_question_mark() {
    async fn next_after_checkpoint(rx: &mut broadcast::Receiver<u8>) -> Result<u8, RecvError> {
        checkpoint().await?; // `Cancelled` converts into `RecvError`
        rx.recv().await
    }
    let err = paused().block_on(async {
        let (tx, mut rx) = broadcast::channel(1);
        tx.send(1).unwrap();
        let task = spawn(async move {
            let _ = sleep(ms(1_000)).await; // wait to be cancelled
            (next_after_checkpoint(&mut rx).await, rx.try_recv())
        });
        checkpoint().await.unwrap();
        task.cancel();
        let (err, after) = task.await.unwrap();
        assert_eq!(after, Ok(1));
        err.unwrap_err()
    });
    assert_eq!(err, RecvError::Cancelled(explicit()));
    assert_eq!(RecvError::from(explicit()), err);
    assert_eq!(
        err.to_string(),
        format!("{}; no message was taken", explicit())
    );
    let errors: [Box<dyn Error>; 4] = [
        Box::new(RecvError::Lagged(3)),
        Box::new(RecvError::Closed),
        Box::new(TryRecvError::Empty),
        Box::new(SendError(7)),
    ];
    let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(texts[0].starts_with("receiver lagged: 3 messages were overwritten"));
    assert!(texts[1].starts_with("channel closed: every sender is gone"));
    assert!(texts[2].contains("await `recv`"));
    assert!(texts[3].contains("the value is returned in the error"));
    assert_eq!(format!("{:?}", SendError(7)), "SendError(..)");
}

#[test]
fn recv_polled_outside_a_runtime_panics_naming_the_fix_and_takes_nothing() {
    let (tx, mut rx) = broadcast::channel(2);
    // The non-waiting calls work anywhere.
    assert_eq!(tx.send(1), Ok(1));
    let text = {
        let mut recv = pin!(rx.recv());
        let payload = catch_unwind(AssertUnwindSafe(|| {
            let _ = recv.as_mut().poll(&mut Context::from_waker(Waker::noop()));
        }))
        .expect_err("polling recv outside a runtime must panic");
        message(&*payload)
    };
    assert!(
        text.starts_with(
            "broadcast::Receiver::recv polled outside a treeloop runtime: await it inside \
             `treeloop::block_on`"
        ),
        "got: {text}"
    );
    assert_eq!(rx.try_recv(), Ok(1), "the panicking recv took nothing");
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
}

#[test]
#[should_panic(expected = "broadcast::channel capacity must be at least 1")]
fn a_channel_of_capacity_zero_is_rejected() {
    let _ = broadcast::channel::<u8>(0);
}
