//! `decode_csv_fields`: decodes a CSV record held in a string field into a list of strings
//! (libbeat's, experimental there).
//!
//! ```yaml
//! - decode_csv_fields:
//!     fields: {message: decoded.csv}   # source -> target
//!     separator: ","
//! ```
//!
//! The first record of the text is decoded with `csv-core` (the `csv` crate's parser, used
//! directly so that one parser per thread is reset and reused: building one costs tens of
//! microseconds), which is tolerant of stray quotes as Go's `LazyQuotes` reader is. A target that exists is an error unless
//! `overwrite_keys` (or it is the source itself). With `fail_on_error` (the default) an error
//! undoes the processor's changes to the event; without it the other fields are still decoded.
//! Errors go to `error.message`.
//!
//! `trim_leading_space` drops the white space at the start of each value, as Go's reader; with a
//! white-space separator a run of separators is one (Go's reader does the same), so an empty
//! value between two separators is dropped.

use serde::Deserialize;
use skiff_config::{ConfigErrors, Node};
use skiff_event::{Event, Map, Value};
use skiff_modules::csv::first_record;
use skiff_pipeline::{BuildContext, Processor, Verdict};

use crate::fields::Backup;
use crate::{error_at, plugin, set_error, yes};

plugin!(DECODE_CSV_FIELDS, "decode_csv_fields", build);

/// `decode_csv_fields`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `fields`: source field -> target field. Required.
    fields: Map,
    /// `separator`: one ASCII character. Default `,`.
    #[serde(default = "comma")]
    separator: String,
    /// `ignore_missing`: no error when a source field is missing. Default false.
    #[serde(default)]
    ignore_missing: bool,
    /// `overwrite_keys`: replace a target that exists. Default false.
    #[serde(default)]
    overwrite_keys: bool,
    /// `trim_leading_space` (also spelled `trim_leading_whitespace`, as Filebeat's own
    /// documentation example does): drop white space at the start of values. Default false.
    #[serde(default, alias = "trim_leading_whitespace")]
    trim_leading_space: bool,
    /// `fail_on_error`: on an error, undo this processor's changes. Default true.
    #[serde(default = "yes")]
    fail_on_error: bool,
}

fn comma() -> String {
    ",".into()
}

struct DecodeCsv {
    fields: Vec<(String, String)>,
    separator: u8,
    ignore_missing: bool,
    overwrite_keys: bool,
    trim: bool,
    fail_on_error: bool,
}

/// `{a: {b: x}}` as `[("a.b", "x")]`; a target that is not a string is an error.
fn flatten(map: &Map) -> Result<Vec<(String, String)>, String> {
    let mut leaves = Vec::new();
    crate::fields::leaves("", map, &mut leaves);
    leaves
        .into_iter()
        .map(|(path, v)| match v {
            Value::String(s) if !s.is_empty() => Ok((path, s)),
            other => Err(format!(
                "the target of `{path}` must be a field name, found {other}"
            )),
        })
        .collect()
}

fn build(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    let cfg: Config = node.deserialize()?;
    let at = node.get("fields").unwrap_or(node);
    let fields = flatten(&cfg.fields).map_err(|e| error_at(at, e))?;
    if fields.is_empty() {
        return Err(error_at(
            at,
            "`fields` maps source fields to targets, like `{message: decoded.csv}`",
        )
        .into());
    }
    let separator = match cfg.separator.as_bytes() {
        [b] if b.is_ascii() => *b,
        _ => {
            return Err(error_at(
                node.get("separator").unwrap_or(node),
                format!(
                    "separator must be one ASCII character (`\\t` for a tab), found `{}`",
                    cfg.separator
                ),
            )
            .into());
        }
    };
    Ok(Box::new(DecodeCsv {
        fields,
        separator,
        ignore_missing: cfg.ignore_missing,
        overwrite_keys: cfg.overwrite_keys,
        trim: cfg.trim_leading_space,
        fail_on_error: cfg.fail_on_error,
    }))
}

impl DecodeCsv {
    /// The first record of `text`.
    fn record(&self, text: &str) -> Result<Vec<Value>, String> {
        let fields = first_record(self.separator, text.as_bytes())?;
        let sep_is_space = self.separator.is_ascii_whitespace();
        let n = fields.len();
        Ok(fields
            .into_iter()
            .enumerate()
            .filter(|(i, f)| !(self.trim && sep_is_space && f.is_empty() && i + 1 < n))
            .map(|(_, f)| {
                Value::String(if self.trim {
                    f.trim_start().to_owned()
                } else {
                    f
                })
            })
            .collect())
    }

    fn decode(&self, event: &mut Event, src: &str, dst: &str) -> Result<(), String> {
        let decoded = match event.get(src) {
            None if self.ignore_missing => return Ok(()),
            None => return Err(format!("no field `{src}`")),
            Some(f) => match f.as_str() {
                None => return Err(format!("field `{src}` is not a string")),
                Some(text) => self
                    .record(text)
                    .map_err(|e| format!("error decoding CSV from field `{src}`: {e}"))?,
            },
        };
        if src != dst && !self.overwrite_keys && event.get(dst).is_some() {
            return Err(format!(
                "target field `{dst}` already has a value; set overwrite_keys or drop or rename the field first"
            ));
        }
        event.remove(dst);
        event.insert(dst, Value::Array(decoded));
        Ok(())
    }
}

impl Processor for DecodeCsv {
    fn process(&self, event: &mut Event) -> Verdict {
        let backup = self.fail_on_error.then(|| Backup::of(event));
        for (src, dst) in &self.fields {
            if let Err(e) = self.decode(event, src, dst) {
                if self.fail_on_error {
                    if let Some(b) = backup {
                        b.restore(event);
                    }
                    set_error(event, format!("decode_csv_fields: {e}"));
                    return Verdict::Keep;
                }
                set_error(event, format!("decode_csv_fields: {e}"));
            }
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::testing::*;
    use serde_json::json;

    fn decoded(yaml: &str, msg: &str) -> serde_json::Value {
        let p = build(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
        json(&run(&p, event(msg)).unwrap())
    }

    /// Filebeat's documentation example, and the cases of libbeat's tests.
    #[test]
    fn table() {
        let doc = "processors:\n - decode_csv_fields:\n     fields:\n        message: decoded.csv\n     separator: \",\"\n     ignore_missing: false\n     overwrite_keys: true\n     trim_leading_whitespace: false\n     fail_on_error: true\n";
        let cases: &[(&str, &str, serde_json::Value)] = &[
            (
                doc,
                "17,192.168.33.1,8.8.8.8",
                json!(["17", "192.168.33.1", "8.8.8.8"]),
            ),
            (
                doc,
                r#""quoted, with comma",x"#,
                json!(["quoted, with comma", "x"]),
            ),
            (
                doc,
                r#"a "lazy" quote,b"#,
                json!([r#"a "lazy" quote"#, "b"]),
            ),
            (doc, "first,line\nsecond,line", json!(["first", "line"])),
            (doc, "single", json!(["single"])),
            (
                "processors: [{decode_csv_fields: {fields: {message: decoded.csv}, separator: \"\\t\"}}]",
                "a\tb,c\t",
                json!(["a", "b,c", ""]),
            ),
            (
                "processors: [{decode_csv_fields: {fields: {message: decoded.csv}, trim_leading_space: true}}]",
                " a,  b,c ",
                json!(["a", "b", "c "]),
            ),
            (
                "processors: [{decode_csv_fields: {fields: {message: decoded.csv}, separator: ' ', trim_leading_space: true}}]",
                "  a   b c ",
                json!(["a", "b", "c", ""]),
            ),
            (
                "processors: [{decode_csv_fields: {fields: {message: decoded.csv}, separator: ' '}}]",
                "a  b",
                json!(["a", "", "b"]),
            ),
        ];
        for (yaml, msg, want) in cases {
            let v = decoded(yaml, msg);
            assert_eq!(v["decoded"]["csv"], *want, "{msg:?} with {yaml}: {v}");
            assert!(v.get("error").is_none(), "{v}");
        }
    }

    #[test]
    fn errors_and_options() {
        // In place.
        let v = decoded(
            "processors: [{decode_csv_fields: {fields: {message: message}}}]",
            "a,b",
        );
        assert_eq!(v["message"], json!(["a", "b"]));
        // Existing target: refused, unless overwrite_keys.
        let v = decoded(
            "processors: [{decode_csv_fields: {fields: {message: host.name}}}]",
            "a,b",
        );
        assert_eq!(v["host"]["name"], "web-1");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("target field `host.name` already has a value"),
            "{v}"
        );
        let v = decoded(
            "processors: [{decode_csv_fields: {fields: {message: host.name}, overwrite_keys: true}}]",
            "a,b",
        );
        assert_eq!(v["host"]["name"], json!(["a", "b"]));
        // fail_on_error (default) undoes the earlier fields; without it they stay.
        let yaml = "processors: [{decode_csv_fields: {fields: {message: csv, nope: other}}}]";
        let v = decoded(yaml, "a,b");
        assert!(v.get("csv").is_none(), "{v}");
        assert_eq!(v["error"]["message"], "decode_csv_fields: no field `nope`");
        let v = decoded(
            "processors: [{decode_csv_fields: {fields: {message: csv, nope: other}, fail_on_error: false}}]",
            "a,b",
        );
        assert_eq!(v["csv"], json!(["a", "b"]));
        assert_eq!(v["error"]["message"], "decode_csv_fields: no field `nope`");
        let v = decoded(
            "processors: [{decode_csv_fields: {fields: {message: csv, nope: other}, ignore_missing: true}}]",
            "a,b",
        );
        assert_eq!(v["csv"], json!(["a", "b"]));
        assert!(v.get("error").is_none());
        // Not a string, empty text.
        let v = decoded(
            "processors: [{decode_csv_fields: {fields: {log.offset: csv}}}]",
            "a",
        );
        assert_eq!(
            v["error"]["message"],
            "decode_csv_fields: field `log.offset` is not a string"
        );
        let v = decoded(
            "processors: [{decode_csv_fields: {fields: {message: csv}}}]",
            "",
        );
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("no CSV record"),
            "{v}"
        );
        // Configuration errors.
        for (yaml, why) in [
            (
                "processors: [{decode_csv_fields: {fields: {}}}]",
                "maps source fields",
            ),
            (
                "processors: [{decode_csv_fields: {fields: {message: 1}}}]",
                "must be a field name",
            ),
            (
                "processors: [{decode_csv_fields: {fields: {message: x}, separator: ';;'}}]",
                "one ASCII character",
            ),
            (
                "processors: [{decode_csv_fields: {fields: {message: x}, separator: 'é'}}]",
                "one ASCII character",
            ),
        ] {
            let e = build(yaml).err().unwrap().to_string();
            assert!(e.contains(why), "{yaml}: {e}");
        }
    }

    mod fuzz {
        use crate::testing::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]
            /// Any text and separator: decoded or an error, never a panic.
            #[test]
            fn never_panics(msg in "[a-c ,;\"\\t\\n\\r]{0,30}|\\PC{0,30}", sep in "[,; \\t|\"]", trim in any::<bool>()) {
                let sep = if sep == "\t" { "\\t".to_owned() } else { sep.replace('"', "\\\"") };
                let yaml = format!("processors: [{{decode_csv_fields: {{fields: {{message: c}}, separator: \"{sep}\", trim_leading_space: {trim}}}}}]");
                let p = build(&yaml).unwrap();
                let _ = run(&p, event(&msg));
            }
        }
    }
}
