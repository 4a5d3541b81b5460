//! Backpressure: with an output that blocks, the memory queue's accounted bytes never exceed
//! its limit, the input is paused (it waits in `publish`), and once the output resumes every
//! event arrives exactly once, in order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use skiff_config::{ByteSize, Duration as ConfDuration};
use skiff_event::{AckStream, Event, Map};
use skiff_metrics::{Registry, names};
use skiff_pipeline::queue::WhenFull;
use skiff_pipeline::queue::memory::{FlushConfig, MemoryQueue, MemoryQueueConfig};
use skiff_pipeline::{Budget, BuildContext, Outcome, Output, OutputSet, OutputSettings, Queue};
use skiff_topology::{Drain, Topology};
use tokio::sync::Notify;

struct Gate {
    open: AtomicBool,
    opened: Notify,
    got: Mutex<Vec<u64>>,
}

struct Blocking(Arc<Gate>);

#[async_trait]
impl Output for Blocking {
    async fn send(&mut self, events: &[Event]) -> Result<Outcome, skiff_pipeline::Failure> {
        loop {
            let notified = self.0.opened.notified();
            if self.0.open.load(Ordering::SeqCst) {
                break;
            }
            notified.await;
        }
        self.0
            .got
            .lock()
            .unwrap()
            .extend(events.iter().map(|e| e.offset.unwrap()));
        Ok(Outcome::delivered())
    }
    fn describe(&self) -> String {
        "blocking".into()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_output_pauses_the_input_within_the_byte_limit() {
    let reg = Registry::new();
    let limit: u64 = 64 * 1024;
    let cfg = MemoryQueueConfig {
        events: 1_000_000,
        max_bytes: ByteSize(limit),
        flush: FlushConfig {
            min_events: 1,
            timeout: ConfDuration(Duration::ZERO),
        },
        when_full: WhenFull::Block,
    };
    let q = MemoryQueue::new(cfg, &reg, &Budget::new(reg.clone()));
    let queue: Arc<dyn Queue> = Arc::new(q.clone());
    let gate = Arc::new(Gate {
        open: AtomicBool::new(false),
        opened: Notify::new(),
        got: Mutex::new(Vec::new()),
    });
    let settings = OutputSettings {
        bulk_max_size: 50,
        ..Default::default()
    };
    let running = Topology::builder(BuildContext::standalone("t", "0.0.0", &reg))
        .queue(queue.clone(), false)
        .output(
            "blocking",
            OutputSet {
                clients: vec![Box::new(Blocking(gate.clone()))],
                settings,
            },
        )
        .build()
        .start()
        .await;
    // No input: the test publishes itself.
    let publisher = running.publisher();
    let stream = AckStream::new();
    let total: u64 = 2000;
    let published = Arc::new(AtomicU64::new(0));
    let producer = {
        let (publisher, stream, published) = (publisher.clone(), stream.clone(), published.clone());
        tokio::spawn(async move {
            let shared = Arc::new(Map::new());
            for i in 0..total {
                let mut e = Event::new(shared.clone(), format!("{i:0>500}"));
                e.offset = Some(i);
                e.ack = Some(stream.token(i));
                publisher.publish(e).await.unwrap();
                published.store(i + 1, Ordering::SeqCst);
            }
        })
    };

    // Watch the queue while the output is blocked.
    let mut max_seen = 0;
    for _ in 0..50 {
        max_seen = max_seen.max(q.stats().bytes);
        tokio::time::sleep(Duration::from_millis(4)).await;
    }
    let stuck_at = published.load(Ordering::SeqCst);
    assert!(
        stuck_at < total,
        "the input must be paused, it published {stuck_at}"
    );
    assert!(
        max_seen <= limit,
        "accounted bytes {max_seen} exceeded the limit {limit}"
    );
    assert!(reg.counter(&names::PIPELINE_BLOCKED).get() >= 1);
    assert_eq!(
        stream.progress().acked,
        0,
        "nothing is acked while the output is blocked"
    );

    // Open the output: everything drains, exactly once, in order.
    gate.open.store(true, Ordering::SeqCst);
    gate.opened.notify_waiters();
    let watcher = tokio::spawn({
        let q = q.clone();
        async move {
            let mut max = 0;
            for _ in 0..500 {
                max = max.max(q.stats().bytes);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            max
        }
    });
    producer.await.unwrap();
    let report = running
        .stop(Drain::Fully, std::future::pending::<()>())
        .await;
    assert_eq!(report.left, 0);
    assert!(watcher.await.unwrap() <= limit);
    let got = gate.got.lock().unwrap().clone();
    assert_eq!(got, (0..total).collect::<Vec<_>>());
    let p = stream.progress();
    assert_eq!((p.acked, p.acked_position), (total, Some(total - 1)));
}
