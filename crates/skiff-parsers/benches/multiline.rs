#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
//! Multiline throughput: Java stack traces (1 head line + 9 `at` lines, ~80 bytes each) through
//! the pattern parser, and plain 256-byte lines through an ndjson decode, in bytes per second.
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use skiff_parsers::{
    Message, MultilineConfig, MultilineParser, NdjsonConfig, NdjsonParser, Parser,
};

fn java_lines(n_events: usize) -> Vec<String> {
    let mut v = Vec::with_capacity(n_events * 10);
    for i in 0..n_events {
        v.push(format!(
            "2024-01-01 00:00:{:02} ERROR [main] com.example.Service - request {i} failed",
            i % 60
        ));
        for j in 0..9 {
            v.push(format!(
                "        at com.example.myproject.Module{j}.handle(Module{j}.java:{})",
                100 + j
            ));
        }
    }
    v
}

fn bench(c: &mut Criterion) {
    let lines = java_lines(1000);
    let bytes: u64 = lines.iter().map(|l| l.len() as u64 + 1).sum();
    let mut g = c.benchmark_group("multiline");
    g.throughput(Throughput::Bytes(bytes));
    for (name, pattern, negate) in [
        (
            "java_stack_trace",
            r"^[[:space:]]+(at|\.{3})[[:space:]]+\b|^Caused by:",
            false,
        ),
        ("timestamp_negate", r"^\d{4}-\d{2}-\d{2}", true),
    ] {
        let cfg = MultilineConfig {
            pattern: Some(pattern.into()),
            negate,
            match_: Some("after".into()),
            ..MultilineConfig::default()
        };
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut p = MultilineParser::new(&cfg, 10 << 20).unwrap();
                let mut out = Vec::with_capacity(2);
                let mut off = 0u64;
                let mut n = 0usize;
                for l in &lines {
                    let end = off + l.len() as u64 + 1;
                    p.feed(Message::new(l.clone(), off, end), &mut out);
                    off = end;
                    n += out.len();
                    out.clear();
                }
                p.finish(&mut out);
                black_box(n + out.len())
            })
        });
    }
    g.finish();

    let json: Vec<String> = (0..10_000)
        .map(|i| {
            format!(
                r#"{{"@timestamp":"2024-01-01T00:00:00.000Z","level":"info","logger":"com.example.Service","message":"request {i} served in 12ms","http":{{"status":200,"method":"GET"}},"pad":"{}"}}"#,
                "x".repeat(60)
            )
        })
        .collect();
    let bytes: u64 = json.iter().map(|l| l.len() as u64 + 1).sum();
    let mut g = c.benchmark_group("ndjson");
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("root_overwrite", |b| {
        let cfg = NdjsonConfig {
            overwrite_keys: true,
            ..NdjsonConfig::default()
        };
        let mut p = NdjsonParser::new(cfg);
        let mut out = Vec::with_capacity(1);
        b.iter(|| {
            let mut n = 0;
            for l in &json {
                p.feed(Message::new(l.clone(), 0, 1), &mut out);
                n += out.len();
                out.clear();
            }
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
