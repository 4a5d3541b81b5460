//! The traits every input, processor and output implements, and what they are built from.
//!
//! A component is a plugin: a descriptor ([`InputPlugin`], [`ProcessorPlugin`],
//! [`OutputPlugin`]) naming a `build` function that validates the component's configuration
//! (a [`Node`] of the user's YAML, with its keys' paths and lines) and returns the runtime
//! object. The binary keeps one table of descriptors; nothing else needs to know the component.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use skiff_config::{ConfigErrors, Node};
use skiff_event::{Event, Map, Value};
use skiff_metrics::Registry;
use tokio_util::sync::CancellationToken;

use crate::{Budget, Failure, Publisher};

/// Who is shipping: stamped into every event's `agent.*` and `host.*`.
#[derive(Clone, Debug)]
pub struct AgentInfo {
    /// `agent.name` (the `name` setting; the host name by default).
    pub name: String,
    /// `host.name`.
    pub hostname: String,
    /// `agent.id`: persisted under `path.data`, the same across restarts.
    pub id: String,
    /// `agent.ephemeral_id`: new at every start.
    pub ephemeral_id: String,
    /// `agent.version`.
    pub version: String,
}

impl AgentInfo {
    /// A made-up identity for components built outside the agent (tests, benchmarks,
    /// examples), where there is no `path.data` to keep an id in: `name` is also the host name,
    /// the ids are `<name>-id` and `<name>-eph`.
    pub fn fixed(name: &str, version: &str) -> AgentInfo {
        AgentInfo {
            name: name.to_owned(),
            hostname: name.to_owned(),
            id: format!("{name}-id"),
            ephemeral_id: format!("{name}-eph"),
            version: version.to_owned(),
        }
    }
}

/// The `path.*` settings.
#[derive(Clone, Debug, Default)]
pub struct Paths {
    /// `path.home`.
    pub home: PathBuf,
    /// `path.config`.
    pub config: PathBuf,
    /// `path.data`: registry, agent id, disk queue, dead letters.
    pub data: PathBuf,
    /// `path.logs`.
    pub logs: PathBuf,
}

/// Live status documents that components publish for the HTTP API (`GET /inputs/`) and the CLI.
#[derive(Clone, Default)]
pub struct StatusBoard {
    #[allow(clippy::type_complexity)]
    entries: Arc<Mutex<BTreeMap<String, Arc<dyn Fn() -> Value + Send + Sync>>>>,
}

impl std::fmt::Debug for StatusBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StatusBoard")
    }
}

impl StatusBoard {
    /// Publishes (or replaces) the status of `id`, computed on every read.
    pub fn register(&self, id: &str, f: impl Fn() -> Value + Send + Sync + 'static) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_owned(), Arc::new(f));
    }

    /// Withdraws the status of `id` (an input removed while skiff runs: a reload, a container
    /// gone for autodiscover).
    pub fn remove(&self, id: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// Every status document, by id.
    pub fn snapshot(&self) -> BTreeMap<String, Value> {
        let entries: Vec<_> = {
            let g = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            g.iter().map(|(k, f)| (k.clone(), f.clone())).collect()
        };
        entries.into_iter().map(|(k, f)| (k, f())).collect()
    }
}

/// Everything a component may need while it is built.
#[derive(Clone, Debug)]
pub struct BuildContext {
    /// Who is shipping.
    pub agent: Arc<AgentInfo>,
    /// Where things live.
    pub paths: Paths,
    /// The process's metrics.
    pub metrics: Registry,
    /// The memory budget.
    pub budget: Budget,
    /// Status documents for the HTTP API.
    pub status: StatusBoard,
    /// Top-level `fields`, `fields_under_root` and `tags`, applied to every input.
    pub global: InputCommon,
}

/// The settings every input has, whatever its type. The binary takes these keys out of an input's
/// configuration before handing the rest to the input's own `build`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputCommon {
    /// `type`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// `id`: unique across inputs (required by inputs that keep state).
    #[serde(default)]
    pub id: Option<String>,
    /// `enabled` (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `fields`: custom fields, under `fields.*` (or at the root with `fields_under_root`).
    #[serde(default)]
    pub fields: Map,
    /// `fields_under_root` (default false).
    #[serde(default)]
    pub fields_under_root: bool,
    /// `tags`: appended to the event's `tags`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// `index`: overrides the output's index for this input's events (`@metadata.raw_index`).
    #[serde(default)]
    pub index: Option<String>,
    /// `pipeline`: the Elasticsearch ingest pipeline for this input's events.
    #[serde(default)]
    pub pipeline: Option<String>,
    /// `keep_null` (default false): keep fields whose value is null.
    #[serde(default)]
    pub keep_null: bool,
}

fn yes() -> bool {
    true
}

impl InputCommon {
    /// The keys [`InputCommon`] takes (plus `processors`, which the binary builds itself).
    pub const KEYS: &'static [&'static str] = &[
        "type",
        "id",
        "enabled",
        "fields",
        "fields_under_root",
        "tags",
        "index",
        "pipeline",
        "keep_null",
        "processors",
    ];
}

impl BuildContext {
    /// A context for building a component outside the agent: tests, benchmarks and examples
    /// (each crate used to assemble its own by hand). The agent is
    /// [`AgentInfo::fixed`]`(name, version)`; the memory budget counts into `metrics` (pass the
    /// registry the caller reads back, or a new one); `path.*` are empty (the current
    /// directory: set `paths.data` when the component keeps state); no global `fields` or
    /// `tags`; an empty status board.
    ///
    /// ```
    /// let mut ctx = skiff_pipeline::BuildContext::standalone("t", "9.9.9", &Default::default());
    /// ctx.paths.data = std::env::temp_dir();
    /// assert_eq!(ctx.agent.hostname, "t");
    /// ```
    pub fn standalone(name: &str, version: &str, metrics: &Registry) -> BuildContext {
        BuildContext {
            agent: Arc::new(AgentInfo::fixed(name, version)),
            paths: Paths::default(),
            metrics: metrics.clone(),
            budget: Budget::new(metrics.clone()),
            status: StatusBoard::default(),
            global: InputCommon::default(),
        }
    }

    /// The fields every event of an input shares (`agent`, `host`, `ecs`, `input.type`, `fields`,
    /// `tags`, and `@metadata` for routing), as Filebeat 8 stamps them.
    ///
    /// `agent_type` is the Beat this kind of input replaces (`filebeat`, `packetbeat`,
    /// `metricbeat`), so existing dashboards and ingest pipelines recognise the events.
    pub fn shared_fields(&self, common: &InputCommon, input_type: &str, agent_type: &str) -> Map {
        let a = &self.agent;
        let mut m = Map::new();
        m.insert(
            "agent".into(),
            serde_json::json!({
                "name": a.name, "type": agent_type, "version": a.version,
                "id": a.id, "ephemeral_id": a.ephemeral_id,
            }),
        );
        m.insert("host".into(), serde_json::json!({ "name": a.hostname }));
        m.insert(
            "ecs".into(),
            serde_json::json!({ "version": skiff_event::ECS_VERSION }),
        );
        m.insert("input".into(), serde_json::json!({ "type": input_type }));
        for layer in [&self.global, common] {
            if layer.fields.is_empty() {
                continue;
            }
            if layer.fields_under_root {
                for (k, v) in &layer.fields {
                    m.insert(k.clone(), v.clone());
                }
            } else {
                let f = m
                    .entry("fields")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(f) = f {
                    for (k, v) in &layer.fields {
                        f.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        let tags: Vec<Value> = self
            .global
            .tags
            .iter()
            .chain(&common.tags)
            .map(|t| Value::from(t.as_str()))
            .collect();
        if !tags.is_empty() {
            m.insert("tags".into(), Value::Array(tags));
        }
        let mut meta = Map::new();
        meta.insert("beat".into(), Value::from(agent_type));
        meta.insert("type".into(), Value::from("_doc"));
        meta.insert("version".into(), Value::from(a.version.as_str()));
        if let Some(i) = &common.index {
            meta.insert("raw_index".into(), Value::from(i.as_str()));
        }
        if let Some(p) = &common.pipeline {
            meta.insert("pipeline".into(), Value::from(p.as_str()));
        }
        m.insert("@metadata".into(), Value::Object(meta));
        m
    }
}

/// What an input gets when it runs.
pub struct InputContext {
    /// The input's id (its configured `id`, or one derived from its position).
    pub id: String,
    /// Where its events go.
    pub publisher: Publisher,
    /// Cancelled when skiff stops: the input should stop reading and return.
    pub shutdown: CancellationToken,
    /// The build context (paths, metrics, status board, ...).
    pub build: BuildContext,
    /// The fields shared by this input's events, from [`BuildContext::shared_fields`].
    pub shared: Arc<Map>,
}

/// An input's runtime: reads from somewhere and publishes events until its source ends or
/// `ctx.shutdown` is cancelled.
///
/// The topology supervises `run`: an `Err` or a panic is counted by its [`FailureKind`](crate::FailureKind)
/// and the input is built again from its configuration and restarted after a backoff, so an
/// input must be able to start again from its saved state.
#[async_trait]
pub trait Input: Send + 'static {
    /// Runs the input. Returning `Ok` means the source ended (stdin at EOF) or shutdown was asked.
    async fn run(self: Box<Self>, ctx: InputContext) -> Result<(), Failure>;

    /// Whether events still unacknowledged when skiff stops are read or sent again after the
    /// next start without loss: true for a file input (it resumes from its saved offset) and a
    /// Lumberjack input (the client resends its unacknowledged window); false (the default) for
    /// stdin, whose lines cannot be read twice. Decides the exit code of a stop that leaves
    /// events unacknowledged (docs/operations.md).
    fn replays_unacked(&self) -> bool {
        false
    }
}

/// An input's build function: its own settings (common keys removed), the common ones, context.
pub type BuildInput =
    fn(&Node, &InputCommon, &BuildContext) -> Result<Box<dyn Input>, ConfigErrors>;

/// A processor's build function.
pub type BuildProcessor = fn(&Node, &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors>;

/// The descriptor of an input type, one line in the binary's registry.
pub struct InputPlugin {
    /// The `type:` value (`filestream`, `stdin`, ...).
    pub name: &'static str,
    /// The Beat this input replaces (`filebeat`), stamped as `agent.type`.
    pub agent_type: &'static str,
    /// Validates the input's own settings (the common ones are already removed) and builds it.
    pub build: BuildInput,
}

/// What a processor decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Pass the event on.
    Keep,
    /// Drop it (it is acknowledged as handled: dropping on purpose is not a loss).
    Drop,
}

/// A processor: changes or drops events, in the input's task, before they are queued.
pub trait Processor: Send + Sync + 'static {
    /// Processes one event in place.
    fn process(&self, event: &mut Event) -> Verdict;
}

/// The descriptor of a processor type.
pub struct ProcessorPlugin {
    /// The processor's key in a `processors` list item (`add_fields`, `drop_event`, ...).
    pub name: &'static str,
    /// Validates its settings and builds it.
    pub build: BuildProcessor,
}

/// How a sent batch turned out when the send itself went through.
///
/// Indices are into the slice passed to [`Output::send`]. An event in neither list was
/// delivered.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Events to send again (the server was busy: an Elasticsearch 429 item, a Kafka retriable
    /// error).
    pub retry: Vec<usize>,
    /// Events the server refused for good, with its reason (a mapping error, too large): they go
    /// to the dead-letter file.
    pub rejected: Vec<(usize, String)>,
}

impl Outcome {
    /// Everything delivered.
    pub fn delivered() -> Self {
        Self::default()
    }
}

/// An output client: one connection (or connection pool) to one destination.
///
/// The [worker](crate::worker) owns retries, backoff, acknowledgements and dead letters; a
/// client only sends and reports.
#[async_trait]
pub trait Output: Send + 'static {
    /// Sends `events`. `Err` means the batch as a whole failed (connection refused, timeout, a
    /// reply that broke the protocol): all of it is retried after a backoff, and nothing of it
    /// counts as delivered. The [`Failure`]'s kind is what the worker logs (`kind=`) and counts
    /// (`skiff.output.errors{kind}`); make its message say what to check: it is logged as is.
    async fn send(&mut self, events: &[Event]) -> Result<Outcome, Failure>;

    /// Puts the client back in a known state after it panicked inside [`Output::send`]: drop
    /// any connection (it may be half-way through a reply) and per-batch state. The worker
    /// calls it before retrying the batch; the next send starts afresh. The default does
    /// nothing, which is right for clients that keep no state between sends.
    ///
    /// Why reset rather than rebuild: every client's state that a panic can leave broken is its
    /// connection and its scratch buffers; its configuration (hosts, TLS, routing) is immutable
    /// after `build`, so a rebuild would only redo what cannot have changed.
    async fn reset(&mut self) {}

    /// A short name for logs and metrics: `elasticsearch(https://es1:9200)`.
    fn describe(&self) -> String;

    /// Flushes and closes the client at shutdown.
    async fn close(&mut self) {}
}

/// Batching and retry settings of an output, taken from its configuration.
#[derive(Clone, Debug)]
pub struct OutputSettings {
    /// `bulk_max_size`: events per batch.
    pub bulk_max_size: usize,
    /// `max_retries`: attempts per batch before giving up; negative = retry forever (default).
    pub max_retries: i64,
    /// `backoff.init`.
    pub backoff_init: Duration,
    /// `backoff.max`.
    pub backoff_max: Duration,
    /// `loadbalance`: send to all clients at once (true) or use the first and fail over (false).
    pub loadbalance: bool,
}

impl Default for OutputSettings {
    fn default() -> Self {
        OutputSettings {
            bulk_max_size: 2048,
            max_retries: -1,
            backoff_init: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            loadbalance: true,
        }
    }
}

/// A built output: its clients (one per host and `worker`) and settings.
pub struct OutputSet {
    /// The clients; with `loadbalance` each gets a worker of its own.
    pub clients: Vec<Box<dyn Output>>,
    /// Batching and retry settings.
    pub settings: OutputSettings,
}

/// One step of `skiff test output`.
#[derive(Clone, Debug)]
pub struct ProbeStep {
    /// What was checked: `dns es1`, `connect 10.0.0.1:9200`, `tls handshake`, ...
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found (version, certificate subject, time taken) or what went wrong.
    pub detail: String,
    /// What to do about a failure.
    pub hint: Option<String>,
}

impl ProbeStep {
    /// One step, as every output's probe writes them.
    pub fn new(
        name: impl Into<String>,
        ok: bool,
        detail: impl Into<String>,
        hint: Option<&str>,
    ) -> Self {
        ProbeStep {
            name: name.into(),
            ok,
            detail: detail.into(),
            hint: hint.map(str::to_owned),
        }
    }
}

/// The future `skiff test output` runs for an output.
pub type ProbeFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Vec<ProbeStep>> + Send>>;

/// The descriptor of an output type, one line in the binary's registry.
pub struct OutputPlugin {
    /// The key under `output.` (`elasticsearch`, `console`, ...).
    pub name: &'static str,
    /// Validates the output's settings and builds its clients.
    pub build: fn(&Node, &BuildContext) -> Result<OutputSet, ConfigErrors>,
    /// Checks connectivity step by step for `skiff test output` (None: not supported).
    pub probe: Option<fn(&Node, &BuildContext) -> ProbeFuture>,
    /// A step run once at start, before events are sent (the Elasticsearch index template and
    /// ILM policy). The topology runs it with a time limit and logs its outcome; a failure is
    /// not fatal (events are sent anyway, as the Beats do). None: nothing to set up.
    pub setup: Option<fn(&Node, &SetupContext) -> SetupFuture>,
}

/// What an output's setup step gets besides its own configuration.
#[derive(Clone, Debug)]
pub struct SetupContext {
    /// The build context (agent version, paths, metrics).
    pub build: BuildContext,
    /// The `setup.*` section of the configuration (an empty map when absent).
    pub setup: Node,
}

/// The future of an output's setup step: what was done (logged at info), or why it failed
/// (logged as a warning).
pub type SetupFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, Failure>> + Send>>;

/// `backoff.*` of every network output: the wait after a failure, doubling from `init` to `max`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackoffConfig {
    /// `backoff.init`: the first wait. Default 1s.
    #[serde(default = "backoff_init")]
    pub init: skiff_config::Duration,
    /// `backoff.max`: the longest wait. Default 60s.
    #[serde(default = "backoff_max")]
    pub max: skiff_config::Duration,
}

fn backoff_init() -> skiff_config::Duration {
    skiff_config::Duration(Duration::from_secs(1))
}

fn backoff_max() -> skiff_config::Duration {
    skiff_config::Duration(Duration::from_secs(60))
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            init: backoff_init(),
            max: backoff_max(),
        }
    }
}
