//! Metrics collection as Metricbeat does it: `metricbeat.modules` blocks, each a module
//! (`golang`, `system`, ...) with metricsets fetched from hosts every `period`, shipped as
//! events through the same pipeline (processors, queue, output) as logs.
//!
//! Where it sits: every module block is an **input** (`type: metrics`, built by this crate's
//! [`PLUGIN`]), so the topology gives it what every input has (`fields`, `tags`, `processors`,
//! `index`, `enabled`, supervision) and its events carry `agent.type: metricbeat` and
//! `@metadata.beat: metricbeat`. The binary turns the `metricbeat.*` section into such inputs
//! with [`section::inputs_from_section`], so a `metricbeat.yml` loads as it is and may share a
//! file with `filebeat.inputs`.
//!
//! Why a framework and not one input per module: Metricbeat's users write their own modules
//! (the `golang` module began that way). A module here is one file under `modules/`, one
//! [`Module`] implementation (name, metricsets, how to build a [`Fetcher`] for one metricset of
//! one host) and one line in [`modules::MODULES`]; the framework does the rest: the common keys
//! ([`config`]), the schedule with start-up jitter, the fetch timeout and the envelope
//! ([`scheduler`]), errors as events. `docs/adding-a-module.md` walks through `golang`.
//!
//! Metric events are not acknowledged back to their source: a sample lost in a crash is not
//! fetched again (Metricbeat neither), so fetchers publish without an ack token. Push
//! metricsets (prometheus `remote_write`, see [`listener`]) are the exception: their samples
//! exist only in the sender's request, so they are published with tokens and the sender is
//! answered after the output acknowledged them.
//!
//! ```
//! let yaml = "module: golang\nmetricsets: [heap]\nhosts: ['127.0.0.1:6060']\nperiod: 10s\n";
//! let node = skiff_config::parse_str(yaml, Some("m.yml")).unwrap();
//! let block = skiff_input_metrics::Block::from_node(&node).unwrap();
//! assert_eq!(block.fetchers.len(), 1);
//! assert_eq!(block.fetchers[0].0.host.as_ref().unwrap().address, "127.0.0.1:6060");
//! ```

#![deny(missing_docs)]

pub mod config;
mod error;
pub mod host;
pub mod http;
pub mod listener;
mod module;
pub mod modules;
pub mod monitoring;
pub mod scheduler;
pub mod section;
pub mod tcp;

use std::sync::Arc;

use async_trait::async_trait;
use skiff_config::{ConfigErrors, Node};
use skiff_event::{Map, Value};
use skiff_pipeline::{BuildContext, Failure, Input, InputCommon, InputContext, InputPlugin};

pub use config::Block;
pub use error::Error;
pub use module::{FetchContext, Fetcher, MetricEvent, Module, config_error, no_options};

/// The input type a module block becomes.
pub const INPUT_TYPE: &str = "metrics";

/// `type: metrics`: one module block.
pub static PLUGIN: InputPlugin = InputPlugin {
    name: INPUT_TYPE,
    agent_type: "metricbeat",
    build,
};

fn build(
    node: &Node,
    _common: &InputCommon,
    ctx: &BuildContext,
) -> Result<Box<dyn Input>, ConfigErrors> {
    let mut block = Block::from_node(node)?;
    block.metrics = ctx.metrics.clone();
    Ok(Box::new(block))
}

#[async_trait]
impl Input for Block {
    async fn run(self: Box<Self>, ctx: InputContext) -> Result<(), Failure> {
        // Metricbeat's events have no `input.*`.
        let mut shared = (*ctx.shared).clone();
        shared.remove("input");
        let shared = Arc::new(shared);
        let mut tasks = tokio::task::JoinSet::new();
        let block = *self;
        for (fctx, mut fetcher) in block.fetchers {
            let counters = scheduler::Counters::new(&block.metrics, &fctx);
            if let Some(l) = fetcher.listener() {
                let sink = listener::Sink::new(
                    fctx,
                    block.service_name.clone(),
                    ctx.publisher.clone(),
                    shared.clone(),
                    ctx.shutdown.clone(),
                    counters,
                );
                tasks.spawn(listener::run_listener(l, sink));
                continue;
            }
            tasks.spawn(scheduler::run_fetcher(
                fctx,
                fetcher,
                block.max_start_delay,
                block.service_name.clone(),
                ctx.publisher.clone(),
                shared.clone(),
                ctx.shutdown.clone(),
                counters,
            ));
        }
        while let Some(r) = tasks.join_next().await {
            if let Err(e) = r
                && e.is_panic()
            {
                std::panic::resume_unwind(e.into_panic());
            }
        }
        Ok(())
    }
}

impl Block {
    /// Fetches every metricset of every host once, one after the other, and returns the events
    /// as JSON objects (envelope included, `@timestamp` as RFC 3339): what the tests compare.
    pub async fn fetch_all_once(&mut self) -> Vec<Map> {
        self.fetch_each_once()
            .await
            .into_iter()
            .flat_map(|f| f.events)
            .collect()
    }

    /// Like [`fetch_all_once`](Self::fetch_all_once), per fetcher: what `skiff test modules`
    /// prints.
    pub async fn fetch_each_once(&mut self) -> Vec<Fetched> {
        let mut out = Vec::new();
        for (ctx, fetcher) in &mut self.fetchers {
            let events = scheduler::fetch_once(ctx, fetcher.as_mut(), self.service_name.as_deref())
                .await
                .into_iter()
                .map(|(ts, mut fields)| {
                    fields.insert("@timestamp".into(), Value::from(ts.to_rfc3339_millis()));
                    fields
                })
                .collect();
            out.push(Fetched {
                metricset: ctx.metricset.clone(),
                host: ctx.host.as_ref().map(|h| h.raw.clone()),
                events,
            });
        }
        out
    }
}

/// The events of one fetch of one fetcher.
#[derive(Debug)]
pub struct Fetched {
    /// The metricset.
    pub metricset: String,
    /// The host as configured, if the module has hosts.
    pub host: Option<String>,
    /// The events (an error is an event with `error.message`).
    pub events: Vec<Map>,
}

/// The first `error.message` among `events`, if any.
pub fn error_of(events: &[Map]) -> Option<&str> {
    events.iter().find_map(|e| {
        e.get("error")
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
    })
}
