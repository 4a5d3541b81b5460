//! Filebeat modules, parsed in skiff itself.
//!
//! A Filebeat module (`nginx`, `system`, ...) is a set of filesets; each fileset is a log input
//! with default paths and multiline settings, plus an Elasticsearch ingest pipeline that turns
//! the raw line into ECS fields. Filebeat leaves the parsing to Elasticsearch, so Kafka, Redis
//! and Logstash users get raw lines. skiff runs the pipeline at the edge instead: every output
//! gets the same parsed document Elasticsearch would have stored.
//!
//! Each fileset is one YAML file in `modules/<module>/<fileset>.yml` (default paths per OS,
//! `var.*` defaults, input settings, and the pipeline as data, in Elasticsearch's processor
//! vocabulary); [`pipeline`] interprets it. Adding a fileset is adding a file and one line in
//! [`MODULES`], no code. [`config`] expands `filebeat.modules` / `modules.d/` into filestream
//! inputs, and [`processor`] is the processor that runs a fileset's pipeline on events.
//! See docs/modules.md.

pub mod auditd;
pub mod config;
pub mod csv;
pub mod doc;
pub mod geoip;
pub mod grok_engine;
pub mod kv;
pub mod pipeline;
pub mod processor;
pub mod user_agent;

use serde::Deserialize;
use serde_json::{Map, Value};

pub use pipeline::Pipeline;

/// What can go wrong with modules.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A fileset's YAML definition is wrong (a bug in this crate, caught by its tests).
    #[error("fileset {0}: {1}")]
    Definition(String, String),
    /// A module or fileset that does not exist.
    #[error("{0}")]
    Unknown(String),
    /// Reading or changing `modules.d/`.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// A module configuration that cannot be used.
    #[error("{0}")]
    Config(String),
}

/// A module: its name and its filesets, each with its YAML definition.
pub struct Module {
    /// The module's name (`nginx`).
    pub name: &'static str,
    /// `(fileset name, YAML definition)`.
    pub filesets: &'static [(&'static str, &'static str)],
}

macro_rules! module {
    ($m:literal: $($f:literal),+) => {
        Module {
            name: $m,
            filesets: &[$(($f, include_str!(concat!("../modules/", $m, "/", $f, ".yml")))),+],
        }
    };
}

/// Every module skiff knows, one line each: `module!("name": "fileset", ...)` reads
/// `modules/<name>/<fileset>.yml`.
#[rustfmt::skip]
pub const MODULES: &[Module] = &[
    module!("nginx": "access", "error", "ingress_controller"),
    module!("system": "syslog", "auth"),
    module!("apache": "access", "error"),
    module!("redis": "log"),
    module!("mysql": "error", "slowlog"),
    module!("postgresql": "log"),
    module!("traefik": "access"),
    module!("haproxy": "log"),
    module!("auditd": "log"),
];

/// Filesets Filebeat's modules have and skiff does not, with why: `(module, fileset, why)`.
/// Filebeat's own `modules.d/` files name them, so a module file copied from Filebeat must
/// load: a disabled one is accepted silently, an enabled one reads nothing and is reported
/// (a warning, an error with `skiff.strict`), never silently skipped.
pub const NOT_IMPLEMENTED: &[(&str, &str, &str)] = &[(
    "redis",
    "slowlog",
    "Filebeat reads it from the server with the SLOWLOG command, not from a file",
)];

/// A fileset's definition, parsed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesetDef {
    /// Default `var.paths` per OS (`linux`, `darwin`, `windows`).
    #[serde(default)]
    pub paths: Map<String, Value>,
    /// Other `var.*` defaults.
    #[serde(default)]
    pub vars: Map<String, Value>,
    /// Input settings added to the filestream input (multiline, ...).
    #[serde(default)]
    pub input: Map<String, Value>,
    /// Whether the input stamps `event.timezone` with the local offset (Filebeat's
    /// `add_locale`, on the filesets whose times may lack a zone). Default `true`.
    #[serde(default = "yes")]
    pub add_locale: bool,
    /// Whether the fileset runs when the module's entry does not enable or disable it.
    /// Default `true`; `false` for a fileset that reads another one's files (nginx
    /// `ingress_controller` and `access` both read `access.log`), as Filebeat ships it.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The ingest pipeline, Elasticsearch's processor list.
    pub pipeline: Value,
}

fn yes() -> bool {
    true
}

/// Looks a fileset up and parses its definition.
pub fn fileset(module: &str, fileset: &str) -> Result<FilesetDef, Error> {
    let m = MODULES.iter().find(|m| m.name == module).ok_or_else(|| {
        Error::Unknown(format!(
            "unknown module `{module}`; skiff has {}",
            module_names().join(", ")
        ))
    })?;
    let (_, yaml) = m
        .filesets
        .iter()
        .find(|(f, _)| *f == fileset)
        .ok_or_else(|| {
            let names: Vec<&str> = m.filesets.iter().map(|(f, _)| *f).collect();
            Error::Unknown(format!(
                "module `{module}` has no fileset `{fileset}`; it has {}",
                names.join(", ")
            ))
        })?;
    let name = format!("{module}/{fileset}");
    let node = skiff_config::parse_str(yaml, Some(&name))
        .map_err(|e| Error::Definition(name.clone(), e.to_string()))?;
    serde_json::from_value(node.to_json()).map_err(|e| Error::Definition(name, e.to_string()))
}

/// The names of every module.
pub fn module_names() -> Vec<&'static str> {
    MODULES.iter().map(|m| m.name).collect()
}

/// The fields Filebeat's module configuration puts on every event of a fileset, before the
/// pipeline runs: `event.module`, `event.dataset`, `fileset.name`, `service.type`.
pub fn fileset_fields(module: &str, fileset: &str) -> Map<String, Value> {
    let mut m = Map::new();
    doc::insert(&mut m, "event.module", Value::from(module));
    doc::insert(
        &mut m,
        "event.dataset",
        Value::from(format!("{module}.{fileset}")),
    );
    doc::insert(&mut m, "fileset.name", Value::from(fileset));
    doc::insert(&mut m, "service.type", Value::from(module));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fileset_definition_compiles() {
        for m in MODULES {
            for (f, _) in m.filesets {
                let def = fileset(m.name, f).unwrap_or_else(|e| panic!("{e}"));
                Pipeline::compile(&format!("{}/{f}", m.name), &def.pipeline)
                    .unwrap_or_else(|e| panic!("{e}"));
                assert!(
                    def.paths.contains_key("linux"),
                    "{}/{f} has no linux paths",
                    m.name
                );
            }
        }
    }
}
