//! `output.logstash`: ships batches to Logstash beats inputs (or skiff lumberjack inputs).
//!
//! One [`LumberjackClient`] per host x `worker`; the pipeline [worker](skiff_pipeline::worker)
//! gives each a batch, which goes out as one window (or several with `slow_start`), compressed
//! with zlib at `compression_level`. The batch is delivered when the server's ACKs reach the last
//! sequence number of every window. When the connection breaks after a partial ACK, the
//! acknowledged prefix is reported delivered and only the rest is retried.

pub mod client;
pub mod config;
pub mod error;
mod probe;
pub mod window;

use std::sync::Arc;

use skiff_config::{ConfigErrors, Node};
use skiff_pipeline::{BuildContext, Output, OutputPlugin, OutputSet, OutputSettings};

pub use client::{LumberjackClient, Settings};
use config::{Host, LogstashConfig};
pub use error::LogstashError;

/// The `output.logstash` plugin.
pub static OUTPUT: OutputPlugin = OutputPlugin {
    name: "logstash",
    build,
    probe: Some(|node, ctx| Box::pin(probe::probe(node.clone(), ctx.clone()))),
    setup: None,
};

/// The validated configuration, the hosts and the shared client settings.
pub(crate) fn parse(
    node: &Node,
) -> Result<(LogstashConfig, Vec<Host>, Arc<Settings>), ConfigErrors> {
    let cfg: LogstashConfig = node.deserialize()?;
    let errs = config::validate(&cfg, node);
    if !errs.is_empty() {
        return Err(ConfigErrors(errs));
    }
    let hosts: Vec<Host> = cfg
        .hosts
        .iter()
        .filter_map(|h| config::parse_host(h, cfg.port).ok())
        .collect();
    let tls = match &cfg.ssl {
        Some(ssl) if ssl.is_enabled() => match skiff_tls::client_config(ssl) {
            Ok(c) => Some(c),
            Err(e) => {
                let n = node.get("ssl").unwrap_or(node);
                return Err(skiff_config::ConfigError::new(
                    n.path(),
                    n.mark.clone(),
                    e.to_string(),
                )
                .into());
            }
        },
        _ => None,
    };
    let settings = Arc::new(Settings {
        timeout: cfg.timeout.0,
        ttl: cfg.ttl.0,
        compression_level: cfg.compression_level,
        pipelining: cfg.pipelining,
        slow_start: cfg.slow_start,
        bulk_max_size: cfg.bulk_max_size,
        escape_html: cfg.escape_html,
        index: cfg.index.clone(),
        tls,
    });
    Ok((cfg, hosts, settings))
}

fn build(node: &Node, ctx: &BuildContext) -> Result<OutputSet, ConfigErrors> {
    let (cfg, hosts, settings) = parse(node)?;
    let mut clients: Vec<Box<dyn Output>> = Vec::new();
    for h in &hosts {
        for _ in 0..cfg.worker {
            clients.push(Box::new(LumberjackClient::new(
                h.clone(),
                settings.clone(),
                &ctx.metrics,
            )));
        }
    }
    Ok(OutputSet {
        clients,
        settings: OutputSettings {
            bulk_max_size: cfg.bulk_max_size,
            max_retries: cfg.max_retries,
            backoff_init: cfg.backoff.init.0,
            backoff_max: cfg.backoff.max.0,
            loadbalance: cfg.loadbalance,
        },
    })
}
