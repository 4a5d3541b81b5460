//! Beats processors for skiff, and the conditions they (and output routing rules) use.
//!
//! Processors run in the pipeline between the inputs and the queue (input -> **processors** ->
//! queue -> output), in the input's own task: first an input's own `processors`, then the global
//! ones. They are configured exactly as in a `filebeat.yml`: a list of one-key maps, each with an
//! optional `when` [condition](condition):
//!
//! ```yaml
//! processors:
//!   - add_host_metadata:
//!       when.not.contains.tags: forwarded
//!   - drop_fields: {fields: [agent.ephemeral_id], ignore_missing: true}
//!   - drop_event.when.regexp.message: '^DEBUG'
//! ```
//!
//! What is here (every option of each is in `docs/processors.md`):
//! - parsing: [`dissect`], [`timestamp`] (Go layouts, IANA zones), `decode_csv_fields`
//!   ([`decode_csv`]), `decode_json_fields` ([`decode_json`]), `decode_base64_field`,
//!   `decompress_gzip_field` and `decode_duration` ([`decode`]), `urldecode` ([`strings`]),
//!   [`decode_xml`], [`decode_cef`], [`syslog`];
//! - changing fields: `add_fields`, `add_tags`, `drop_fields`, `include_fields`, `drop_event`,
//!   `rename` ([`fields`]), `copy_fields`, `move_fields` ([`copy_move`]), [`convert`],
//!   `truncate_fields`, `replace` ([`strings`]), `append`, `extract_array`, `add_labels`
//!   ([`arrays`]);
//! - lookups: [`dns`] (reverse and forward, cached, on a resolver thread of its own);
//! - enriching: `fingerprint`, `add_id` ([`ids`]), [`community_id`], [`registered_domain`],
//!   `add_network_direction` ([`network_direction`], ranges in [`network`]),
//!   `add_host_metadata`, `add_locale` ([`metadata`]), `add_observer_metadata` ([`observer`]),
//!   `detect_mime_type` ([`mime`]), `add_process_metadata` ([`process_metadata`]),
//!   `add_nomad_metadata` ([`nomad`], from a Nomad agent's API);
//! - flow control: [`rate_limit`], and [`script`] (JavaScript on QuickJS, Filebeat's event API).
//!
//! `add_kubernetes_metadata` (the pod's fields, from a watch of the node's pods) is built by
//! `skiff_kubernetes::processor`, which it shares with the kubernetes autodiscover provider.
//! `add_cloud_metadata` and `add_docker_metadata` are accepted so that existing files load, but
//! do nothing yet here (one warning at start). The binary's table has the real
//! `add_docker_metadata` (it asks the Docker daemon, so it lives in skiff-autodiscover) and puts
//! it before this one ([`build_list_with`]). Not yet, refused with a clear "not supported yet":
//! the Windows-only `decode_xml_wineventlog` and `translate_sid`.
//!
//! A processor that fails on an event (a field to rename is missing, a tag target is not a
//! list) keeps the event and records why in `error.message`, as libbeat does; it never panics
//! and never drops an event by accident. Processors change only the event's own fields: fields
//! shared by every event of a source are copied on write, never changed for the others.
//!
//! The binary calls [`build_list`] for every `processors` list. [`condition::Condition`] and
//! [`select`] serve the outputs' routing rules (`indices`, `pipelines`, `topics`, `keys`), so a
//! `when` means the same thing wherever it is written.

pub mod arrays;
pub mod community_id;
pub mod condition;
pub mod convert;
pub mod copy_move;
pub mod decode;
pub mod decode_cef;
pub mod decode_csv;
pub mod decode_json;
pub mod decode_xml;
pub mod dissect;
pub mod dns;
pub mod fields;
pub mod ids;
pub mod metadata;
pub mod mime;
pub mod network;
pub mod network_direction;
pub mod nomad;
pub mod observer;
pub mod process_metadata;
pub mod rate_limit;
pub mod registered_domain;
pub mod script;
pub mod select;
pub mod strings;
pub mod syslog;
pub mod timestamp;

use std::sync::Arc;

use skiff_config::{ConfigError, ConfigErrors, Node, NodeValue};
use skiff_event::{Event, Value};
use skiff_pipeline::{BuildContext, Processor, ProcessorPlugin, Verdict};

use condition::Condition;

/// Declares a processor plugin whose build function gets the configuration with `when` removed
/// and is wrapped in the condition.
macro_rules! plugin {
    ($stat:ident, $name:literal, $build:path) => {
        #[doc = concat!("The `", $name, "` processor.")]
        pub static $stat: ::skiff_pipeline::ProcessorPlugin = ::skiff_pipeline::ProcessorPlugin {
            name: $name,
            build: |node, ctx| $crate::with_when(node, ctx, $build),
        };
    };
}
pub(crate) use plugin;

/// Every processor skiff has.
pub const ALL: &[&ProcessorPlugin] = &[
    &fields::ADD_FIELDS,
    &fields::ADD_TAGS,
    &fields::DROP_FIELDS,
    &fields::INCLUDE_FIELDS,
    &fields::DROP_EVENT,
    &fields::RENAME,
    &convert::CONVERT,
    &copy_move::COPY_FIELDS,
    &copy_move::MOVE_FIELDS,
    &strings::TRUNCATE_FIELDS,
    &strings::REPLACE,
    &strings::URLDECODE,
    &decode::DECODE_BASE64_FIELD,
    &decode::DECOMPRESS_GZIP_FIELD,
    &decode::DECODE_DURATION,
    &arrays::APPEND,
    &arrays::EXTRACT_ARRAY,
    &arrays::ADD_LABELS,
    &ids::FINGERPRINT,
    &ids::ADD_ID,
    &community_id::COMMUNITY_ID,
    &registered_domain::REGISTERED_DOMAIN,
    &rate_limit::RATE_LIMIT,
    &network_direction::ADD_NETWORK_DIRECTION,
    &observer::ADD_OBSERVER_METADATA,
    &mime::DETECT_MIME_TYPE,
    &process_metadata::ADD_PROCESS_METADATA,
    &syslog::SYSLOG,
    &decode_csv::DECODE_CSV_FIELDS,
    &decode_json::DECODE_JSON_FIELDS,
    &decode_xml::DECODE_XML,
    &decode_cef::DECODE_CEF,
    &dissect::DISSECT,
    &dns::DNS,
    &timestamp::TIMESTAMP,
    &metadata::ADD_HOST_METADATA,
    &metadata::ADD_LOCALE,
    &metadata::ADD_CLOUD_METADATA,
    &metadata::ADD_DOCKER_METADATA,
    &metadata::ADD_KUBERNETES_METADATA,
    &nomad::ADD_NOMAD_METADATA,
    &script::SCRIPT,
    &skiff_modules::processor::PLUGIN,
];

/// Beats processors skiff does not have yet: refused with a clear message rather than "unknown".
const NOT_YET: &[&str] = &["decode_xml_wineventlog", "translate_sid"];

/// Builds a `processors` list (global or an input's): looks each item's name up in [`ALL`],
/// suggests a name for a typo, builds it. `None` or an empty value is no processors. Every
/// problem in the list is reported, each with its key path and line.
pub fn build_list(
    node: Option<&Node>,
    ctx: &BuildContext,
) -> Result<Vec<Arc<dyn Processor>>, ConfigErrors> {
    build_list_with(node, ctx, &[])
}

/// [`build_list`] with processors defined outside this crate (`extra`, looked up before
/// [`ALL`]): the binary's table adds those that live in crates depending on this one
/// (`add_docker_metadata` in skiff-autodiscover).
pub fn build_list_with(
    node: Option<&Node>,
    ctx: &BuildContext,
    extra: &[&ProcessorPlugin],
) -> Result<Vec<Arc<dyn Processor>>, ConfigErrors> {
    let Some(list) = node else {
        return Ok(Vec::new());
    };
    let items = match &list.value {
        NodeValue::Null => return Ok(Vec::new()),
        NodeValue::Seq(items) => items,
        other => {
            return Err(error_at(
                list,
                format!(
                    "`processors` is a list, like `- add_fields: {{fields: {{env: prod}}}}`, found {}",
                    other.describe()
                ),
            )
            .into());
        }
    };
    let mut names: Vec<&str> = ALL.iter().map(|p| p.name).collect();
    for p in extra {
        if !names.contains(&p.name) {
            names.push(p.name);
        }
    }
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for item in items {
        let [(name, cfg)] = item.entries() else {
            errors.push(error_at(
                item,
                "each processor is a map with exactly one key, its name (e.g. `- drop_fields: {fields: [a]}`)",
            ));
            continue;
        };
        match extra.iter().chain(ALL).find(|p| p.name == name) {
            Some(p) => match (p.build)(cfg, ctx) {
                Ok(built) => out.push(Arc::from(built)),
                Err(e) => errors.extend(e),
            },
            None if NOT_YET.contains(&name.as_str()) => errors.push(error_at(
                item,
                format!(
                    "the `{name}` processor is not supported by skiff yet; remove it or do this step in an ingest pipeline"
                ),
            )),
            None => errors.push(
                error_at(
                    item,
                    format!("unknown processor `{name}`; skiff has {}", names.join(", ")),
                )
                .with_suggestion(skiff_config::suggest(name, &names)),
            ),
        }
    }
    ConfigErrors(errors).into_result()?;
    Ok(out)
}

/// Builds a processor from its configuration without `when`, and wraps it in the condition
/// when there is one. An empty value (`- add_host_metadata: ~`) is an empty map.
pub(crate) fn with_when(
    node: &Node,
    ctx: &BuildContext,
    build: skiff_pipeline::component::BuildProcessor,
) -> Result<Box<dyn Processor>, ConfigErrors> {
    let mut own = node.clone();
    if matches!(own.value, NodeValue::Null) {
        own.value = NodeValue::Map(Vec::new());
    }
    let when = own.remove("when");
    let cond = when.as_ref().map(Condition::build).transpose();
    let inner = build(&own, ctx);
    match (cond, inner) {
        (Ok(None), Ok(p)) => Ok(p),
        (Ok(Some(cond)), Ok(inner)) => Ok(Box::new(When { cond, inner })),
        (Err(mut a), Err(b)) => {
            a.0.extend(b);
            Err(a)
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

/// A processor that runs only when its condition matches.
struct When {
    cond: Condition,
    inner: Box<dyn Processor>,
}

impl Processor for When {
    fn process(&self, event: &mut Event) -> Verdict {
        if self.cond.matches(event) {
            self.inner.process(event)
        } else {
            Verdict::Keep
        }
    }
}

pub(crate) fn error_at(node: &Node, msg: impl Into<String>) -> ConfigError {
    ConfigError::new(node.path.clone(), node.mark.clone(), msg)
}

/// Records a processing failure on the event (`error.message`), keeping an earlier one: a
/// second failure turns the field into a list.
pub(crate) fn set_error(event: &mut Event, msg: String) {
    let new = Value::String(msg);
    let value = match event.get("error.message").map(|f| f.to_value()) {
        None => new,
        Some(Value::Array(mut a)) => {
            a.push(new);
            Value::Array(a)
        }
        Some(old) => Value::Array(vec![old, new]),
    };
    event.insert("error.message", value);
}

/// serde's default `true`.
pub(crate) fn yes() -> bool {
    true
}

/// Runs `step` for each item, the libbeat way: with `fail_on_error`, the first error undoes
/// every change the processor made to the event and stops; without it, errors are recorded
/// and the other items still run. Errors go to `error.message`, prefixed with `name`.
/// Returns false when an error undid the changes.
pub(crate) fn each_item<T>(
    event: &mut Event,
    name: &str,
    fail_on_error: bool,
    items: &[T],
    mut step: impl FnMut(&mut Event, &T) -> Result<(), String>,
) -> bool {
    let backup = (fail_on_error && items.len() > 1).then(|| fields::Backup::of(event));
    for item in items {
        if let Err(e) = step(event, item) {
            if fail_on_error {
                if let Some(b) = backup {
                    b.restore(event);
                }
                set_error(event, format!("{name}: {e}"));
                return false;
            }
            set_error(event, format!("{name}: {e}"));
        }
    }
    true
}

/// Appends `tag` to the list at `key` (`tags`, `log.flags`) unless it is there; a non-list
/// value there is replaced by a list holding the old value, as libbeat's `AddTagsWithKey` would
/// refuse it and lose the tag.
pub(crate) fn add_tag(event: &mut Event, key: &str, tag: &str) {
    let list = match event.get(key).map(|f| f.to_value()) {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a,
        Some(other) => vec![other],
    };
    if list.iter().any(|t| t.as_str() == Some(tag)) {
        return;
    }
    let mut list = list;
    list.push(Value::String(tag.to_owned()));
    event.insert(key, Value::Array(list));
}

#[cfg(test)]
pub(crate) mod testing {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use skiff_metrics::Registry;

    pub fn ctx() -> BuildContext {
        BuildContext::standalone("myhost", "0.1.0", &Registry::new())
    }

    /// Builds the `processors` list in `yaml`.
    pub fn build(yaml: &str) -> Result<Vec<Arc<dyn Processor>>, ConfigErrors> {
        let root = skiff_config::parse_str(yaml, Some("t.yml")).unwrap();
        build_list(root.get("processors"), &ctx())
    }

    /// Runs the processors on the event; `None` if one dropped it.
    pub fn run(procs: &[Arc<dyn Processor>], mut ev: Event) -> Option<Event> {
        for p in procs {
            if p.process(&mut ev) == Verdict::Drop {
                return None;
            }
        }
        Some(ev)
    }

    /// An event with shared fields as an input makes them.
    pub fn event(msg: &str) -> Event {
        let shared = serde_json::json!({
            "@metadata": {"beat": "filebeat"},
            "host": {"name": "web-1"},
            "input": {"type": "filestream"},
            "log": {"file": {"path": "/var/log/a.log"}},
            "tags": ["t1"],
            "fields": {"env": "prod"},
        });
        let mut e = Event::new(Arc::new(shared.as_object().unwrap().clone()), msg.into());
        e.offset = Some(7);
        e
    }

    /// Runs the processors of `yaml` on an event with `field` set to `v`, as JSON.
    pub fn with(yaml: &str, field: &str, v: Value) -> Value {
        let p = build(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
        let mut ev = event("m");
        ev.insert(field, v);
        json(&run(&p, ev).unwrap())
    }

    /// The event as the outputs would write it (without `@metadata`).
    pub fn json(ev: &Event) -> Value {
        ev.to_value(false)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;

    #[test]
    fn unknown_and_unsupported_processors_are_explained() {
        let e = build("processors: [{add_feilds: {fields: {a: 1}}}]")
            .err()
            .unwrap();
        assert!(e.to_string().contains("did you mean `add_fields`"), "{e}");
        assert!(e.to_string().contains("processors.0"), "{e}");
        let e = build("processors: [{translate_sid: {}}]").err().unwrap();
        assert!(e.to_string().contains("not supported by skiff yet"), "{e}");
        let e = build("processors: [{add_fields: {fields: {a: 1}}, drop_event: {}}]")
            .err()
            .unwrap();
        assert!(e.to_string().contains("exactly one key"), "{e}");
        let e = build("processors: {add_fields: {}}").err().unwrap();
        assert!(e.to_string().contains("is a list"), "{e}");
        // Several problems are reported together.
        let e = build("processors: [{nope: {}}, {drop_fields: {fieldz: [a]}}, {drop_event.when.equal: {a: 1}}]")
            .err()
            .unwrap();
        assert_eq!(e.len(), 3, "{e}");
        assert!(build("processors: ~").unwrap().is_empty());
    }

    /// The processors' page names every processor skiff has, and its "Not yet" list is
    /// exactly the refused ones.
    #[test]
    fn docs_list_every_processor() {
        let doc = include_str!("../../../docs/processors.md");
        for p in crate::ALL {
            assert!(
                doc.contains(&format!("`{}`", p.name)),
                "docs/processors.md lacks {}",
                p.name
            );
        }
        let not_yet = doc.split("## Not yet").nth(1).unwrap();
        for name in crate::NOT_YET {
            assert!(
                not_yet.contains(&format!("`{name}`")),
                "docs/processors.md: {name} is not yet"
            );
        }
        for p in crate::ALL {
            assert!(
                !not_yet.contains(&format!("`{}`", p.name)),
                "{} is listed as not yet",
                p.name
            );
            assert!(!crate::NOT_YET.contains(&p.name));
        }
    }

    #[test]
    fn when_guards_a_processor() {
        let p = build(
            "processors:\n  - add_tags:\n      tags: [hit]\n      when.contains.message: err\n",
        )
        .unwrap();
        let hit = run(&p, event("an error")).unwrap();
        assert_eq!(json(&hit)["tags"], serde_json::json!(["t1", "hit"]));
        let miss = run(&p, event("fine")).unwrap();
        assert_eq!(json(&miss)["tags"], serde_json::json!(["t1"]));
    }
}
