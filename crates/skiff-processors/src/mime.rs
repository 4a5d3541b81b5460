//! `detect_mime_type`: the MIME type of a field's content (libbeat's, which uses the
//! `mimetype` Go library).
//!
//! A small signature table written here: the `infer` crate knows binary formats only, while
//! fields hold text, and what Filebeat users see most is its text detection (`application/json`,
//! `text/html; charset=utf-8`, `text/plain; charset=utf-8`, ...). Binary signatures that can be
//! held in a UTF-8 string (PDF, GIF, ZIP, PostScript, ...) are recognised too. Content matching
//! nothing gets no type; a missing or non-string field is left alone, as libbeat does.

use serde::Deserialize;
use skiff_config::{ConfigErrors, Node};
use skiff_event::{Event, Value};
use skiff_pipeline::{BuildContext, Processor, Verdict};

use crate::plugin;

plugin!(DETECT_MIME_TYPE, "detect_mime_type", build);

/// `detect_mime_type`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `field`: the content. Required.
    field: String,
    /// `target`: where the type goes. Required.
    target: String,
}

struct DetectMime(Config);

fn build(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    Ok(Box::new(DetectMime(node.deserialize()?)))
}

/// Signatures at the start of the content, most specific first.
const PREFIXES: &[(&[u8], &str)] = &[
    (b"%PDF-", "application/pdf"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"PK\x03\x04", "application/zip"),
    (b"%!PS-Adobe-", "application/postscript"),
    (b"{\\rtf", "text/rtf"),
    (b"\x1f\x8b", "application/gzip"),
    (b"BZh", "application/x-bzip2"),
    (b"#!/bin/sh", "text/x-shellscript"),
    (b"#!/bin/bash", "text/x-shellscript"),
    (b"#!/usr/bin/env python", "text/x-python"),
    (b"#!/usr/bin/python", "text/x-python"),
    (b"BEGIN:VCARD", "text/vcard"),
    (b"BEGIN:VCALENDAR", "text/calendar"),
];

/// The MIME type of `s`, if it is recognised.
pub fn detect(s: &str) -> Option<&'static str> {
    let b = s.as_bytes();
    if let Some((_, t)) = PREFIXES.iter().find(|(p, _)| b.starts_with(p)) {
        return Some(t);
    }
    let t = s.trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n']);
    let lower: String = t.chars().take(64).collect::<String>().to_ascii_lowercase();
    if lower.starts_with("<!doctype html")
        || lower.starts_with("<html")
        || lower.starts_with("<head")
        || lower.starts_with("<body")
    {
        return Some("text/html; charset=utf-8");
    }
    if lower.starts_with("<svg") {
        return Some("image/svg+xml");
    }
    if lower.starts_with("<?xml") {
        return Some(if lower.contains("<svg") {
            "image/svg+xml"
        } else {
            "text/xml; charset=utf-8"
        });
    }
    if (t.starts_with('{') || t.starts_with('['))
        && serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok()
    {
        return Some("application/json");
    }
    // Text: no control characters but white space (the `mimetype` library's rule for UTF-8).
    let texty = s
        .chars()
        .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r' | '\u{c}'));
    if texty && !s.is_empty() {
        return Some("text/plain; charset=utf-8");
    }
    if s.is_empty() {
        return Some("text/plain");
    }
    None
}

impl Processor for DetectMime {
    fn process(&self, event: &mut Event) -> Verdict {
        let found = event
            .get(&self.0.field)
            .and_then(|f| f.as_str().and_then(detect));
        if let Some(t) = found {
            event.insert(&self.0.target, Value::String(t.to_owned()));
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::testing::*;
    use serde_json::json;

    /// Filebeat's documentation example, on contents the `mimetype` library names so.
    #[test]
    fn doc_example() {
        let p = build("processors:\n  - detect_mime_type:\n      field: http.request.body.content\n      target: http.request.mime_type\n").unwrap();
        for (content, want) in [
            ("hello world", Some("text/plain; charset=utf-8")),
            (r#"{"a": [1, 2]}"#, Some("application/json")),
            ("{not json", Some("text/plain; charset=utf-8")),
            (
                "<!DOCTYPE html><html><body>x</body></html>",
                Some("text/html; charset=utf-8"),
            ),
            (
                "<?xml version=\"1.0\"?><a/>",
                Some("text/xml; charset=utf-8"),
            ),
            (
                "<svg xmlns='http://www.w3.org/2000/svg'/>",
                Some("image/svg+xml"),
            ),
            ("%PDF-1.7\n...", Some("application/pdf")),
            ("GIF89a...", Some("image/gif")),
            ("PK\u{3}\u{4}...", Some("application/zip")),
            ("#!/bin/sh\necho", Some("text/x-shellscript")),
            ("bin\u{0}ary", None),
        ] {
            let mut ev = event("m");
            ev.insert("http.request.body.content", json!(content));
            let v = json(&run(&p, ev).unwrap());
            assert_eq!(
                v["http"]["request"]["mime_type"].as_str(),
                want,
                "{content:?}"
            );
        }
        let v = json(&run(&p, event("m")).unwrap());
        assert!(v.get("http").is_none() && v.get("error").is_none());
    }
}
