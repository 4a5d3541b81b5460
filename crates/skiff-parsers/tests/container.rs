//! The container parser: Docker json-file and CRI lines, partial lines, stream filters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;
use skiff_event::Timestamp;
use skiff_parsers::Parser;

const DOCKER: &str = r#"{"log":"1:M 09 Nov 13:27:36.276 # User requested shutdown...\n","stream":"stdout","time":"2017-11-09T13:27:36.277747246Z"}"#;
const CRI: &str = "2017-09-12T22:32:21.212861448Z stdout F 2017-09-12 22:32:21.212 [INFO][88] table.go 710: Invalidating dataplane cache";

#[test]
fn docker_line() {
    let mut p = chain("parsers:\n  - container: ~");
    let out = run(&mut p, &[DOCKER]);
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].text,
        "1:M 09 Nov 13:27:36.276 # User requested shutdown..."
    );
    assert_eq!(out[0].fields["stream"], "stdout");
    assert_eq!(out[0].timestamp, Some(Timestamp(1_510_234_056_277_747_246)));
    assert_eq!((out[0].start, out[0].end), (0, DOCKER.len() as u64 + 1));
    let ev = to_event(out.into_iter().next().unwrap());
    assert_eq!(ev.timestamp.to_rfc3339_millis(), "2017-11-09T13:27:36.277Z");
}

#[test]
fn docker_partial_lines_are_joined() {
    let mut p = chain("parsers:\n  - container: {format: docker}");
    let input = [
        r#"{"log":"1:M 09 Nov 13:27:36.276 # User requested ","stream":"stdout","time":"2017-11-09T13:27:36.277747246Z"}"#,
        r#"{"log":"shutdown...\n","stream":"stdout","time":"2017-11-09T13:27:36.277747246Z"}"#,
    ];
    let mut out = Vec::new();
    let ls = lines(&input);
    let end = ls[1].end;
    for m in ls {
        p.feed(m, &mut out);
        if out.is_empty() {
            assert!(p.has_pending());
        }
    }
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].text,
        "1:M 09 Nov 13:27:36.276 # User requested shutdown..."
    );
    assert_eq!((out[0].start, out[0].end), (0, end));
    assert!(!p.has_pending());
}

#[test]
fn docker_attrs() {
    let mut p = chain("parsers:\n  - container: {}");
    let out = run(
        &mut p,
        &[
            r#"{"log":"hello\n","stream":"stdout","attrs":{"KEY1":"value1"},"time":"2017-11-09T13:27:36.277747246Z"}"#,
        ],
    );
    assert_eq!(
        out[0].fields["docker"],
        json!({"attrs": {"KEY1": "value1"}})
    );
}

#[test]
fn cri_full_and_partial_lines() {
    let mut p = chain("parsers:\n  - container: {format: cri}");
    let out = run(
        &mut p,
        &[
            CRI,
            "2017-10-12T13:32:21.232861448Z stdout P 2017-10-12 13:32:21.212 [INFO][88] table.go 710: Invalidating dataplane cache",
            "2017-11-12T23:32:21.212771448Z stdout F  error",
        ],
    );
    assert_eq!(
        texts(&out),
        vec![
            "2017-09-12 22:32:21.212 [INFO][88] table.go 710: Invalidating dataplane cache",
            "2017-10-12 13:32:21.212 [INFO][88] table.go 710: Invalidating dataplane cache error",
        ]
    );
    assert_eq!(out[0].fields["stream"], "stdout");
    assert_eq!(
        out[1].timestamp,
        Timestamp::parse("2017-10-12T13:32:21.232861448Z"),
        "the first piece's time"
    );
    assert_eq!(out[1].start, CRI.len() as u64 + 1);
}

#[test]
fn auto_detects_each_line() {
    let mut p = chain("parsers:\n  - container: {format: auto}");
    let out = run(&mut p, &[DOCKER, CRI]);
    assert_eq!(out.len(), 2);
}

#[test]
fn stream_filter_drops_other_streams() {
    let mut p = chain("parsers:\n  - container: {stream: stderr}");
    let mut out = Vec::new();
    let input = lines(&[
        "2017-10-12T13:32:21.232861448Z stdout F out",
        "2017-11-12T23:32:21.212771448Z stderr F 2017-11-12 23:32:21.212 [ERROR][77] table.go 111: error",
        "2017-12-12T10:32:21.212864448Z stdout P out partial",
    ]);
    for m in input {
        p.feed(m, &mut out);
    }
    assert_eq!(
        texts(&out),
        vec!["2017-11-12 23:32:21.212 [ERROR][77] table.go 111: error"]
    );
    assert_eq!(out[0].fields["stream"], "stderr");
    assert!(!p.has_pending(), "filtered partials are not buffered");
}

/// A line of one stream completed while another stream's partial line is held must not let
/// the input commit past the held bytes.
#[test]
fn interleaved_partials_are_joined_per_stream_and_hold_the_ack_position() {
    let mut p = chain("parsers:\n  - container: {}");
    let input = lines(&[
        "2024-01-01T00:00:00Z stdout P hello ",
        "2024-01-01T00:00:01Z stderr F oops",
        "2024-01-01T00:00:02Z stdout F world",
    ]);
    let (held_start, stdout_end) = (input[0].start, input[2].end);
    let mut out = Vec::new();
    for m in input {
        p.feed(m, &mut out);
    }
    assert_eq!(texts(&out), vec!["oops", "hello world"]);
    assert_eq!(
        out[0].end, held_start,
        "held back to where the partial starts"
    );
    assert_eq!(out[1].end, stdout_end);
    assert!(out[0].end <= out[1].end, "ack positions never go back");
}

#[test]
fn joined_partials_are_capped() {
    let mut p = try_chain("parsers:\n  - container: {}", 50).unwrap();
    let mut input = Vec::new();
    for _ in 0..1000 {
        input.push(format!(
            r#"{{"log":"{}","stream":"stdout","time":"2024-01-01T00:00:00Z"}}"#,
            "x".repeat(20)
        ));
    }
    input.push(r#"{"log":"end\n","stream":"stdout","time":"2024-01-01T00:00:00Z"}"#.into());
    let refs: Vec<&str> = input.iter().map(String::as_str).collect();
    let out = run(&mut p, &refs);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].text, "x".repeat(50));
    assert_eq!(out[0].flags, vec!["truncated"]);
    assert_eq!(out[0].end, lines(&refs).last().unwrap().end);
}

#[test]
fn unparsable_lines_are_dropped() {
    let mut p = chain("parsers:\n  - container: {}");
    let out = run(
        &mut p,
        &[
            "this is not JSON",
            "2017-09-12T22:32:21.212861448Z stdout",
            "{this is not JSON nor CRI",
            r#"{"log":"no time\n","stream":"stdout"}"#,
            "",
            CRI,
        ],
    );
    assert_eq!(out.len(), 1);
    assert!(!p.has_pending());

    // A forced format refuses the other one.
    let mut p = chain("parsers:\n  - container: {format: cri}");
    assert!(run(&mut p, &[DOCKER]).is_empty());
    let mut p = chain("parsers:\n  - container: {format: docker}");
    assert!(run(&mut p, &[CRI]).is_empty());
}

#[test]
fn finish_emits_a_held_partial() {
    let mut p = chain("parsers:\n  - container: {}");
    let out = run(&mut p, &["2024-01-01T00:00:00Z stdout P unfinished"]);
    assert_eq!(texts(&out), vec!["unfinished"]);
}

#[test]
fn bad_settings() {
    let err = try_chain("parsers:\n  - container: {format: podman}", 10).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("parsers.0.container.format"), "{text}");
    assert!(text.contains("unknown container log format"), "{text}");
    let err = try_chain("parsers:\n  - container: {stream: both}", 10).unwrap_err();
    assert!(err.to_string().contains("container.stream"), "{err}");
}
