//! The multiline parser against Filebeat's documented examples and limits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use skiff_parsers::{Message, Parser};

const JAVA: &[&str] = &[
    r#"Exception in thread "main" java.lang.IllegalStateException: A book has a null property"#,
    "       at com.example.myproject.Author.getBookIds(Author.java:38)",
    "       at com.example.myproject.Bootstrap.main(Bootstrap.java:14)",
    "Caused by: java.lang.NullPointerException",
    "       at com.example.myproject.Book.getId(Book.java:22)",
    "       at com.example.myproject.Author.getBookIds(Author.java:35)",
    "       ... 1 more",
    "2024-01-01 next event",
];

#[test]
fn java_stack_trace_with_caused_by() {
    let mut p = chain(
        r#"parsers:
  - multiline:
      type: pattern
      pattern: '^[[:space:]]+(at|\.{3})[[:space:]]+\b|^Caused by:'
      negate: false
      match: after"#,
    );
    let mut out = Vec::new();
    let input = lines(JAVA);
    let end_of_trace = input[6].end;
    for m in input {
        p.feed(m, &mut out);
    }
    // The trace is complete as soon as the next event's first line arrives.
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].text, JAVA[..7].join("\n"));
    assert_eq!(out[0].start, 0);
    assert_eq!(out[0].end, end_of_trace);
    assert_eq!(out[0].flags, vec!["multiline"]);
    assert!(p.has_pending());
    p.finish(&mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].text, "2024-01-01 next event");
    assert!(out[1].flags.is_empty(), "a single line is not multiline");
    assert_eq!(out[1].start, end_of_trace);
}

#[test]
fn bracket_negate_after() {
    let mut p = chain(
        r#"parsers:
  - multiline: {type: pattern, pattern: '^\[', negate: true, match: after}"#,
    );
    let out = run(
        &mut p,
        &[
            "[beat-logstash-some-name-832-2015.11.28] IndexNotFoundException[no such index]",
            "    at org.elasticsearch.cluster.metadata.IndexNameExpressionResolver.resolve(IndexNameExpressionResolver.java:566)",
            "    at org.elasticsearch.cluster.metadata.IndexNameExpressionResolver.concreteIndices(IndexNameExpressionResolver.java:133)",
            "[beat-logstash] second",
        ],
    );
    assert_eq!(out.len(), 2);
    assert!(out[0].text.starts_with("[beat-logstash-some-name"));
    assert_eq!(out[0].text.lines().count(), 3);
    assert_eq!(out[1].text, "[beat-logstash] second");
}

#[test]
fn timestamp_continuation() {
    let mut p = chain(
        r#"parsers:
  - multiline:
      type: pattern
      pattern: '^\[[0-9]{4}-[0-9]{2}-[0-9]{2}'
      negate: true
      match: after"#,
    );
    let out = run(
        &mut p,
        &[
            "[2015-08-24 11:49:14,389][INFO ][env                      ] [Letha] using [1] data paths, mounts [[/",
            "(/dev/disk1)]], net usable_space [34.5gb], net total_space [118.9gb], types [hfs]",
            "[2015-08-24 11:49:15,000][INFO ][node                     ] [Letha] initialized",
        ],
    );
    assert_eq!(out.len(), 2);
    assert!(out[0].text.ends_with("types [hfs]"));
    assert_eq!(out[0].flags, vec!["multiline"]);
    assert!(out[1].text.ends_with("initialized"));
}

#[test]
fn line_continuation_match_before() {
    let mut p = chain(
        r#"parsers:
  - multiline: {type: pattern, pattern: '\\$', negate: false, match: before}"#,
    );
    let out = run(
        &mut p,
        &[
            r#"printf ("%10.10ld  \t %10.10ld \t %s\"#,
            r#"  %f", w, x, y, z );"#,
            "done",
        ],
    );
    assert_eq!(
        texts(&out),
        vec![
            "printf (\"%10.10ld  \\t %10.10ld \\t %s\\\n  %f\", w, x, y, z );",
            "done"
        ]
    );
}

/// The four negate/match combinations of Filebeat's table, on one input.
#[test]
fn negate_match_table() {
    let input = ["a1", "b", "b", "a2", "b"];
    let cases: &[(bool, &str, &[&str])] = &[
        // Consecutive matching lines are appended to the previous line that does not match.
        (false, "after", &["a1\nb\nb", "a2\nb"]),
        // Consecutive non-matching lines are appended to the previous line that matches.
        (true, "after", &["a1", "b", "b\na2", "b"]),
        // Consecutive matching lines are prepended to the next line that does not match.
        (false, "before", &["a1", "b\nb\na2", "b"]),
        // Consecutive non-matching lines are prepended to the next line that matches.
        (true, "before", &["a1\nb", "b", "a2\nb"]),
    ];
    for (negate, m, want) in cases {
        let mut p = chain(&format!(
            "parsers:\n  - multiline: {{pattern: '^b', negate: {negate}, match: {m}}}"
        ));
        let out = run(&mut p, &input);
        assert_eq!(texts(&out), *want, "negate={negate} match={m}");
    }
}

#[test]
fn max_lines_drops_further_lines_but_consumes_them() {
    let mut p = chain(
        r#"parsers:
  - multiline: {pattern: '^\s', match: after, max_lines: 3}"#,
    );
    let mut text = vec!["head"];
    text.extend(std::iter::repeat_n(" cont", 9));
    text.push("next");
    let input = lines(&text);
    let last_cont_end = input[9].end;
    let mut out = Vec::new();
    for m in input {
        p.feed(m, &mut out);
    }
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].text, "head\n cont\n cont");
    assert_eq!(
        out[0].end, last_cont_end,
        "dropped lines are still consumed"
    );
    assert!(out[0].flags.contains(&"truncated"));
    assert!(out[0].flags.contains(&"multiline"));
}

#[test]
fn byte_cap_cuts_the_event() {
    let mut p = try_chain(
        r#"parsers:
  - multiline: {pattern: '^\s', match: after}"#,
        20,
    )
    .unwrap();
    let out = run(&mut p, &["0123456789", " 23456789", " 23456789", "next"]);
    assert_eq!(out[0].end, 31, "the dropped line is consumed");
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].text.len(), 20);
    // 10 + separator + 9 bytes fill the cap exactly; the third line is dropped.
    assert_eq!(out[0].text, "0123456789\n 23456789");
    assert!(out[0].flags.contains(&"truncated"));
    assert!(out[0].flags.contains(&"multiline"));
    assert_eq!(out[1].text, "next");
}

#[test]
fn byte_cap_never_splits_a_character() {
    let mut p = try_chain(
        "parsers:\n  - multiline: {pattern: '^\\s', match: after}",
        6,
    )
    .unwrap();
    let out = run(&mut p, &["ab", " éé"]);
    // "ab\n é" is 6 bytes; the second é would not fit.
    assert_eq!(out[0].text, "ab\n é");
    assert!(out[0].flags.contains(&"truncated"));
}

#[test]
fn count_mode_emits_each_group_at_once() {
    let mut p = chain("parsers:\n  - multiline: {type: count, count_lines: 3}");
    let mut out = Vec::new();
    for (i, m) in lines(&["1", "2", "3", "4", "5", "6", "7"])
        .into_iter()
        .enumerate()
    {
        p.feed(m, &mut out);
        assert_eq!(out.len(), (i + 1) / 3, "after line {}", i + 1);
    }
    assert_eq!(p.deadline(), None, "Filebeat has no timeout in count mode");
    p.finish(&mut out);
    assert_eq!(texts(&out), vec!["1\n2\n3", "4\n5\n6", "7"]);
    assert_eq!(out[1].start, 6);
    assert_eq!(out[1].end, 12);
}

#[test]
fn count_mode_requires_count_lines() {
    let err = try_chain("parsers:\n  - multiline: {type: count}", 100).unwrap_err();
    assert!(err.to_string().contains("count_lines"), "{err}");
}

#[test]
fn while_pattern_joins_matching_runs() {
    let mut p = chain("parsers:\n  - multiline: {type: while_pattern, pattern: '^\\{'}");
    let out = run(&mut p, &["x", "{a", "{b", "y", "z", "{c"]);
    assert_eq!(texts(&out), vec!["x", "{a\n{b", "y", "z", "{c"]);
    assert_eq!(out[1].flags, vec!["multiline"]);
    // And negated: runs of lines that do not match.
    let mut p =
        chain("parsers:\n  - multiline: {type: while-pattern, pattern: '^\\{', negate: true}");
    let out = run(&mut p, &["x", "y", "{a", "z"]);
    assert_eq!(texts(&out), vec!["x\ny", "{a", "z"]);
}

#[test]
fn flush_pattern_ends_the_event() {
    let mut p = chain(
        r#"parsers:
  - multiline:
      type: pattern
      pattern: 'Start new event'
      negate: true
      match: after
      flush_pattern: 'End event'"#,
    );
    let input = [
        "[2015-08-24 11:49:14,389] Start new event",
        "[2015-08-24 11:49:14,395] Content of processing something",
        "[2015-08-24 11:49:14,399] End event",
        "[2015-08-24 11:50:14,389] Some other log",
        "[2015-08-24 11:50:14,395] This is a message",
        "[2015-08-24 11:50:14,399] End event",
    ];
    let mut out = Vec::new();
    for m in lines(&input) {
        p.feed(m, &mut out);
    }
    // Both events are complete without waiting for another line or the timeout.
    assert_eq!(
        texts(&out),
        vec![input[..3].join("\n"), input[3..].join("\n")]
    );
    assert!(!p.has_pending());
}

#[test]
fn timeout_flushes_a_pending_event() {
    let mut p = chain("parsers:\n  - multiline: {pattern: '^\\s', match: after, timeout: 2s}");
    let mut out = Vec::new();
    assert_eq!(p.deadline(), None);
    for m in lines(&["head", " cont"]) {
        p.feed(m, &mut out);
    }
    assert!(out.is_empty());
    let d = p.deadline().expect("a pending event has a deadline");
    p.flush_expired(d - Duration::from_millis(1), &mut out);
    assert!(out.is_empty(), "not yet expired");
    p.flush_expired(d, &mut out);
    assert_eq!(texts(&out), vec!["head\n cont"]);
    assert_eq!(p.deadline(), None);
    // A continuation line after the flush starts a new event (as in Filebeat).
    let mut m = Message::new(" late".into(), 11, 17);
    m.flags.push("truncated");
    p.feed(m, &mut out);
    p.finish(&mut out);
    assert_eq!(out[1].text, " late");
    assert_eq!(
        out[1].flags,
        vec!["truncated"],
        "the input's flags are kept"
    );
}

#[test]
fn timeout_zero_disables_and_default_is_five_seconds() {
    let mut p = chain("parsers:\n  - multiline: {pattern: '^\\s', match: after, timeout: 0}");
    let mut out = Vec::new();
    p.feed(Message::new("head".into(), 0, 5), &mut out);
    assert_eq!(p.deadline(), None);

    let mut p = chain("parsers:\n  - multiline: {pattern: '^\\s', match: after}");
    let before = std::time::Instant::now();
    p.feed(Message::new("head".into(), 0, 5), &mut out);
    let d = p.deadline().unwrap();
    let after = std::time::Instant::now();
    assert!(d >= before + Duration::from_secs(5) && d <= after + Duration::from_secs(5));
}

#[test]
fn skip_newline_joins_without_separator() {
    let mut p =
        chain("parsers:\n  - multiline: {pattern: '^\\s', match: after, skip_newline: true}");
    let out = run(&mut p, &["a", " b", " c"]);
    assert_eq!(texts(&out), vec!["a b c"]);
}

#[test]
fn fields_of_first_line_and_timestamp_kept() {
    let mut p = chain("parsers:\n  - multiline: {pattern: '^\\s', match: after}");
    let mut out = Vec::new();
    let mut first = Message::new("a".into(), 0, 2);
    first.timestamp = Some(skiff_event::Timestamp(7));
    first
        .fields
        .insert("stream".into(), serde_json::json!("stdout"));
    let mut second = Message::new(" b".into(), 2, 5);
    second.timestamp = Some(skiff_event::Timestamp(9));
    p.feed(first, &mut out);
    p.feed(second, &mut out);
    p.finish(&mut out);
    assert_eq!(out[0].timestamp, Some(skiff_event::Timestamp(7)));
    assert_eq!(out[0].fields["stream"], "stdout");
    assert_eq!((out[0].start, out[0].end), (0, 5));
}

#[test]
fn config_errors_name_the_key() {
    let err = try_chain(
        "parsers:\n  - ndjson: {}\n  - multiline: {type: pattern, pattern: '^(unclosed', match: after}",
        100,
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("filebeat.inputs.0.parsers.1.multiline.pattern"),
        "{text}"
    );
    assert!(text.contains("filebeat.yml:"), "the line is given: {text}");
    assert!(text.contains("invalid regular expression"), "{text}");
    assert!(
        text.contains("unclosed group"),
        "the cause is given: {text}"
    );

    let err = try_chain(
        "parsers:\n  - multiline: {pattern: '^x', match: beside}",
        100,
    )
    .unwrap_err();
    assert!(err.to_string().contains("multiline.match"), "{err}");
    let err = try_chain("parsers:\n  - multiline: {pattern: '^x'}", 100).unwrap_err();
    assert!(err.to_string().contains("`match` is required"), "{err}");
    let err = try_chain("parsers:\n  - multiline: {match: after}", 100).unwrap_err();
    assert!(err.to_string().contains("`pattern` is required"), "{err}");
    let err = try_chain("parsers:\n  - multiline: {type: lines, pattern: x}", 100).unwrap_err();
    assert!(err.to_string().contains("unknown multiline type"), "{err}");
    let err = try_chain(
        "parsers:\n  - multiline: {pattern: x, match: after, negat: true}",
        100,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("negate"),
        "suggests the key: {err}"
    );
    let err = try_chain(
        "parsers:\n  - multiline: {pattern: x, match: after, flush_pattern: '[z'}",
        100,
    )
    .unwrap_err();
    assert!(err.to_string().contains("multiline.flush_pattern"), "{err}");
}
