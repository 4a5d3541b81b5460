//! Processors that build or take apart lists and label maps: `append`, `extract_array` and
//! `add_labels` (libbeat's).

use serde::Deserialize;
use skiff_config::{ConfigErrors, Node};
use skiff_event::{Event, Map, Value};
use skiff_pipeline::{BuildContext, Processor, Verdict};

use crate::fields::{Backup, OneOrMany, leaves};
use crate::{error_at, plugin, set_error, yes};

plugin!(APPEND, "append", build_append);
plugin!(EXTRACT_ARRAY, "extract_array", build_extract);
plugin!(ADD_LABELS, "add_labels", build_labels);

// ---------------------------------------------------------------------------------------------

/// `append`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppendConfig {
    /// `target_field`: the list to append to (a scalar there becomes a list). Required.
    target_field: String,
    /// `fields`: fields whose values are appended (a list's elements one by one). Default none.
    #[serde(default)]
    fields: Option<OneOrMany>,
    /// `values`: constant values to append. Default none.
    #[serde(default)]
    values: Vec<Value>,
    /// `ignore_empty_values`: skip `""` and null. Default false.
    #[serde(default)]
    ignore_empty_values: bool,
    /// `fail_on_error`: on an error, undo. Default true.
    #[serde(default = "yes")]
    fail_on_error: bool,
    /// `allow_duplicate`: append values already in the list. Default true.
    #[serde(default = "yes")]
    allow_duplicate: bool,
    /// `ignore_missing`: no error for a missing field of `fields`. Default false.
    #[serde(default)]
    ignore_missing: bool,
}

struct Append {
    cfg: AppendConfig,
    fields: Vec<String>,
}

fn build_append(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    let mut cfg: AppendConfig = node.deserialize()?;
    let fields = cfg
        .fields
        .take()
        .map(OneOrMany::into_vec)
        .unwrap_or_default();
    if fields.is_empty() && cfg.values.is_empty() {
        return Err(error_at(node, "`append` needs `fields` or `values` to append").into());
    }
    Ok(Box::new(Append { cfg, fields }))
}

impl Processor for Append {
    fn process(&self, event: &mut Event) -> Verdict {
        let mut add: Vec<Value> = Vec::new();
        for f in &self.fields {
            match event.get(f).map(|v| v.to_value()) {
                Some(Value::Array(a)) => add.extend(a),
                Some(v) => add.push(v),
                None if self.cfg.ignore_missing => {}
                None => {
                    set_error(event, format!("append: could not fetch value for key: {f}"));
                    if self.cfg.fail_on_error {
                        return Verdict::Keep;
                    }
                }
            }
        }
        add.extend(self.cfg.values.iter().cloned());
        let mut list = match event.get(&self.cfg.target_field).map(|v| v.to_value()) {
            None => Vec::new(),
            Some(Value::Array(a)) => a,
            Some(v) => vec![v],
        };
        for v in add {
            let empty = matches!(&v, Value::Null) || v.as_str() == Some("");
            if (self.cfg.ignore_empty_values && empty)
                || (!self.cfg.allow_duplicate && list.contains(&v))
            {
                continue;
            }
            list.push(v);
        }
        event.remove(&self.cfg.target_field);
        event.insert(&self.cfg.target_field, Value::Array(list));
        Verdict::Keep
    }
}

// ---------------------------------------------------------------------------------------------

/// `extract_array`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtractConfig {
    /// `field`: the list. Required.
    field: String,
    /// `mappings`: target field -> index in the list. Required.
    mappings: Map,
    /// `ignore_missing`: no error when `field` is missing. Default false.
    #[serde(default)]
    ignore_missing: bool,
    /// `overwrite_keys`: replace targets that exist. Default false.
    #[serde(default)]
    overwrite_keys: bool,
    /// `fail_on_error`: on an error, undo. Default true.
    #[serde(default = "yes")]
    fail_on_error: bool,
    /// `omit_empty`: skip `""`, null, and empty lists and objects. Default false.
    #[serde(default)]
    omit_empty: bool,
}

struct Extract {
    cfg: ExtractConfig,
    mappings: Vec<(String, usize)>,
}

fn build_extract(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    let cfg: ExtractConfig = node.deserialize()?;
    let mut flat = Vec::new();
    leaves("", &cfg.mappings, &mut flat);
    let mut mappings = Vec::new();
    for (k, v) in flat {
        match v.as_u64().and_then(|n| usize::try_from(n).ok()) {
            Some(i) => mappings.push((k, i)),
            None => {
                return Err(error_at(
                    node.get("mappings").unwrap_or(node),
                    format!("mapping `{k}` needs an index (0, 1, ...), found {v}"),
                )
                .into());
            }
        }
    }
    if mappings.is_empty() {
        return Err(error_at(
            node,
            "`mappings` maps target fields to list indexes, like `{source.ip: 0}`",
        )
        .into());
    }
    Ok(Box::new(Extract { cfg, mappings }))
}

impl Processor for Extract {
    fn process(&self, event: &mut Event) -> Verdict {
        let list = match event.get(&self.cfg.field).map(|v| v.to_value()) {
            None if self.cfg.ignore_missing => return Verdict::Keep,
            None => {
                set_error(
                    event,
                    format!(
                        "extract_array: could not fetch value for key: {}",
                        self.cfg.field
                    ),
                );
                return Verdict::Keep;
            }
            Some(Value::Array(a)) => a,
            Some(_) => {
                set_error(
                    event,
                    format!("extract_array: field {} is not an array", self.cfg.field),
                );
                return Verdict::Keep;
            }
        };
        let backup = self.cfg.fail_on_error.then(|| Backup::of(event));
        for (target, idx) in &self.mappings {
            let problem = match list.get(*idx) {
                None => Some(format!(
                    "index {idx} exceeds length of {} for field {}",
                    list.len(),
                    self.cfg.field
                )),
                Some(v) => {
                    let empty = match v {
                        Value::Null => true,
                        Value::String(s) => s.is_empty(),
                        Value::Array(a) => a.is_empty(),
                        Value::Object(m) => m.is_empty(),
                        _ => false,
                    };
                    if self.cfg.omit_empty && empty {
                        None
                    } else if !self.cfg.overwrite_keys && event.get(target).is_some() {
                        Some(format!(
                            "target field {target} already has a value. Set the overwrite_keys flag or drop/rename the field first"
                        ))
                    } else {
                        event.remove(target);
                        event.insert(target, v.clone());
                        None
                    }
                }
            };
            if let Some(msg) = problem {
                if let Some(b) = backup {
                    b.restore(event);
                    set_error(event, format!("extract_array: {msg}"));
                    return Verdict::Keep;
                }
                set_error(event, format!("extract_array: {msg}"));
            }
        }
        Verdict::Keep
    }
}

// ---------------------------------------------------------------------------------------------

/// `add_labels`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelsConfig {
    /// `labels`: the labels; nested keys and list items are flattened with `.`. Required.
    labels: Map,
}

struct AddLabels {
    labels: Vec<(String, Value)>,
}

/// Flattens objects and lists into `a.b`, `list.0` keys.
fn flatten_all(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_owned()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        Value::Object(m) if !m.is_empty() => {
            m.iter().for_each(|(k, x)| flatten_all(&join(k), x, out))
        }
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| flatten_all(&join(&i.to_string()), x, out)),
        other => out.push((prefix.to_owned(), other.clone())),
    }
}

fn build_labels(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    let cfg: LabelsConfig = node.deserialize()?;
    let mut labels = Vec::new();
    flatten_all("", &Value::Object(cfg.labels), &mut labels);
    Ok(Box::new(AddLabels { labels }))
}

impl Processor for AddLabels {
    fn process(&self, event: &mut Event) -> Verdict {
        let mut map = match event.get("labels").map(|v| v.to_value()) {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        for (k, v) in &self.labels {
            map.insert(k.clone(), v.clone());
        }
        event.remove("labels");
        event.insert("labels", Value::Object(map));
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::testing::*;
    use serde_json::json;

    /// Filebeat's documentation example of `append` (after `decode_json_fields`).
    #[test]
    fn append_doc_example() {
        let yaml = "processors:\n  - decode_json_fields:\n      fields: message\n      target: \"\"\n  - append:\n      target_field: target-field\n      fields:\n        - concrete.field\n        - array.one\n      values:\n        - static-value\n        - \"\"\n      ignore_missing: true\n      fail_on_error: true\n      ignore_empty_values: true\n";
        let p = build(yaml).unwrap();
        let v = json(
            &run(
                &p,
                event(r#"{"concrete": {"field": "val0"}, "array": {"one": ["val1", "val2"]}}"#),
            )
            .unwrap(),
        );
        assert_eq!(
            v["target-field"],
            json!(["val0", "val1", "val2", "static-value"])
        );
        // A scalar target becomes a list; duplicates.
        let p = build("processors: [{append: {target_field: message, values: [m, x, x], allow_duplicate: false}}]").unwrap();
        assert_eq!(
            json(&run(&p, event("m")).unwrap())["message"],
            json!(["m", "x"])
        );
        let p = build("processors: [{append: {target_field: t, fields: [nope]}}]").unwrap();
        let v = json(&run(&p, event("m")).unwrap());
        assert_eq!(
            v["error"]["message"],
            "append: could not fetch value for key: nope"
        );
        assert!(v.get("t").is_none());
        assert!(build("processors: [{append: {target_field: t}}]").is_err());
    }

    /// Filebeat's documentation example of `extract_array`.
    #[test]
    fn extract_array_doc_example() {
        let yaml = "processors:\n  - extract_array:\n      field: my_array\n      mappings:\n        source.ip: 0\n        destination.ip: 1\n        network.transport: 2\n";
        let p = build(yaml).unwrap();
        let mut ev = event("m");
        ev.insert("my_array", json!(["10.0.0.1", "10.0.0.2", "tcp"]));
        let v = json(&run(&p, ev).unwrap());
        assert_eq!(
            (
                v["source"]["ip"].clone(),
                v["destination"]["ip"].clone(),
                v["network"]["transport"].clone()
            ),
            (json!("10.0.0.1"), json!("10.0.0.2"), json!("tcp"))
        );
        // Too short: undone and an error.
        let mut ev = event("m");
        ev.insert("my_array", json!(["10.0.0.1"]));
        let v = json(&run(&p, ev).unwrap());
        assert!(v.get("source").is_none());
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("index 1 exceeds length of 1"),
            "{v}"
        );
        // omit_empty, overwrite_keys.
        let p = build("processors: [{extract_array: {field: a, omit_empty: true, mappings: {x: 0, host.name: 1}}}]").unwrap();
        let mut ev = event("m");
        ev.insert("a", json!(["", "h"]));
        let v = json(&run(&p, ev).unwrap());
        assert!(v.get("x").is_none());
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("host.name already has a value"),
            "{v}"
        );
        let p = build("processors: [{extract_array: {field: a, overwrite_keys: true, mappings: {host.name: 1}}}]").unwrap();
        let mut ev = event("m");
        ev.insert("a", json!(["", "h"]));
        assert_eq!(json(&run(&p, ev).unwrap())["host"]["name"], "h");
        assert!(build("processors: [{extract_array: {field: a, mappings: {x: a}}}]").is_err());
    }

    /// Filebeat's documentation example of `add_labels`.
    #[test]
    fn add_labels_doc_example() {
        let yaml = "processors:\n  - add_labels:\n      labels:\n        number: 1\n        with.dots: test\n        nested:\n          with.dots: nested\n        array:\n          - do\n          - re\n          - with.field: mi\n";
        let p = build(yaml).unwrap();
        let v = json(&run(&p, event("m")).unwrap());
        assert_eq!(
            v["labels"],
            json!({"number": 1, "with.dots": "test", "nested.with.dots": "nested", "array.0": "do", "array.1": "re", "array.2.with.field": "mi"})
        );
    }
}
