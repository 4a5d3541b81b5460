//! Start-up with a big registry: 100,000 entries for files that no longer exist (the usual
//! leftovers of rotated logs that `clean_removed` forgets at the first housekeeping pass), and
//! one live file with one line. Prints the median (and the minimum) of a few runs of:
//!
//! * `load`: reading and parsing the registry file (what the input does before anything else);
//! * `list`: `list_registry` (`skiff registry list`), which also stats every file;
//! * `first event`: from starting the input until the live file's line is acknowledged by the
//!   output (registry loaded, known files tabled, first scan done, reader started);
//! * `settled`: until the 100,000 removed entries are cleaned and saved (one append of the
//!   removal records, then one compaction of the file down to the live entry).
//!
//! ```text
//! cargo bench -p skiff-input-file --bench registry
//! SKIFF_BENCH_ENTRIES=1000000 SKIFF_BENCH_RUNS=3 cargo bench -p skiff-input-file --bench registry
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use skiff_metrics::names;
use skiff_pipeline::OutputSettings;
use skiff_pipeline::queue::memory::{FlushConfig, MemoryQueueConfig};

const ID: &str = "big";

/// A registry like one left by a long-running input: a header, then one record per file.
fn write_registry(data: &Path, logs: &Path, entries: u64) -> u64 {
    let path = skiff_input_file::registry::store_path(data, ID);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    writeln!(
        f,
        "{{\"input\":\"\",\"dev\":0,\"ino\":0,\"created\":1700000000,\"format\":2}}"
    )
    .unwrap();
    for i in 0..entries {
        // Inodes far from real ones, so no entry is taken for the live file.
        writeln!(
            f,
            "{{\"input\":\"{ID}\",\"dev\":1,\"ino\":{ino},\"path\":\"{}/app-{i:07}.log\",\"offset\":{o},\"size\":{o},\"fp_len\":1024,\"fp\":{h},\"phase\":\"closed\",\"changed\":1700000000}}",
            logs.display(),
            ino = 1u64 << 40 | i,
            o = 4096 + i * 17,
            h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        )
        .unwrap();
    }
    f.flush().unwrap();
    drop(f);
    std::fs::metadata(&path).unwrap().len()
}

/// `median (min)`: on a shared machine the minimum is the steadier of the two.
fn ms(v: &mut [Duration]) -> String {
    v.sort();
    format!(
        "{:.0} ms ({:.0})",
        v[v.len() / 2].as_secs_f64() * 1e3,
        v[0].as_secs_f64() * 1e3
    )
}

/// Runs the input on a fresh copy of the registry; returns (first event, settled).
fn start_up(rt: &tokio::runtime::Runtime, data: &Path, logs: &Path) -> (Duration, Duration) {
    rt.block_on(async {
        let yaml = format!("paths: [\"{}/*.log\"]\n", logs.display());
        let registry = skiff_input_file::registry::store_path(data, ID);
        let start = Instant::now();
        // No batching delay in the queue: this measures the input, not `flush.timeout`.
        let run = common::start(
            data,
            ID,
            &yaml,
            MemoryQueueConfig {
                flush: FlushConfig {
                    min_events: 1,
                    timeout: skiff_config::Duration(Duration::ZERO),
                },
                ..MemoryQueueConfig::default()
            },
            OutputSettings::default(),
        );
        let mut first = None;
        let settled = loop {
            tokio::time::sleep(Duration::from_millis(1)).await;
            let acked = run.metric(&names::OUTPUT_EVENTS_ACKED);
            if first.is_none() && acked >= 1.0 {
                first = Some(start.elapsed());
            }
            // Cleaned and compacted: the file holds the header and the live entry only.
            let small = std::fs::metadata(&registry).is_ok_and(|m| m.len() < 4096);
            let known = run.metric(&names::FILES_KNOWN);
            if first.is_some() && known == 1.0 && small {
                break start.elapsed();
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "start-up never settled"
            );
        };
        run.stop().await;
        (first.unwrap_or(settled), settled)
    })
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let entries: u64 = std::env::var("SKIFF_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let runs: usize = std::env::var("SKIFF_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::write(logs.join("live.log"), "the one live line\n").unwrap();
    let data = dir.path().join("data");
    let bytes = write_registry(&data, &logs, entries);
    let registry = skiff_input_file::registry::store_path(&data, ID);
    let pristine = std::fs::read(&registry).unwrap();

    let mut load = Vec::new();
    let mut list = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let loaded = skiff_input_file::registry::load(&registry).unwrap();
        load.push(t.elapsed());
        assert_eq!(loaded.entries.len() as u64, entries);
        let t = Instant::now();
        let listed = skiff_input_file::list_registry(&data).unwrap();
        list.push(t.elapsed());
        assert_eq!(listed.len() as u64, entries);
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut first = Vec::new();
    let mut settled = Vec::new();
    for _ in 0..runs {
        std::fs::write(&registry, &pristine).unwrap();
        let (f, s) = start_up(&rt, &data, &logs);
        first.push(f);
        settled.push(s);
    }
    println!(
        "registry of {entries} entries ({:.1} MB), median (min) of {runs} runs: load {}, list_registry {}, start-up to the first event {}, to the removed entries cleaned and compacted {}",
        bytes as f64 / 1e6,
        ms(&mut load),
        ms(&mut list),
        ms(&mut first),
        ms(&mut settled),
    );
}
