//! Output worker supervision: a panic in an output's send (or in the worker's settling of its
//! outcome) restarts the worker's client and retries the batch; nothing is acked early, nothing
//! is lost, and the panic is counted.
//!
//! Fault points are process-wide (a worker anywhere in the process consumes an armed firing),
//! so these tests live in their own test binary and run one after the other in one test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use skiff_config::Duration as ConfDuration;
use skiff_event::{AckStream, Event, Map};
use skiff_metrics::{Registry, names};
use skiff_pipeline::queue::memory::{FlushConfig, MemoryQueue, MemoryQueueConfig};
use skiff_pipeline::worker::{self, RestartPolicy, WorkerFailed};
use skiff_pipeline::{
    Budget, Failure, FailureKind, Outcome, Output, OutputSet, OutputSettings, Queue, fault,
};
use tokio::task::JoinSet;

/// Records every event it is sent (by offset) and how often it was reset.
struct Recorder {
    seen: Arc<Mutex<Vec<u64>>>,
    resets: Arc<Mutex<u32>>,
    /// Panics on this many sends (a client bug), before recording anything.
    panics: u32,
}

#[async_trait]
impl Output for Recorder {
    async fn send(&mut self, events: &[Event]) -> Result<Outcome, Failure> {
        if self.panics > 0 {
            self.panics -= 1;
            panic!("client bug");
        }
        let mut seen = self.seen.lock().unwrap();
        seen.extend(events.iter().map(|e| e.offset.unwrap()));
        Ok(Outcome::delivered())
    }
    fn describe(&self) -> String {
        "recorder".into()
    }
    async fn reset(&mut self) {
        *self.resets.lock().unwrap() += 1;
    }
}

fn settings() -> OutputSettings {
    OutputSettings {
        bulk_max_size: 10,
        max_retries: -1,
        backoff_init: Duration::from_millis(1),
        backoff_max: Duration::from_millis(4),
        loadbalance: true,
    }
}

async fn filled_queue(reg: &Registry, n: u64) -> (Arc<dyn Queue>, Arc<AckStream>) {
    let cfg = MemoryQueueConfig {
        flush: FlushConfig {
            min_events: 1,
            timeout: ConfDuration(Duration::ZERO),
        },
        ..Default::default()
    };
    let q: Arc<dyn Queue> = Arc::new(MemoryQueue::new(cfg, reg, &Budget::new(reg.clone())));
    let stream = AckStream::new();
    for i in 0..n {
        let mut e = Event::new(Arc::new(Map::new()), format!("e{i}"));
        e.offset = Some(i);
        e.ack = Some(stream.token(i));
        q.push(e).await.unwrap();
    }
    q.close();
    (q, stream)
}

fn errors(reg: &Registry, kind: FailureKind) -> u64 {
    worker::error_count(reg, kind)
}

/// The fault point `output.send.panic` fires twice: the worker survives both panics, every
/// event is sent exactly once (the panics come before the client sees the batch) and acked
/// exactly once, and both panics are counted.
#[tokio::test]
async fn a_panicking_send_restarts_the_worker_and_a_restart_limit_is_reported() {
    a_worker_whose_send_panics_twice_restarts_and_delivers_everything_once().await;
    a_worker_past_its_restart_limit_reports_failure_and_acks_nothing().await;
    a_panic_while_settling_retries_the_batch_and_loses_nothing().await;
}

async fn a_worker_whose_send_panics_twice_restarts_and_delivers_everything_once() {
    let reg = Registry::new();
    let n = 35;
    let (q, stream) = filled_queue(&reg, n).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let resets = Arc::new(Mutex::new(0));
    let out = OutputSet {
        clients: vec![Box::new(Recorder {
            seen: seen.clone(),
            resets: resets.clone(),
            panics: 0,
        })],
        settings: settings(),
    };
    fault::arm(worker::SEND_PANIC_POINT, 2);
    let mut tasks = JoinSet::new();
    worker::spawn_supervised(&mut tasks, q, out, None, &reg, RestartPolicy::default());
    let joined = tokio::time::timeout(Duration::from_secs(30), tasks.join_next())
        .await
        .expect("the worker did not finish within 30s after the queue was drained");
    let result = joined
        .expect("one worker")
        .expect("the worker task itself must not die");
    assert!(result.is_ok(), "{result:?}");
    let mut got = seen.lock().unwrap().clone();
    got.sort_unstable();
    assert_eq!(
        got,
        (0..n).collect::<Vec<_>>(),
        "every event sent exactly once"
    );
    let p = stream.progress();
    assert_eq!((p.acked, p.acked_position), (n, Some(n - 1)));
    assert_eq!(reg.counter(&names::OUTPUT_EVENTS_ACKED).get(), n);
    assert_eq!(errors(&reg, FailureKind::Panic), 2);
    assert_eq!(reg.counter(&names::OUTPUT_WORKER_RESTARTS).get(), 2);
    assert_eq!(
        *resets.lock().unwrap(),
        2,
        "the client is reset after each panic"
    );
    assert_eq!(reg.gauge(&names::OUTPUT_EVENTS_ACTIVE).get(), 0);
}

/// A client that panics on every send, under a policy of 3 panics in a row: the worker gives
/// up with `WorkerFailed` (for the agent to exit non-zero) and acks nothing.
async fn a_worker_past_its_restart_limit_reports_failure_and_acks_nothing() {
    let reg = Registry::new();
    let (q, stream) = filled_queue(&reg, 5).await;
    let out = OutputSet {
        clients: vec![Box::new(Recorder {
            seen: Arc::default(),
            resets: Arc::default(),
            panics: u32::MAX,
        })],
        settings: settings(),
    };
    let mut tasks = JoinSet::new();
    let policy = RestartPolicy {
        max_consecutive_panics: Some(3),
    };
    worker::spawn_supervised(&mut tasks, q, out, None, &reg, policy);
    let result: Result<(), WorkerFailed> =
        tokio::time::timeout(Duration::from_secs(30), worker::join_all(&mut tasks))
            .await
            .expect("the worker did not give up within 30s");
    let e = result.expect_err("the worker must report that it gave up");
    assert_eq!((e.output.as_str(), e.panics), ("recorder", 4));
    assert!(e.last.contains("client bug"), "{e}");
    assert_eq!(stream.progress().acked, 0);
    assert_eq!(reg.counter(&names::OUTPUT_EVENTS_ACKED).get(), 0);
    assert_eq!(errors(&reg, FailureKind::Panic), 4);
}

/// Asks to retry the last event of every batch of more than one: the worker settles each
/// outcome on its general path (ack some, keep some).
struct RetryLast {
    seen: Arc<Mutex<Vec<u64>>>,
}

#[async_trait]
impl Output for RetryLast {
    async fn send(&mut self, events: &[Event]) -> Result<Outcome, Failure> {
        self.seen
            .lock()
            .unwrap()
            .extend(events.iter().map(|e| e.offset.unwrap()));
        let retry = if events.len() > 1 {
            vec![events.len() - 1]
        } else {
            Vec::new()
        };
        Ok(Outcome {
            retry,
            rejected: Vec::new(),
        })
    }
    fn describe(&self) -> String {
        "retry-last".into()
    }
}

/// The worker panics while settling (`output.settle.panic`, after acking the first event of a
/// batch): the batch is retried like a panicking send, no event is lost or left unacknowledged,
/// the worker goes on (no `WorkerFailed`, so no fatal exit), and the panic is counted.
async fn a_panic_while_settling_retries_the_batch_and_loses_nothing() {
    let reg = Registry::new();
    let n = 25;
    let (q, stream) = filled_queue(&reg, n).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let out = OutputSet {
        clients: vec![Box::new(RetryLast { seen: seen.clone() })],
        settings: settings(),
    };
    fault::arm(worker::SETTLE_PANIC_POINT, 1);
    let mut tasks = JoinSet::new();
    let policy = RestartPolicy {
        max_consecutive_panics: Some(3),
    };
    worker::spawn_supervised(&mut tasks, q, out, None, &reg, policy);
    let result = tokio::time::timeout(Duration::from_secs(30), worker::join_all(&mut tasks))
        .await
        .expect("the worker did not finish within 30s after the queue was drained");
    assert!(
        result.is_ok(),
        "a panic while settling is not fatal: {result:?}"
    );
    let p = stream.progress();
    assert_eq!(
        (p.acked, p.abandoned, p.acked_position),
        (n, 0, Some(n - 1)),
        "every event acknowledged once, none given up on"
    );
    let mut got = seen.lock().unwrap().clone();
    got.sort_unstable();
    got.dedup();
    assert_eq!(got, (0..n).collect::<Vec<_>>(), "every event sent");
    assert_eq!(errors(&reg, FailureKind::Panic), 1);
    // The event acked before the panic is sent and counted again (at least once).
    assert!(reg.counter(&names::OUTPUT_EVENTS_ACKED).get() >= n);
}
