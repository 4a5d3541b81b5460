//! String processors: `truncate_fields`, `replace` and `urldecode` (libbeat's).
//!
//! `truncate_fields` cuts strings to `max_bytes` (never inside a UTF-8 character) or
//! `max_characters`, and flags a truncated event with `log.flags: [truncated]`. `replace`
//! replaces every match of a regular expression (`$1`, `${name}` refer to groups, as in Go).
//! `urldecode` decodes as Go's `url.QueryUnescape` (`+` is a space, a bad `%` escape is an
//! error). All three: a missing field is an error unless `ignore_missing`, a value that is not a
//! string is an error, and with `fail_on_error` (default) an error undoes the processor.

use regex::Regex;
use serde::Deserialize;
use skiff_config::{ConfigErrors, Node};
use skiff_event::{Event, Value};
use skiff_pipeline::{BuildContext, Processor, Verdict};

use crate::fields::OneOrMany;
use crate::{add_tag, each_item, error_at, plugin, yes};

plugin!(TRUNCATE_FIELDS, "truncate_fields", build_truncate);
plugin!(REPLACE, "replace", build_replace);
plugin!(URLDECODE, "urldecode", build_urldecode);

/// A string field's value, or why not.
fn string_of(event: &Event, field: &str, ignore_missing: bool) -> Result<Option<String>, String> {
    match event.get(field) {
        None if ignore_missing => Ok(None),
        None => Err(format!("could not fetch value for key: {field}")),
        Some(f) => match f.as_str() {
            Some(s) => Ok(Some(s.to_owned())),
            None => Err(format!(
                "value of `{field}` is not a string: {}",
                f.to_text()
            )),
        },
    }
}

// ---------------------------------------------------------------------------------------------

/// `truncate_fields`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TruncateConfig {
    /// `fields`: the string fields to truncate. Required.
    fields: OneOrMany,
    /// `max_bytes`: the most bytes a value keeps. One of `max_bytes`, `max_characters`.
    #[serde(default)]
    max_bytes: Option<usize>,
    /// `max_characters`: the most characters a value keeps.
    #[serde(default)]
    max_characters: Option<usize>,
    /// `fail_on_error`: on an error, undo. Default true.
    #[serde(default = "yes")]
    fail_on_error: bool,
    /// `ignore_missing`: no error for a missing field. Default false.
    #[serde(default)]
    ignore_missing: bool,
}

enum Limit {
    Bytes(usize),
    Chars(usize),
}

struct Truncate {
    fields: Vec<String>,
    limit: Limit,
    fail_on_error: bool,
    ignore_missing: bool,
}

fn build_truncate(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    let cfg: TruncateConfig = node.deserialize()?;
    let limit = match (cfg.max_bytes, cfg.max_characters) {
        (Some(b), None) => Limit::Bytes(b),
        (None, Some(c)) => Limit::Chars(c),
        _ => {
            return Err(
                error_at(node, "set exactly one of `max_bytes` and `max_characters`").into(),
            );
        }
    };
    Ok(Box::new(Truncate {
        fields: cfg.fields.into_vec(),
        limit,
        fail_on_error: cfg.fail_on_error,
        ignore_missing: cfg.ignore_missing,
    }))
}

/// `s` cut to the limit, or `None` when it fits.
fn truncated(s: &str, limit: &Limit) -> Option<String> {
    let end = match *limit {
        Limit::Bytes(n) if s.len() > n => {
            (0..=n).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0)
        }
        Limit::Chars(n) => s.char_indices().nth(n)?.0,
        Limit::Bytes(_) => return None,
    };
    Some(s[..end].to_owned())
}

impl Processor for Truncate {
    fn process(&self, event: &mut Event) -> Verdict {
        let mut any = false;
        let ok = each_item(
            event,
            "truncate_fields",
            self.fail_on_error,
            &self.fields,
            |event, f| {
                if let Some(s) = string_of(event, f, self.ignore_missing)?
                    && let Some(t) = truncated(&s, &self.limit)
                {
                    event.insert(f, Value::String(t));
                    any = true;
                }
                Ok(())
            },
        );
        if ok && any {
            add_tag(event, "log.flags", "truncated");
        }
        Verdict::Keep
    }
}

// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplaceItem {
    field: String,
    pattern: String,
    replacement: String,
}

/// `replace`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplaceConfig {
    /// `fields`: `{field, pattern, replacement}` items, in order. Required.
    fields: Vec<ReplaceItem>,
    /// `ignore_missing`: no error for a missing field. Default false.
    #[serde(default)]
    ignore_missing: bool,
    /// `fail_on_error`: on an error, undo. Default true.
    #[serde(default = "yes")]
    fail_on_error: bool,
}

struct Replace {
    items: Vec<(String, Regex, String)>,
    ignore_missing: bool,
    fail_on_error: bool,
}

fn build_replace(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    let cfg: ReplaceConfig = node.deserialize()?;
    let mut items = Vec::new();
    let mut errors = Vec::new();
    for (i, it) in cfg.fields.into_iter().enumerate() {
        match Regex::new(&it.pattern) {
            Ok(re) => items.push((it.field, re, it.replacement)),
            Err(e) => {
                let at = node
                    .get("fields")
                    .and_then(|f| f.items().get(i))
                    .and_then(|n| n.get("pattern"))
                    .unwrap_or(node);
                errors.push(error_at(at, format!("bad pattern: {e}")));
            }
        }
    }
    ConfigErrors(errors).into_result()?;
    Ok(Box::new(Replace {
        items,
        ignore_missing: cfg.ignore_missing,
        fail_on_error: cfg.fail_on_error,
    }))
}

impl Processor for Replace {
    fn process(&self, event: &mut Event) -> Verdict {
        let _ = each_item(
            event,
            "replace",
            self.fail_on_error,
            &self.items,
            |event, (field, re, with)| {
                if let Some(s) = string_of(event, field, self.ignore_missing)? {
                    let out = re.replace_all(&s, with.as_str()).into_owned();
                    event.insert(field, Value::String(out));
                }
                Ok(())
            },
        );
        Verdict::Keep
    }
}

// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FromMaybeTo {
    from: String,
    #[serde(default)]
    to: Option<String>,
}

/// `urldecode`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UrlDecodeConfig {
    /// `fields`: `{from, to}` pairs; no `to` decodes in place. Required.
    fields: Vec<FromMaybeTo>,
    /// `ignore_missing`: no error for a missing field. Default false.
    #[serde(default)]
    ignore_missing: bool,
    /// `fail_on_error`: on an error, undo. Default true.
    #[serde(default = "yes")]
    fail_on_error: bool,
}

struct UrlDecode(UrlDecodeConfig);

fn build_urldecode(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    Ok(Box::new(UrlDecode(node.deserialize()?)))
}

/// Go's `url.QueryUnescape`.
pub(crate) fn query_unescape(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(x) if b[i + 1].is_ascii_hexdigit() => out.push(x),
                    _ => {
                        return Err(format!(
                            "invalid URL escape {:?}",
                            String::from_utf8_lossy(&b[i..(i + 3).min(b.len())])
                        ));
                    }
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "the decoded text is not UTF-8".into())
}

impl Processor for UrlDecode {
    fn process(&self, event: &mut Event) -> Verdict {
        let _ = each_item(
            event,
            "urldecode",
            self.0.fail_on_error,
            &self.0.fields,
            |event, ft| {
                if let Some(s) = string_of(event, &ft.from, self.0.ignore_missing)? {
                    let out = query_unescape(&s)
                        .map_err(|e| format!("error trying to URL-decode {s}: {e}"))?;
                    let to = ft
                        .to
                        .as_deref()
                        .filter(|t| !t.is_empty())
                        .unwrap_or(&ft.from);
                    event.remove(to);
                    event.insert(to, Value::String(out));
                }
                Ok(())
            },
        );
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::testing::*;
    use serde_json::json;

    /// Filebeat's documentation example of `truncate_fields`, and the byte limit.
    #[test]
    fn truncate_fields() {
        let doc = "processors:\n  - truncate_fields:\n      fields:\n      - message\n      max_characters: 5\n      fail_on_error: false\n      ignore_missing: true\n";
        let p = build(doc).unwrap();
        let v = json(&run(&p, event("héllo world")).unwrap());
        assert_eq!(v["message"], "héllo");
        assert_eq!(v["log"]["flags"], json!(["truncated"]));
        let v = json(&run(&p, event("short")).unwrap());
        assert!(v["log"].get("flags").is_none(), "{v}");
        let v = with(
            "processors: [{truncate_fields: {fields: [a], max_bytes: 2}}]",
            "a",
            json!("héllo"),
        );
        assert_eq!(v["a"], "h", "never inside a character");
        let v = with(
            "processors: [{truncate_fields: {fields: [a], max_bytes: 3}}]",
            "a",
            json!("héllo"),
        );
        assert_eq!(v["a"], "hé");
        let v = with(
            "processors: [{truncate_fields: {fields: [a], max_bytes: 3}}]",
            "a",
            json!(12345),
        );
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("is not a string"),
            "{v}"
        );
        assert!(
            build(
                "processors: [{truncate_fields: {fields: [a], max_bytes: 3, max_characters: 3}}]"
            )
            .is_err()
        );
        assert!(build("processors: [{truncate_fields: {fields: [a]}}]").is_err());
    }

    /// Filebeat's documentation example of `replace`, and groups.
    #[test]
    fn replace() {
        let doc = "processors:\n  - replace:\n      fields:\n        - field: \"file.path\"\n          pattern: \"/usr/\"\n          replacement: \"/usr/local/\"\n      ignore_missing: false\n      fail_on_error: true\n";
        let v = with(doc, "file.path", json!("/usr/bin"));
        assert_eq!(v["file"]["path"], "/usr/local/bin");
        let v = with(
            "processors: [{replace: {fields: [{field: a, pattern: '(\\d{3})\\d{4}', replacement: '${1}xxxx'}]}}]",
            "a",
            json!("call 5551234 now"),
        );
        assert_eq!(v["a"], "call 555xxxx now");
        let p = build(doc).unwrap();
        let v = json(&run(&p, event("m")).unwrap());
        assert_eq!(
            v["error"]["message"],
            "replace: could not fetch value for key: file.path"
        );
        let e =
            build("processors: [{replace: {fields: [{field: a, pattern: '(', replacement: ''}]}}]")
                .err()
                .unwrap()
                .to_string();
        assert!(e.contains("bad pattern") && e.contains("pattern"), "{e}");
    }

    /// Filebeat's documentation example of `urldecode`, and Go's escapes.
    #[test]
    fn urldecode() {
        let doc = "processors:\n- urldecode:\n    fields:\n    - from: \"field1\"\n      to: \"field2\"\n    ignore_missing: false\n    fail_on_error: true\n";
        let v = with(doc, "field1", json!("correct%20data%3F+x%C3%A9"));
        assert_eq!(v["field2"], "correct data? xé");
        assert_eq!(v["field1"], "correct%20data%3F+x%C3%A9");
        let v = with(
            "processors: [{urldecode: {fields: [{from: a}]}}]",
            "a",
            json!("a%2Fb"),
        );
        assert_eq!(v["a"], "a/b");
        for bad in ["100%", "%zz", "%4", "%FF"] {
            let v = with(doc, "field1", json!(bad));
            assert!(v.get("field2").is_none(), "{bad}");
            assert!(
                v["error"]["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("urldecode: error trying to URL-decode"),
                "{bad}: {v}"
            );
        }
    }
}
