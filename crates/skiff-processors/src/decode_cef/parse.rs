//! The CEF (ArcSight Common Event Format) parser:
//! `CEF:Version|Vendor|Product|Version|Event Class ID|Name|Severity|key=value key=value ...`.
//!
//! Hand-written because no maintained crate parses CEF. Rules, as libbeat's parser:
//! - the header's seven fields are split on `|`; `\|` and `\\` are escapes there;
//! - an extension key is letters, digits and `_ . , [ ] -`, starts after a space (or the
//!   header), and ends at `=`; its value runs to the space before the next key, so values may
//!   hold spaces; the last value loses its trailing white space;
//! - in values `\=`, `\\`, `\n`, `\r` are escapes; a value with an unescaped `=` or another
//!   escape is malformed: it is dropped and reported, the other keys are kept.
//!
//! It only slices the text at ASCII positions it found, so it cannot panic on any input.

/// A parsed CEF message.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Cef {
    /// `CEF:<n>`.
    pub version: i64,
    /// The six header fields after the version: vendor, product, device version, event class
    /// id, name, severity.
    pub header: [String; 6],
    /// The extensions in the order written, with their keys as written.
    pub extensions: Vec<(String, String)>,
}

/// Parses a CEF message: what could be parsed, and what was wrong (empty when all was well).
pub fn parse(text: &str) -> (Cef, Vec<String>) {
    let mut cef = Cef::default();
    let mut errors = Vec::new();
    let Some(start) = text.find("CEF:") else {
        return (cef, vec!["not a CEF message: `CEF:` not found".into()]);
    };
    let mut rest = &text[start + 4..];
    let mut fields: Vec<String> = Vec::with_capacity(7);
    while fields.len() < 7 {
        let mut value = String::new();
        let mut end = None;
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match rest[i + 1..].chars().next() {
                    Some(e @ ('|' | '\\')) => {
                        value.push(e);
                        chars.next();
                    }
                    _ => value.push('\\'),
                },
                '|' => {
                    end = Some(i);
                    break;
                }
                c => value.push(c),
            }
        }
        match end {
            Some(i) => {
                fields.push(value);
                rest = &rest[i + 1..];
            }
            None => {
                fields.push(value);
                rest = "";
                break;
            }
        }
    }
    let complete = fields.len() == 7;
    let mut it = fields.into_iter();
    match it.next().map(|v| v.trim().parse::<i64>()) {
        Some(Ok(v)) => cef.version = v,
        _ => errors.push("CEF version is not a number".into()),
    }
    for (slot, v) in cef.header.iter_mut().zip(it) {
        *slot = v;
    }
    if !complete {
        errors.push("incomplete CEF header".into());
        return (cef, errors);
    }
    parse_extensions(rest, &mut cef.extensions, &mut errors);
    (cef, errors)
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b',' | b'[' | b']' | b'-')
}

/// Where keys start: (start of key, position of its `=`).
fn key_positions(s: &str) -> Vec<(usize, usize)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let at_start = i == 0 || b[i - 1] == b' ';
        if at_start && is_key_byte(b[i]) {
            let mut j = i;
            while j < b.len() && is_key_byte(b[j]) {
                j += 1;
            }
            if j < b.len() && b[j] == b'=' {
                out.push((i, j));
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// Unescapes a value; `None` if it has an unescaped `=` or an unknown escape.
fn unescape(v: &str) -> Option<String> {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                '=' => out.push('='),
                '\\' => out.push('\\'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                _ => return None,
            },
            '=' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

fn parse_extensions(s: &str, out: &mut Vec<(String, String)>, errors: &mut Vec<String>) {
    let s = s.trim_start_matches(' ');
    let keys = key_positions(s);
    if keys.is_empty() {
        if !s.trim().is_empty() {
            errors.push("malformed CEF extension: no `key=value`".into());
        }
        return;
    }
    if keys[0].0 != 0 {
        errors.push(format!(
            "malformed CEF extension before `{}`",
            &s[keys[0].0..keys[0].1]
        ));
    }
    for (n, &(k, eq)) in keys.iter().enumerate() {
        let key = &s[k..eq];
        let raw = match keys.get(n + 1) {
            // The value ends at the space before the next key.
            Some(&(next, _)) => &s[eq + 1..next - 1],
            None => s[eq + 1..].trim_end_matches([' ', '\t', '\r', '\n']),
        };
        match unescape(raw) {
            Some(v) => out.push((key.to_owned(), v)),
            None => errors.push(format!(
                "malformed value for `{key}`: unescaped `=` or bad escape"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);

    fn ext(text: &str) -> (Vec<(String, String)>, bool) {
        let (c, errors) = parse(text);
        (c.extensions, errors.is_empty())
    }

    /// A message that parses without error.
    fn ok(text: &str) -> Cef {
        let (c, errors) = parse(text);
        assert!(errors.is_empty(), "{text}: {errors:?}");
        c
    }

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// The cases of libbeat's CEF parser tests: (message, extensions, parsed without error).
    #[test]
    fn libbeat_cases() {
        let c = ok(
            "CEF:26|security|threatmanager|1.0|100|trojan successfully stopped|10|src=10.0.0.192 dst=12.121.122.82 spt=1232 eventId=1 in=4294967296 out=4294967296",
        );
        assert_eq!(c.version, 26);
        assert_eq!(
            c.header,
            [
                "security",
                "threatmanager",
                "1.0",
                "100",
                "trojan successfully stopped",
                "10"
            ]
            .map(String::from)
        );
        assert_eq!(
            c.extensions,
            kv(&[
                ("src", "10.0.0.192"),
                ("dst", "12.121.122.82"),
                ("spt", "1232"),
                ("eventId", "1"),
                ("in", "4294967296"),
                ("out", "4294967296")
            ])
        );
        let c = ok("CEF:26|security|threatmanager|1.0|100|trojan successfully stopped|10|");
        assert!(c.extensions.is_empty());
        let c = ok(
            r"CEF:26|security|threat\|->manager|1.0|100|trojan successfully stopped|10|src=10.0.0.192",
        );
        assert_eq!(c.header[1], "threat|->manager");
        let c = ok("CEF:26|security|threat=manager|1.0|100|x|10|src=10.0.0.192");
        assert_eq!(c.header[1], "threat=manager");
        let c = ok("CEF:0|||1.0|100|x|10|src=10.0.0.192");
        assert_eq!((c.header[0].as_str(), c.header[1].as_str()), ("", ""));

        let cases: &[Case] = &[
            (
                "CEF:26|a|b|1.0|100|x|10|src=10.0.0.192 dst= spt=1232",
                &[("src", "10.0.0.192"), ("dst", ""), ("spt", "1232")],
                true,
            ),
            (
                "CEF:0|a|b|1.0|100|x|10| src=10.0.0.192 dst=12.121.122.82",
                &[("src", "10.0.0.192"), ("dst", "12.121.122.82")],
                true,
            ),
            (
                r"CEF:0|a|b|1.0|100|x|10|moo=this\|has an escaped pipe",
                &[],
                false,
            ),
            (
                "CEF:0|a|b|1.0|100|x|10|moo=this|has an pipe",
                &[("moo", "this|has an pipe")],
                true,
            ),
            (
                r"CEF:0|a|b|1.0|100|x|10|moo=this =has = equals\=",
                &[],
                false,
            ),
            (
                r"CEF:0|a|b|1.0|100|x|10|msg=a+b\=c x=c\\d\=z",
                &[("msg", "a+b=c"), ("x", r"c\d=z")],
                true,
            ),
            (
                "CEF:0|vendor|product|version|event_id|name|Very-High| msg=Hello World error=Failed because id==old_id user=root angle=106.7<=180",
                &[
                    ("msg", "Hello World"),
                    ("error", "Failed because"),
                    ("user", "root"),
                ],
                false,
            ),
            ("CEF:0|||||||a=", &[("a", "")], true),
            (
                "CEF:0|a|b|1.0|100|x|10|spt=1232 msg=Trailing space in non-final extensions is  preserved    src=10.0.0.192 ",
                &[
                    ("spt", "1232"),
                    (
                        "msg",
                        "Trailing space in non-final extensions is  preserved   ",
                    ),
                    ("src", "10.0.0.192"),
                ],
                true,
            ),
            (
                "CEF:0|a|b|1.0|100|x|10|spt=1232 msg=Trailing space in final extensions is not preserved\t \r\n",
                &[
                    ("spt", "1232"),
                    ("msg", "Trailing space in final extensions is not preserved"),
                ],
                true,
            ),
            (
                "CEF:0|a|b|1.0|100|x|10|spt=1232 msg=Tabs\tand\rcontrol\ncharacters are preserved\t src=127.0.0.1",
                &[
                    ("spt", "1232"),
                    ("msg", "Tabs\tand\rcontrol\ncharacters are preserved\t"),
                    ("src", "127.0.0.1"),
                ],
                true,
            ),
            (
                "CEF:0|a|b|1.0|100|x|10|spt=1232 msg=Tab is not a separator\tsrc=127.0.0.1",
                &[("spt", "1232")],
                false,
            ),
            (
                r"CEF:0|a|b|1.0|100|x|10|spt=1232 msg=Newlines in messages\nare allowed.\r\nAnd so are carriage feeds\\newlines\\\=.",
                &[
                    ("spt", "1232"),
                    (
                        "msg",
                        "Newlines in messages\nare allowed.\r\nAnd so are carriage feeds\\newlines\\=.",
                    ),
                ],
                true,
            ),
            (r"CEF:0|||||||key1=\\hi= key2=a", &[("key2", "a")], false),
        ];
        for (msg, want, ok) in cases {
            assert_eq!(ext(msg), (kv(want), *ok), "{msg}");
        }
        let (c, errs) = parse("CEF:0|SentinelOne|Mgmt|activityID=1");
        assert_eq!(
            (c.header[0].as_str(), c.header[1].as_str()),
            ("SentinelOne", "Mgmt")
        );
        assert!(errs.iter().any(|e| e.contains("incomplete")));
        assert!(!parse("no cef here").1.is_empty());
        let c = ok(r"<134>Sep 1 host CEF:0|security\\compliance|p|1|2|n|3|");
        assert_eq!(c.header[0], r"security\compliance");
    }

    mod fuzz {
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(3000))]
            /// Any text: parsed or an error, never a panic.
            #[test]
            fn never_panics(s in "(CEF:[0-9]{0,2})?([a-z|=\\\\ \t.\\[\\]-]|é){0,60}|\\PC{0,60}") {
                let _ = super::super::parse(&s);
            }
        }
    }
}
