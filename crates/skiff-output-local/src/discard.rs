//! `output.discard`: acknowledges every batch at once and writes nothing.
//!
//! For benchmarks: it measures inputs, processors and the queue without any output cost.

use async_trait::async_trait;
use serde::Deserialize;
use skiff_config::{ConfigErrors, Node};
use skiff_event::Event;
use skiff_pipeline::{BuildContext, Outcome, Output, OutputSet};

/// `output.discard.*`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscardConfig {
    /// `enabled`. Default true.
    #[serde(default = "crate::yes")]
    pub enabled: bool,
    /// `bulk_max_size`: events per batch. Default 2048.
    #[serde(default = "crate::default_bulk_max_size")]
    pub bulk_max_size: usize,
    /// `max_retries`: attempts per batch before its events go to the dead-letter file; -1
    /// (the default) retries forever.
    #[serde(default = "crate::default_max_retries")]
    pub max_retries: i64,
    /// `backoff.init` / `backoff.max`: the wait between retries. Default 1s doubling to 60s.
    #[serde(default)]
    pub backoff: crate::Backoff,
}

/// Builds `output.discard`.
pub fn build(node: &Node, _ctx: &BuildContext) -> Result<OutputSet, ConfigErrors> {
    let cfg: DiscardConfig = node.deserialize()?;
    Ok(OutputSet {
        clients: vec![Box::new(Discard)],
        settings: crate::settings(cfg.bulk_max_size, cfg.max_retries, cfg.backoff),
    })
}

/// The discard client.
#[derive(Debug, Default)]
pub struct Discard;

#[async_trait]
impl Output for Discard {
    async fn send(&mut self, _events: &[Event]) -> Result<Outcome, skiff_pipeline::Failure> {
        Ok(Outcome::delivered())
    }

    fn describe(&self) -> String {
        "discard".into()
    }
}
