//! The ingest-pipeline interpreter: the processors Filebeat's module pipelines use in
//! Elasticsearch (`grok`, `rename`, `set`, `date`, ...), with the same names and settings, run
//! on a document held as nested JSON.
//!
//! A pipeline is data (the `pipeline:` list of a fileset's YAML file), not code per fileset.
//! The one place Elastic's pipelines use Painless scripts, this interpreter has a few named
//! steps instead (`first_public_ip`, `scale`, ...; the auditd ones in [`crate::auditd`]), each
//! documented in docs/modules.md. `kv` splits with [`crate::kv`].
//! As in Elasticsearch, the first failing step (unless `ignore_failure` or `ignore_missing`
//! covers it) stops the pipeline, and the pipeline's failure handler keeps the original
//! `message` and sets `error.message`.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use regex::Regex;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::Error;
use crate::auditd::EcsTable;
use crate::doc;
use crate::geoip::GeoipStep;
use crate::grok_engine::GrokPattern;
use crate::kv::KvSplit;
use crate::user_agent::UserAgentStep;

/// One processor of a pipeline, as written in the fileset's YAML (`- grok: {...}`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum StepConfig {
    Grok(GrokConfig),
    Rename(RenameConfig),
    Remove(FieldsConfig),
    Set(SetConfig),
    Append(AppendConfig),
    Date(DateConfig),
    Convert(ConvertConfig),
    Lowercase(FieldConfig),
    Uppercase(FieldConfig),
    Trim(FieldConfig),
    Split(SplitConfig),
    Gsub(GsubConfig),
    FirstPublicIp(RenameConfig),
    Scale(ScaleConfig),
    Csv(CsvConfig),
    ListLast(ListLastConfig),
    ListSum(RenameConfig),
    HostPort(HostPortConfig),
    YesNo(FieldsConfig),
    UserAgent(UserAgentConfig),
    Kv(KvConfig),
    ListLength(RenameConfig),
    AuditValues(AuditValuesConfig),
    AuditEcs(FieldConfig),
    AuditExecveArgs(FieldConfig),
    Geoip(GeoipConfig),
}

/// When a step runs: every key given must hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cond {
    /// The field exists (every field, given a list).
    #[serde(default)]
    exists: Option<OneOrMany>,
    /// The field does not exist.
    #[serde(default)]
    missing: Option<String>,
    /// The field's text equals the value: `[field, value]`.
    #[serde(default)]
    equals: Option<(String, String)>,
    /// The field's text matches the regular expression: `[field, regex]`.
    #[serde(default, with = "serde_regex_pair")]
    matches: Option<(String, Regex)>,
    /// The field exists and its text does not match the regular expression.
    #[serde(default, with = "serde_regex_pair")]
    not_matches: Option<(String, Regex)>,
}

/// `matches: [field, regex]`, the regex compiled once when the pipeline is.
mod serde_regex_pair {
    use regex::Regex;
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<(String, Regex)>, D::Error> {
        let pair: Option<(String, String)> = Option::deserialize(d)?;
        pair.map(|(f, r)| {
            Regex::new(&r)
                .map(|re| (f, re))
                .map_err(serde::de::Error::custom)
        })
        .transpose()
    }
}

/// The settings every step has, but `if`.
struct Common {
    ignore_failure: bool,
    ignore_missing: bool,
}

macro_rules! config {
    ($name:ident { $($(#[$m:meta])* $f:ident : $t:ty),* $(,)? }) => {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $name {
            $($(#[$m])* $f: $t,)*
            #[serde(default, rename = "if")]
            cond: Option<Cond>,
            #[serde(default)]
            ignore_failure: bool,
            #[serde(default)]
            ignore_missing: bool,
        }
        impl $name {
            fn common(&self) -> Common {
                Common {
                    ignore_failure: self.ignore_failure,
                    ignore_missing: self.ignore_missing,
                }
            }
        }
    };
}

config!(GrokConfig {
    field: String,
    patterns: Vec<String>,
    #[serde(default)]
    pattern_definitions: BTreeMap<String, String>,
});
config!(RenameConfig {
    field: String,
    target_field: String
});
config!(FieldsConfig { field: OneOrMany });
config!(FieldConfig { field: String });
config!(SetConfig {
    field: String,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    copy_from: Option<String>,
    #[serde(default = "yes", rename = "override")]
    overwrite: bool,
});
config!(AppendConfig {
    field: String,
    value: OneOrMany,
    #[serde(default = "yes")]
    allow_duplicates: bool,
});
config!(DateConfig {
    field: String,
    #[serde(default = "timestamp_field")]
    target_field: String,
    formats: Vec<String>,
    #[serde(default)]
    timezone: Option<String>,
});
config!(ConvertConfig {
    field: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    target_field: Option<String>,
});
config!(SplitConfig {
    field: String,
    separator: String
});
config!(GsubConfig {
    field: String,
    pattern: String,
    replacement: String
});
config!(ScaleConfig {
    field: String,
    factor: f64,
    #[serde(default)]
    round: bool,
});
config!(CsvConfig {
    field: String,
    target_fields: Vec<String>,
    #[serde(default = "comma")]
    separator: String,
    #[serde(default)]
    trim: bool,
});
config!(ListLastConfig {
    field: String,
    target_field: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
});
config!(KvConfig {
    field: String,
    field_split: String,
    value_split: String,
    #[serde(default)]
    target_field: Option<String>,
});
config!(AuditValuesConfig {
    field: String,
    #[serde(default)]
    hex_keys: Vec<String>,
});
config!(GeoipConfig {
    field: String,
    #[serde(default = "geoip_target")]
    target_field: String,
    #[serde(default = "geoip_database")]
    database_file: String,
    #[serde(default)]
    properties: Option<Vec<String>>,
    #[serde(default = "yes")]
    first_only: bool,
});
config!(UserAgentConfig {
    field: String,
    #[serde(default = "user_agent_target")]
    target_field: String,
    #[serde(default)]
    properties: Option<Vec<String>>,
    #[serde(default)]
    extract_device_type: bool,
});
config!(HostPortConfig {
    field: String,
    ip_field: String,
    port_field: String,
});

fn comma() -> String {
    ",".into()
}

fn yes() -> bool {
    true
}

fn geoip_target() -> String {
    "geoip".into()
}

fn geoip_database() -> String {
    crate::geoip::DEFAULT_DATABASE.into()
}

fn user_agent_target() -> String {
    "user_agent".into()
}

fn timestamp_field() -> String {
    "@timestamp".into()
}

/// A string or a list of strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn items(&self) -> Vec<&str> {
        match self {
            OneOrMany::One(s) => vec![s.as_str()],
            OneOrMany::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// A compiled step.
enum Op {
    Grok {
        field: String,
        patterns: Vec<GrokPattern>,
    },
    Rename {
        field: String,
        target: String,
    },
    Remove(Vec<String>),
    Set {
        field: String,
        value: Option<Value>,
        copy_from: Option<String>,
        overwrite: bool,
    },
    Append {
        field: String,
        values: Vec<String>,
        allow_duplicates: bool,
    },
    Date {
        field: String,
        target: String,
        formats: Vec<String>,
        timezone: Option<String>,
    },
    Convert {
        field: String,
        kind: String,
        target: Option<String>,
    },
    Case {
        field: String,
        how: fn(&str) -> String,
    },
    Split {
        field: String,
        separator: Regex,
    },
    Gsub {
        field: String,
        pattern: Regex,
        replacement: String,
    },
    FirstPublicIp {
        field: String,
        target: String,
    },
    Scale {
        field: String,
        factor: f64,
        round: bool,
    },
    Csv {
        field: String,
        targets: Vec<String>,
        separator: u8,
        trim: bool,
    },
    ListLast {
        field: String,
        target: String,
        kind: Option<String>,
    },
    ListSum {
        field: String,
        target: String,
    },
    HostPort {
        field: String,
        ip: String,
        port: String,
    },
    YesNo(Vec<String>),
    UserAgent(Box<UserAgentStep>),
    Kv {
        field: String,
        split: Box<KvSplit>,
        target: Option<String>,
    },
    ListLength {
        field: String,
        target: String,
    },
    AuditValues {
        field: String,
        hex_keys: Vec<String>,
    },
    AuditEcs {
        field: String,
        table: &'static EcsTable,
    },
    AuditExecveArgs(String),
    Geoip(Box<GeoipStep>),
}

struct Step {
    op: Op,
    cond: Option<Cond>,
    ignore_failure: bool,
    ignore_missing: bool,
}

/// A compiled pipeline.
pub struct Pipeline {
    steps: Vec<Step>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pipeline({} steps)", self.steps.len())
    }
}

impl Pipeline {
    /// Compiles the `pipeline:` list of a fileset (`name` is for error messages).
    pub fn compile(name: &str, list: &Value) -> Result<Self, Error> {
        let bad = |msg: String| Error::Definition(name.to_string(), msg);
        let configs: Vec<StepConfig> =
            serde_json::from_value(list.clone()).map_err(|e| bad(e.to_string()))?;
        let mut library = Library {
            grok: grok::Grok::with_default_patterns(),
            // The same definitions, for the fast engine's expansion (later entries of the
            // list win, as in the grok crate's map).
            defs: grok::patterns()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        // `IP` is `IPV6|IPV4` in the standard library: on an IPv4 address (most lines) the
        // backtracking engine first tries and fails each of IPV6's dozen alternatives. The two
        // cannot both match at one position (every IPV6 alternative needs a `:` within its
        // first five characters, IPV4 a `.` after its first one to three digits, and hex
        // digits before either), so trying IPV4 first gives the same matches, faster.
        library.add("IP", "(?:%{IPV4}|%{IPV6})");
        let mut steps = Vec::with_capacity(configs.len());
        for (i, c) in configs.into_iter().enumerate() {
            steps.push(compile_step(c, &library).map_err(|e| bad(format!("step {}: {e}", i + 1)))?);
        }
        Ok(Pipeline { steps })
    }

    /// The grok patterns of the pipeline's steps, in order (for tests of the grok engine).
    pub fn grok_patterns(&self) -> impl Iterator<Item = &GrokPattern> {
        self.steps.iter().flat_map(|s| match &s.op {
            Op::Grok { patterns, .. } => patterns.as_slice(),
            _ => &[],
        })
    }

    /// Runs the pipeline on a document. On a failure, the document keeps what the steps before
    /// it did and gets `error.message`, as Filebeat's pipelines' `on_failure` handler does.
    pub fn run(&self, d: &mut Map<String, Value>) {
        for step in &self.steps {
            if let Some(c) = &step.cond
                && !cond_holds(c, d)
            {
                continue;
            }
            match run_op(&step.op, d) {
                Ok(()) => {}
                Err(Failure::Missing(_) | Failure::Null(_)) if step.ignore_missing => {}
                Err(_) if step.ignore_failure => {}
                Err(f) => {
                    doc::insert(d, "error.message", Value::String(f.message()));
                    return;
                }
            }
        }
    }
}

impl Pipeline {
    /// The top-level keys of the document (each path's first segment) the pipeline may read
    /// or write, `error` (its failure handler's) included. `None` when a step's fields are only
    /// known from the data: `kv` without a `target_field` and the auditd steps write keys the
    /// log names. The processor moves only these keys between the event and the document.
    pub fn top_level_keys(&self) -> Option<BTreeSet<String>> {
        let mut paths: Vec<&str> = vec!["error.message"];
        for step in &self.steps {
            if let Some(c) = &step.cond {
                c.paths(&mut paths);
            }
            step.op.paths(&mut paths)?;
        }
        Some(paths.into_iter().map(|p| head(p).to_string()).collect())
    }
}

/// A path's first segment: the top-level key it starts at (`source` of `source.ip`).
pub fn head(path: &str) -> &str {
    path.split_once('.').map_or(path, |(h, _)| h)
}

impl Cond {
    fn paths<'a>(&'a self, out: &mut Vec<&'a str>) {
        if let Some(e) = &self.exists {
            out.extend(e.items());
        }
        out.extend(self.missing.as_deref());
        out.extend(self.equals.as_ref().map(|(f, _)| f.as_str()));
        out.extend(self.matches.as_ref().map(|(f, _)| f.as_str()));
        out.extend(self.not_matches.as_ref().map(|(f, _)| f.as_str()));
    }
}

impl Op {
    /// Adds the paths the step reads or writes; `None` when they depend on the data.
    fn paths<'a>(&'a self, out: &mut Vec<&'a str>) -> Option<()> {
        match self {
            Op::Grok { field, patterns } => {
                out.push(field);
                // A name used twice is numbered `name[1]` (see `run_op`).
                for p in patterns {
                    out.extend(p.capture_names().map(|n| n.split('[').next().unwrap_or(n)));
                }
            }
            Op::Rename { field, target }
            | Op::FirstPublicIp { field, target }
            | Op::ListLast { field, target, .. }
            | Op::ListSum { field, target }
            | Op::ListLength { field, target } => out.extend([field.as_str(), target]),
            Op::Remove(fields) | Op::YesNo(fields) => out.extend(fields.iter().map(String::as_str)),
            Op::Set {
                field,
                value,
                copy_from,
                ..
            } => {
                out.push(field);
                out.extend(copy_from.as_deref());
                if let Some(Value::String(t)) = value {
                    out.extend(template_fields(t));
                }
            }
            Op::Append { field, values, .. } => {
                out.push(field);
                for t in values {
                    out.extend(template_fields(t));
                }
            }
            Op::Date {
                field,
                target,
                timezone,
                ..
            } => {
                out.extend([field.as_str(), target]);
                if let Some(t) = timezone {
                    out.extend(template_fields(t));
                }
            }
            Op::Convert { field, target, .. } => {
                out.push(field);
                out.extend(target.as_deref());
            }
            Op::Case { field, .. }
            | Op::Split { field, .. }
            | Op::Gsub { field, .. }
            | Op::Scale { field, .. } => out.push(field),
            Op::UserAgent(ua) => out.extend([ua.field.as_str(), &ua.target]),
            Op::Csv { field, targets, .. } => {
                out.push(field);
                out.extend(targets.iter().map(String::as_str));
            }
            Op::HostPort { field, ip, port } => out.extend([field.as_str(), ip, port]),
            Op::Kv {
                field,
                target: Some(target),
                ..
            } => out.extend([field.as_str(), target]),
            Op::Geoip(g) => out.extend([g.field.as_str(), &g.target]),
            Op::Kv { target: None, .. }
            | Op::AuditValues { .. }
            | Op::AuditEcs { .. }
            | Op::AuditExecveArgs(_) => return None,
        }
        Some(())
    }
}

/// The grok pattern library: the grok crate's (for its fancy-regex engine) and the same
/// definitions as a map (for the fast engine's own expansion).
#[derive(Clone)]
struct Library {
    grok: grok::Grok,
    defs: BTreeMap<String, String>,
}

impl Library {
    fn add(&mut self, name: &str, definition: &str) {
        self.grok.add_pattern(name, definition);
        self.defs.insert(name.to_string(), definition.to_string());
    }
}

fn compile_step(c: StepConfig, library: &Library) -> Result<Step, String> {
    let (op, common, cond) = match c {
        StepConfig::Grok(g) => {
            let mut lib = library.clone();
            for (k, v) in &g.pattern_definitions {
                lib.add(k, v);
            }
            let patterns = g
                .patterns
                .iter()
                .map(|p| {
                    // Elasticsearch accepts an empty pattern (matches anything); grok does not.
                    let p = if p.is_empty() { "(?:)" } else { p.as_str() };
                    GrokPattern::compile(p, &lib.grok, &lib.defs)
                        .map_err(|e| format!("grok `{p}`: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let common = g.common();
            (
                Op::Grok {
                    field: g.field,
                    patterns,
                },
                common,
                g.cond,
            )
        }
        StepConfig::Rename(r) => {
            let common = r.common();
            (
                Op::Rename {
                    field: r.field,
                    target: r.target_field,
                },
                common,
                r.cond,
            )
        }
        StepConfig::FirstPublicIp(r) => {
            let common = r.common();
            (
                Op::FirstPublicIp {
                    field: r.field,
                    target: r.target_field,
                },
                common,
                r.cond,
            )
        }
        StepConfig::Remove(r) => {
            let common = r.common();
            let fields = r.field.items().into_iter().map(String::from).collect();
            (Op::Remove(fields), common, r.cond)
        }
        StepConfig::Set(s) => {
            if s.value.is_none() == s.copy_from.is_none() {
                return Err("set needs exactly one of `value` and `copy_from`".into());
            }
            let common = s.common();
            let op = Op::Set {
                field: s.field,
                value: s.value,
                copy_from: s.copy_from,
                overwrite: s.overwrite,
            };
            (op, common, s.cond)
        }
        StepConfig::Append(a) => {
            let common = a.common();
            let values = a.value.items().into_iter().map(String::from).collect();
            let op = Op::Append {
                field: a.field,
                values,
                allow_duplicates: a.allow_duplicates,
            };
            (op, common, a.cond)
        }
        StepConfig::Date(dc) => {
            let common = dc.common();
            let op = Op::Date {
                field: dc.field,
                target: dc.target_field,
                formats: dc.formats,
                timezone: dc.timezone,
            };
            (op, common, dc.cond)
        }
        StepConfig::Convert(c) => {
            if ![
                "long", "integer", "float", "double", "string", "boolean", "ip",
            ]
            .contains(&c.kind.as_str())
            {
                return Err(format!("convert: unknown type `{}`", c.kind));
            }
            let common = c.common();
            (
                Op::Convert {
                    field: c.field,
                    kind: c.kind,
                    target: c.target_field,
                },
                common,
                c.cond,
            )
        }
        StepConfig::Lowercase(f) => {
            let common = f.common();
            (
                Op::Case {
                    field: f.field,
                    how: str::to_lowercase,
                },
                common,
                f.cond,
            )
        }
        StepConfig::Uppercase(f) => {
            let common = f.common();
            (
                Op::Case {
                    field: f.field,
                    how: str::to_uppercase,
                },
                common,
                f.cond,
            )
        }
        StepConfig::Trim(f) => {
            let common = f.common();
            (
                Op::Case {
                    field: f.field,
                    how: |s| s.trim().to_string(),
                },
                common,
                f.cond,
            )
        }
        StepConfig::Split(s) => {
            let separator = Regex::new(&s.separator).map_err(|e| e.to_string())?;
            let common = s.common();
            (
                Op::Split {
                    field: s.field,
                    separator,
                },
                common,
                s.cond,
            )
        }
        StepConfig::Gsub(g) => {
            let pattern = Regex::new(&g.pattern).map_err(|e| e.to_string())?;
            let common = g.common();
            let op = Op::Gsub {
                field: g.field,
                pattern,
                replacement: g.replacement,
            };
            (op, common, g.cond)
        }
        StepConfig::Csv(c) => {
            let &[separator] = c.separator.as_bytes() else {
                return Err("csv: `separator` must be one byte".into());
            };
            let common = c.common();
            let op = Op::Csv {
                field: c.field,
                targets: c.target_fields,
                separator,
                trim: c.trim,
            };
            (op, common, c.cond)
        }
        StepConfig::ListLast(l) => {
            if let Some(k) = &l.kind
                && !["long", "integer", "string"].contains(&k.as_str())
            {
                return Err(format!("list_last: unknown type `{k}`"));
            }
            let common = l.common();
            let op = Op::ListLast {
                field: l.field,
                target: l.target_field,
                kind: l.kind,
            };
            (op, common, l.cond)
        }
        StepConfig::ListSum(r) => {
            let common = r.common();
            let op = Op::ListSum {
                field: r.field,
                target: r.target_field,
            };
            (op, common, r.cond)
        }
        StepConfig::HostPort(h) => {
            let common = h.common();
            let op = Op::HostPort {
                field: h.field,
                ip: h.ip_field,
                port: h.port_field,
            };
            (op, common, h.cond)
        }
        StepConfig::YesNo(f) => {
            let common = f.common();
            let fields = f.field.items().into_iter().map(String::from).collect();
            (Op::YesNo(fields), common, f.cond)
        }
        StepConfig::UserAgent(u) => {
            let common = u.common();
            let step =
                UserAgentStep::new(u.field, u.target_field, u.properties, u.extract_device_type)?;
            (Op::UserAgent(Box::new(step)), common, u.cond)
        }
        StepConfig::Kv(k) => {
            let common = k.common();
            let op = Op::Kv {
                split: Box::new(KvSplit::new(&k.field_split, &k.value_split)?),
                field: k.field,
                target: k.target_field,
            };
            (op, common, k.cond)
        }
        StepConfig::ListLength(r) => {
            let common = r.common();
            let op = Op::ListLength {
                field: r.field,
                target: r.target_field,
            };
            (op, common, r.cond)
        }
        StepConfig::AuditValues(a) => {
            let common = a.common();
            let op = Op::AuditValues {
                field: a.field,
                hex_keys: a.hex_keys,
            };
            (op, common, a.cond)
        }
        StepConfig::AuditEcs(f) => {
            let common = f.common();
            let op = Op::AuditEcs {
                field: f.field,
                table: EcsTable::shipped()?,
            };
            (op, common, f.cond)
        }
        StepConfig::AuditExecveArgs(f) => {
            let common = f.common();
            (Op::AuditExecveArgs(f.field), common, f.cond)
        }
        StepConfig::Geoip(g) => {
            let common = g.common();
            let step = GeoipStep::new(
                g.field,
                g.target_field,
                &g.database_file,
                g.properties,
                g.first_only,
            )
            .map_err(|e| e.to_string())?;
            (Op::Geoip(Box::new(step)), common, g.cond)
        }
        StepConfig::Scale(s) => {
            let common = s.common();
            (
                Op::Scale {
                    field: s.field,
                    factor: s.factor,
                    round: s.round,
                },
                common,
                s.cond,
            )
        }
    };
    Ok(Step {
        op,
        cond,
        ignore_failure: common.ignore_failure,
        ignore_missing: common.ignore_missing,
    })
}

enum Failure {
    Missing(String),
    /// A null value where a step needs one: missing for `ignore_missing`, with the step's own
    /// message otherwise.
    Null(String),
    Other(String),
}

impl Failure {
    fn message(self) -> String {
        match self {
            Failure::Missing(f) => format!("field [{f}] not present as part of path [{f}]"),
            Failure::Null(m) | Failure::Other(m) => m,
        }
    }
}

impl From<String> for Failure {
    fn from(m: String) -> Self {
        Failure::Other(m)
    }
}

fn cond_holds(c: &Cond, d: &Map<String, Value>) -> bool {
    c.exists
        .as_ref()
        .is_none_or(|fs| fs.items().iter().all(|f| doc::get(d, f).is_some()))
        && c.missing.as_ref().is_none_or(|f| doc::get(d, f).is_none())
        && c.equals
            .as_ref()
            .is_none_or(|(f, v)| doc::get_text(d, f).as_deref() == Some(v.as_str()))
        && c.matches
            .as_ref()
            .is_none_or(|(f, re)| doc::get_text(d, f).is_some_and(|t| re.is_match(&t)))
        && c.not_matches
            .as_ref()
            .is_none_or(|(f, re)| doc::get_text(d, f).is_some_and(|t| !re.is_match(&t)))
}

fn text_of(d: &Map<String, Value>, field: &str) -> Result<String, Failure> {
    match doc::get(d, field) {
        None | Some(Value::Null) => Err(Failure::Missing(field.to_string())),
        Some(_) => doc::get_text(d, field)
            .ok_or_else(|| Failure::Other(format!("field [{field}] is not a string"))),
    }
}

/// The field's text as `text_of` gives it, borrowed from the document when it is a string.
fn text_ref<'a>(d: &'a Map<String, Value>, field: &str) -> Result<Cow<'a, str>, Failure> {
    match doc::get(d, field) {
        Some(Value::String(s)) => Ok(Cow::Borrowed(s)),
        _ => text_of(d, field).map(Cow::Owned),
    }
}

/// A piece of a `{{field}}` template: literal text, or the name of a field.
enum Piece<'a> {
    Text(&'a str),
    Field(&'a str),
}

/// The pieces of a template, in order: `{{{field}}}` and `{{field}}` name fields (trimmed);
/// an opening without its closing is text to the end.
fn pieces(template: &str) -> impl Iterator<Item = Piece<'_>> {
    let mut rest = template;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let piece = match rest.find("{{") {
            Some(0) => {
                let (open, close) = if rest.starts_with("{{{") {
                    (3, "}}}")
                } else {
                    (2, "}}")
                };
                match rest[open..].find(close) {
                    Some(end) => {
                        let name = rest[open..open + end].trim();
                        rest = &rest[open + end + close.len()..];
                        return Some(Piece::Field(name));
                    }
                    None => rest,
                }
            }
            Some(start) => &rest[..start],
            None => rest,
        };
        rest = &rest[piece.len()..];
        Some(Piece::Text(piece))
    })
}

/// Replaces `{{{field}}}` and `{{field}}` by the field's text (nothing when it is missing).
fn render(template: &str, d: &Map<String, Value>) -> String {
    let mut out = String::with_capacity(template.len());
    for piece in pieces(template) {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Field(name) => out.push_str(&doc::get_text(d, name).unwrap_or_default()),
        }
    }
    out
}

/// The fields a template reads.
fn template_fields(template: &str) -> impl Iterator<Item = &str> {
    pieces(template).filter_map(|p| match p {
        Piece::Field(name) => Some(name),
        Piece::Text(_) => None,
    })
}

/// A grok match's captures as the fields they set: typed as the pattern says, a name
/// captured twice (in alternatives, numbered `name[1]`) giving a list.
fn grok_values(p: &GrokPattern, captures: Vec<(&str, &str)>) -> Vec<(String, Value)> {
    let mut found: Vec<(String, Value)> = Vec::with_capacity(captures.len());
    for (name, v) in captures {
        // A name used twice (in alternatives) is numbered `name[1]`: the branch that matched
        // gives the value.
        let key = name.split('[').next().unwrap_or(name);
        let value = match p.extract(name) {
            Some("int" | "long") => v
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::from(v)),
            Some("float" | "double") => number_f64(v).unwrap_or_else(|| Value::from(v)),
            Some("boolean") => Value::Bool(v.eq_ignore_ascii_case("true")),
            _ => Value::from(v),
        };
        // Both captures of a name used twice matched: Elasticsearch keeps both values, as a
        // list.
        match found.iter_mut().find(|(k, _)| k == key) {
            Some((_, Value::Array(list))) => list.push(value),
            Some((_, first)) => *first = Value::Array(vec![first.take(), value]),
            None => found.push((key.to_string(), value)),
        }
    }
    found
}

fn run_op(op: &Op, d: &mut Map<String, Value>) -> Result<(), Failure> {
    match op {
        Op::Grok { field, patterns } => {
            // The captures are made owned values while the text is still borrowed from the
            // document (no copy of the line per step); they are inserted after.
            let found = {
                let text = text_ref(d, field)?;
                let found = patterns
                    .iter()
                    .find_map(|p| p.captures(&text).map(|c| grok_values(p, c)));
                match found {
                    Some(found) => found,
                    None => {
                        return Err(Failure::Other(format!(
                            "Provided Grok expressions do not match field value: [{text}]"
                        )));
                    }
                }
            };
            for (k, v) in found {
                doc::insert(d, &k, v);
            }
            Ok(())
        }
        Op::Rename { field, target } => {
            let v = doc::remove(d, field).ok_or_else(|| Failure::Missing(field.clone()))?;
            if doc::get(d, target).is_some() {
                doc::insert(d, field, v);
                return Err(Failure::Other(format!("field [{target}] already exists")));
            }
            doc::insert(d, target, v);
            Ok(())
        }
        Op::FirstPublicIp { field, target } => {
            let list: Vec<String> = match doc::get(d, field) {
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect(),
                Some(Value::String(s)) => vec![s.clone()],
                _ => return Err(Failure::Missing(field.clone())),
            };
            let public = list
                .iter()
                .find(|s| s.parse::<IpAddr>().is_ok_and(|ip| !is_private(ip)));
            if let Some(ip) = public.or(list.first()) {
                doc::insert(d, target, Value::String(ip.clone()));
            }
            Ok(())
        }
        Op::Remove(fields) => {
            let mut missing = None;
            for f in fields {
                if doc::remove(d, f).is_none() {
                    missing = Some(f.clone());
                }
            }
            missing.map_or(Ok(()), |f| Err(Failure::Missing(f)))
        }
        Op::Set {
            field,
            value,
            copy_from,
            overwrite,
        } => {
            if !overwrite && doc::get(d, field).is_some_and(|v| !v.is_null()) {
                return Ok(());
            }
            let v = match (value, copy_from) {
                (_, Some(from)) => doc::get(d, from)
                    .cloned()
                    .ok_or_else(|| Failure::Missing(from.clone()))?,
                (Some(Value::String(t)), None) => Value::String(render(t, d)),
                (Some(v), None) => v.clone(),
                (None, None) => return Ok(()),
            };
            doc::insert(d, field, v);
            Ok(())
        }
        Op::Append {
            field,
            values,
            allow_duplicates,
        } => {
            let mut list = match doc::remove(d, field) {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => a,
                Some(other) => vec![other],
            };
            for t in values {
                let v = Value::String(render(t, d));
                if *allow_duplicates || !list.contains(&v) {
                    list.push(v);
                }
            }
            doc::insert(d, field, Value::Array(list));
            Ok(())
        }
        Op::Date {
            field,
            target,
            formats,
            timezone,
        } => {
            // Read with the text borrowed from the document, written after.
            let stamp = {
                let text = text_ref(d, field)?;
                let zone = timezone
                    .as_ref()
                    .map(|t| render(t, d))
                    .filter(|z| !z.is_empty());
                let parsed = formats
                    .iter()
                    .find_map(|f| parse_date(&text, f, zone.as_deref()))
                    .ok_or_else(|| format!("unable to parse date [{text}]"))?;
                // With a `timezone`, Elasticsearch writes the time in that zone, even when
                // the text had its own offset; without one, in UTC.
                match zone
                    .as_deref()
                    .and_then(|z| zone_offset(z, parsed.naive_utc()))
                {
                    Some(off) => format_ts(parsed.with_timezone(&off)),
                    None => format_ts(parsed),
                }
            };
            doc::insert(d, target, Value::String(stamp));
            Ok(())
        }
        Op::Convert {
            field,
            kind,
            target,
        } => {
            let v = doc::get(d, field)
                .cloned()
                .ok_or_else(|| Failure::Missing(field.clone()))?;
            let out = match v {
                Value::Array(items) => Value::Array(
                    items
                        .iter()
                        .map(|i| convert(i, kind))
                        .collect::<Result<Vec<_>, _>>()?,
                ),
                one => convert(&one, kind)?,
            };
            doc::insert(d, target.as_deref().unwrap_or(field), out);
            Ok(())
        }
        Op::Case { field, how } => {
            let text = text_of(d, field)?;
            doc::insert(d, field, Value::String(how(&text)));
            Ok(())
        }
        Op::Split { field, separator } => {
            let text = text_of(d, field)?;
            let mut parts: Vec<Value> = separator
                .split(&text)
                .map(|s| Value::String(s.to_string()))
                .collect();
            // Java's String.split, which Elasticsearch uses, drops trailing empty strings
            // (`a||` is `[a]`, `||` is `[]`), but an empty text is one empty string.
            if !text.is_empty() {
                while parts.last().is_some_and(|p| p == "") {
                    parts.pop();
                }
            }
            doc::insert(d, field, Value::Array(parts));
            Ok(())
        }
        Op::Gsub {
            field,
            pattern,
            replacement,
        } => {
            let text = text_of(d, field)?;
            let out = pattern
                .replace_all(&text, replacement.as_str())
                .into_owned();
            doc::insert(d, field, Value::String(out));
            Ok(())
        }
        Op::Csv {
            field,
            targets,
            separator,
            trim,
        } => {
            let text = text_of(d, field)?;
            let values = crate::csv::first_record(*separator, text.as_bytes())?;
            // Elasticsearch's csv processor: empty values set nothing, extra values are
            // dropped, `trim` trims each value.
            for (target, v) in targets.iter().zip(values) {
                let v = if *trim { v.trim().to_string() } else { v };
                if !v.is_empty() {
                    doc::insert(d, target, Value::String(v));
                }
            }
            Ok(())
        }
        Op::ListLast {
            field,
            target,
            kind,
        } => {
            let Some(last) = list_items(d, field)?.pop() else {
                return Ok(());
            };
            // Elastic's script sets null (no field) when the item is not a number.
            let value = match kind.as_deref() {
                Some("long" | "integer") => match last.trim().parse::<i64>() {
                    Ok(n) => Value::from(n),
                    Err(_) => return Ok(()),
                },
                _ => Value::String(last),
            };
            doc::insert(d, target, value);
            Ok(())
        }
        Op::ListSum { field, target } => {
            // Elastic's script sums in Java `float`; the sum is written as that float prints
            // (0.1 + 0.004 is 0.104, not 0.10400000214576721).
            let mut sum = 0f32;
            for item in list_items(d, field)? {
                match item.trim().parse::<f32>() {
                    Ok(x) => sum += x,
                    Err(_) => return Ok(()),
                }
            }
            if let Some(v) = number_f64(&sum.to_string()) {
                doc::insert(d, target, v);
            }
            Ok(())
        }
        Op::HostPort { field, ip, port } => {
            let Some(last) = list_items(d, field)?.pop() else {
                return Ok(());
            };
            // Elastic's script: `host:port` splits at the colon (a StringTokenizer, so an
            // IPv6 address is not split sensibly either); a port that is not a number sets
            // neither field.
            let mut tokens = last.split(':').filter(|t| !t.is_empty());
            match (tokens.next(), tokens.next()) {
                (Some(host), Some(p)) => {
                    if let Ok(n) = p.parse::<i64>() {
                        doc::insert(d, ip, Value::String(host.to_string()));
                        doc::insert(d, port, Value::from(n));
                    }
                }
                _ => doc::insert(d, ip, Value::String(last)),
            }
            Ok(())
        }
        Op::YesNo(fields) => {
            // MySQL's slow log writes flags as `Yes`/`No`; the module stores booleans.
            for f in fields {
                let b = match doc::get_text(d, f).as_deref() {
                    Some("Yes") => true,
                    Some("No") => false,
                    _ => continue,
                };
                doc::insert(d, f, Value::Bool(b));
            }
            Ok(())
        }
        Op::Kv {
            field,
            split,
            target,
        } => {
            let text = text_of(d, field)?;
            let pairs = split.pairs(field, &text)?;
            for (k, v) in pairs {
                // Elasticsearch skips nothing: an empty key would make an invalid path, so
                // skiff drops it rather than write a field named by the target alone.
                if k.is_empty() {
                    continue;
                }
                let path = match target {
                    Some(t) => format!("{t}.{k}"),
                    None => k.to_string(),
                };
                // A key seen twice keeps both values, as a list (Elasticsearch's append).
                let v = Value::String(v.to_string());
                match doc::remove(d, &path) {
                    None => doc::insert(d, &path, v),
                    Some(Value::Array(mut list)) => {
                        list.push(v);
                        doc::insert(d, &path, Value::Array(list));
                    }
                    Some(old) => doc::insert(d, &path, Value::Array(vec![old, v])),
                }
            }
            Ok(())
        }
        Op::Geoip(g) => {
            // No database: nothing to add (said once at start, see crate::geoip).
            if !g.active() {
                return Ok(());
            }
            let value = match doc::get(d, &g.field) {
                None | Some(Value::Null) => return Err(Failure::Missing(g.field.clone())),
                Some(v) => g.value_for(v)?,
            };
            if let Some(v) = value {
                doc::insert(d, &g.target, v);
            }
            Ok(())
        }
        Op::ListLength { field, target } => {
            match doc::get(d, field) {
                None | Some(Value::Null) => return Err(Failure::Missing(field.clone())),
                Some(Value::Array(a)) => {
                    let n = a.len();
                    doc::insert(d, target, Value::from(n));
                }
                // Filebeat's script counts lists only.
                Some(_) => {}
            }
            Ok(())
        }
        Op::AuditValues { field, hex_keys } => {
            crate::auditd::clean_values(d, field, hex_keys).map_err(Failure::Other)
        }
        Op::AuditEcs { field, table } => {
            crate::auditd::apply_ecs(d, field, table).map_err(Failure::Other)
        }
        Op::AuditExecveArgs(field) => crate::auditd::execve_args(d, field).map_err(Failure::Other),
        Op::UserAgent(u) => {
            // Elasticsearch reads the field as a string: missing or null is "missing" (for
            // `ignore_missing`), another type fails.
            let value = match doc::get(d, &u.field) {
                None => return Err(Failure::Missing(u.field.clone())),
                Some(Value::Null) => {
                    return Err(Failure::Null(format!(
                        "field [{}] is null, cannot parse user-agent.",
                        u.field
                    )));
                }
                Some(Value::String(s)) => u.value_for(s),
                Some(_) => {
                    return Err(Failure::Other(format!(
                        "field [{}] of type [{}] cannot be cast to [java.lang.String]",
                        u.field,
                        json_type(doc::get(d, &u.field))
                    )));
                }
            };
            // The parsed object replaces the target, as Elasticsearch's `setFieldValue` does.
            doc::insert(d, &u.target, value);
            Ok(())
        }
        Op::Scale {
            field,
            factor,
            round,
        } => {
            let v = doc::get(d, field)
                .and_then(Value::as_f64)
                .ok_or_else(|| Failure::Missing(field.clone()))?;
            // `round`: Java's Math.round, as Elastic's scripts use.
            let scaled = if *round {
                (v * factor + 0.5).floor()
            } else {
                v * factor
            };
            let out = if scaled.fract() == 0.0 && scaled.abs() < 9.0e15 {
                Value::from(scaled as i64)
            } else {
                number_f64_value(scaled)
            };
            doc::insert(d, field, out);
            Ok(())
        }
    }
}

/// The Java type Elasticsearch names in a cast error, for a JSON value.
fn json_type(v: Option<&Value>) -> &'static str {
    match v {
        Some(Value::Bool(_)) => "java.lang.Boolean",
        Some(Value::Number(n)) if n.is_f64() => "java.lang.Double",
        Some(Value::Number(_)) => "java.lang.Long",
        Some(Value::Array(_)) => "java.util.ArrayList",
        Some(Value::Object(_)) => "java.util.HashMap",
        _ => "java.lang.String",
    }
}

/// The items of a list field (a lone string is a list of one), as text.
fn list_items(d: &Map<String, Value>, field: &str) -> Result<Vec<String>, Failure> {
    match doc::get(d, field) {
        Some(Value::Array(a)) => Ok(a
            .iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        _ => Err(Failure::Missing(field.to_string())),
    }
}

fn number_f64(s: &str) -> Option<Value> {
    s.trim().parse::<f64>().ok().map(number_f64_value)
}

fn number_f64_value(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
}

fn convert(v: &Value, kind: &str) -> Result<Value, String> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => return Err(format!("cannot convert {other} to {kind}")),
    };
    let bad = || format!("unable to convert [{text}] to {kind}");
    Ok(match kind {
        "long" | "integer" => {
            let t = text.trim();
            match t.parse::<i64>() {
                Ok(n) => Value::from(n),
                Err(_) => {
                    let hex = t
                        .strip_prefix("0x")
                        .or_else(|| t.strip_prefix("0X"))
                        .ok_or_else(bad)?;
                    Value::from(i64::from_str_radix(hex, 16).map_err(|_| bad())?)
                }
            }
        }
        "float" | "double" => number_f64(&text).ok_or_else(bad)?,
        "boolean" => match text.to_ascii_lowercase().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(bad()),
        },
        "ip" => {
            text.parse::<IpAddr>()
                .map_err(|_| format!("'{text}' is not an IP string literal."))?;
            Value::String(text)
        }
        _ => Value::String(text),
    })
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private() || v4.is_loopback() || v4.is_link_local() || v4.is_unspecified()
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// The zone a `timezone` setting names: `+01:00`/`-0200`, an IANA name, or one of the
/// abbreviations PostgreSQL writes (resolved to the fixed offset Java gives them).
fn zone_offset(zone: &str, at: NaiveDateTime) -> Option<FixedOffset> {
    let z = zone.trim();
    if let Some(off) = parse_offset(z) {
        return Some(off);
    }
    let fixed = match z {
        "UTC" | "GMT" | "Z" | "UT" => Some(0),
        "CET" => Some(3600),
        "CEST" => Some(7200),
        "EDT" => Some(-4 * 3600),
        "CDT" => Some(-5 * 3600),
        "MDT" => Some(-6 * 3600),
        "PDT" => Some(-7 * 3600),
        _ => None,
    };
    // Java's legacy short ids name regions, with their summer time (`EST` in July is -04:00).
    let z = match z {
        "EST" => "America/New_York",
        "CST" => "America/Chicago",
        "MST" => "America/Denver",
        "PST" => "America/Los_Angeles",
        other => other,
    };
    if let Some(secs) = fixed {
        return FixedOffset::east_opt(secs);
    }
    let tz: chrono_tz::Tz = z.parse().ok()?;
    tz.offset_from_local_datetime(&at)
        .earliest()
        .map(|o| chrono::Offset::fix(&o))
}

fn parse_offset(z: &str) -> Option<FixedOffset> {
    let (sign, rest) = match z.as_bytes().first()? {
        b'+' => (1, &z[1..]),
        b'-' => (-1, &z[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let h: i32 = digits[..2].parse().ok()?;
    let m: i32 = digits[2..].parse().ok()?;
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

/// Parses with one format: `ISO8601`, `UNIX`, `UNIX_MS`, or a chrono `strftime` format. A
/// format without a year takes the current one (as Elasticsearch's date processor does); a
/// text without an offset is read in `zone` (UTC without one).
fn parse_date(text: &str, format: &str, zone: Option<&str>) -> Option<DateTime<FixedOffset>> {
    let utc = |t: DateTime<Utc>| t.fixed_offset();
    let text = text.trim();
    match format {
        "UNIX" | "UNIX_MS" => {
            let n: f64 = text.parse().ok()?;
            let ms = if format == "UNIX" { n * 1000.0 } else { n };
            return DateTime::from_timestamp_millis(ms.round() as i64).map(utc);
        }
        "ISO8601" => {
            if let Ok(t) = DateTime::parse_from_rfc3339(text) {
                return Some(utc(t.with_timezone(&Utc)));
            }
            let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f"))
                .ok()?;
            return local(naive, zone);
        }
        _ => {}
    }
    // A zone name at the end (`... CEST`): chrono cannot parse names, so it is split off.
    if let Some(base) = format.strip_suffix(" %Z") {
        let (rest, name) = text.rsplit_once(' ')?;
        let n = NaiveDateTime::parse_from_str(rest, base).ok()?;
        let off = zone_offset(name, n)?;
        return off
            .from_local_datetime(&n)
            .single()
            .map(|t| utc(t.with_timezone(&Utc)));
    }
    if let Ok(t) = DateTime::parse_from_str(text, format) {
        return Some(utc(t.with_timezone(&Utc)));
    }
    if let Ok(n) = NaiveDateTime::parse_from_str(text, format) {
        return local(n, zone);
    }
    if !format.contains("%Y") {
        let year = Utc::now().year();
        let n = NaiveDateTime::parse_from_str(&format!("{year} {text}"), &format!("%Y {format}"))
            .ok()?;
        return local(n, zone);
    }
    None
}

/// A local time stays in its zone, as Elasticsearch's date processor writes it.
fn local(n: NaiveDateTime, zone: Option<&str>) -> Option<DateTime<FixedOffset>> {
    let off = match zone {
        Some(z) => zone_offset(z, n)?,
        None => FixedOffset::east_opt(0)?,
    };
    off.from_local_datetime(&n).single()
}

/// `@timestamp` as Elasticsearch's date processor writes it: milliseconds (finer digits are
/// cut), `Z` for UTC, else the offset.
fn format_ts(t: DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(steps: Value, d: Value) -> Value {
        let p = Pipeline::compile("t", &steps).expect("compiles");
        let Value::Object(mut m) = d else {
            panic!("object")
        };
        p.run(&mut m);
        Value::Object(m)
    }

    #[test]
    fn grok_types_and_failure_keep_message() {
        let steps = json!([
            {"grok": {"field": "message", "patterns": ["%{IP:source.ip} %{NUMBER:n:long}"]}},
            {"remove": {"field": "message"}}
        ]);
        assert_eq!(
            run(steps.clone(), json!({"message": "1.2.3.4 17"})),
            json!({"source": {"ip": "1.2.3.4"}, "n": 17})
        );
        let failed = run(steps, json!({"message": "nope"}));
        assert_eq!(failed["message"], "nope");
        assert!(
            failed["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("Grok"))
        );
    }

    #[test]
    fn date_reads_local_time_in_the_zone_and_offsets_as_given() {
        let steps = json!([{"date": {"field": "t", "formats": ["%d/%b/%Y:%H:%M:%S %z", "%Y-%m-%d %H:%M:%S"], "timezone": "{{ event.timezone }}"}}]);
        let out = run(
            steps.clone(),
            json!({"t": "07/Dec/2016:11:05:07 +0100", "event": {"timezone": "-02:00"}}),
        );
        assert_eq!(out["@timestamp"], "2016-12-07T08:05:07.000-02:00");
        let out = run(
            steps,
            json!({"t": "2016-12-07 11:05:07", "event": {"timezone": "-02:00"}}),
        );
        assert_eq!(out["@timestamp"], "2016-12-07T11:05:07.000-02:00");
    }

    #[test]
    fn first_public_ip_prefers_public_addresses() {
        let steps = json!([{"first_public_ip": {"field": "l", "target_field": "a"}}]);
        assert_eq!(
            run(steps.clone(), json!({"l": ["10.0.0.1", "81.2.69.143"]}))["a"],
            "81.2.69.143"
        );
        assert_eq!(
            run(steps, json!({"l": ["10.0.0.1", "127.0.0.1"]}))["a"],
            "10.0.0.1"
        );
    }
}
