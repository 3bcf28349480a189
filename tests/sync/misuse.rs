//! Misuse: waits polled outside a runtime panic naming the mistake and the fix; the
//! non-waiting calls work anywhere.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::task::{Context, Waker};

use treeloop::sync::{Event, Mutex, Semaphore, mpsc, oneshot};

use crate::common::message;

/// Polls `future` once outside any runtime and returns the panic message it raised.
fn panic_of_polling_outside<F: Future>(future: F) -> String {
    let mut future = pin!(future);
    let payload = catch_unwind(AssertUnwindSafe(|| {
        let _ = future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()));
    }))
    .expect_err("polling a wait outside a runtime must panic");
    message(&*payload)
}

#[test]
fn event_wait_polled_outside_a_runtime_panics_naming_the_fix() {
    let event = Event::new();
    event.set(); // even when it could complete
    let text = panic_of_polling_outside(event.wait());
    assert!(
        text.starts_with(
            "Event::wait polled outside a treeloop runtime: await it inside `treeloop::block_on`"
        ),
        "got: {text}"
    );
}

#[test]
fn every_wait_polled_outside_a_runtime_names_its_operation() {
    let (tx, mut rx) = mpsc::unbounded::<u8>();
    let (_one_tx, mut one_rx) = oneshot::channel::<u8>();
    let mutex = Mutex::new(0);
    let semaphore = Semaphore::new(1);
    let texts = [
        panic_of_polling_outside(tx.send(1)),
        panic_of_polling_outside(rx.recv()),
        panic_of_polling_outside(one_rx.recv()),
        panic_of_polling_outside(mutex.lock()),
        panic_of_polling_outside(semaphore.acquire()),
    ];
    let operations: Vec<&str> = texts
        .iter()
        .map(|text| text.split(" polled outside").next().unwrap())
        .collect();
    assert_eq!(
        operations,
        [
            "mpsc::Sender::send",
            "mpsc::Receiver::recv",
            "oneshot::Receiver::recv",
            "Mutex::lock",
            "Semaphore::acquire",
        ]
    );
    assert_eq!(
        rx.try_recv(),
        Err(mpsc::TryRecvError::Empty),
        "the panicking send sent nothing"
    );
}

#[test]
fn the_non_waiting_calls_work_outside_a_runtime() {
    let (tx, mut rx) = mpsc::bounded(1);
    tx.try_send(1).unwrap();
    assert!(matches!(tx.try_send(2), Err(mpsc::TrySendError::Full(2))));
    assert_eq!(rx.try_recv(), Ok(1));
    let (one_tx, mut one_rx) = oneshot::channel();
    one_tx.send("x").unwrap();
    assert_eq!(one_rx.try_recv(), Ok("x"));
    let mutex = Mutex::new(1);
    *mutex.try_lock().unwrap() += 1;
    assert_eq!(mutex.into_inner(), 2);
    let event = Event::new();
    event.set();
    assert!(event.is_set());
}
