//! Property tests of the two parsers of untrusted input: the framer and the syslog parser.
//! They run with the tests (a fixed number of random cases each).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::BytesMut;
use proptest::prelude::*;
use skiff_input_net::framing::{Framer, FramingKind};
use skiff_input_net::syslog::parse::{Format, parse};

fn cut_all(f: &Framer, chunks: &[Vec<u8>]) -> (Vec<Vec<u8>>, bool) {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for c in chunks {
        buf.extend_from_slice(c);
        loop {
            match f.next(&mut buf) {
                Ok(Some(m)) => out.push(m.to_vec()),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
            // The buffer never holds more than one message and its framing.
        }
        assert!(
            buf.len() <= f.max() + 2 + 11 + c.len(),
            "buffer grew to {}",
            buf.len()
        );
    }
    if let Some(m) = f.rest(&mut buf) {
        out.push(m.to_vec());
    }
    (out, false)
}

fn split(data: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.sort_unstable();
    let mut out = Vec::new();
    let mut last = 0;
    for p in points.into_iter().chain([data.len()]) {
        out.push(data[last..p].to_vec());
        last = p;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Garbage never panics nor grows the buffer past the limit.
    #[test]
    fn framer_survives_garbage(data in proptest::collection::vec(any::<u8>(), 0..2000),
                               cuts in proptest::collection::vec(any::<usize>(), 0..8),
                               counted in any::<bool>(), max in 1usize..300) {
        let kind = if counted { FramingKind::Rfc6587 } else { FramingKind::Delimiter };
        let f = Framer::new(kind, b"\n", max);
        let (msgs, _) = cut_all(&f, &split(&data, &cuts));
        prop_assert!(msgs.iter().all(|m| m.len() <= max && !m.is_empty()));
    }

    /// Octet-counted messages come out as they went in, however the stream is cut.
    #[test]
    fn octet_counting_round_trips(msgs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..200), 0..20),
                                  cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
        let mut wire = Vec::new();
        for m in &msgs {
            wire.extend_from_slice(format!("{} ", m.len()).as_bytes());
            wire.extend_from_slice(m);
        }
        let f = Framer::new(FramingKind::Rfc6587, b"\n", 200);
        let (out, failed) = cut_all(&f, &split(&wire, &cuts));
        prop_assert!(!failed);
        prop_assert_eq!(out, msgs);
    }

    /// Delimited lines come out as they went in.
    #[test]
    fn lines_round_trip(lines in proptest::collection::vec("[^\n\r]{1,50}", 0..20),
                        cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
        let wire: Vec<u8> = lines.iter().flat_map(|l| format!("{l}\n").into_bytes()).collect();
        let f = Framer::new(FramingKind::Delimiter, b"\n", 200);
        let (out, failed) = cut_all(&f, &split(&wire, &cuts));
        prop_assert!(!failed);
        let out: Vec<String> = out.into_iter().map(|m| String::from_utf8(m).unwrap()).collect();
        prop_assert_eq!(out, lines);
    }

    /// Any text parses or fails cleanly, in every format; what parses borrows from it.
    #[test]
    fn syslog_never_panics(s in "\\PC{0,300}") {
        for f in [Format::Rfc3164, Format::Rfc5424, Format::Auto] {
            if let Ok(m) = parse(&s, f) {
                prop_assert!(m.message.len() <= s.len());
            }
        }
    }

    /// Syslog-shaped input (the interesting paths) never panics either.
    #[test]
    fn syslog_shaped_never_panics(pri in 0u16..260, v in 0u8..3,
                                  ts in "(-|[0-9T:.Z+-]{0,30}|[A-Z][a-z]{2} [ 0-9]{1,2} [0-9:.]{0,12})",
                                  rest in "[a-z\\[\\]\"\\\\= @-]{0,80}") {
        let s = format!("<{pri}>{v} {ts} {rest}");
        let _ = parse(&s, Format::Auto);
        let _ = parse(&s, Format::Rfc5424);
        let s = format!("<{pri}>{ts} {rest}");
        let _ = parse(&s, Format::Rfc3164);
    }

    /// Well-formed RFC 5424 messages give their fields back.
    #[test]
    fn rfc5424_round_trips(pri in 0u8..192, host in "[a-z0-9.]{1,20}", app in "[a-z]{1,10}",
                           pid in 1u32..99999, value in "[a-z\"\\]\\\\ ]{0,20}", msg in "[ -~]{0,50}") {
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"").replace(']', "\\]");
        let s = format!("<{pri}>1 2026-01-02T03:04:05Z {host} {app} {pid} - [id@1 k=\"{escaped}\"] {msg}");
        let m = parse(&s, Format::Auto).unwrap();
        prop_assert_eq!(m.priority, Some(pri));
        prop_assert_eq!(m.hostname, Some(host.as_str()));
        prop_assert_eq!(m.appname, Some(app.as_str()));
        let pid_s = pid.to_string();
        prop_assert_eq!(m.procid, Some(pid_s.as_str()));
        prop_assert_eq!(&m.structured_data[0].1[0].1, &value);
        prop_assert_eq!(m.message, msg.as_str());
    }
}
