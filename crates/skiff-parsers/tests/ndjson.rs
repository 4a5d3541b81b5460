//! The ndjson parser: placement of keys, overwrite rules, errors, message_key, expand_keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;
use skiff_event::Timestamp;
use skiff_parsers::{Message, Parser};

fn one(parsers: &str, line: &str) -> Message {
    let mut p = chain(parsers);
    let out = run(&mut p, &[line]);
    assert_eq!(out.len(), 1);
    out.into_iter().next().unwrap()
}

#[test]
fn root_target_merges_keys_and_message_becomes_the_event_message() {
    let m = one(
        "parsers:\n  - ndjson: {target: ''}",
        r#"{"level":"info","message":"hi","http":{"status":200}}"#,
    );
    assert_eq!(m.text, "", "without message_key the text is emptied");
    let ev = to_event(m);
    assert_eq!(ev.message.as_deref(), Some("hi"));
    assert_eq!(ev.get("level").unwrap().as_str(), Some("info"));
    assert_eq!(ev.get("http.status").unwrap().to_value(), json!(200));
    assert_eq!(ev.offset, Some(0));
}

#[test]
fn named_and_dotted_targets_nest() {
    let m = one("parsers:\n  - ndjson: {target: json}", r#"{"a":1}"#);
    assert_eq!(
        serde_json::Value::Object(m.fields),
        json!({"json": {"a": 1}})
    );
    let m = one("parsers:\n  - ndjson: {target: app.data}", r#"{"a":1}"#);
    assert_eq!(
        serde_json::Value::Object(m.fields),
        json!({"app": {"data": {"a": 1}}})
    );
}

#[test]
fn overwrite_keys_decides_who_wins() {
    // The container parser set `stream`; the JSON has its own.
    let line = r#"{"log":"{\"stream\":\"mine\",\"x\":1,\"@timestamp\":\"2020-01-02T03:04:05.678Z\"}\n","stream":"stdout","time":"2024-01-01T00:00:00Z"}"#;
    let keep = one(
        "parsers:\n  - container: {}\n  - ndjson: {target: ''}",
        line,
    );
    assert_eq!(keep.fields["stream"], "stdout");
    assert_eq!(keep.fields["x"], 1);
    assert!(keep.fields.get("@timestamp").is_none());
    assert_eq!(
        keep.timestamp,
        Timestamp::parse("2024-01-01T00:00:00Z"),
        "@timestamp is ignored without overwrite_keys"
    );

    let over = one(
        "parsers:\n  - container: {}\n  - ndjson: {target: '', overwrite_keys: true}",
        line,
    );
    assert_eq!(over.fields["stream"], "mine");
    assert_eq!(over.timestamp, Timestamp::parse("2020-01-02T03:04:05.678Z"));
}

#[test]
fn timestamp_formats_and_errors() {
    let cfg = "parsers:\n  - ndjson: {overwrite_keys: true, add_error_key: true}";
    let m = one(cfg, r#"{"@timestamp":"2020-01-02T03:04:05.678+0100"}"#);
    assert_eq!(m.timestamp, Timestamp::parse("2020-01-02T02:04:05.678Z"));
    let m = one(cfg, r#"{"@timestamp":"yesterday","a":1}"#);
    assert_eq!(m.timestamp, None);
    assert_eq!(
        m.fields["error"],
        json!({"message": "@timestamp not overwritten (parse error on yesterday)", "type": "json"})
    );
    let m = one(cfg, r#"{"@timestamp":12}"#);
    assert_eq!(
        m.fields["error"]["message"],
        "@timestamp not overwritten (not string)"
    );
    let m = one(cfg, r#"{"type":"_doc"}"#);
    assert_eq!(
        m.fields["error"]["message"],
        "type not overwritten (invalid value [_doc])"
    );
    let m = one(cfg, r#"{"@metadata":{"pipeline":"p"}}"#);
    let ev = to_event(m);
    assert_eq!(ev.get("@metadata.pipeline").unwrap().as_str(), Some("p"));
}

#[test]
fn decoding_errors_keep_the_text() {
    let m = one(
        "parsers:\n  - ndjson: {add_error_key: true}",
        "not json at all",
    );
    assert_eq!(m.text, "not json at all");
    assert_eq!(m.fields["error"]["type"], "json");
    let msg = m.fields["error"]["message"].as_str().unwrap();
    assert!(msg.starts_with("Error decoding JSON: "), "{msg}");
    let ev = to_event(m);
    assert_eq!(ev.message.as_deref(), Some("not json at all"));
    assert_eq!(ev.get("error.type").unwrap().as_str(), Some("json"));

    // Without add_error_key the line passes unchanged.
    let m = one(
        "parsers:\n  - ndjson: {ignore_decoding_error: true}",
        "[1,2]",
    );
    assert_eq!(m, Message::new("[1,2]".into(), 0, 6));

    let m = one("parsers:\n  - ndjson: {add_error_key: true}", "[1,2]");
    assert!(
        m.fields["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expected a JSON object, found an array")
    );
}

#[test]
fn text_after_the_object_is_ignored_like_go() {
    let m = one("parsers:\n  - ndjson: {}", r#"{"a":1} trailing"#);
    assert_eq!(m.fields["a"], 1);
}

#[test]
fn message_key_sets_the_text() {
    let cfg = "parsers:\n  - ndjson: {message_key: msg, add_error_key: true}";
    let m = one(cfg, r#"{"msg":"hello","x":1}"#);
    assert_eq!(m.text, "hello");
    assert_eq!(m.fields["msg"], "hello");
    assert_eq!(m.fields["x"], 1);
    let ev = to_event(m);
    assert_eq!(ev.message.as_deref(), Some("hello"));

    let m = one(cfg, r#"{"x":1}"#);
    assert_eq!(m.text, "");
    assert_eq!(m.fields["error"]["message"], "Key 'msg' not found");
    let m = one(cfg, r#"{"msg":3}"#);
    assert_eq!(
        m.fields["error"]["message"],
        "Value of key 'msg' is not a string"
    );
}

#[test]
fn expand_keys_nests_dotted_keys() {
    let m = one(
        "parsers:\n  - ndjson: {expand_keys: true}",
        r#"{"a.b":1,"a.c":2,"x":{"y.z":3}}"#,
    );
    assert_eq!(
        serde_json::Value::Object(m.fields),
        json!({"a": {"b": 1, "c": 2}, "x": {"y": {"z": 3}}})
    );
    let m = one(
        "parsers:\n  - ndjson: {expand_keys: true, add_error_key: true}",
        r#"{"a":1,"a.b":2}"#,
    );
    assert_eq!(m.fields["error"]["type"], "json");
    assert!(
        m.fields.get("a").is_none(),
        "nothing is written on conflict"
    );
}

#[test]
fn document_id_goes_to_metadata() {
    let m = one(
        "parsers:\n  - ndjson: {document_id: id}",
        r#"{"id":"doc-1","a":1}"#,
    );
    let ev = to_event(m);
    assert_eq!(ev.get("@metadata._id").unwrap().as_str(), Some("doc-1"));
    assert!(ev.get("id").is_none());
}

#[test]
fn empty_object_gives_an_empty_message() {
    let m = one("parsers:\n  - ndjson: {}", "{}");
    assert!(m.is_empty(), "Filebeat's filestream drops such a message");
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let line = "[".repeat(100_000);
    let m = one("parsers:\n  - ndjson: {add_error_key: true}", &line);
    assert_eq!(m.fields["error"]["type"], "json");
    let line = format!("{}{}", r#"{"a":"#.repeat(50_000), "1");
    let m = one("parsers:\n  - ndjson: {add_error_key: true}", &line);
    assert_eq!(m.fields["error"]["type"], "json");
}

#[test]
fn unknown_key_is_an_error_with_suggestion() {
    let err = try_chain("parsers:\n  - ndjson: {overwrite_key: true}", 100).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("filebeat.inputs.0.parsers.0.ndjson"),
        "{text}"
    );
    assert!(text.contains("overwrite_keys"), "{text}");
}

#[test]
fn feed_is_stateless() {
    let mut p = chain("parsers:\n  - ndjson: {}");
    let mut out = Vec::new();
    p.feed(Message::new(r#"{"a":1}"#.into(), 0, 8), &mut out);
    assert_eq!(out.len(), 1);
    assert!(!p.has_pending());
    assert_eq!(p.deadline(), None);
}
