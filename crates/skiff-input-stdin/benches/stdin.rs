#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
//! stdin input throughput: 100 MB of 256-byte lines read from memory, split, turned into events
//! and published through a `Publisher` into a memory queue that a task drains (and acks), all on
//! one thread (a current-thread runtime: one core). Reports events/s.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use skiff_config::Node;
use skiff_event::Map;
use skiff_input_stdin::Stdin;
use skiff_metrics::Registry;
use skiff_pipeline::queue::memory::{MemoryQueue, MemoryQueueConfig};
use skiff_pipeline::{BuildContext, InputContext, Publisher, Queue};
use tokio_util::sync::CancellationToken;

const LINE: usize = 256;
const TOTAL: usize = 100 << 20;

fn data() -> Vec<u8> {
    let mut out = Vec::with_capacity(TOTAL + LINE);
    let mut i: u64 = 0;
    while out.len() < TOTAL {
        let head = format!(
            "2026-01-02T03:04:05.{:03}Z INFO [worker-{}] request id={} ",
            i % 1000,
            i % 16,
            i
        );
        out.extend_from_slice(head.as_bytes());
        while out.len() % LINE != LINE - 1 {
            out.push(b'a' + (out.len() % 26) as u8);
        }
        out.push(b'\n');
        i += 1;
    }
    out
}

fn ctx() -> BuildContext {
    BuildContext::standalone("h", "0.1.0", &Registry::new())
}

async fn once(bytes: &[u8]) -> u64 {
    let ctx = ctx();
    let q = Arc::new(MemoryQueue::new(
        MemoryQueueConfig::default(),
        &ctx.metrics,
        &ctx.budget,
    ));
    let drain = {
        let q = q.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            while let Some(mut b) = q.pop(2048).await {
                for mut e in std::mem::take(&mut b.events) {
                    e.ack();
                    n += 1;
                }
            }
            n
        })
    };
    let shared = serde_json::json!({"input": {"type": "stdin"}, "agent": {"type": "filebeat"}});
    let ictx = InputContext {
        id: "stdin".into(),
        publisher: Publisher::new(q.clone(), Vec::new(), &ctx.metrics),
        shutdown: CancellationToken::new(),
        build: ctx.clone(),
        shared: Arc::new(shared.as_object().cloned().unwrap_or_else(Map::new)),
    };
    let input = Stdin::from_node(&Node::empty_map(), &ctx).unwrap();
    input.run_with(bytes, ictx).await.unwrap();
    q.close();
    drain.await.unwrap()
}

fn bench(c: &mut Criterion) {
    let bytes = data();
    let lines = (bytes.len() / LINE) as u64;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("stdin");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(lines));
    g.bench_function("100MB_256B_lines_to_memory_queue", |b| {
        b.iter(|| {
            let n = rt.block_on(once(&bytes));
            assert_eq!(n, lines);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
