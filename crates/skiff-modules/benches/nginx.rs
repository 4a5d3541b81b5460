//! Throughput of the nginx access fileset's pipeline on one core, against the same loop
//! without parsing (building the event document only), in the same run:
//! `cargo bench -p skiff-modules --bench nginx`. Numbers go to docs/performance.md.
//!
//! The second pair of numbers is the processor as the agent runs it (`process` on an event
//! with a stdin input's shared fields, against building the event alone): the pipeline plus
//! moving the fields between the event and the pipeline's document.
//!
//! Then what the `user_agent` step costs: the same pipeline with and without that step,
//! measured alternately (three rounds each, the median kept), on the three lines below (their
//! agents are parsed once, then come from the cache, as on real logs with few agents) and on
//! lines whose agents are all different (every event a cache miss: the worst case).

mod common;

use serde_json::Value;
use skiff_modules::Pipeline;
use skiff_modules::processor::FilesetProcessor;

const LINES: &[&str] = &[
    "89.160.20.156 - - [25/Oct/2016:14:49:33 +0200] \"GET / HTTP/1.1\" 200 612 \"-\" \"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_12_0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/54.0.2840.59 Safari/537.36\"",
    "10.0.0.2, 10.0.0.1, 81.2.69.143 - - [07/Dec/2016:11:05:07 +0100] \"GET /ocelot HTTP/1.1\" 200 571 \"-\" \"Mozilla/5.0 (Macintosh; Intel Mac OS X 10.12; rv:49.0) Gecko/20100101 Firefox/49.0\"",
    "lessons.example.com 192.168.0.1 - - [09/Jun/2020:12:10:39 -0700] \"GET /A%20Beka%20G1%20Howe/029_AND_30/15%20reading%20elephants.mp4 HTTP/1.1\" 206 7648063 \"http://lessons.example.com/\" \"Mozilla/5.0 (Linux; Android 5.1.1; KFFOWI)\"",
];

fn main() {
    let (mb, bytes) = common::bench_bytes();
    // What the first `user_agent` step of a process pays once: reading and compiling the
    // embedded uap-core regexes.
    let rss_start = rss();
    let start = std::time::Instant::now();
    let db = skiff_modules::user_agent::Database::embedded();
    let rss_compiled = rss();
    println!(
        "user_agent: the uap-core regexes {:?} (agents, OSes, devices) read and compiled in {:.0} ms",
        db.sizes(),
        start.elapsed().as_secs_f64() * 1e3
    );
    let p = FilesetProcessor::new("nginx", "access", Some("+00:00".into()))
        .unwrap_or_else(|e| panic!("{e}"));
    let base = common::throughput(LINES, bytes, None);
    let parsed = common::throughput(LINES, bytes, Some(&p));
    println!(
        "nginx access, {mb} MiB: without parsing {base:.1} MB/s, with the pipeline {parsed:.1} MB/s ({:.3} of the baseline)",
        parsed / base
    );
    let ev_base = common::event_throughput(LINES, bytes, None);
    let ev_parsed = common::event_throughput(LINES, bytes, Some(&p));
    println!(
        "nginx access as events, {mb} MiB: without parsing {ev_base:.1} MB/s, with the processor {ev_parsed:.1} MB/s ({:.3} of the baseline; processor / pipeline {:.3})",
        ev_parsed / ev_base,
        ev_parsed / parsed
    );

    let def = skiff_modules::fileset("nginx", "access").unwrap_or_else(|e| panic!("{e}"));
    let with = Pipeline::compile("nginx/access", &def.pipeline).unwrap_or_else(|e| panic!("{e}"));
    let steps = def.pipeline.as_array().cloned().unwrap_or_default();
    let kept: Vec<Value> = steps
        .into_iter()
        .filter(|s| s.get("user_agent").is_none())
        .collect();
    let without =
        Pipeline::compile("nginx/access", &Value::Array(kept)).unwrap_or_else(|e| panic!("{e}"));
    let compare = |what: &str, lines: &[String], bytes: usize| {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            a.push(common::throughput_with(lines, bytes, |d| without.run(d)));
            b.push(common::throughput_with(lines, bytes, |d| with.run(d)));
        }
        let (a, b) = (median(a), median(b));
        println!(
            "nginx access, {what}: without the user_agent step {a:.1} MB/s, with it {b:.1} MB/s ({:.3} of the baseline)",
            b / a
        );
    };
    let repeated: Vec<String> = LINES.iter().map(|l| l.to_string()).collect();
    compare(&format!("{mb} MiB, 3 agents"), &repeated, bytes);
    // 20,000 different agents (the cache holds 1,000), each line read once per measurement.
    let distinct: Vec<String> = (0..20_000)
        .map(|i| {
            let line = LINES[i % LINES.len()];
            let cut = line.len() - 1;
            format!("{} {i}\"", &line[..cut])
        })
        .collect();
    let once: usize = distinct.iter().map(|l| l.len() + 1).sum();
    compare("20,000 distinct agents", &distinct, once);
    // The compiled regexes' memory grows with use (their lazy DFA caches).
    println!(
        "resident memory: {rss_start} at start, {rss_compiled} with the regexes compiled, {} now",
        rss()
    );
}

/// The process's resident memory, as /proc says it.
fn rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| l.trim_start_matches("VmRSS:").trim().to_string())
        })
        .unwrap_or_default()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
