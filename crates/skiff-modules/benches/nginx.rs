//! Throughput of the nginx access fileset's pipeline on one core, against the same loop
//! without parsing (building the event document only), in the same run:
//! `cargo bench -p skiff-modules --bench nginx`. Numbers go to docs/performance.md.
//! The second pair of numbers is the processor as the agent runs it (`process` on an event
//! with a stdin input's shared fields, against building the event alone): the pipeline plus
//! moving the fields between the event and the pipeline's document.

mod common;

use skiff_modules::processor::FilesetProcessor;

const LINES: &[&str] = &[
    "89.160.20.156 - - [25/Oct/2016:14:49:33 +0200] \"GET / HTTP/1.1\" 200 612 \"-\" \"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_12_0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/54.0.2840.59 Safari/537.36\"",
    "10.0.0.2, 10.0.0.1, 81.2.69.143 - - [07/Dec/2016:11:05:07 +0100] \"GET /ocelot HTTP/1.1\" 200 571 \"-\" \"Mozilla/5.0 (Macintosh; Intel Mac OS X 10.12; rv:49.0) Gecko/20100101 Firefox/49.0\"",
    "lessons.example.com 192.168.0.1 - - [09/Jun/2020:12:10:39 -0700] \"GET /A%20Beka%20G1%20Howe/029_AND_30/15%20reading%20elephants.mp4 HTTP/1.1\" 206 7648063 \"http://lessons.example.com/\" \"Mozilla/5.0 (Linux; Android 5.1.1; KFFOWI)\"",
];

fn main() {
    let (mb, bytes) = common::bench_bytes();
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
}
