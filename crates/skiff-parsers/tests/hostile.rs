//! Hostile input: random bytes, runaway patterns, endless partial lines. Nothing may panic, and
//! what the parsers hold stays within the configured caps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use skiff_parsers::{Message, Parser};

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Lines built from pieces that exercise every parser's branches, mixed with random bytes.
fn random_line(r: &mut Rng) -> String {
    const PIECES: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        "\"",
        ":",
        ",",
        "\\",
        "\\n",
        "log",
        "\"log\":",
        "\"stream\":\"stdout\"",
        "\"time\":\"2024-01-01T00:00:00Z\"",
        "2024-01-01T00:00:00Z",
        " stdout ",
        " stderr ",
        "P ",
        "F ",
        "P:X ",
        "@timestamp",
        "\"@timestamp\":\"x\"",
        "a.b",
        "\"a.b\":1",
        " ",
        "\t",
        "at ",
        "Caused by:",
        "é",
        "\u{1F600}",
        "null",
        "true",
        "-1e999",
        "\u{0}",
    ];
    let mut s = String::new();
    let n = r.below(40);
    for _ in 0..n {
        if r.below(4) == 0 {
            // Random bytes, decoded lossily as the input's decoder would.
            let bytes: Vec<u8> = (0..r.below(8)).map(|_| r.next() as u8).collect();
            s.push_str(&String::from_utf8_lossy(&bytes));
        } else {
            s.push_str(PIECES[r.below(PIECES.len() as u64) as usize]);
        }
    }
    s
}

#[test]
fn random_input_through_every_parser() {
    const CAP: usize = 300;
    let configs = [
        "parsers:\n  - container: {}\n  - ndjson: {target: '', overwrite_keys: true, add_error_key: true, expand_keys: true, message_key: log, document_id: a.b}\n  - multiline: {pattern: '^[[:space:]]+(at|\\.{3})[[:space:]]+\\b|^Caused by:', match: after, max_lines: 5}",
        "parsers:\n  - ndjson: {target: x.y, add_error_key: true, expand_keys: true}\n  - multiline: {pattern: '^\\{', negate: true, match: before, flush_pattern: '\\}$'}",
        "parsers:\n  - multiline: {type: while_pattern, pattern: '\"'}\n  - container: {format: cri, stream: stderr}",
        "parsers:\n  - multiline: {type: count, count_lines: 7, skip_newline: true}\n  - container: {format: docker}",
    ];
    for (ci, cfg) in configs.iter().enumerate() {
        let mut p = try_chain(cfg, CAP).unwrap();
        let mut r = Rng(0x9E37_79B9_7F4A_7C15 ^ ci as u64);
        let mut out = Vec::new();
        let mut off = 0u64;
        let mut last_end = 0u64;
        for i in 0..20_000 {
            let text = random_line(&mut r);
            let end = off + text.len() as u64 + 1;
            p.feed(Message::new(text, off, end), &mut out);
            off = end;
            if i % 1000 == 0 {
                let now = std::time::Instant::now() + std::time::Duration::from_secs(60);
                p.flush_expired(now, &mut out);
            }
            for m in out.drain(..) {
                assert!(m.text.len() <= CAP, "config {ci}: {} bytes", m.text.len());
                assert!(m.end >= last_end, "config {ci}: ack position went back");
                assert!(m.end <= off);
                last_end = m.end;
                let _ = to_event(m);
            }
        }
        p.finish(&mut out);
        assert!(!p.has_pending());
    }
}

/// A pattern that matches every line: one event that never ends. It stays within the caps and
/// the lines are still consumed.
#[test]
fn runaway_pattern_memory_is_bounded() {
    const CAP: usize = 64 * 1024;
    let mut p = try_chain("parsers:\n  - multiline: {pattern: '.', match: after}", CAP).unwrap();
    let line = "y".repeat(100);
    let mut out = Vec::new();
    let mut off = 0u64;
    for _ in 0..200_000 {
        let end = off + 101;
        p.feed(Message::new(line.clone(), off, end), &mut out);
        off = end;
    }
    assert!(out.is_empty(), "every line continues the event");
    let held = p.pending_bytes();
    assert!(held > 0 && held <= 2 * CAP, "held {held}");
    p.finish(&mut out);
    assert_eq!(out.len(), 1);
    let m = &out[0];
    assert_eq!(m.text.lines().count(), 500, "max_lines default");
    assert!(
        m.text.capacity() <= 2 * CAP,
        "capacity {}",
        m.text.capacity()
    );
    assert_eq!((m.start, m.end), (0, off), "all 20 MB consumed");
    assert!(m.flags.contains(&"truncated"));

    // With max_lines unlimited the byte cap holds.
    let mut p = try_chain(
        "parsers:\n  - multiline: {pattern: '.', match: after, max_lines: 0}",
        CAP,
    )
    .unwrap();
    let mut out = Vec::new();
    for i in 0..100_000u64 {
        p.feed(Message::new(line.clone(), i * 101, (i + 1) * 101), &mut out);
    }
    p.finish(&mut out);
    assert_eq!(out[0].text.len(), CAP);
    assert!(out[0].text.capacity() <= 2 * CAP);
}

#[test]
fn huge_single_line_is_cut_at_the_cap() {
    let mut p = try_chain(
        "parsers:\n  - multiline: {pattern: '^\\s', match: after}",
        1000,
    )
    .unwrap();
    let out = run(&mut p, &[&"z".repeat(1_000_000)]);
    assert_eq!(out[0].text.len(), 1000);
    assert!(out[0].flags.contains(&"truncated"));
}
