//! Test harness: a sending pipeline (memory queue -> output.logstash) and a receiving one
//! (lumberjack input -> memory queue -> a collecting output), both real.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use skiff_config::Duration as ConfDuration;
use skiff_event::{AckStream, Event, Map, Value};
use skiff_metrics::Registry;
use skiff_pipeline::queue::memory::{FlushConfig, MemoryQueue, MemoryQueueConfig};
use skiff_pipeline::{
    Budget, BuildContext, InputCommon, InputContext, Outcome, Output, OutputSet, OutputSettings,
    Queue,
};
use skiff_topology::{Running, Topology};
use tokio_util::sync::CancellationToken;

pub fn ctx(name: &str) -> BuildContext {
    BuildContext::standalone(name, "9.9.9", &Registry::new())
}

pub fn queue(reg: &Registry) -> Arc<dyn Queue> {
    let cfg = MemoryQueueConfig {
        events: 4096,
        flush: FlushConfig {
            min_events: 1,
            timeout: ConfDuration(Duration::ZERO),
        },
        ..Default::default()
    };
    Arc::new(MemoryQueue::new(cfg, reg, &Budget::new(reg.clone())))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn node(yaml: &str) -> skiff_config::Node {
    skiff_config::parse_str(yaml, None).unwrap()
}

/// The final destination on the receiving side: records every event it is sent, acks them.
pub struct Collector {
    pub seen: Arc<Mutex<Vec<Value>>>,
    pub delay: Duration,
    /// When set, every send waits until it holds `true` (an output that is down).
    pub gate: Option<tokio::sync::watch::Receiver<bool>>,
}

#[async_trait]
impl Output for Collector {
    async fn send(&mut self, events: &[Event]) -> Result<Outcome, skiff_pipeline::Failure> {
        if let Some(g) = &mut self.gate {
            let _ = g.wait_for(|open| *open).await;
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let mut s = self.seen.lock().unwrap();
        for e in events {
            s.push(e.to_value(true));
        }
        Ok(Outcome::delivered())
    }
    fn describe(&self) -> String {
        "collector".into()
    }
}

/// The receiving side: a queue drained into a collector. Inputs can be started and stopped on it.
pub struct Receiver {
    pub seen: Arc<Mutex<Vec<Value>>>,
    pub queue: Arc<dyn Queue>,
    pub ctx: BuildContext,
    /// The receiving pipeline (its output workers; the inputs are started by the tests).
    pub running: Running,
}

impl Receiver {
    pub fn new(delay: Duration) -> Self {
        Self::build(delay, None)
    }

    /// A receiver whose output holds every batch until the returned gate is set to `true`.
    pub fn gated() -> (Self, tokio::sync::watch::Sender<bool>) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (Self::build(Duration::ZERO, Some(rx)), tx)
    }

    fn build(delay: Duration, gate: Option<tokio::sync::watch::Receiver<bool>>) -> Self {
        let ctx = ctx("aggregator");
        let queue = queue(&ctx.metrics);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let out = OutputSet {
            clients: vec![Box::new(Collector {
                seen: seen.clone(),
                delay,
                gate,
            })],
            settings: OutputSettings {
                bulk_max_size: 1000,
                backoff_init: Duration::from_millis(10),
                backoff_max: Duration::from_millis(50),
                ..Default::default()
            },
        };
        let running = Topology::builder(ctx.clone())
            .queue(queue.clone(), false)
            .output("collector", out)
            .build()
            .start_sync();
        Receiver {
            seen,
            queue,
            ctx,
            running,
        }
    }

    /// Starts a lumberjack input with `yaml` (its own keys); returns its stop token and task.
    pub async fn start_input(
        &self,
        yaml: &str,
        port: u16,
        shutdown_timeout: Duration,
    ) -> (
        CancellationToken,
        tokio::task::JoinHandle<Result<(), skiff_pipeline::Failure>>,
    ) {
        let yaml = format!("listen_address: '127.0.0.1:{port}'\n{yaml}");
        let common = InputCommon {
            kind: "lumberjack".into(),
            ..Default::default()
        };
        let input = (skiff_lumberjack::INPUT.build)(&node(&yaml), &common, &self.ctx)
            .map_err(|e| e.to_string())
            .unwrap();
        let shared = self.ctx.shared_fields(&common, "lumberjack", "filebeat");
        let shutdown = CancellationToken::new();
        let ictx = InputContext {
            id: "lj".into(),
            publisher: self
                .running
                .publisher()
                .with_shutdown_timeout(shutdown_timeout),
            shutdown: shutdown.clone(),
            build: self.ctx.clone(),
            shared: Arc::new(shared),
        };
        let h = tokio::spawn(input.run(ictx));
        // Wait until it listens.
        for _ in 0..500 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (shutdown, h)
    }

    /// How many times each message arrived.
    pub fn counts(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for v in self.seen.lock().unwrap().iter() {
            *m.entry(v["message"].as_str().unwrap_or("").to_owned())
                .or_default() += 1;
        }
        m
    }
}

/// The sending side: events with ack tokens in a memory queue, drained by output.logstash.
pub struct Sender {
    pub stream: Arc<AckStream>,
    pub queue: Arc<dyn Queue>,
    pub ctx: BuildContext,
    /// The sending pipeline (output.logstash's workers).
    pub running: Running,
}

/// The shared fields of the edge agent's events.
pub fn edge_shared() -> Arc<Map> {
    let c = ctx("edge-1");
    let common = InputCommon {
        kind: "filestream".into(),
        ..Default::default()
    };
    let mut m = c.shared_fields(&common, "filestream", "filebeat");
    m.insert(
        "log".into(),
        serde_json::json!({"file": {"path": "/var/log/app.log"}}),
    );
    Arc::new(m)
}

/// An edge event: message `msg-{i}`, offset, a per-event field.
pub fn edge_event(shared: &Arc<Map>, i: u64) -> Event {
    let mut e = Event::new(shared.clone(), format!("msg-{i} \"quoted\" é <b>&"));
    e.offset = Some(i * 100);
    e.insert("labels.n", Value::from(i));
    e
}

impl Sender {
    /// Builds output.logstash from `yaml`, queues `n` events and starts the workers.
    pub async fn start(yaml: &str, n: u64) -> Sender {
        let ctx = ctx("edge-1");
        let queue = queue(&ctx.metrics);
        let stream = AckStream::new();
        let out = (skiff_lumberjack::OUTPUT.build)(&node(yaml), &ctx)
            .map_err(|e| e.to_string())
            .unwrap();
        let running = Topology::builder(ctx.clone())
            .queue(queue.clone(), false)
            .output("logstash", out)
            .build()
            .start()
            .await;
        let shared = edge_shared();
        let q = queue.clone();
        let s = stream.clone();
        tokio::spawn(async move {
            for i in 0..n {
                let mut e = edge_event(&shared, i);
                e.ack = Some(s.token(i));
                q.push(e).await.unwrap();
            }
        });
        Sender {
            stream,
            queue,
            ctx,
            running,
        }
    }

    /// Waits until `n` events are acknowledged, or panics after `secs`.
    pub async fn wait_acked(&self, n: u64, secs: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while self.stream.progress().acked < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {:?} acknowledged",
                self.stream.progress()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// What the broken stand-in answers a window of `n` events with.
pub type Answer = fn(n: u32) -> Vec<u8>;

/// Reads frames until one whole window has arrived; returns its size (None: the client hung up
/// or sent something else).
async fn read_one_window(s: &mut tokio::net::TcpStream) -> Option<u32> {
    use skiff_lumberjack::protocol::{Decoder, Frame, Limits};
    use tokio::io::AsyncReadExt;
    let mut dec = Decoder::new(Limits::default());
    let mut buf = bytes::BytesMut::new();
    let (mut expected, mut seen) = (None, 0u32);
    loop {
        while let Some(f) = dec.decode(&mut buf).ok()? {
            match f {
                Frame::Window(n) => expected = Some(n),
                Frame::Json { .. } => seen += 1,
                _ => return None,
            }
            if expected == Some(seen) {
                return expected;
            }
        }
        if s.read_buf(&mut buf).await.ok()? == 0 {
            return None;
        }
    }
}

/// **A deliberately broken stand-in, not a Logstash beats input.** It accepts one connection
/// per answer on `listener`, reads one window and answers it with the answer's bytes, then
/// keeps the connection open and silent until the client hangs up (a client waiting for more
/// ACKs times out). After the last answer it stops listening, so that a real lumberjack input
/// can take the port. Returns the windows it answered.
pub async fn hostile(listener: tokio::net::TcpListener, answers: Vec<Answer>) -> usize {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut served = 0;
    for answer in answers {
        let (mut s, _) = listener.accept().await.unwrap();
        let Some(n) = read_one_window(&mut s).await else {
            continue;
        };
        served += 1;
        let reply = answer(n);
        if reply.is_empty() {
            continue;
        }
        let _ = s.write_all(&reply).await;
        tokio::spawn(async move {
            let mut sink = [0u8; 4096];
            while s.read(&mut sink).await.is_ok_and(|k| k > 0) {}
        });
    }
    served
}
