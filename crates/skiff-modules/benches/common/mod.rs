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
