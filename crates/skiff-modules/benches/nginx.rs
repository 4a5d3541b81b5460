//! Throughput of the nginx access fileset's pipeline on one core, against the same loop
//! without parsing (building the event document only), in the same run:
//! `cargo bench -p skiff-modules --bench nginx`. Numbers go to docs/performance.md.

use std::time::Instant;

use serde_json::{Map, Value};
use skiff_modules::{doc, processor::FilesetProcessor};

const LINES: &[&str] = &[
    "89.160.20.156 - - [25/Oct/2016:14:49:33 +0200] \"GET / HTTP/1.1\" 200 612 \"-\" \"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_12_0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/54.0.2840.59 Safari/537.36\"",
    "10.0.0.2, 10.0.0.1, 81.2.69.143 - - [07/Dec/2016:11:05:07 +0100] \"GET /ocelot HTTP/1.1\" 200 571 \"-\" \"Mozilla/5.0 (Macintosh; Intel Mac OS X 10.12; rv:49.0) Gecko/20100101 Firefox/49.0\"",
    "lessons.example.com 192.168.0.1 - - [09/Jun/2020:12:10:39 -0700] \"GET /A%20Beka%20G1%20Howe/029_AND_30/15%20reading%20elephants.mp4 HTTP/1.1\" 206 7648063 \"http://lessons.example.com/\" \"Mozilla/5.0 (Linux; Android 5.1.1; KFFOWI)\"",
];

fn run(bytes_target: usize, parse: Option<&FilesetProcessor>) -> f64 {
    let mut bytes = 0;
    let start = Instant::now();
    let mut i = 0;
    while bytes < bytes_target {
        let line = LINES[i % LINES.len()];
        i += 1;
        bytes += line.len() + 1;
        let mut d = Map::new();
        doc::insert(&mut d, "message", Value::String(line.to_string()));
        if let Some(p) = parse {
            p.run_doc(&mut d);
        }
        std::hint::black_box(&d);
    }
    bytes as f64 / 1e6 / start.elapsed().as_secs_f64()
}

fn main() {
    let mb: usize = std::env::var("BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let p = FilesetProcessor::new("nginx", "access", Some("+00:00".into()))
        .unwrap_or_else(|e| panic!("{e}"));
    let base = run(mb << 20, None);
    let parsed = run(mb << 20, Some(&p));
    println!(
        "nginx access, {mb} MiB: without parsing {base:.1} MB/s, with the pipeline {parsed:.1} MB/s ({:.3} of the baseline)",
        parsed / base
    );
}
