//! `module_pipeline`: the processor that runs a fileset's ingest pipeline on each event.
//!
//! The module loader puts it on every input it makes from a fileset
//! (`module_pipeline: {module: nginx, fileset: access}`); it can also be written by hand on any
//! input that reads such a log. Before the pipeline it stamps the module metadata
//! (`event.module`, `event.dataset`, `fileset.name`, `service.type`) and `event.timezone`
//! (the local offset, as Filebeat's `add_locale` does for modules).

use serde::Deserialize;
use serde_json::{Map, Value};
use skiff_config::{ConfigError, ConfigErrors, Node};
use skiff_event::Event;
use skiff_pipeline::component::{BuildContext, Processor, ProcessorPlugin, Verdict};

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
        Ok(Self {
            pipeline,
            fields: doc::flatten(&crate::fileset_fields(module, fileset))
                .into_iter()
                .collect(),
            timezone,
        })
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
}

impl Processor for FilesetProcessor {
    fn process(&self, event: &mut Event) -> Verdict {
        let Value::Object(mut doc) = event.to_value(false) else {
            return Verdict::Keep;
        };
        // The leaves before, then the pipeline on the document itself (no second copy).
        let old = doc::flatten(&doc);
        self.run_doc(&mut doc);
        // Write back leaf by leaf, so fields shared by every event of the input stay shared.
        let new = doc::flatten(&doc);
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
