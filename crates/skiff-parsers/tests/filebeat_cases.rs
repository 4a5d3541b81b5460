//! Filebeat's own multiline test table (libbeat/reader/multiline), run against skiff: the
//! same inputs must give the same events, contents and byte counts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

/// `events` are the raw bytes of each expected event; the input is their concatenation.
fn check(name: &str, multiline: &str, events: &[&str]) {
    let mut p = chain(&format!("parsers:\n  - multiline: {multiline}"));
    let raw: String = events.concat();
    let input: Vec<&str> = raw.strip_suffix('\n').unwrap().split('\n').collect();
    let out = run(&mut p, &input);
    assert_eq!(out.len(), events.len(), "{name}: {:?}", texts(&out));
    let mut off = 0u64;
    for (m, want) in out.iter().zip(events) {
        assert_eq!(m.text, want.trim_end_matches(['\r', '\n', ' ']), "{name}");
        assert_eq!(m.start, off, "{name}");
        off += want.len() as u64;
        assert_eq!(m.end, off, "{name}: bytes of the event");
    }
}

#[test]
fn filebeat_multiline_table() {
    check(
        "after",
        r"{pattern: '^[ \t] +', match: after}",
        &[
            "line1\n  line1.1\n  line1.2\n",
            "line2\n  line2.1\n  line2.2\n",
        ],
    );
    check(
        "before",
        r"{pattern: '\\$', match: before}",
        &[
            "line1 \\\nline1.1 \\\nline1.2\n",
            "line2 \\\nline2.1 \\\nline2.2\n",
        ],
    );
    check(
        "after negate",
        "{pattern: '^-', negate: true, match: after}",
        &[
            "-line1\n  - line1.1\n  - line1.2\n",
            "-line2\n  - line2.1\n  - line2.2\n",
        ],
    );
    check(
        "before negate",
        "{pattern: ';$', negate: true, match: before}",
        &["line1\nline1.1\nline1.2;\n", "line2\nline2.1\nline2.2;\n"],
    );
    check(
        "after negate flush pattern",
        "{pattern: EventStart, negate: true, match: after, flush_pattern: EventEnd}",
        &[
            "EventStart\nEventId: 1\nEventEnd\n",
            "OtherThingInBetween\n",
            "EventStart\nEventId: 2\nEventEnd\n",
        ],
    );
    check(
        "flush pattern, first lines not matching the start pattern",
        "{pattern: EventStart, negate: true, match: after, flush_pattern: EventEnd}",
        &[
            "StartLineThatDosentMatchTheEvent\nOtherThingInBetween\n",
            "EventStart\nEventId: 2\nEventEnd\n",
            "EventStart\nEventId: 3\nEventEnd\n",
        ],
    );
    check(
        "before negate with empty lines",
        "{pattern: ';$', negate: true, match: before}",
        &["line1\n\n\nline1.2;\n", "line2\nline2.1\nline2.2;\n"],
    );
}

#[test]
fn filebeat_truncated_table() {
    for (input, truncated) in [
        (
            ["line1\n line1.1\n line1.2\n", "line2\n line2.1\n line2.2\n"],
            true,
        ),
        (["line1\n line1.1\n", "line2\n line2.1\n"], false),
    ] {
        let mut p = chain("parsers:\n  - multiline: {pattern: '^[ ]', match: after, max_lines: 2}");
        let raw = input.concat();
        let lines_in: Vec<&str> = raw.strip_suffix('\n').unwrap().split('\n').collect();
        let out = run(&mut p, &lines_in);
        assert_eq!(texts(&out), vec!["line1\n line1.1", "line2\n line2.1"]);
        for m in &out {
            assert_eq!(m.flags.contains(&"truncated"), truncated, "{input:?}");
            assert!(m.flags.contains(&"multiline"));
        }
    }
}
