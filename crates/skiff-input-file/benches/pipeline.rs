//! File -> memory queue -> discard output, in process, on ONE thread (a current-thread tokio
//! runtime): the whole input path (line splitting, decoding, events, ack tokens, queue, output
//! worker, acknowledgements, registry) for a file of 256-byte lines. Prints MB/s.
//!
//!     cargo bench -p skiff-input-file --bench pipeline            # 512 MiB
//!     SKIFF_BENCH_MB=1024 cargo bench -p skiff-input-file --bench pipeline
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use skiff_event::Event;
use skiff_pipeline::queue::memory::{FlushConfig, MemoryQueue, MemoryQueueConfig};
use skiff_pipeline::{
    AgentInfo, Budget, BuildContext, InputCommon, InputContext, Outcome, Output, OutputSet,
    OutputSettings, Paths, Publisher, Queue, StatusBoard,
};

struct Discard;

#[async_trait]
impl Output for Discard {
    async fn send(&mut self, events: &[Event]) -> anyhow::Result<Outcome> {
        std::hint::black_box(events.len());
        Ok(Outcome::delivered())
    }
    fn describe(&self) -> String {
        "discard".into()
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mb: u64 = std::env::var("SKIFF_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let path = logs.join("bench.log");
    let mut size = 0u64;
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut line = Vec::with_capacity(256);
        let mut i = 0u64;
        while size < mb << 20 {
            line.clear();
            write!(
                line,
                "2024-01-01T00:00:00.000Z INFO request {i:010} GET /api/v1/items status=200 "
            )
            .unwrap();
            while line.len() < 255 {
                line.push(b'a' + (line.len() % 26) as u8);
            }
            line.push(b'\n');
            f.write_all(&line).unwrap();
            size += 256;
            i += 1;
        }
    }
    // Warm the page cache.
    let _ = std::fs::read(&path);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let metrics = skiff_metrics::Registry::new();
        let ctx = BuildContext {
            agent: Arc::new(AgentInfo {
                name: "b".into(),
                hostname: "b".into(),
                id: "id".into(),
                ephemeral_id: "e".into(),
                version: "0".into(),
            }),
            paths: Paths {
                data: dir.path().join("data"),
                ..Paths::default()
            },
            metrics: metrics.clone(),
            budget: Budget::new(metrics.clone()),
            status: StatusBoard::default(),
            global: InputCommon::default(),
        };
        let yaml = format!(
            "paths: [\"{}/*.log\"]\nbuffer_size: 64KiB\n",
            logs.display()
        );
        let node = skiff_config::parse_str(&yaml, None).unwrap();
        let common = InputCommon {
            kind: "filestream".into(),
            id: Some("bench".into()),
            ..InputCommon::default()
        };
        let input = (skiff_input_file::FILESTREAM.build)(&node, &common, &ctx).unwrap();
        let queue: Arc<dyn Queue> = Arc::new(MemoryQueue::new(
            MemoryQueueConfig {
                events: 8192,
                flush: FlushConfig {
                    min_events: 2048,
                    timeout: skiff_config::Duration(Duration::ZERO),
                },
                ..MemoryQueueConfig::default()
            },
            &metrics,
            &ctx.budget,
        ));
        let mut workers = tokio::task::JoinSet::new();
        skiff_pipeline::worker::spawn(
            &mut workers,
            queue.clone(),
            OutputSet {
                clients: vec![Box::new(Discard)],
                settings: OutputSettings {
                    bulk_max_size: 2048,
                    ..OutputSettings::default()
                },
            },
            None,
            &metrics,
        );
        let cancel = tokio_util::sync::CancellationToken::new();
        let ictx = InputContext {
            id: "bench".into(),
            publisher: Publisher::new(queue.clone(), Vec::new(), &metrics),
            shutdown: cancel.clone(),
            build: ctx.clone(),
            shared: Arc::new(ctx.shared_fields(&common, "filestream", "filebeat")),
        };
        let start = Instant::now();
        let h = tokio::spawn(async move { input.run(ictx).await });
        loop {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let acked = metrics
                .value(&skiff_metrics::names::OUTPUT_EVENTS_ACKED)
                .unwrap_or(0.0);
            if acked as u64 >= size / 256 {
                break;
            }
        }
        let secs = start.elapsed().as_secs_f64();
        cancel.cancel();
        h.await.unwrap().unwrap();
        queue.close();
        while workers.join_next().await.is_some() {}
        println!(
            "file -> queue -> discard, one thread: {} MiB of 256-byte lines in {:.2}s = {:.0} MB/s, {:.2} M events/s",
            mb,
            secs,
            size as f64 / secs / 1e6,
            (size / 256) as f64 / secs / 1e6
        );
    });
}
