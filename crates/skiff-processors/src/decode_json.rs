//! `decode_json_fields`: parses JSON held in string fields.
//!
//! As libbeat's: each listed field that holds a string of JSON is replaced by the decoded value
//! (or the value goes under `target`; `target: ""` merges an object into the event's root,
//! keeping existing keys unless `overwrite_keys`). `max_depth` (default 1) decodes JSON strings
//! found inside the decoded value too, down to that depth (`process_array` also looks inside
//! lists). A field that is missing or not a string is left alone; a string that is not JSON is
//! left alone too, and with `add_error_key` the event gets `error.message`. `document_id` moves a
//! key of the decoded object to `@metadata._id`.
//!
//! Memory: the string is bounded by the input's `max_bytes`, and nesting by `serde_json`'s
//! recursion limit (128), so hostile JSON cannot make this allocate without bound.

use serde::Deserialize;
use skiff_config::{ConfigErrors, Node};
use skiff_event::{Event, Value};
use skiff_pipeline::{BuildContext, Processor, Verdict};

use crate::{error_at, plugin, set_error};

plugin!(DECODE_JSON_FIELDS, "decode_json_fields", build);

/// `decode_json_fields`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `fields`: the string fields to decode (one name is a list of one). Required.
    fields: crate::fields::OneOrMany,
    /// `target`: where to put the result. Default: in place of the field; `""`: the root.
    #[serde(default)]
    target: Option<String>,
    /// `overwrite_keys`: with `target: ""`, replace existing keys. Default false.
    #[serde(default)]
    overwrite_keys: bool,
    /// `add_error_key`: record decoding errors in `error.message`. Default false.
    #[serde(default)]
    add_error_key: bool,
    /// `max_depth`: how deep to decode JSON strings inside JSON. Default 1.
    #[serde(default = "one")]
    max_depth: usize,
    /// `process_array`: decode JSON strings inside lists too. Default false.
    #[serde(default)]
    process_array: bool,
    /// `document_id`: a key of the decoded object to use as the document id. Default none.
    #[serde(default)]
    document_id: Option<String>,
}

fn one() -> usize {
    1
}

struct DecodeJson {
    cfg: Config,
    fields: Vec<String>,
}

fn build(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    let mut cfg: Config = node.deserialize()?;
    if cfg.max_depth == 0 || cfg.max_depth > 64 {
        return Err(error_at(
            node.get("max_depth").unwrap_or(node),
            format!(
                "max_depth {} is out of range: use 1 to 64 (default 1)",
                cfg.max_depth
            ),
        )
        .into());
    }
    let fields =
        std::mem::replace(&mut cfg.fields, crate::fields::OneOrMany::Many(vec![])).into_vec();
    Ok(Box::new(DecodeJson { cfg, fields }))
}

impl DecodeJson {
    /// Decodes JSON strings nested in `v`, `depth` more levels.
    fn decode_nested(&self, v: &mut Value, depth: usize) {
        if depth == 0 {
            return;
        }
        match v {
            Value::Object(m) => {
                for x in m.values_mut() {
                    self.decode_nested_value(x, depth);
                }
            }
            Value::Array(a) if self.cfg.process_array => {
                for x in a.iter_mut() {
                    self.decode_nested_value(x, depth);
                }
            }
            _ => {}
        }
    }

    fn decode_nested_value(&self, x: &mut Value, depth: usize) {
        if let Value::String(s) = x {
            let t = s.trim_start();
            if (t.starts_with('{') || t.starts_with('['))
                && let Ok(mut d) = serde_json::from_str::<Value>(s)
            {
                self.decode_nested(&mut d, depth - 1);
                *x = d;
            }
        } else {
            self.decode_nested(x, depth);
        }
    }
}

impl Processor for DecodeJson {
    fn process(&self, event: &mut Event) -> Verdict {
        for field in &self.fields {
            let decoded = match event.get(field).and_then(|f| f.as_str().map(str::to_owned)) {
                None => continue,
                Some(text) => serde_json::from_str::<Value>(&text),
            };
            let mut value = match decoded {
                Ok(v) => v,
                Err(e) => {
                    if self.cfg.add_error_key {
                        set_error(
                            event,
                            format!("decode_json_fields: `{field}` is not JSON: {e}"),
                        );
                    }
                    continue;
                }
            };
            self.decode_nested(&mut value, self.cfg.max_depth - 1);
            if let (Some(key), Value::Object(m)) = (&self.cfg.document_id, &mut value)
                && let Some(id) = m.remove(key)
            {
                event.insert("@metadata._id", id);
            }
            match self.cfg.target.as_deref() {
                None => {
                    event.remove(field);
                    event.insert(field, value);
                }
                Some("") => match value {
                    Value::Object(m) => {
                        for (k, v) in m {
                            if k == "@metadata" {
                                if let Value::Object(meta) = v {
                                    for (mk, mv) in meta {
                                        event.meta.insert(mk, mv);
                                    }
                                }
                                continue;
                            }
                            if self.cfg.overwrite_keys || event.get(&k).is_none() {
                                if self.cfg.overwrite_keys {
                                    event.remove(&k);
                                }
                                event.insert(&k, v);
                            }
                        }
                    }
                    _ => {
                        if self.cfg.add_error_key {
                            set_error(
                                event,
                                format!(
                                    "decode_json_fields: `{field}` is not a JSON object and cannot be merged into the root"
                                ),
                            );
                        }
                    }
                },
                Some(t) => {
                    event.remove(t);
                    event.insert(t, value);
                }
            }
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use serde_json::json;

    fn decoded(yaml: &str, msg: &str) -> serde_json::Value {
        let p = build(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
        json(&run(&p, event(msg)).unwrap())
    }

    #[test]
    fn table() {
        let doc =
            r#"{"a":1,"host":{"name":"inner"},"nested":"{\"x\":2}","@metadata":{"pipeline":"p"}}"#;
        // In place.
        let v = decoded(
            "processors: [{decode_json_fields: {fields: [message]}}]",
            doc,
        );
        assert_eq!(v["message"]["a"], 1);
        assert_eq!(v["message"]["nested"], "{\"x\":2}");
        // Deeper.
        let v = decoded(
            "processors: [{decode_json_fields: {fields: [message], max_depth: 2}}]",
            doc,
        );
        assert_eq!(v["message"]["nested"], json!({"x": 2}));
        // Under a target.
        let v = decoded(
            "processors: [{decode_json_fields: {fields: [message], target: json}}]",
            doc,
        );
        assert_eq!(v["json"]["a"], 1);
        assert_eq!(v["message"], doc);
        // At the root, keeping existing keys...
        let v = decoded(
            "processors: [{decode_json_fields: {fields: [message], target: ''}}]",
            doc,
        );
        assert_eq!(
            (v["a"].clone(), v["host"]["name"].clone()),
            (json!(1), json!("web-1"))
        );
        // ...or overwriting them.
        let v = decoded(
            "processors: [{decode_json_fields: {fields: [message], target: '', overwrite_keys: true}}]",
            doc,
        );
        assert_eq!(v["host"]["name"], "inner");
        assert!(v.get("@metadata").is_none());
        // Not JSON: unchanged, with an error only when asked.
        let v = decoded(
            "processors: [{decode_json_fields: {fields: [message]}}]",
            "{nope",
        );
        assert_eq!(v["message"], "{nope");
        assert!(v.get("error").is_none());
        let v = decoded(
            "processors: [{decode_json_fields: {fields: [message], add_error_key: true}}]",
            "{nope",
        );
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("is not JSON"),
            "{v}"
        );
        // Missing or non-string fields are skipped.
        let v = decoded(
            "processors: [{decode_json_fields: {fields: [nope, log.offset]}}]",
            "x",
        );
        assert_eq!(v["log"]["offset"], 7);
        // document_id.
        let p = build(
            "processors: [{decode_json_fields: {fields: [message], target: j, document_id: id}}]",
        )
        .unwrap();
        let ev = run(&p, event(r#"{"id":"abc","b":1}"#)).unwrap();
        assert_eq!(ev.get("@metadata._id").unwrap().as_str(), Some("abc"));
        assert!(json(&ev)["j"].get("id").is_none());
    }

    #[test]
    fn metadata_from_json_goes_to_metadata() {
        let p =
            build("processors: [{decode_json_fields: {fields: [message], target: ''}}]").unwrap();
        let ev = run(&p, event(r#"{"@metadata":{"pipeline":"p"}}"#)).unwrap();
        assert_eq!(ev.get("@metadata.pipeline").unwrap().as_str(), Some("p"));
    }
}
