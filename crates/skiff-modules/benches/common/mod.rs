//! The measuring loop the module benchmarks share: lines through a fileset's pipeline, in
//! MB of log text per second, and the same loop without parsing as the baseline.

use std::time::Instant;

use serde_json::{Map, Value};
use skiff_modules::{doc, processor::FilesetProcessor};

/// MB/s over `bytes_target` bytes of `lines` (repeated), each built into an event document
/// and, given `parse`, run through the fileset's pipeline.
pub fn throughput(lines: &[&str], bytes_target: usize, parse: Option<&FilesetProcessor>) -> f64 {
    throughput_with(lines, bytes_target, |d| {
        if let Some(p) = parse {
            p.run_doc(d);
        }
    })
}

/// MB/s over `bytes_target` bytes of `lines` (repeated), each built into an event document
/// and given to `parse`.
#[allow(dead_code)] // not every benchmark uses it
pub fn throughput_with(
    lines: &[impl AsRef<str>],
    bytes_target: usize,
    parse: impl Fn(&mut Map<String, Value>),
) -> f64 {
    let mut bytes = 0;
    let start = Instant::now();
    let mut i = 0;
    while bytes < bytes_target {
        let line = lines[i % lines.len()].as_ref();
        i += 1;
        bytes += line.len() + 1;
        let mut d = Map::new();
        doc::insert(&mut d, "message", Value::String(line.to_string()));
        parse(&mut d);
        std::hint::black_box(&d);
    }
    bytes as f64 / 1e6 / start.elapsed().as_secs_f64()
}

/// `BENCH_MB` (MiB of log text per measurement), 64 without it.
pub fn bench_bytes() -> (usize, usize) {
    let mb: usize = std::env::var("BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    (mb, mb << 20)
}

/// The same as [`throughput`], through the processor as the agent runs it: each line an
/// [`Event`](skiff_event::Event) with the shared fields a stdin input stamps (`agent`, `host`,
/// `ecs`, `input`, `@metadata`, one `Arc` for all events), given `parse`, run by
/// `FilesetProcessor::process`; without it, the event is built and dropped only.
#[allow(dead_code)]
pub fn event_throughput(
    lines: &[&str],
    bytes_target: usize,
    parse: Option<&FilesetProcessor>,
) -> f64 {
    use skiff_pipeline::component::Processor;
    let shared = std::sync::Arc::new(stdin_shared());
    let at = skiff_event::Timestamp::now();
    let mut bytes = 0;
    let start = Instant::now();
    let mut i = 0;
    while bytes < bytes_target {
        let line = lines[i % lines.len()];
        i += 1;
        bytes += line.len() + 1;
        let mut ev = skiff_event::Event::new_at(at, shared.clone(), line.to_string());
        if let Some(p) = parse {
            p.process(&mut ev);
        }
        std::hint::black_box(&ev);
    }
    bytes as f64 / 1e6 / start.elapsed().as_secs_f64()
}

/// The shared fields of a stdin input's events, as `shared_fields` in skiff-pipeline makes
/// them (the values are placeholders of realistic length).
fn stdin_shared() -> Map<String, Value> {
    let v = serde_json::json!({
        "agent": {
            "name": "bench-host", "type": "filebeat", "version": "8.11.0",
            "id": "5f6c3f9e-3b0a-4c0e-9a0b-7c2b1f8d2e11",
            "ephemeral_id": "b1c2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e",
        },
        "host": {"name": "bench-host"},
        "ecs": {"version": "8.0.0"},
        "input": {"type": "stdin"},
        "@metadata": {"beat": "filebeat", "type": "_doc", "version": "8.11.0"},
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}
