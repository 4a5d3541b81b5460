//! What a topology is built from: the parts of the configuration that components build, plus
//! the settings of the pipeline as a whole (stopping, dead letters, supervision).
//!
//! The binary splits and validates the file (agent-wide settings, logging, HTTP) and hands
//! this over; the library never reads files or the command line.

use std::time::Duration;

use serde::Deserialize;
use skiff_config::Node;
use skiff_pipeline::BackoffConfig;
use skiff_pipeline::dead_letter::DeadLetterConfig;

/// The configuration of one pipeline.
#[derive(Clone, Debug, Default)]
pub struct PipelineConfig {
    /// The input items, each a map with at least `type`.
    pub inputs: Vec<Node>,
    /// The global `processors` list.
    pub processors: Option<Node>,
    /// The one enabled output: its name and settings.
    pub output: Option<(String, Node)>,
    /// `queue.mem` or `queue.disk` (name and settings), if configured.
    pub queue: Option<(String, Node)>,
    /// The `setup.*` section, handed to the output's setup step.
    pub setup: Option<Node>,
    /// `shutdown_timeout`.
    pub shutdown_timeout: Duration,
    /// `dead_letter.*`.
    pub dead_letter: DeadLetterConfig,
    /// `supervision.*`.
    pub supervision: SupervisionConfig,
}

/// `supervision.*`: how a failed input is restarted, and when skiff gives up.
///
/// An input whose task panics or returns an error is built again from its configuration and
/// restarted after `backoff.init`, doubling to `backoff.max`. More than `max_restarts`
/// restarts within `restart_window` mean it cannot run: skiff stops with the reason and exits
/// non-zero, rather than retrying a broken component forever unseen.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisionConfig {
    /// `supervision.max_restarts` (default 5).
    #[serde(default = "default_max_restarts")]
    pub max_restarts: u32,
    /// `supervision.restart_window` (default 5m).
    #[serde(default = "default_window")]
    pub restart_window: skiff_config::Duration,
    /// `supervision.backoff.*`: the same type and defaults as every output's `backoff.*`
    /// (1s doubling to 60s), so that one setting means one thing wherever it is written.
    #[serde(default)]
    pub backoff: BackoffConfig,
}

fn default_max_restarts() -> u32 {
    5
}
fn default_window() -> skiff_config::Duration {
    skiff_config::Duration(Duration::from_secs(300))
}
impl Default for SupervisionConfig {
    fn default() -> Self {
        SupervisionConfig {
            max_restarts: default_max_restarts(),
            restart_window: default_window(),
            backoff: BackoffConfig::default(),
        }
    }
}
