//! The `ndjson` parser: decodes each line as a JSON object, as Filebeat's
//! `readjson.JSONParser` does.
//!
//! * `target: ""` (default) writes the keys at the root of the event, honouring
//!   `overwrite_keys`: without it, keys already set by earlier parsers win and `@timestamp`,
//!   `@metadata` are ignored; with it, the decoded keys win, `@timestamp` (RFC 3339 or
//!   `2006-01-02T15:04:05.000Z0700`) sets the event time, `@metadata` merges into the metadata,
//!   and `type` must be a non-empty string not starting with `_`.
//! * `target: name` puts the object under `name` (dotted names nest).
//! * `message_key`: the key whose string value becomes the message text (so a following
//!   `multiline` can join on it); without it the text is empty and the decoded `message` key,
//!   if any, becomes the message.
//! * `add_error_key` adds `error.message` / `error.type: json` on a decoding error (the text is
//!   then kept as it was), a missing or non-string `message_key`, or a bad `@timestamp`.
//! * `expand_keys` turns dotted keys into nested objects (`{"a.b": 1}` → `{"a": {"b": 1}}`).
//! * `document_id`: a key whose string value moves to `@metadata._id`.
//!
//! Like Go's decoder, only the first JSON value of the line is read; text after it is ignored.
//! Nesting is bounded by `serde_json`'s recursion limit (128), so a hostile line cannot exhaust
//! the stack.

use std::time::{Duration, Instant};

use serde::Deserialize;
use skiff_config::{ConfigErrors, Node};
use skiff_event::{Map, Timestamp, Value};

use crate::fields::{
    LogLimiter, deep_update, deep_update_no_overwrite, expand_keys, get_path, put_path, remove_path,
};
use crate::{Message, Parser};

/// The `ndjson:` settings of one parser.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NdjsonConfig {
    /// `target`: where the decoded keys go; empty = the root of the event. Default "".
    #[serde(default)]
    pub target: String,
    /// `overwrite_keys`: decoded keys replace fields already set. Default false.
    #[serde(default)]
    pub overwrite_keys: bool,
    /// `add_error_key`: add `error.message` and `error.type: json` when decoding fails.
    /// Default false.
    #[serde(default)]
    pub add_error_key: bool,
    /// `message_key`: the key whose string value becomes the message text. Default none.
    #[serde(default)]
    pub message_key: String,
    /// `expand_keys`: expand dotted keys into nested objects. Default false.
    #[serde(default)]
    pub expand_keys: bool,
    /// `ignore_decoding_error`: do not log lines that are not JSON. Default false.
    #[serde(default)]
    pub ignore_decoding_error: bool,
    /// `document_id`: a key whose string value becomes `@metadata._id`. Default none.
    #[serde(default)]
    pub document_id: String,
    /// `keys_under_root`: accepted for compatibility with the `log` input's `json.*`; the
    /// parser places keys by `target`. Default false.
    #[serde(default)]
    pub keys_under_root: bool,
}

/// The `ndjson` parser.
#[derive(Debug)]
pub struct NdjsonParser {
    cfg: NdjsonConfig,
    log: LogLimiter,
}

impl NdjsonParser {
    /// Validates `node` (the value under `ndjson:`) and builds the parser.
    pub fn from_node(node: &Node) -> Result<Self, ConfigErrors> {
        let cfg: NdjsonConfig = node.deserialize()?;
        Ok(Self::new(cfg))
    }

    /// Builds the parser from settings.
    pub fn new(cfg: NdjsonConfig) -> Self {
        NdjsonParser {
            cfg,
            log: LogLimiter::new(Duration::from_secs(10)),
        }
    }

    /// Decodes the text: `(new text, decoded fields)` (Filebeat's `JSONReader.decode`).
    fn decode(&mut self, text: String) -> (String, Map) {
        let first = serde_json::Deserializer::from_str(&text)
            .into_iter::<Value>()
            .next();
        let err = match first {
            Some(Ok(Value::Object(map))) => return self.take_message(map),
            Some(Ok(other)) => format!("expected a JSON object, found {}", kind(&other)),
            Some(Err(e)) => e.to_string(),
            None => "the line is empty".to_owned(),
        };
        if !self.cfg.ignore_decoding_error
            && let Some(skipped) = self.log.allow()
        {
            tracing::warn!(error = %err, skipped, "ndjson: line is not a JSON object; kept as text");
        }
        let mut fields = Map::new();
        if self.cfg.add_error_key {
            fields.insert(
                "error".into(),
                json_error(format!("Error decoding JSON: {err}")),
            );
        }
        (text, fields)
    }

    fn take_message(&self, mut map: Map) -> (String, Map) {
        let key = &self.cfg.message_key;
        if key.is_empty() {
            return (String::new(), map);
        }
        let problem = match map.get(key) {
            Some(Value::String(s)) => return (s.clone(), map),
            Some(_) => format!("Value of key '{key}' is not a string"),
            None => format!("Key '{key}' not found"),
        };
        if self.cfg.add_error_key {
            map.insert("error".into(), json_error(problem));
        }
        (String::new(), map)
    }
}

impl Parser for NdjsonParser {
    fn feed(&mut self, mut msg: Message, out: &mut Vec<Message>) {
        let text = std::mem::take(&mut msg.text);
        let (text, mut keys) = self.decode(text);
        msg.text = text;
        if keys.is_empty() {
            out.push(msg);
            return;
        }
        // Filebeat writes the text back under `message_key` here; it is the value just read from
        // that key, so there is nothing to do.
        if !self.cfg.document_id.is_empty()
            && matches!(
                get_path(&keys, &self.cfg.document_id),
                Some(Value::String(_))
            )
            && let Some(id) = remove_path(&mut keys, &self.cfg.document_id)
        {
            put_path(&mut msg.fields, "@metadata._id", id);
        }
        if self.cfg.target.is_empty() {
            write_keys(&mut msg, keys, &self.cfg);
        } else {
            if self.cfg.expand_keys
                && let Err(e) = expand_keys(&mut keys)
            {
                set_error(&mut msg, e, self.cfg.add_error_key);
            }
            put_path(&mut msg.fields, &self.cfg.target, Value::Object(keys));
        }
        out.push(msg);
    }

    fn deadline(&self) -> Option<Instant> {
        None
    }

    fn flush_expired(&mut self, _now: Instant, _out: &mut Vec<Message>) {}

    fn finish(&mut self, _out: &mut Vec<Message>) {}
}

/// Writes decoded keys at the root (libbeat's `jsontransform.WriteJSONKeys`).
fn write_keys(msg: &mut Message, mut keys: Map, cfg: &NdjsonConfig) {
    if cfg.expand_keys
        && let Err(e) = expand_keys(&mut keys)
    {
        tracing::debug!(error = %e, "ndjson: failed to expand keys");
        set_error(msg, e, cfg.add_error_key);
        return;
    }
    if !cfg.overwrite_keys {
        keys.remove("@timestamp");
        keys.remove("@metadata");
        deep_update_no_overwrite(&mut msg.fields, keys);
        return;
    }
    if let Some(v) = keys.remove("@timestamp") {
        match &v {
            Value::String(s) => match parse_timestamp(s) {
                Some(ts) => msg.timestamp = Some(ts),
                None => set_error(
                    msg,
                    format!("@timestamp not overwritten (parse error on {s})"),
                    cfg.add_error_key,
                ),
            },
            _ => set_error(
                msg,
                "@timestamp not overwritten (not string)".into(),
                cfg.add_error_key,
            ),
        }
    }
    if let Some(v) = keys.remove("@metadata") {
        match v {
            Value::Object(m) => {
                let meta = msg
                    .fields
                    .entry("@metadata")
                    .or_insert_with(|| Value::Object(Map::new()));
                if !meta.is_object() {
                    *meta = Value::Object(Map::new());
                }
                if let Value::Object(meta) = meta {
                    deep_update(meta, m);
                }
            }
            _ => set_error(msg, "failed to update @metadata".into(), cfg.add_error_key),
        }
    }
    if let Some(v) = keys.remove("type") {
        match &v {
            Value::String(s) if !s.is_empty() && !s.starts_with('_') => {
                msg.fields.insert("type".into(), v);
            }
            Value::String(s) => set_error(
                msg,
                format!("type not overwritten (invalid value [{s}])"),
                cfg.add_error_key,
            ),
            _ => set_error(
                msg,
                "type not overwritten (not string)".into(),
                cfg.add_error_key,
            ),
        }
    }
    deep_update(&mut msg.fields, keys);
}

fn set_error(msg: &mut Message, text: String, add_error_key: bool) {
    if add_error_key {
        msg.fields.insert("error".into(), json_error(text));
    }
}

fn json_error(message: String) -> Value {
    let mut m = Map::new();
    m.insert("message".into(), Value::String(message));
    m.insert("type".into(), Value::String("json".into()));
    Value::Object(m)
}

/// RFC 3339, or libbeat's ISO 8601 layout `2006-01-02T15:04:05.000Z0700` (`+0100`, `Z`).
fn parse_timestamp(s: &str) -> Option<Timestamp> {
    if let Some(t) = Timestamp::parse(s) {
        return Some(t);
    }
    // `...+0100` → `...+01:00`.
    let b = s.as_bytes();
    if b.len() > 5
        && matches!(b[b.len() - 5], b'+' | b'-')
        && b[b.len() - 4..].iter().all(u8::is_ascii_digit)
    {
        let (head, off) = s.split_at(s.len() - 2);
        return Timestamp::parse(&format!("{head}:{off}"));
    }
    None
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
