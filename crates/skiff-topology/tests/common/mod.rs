//! In-memory components for topology tests: an input that publishes numbered events, a queue
//! that records when it is closed, an output that records what it got and when it was closed.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use skiff_event::{AckStream, Event, Map};
use skiff_metrics::Registry;
use skiff_pipeline::queue::memory::{MemoryQueue, MemoryQueueConfig};
use skiff_pipeline::queue::{Batch, QueueStats};
use skiff_pipeline::{
    BuildContext, Closed, Failure, FailureKind, Input, InputContext, Outcome, Output, OutputSet,
    OutputSettings, Queue,
};
use skiff_topology::{InputSpec, SupervisionConfig, Topology};

pub type Log = Arc<Mutex<Vec<String>>>;

pub fn note(log: &Log, what: impl Into<String>) {
    log.lock().unwrap().push(what.into());
}

pub fn position(log: &Log, what: &str) -> usize {
    let l = log.lock().unwrap();
    l.iter()
        .position(|s| s == what)
        .unwrap_or_else(|| panic!("`{what}` never happened: {l:?}"))
}

/// Publishes `n` numbered events, then (unless `end`) waits for shutdown; records its stop.
struct Numbers {
    n: u64,
    end: bool,
    log: Log,
    /// Fails this many more times (shared across rebuilds) before running.
    fail: Arc<AtomicU32>,
}

#[async_trait]
impl Input for Numbers {
    async fn run(self: Box<Self>, ctx: InputContext) -> Result<(), Failure> {
        if self
            .fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| f.checked_sub(1))
            .is_ok()
        {
            return Err(Failure::new(
                FailureKind::Connect,
                "cannot reach the source",
            ));
        }
        let stream = AckStream::new();
        let shared = Arc::new(Map::new());
        for i in 0..self.n {
            let mut e = Event::new(shared.clone(), format!("{i}"));
            e.offset = Some(i);
            e.ack = Some(stream.token(i));
            if ctx.publisher.publish(e).await.is_err() {
                break;
            }
        }
        if !self.end {
            ctx.shutdown.cancelled().await;
            note(&self.log, "input stopped");
        }
        Ok(())
    }
}

/// A memory queue that records when it is closed.
struct Recording {
    inner: MemoryQueue,
    log: Log,
}

#[async_trait]
impl Queue for Recording {
    async fn push(&self, event: Event) -> Result<(), Closed> {
        self.inner.push(event).await
    }
    async fn pop(&self, max: usize) -> Option<Batch> {
        self.inner.pop(max).await
    }
    fn close(&self) {
        note(&self.log, "queue closed");
        self.inner.close()
    }
    fn stats(&self) -> QueueStats {
        self.inner.stats()
    }
}

/// Records every event; fails every send while `down`.
struct Sink {
    got: Arc<Mutex<Vec<String>>>,
    log: Log,
    down: bool,
}

#[async_trait]
impl Output for Sink {
    async fn send(&mut self, events: &[Event]) -> Result<Outcome, skiff_pipeline::Failure> {
        if self.down {
            return Err(skiff_pipeline::Failure::new(
                skiff_pipeline::FailureKind::Connect,
                "the server is down",
            ));
        }
        let mut g = self.got.lock().unwrap();
        g.extend(events.iter().map(|e| e.message.clone().unwrap_or_default()));
        Ok(Outcome::delivered())
    }
    fn describe(&self) -> String {
        "sink".into()
    }
    async fn close(&mut self) {
        note(&self.log, "output closed");
    }
}

pub struct Fixture {
    pub ctx: BuildContext,
    pub log: Log,
    pub got: Arc<Mutex<Vec<String>>>,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture {
            ctx: BuildContext::standalone("t", "9.9.9", &Registry::new()),
            log: Log::default(),
            got: Arc::default(),
        }
    }

    pub fn numbers(&self, id: &str, n: u64, end: bool, fail: u32) -> InputSpec {
        let (log, fail) = (self.log.clone(), Arc::new(AtomicU32::new(fail)));
        InputSpec::new(
            id,
            Arc::new(move || {
                Ok(Box::new(Numbers {
                    n,
                    end,
                    log: log.clone(),
                    fail: fail.clone(),
                }) as Box<dyn Input>)
            }),
        )
    }

    pub fn topology(
        &self,
        input: InputSpec,
        down: bool,
        supervision: SupervisionConfig,
    ) -> Topology {
        let queue = Recording {
            inner: MemoryQueue::new(
                MemoryQueueConfig::default(),
                &self.ctx.metrics,
                &self.ctx.budget,
            ),
            log: self.log.clone(),
        };
        let sink = Sink {
            got: self.got.clone(),
            log: self.log.clone(),
            down,
        };
        Topology::builder(self.ctx.clone())
            .queue(Arc::new(queue), false)
            .output(
                "sink",
                OutputSet {
                    clients: vec![Box::new(sink)],
                    settings: OutputSettings {
                        backoff_init: Duration::from_millis(5),
                        backoff_max: Duration::from_millis(20),
                        ..Default::default()
                    },
                },
            )
            .input(input)
            .supervision(supervision)
            .shutdown_timeout(Duration::from_secs(2))
            .build()
    }
}

pub fn quick(max_restarts: u32) -> SupervisionConfig {
    SupervisionConfig {
        max_restarts,
        restart_window: skiff_config::Duration(Duration::from_secs(60)),
        backoff: skiff_pipeline::BackoffConfig {
            init: skiff_config::Duration(Duration::from_millis(5)),
            max: skiff_config::Duration(Duration::from_millis(20)),
        },
    }
}

pub async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
