//! Parsers combined in a chain, and the chain's configuration errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use skiff_parsers::{Message, Parser};

#[test]
fn ndjson_then_multiline_on_message_key() {
    let mut p = chain(
        r#"parsers:
  - ndjson: {target: '', message_key: log}
  - multiline: {pattern: '^[[:space:]]+at', match: after}"#,
    );
    let out = run(
        &mut p,
        &[
            r#"{"log":"Exception in thread main","level":"error"}"#,
            r#"{"log":"    at com.x.Y(Y.java:1)","level":"error"}"#,
            r#"{"log":"    at com.x.Z(Z.java:2)","level":"error"}"#,
            r#"{"log":"next","level":"info"}"#,
        ],
    );
    assert_eq!(
        texts(&out),
        vec![
            "Exception in thread main\n    at com.x.Y(Y.java:1)\n    at com.x.Z(Z.java:2)",
            "next"
        ]
    );
    assert_eq!(out[0].flags, vec!["multiline"]);
    assert_eq!(out[1].fields["level"], "info");
    let ev = to_event(out.into_iter().next().unwrap());
    assert!(ev.message.as_deref().unwrap().contains("Z.java"));
    assert_eq!(
        ev.get("log.flags").unwrap().to_value(),
        serde_json::json!(["multiline"])
    );
}

#[test]
fn container_then_multiline() {
    let mut p = chain(
        r#"parsers:
  - container: {}
  - multiline: {pattern: '^\s', match: after}"#,
    );
    let out = run(
        &mut p,
        &[
            "2024-01-01T00:00:00Z stdout F Exception",
            "2024-01-01T00:00:00Z stdout F   at a.b",
            "2024-01-01T00:00:01Z stdout F next",
        ],
    );
    assert_eq!(texts(&out), vec!["Exception\n  at a.b", "next"]);
    assert_eq!(out[0].fields["stream"], "stdout");
}

#[test]
fn empty_chains_pass_messages_through() {
    for yaml in ["parsers: ~", "parsers: []", "other: 1"] {
        let mut p = chain(yaml);
        assert!(p.is_empty(), "{yaml}");
        let mut out = Vec::new();
        let m = Message::new("x".into(), 3, 5);
        p.feed(m.clone(), &mut out);
        assert_eq!(out, vec![m]);
        assert_eq!(p.deadline(), None);
    }
}

#[test]
fn deadline_and_flush_go_through_later_stages() {
    let mut p = chain(
        r#"parsers:
  - multiline: {pattern: '^\s', match: after, timeout: 1s}
  - ndjson: {add_error_key: true}
  - multiline: {pattern: '^\s', match: after, timeout: 10s}"#,
    );
    let mut out = Vec::new();
    for m in lines(&["a", " b"]) {
        p.feed(m, &mut out);
    }
    let first = p.deadline().unwrap();
    p.flush_expired(first, &mut out);
    // The first stage emitted "a\n b"; ndjson flagged it; the last stage now holds it.
    assert!(out.is_empty());
    assert!(p.has_pending());
    let second = p.deadline().unwrap();
    assert!(second >= first + Duration::from_secs(9));
    p.flush_expired(second, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].text, "a\n b");
    assert_eq!(out[0].fields["error"]["type"], "json");
    assert!(!p.has_pending());
}

#[test]
fn finish_drains_every_stage_in_order() {
    let mut p = chain(
        r#"parsers:
  - container: {}
  - multiline: {pattern: '^\s', match: after}"#,
    );
    let mut out = Vec::new();
    for m in lines(&[
        "2024-01-01T00:00:00Z stdout F head",
        "2024-01-01T00:00:00Z stdout P  tail",
    ]) {
        p.feed(m, &mut out);
    }
    assert!(out.is_empty());
    p.finish(&mut out);
    assert_eq!(texts(&out), vec!["head\n tail"]);
}

#[test]
fn every_problem_is_reported() {
    let err = try_chain(
        r#"parsers:
  - multilin: {pattern: x}
  - ndjson: {target: 1, bogus: true}
  - syslog: {}
  - {ndjson: {}, multiline: {}}
  - just a string"#,
        100,
    )
    .unwrap_err();
    let text = err.to_string();
    assert_eq!(err.len(), 5, "{text}");
    assert!(text.contains("unknown parser `multilin`"), "{text}");
    assert!(text.contains("did you mean `multiline`"), "{text}");
    assert!(text.contains("not supported by skiff yet"), "{text}");
    assert!(text.contains("exactly one key"), "{text}");
    assert!(text.contains("filebeat.inputs.0.parsers.4"), "{text}");

    let err = try_chain("parsers: {ndjson: {}}", 100).unwrap_err();
    assert!(
        err.to_string().contains("expected a list of parsers"),
        "{err}"
    );
}
