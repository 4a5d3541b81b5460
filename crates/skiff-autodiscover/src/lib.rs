//! Autodiscover: inputs started and stopped for what a provider finds running.
//!
//! Filebeat users on Docker or Kubernetes rarely list log paths. They name a provider
//! (`filebeat.autodiscover.providers`), and for each container it reports, Filebeat fills a
//! template (`${data.*}` variables, a `condition`) or reads the container's hints
//! (`co.elastic.logs/*` labels or annotations) into input settings, starts that input, and stops
//! it when the container stops, after what it wrote was shipped (`cleanup_timeout`).
//!
//! The split here follows that: a [`Provider`] only watches its source (the Docker Engine API,
//! the Kubernetes API server) and reports [`Change`]s; everything after that (templates,
//! conditions, hints, starting and stopping inputs) is shared, so a provider is one module
//! implementing one trait and one line in [`PROVIDERS`].
//!
//! Modules: [`config`] (`filebeat.autodiscover.providers`), [`template`] (conditions and
//! `${data.*}`), [`hints`] (`co.elastic.logs/*` into input settings), [`runner`] (changes into
//! inputs added to and removed from the running topology), [`engine`] (a small Docker Engine
//! API client), [`docker`] (the provider), [`docker_metadata`] (the `add_docker_metadata`
//! processor).

pub mod config;
pub mod docker;
pub mod docker_metadata;
pub mod engine;
pub mod hints;
pub mod runner;
pub mod template;

pub mod kubernetes;

use serde_json::{Map, Value};
use skiff_config::{ConfigErrors, Node};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Something a provider found running: a container (Docker) or a pod's container (Kubernetes).
#[derive(Debug, Clone, PartialEq)]
pub struct Discovered {
    /// Stable id of what was found, unique within the provider (the container id). The inputs
    /// started for it are keyed by it, and its stop names it.
    pub id: String,
    /// The `${data.*}` namespace templates and conditions see, as nested JSON without the
    /// `data.` prefix: for Docker `{"docker": {"container": {"id", "name", "image", "labels"}},
    /// "container": {...}}`, for Kubernetes `{"kubernetes": {"pod": ..., "namespace": ...,
    /// "container": ..., "labels": ..., "annotations": ...}, "container": {...}}`, as Filebeat
    /// documents for each provider.
    pub data: Map<String, Value>,
    /// The hints of this container: its `co.elastic.logs/*` labels or annotations, with that
    /// prefix removed (`"module"`, `"fileset.stdout"`, `"multiline.pattern"`, ...).
    pub hints: Vec<(String, String)>,
    /// The fields `add_docker_metadata` / `add_kubernetes_metadata` put on every event of the
    /// inputs started for it (`container.*`, `kubernetes.*`), nested.
    pub meta: Map<String, Value>,
}

/// What a provider reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Found running (also every container already running when the provider starts).
    Start(Discovered),
    /// Stopped or gone; names a [`Discovered::id`] reported before.
    Stop {
        /// The id given in the matching [`Change::Start`].
        id: String,
    },
}

/// Why a provider could not go on.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The source (socket, API server) could not be reached.
    #[error("cannot connect to {what}: {reason}")]
    Connect {
        /// What was being connected to.
        what: String,
        /// The reason, in plain words.
        reason: String,
    },
    /// The source answered something the provider does not understand.
    #[error("unexpected answer from {what}: {reason}")]
    Protocol {
        /// Who answered.
        what: String,
        /// What was wrong with it.
        reason: String,
    },
}

/// A source of [`Change`]s. `run` watches until `cancel` fires, reporting through `tx`; after a
/// lost connection it reconnects itself and reports the difference (a `Stop` for what vanished
/// meanwhile, a `Start` for what appeared), so the runner only ever sees a consistent stream.
#[async_trait::async_trait]
pub trait Provider: Send + 'static {
    /// The provider's `type` in the configuration (`docker`, `kubernetes`).
    fn name(&self) -> &'static str;
    /// Watches until cancelled. An `Err` is a failure the supervisor logs and restarts after.
    async fn run(
        self: Box<Self>,
        tx: mpsc::Sender<Change>,
        cancel: CancellationToken,
    ) -> Result<(), ProviderError>;
}

/// The descriptor of a provider type: its `type` in the configuration, how to build it from its
/// own settings (the provider's map without the shared keys `type`, `templates`, `hints`,
/// `cleanup_timeout`), and the input settings its hints start from when the user gives no
/// `hints.default_config` (YAML, with `${data.*}` variables).
pub struct ProviderPlugin {
    /// `type: <name>`.
    pub name: &'static str,
    /// Builds the provider; errors carry file:line of the provider's settings.
    pub build: fn(&Node) -> Result<Box<dyn Provider>, ConfigErrors>,
    /// Filebeat's `hints.default_config` for this provider.
    pub default_hints_config: &'static str,
}

/// Every provider type, one line each.
pub const PROVIDERS: &[&ProviderPlugin] = &[&docker::PLUGIN, &kubernetes::PLUGIN];
