//! Throughput of encoding a window: events to JSON data frames, zlib-compressed at levels 0, 1
//! and 3 (the default). Run: `cargo bench -p skiff-lumberjack --bench encode`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use skiff_event::Event;
use skiff_lumberjack::output::client::encode_event;
use skiff_lumberjack::protocol::WindowEncoder;

fn events(n: usize) -> Vec<Event> {
    let shared = serde_json::json!({
        "agent": {"name": "web-1", "type": "filebeat", "version": "8.15.0", "id": "5f1c6f1e-8a7b-4c55-9b1e-2f4f1f0f4a11", "ephemeral_id": "0b0e7c1a-2a60-4e0d-8f36-8f5d4b8d0c01"},
        "host": {"name": "web-1"}, "ecs": {"version": "8.0.0"}, "input": {"type": "filestream"},
        "log": {"file": {"path": "/var/log/nginx/access.log"}},
        "@metadata": {"beat": "filebeat", "type": "_doc", "version": "8.15.0"}
    });
    let shared = Arc::new(shared.as_object().unwrap().clone());
    (0..n)
        .map(|i| {
            let mut e = Event::new(
                shared.clone(),
                format!("10.0.{}.{} - - [22/Nov/2026:03:13:47 +0000] \"GET /api/v1/items/{i}?page={} HTTP/1.1\" 200 {} \"-\" \"Mozilla/5.0 (X11; Linux x86_64)\"", i % 256, (i * 7) % 256, i % 50, 1000 + i % 9000),
            );
            e.offset = Some(i as u64 * 180);
            e
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let evs = events(2048);
    let mut raw = Vec::new();
    for e in &evs {
        encode_event(e, &mut raw, false, None);
    }
    let mut g = c.benchmark_group("window_2048_events");
    g.throughput(Throughput::Bytes(raw.len() as u64));
    for level in [0u32, 1, 3] {
        let mut enc = WindowEncoder::new(level);
        let mut out = Vec::new();
        g.bench_function(format!("level_{level}"), |b| {
            b.iter(|| {
                out.clear();
                enc.encode(&mut out, evs.len() as u32, |i, buf| {
                    encode_event(&evs[i], buf, false, None)
                });
                out.len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
