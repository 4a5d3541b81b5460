//! Kafka output throughput: generated 256-byte events through the output client into a local
//! `tansu` broker (memory storage), lz4. Prints one JSON line.
//!
//! `cargo bench -p skiff-output-kafka --bench throughput` (env: EVENTS, WORKERS, CODEC).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

fn main() {
    let n: usize = std::env::var("EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let workers: usize = std::env::var("WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let codec = std::env::var("CODEC").unwrap_or_else(|_| "lz4".into());
    let Some(b) = common::broker(common::Storage::Memory) else {
        return;
    };
    b.create_topic("bench", 4);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let evs = common::events(n, 256);
    let input_bytes: usize = evs
        .iter()
        .map(|e| e.message.as_ref().map_or(0, String::len))
        .sum();
    let mut out = common::build(&format!(
        "hosts: ['{}']\ntopic: bench\ncompression: {codec}\nworker: {workers}\npartition.round_robin: {{group_events: 2048}}",
        b.addr()
    ));
    let json_bytes: usize = evs
        .iter()
        .map(|e| {
            let mut v = Vec::new();
            skiff_event::json::encode(e, &mut v, true);
            v.len()
        })
        .sum();
    let t0 = Instant::now();
    rt.block_on(async {
        let chunks: Vec<&[skiff_event::Event]> = evs.chunks(2048).collect();
        let per = chunks.len().div_ceil(workers);
        let mut set = tokio::task::JoinSet::new();
        // Each worker client sends its share of batches, as the pipeline's workers would.
        let mut clients = std::mem::take(&mut out.clients);
        let owned: Vec<Vec<Vec<skiff_event::Event>>> = chunks
            .chunks(per)
            .map(|cs| {
                cs.iter()
                    .map(|c| c.iter().map(|e| e.clone_without_ack()).collect())
                    .collect()
            })
            .collect();
        for batches in owned {
            let mut c = clients.pop().unwrap();
            set.spawn(async move {
                for b in batches {
                    let o = c.send(&b).await.unwrap();
                    assert!(o.retry.is_empty() && o.rejected.is_empty());
                }
            });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
    });
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "bench": "kafka_output", "codec": codec, "workers": workers, "events": n,
            "event_message_bytes": 256, "seconds": (secs * 1000.0).round() / 1000.0,
            "events_per_sec": (n as f64 / secs).round(),
            "input_mb_per_sec": ((input_bytes as f64 / secs / 1e6) * 100.0).round() / 100.0,
            "json_mb_per_sec": ((json_bytes as f64 / secs / 1e6) * 100.0).round() / 100.0,
        })
    );
}
