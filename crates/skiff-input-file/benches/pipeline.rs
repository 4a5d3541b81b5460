//! File -> memory queue -> discard output, in process, on ONE thread (a current-thread tokio
//! runtime): the whole input path (line splitting, decoding, events, ack tokens, queue, output
//! worker, acknowledgements, registry) for a file of 256-byte lines. Prints MB/s.
//!
//!     cargo bench -p skiff-input-file --bench pipeline            # 512 MiB
//!     SKIFF_BENCH_MB=1024 cargo bench -p skiff-input-file --bench pipeline
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use skiff_pipeline::OutputSettings;
use skiff_pipeline::queue::memory::{FlushConfig, MemoryQueueConfig};

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
        let yaml = format!(
            "paths: [\"{}/*.log\"]\nbuffer_size: 64KiB\n",
            logs.display()
        );
        let start = Instant::now();
        let run = common::start(
            &dir.path().join("data"),
            "bench",
            &yaml,
            MemoryQueueConfig {
                events: 8192,
                flush: FlushConfig {
                    min_events: 2048,
                    timeout: skiff_config::Duration(Duration::ZERO),
                },
                ..MemoryQueueConfig::default()
            },
            OutputSettings {
                bulk_max_size: 2048,
                ..OutputSettings::default()
            },
        );
        loop {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let acked = run.metric(&skiff_metrics::names::OUTPUT_EVENTS_ACKED);
            if acked as u64 >= size / 256 {
                break;
            }
        }
        let secs = start.elapsed().as_secs_f64();
        run.stop().await;
        println!(
            "file -> queue -> discard, one thread: {} MiB of 256-byte lines in {:.2}s = {:.0} MB/s, {:.2} M events/s",
            mb,
            secs,
            size as f64 / secs / 1e6,
            (size / 256) as f64 / secs / 1e6
        );
    });
}
