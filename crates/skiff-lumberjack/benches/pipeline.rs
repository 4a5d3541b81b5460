//! skiff -> skiff over Lumberjack on 127.0.0.1, through both real pipelines: events/s and MB/s
//! of JSON received. Not a criterion bench (one long run says more than many short ones).
//!
//! Run: `cargo bench -p skiff-lumberjack --bench pipeline [-- EVENTS LEVEL WORKERS]`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use skiff_config::Duration as ConfDuration;
use skiff_event::{AckStream, Event};
use skiff_metrics::{Registry, names};
use skiff_pipeline::queue::memory::{FlushConfig, MemoryQueue, MemoryQueueConfig};
use skiff_pipeline::{
    Budget, BuildContext, InputCommon, Outcome, Output, OutputSet, OutputSettings, Queue,
};
use skiff_topology::{InputSpec, Topology};

fn ctx(name: &str) -> BuildContext {
    BuildContext::standalone(name, "9.9.9", &Registry::new())
}

fn queue(reg: &Registry) -> Arc<dyn Queue> {
    let cfg = MemoryQueueConfig {
        events: 8192,
        flush: FlushConfig {
            min_events: 2048,
            timeout: ConfDuration(Duration::from_millis(5)),
        },
        ..Default::default()
    };
    Arc::new(MemoryQueue::new(cfg, reg, &Budget::new(reg.clone())))
}

struct Count(Arc<AtomicU64>);

#[async_trait]
impl Output for Count {
    async fn send(&mut self, events: &[Event]) -> Result<Outcome, skiff_pipeline::Failure> {
        self.0.fetch_add(events.len() as u64, Ordering::Relaxed);
        Ok(Outcome::delivered())
    }
    fn describe(&self) -> String {
        "count".into()
    }
}

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| !a.starts_with('-')).collect();
    let n: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(300_000);
    let level: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3);
    let workers: u32 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(n, level, workers));
}

async fn run(n: u64, level: u32, workers: u32) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Receiver.
    let rctx = ctx("aggregator");
    let rq = queue(&rctx.metrics);
    let got = Arc::new(AtomicU64::new(0));
    let common = InputCommon {
        kind: "lumberjack".into(),
        ..Default::default()
    };
    let node =
        skiff_config::parse_str(&format!("listen_address: '127.0.0.1:{port}'"), None).unwrap();
    let input = InputSpec::from_plugin("lj", &skiff_lumberjack::INPUT, node, common, &rctx)
        .map_err(|e| e.to_string())
        .unwrap();
    let receiver = Topology::builder(rctx.clone())
        .queue(rq, false)
        .output(
            "count",
            OutputSet {
                clients: vec![Box::new(Count(got.clone()))],
                settings: OutputSettings::default(),
            },
        )
        .input(input)
        .build()
        .start()
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Sender.
    let sctx = ctx("edge");
    let sq = queue(&sctx.metrics);
    let node = skiff_config::parse_str(&format!("hosts: ['127.0.0.1:{port}']\ncompression_level: {level}\nworker: {workers}\nloadbalance: true"), None).unwrap();
    let out = (skiff_lumberjack::OUTPUT.build)(&node, &sctx)
        .map_err(|e| e.to_string())
        .unwrap();
    let sender = Topology::builder(sctx.clone())
        .queue(sq.clone(), false)
        .output("logstash", out)
        .build()
        .start()
        .await;
    let scommon = InputCommon {
        kind: "filestream".into(),
        ..Default::default()
    };
    let mut sshared = sctx.shared_fields(&scommon, "filestream", "filebeat");
    sshared.insert(
        "log".into(),
        serde_json::json!({"file": {"path": "/var/log/nginx/access.log"}}),
    );
    let sshared = Arc::new(sshared);
    let stream = AckStream::new();
    let start = Instant::now();
    {
        let (sq, stream) = (sq.clone(), stream.clone());
        tokio::spawn(async move {
            for i in 0..n {
                let mut e = Event::new(
                    sshared.clone(),
                    format!(
                        "10.0.{}.{} - - [22/Nov/2026:03:13:47 +0000] \"GET /api/v1/items/{i}?page={} HTTP/1.1\" 200 {} \"-\" \"Mozilla/5.0 (X11; Linux x86_64)\"",
                        i % 256,
                        (i * 7) % 256,
                        i % 50,
                        1000 + i % 9000
                    ),
                );
                e.offset = Some(i * 180);
                e.ack = Some(stream.token(i));
                sq.push(e).await.unwrap();
            }
        });
    }
    while stream.progress().acked < n {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    let json = rctx
        .metrics
        .counter_with(&names::INPUT_BYTES, &[("input", "lj")])
        .get();
    let wire = sctx.metrics.counter(&names::OUTPUT_WRITE_BYTES).get();
    println!(
        "lumberjack skiff->skiff: {n} events, compression_level {level}, worker {workers}: {:.2}s, {:.0} events/s, {:.1} MB/s of JSON received ({:.0} B/event), {:.1} MB on the wire",
        secs,
        n as f64 / secs,
        json as f64 / secs / 1e6,
        json as f64 / n as f64,
        wire as f64 / 1e6,
    );
    assert_eq!(got.load(Ordering::Relaxed), n);
    sender.drain().await;
    receiver.drain().await;
}
