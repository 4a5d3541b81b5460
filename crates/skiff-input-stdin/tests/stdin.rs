#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The stdin input fed from in-memory bytes, through a real publisher and memory queue.

use std::sync::Arc;

use serde_json::json;
use skiff_config::Node;
use skiff_event::{Event, Map};
use skiff_input_stdin::{Stats, Stdin};
use skiff_metrics::Registry;
use skiff_pipeline::queue::memory::{MemoryQueue, MemoryQueueConfig};
use skiff_pipeline::{BuildContext, InputContext, Publisher, Queue};
use tokio_util::sync::CancellationToken;

fn build_ctx() -> BuildContext {
    BuildContext::standalone("h", "0.1.0", &Registry::new())
}

fn input(yaml: &str) -> Stdin {
    let node = node(yaml);
    Stdin::from_node(&node, &build_ctx()).unwrap()
}

fn node(yaml: &str) -> Node {
    skiff_config::parse_str(yaml, Some("t.yml")).unwrap()
}

/// Runs `input` over `bytes` and returns what was queued (in order), acking every event.
async fn run(input: Stdin, bytes: &[u8]) -> (Vec<Event>, Stats) {
    let ctx = build_ctx();
    let cfg = MemoryQueueConfig {
        events: 1 << 20,
        max_bytes: skiff_config::ByteSize(1 << 30),
        ..Default::default()
    };
    let q = Arc::new(MemoryQueue::new(cfg, &ctx.metrics, &ctx.budget));
    let publisher = Publisher::new(q.clone(), Vec::new(), &ctx.metrics);
    let shared = json!({"input": {"type": "stdin"}});
    let ictx = InputContext {
        id: "stdin-0".into(),
        publisher,
        shutdown: CancellationToken::new(),
        build: ctx.clone(),
        shared: Arc::new(shared.as_object().unwrap().clone()),
    };
    let stats = input.run_with(bytes, ictx).await.unwrap();
    let status = ctx.status.snapshot();
    assert_eq!(status["stdin-0"]["lines"], stats.lines);
    q.close();
    let mut out = Vec::new();
    while let Some(mut b) = q.pop(1 << 20).await {
        for mut e in std::mem::take(&mut b.events) {
            e.ack();
            out.push(e);
        }
    }
    (out, stats)
}

fn messages(evs: &[Event]) -> Vec<&str> {
    evs.iter().map(|e| e.message.as_deref().unwrap()).collect()
}

#[tokio::test]
async fn lines_offsets_crlf_empty_lines_and_last_line() {
    let data = b"first\r\nsecond\n\n\r\nthird\nno newline at end";
    for buffer in [1, 3, 7, 1 << 20] {
        let (evs, stats) = run(input("{}").with_buffer_size(buffer), data).await;
        assert_eq!(
            messages(&evs),
            ["first", "second", "third", "no newline at end"],
            "buffer {buffer}"
        );
        let offsets: Vec<u64> = evs.iter().map(|e| e.offset.unwrap()).collect();
        assert_eq!(offsets, [0, 7, 17, 23], "buffer {buffer}");
        assert_eq!(evs[0].get("input.type").unwrap().as_str(), Some("stdin"));
        assert!(evs[0].get("log.flags").is_none());
        assert_eq!(
            stats,
            Stats {
                lines: 6,
                bytes: data.len() as u64,
                truncated: 0,
                eof: true
            }
        );
    }
}

#[tokio::test]
async fn acks_come_back_in_order_to_one_stream() {
    let (evs, _) = run(input("{}"), b"a\nb\nc\n").await;
    // The events were acked as they were drained; a fresh run shows the tokens are one stream.
    assert_eq!(evs.len(), 3);
    let ctx = build_ctx();
    let q = Arc::new(MemoryQueue::new(
        MemoryQueueConfig::default(),
        &ctx.metrics,
        &ctx.budget,
    ));
    let ictx = InputContext {
        id: "s".into(),
        publisher: Publisher::new(q.clone(), Vec::new(), &ctx.metrics),
        shutdown: CancellationToken::new(),
        build: ctx.clone(),
        shared: Arc::new(Map::new()),
    };
    input("{}")
        .run_with(&b"a\nbb\nccc"[..], ictx)
        .await
        .unwrap();
    q.close();
    let mut batch = q.pop(10).await.unwrap();
    let mut evs = std::mem::take(&mut batch.events);
    let stream = evs[0].ack.as_ref().unwrap().stream().unwrap().clone();
    assert!(
        evs.iter()
            .all(|e| Arc::ptr_eq(e.ack.as_ref().unwrap().stream().unwrap(), &stream))
    );
    evs[2].ack();
    evs[1].ack();
    assert_eq!(stream.acked_position(), None);
    evs[0].ack();
    // Positions are just past each line: 2, 5, and the end of input (8) for the last.
    assert_eq!(stream.acked_position(), Some(8));
}

#[tokio::test]
async fn long_lines_are_truncated_and_flagged_and_the_rest_skipped() {
    let mut data = Vec::new();
    data.extend_from_slice(&[b'x'; 100]);
    data.extend_from_slice(b"\r\nshort\n");
    // A multi-byte character across the cut: "aééééé" is 11 bytes; the cut at 10 falls inside
    // the last "é", which is dropped whole.
    data.extend_from_slice("aééééé\n".as_bytes());
    // Exactly at the limit (with CRLF): not truncated.
    data.extend_from_slice(b"0123456789\r\n");
    for buffer in [4, 16, 1 << 20] {
        let input = input("max_bytes: 10").with_buffer_size(buffer);
        let (evs, stats) = run(input, &data).await;
        assert_eq!(
            messages(&evs),
            ["xxxxxxxxxx", "short", "aéééé", "0123456789"],
            "buffer {buffer}"
        );
        let flags: Vec<bool> = evs.iter().map(|e| e.get("log.flags").is_some()).collect();
        assert_eq!(flags, [true, false, true, false], "buffer {buffer}");
        assert_eq!(
            evs[0].get("log.flags").unwrap().to_value(),
            json!(["truncated"])
        );
        assert_eq!(stats.truncated, 2);
    }
    let input = input("message_max_bytes: 4").with_buffer_size(3);
    let (evs, _) = run(input, "aéé\n".as_bytes()).await;
    // "aé" is 3 bytes; the next "é" does not fit in 4: dropped whole, not as U+FFFD.
    assert_eq!(messages(&evs), ["aé"]);
}

#[tokio::test]
async fn invalid_utf8_is_replaced() {
    let (evs, _) = run(input("{}"), b"ok \xff\xfe bytes\n").await;
    assert_eq!(messages(&evs), ["ok \u{fffd}\u{fffd} bytes"]);
}

#[tokio::test]
async fn parsers_run_on_lines() {
    let yaml = "parsers:\n  - ndjson: {target: ''}\n";
    let (evs, _) = run(
        input(yaml),
        b"{\"message\":\"m1\",\"level\":\"info\"}\nplain\n",
    )
    .await;
    assert_eq!(evs[0].message.as_deref(), Some("m1"));
    assert_eq!(evs[0].get("level").unwrap().as_str(), Some("info"));
    let yaml = "parsers:\n  - multiline: {type: pattern, pattern: '^\\s', match: after}\n";
    let (evs, _) = run(input(yaml), b"a\n  b\n  c\nd\n").await;
    assert_eq!(messages(&evs), ["a\n  b\n  c", "d"]);
}

#[tokio::test]
async fn log_input_style_json_multiline_and_line_filters() {
    let yaml = "json.keys_under_root: true\njson.message_key: msg\nmultiline: {pattern: '^\\s', match: after}\n";
    let (evs, _) = run(
        input(yaml),
        b"{\"msg\":\"a\",\"lvl\":1}\n  cont\n{\"msg\":\"b\"}\n",
    )
    .await;
    assert_eq!(evs.len(), 2, "{evs:?}");
    assert_eq!(evs[0].get("lvl").unwrap().to_value(), json!(1));
    assert_eq!(evs[1].message.as_deref(), Some("b"));
    let (evs, _) = run(input("json: {}"), b"{\"x\":1}\n").await;
    assert_eq!(evs[0].get("json.x").unwrap().to_value(), json!(1));
    let yaml = "include_lines: ['^ERR', '^WARN']\nexclude_lines: ['ignore']\n";
    let (evs, _) = run(input(yaml), b"ERR a\nINFO b\nWARN c\nERR ignore me\n").await;
    assert_eq!(messages(&evs), ["ERR a", "WARN c"]);
    let e = Stdin::from_node(&node("exclude_lines: ['(']"), &build_ctx()).unwrap_err();
    assert!(e.to_string().contains("exclude_lines"), "{e}");
}

#[tokio::test]
async fn shutdown_stops_a_blocked_read() {
    let ctx = build_ctx();
    let q = Arc::new(MemoryQueue::new(
        MemoryQueueConfig::default(),
        &ctx.metrics,
        &ctx.budget,
    ));
    let shutdown = CancellationToken::new();
    let ictx = InputContext {
        id: "s".into(),
        publisher: Publisher::new(q.clone(), Vec::new(), &ctx.metrics),
        shutdown: shutdown.clone(),
        build: ctx.clone(),
        shared: Arc::new(Map::new()),
    };
    let (mut tx, rx) = tokio::io::duplex(64);
    let h = tokio::spawn(input("{}").run_with(rx, ictx));
    tokio::io::AsyncWriteExt::write_all(&mut tx, b"one\ntw")
        .await
        .unwrap();
    while q.stats().events == 0 {
        tokio::task::yield_now().await;
    }
    shutdown.cancel();
    let stats = h.await.unwrap().unwrap();
    assert!(!stats.eof);
    assert_eq!(q.stats().events, 1);
}

#[test]
fn config_errors() {
    let ctx = build_ctx();
    let e = Stdin::from_node(&node("encoding: latin1"), &ctx).unwrap_err();
    assert!(
        e.to_string().contains("encoding") && e.to_string().contains("utf-8"),
        "{e}"
    );
    let e = Stdin::from_node(&node("max_byte: 10"), &ctx).unwrap_err();
    assert!(e.to_string().contains("max_bytes"), "{e}");
    let e = Stdin::from_node(&node("parsers: [{ndjsn: {}}]"), &ctx).unwrap_err();
    assert!(e.to_string().contains("ndjson"), "{e}");
}
