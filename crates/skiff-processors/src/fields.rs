//! Processors that add, remove, keep and rename fields, and `drop_event`.

use std::sync::Arc;

use serde::Deserialize;
use skiff_config::{ConfigErrors, Node};
use skiff_event::{Event, Map, Value};
use skiff_pipeline::{BuildContext, Processor, Verdict};

use crate::{error_at, plugin, set_error};

plugin!(ADD_FIELDS, "add_fields", build_add_fields);
plugin!(ADD_TAGS, "add_tags", build_add_tags);
plugin!(DROP_FIELDS, "drop_fields", build_drop_fields);
plugin!(INCLUDE_FIELDS, "include_fields", build_include_fields);
plugin!(DROP_EVENT, "drop_event", build_drop_event);
plugin!(RENAME, "rename", build_rename);

/// A list of strings; a single string is a list of one (as go-ucfg reads it).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub(crate) fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

fn join(target: &str, key: &str) -> String {
    if target.is_empty() {
        key.to_owned()
    } else {
        format!("{target}.{key}")
    }
}

/// `{a: {b: 1}, c: [2]}` as `[("a.b", 1), ("c", [2])]`.
pub(crate) fn leaves(prefix: &str, map: &Map, out: &mut Vec<(String, Value)>) {
    for (k, v) in map {
        let path = join(prefix, k);
        match v {
            Value::Object(m) if !m.is_empty() => leaves(&path, m, out),
            v => out.push((path, v.clone())),
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// `add_fields`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddFieldsConfig {
    /// `target`: where to put the fields. Default `fields`; `""` puts them at the root.
    #[serde(default)]
    target: Option<String>,
    /// `fields`: the fields to add. Required.
    fields: Map,
}

struct AddFields {
    /// Full paths and values, set one by one so that objects merge with what is there.
    leaves: Vec<(String, Value)>,
}

fn build_add_fields(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    let cfg: AddFieldsConfig = node.deserialize()?;
    let target = cfg.target.unwrap_or_else(|| "fields".into());
    let mut out = Vec::new();
    leaves(&target, &cfg.fields, &mut out);
    Ok(Box::new(AddFields { leaves: out }))
}

impl Processor for AddFields {
    fn process(&self, event: &mut Event) -> Verdict {
        for (path, v) in &self.leaves {
            event.insert(path, v.clone());
        }
        Verdict::Keep
    }
}

// ---------------------------------------------------------------------------------------------

/// `add_tags`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddTagsConfig {
    /// `tags`: tags to append. Required.
    tags: OneOrMany,
    /// `target`: the list to append to. Default `tags`.
    #[serde(default)]
    target: Option<String>,
}

struct AddTags {
    tags: Vec<Value>,
    target: String,
}

fn build_add_tags(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    let cfg: AddTagsConfig = node.deserialize()?;
    let target = cfg.target.unwrap_or_else(|| "tags".into());
    if target.is_empty() {
        return Err(error_at(
            node.get("target").unwrap_or(node),
            "`target` must name a field, like `tags`",
        )
        .into());
    }
    Ok(Box::new(AddTags {
        tags: cfg.tags.into_vec().into_iter().map(Value::String).collect(),
        target,
    }))
}

impl Processor for AddTags {
    fn process(&self, event: &mut Event) -> Verdict {
        let list = match event.get(&self.target).map(|f| f.to_value()) {
            None | Some(Value::Null) => self.tags.clone(),
            Some(Value::Array(mut a)) => {
                a.extend(self.tags.iter().cloned());
                a
            }
            Some(_) => {
                set_error(
                    event,
                    format!("add_tags: `{}` is not a list of tags", self.target),
                );
                return Verdict::Keep;
            }
        };
        event.insert(&self.target, Value::Array(list));
        Verdict::Keep
    }
}

// ---------------------------------------------------------------------------------------------

/// `drop_fields`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DropFieldsConfig {
    /// `fields`: the fields to remove. Required. `@timestamp` cannot be removed.
    fields: OneOrMany,
    /// `ignore_missing`: no error for a field that is not there. Default false.
    #[serde(default)]
    ignore_missing: bool,
}

struct DropFields {
    fields: Vec<String>,
    ignore_missing: bool,
}

fn build_drop_fields(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    let cfg: DropFieldsConfig = node.deserialize()?;
    let fields = cfg.fields.into_vec();
    if let Some(re) = fields
        .iter()
        .find(|f| f.len() > 1 && f.starts_with('/') && f.ends_with('/'))
    {
        return Err(error_at(
            node.get("fields").unwrap_or(node),
            format!("regular expressions in drop_fields (`{re}`) are not supported by skiff yet; list the fields by name"),
        )
        .into());
    }
    Ok(Box::new(DropFields {
        fields: fields.into_iter().filter(|f| f != "@timestamp").collect(),
        ignore_missing: cfg.ignore_missing,
    }))
}

impl Processor for DropFields {
    fn process(&self, event: &mut Event) -> Verdict {
        let mut missing: Vec<&str> = Vec::new();
        for f in &self.fields {
            let mut found = event.remove(f).is_some();
            if f == "log" && event.offset.take().is_some() {
                found = true;
            }
            if !found {
                missing.push(f);
            }
        }
        if !missing.is_empty() && !self.ignore_missing {
            set_error(
                event,
                format!(
                    "drop_fields: no field {} (set ignore_missing: true if that is expected)",
                    missing.join(", ")
                ),
            );
        }
        Verdict::Keep
    }
}

// ---------------------------------------------------------------------------------------------

/// `include_fields`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IncludeFieldsConfig {
    /// `fields`: the fields to keep (with everything under them). `@timestamp` and `@metadata`
    /// are always kept. Required.
    fields: OneOrMany,
}

struct IncludeFields {
    fields: Vec<String>,
}

fn build_include_fields(
    node: &Node,
    _ctx: &BuildContext,
) -> Result<Box<dyn Processor>, ConfigErrors> {
    let cfg: IncludeFieldsConfig = node.deserialize()?;
    Ok(Box::new(IncludeFields {
        fields: cfg.fields.into_vec(),
    }))
}

fn pluck<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let obj = v.as_object()?;
    if let Some(x) = obj.get(path) {
        return Some(x);
    }
    let mut cur = v;
    for p in path.split('.') {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

impl Processor for IncludeFields {
    fn process(&self, event: &mut Event) -> Verdict {
        // The merged view (slots + own + shared), from which the kept fields are copied; the
        // shared part is replaced by this event's own copy of only its `@metadata`.
        let merged = event.to_value(false);
        let source_meta = event.shared.get("@metadata").cloned();
        event.message = None;
        event.offset = None;
        event.fields = Map::new();
        let mut shared = Map::new();
        if let Some(m) = source_meta {
            shared.insert("@metadata".into(), m);
        }
        event.shared = Arc::new(shared);
        for f in &self.fields {
            if let Some(v) = pluck(&merged, f) {
                event.insert(f, v.clone());
            }
        }
        Verdict::Keep
    }
}

// ---------------------------------------------------------------------------------------------

/// `drop_event` (with `when`; without one it drops every event).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DropEventConfig {}

struct DropEvent;

fn build_drop_event(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    let _: DropEventConfig = node.deserialize()?;
    Ok(Box::new(DropEvent))
}

impl Processor for DropEvent {
    fn process(&self, _event: &mut Event) -> Verdict {
        Verdict::Drop
    }
}

// ---------------------------------------------------------------------------------------------

/// `rename`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RenameConfig {
    /// `fields`: `{from, to}` pairs, applied in order. Required.
    fields: Vec<FromTo>,
    /// `ignore_missing`: no error when `from` is not there. Default false.
    #[serde(default)]
    ignore_missing: bool,
    /// `fail_on_error`: on an error, undo this processor's renames. Default true.
    #[serde(default = "yes")]
    fail_on_error: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FromTo {
    from: String,
    to: String,
}

fn yes() -> bool {
    true
}

struct Rename {
    fields: Vec<FromTo>,
    ignore_missing: bool,
    fail_on_error: bool,
}

fn build_rename(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    let cfg: RenameConfig = node.deserialize()?;
    Ok(Box::new(Rename {
        fields: cfg.fields,
        ignore_missing: cfg.ignore_missing,
        fail_on_error: cfg.fail_on_error,
    }))
}

/// The parts of an event a processor may change, to undo it.
pub(crate) struct Backup {
    message: Option<String>,
    offset: Option<u64>,
    fields: Map,
    meta: Map,
    shared: Arc<Map>,
}

impl Backup {
    pub(crate) fn of(e: &Event) -> Self {
        Backup {
            message: e.message.clone(),
            offset: e.offset,
            fields: e.fields.clone(),
            meta: e.meta.clone(),
            shared: e.shared.clone(),
        }
    }

    pub(crate) fn restore(self, e: &mut Event) {
        e.message = self.message;
        e.offset = self.offset;
        e.fields = self.fields;
        e.meta = self.meta;
        e.shared = self.shared;
    }
}

impl Processor for Rename {
    fn process(&self, event: &mut Event) -> Verdict {
        let backup = (self.fail_on_error && self.fields.len() > 1).then(|| Backup::of(event));
        for ft in &self.fields {
            let problem = if ft.from == ft.to {
                None
            } else if event.get(&ft.from).is_none() {
                (!self.ignore_missing).then(|| format!("rename: no field `{}`", ft.from))
            } else if event.get(&ft.to).is_some() {
                Some(format!(
                    "rename: cannot rename `{}` to `{}`: the target field exists",
                    ft.from, ft.to
                ))
            } else {
                if let Some(v) = event.remove(&ft.from) {
                    event.insert(&ft.to, v);
                }
                None
            };
            if let Some(msg) = problem {
                if self.fail_on_error {
                    if let Some(b) = backup {
                        b.restore(event);
                    }
                    set_error(event, msg);
                    return Verdict::Keep;
                }
                set_error(event, msg);
            }
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::*;
    use serde_json::json;

    /// `(processors yaml, message, expected fields of the output as JSON pointer -> value)`.
    /// A `null` value means the field must be absent.
    fn check(yaml: &str, msg: &str, want: &[(&str, serde_json::Value)]) {
        let p = build(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
        let ev = run(&p, event(msg)).unwrap_or_else(|| panic!("{yaml}: dropped"));
        let v = json(&ev);
        for (ptr, w) in want {
            let got = v.pointer(ptr).cloned().unwrap_or(serde_json::Value::Null);
            assert_eq!(&got, w, "{yaml}: {ptr} in {v}");
        }
    }

    #[test]
    fn add_fields_table() {
        let cases: &[(&str, &[(&str, serde_json::Value)])] = &[
            (
                "processors: [{add_fields: {fields: {team: ops, n: 1}}}]",
                &[
                    ("/fields/team", json!("ops")),
                    ("/fields/n", json!(1)),
                    ("/fields/env", json!("prod")),
                ],
            ),
            (
                "processors: [{add_fields: {target: project, fields: {name: p, id: '574734885120952459'}}}]",
                &[
                    ("/project/name", json!("p")),
                    ("/project/id", json!("574734885120952459")),
                ],
            ),
            (
                "processors: [{add_fields: {target: '', fields: {host.ip: 10.0.0.1, service.name: api}}}]",
                &[
                    ("/host/ip", json!("10.0.0.1")),
                    ("/host/name", json!("web-1")),
                    ("/service/name", json!("api")),
                ],
            ),
            (
                "processors: [{add_fields: {target: '', fields: {host: {name: other}}}}]",
                &[("/host/name", json!("other"))],
            ),
        ];
        for (yaml, want) in cases {
            check(yaml, "m", want);
        }
    }

    #[test]
    fn add_fields_copies_shared_fields_on_write() {
        let p = build("processors: [{add_fields: {target: '', fields: {host.name: changed}}}, {drop_fields: {fields: [fields.env, input]}}]")
            .unwrap();
        let a = event("a");
        let b = skiff_event::Event::new(a.shared.clone(), "b".into());
        let a = run(&p, a).unwrap();
        assert_eq!(json(&a)["host"]["name"], "changed");
        assert!(json(&a).get("input").is_none());
        // The other event of the same source still sees the original shared fields.
        let vb = json(&b);
        assert_eq!(vb["host"]["name"], "web-1");
        assert_eq!(vb["fields"]["env"], "prod");
        assert_eq!(vb["input"]["type"], "filestream");
    }

    #[test]
    fn add_tags_table() {
        check(
            "processors: [{add_tags: {tags: [a, b]}}]",
            "m",
            &[("/tags", json!(["t1", "a", "b"]))],
        );
        check(
            "processors: [{add_tags: {tags: x, target: labels.t}}]",
            "m",
            &[("/labels/t", json!(["x"]))],
        );
        check(
            "processors: [{add_tags: {tags: x, target: message}}]",
            "m",
            &[
                (
                    "/error/message",
                    json!("add_tags: `message` is not a list of tags"),
                ),
                ("/message", json!("m")),
            ],
        );
    }

    #[test]
    fn drop_fields_table() {
        check(
            "processors: [{drop_fields: {fields: [host.name, log, message, '@timestamp']}}]",
            "m",
            &[
                ("/host/name", json!(null)),
                ("/log", json!(null)),
                ("/message", json!(null)),
                ("/input/type", json!("filestream")),
            ],
        );
        let p = build("processors: [{drop_fields: {fields: [a]}}]").unwrap();
        assert!(json(&run(&p, event("m")).unwrap())["@timestamp"].is_string());
        check(
            "processors: [{drop_fields: {fields: [nope, fields.env]}}]",
            "m",
            &[
                (
                    "/error/message",
                    json!(
                        "drop_fields: no field nope (set ignore_missing: true if that is expected)"
                    ),
                ),
                ("/fields", json!({})),
            ],
        );
        check(
            "processors: [{drop_fields: {fields: [nope], ignore_missing: true}}]",
            "m",
            &[("/error", json!(null))],
        );
        assert!(build("processors: [{drop_fields: {fields: ['/^x/']}}]").is_err());
    }

    #[test]
    fn include_fields_keeps_only_what_is_listed() {
        let p =
            build("processors: [{include_fields: {fields: [message, log.file, fields]}}]").unwrap();
        let ev = run(&p, event("m")).unwrap();
        let v = json(&ev);
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort();
        assert_eq!(keys, ["@timestamp", "fields", "log", "message"]);
        assert_eq!(v["log"], json!({"file": {"path": "/var/log/a.log"}}));
        assert_eq!(ev.get("@metadata.beat").unwrap().as_str(), Some("filebeat"));
    }

    #[test]
    fn drop_event_with_and_without_when() {
        let p = build("processors: [{drop_event.when.regexp.message: '^DEBUG'}]").unwrap();
        assert!(run(&p, event("DEBUG x")).is_none());
        assert!(run(&p, event("INFO x")).is_some());
        let p = build("processors: [{drop_event: ~}]").unwrap();
        assert!(run(&p, event("x")).is_none());
    }

    #[test]
    fn rename_table() {
        check(
            "processors: [{rename: {fields: [{from: message, to: event.original}, {from: host.name, to: host.hostname}]}}]",
            "m",
            &[
                ("/event/original", json!("m")),
                ("/message", json!(null)),
                ("/host/hostname", json!("web-1")),
                ("/host/name", json!(null)),
            ],
        );
        // A missing field with fail_on_error (default) undoes the earlier renames.
        check(
            "processors: [{rename: {fields: [{from: message, to: msg}, {from: nope, to: x}]}}]",
            "m",
            &[
                ("/message", json!("m")),
                ("/msg", json!(null)),
                ("/error/message", json!("rename: no field `nope`")),
            ],
        );
        check(
            "processors: [{rename: {fields: [{from: message, to: msg}, {from: nope, to: x}], fail_on_error: false}}]",
            "m",
            &[
                ("/msg", json!("m")),
                ("/error/message", json!("rename: no field `nope`")),
            ],
        );
        check(
            "processors: [{rename: {fields: [{from: nope, to: x}, {from: message, to: msg}], ignore_missing: true}}]",
            "m",
            &[("/msg", json!("m")), ("/error", json!(null))],
        );
        check(
            "processors: [{rename: {fields: [{from: message, to: host.name}]}}]",
            "m",
            &[
                ("/message", json!("m")),
                ("/host/name", json!("web-1")),
                (
                    "/error/message",
                    json!(
                        "rename: cannot rename `message` to `host.name`: the target field exists"
                    ),
                ),
            ],
        );
    }
}
