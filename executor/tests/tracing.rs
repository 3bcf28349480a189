//! The `tracing` feature (on in the test suite through the crate's dev-dependency on
//! itself): spawn, poll, cancel and complete reach a subscriber with task ids and names.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};
use treeloop_executor::{TaskBuilder, block_on, cancelled, yield_now};

/// A subscriber that writes each event and each new span as one line:
/// `name field=value ...`, fields in the order they were recorded.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

/// Collects the fields of one event or span.
struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
}

impl Subscriber for Lines {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == "treeloop"
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = Fields(format!("span {}", span.metadata().name()));
        span.record(&mut fields);
        let mut lines = self.0.lock().unwrap();
        lines.push(fields.0);
        Id::from_u64(lines.len() as u64)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        self.0.lock().unwrap().push(fields.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn spawn_poll_cancel_and_complete_are_emitted_with_ids_and_names() {
    let lines = Lines::default();
    let spawned_on = line!() + 3;
    let (worker_id, root_number) = tracing::subscriber::with_default(lines.clone(), || {
        block_on(async {
            let worker = TaskBuilder::new().name("worker").spawn(async {
                cancelled().await;
            });
            yield_now().await.unwrap();
            worker.cancel();
            let id = worker.id();
            worker.await.unwrap();
            // The root was created just before the worker.
            (id, id.number() - 1)
        })
    });
    let w = worker_id.number();
    // The spawn location's column depends on formatting: compare up to the line.
    let lines: Vec<String> = lines
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|line| match line.starts_with("spawn") {
            true => line[..=line.rfind(':').unwrap()].to_owned(),
            false => line.clone(),
        })
        .collect();
    assert_eq!(
        lines,
        vec![
            format!("span poll task_id={root_number}"),
            format!(
                "spawn task_id={w} task_name=\"worker\" parent_id={root_number} location={}:{}:",
                file!(),
                spawned_on
            ),
            format!("span poll task_id={w}"),
            format!("span poll task_id={root_number}"),
            format!("cancel node_id={w} reason=Explicit marked=1"),
            format!("span poll task_id={w}"),
            format!("complete task_id={w} outcome=\"returned\""),
            format!("span poll task_id={root_number}"),
        ]
    );
}
