//! `module_pipeline`: the processor that runs a fileset's ingest pipeline on each event.
//!
//! The module loader puts it on every input it makes from a fileset
//! (`module_pipeline: {module: nginx, fileset: access}`); it can also be written by hand on any
//! input that reads such a log. Before the pipeline it stamps the module metadata
//! (`event.module`, `event.dataset`, `fileset.name`, `service.type`) and `event.timezone`
//! (the local offset, as Filebeat's `add_locale` does for modules).

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::{Map, Value};
use skiff_config::{ConfigError, ConfigErrors, Node};
use skiff_event::Event;
use skiff_pipeline::component::{BuildContext, Processor, ProcessorPlugin, Verdict};

use crate::pipeline::head;
use crate::{Pipeline, doc};

/// The processor's registration.
pub const PLUGIN: ProcessorPlugin = ProcessorPlugin {
    name: "module_pipeline",
    build,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// The module (required).
    module: String,
    /// The fileset (required).
    fileset: String,
    /// The zone of time stamps without one, as `+01:00`; default: the machine's local offset.
    #[serde(default)]
    timezone: Option<String>,
}

fn build(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    let err = |m: String| {
        ConfigErrors(vec![ConfigError::new(
            node.path.clone(),
            node.mark.clone(),
            m,
        )])
    };
    let s: Settings = serde_json::from_value(node.to_json()).map_err(|e| err(e.to_string()))?;
    FilesetProcessor::new(&s.module, &s.fileset, s.timezone)
        .map(|p| Box::new(p) as Box<dyn Processor>)
        .map_err(|e| err(e.to_string()))
}

/// Runs one fileset's pipeline.
pub struct FilesetProcessor {
    pipeline: Pipeline,
    /// The module metadata, flattened once (it is the same on every event).
    fields: Vec<(String, Value)>,
    timezone: Option<String>,
    /// The top-level keys the pipeline and the metadata may read or write (`None`: any). Only
    /// these go into the pipeline's document: the others (`agent`, `host`, `input`, ... of
    /// the shared fields) stay in the event untouched.
    keys: Option<BTreeSet<String>>,
}

impl FilesetProcessor {
    /// The processor of a fileset; `timezone` defaults to the local offset.
    pub fn new(
        module: &str,
        fileset: &str,
        timezone: Option<String>,
    ) -> Result<Self, crate::Error> {
        let def = crate::fileset(module, fileset)?;
        let pipeline = Pipeline::compile(&format!("{module}/{fileset}"), &def.pipeline)?;
        let timezone = def
            .add_locale
            .then(|| timezone.unwrap_or_else(|| chrono::Local::now().format("%:z").to_string()));
        let fields: Vec<(String, Value)> = doc::flatten(&crate::fileset_fields(module, fileset))
            .into_iter()
            .collect();
        let keys = pipeline.top_level_keys().map(|mut keys| {
            keys.extend(fields.iter().map(|(k, _)| head(k).to_string()));
            keys.insert(head("event.timezone").to_string());
            keys
        });
        Ok(Self {
            pipeline,
            fields,
            timezone,
            keys,
        })
    }

    /// The top-level keys the processor moves into the pipeline's document (`None`: all).
    pub fn keys(&self) -> Option<&BTreeSet<String>> {
        self.keys.as_ref()
    }

    /// Runs the pipeline on a document (metadata and `event.timezone` added first).
    pub fn run_doc(&self, d: &mut Map<String, Value>) {
        for (k, v) in &self.fields {
            doc::insert(d, k, v.clone());
        }
        if let Some(tz) = &self.timezone
            && doc::get(d, "event.timezone").is_none()
        {
            doc::insert(d, "event.timezone", Value::String(tz.clone()));
        }
        self.pipeline.run(d);
    }

    fn wanted(&self, key: &str) -> bool {
        self.keys.as_ref().is_none_or(|k| k.contains(head(key)))
    }
}

impl Processor for FilesetProcessor {
    /// The pipeline sees the event as [`Event::to_value`] shows it, restricted to the keys it
    /// uses, and the event afterwards shows the pipeline's document for those keys.
    ///
    /// The event's own fields under those keys are moved into the document and back, not
    /// copied. A key the event shares with the other events of its source (or one of its typed
    /// slots: `@timestamp`, `log.offset`) is copied into the document, and written back leaf
    /// by leaf where it changed, so an unchanged shared field stays shared (the same `Arc`).
    fn process(&self, event: &mut Event) -> Verdict {
        let mut d = Map::new();
        // `message` is the one slot every pipeline reads: moved, as a string.
        let had_message = self.wanted("message") && event.message.is_some();
        if had_message && let Some(m) = event.message.take() {
            d.insert("message".into(), Value::String(m));
        }
        let shared_visible =
            |shared: &Map<String, Value>, k: &str| k != "@metadata" && shared.contains_key(k);
        // Keys whose value is compared before and after, instead of moved.
        let compared = |event: &Event, k: &str| {
            k == "@timestamp"
                || k == "@metadata"
                || (k == "log" && event.offset.is_some())
                || shared_visible(&event.shared, k)
        };
        let mut kept = Vec::new();
        for (k, v) in std::mem::take(&mut event.fields) {
            // The `message` slot hides an own `message`; the `@timestamp` slot, always.
            let hidden = (had_message && k == "message") || k == "@timestamp";
            if hidden || !self.wanted(&k) || compared(event, &k) {
                kept.push((k, v));
            } else {
                d.insert(k, v);
            }
        }
        event.fields.extend(kept);
        // The compared keys as `to_value` shows them: own over shared, objects merged.
        let mut before = Map::new();
        if self.wanted("@timestamp") {
            before.insert(
                "@timestamp".into(),
                Value::String(event.timestamp.to_rfc3339_millis()),
            );
        }
        let own_keys = event.fields.keys().filter(|k| k.as_str() != "@timestamp");
        let shared_keys = event
            .shared
            .keys()
            .filter(|k| shared_visible(&event.shared, k) && k.as_str() != "@timestamp");
        for k in own_keys.chain(shared_keys) {
            let hidden = had_message && k == "message";
            if hidden || !self.wanted(k) || !compared(event, k) || before.contains_key(k) {
                continue;
            }
            let own = event.fields.get(k);
            let shared = shared_visible(&event.shared, k)
                .then(|| event.shared.get(k))
                .flatten();
            // Beside the `log.offset` slot, `log` is written from objects only.
            let (own, shared) = if k == "log" && event.offset.is_some() {
                (
                    own.filter(|v| v.is_object()),
                    shared.filter(|v| v.is_object()),
                )
            } else {
                (own, shared)
            };
            if let Some(v) = merged(own, shared) {
                before.insert(k.clone(), v);
            }
        }
        if let Some(offset) = event.offset
            && self.wanted("log")
        {
            let mut log = match before.remove("log") {
                Some(Value::Object(m)) => m,
                _ => Map::new(),
            };
            log.insert("offset".into(), Value::from(offset));
            before.insert("log".into(), Value::Object(log));
        }
        let old = doc::flatten(&before);
        d.append(&mut before);

        self.run_doc(&mut d);

        // A `message` the slot hid (own or shared) would show once the slot is empty: the
        // pipeline's document has none, so neither has the event.
        // (`Event::remove("message")` empties the slot only.)
        if had_message && !d.contains_key("message") {
            event.fields.remove("message");
            if event.shared.contains_key("message") {
                std::sync::Arc::make_mut(&mut event.shared).remove("message");
            }
        }
        let mut after = Map::new();
        for (k, v) in d {
            if compared(event, &k) {
                after.insert(k, v);
            } else if k == "message" {
                // A string goes back to its slot; anything else to the fields.
                event.insert("message", v);
            } else {
                event.fields.insert(k, v);
            }
        }
        // Leaf by leaf, so that what did not change stays where it is (shared or own).
        let new = doc::flatten(&after);
        for k in old.keys().filter(|k| !new.contains_key(*k)) {
            event.remove(k);
        }
        for (k, v) in new {
            if old.get(&k) != Some(&v) {
                event.insert(&k, v);
            }
        }
        Verdict::Keep
    }
}

/// A key's value as the event shows it: own over shared, objects present in both merged
/// (as `skiff_event::json` writes them).
fn merged(own: Option<&Value>, shared: Option<&Value>) -> Option<Value> {
    match (own, shared) {
        (Some(Value::Object(o)), Some(Value::Object(s))) => {
            let mut m = Map::new();
            for (k, v) in o {
                if let Some(v) = merged(Some(v), s.get(k)) {
                    m.insert(k.clone(), v);
                }
            }
            for (k, v) in s {
                if !o.contains_key(k) {
                    m.insert(k.clone(), v.clone());
                }
            }
            Some(Value::Object(m))
        }
        (Some(v), _) | (None, Some(v)) => Some(v.clone()),
        (None, None) => None,
    }
}
