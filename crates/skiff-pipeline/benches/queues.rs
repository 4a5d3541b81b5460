//! Memory queue vs disk queue throughput, in one run: N events of ~256-byte messages pushed by
//! one producer (with acknowledgement tokens, as a file input does), taken by one consumer in
//! batches of 2048 and acknowledged (a discarding output). Reports events/s for both and the
//! ratio. Run: `cargo bench -p skiff-pipeline --bench queues [-- N [DIR]]` (DIR: where the disk
//! queue writes; default a temporary directory). `DQ_SYNC=none` turns fsync off for comparison.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use skiff_config::Duration as ConfDuration;
use skiff_event::{AckStream, Event, Map};
use skiff_metrics::{Registry, names};
use skiff_pipeline::Budget;
use skiff_pipeline::queue::Queue;
use skiff_pipeline::queue::disk::{DiskQueue, DiskQueueConfig, SyncConfig, SyncMode};
use skiff_pipeline::queue::memory::{FlushConfig, MemoryQueue, MemoryQueueConfig};

fn shared() -> Arc<Map> {
    let v = serde_json::json!({
        "agent": {"name": "web-1", "type": "filebeat", "version": "8.15.0",
                  "id": "6f0e2c1a-5d8b-4c1e-9a57-0f1d2e3c4b5a", "ephemeral_id": "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"},
        "host": {"name": "web-1"}, "ecs": {"version": "8.0.0"}, "input": {"type": "filestream"},
        "log": {"file": {"path": "/var/log/nginx/access.log"}},
    });
    Arc::new(v.as_object().unwrap().clone())
}

async fn run(q: Arc<dyn Queue>, n: u64) -> Duration {
    let sh = shared();
    let line = "x".repeat(256);
    let stream = AckStream::new();
    let start = Instant::now();
    let consumer = {
        let q = q.clone();
        tokio::spawn(async move {
            let mut got = 0u64;
            while got < n {
                let Some(mut b) = q.pop(2048).await else {
                    break;
                };
                for mut e in std::mem::take(&mut b.events) {
                    got += 1;
                    e.ack();
                }
            }
            got
        })
    };
    for i in 0..n {
        let mut e = Event::new(sh.clone(), line.clone());
        e.offset = Some(i * 257);
        e.ack = Some(stream.token(i * 257 + 257));
        q.push(e).await.unwrap();
    }
    assert_eq!(consumer.await.unwrap(), n);
    assert!(
        stream
            .wait_all_acked(tokio::time::Instant::now() + Duration::from_secs(600))
            .await
    );
    start.elapsed()
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let n: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(500_000);
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = args
        .get(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_owned());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let reg = Registry::new();
    let mem = MemoryQueue::new(
        MemoryQueueConfig {
            events: 4096,
            flush: FlushConfig {
                min_events: 2048,
                timeout: ConfDuration(Duration::from_millis(1)),
            },
            ..Default::default()
        },
        &reg,
        &Budget::new(reg.clone()),
    );
    let t_mem = rt.block_on(run(Arc::new(mem), n));

    let reg = Registry::new();
    let cfg = DiskQueueConfig {
        sync: SyncConfig {
            // DQ_SYNC=none measures without fsync (what the disk costs).
            mode: if std::env::var("DQ_SYNC").is_ok_and(|v| v == "none") {
                SyncMode::None
            } else {
                SyncMode::Batch
            },
            ..Default::default()
        },
        write_ahead: 2048,
        ..Default::default()
    };
    let disk = DiskQueue::open(cfg, &dir, &reg, &Budget::new(reg.clone())).unwrap();
    let t_disk = rt.block_on(run(Arc::new(disk.clone()), n));
    let syncs = reg.counter(&names::DISK_QUEUE_SYNCS).get();
    disk.stop();

    let rate = |t: Duration| n as f64 / t.as_secs_f64();
    println!("events: {n} (message 256 bytes, filestream-like shared fields)");
    println!("memory queue: {:>10.0} events/s ({:?})", rate(t_mem), t_mem);
    println!(
        "disk queue:   {:>10.0} events/s ({:?}, {syncs} fsyncs, {:.0} events per fsync, dir {})",
        rate(t_disk),
        t_disk,
        n as f64 / syncs.max(1) as f64,
        dir.display()
    );
    println!("disk / memory: {:.2}", rate(t_disk) / rate(t_mem));
}
