//! `output.elasticsearch`: events into Elasticsearch through the `_bulk` API, as Filebeat 8
//! sends them.
//!
//! Where it sits: the last stage of the pipeline. The binary builds this output from
//! `output.elasticsearch` ([`PLUGIN`]); the pipeline's output workers pop batches of up to
//! `bulk_max_size` events from the queue and call [`EsClient`]'s `send`, which returns, per
//! event, delivered / retry / rejected; the worker acks, retries with backoff, or dead-letters.
//!
//! What happens to a batch:
//! 1. [`select`] names each event's index or data stream (`@metadata.raw_index`, `indices`
//!    rules with `when` conditions ([`skiff_processors::select`]), `index`; default `<beat>-%{[agent.version]}` (`@metadata.beat`: filebeat, packetbeat, metricbeat), a data
//!    stream) and ingest pipeline.
//! 2. [`bulk`] writes NDJSON (`create` actions, as libbeat 8 does: the only op a data stream
//!    takes; `index` when `@metadata.op_type: index`), gzipped at `compression_level`.
//! 3. The [client](EsClient) POSTs it to `<host>/_bulk?filter_path=errors,items.*.error,items.*.status`:
//!    per-item 2xx (and 409 on `create`: already there) are delivered, 429/5xx items retried,
//!    other refusals (mapping conflicts) rejected with `type: reason`; a whole-request 413 is
//!    split in halves; 401/403/429/5xx and network errors fail the whole batch with a message
//!    saying what to check.
//!
//! Also here: [`probe`] for `skiff test output` and [`index_template`] /
//! [`template::install_template`] for `setup.template.*`.

pub mod bulk;
mod client;
pub mod config;
pub mod error;
pub mod probe;
pub mod select;
pub mod template;

use std::sync::Arc;

use base64::Engine;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use skiff_config::{ConfigError, ConfigErrors, Node};
use skiff_metrics::names;
use skiff_pipeline::{BuildContext, OutputPlugin, OutputSet, OutputSettings};

pub use client::EsClient;
pub use config::EsConfig;
pub use error::EsError;
pub use template::index_template;

/// The registry entry: `output.elasticsearch`.
pub static PLUGIN: OutputPlugin = OutputPlugin {
    name: "elasticsearch",
    build,
    probe: Some(probe::probe),
    setup: Some(template::setup),
};

/// Everything a client needs that is the same for all hosts.
pub(crate) struct Shared {
    pub cfg: EsConfig,
    pub hosts: Vec<config::Host>,
    pub http: reqwest::Client,
    pub headers: HeaderMap,
    pub tls: Arc<skiff_tls::rustls::ClientConfig>,
}

fn err(node: &Node, key: &str, msg: impl Into<String>) -> ConfigError {
    let n = node.get(key).unwrap_or(node);
    let path = if key.is_empty() {
        node.path().to_owned()
    } else {
        format!("{}.{key}", node.path())
    };
    ConfigError::new(path, n.mark.clone(), msg)
}

/// Validates the settings and prepares the HTTP client (shared by [`build`] and the probe).
pub(crate) fn prepare(node: &Node) -> Result<Shared, ConfigErrors> {
    let cfg: EsConfig = node.deserialize()?;
    let mut errors = Vec::new();
    if cfg.hosts.is_empty() {
        errors.push(err(
            node,
            "hosts",
            "at least one host is needed, e.g. `hosts: [\"http://localhost:9200\"]`",
        ));
    }
    if cfg.compression_level > 9 {
        errors.push(err(node, "compression_level", "must be 0 (off) to 9"));
    }
    if cfg.worker == 0 {
        errors.push(err(node, "worker", "must be at least 1"));
    }
    if cfg.bulk_max_size == 0 {
        errors.push(err(node, "bulk_max_size", "must be at least 1"));
    }
    let ssl = cfg.ssl.clone().filter(|s| s.is_enabled());
    let protocol = cfg
        .protocol
        .clone()
        .unwrap_or_else(|| if ssl.is_some() { "https" } else { "http" }.to_owned());
    let mut hosts = Vec::new();
    for (i, h) in cfg.hosts.iter().enumerate() {
        match config::parse_host(h, &protocol, cfg.path.as_deref()) {
            Ok(h) => hosts.push(h),
            Err(e) => errors.push(err(node, &format!("hosts.{i}"), e)),
        }
    }
    let tls = match skiff_tls::client_config(&ssl.unwrap_or_default()) {
        Ok(t) => Some(t),
        Err(e) => {
            errors.push(err(node, "ssl", e.to_string()));
            None
        }
    };
    let mut headers = HeaderMap::new();
    for (k, v) in &cfg.headers {
        match (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            (Ok(n), Ok(v)) => {
                headers.insert(n, v);
            }
            _ => errors.push(err(
                node,
                &format!("headers.{k}"),
                "not a valid HTTP header",
            )),
        }
    }
    let auth = match (&cfg.api_key, &cfg.username) {
        (Some(key), _) => {
            let enc = if key.contains(':') {
                base64::engine::general_purpose::STANDARD.encode(key)
            } else {
                key.clone()
            };
            Some(format!("ApiKey {enc}"))
        }
        (None, Some(u)) => {
            let p = cfg.password.clone().unwrap_or_default();
            Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            ))
        }
        (None, None) => None,
    };
    if let Some(a) = auth {
        match HeaderValue::from_str(&a) {
            Ok(mut v) => {
                v.set_sensitive(true);
                headers.insert(AUTHORIZATION, v);
            }
            Err(_) => errors.push(err(
                node,
                "username",
                "credentials contain characters HTTP cannot carry",
            )),
        }
    }
    let (Some(tls), true) = (tls, errors.is_empty()) else {
        return Err(ConfigErrors(errors));
    };
    let mut b = reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .timeout(cfg.timeout.0)
        .connect_timeout(cfg.timeout.0)
        .user_agent(concat!("skiff/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(std::time::Duration::from_secs(60));
    if cfg.proxy_disable {
        b = b.no_proxy();
    }
    if let Some(p) = &cfg.proxy_url {
        match reqwest::Proxy::all(p) {
            Ok(p) => b = b.proxy(p),
            Err(e) => return Err(err(node, "proxy_url", e.to_string()).into()),
        }
    }
    let http = b.build().map_err(|e| {
        ConfigErrors::from(err(node, "", format!("cannot create the HTTP client: {e}")))
    })?;
    Ok(Shared {
        cfg,
        hosts,
        http,
        headers,
        tls,
    })
}

/// Builds the output: one client per host and `worker`.
pub fn build(node: &Node, ctx: &BuildContext) -> Result<OutputSet, ConfigErrors> {
    let shared = prepare(node)?;
    let routing = select::Routing::new(&shared.cfg, node)?;
    let cfg = &shared.cfg;
    let write_bytes = ctx.metrics.counter(&names::OUTPUT_WRITE_BYTES);
    let read_errors = ctx.metrics.counter(&names::OUTPUT_READ_ERRORS);
    let mut clients: Vec<Box<dyn skiff_pipeline::Output>> = Vec::new();
    for host in &shared.hosts {
        for _ in 0..cfg.worker {
            clients.push(Box::new(EsClient {
                http: shared.http.clone(),
                host: host.clone(),
                bulk_url: client::bulk_url(host, &cfg.parameters),
                headers: shared.headers.clone(),
                compression_level: cfg.compression_level,
                routing: routing.clone(),
                write_bytes: write_bytes.clone(),
                read_errors: read_errors.clone(),
                body: bulk::Body::default(),
                shared_json: Default::default(),
                wire: Vec::new(),
            }));
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
