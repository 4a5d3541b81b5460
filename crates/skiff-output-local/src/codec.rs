//! How the console and file outputs turn an event into bytes: `codec.json` (the default) or
//! `codec.format`, as in libbeat.
//!
//! * JSON: the event as one object with `@metadata` (what Filebeat's console and file outputs
//!   write), compact by default; `pretty: true` indents it as Go's `json.MarshalIndent` does (two
//!   spaces, `"key": value`); `escape_html: true` writes `<`, `>` and `&` as `\u003c`, `\u003e`,
//!   `\u0026`.
//! * format: a [`Template`] such as `%{[@timestamp]} %{[message]}`. An event lacking a field the
//!   template needs (with no `:default`) cannot be encoded: the output rejects that event (it goes
//!   to the dead-letter file) rather than write a half line.

use serde::Deserialize;
use skiff_config::{ConfigError, Node};
use skiff_event::Event;
use skiff_event::fastjson::{self, SharedCache};
use skiff_event::template::Template;

/// `codec.*`: at most one of `json` and `format`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodecConfig {
    /// `codec.json`: JSON objects (the default codec).
    #[serde(default)]
    pub json: Option<JsonCodecConfig>,
    /// `codec.format`: a format string.
    #[serde(default)]
    pub format: Option<FormatCodecConfig>,
}

/// `codec.json.*`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonCodecConfig {
    /// `pretty`: indent the JSON over several lines. Default false.
    #[serde(default)]
    pub pretty: bool,
    /// `escape_html`: escape `<`, `>` and `&` in strings. Default false.
    #[serde(default)]
    pub escape_html: bool,
}

/// `codec.format.*`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatCodecConfig {
    /// `string`: the format string, e.g. `'%{[message]}'`. Required.
    pub string: String,
}

/// Reusable working space for [`Codec::encode`].
#[derive(Default)]
pub struct Scratch {
    bytes: Vec<u8>,
    cache: SharedCache,
}

/// A built codec.
#[derive(Clone, Debug)]
pub enum Codec {
    /// JSON with `@metadata`.
    Json {
        /// Indent over several lines.
        pretty: bool,
        /// Escape `<`, `>`, `&`.
        escape_html: bool,
    },
    /// A format string.
    Format(Template),
}

impl Codec {
    /// Builds the codec from `codec` (found at `node`, the output's configuration, for error
    /// locations). `pretty` is the output's own top-level `pretty` (console), an older spelling of
    /// `codec.json.pretty`.
    pub fn build(cfg: &CodecConfig, pretty: bool, node: &Node) -> Result<Codec, ConfigError> {
        match (&cfg.json, &cfg.format) {
            (Some(_), Some(_)) => Err(at(
                node,
                "codec",
                "set only one codec: `codec.json` or `codec.format`, not both",
            )),
            (_, Some(f)) => Template::parse(&f.string)
                .map(Codec::Format)
                .map_err(|e| at(node, "codec.format.string", &e.to_string())),
            (json, None) => {
                let j = json.clone().unwrap_or_default();
                Ok(Codec::Json {
                    pretty: pretty || j.pretty,
                    escape_html: j.escape_html,
                })
            }
        }
    }

    /// Appends one encoded event (without the line terminator) to `out`. `work` is reusable
    /// working space (and the cache of encoded shared fields). On error `out` is left as it was.
    pub fn encode(&self, ev: &Event, out: &mut Vec<u8>, work: &mut Scratch) -> Result<(), String> {
        let Scratch {
            bytes: scratch,
            cache,
        } = work;
        match self {
            Codec::Json {
                pretty: false,
                escape_html: false,
            } => {
                fastjson::encode(cache, ev, out, true);
                Ok(())
            }
            Codec::Json {
                pretty,
                escape_html,
            } => {
                scratch.clear();
                fastjson::encode(cache, ev, scratch, true);
                if *escape_html {
                    escape_html_in_place(scratch);
                }
                if *pretty {
                    indent(scratch, out);
                } else {
                    out.extend_from_slice(scratch);
                }
                Ok(())
            }
            Codec::Format(t) => {
                let mut s = String::from_utf8(std::mem::take(scratch)).unwrap_or_default();
                s.clear();
                let r = t.render_into(ev, &mut s);
                if r.is_ok() {
                    out.extend_from_slice(s.as_bytes());
                }
                *scratch = s.into_bytes();
                r.map_err(|e| format!("codec.format.string cannot be rendered: {e}"))
            }
        }
    }
}

/// Encodes a batch into `buf`, one event per line (each followed by `\n`), recording where each
/// written line ends in `ends`. Events that cannot be encoded, or whose line would be longer
/// than `max_line` bytes, are left out and returned with the reason, by index.
pub(crate) fn encode_batch(
    codec: &Codec,
    events: &[Event],
    buf: &mut Vec<u8>,
    scratch: &mut Scratch,
    ends: &mut Vec<usize>,
    max_line: Option<u64>,
) -> Vec<(usize, String)> {
    buf.clear();
    ends.clear();
    let mut rejected = Vec::new();
    for (i, ev) in events.iter().enumerate() {
        let start = buf.len();
        match codec.encode(ev, buf, scratch) {
            Ok(()) => {
                buf.push(b'\n');
                let len = (buf.len() - start) as u64;
                if let Some(max) = max_line.filter(|m| len > *m) {
                    buf.truncate(start);
                    rejected.push((
                        i,
                        format!(
                            "the encoded event is {len} bytes, more than a whole file may hold \
                             (rotate_every_kb = {} KiB); raise rotate_every_kb",
                            max / 1024
                        ),
                    ));
                } else {
                    ends.push(buf.len());
                }
            }
            Err(e) => {
                buf.truncate(start);
                rejected.push((i, e));
            }
        }
    }
    rejected
}

fn at(node: &Node, key: &str, msg: &str) -> ConfigError {
    let n = node.get(key).unwrap_or(node);
    let path = if n.path.is_empty() {
        key.to_owned()
    } else {
        n.path.clone()
    };
    ConfigError::new(path, n.mark.clone(), msg)
}

/// Rewrites `<`, `>` and `&` as Go's JSON encoder does with HTML escaping on. In valid JSON
/// these bytes only occur inside strings, so a byte-wise pass is exact.
fn escape_html_in_place(buf: &mut Vec<u8>) {
    if !buf.iter().any(|b| matches!(b, b'<' | b'>' | b'&')) {
        return;
    }
    let src = std::mem::take(buf);
    buf.reserve(src.len() + 32);
    for b in src {
        match b {
            b'<' => buf.extend_from_slice(b"\\u003c"),
            b'>' => buf.extend_from_slice(b"\\u003e"),
            b'&' => buf.extend_from_slice(b"\\u0026"),
            b => buf.push(b),
        }
    }
}

/// Indents compact JSON as Go's `json.MarshalIndent(v, "", "  ")`: one member per line, two
/// spaces per level, `": "` after keys, empty objects and arrays kept as `{}` / `[]`.
pub fn indent(compact: &[u8], out: &mut Vec<u8>) {
    let mut depth = 0usize;
    let mut in_str = false;
    let mut escaped = false;
    let newline = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        for _ in 0..depth {
            out.extend_from_slice(b"  ");
        }
    };
    let mut i = 0;
    while i < compact.len() {
        let b = compact[i];
        if in_str {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        match b {
            b'"' => {
                in_str = true;
                out.push(b);
            }
            b'{' | b'[' => {
                let close = if b == b'{' { b'}' } else { b']' };
                if compact.get(i + 1) == Some(&close) {
                    out.push(b);
                    out.push(close);
                    i += 2;
                    continue;
                }
                out.push(b);
                depth += 1;
                newline(out, depth);
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                newline(out, depth);
                out.push(b);
            }
            b',' => {
                out.push(b);
                newline(out, depth);
            }
            b':' => out.extend_from_slice(b": "),
            b' ' | b'\n' | b'\r' | b'\t' => {}
            b => out.push(b),
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use skiff_event::{Map, Timestamp};
    use std::sync::Arc;

    fn event() -> Event {
        let shared = json!({
            "@metadata": {"beat": "filebeat", "type": "_doc", "version": "8.0.0"},
            "host": {"name": "h"},
            "tags": [],
            "fields": {"env": "prod"},
        });
        let mut e = Event::new(
            Arc::new(shared.as_object().unwrap().clone()),
            "a <b> & \"c\", {d: [1]}".into(),
        );
        e.timestamp = Timestamp::parse("2026-01-02T03:04:05.678Z").unwrap();
        e
    }

    fn enc(c: &Codec, e: &Event) -> Result<String, String> {
        let mut out = Vec::new();
        c.encode(e, &mut out, &mut Scratch::default())?;
        Ok(String::from_utf8(out).unwrap())
    }

    fn codec(yaml: &str) -> Result<Codec, ConfigError> {
        let node = skiff_config::parse_str(yaml, Some("t.yml")).unwrap();
        let cfg: CodecConfig = node
            .get("codec")
            .map(|n| n.deserialize().unwrap())
            .unwrap_or_default();
        Codec::build(&cfg, false, &node)
    }

    #[test]
    fn json_includes_metadata_and_is_one_line() {
        let s = enc(&codec("{}").unwrap(), &event()).unwrap();
        assert!(!s.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["@metadata"]["beat"], "filebeat");
        assert_eq!(v["fields"]["env"], "prod");
        assert_eq!(v["message"], "a <b> & \"c\", {d: [1]}");
    }

    #[test]
    fn pretty_is_go_style_and_round_trips() {
        let c = codec("codec.json.pretty: true").unwrap();
        let s = enc(&c, &event()).unwrap();
        assert!(s.starts_with("{\n  \"@timestamp\": \"2026-01-02T03:04:05.678Z\",\n  \"@metadata\": {\n    \"beat\": \"filebeat\","), "{s}");
        assert!(s.contains("\"tags\": []"), "{s}");
        assert!(s.ends_with("\n}"), "{s}");
        let compact = enc(&codec("{}").unwrap(), &event()).unwrap();
        let a: serde_json::Value = serde_json::from_str(&s).unwrap();
        let b: serde_json::Value = serde_json::from_str(&compact).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn escape_html() {
        let s = enc(&codec("codec.json.escape_html: true").unwrap(), &event()).unwrap();
        assert!(
            s.contains(r#""a \u003cb\u003e \u0026 \"c\", {d: [1]}""#),
            "{s}"
        );
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["message"], "a <b> & \"c\", {d: [1]}");
    }

    #[test]
    fn format_string() {
        let c = codec("codec.format.string: '%{[host.name]} %{[@metadata][beat]}: %{[message]}'")
            .unwrap();
        assert_eq!(
            enc(&c, &event()).unwrap(),
            "h filebeat: a <b> & \"c\", {d: [1]}"
        );
        let c = codec("codec.format.string: '%{[fields.missing]}'").unwrap();
        let err = enc(&c, &event()).unwrap_err();
        assert!(err.contains("fields.missing"), "{err}");
        let c = codec("codec.format.string: '%{[fields.missing]:dflt}-%{+yyyy}'").unwrap();
        assert_eq!(enc(&c, &event()).unwrap(), "dflt-2026");
    }

    #[test]
    fn bad_codecs_are_config_errors() {
        let e = codec("codec.format.string: '%{[message]'").unwrap_err();
        assert_eq!(e.path, "codec.format.string");
        assert!(e.message.contains("unclosed"), "{e}");
        let e = codec("codec: {json: {}, format: {string: x}}").unwrap_err();
        assert!(e.message.contains("only one codec"), "{e}");
    }

    #[test]
    fn indent_handles_strings_with_structure_characters() {
        let mut out = Vec::new();
        indent(br#"{"a":"x,{}:\"]","b":[1,{}],"c":{}}"#, &mut out);
        let s = String::from_utf8(out).unwrap();
        assert_eq!(
            s,
            "{\n  \"a\": \"x,{}:\\\"]\",\n  \"b\": [\n    1,\n    {}\n  ],\n  \"c\": {}\n}"
        );
        let _ = Map::new();
    }
}
