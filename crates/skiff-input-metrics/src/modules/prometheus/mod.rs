//! `prometheus`: scrape Prometheus and OpenMetrics endpoints (`collector`), as Metricbeat's
//! prometheus module in its classic layout (`use_types: false`).
//!
//! `collector` GETs `hosts` + `metrics_path` (default `/metrics`); the body is read as text
//! whatever its `Content-Type` says (exporters lie). Samples with the same labels make one
//! event (`prometheus.labels.*`, `prometheus.metrics.*`); NaN and ±Inf are dropped; every event
//! gets `instance` (the host) and `job` (`prometheus`) labels; a synthetic `up` is 1 after a
//! good scrape, and 0 with an error event after a failed one. Options: `metrics_path`,
//! `metrics_filters.{include, exclude}` (regular expressions on family names, unanchored as in
//! Metricbeat), `metrics_count` (adds `metrics_count`, the number of metrics in the event).
//! `use_types: true` and `rate_counters: true` (Metricbeat beta/experimental) are refused with
//! an error that says so.
//!
//! `query` runs PromQL queries against a Prometheus server's HTTP API (`queries: [{name, path,
//! params}]`, see `query.rs`).
//!
//! `remote_write` receives what Prometheus pushes (`host`, `port`, `ssl`; a push metricset run
//! as a listener, see `remote_write.rs`).

mod query;
pub mod remote_write;
pub mod text;

use crate::config_error;
use async_trait::async_trait;
use regex::RegexSet;
use serde::Deserialize;
use skiff_config::{ConfigError, ConfigErrors, Node};
use skiff_event::{Map, Value};

use crate::http::HttpFetch;
use crate::{Error, FetchContext, Fetcher, MetricEvent, Module};

/// The module.
pub struct Prometheus;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `metrics_path`: default `/metrics`.
    #[serde(default)]
    metrics_path: Option<String>,
    /// `metrics_filters`: default none (keep everything).
    #[serde(default)]
    metrics_filters: Filters,
    /// `metrics_count`: default false.
    #[serde(default)]
    metrics_count: bool,
    /// `use_types`: default false (only false is supported).
    #[serde(default)]
    use_types: bool,
    /// `rate_counters`: default false (only false is supported).
    #[serde(default)]
    rate_counters: bool,
    /// `queries` (the `query` metricset): `[{name, path, params}]`. Required by `query`.
    #[serde(default)]
    queries: Vec<query::QueryConfig>,
    /// `host` (`remote_write`): the address to listen on. Default `localhost`.
    #[serde(default)]
    host: Option<String>,
    /// `port` (`remote_write`): number or string, as Metricbeat's examples write it. Default 9201.
    #[serde(default)]
    port: Option<Port>,
    /// `max_compressed_body_bytes` (`remote_write`). Default 2 MiB.
    #[serde(default)]
    max_compressed_body_bytes: Option<usize>,
    /// `max_decoded_body_bytes` (`remote_write`). Default 10 MiB.
    #[serde(default)]
    max_decoded_body_bytes: Option<usize>,
}

/// A port written `9201` or `"9201"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Port {
    Number(u16),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Filters {
    /// `include`: keep only families matching one of these. Default: all.
    #[serde(default)]
    include: Vec<String>,
    /// `exclude`: drop families matching one of these. Default: none.
    #[serde(default)]
    exclude: Vec<String>,
}

/// Compiled `metrics_filters`.
struct FamilyFilter {
    include: Option<RegexSet>,
    exclude: Option<RegexSet>,
}

impl text::Filter for FamilyFilter {
    fn keep(&self, family: &str) -> bool {
        self.include.as_ref().is_none_or(|s| s.is_match(family))
            && !self.exclude.as_ref().is_some_and(|s| s.is_match(family))
    }
}

fn set(patterns: &[String], own: &Node, key: &str) -> Result<Option<RegexSet>, ConfigError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    RegexSet::new(patterns).map(Some).map_err(|e| {
        let at = own.get(key).unwrap_or(own);
        ConfigError::new(
            at.path.clone(),
            at.mark.clone(),
            format!("invalid regular expression: {e}"),
        )
    })
}

impl Module for Prometheus {
    fn name(&self) -> &'static str {
        "prometheus"
    }

    fn metricsets(&self) -> &'static [&'static str] {
        &["collector", "query", "remote_write"]
    }

    fn default_metricsets(&self) -> &'static [&'static str] {
        &["collector"]
    }

    fn default_hosts(&self) -> &'static [&'static str] {
        &["localhost:9090"]
    }

    fn build(
        &self,
        metricset: &str,
        ctx: &FetchContext,
        own: &Node,
    ) -> Result<Box<dyn Fetcher>, ConfigErrors> {
        let cfg: Config = own.deserialize()?;
        if metricset == "query" {
            return query::build(ctx, own, cfg.queries);
        }
        let mut errors = Vec::new();
        for (on, key) in [
            (cfg.use_types, "use_types"),
            (cfg.rate_counters, "rate_counters"),
        ] {
            if on {
                let at = own.get(key).unwrap_or(own);
                errors.push(ConfigError::new(
                    at.path.clone(),
                    at.mark.clone(),
                    format!(
                        "`{key}: true` (Metricbeat's typed layout) is not supported: remove it"
                    ),
                ));
            }
        }
        if metricset == "remote_write" {
            return remote_write_fetcher(ctx, own, &cfg, errors);
        }
        let include = set(&cfg.metrics_filters.include, own, "metrics_filters.include");
        let exclude = set(&cfg.metrics_filters.exclude, own, "metrics_filters.exclude");
        let (include, exclude) = match (include, exclude) {
            (Ok(i), Ok(e)) => (i, e),
            (i, e) => {
                errors.extend(i.err());
                errors.extend(e.err());
                (None, None)
            }
        };
        let path = cfg.metrics_path.as_deref().unwrap_or("/metrics");
        let http = HttpFetch::new(ctx, path, "").map_err(|e| config_error(own, e));
        match http {
            Ok(http) if errors.is_empty() => Ok(Box::new(Collector {
                http,
                instance: ctx
                    .host
                    .as_ref()
                    .map_or_else(String::new, |h| h.address.clone()),
                filter: FamilyFilter { include, exclude },
                metrics_count: cfg.metrics_count,
            })),
            Ok(_) => Err(ConfigErrors(errors)),
            Err(e) => {
                errors.extend(e.0);
                Err(ConfigErrors(errors))
            }
        }
    }
}

/// The `remote_write` metricset of a block (its keys checked; `errors` are the block's so far).
fn remote_write_fetcher(
    ctx: &FetchContext,
    own: &Node,
    cfg: &Config,
    mut errors: Vec<ConfigError>,
) -> Result<Box<dyn Fetcher>, ConfigErrors> {
    let port = match &cfg.port {
        None => Some(9201),
        Some(Port::Number(p)) => Some(*p),
        Some(Port::Text(t)) => t.trim().parse::<u16>().ok(),
    };
    let Some(port) = port else {
        let at = own.get("port").unwrap_or(own);
        errors.push(ConfigError::new(
            at.path.clone(),
            at.mark.clone(),
            "`port` must be a port number, like 9201",
        ));
        return Err(ConfigErrors(errors));
    };
    let host = cfg.host.as_deref().unwrap_or("localhost");
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let tls = match &ctx.http.options.ssl {
        Some(ssl) => match remote_write::server_tls(ssl, own) {
            Ok(t) => t,
            Err(e) => {
                errors.extend(e.0);
                None
            }
        },
        None => None,
    };
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let settings = remote_write::Settings {
        addr,
        max_compressed: cfg
            .max_compressed_body_bytes
            .unwrap_or(remote_write::DEFAULT_MAX_COMPRESSED),
        max_decoded: cfg
            .max_decoded_body_bytes
            .unwrap_or(remote_write::DEFAULT_MAX_DECODED),
        metrics_count: cfg.metrics_count,
        tls,
    };
    Ok(Box::new(remote_write::RemoteWrite {
        settings: std::sync::Arc::new(settings),
    }))
}

struct Collector {
    http: HttpFetch,
    instance: String,
    filter: FamilyFilter,
    metrics_count: bool,
}

/// The classic layout's event (collector and remote_write): `prometheus.labels.*` (left out
/// when there are none), `prometheus.metrics.*`, and `metrics_count` when asked.
fn labelled_event(labels: Vec<(String, String)>, metrics: Map, metrics_count: bool) -> MetricEvent {
    let mut ev = MetricEvent::default();
    if metrics_count {
        ev.root_fields
            .insert("metrics_count".into(), Value::from(metrics.len()));
    }
    if !labels.is_empty() {
        let labels: Map = labels
            .into_iter()
            .map(|(k, v)| (k, Value::from(v)))
            .collect();
        ev.module_fields
            .insert("labels".into(), Value::Object(labels));
    }
    ev.module_fields
        .insert("metrics".into(), Value::Object(metrics));
    ev
}

impl Collector {
    fn event(&self, labels: Vec<(String, String)>, metrics: Map) -> MetricEvent {
        // The collector's label sets always hold `instance` and `job`.
        labelled_event(labels, metrics, self.metrics_count)
    }

    fn up(&self, value: u8) -> MetricEvent {
        let labels = vec![
            ("instance".to_owned(), self.instance.clone()),
            ("job".to_owned(), "prometheus".to_owned()),
        ];
        let mut m = Map::new();
        m.insert("up".into(), Value::from(value));
        self.event(labels, m)
    }
}

#[async_trait]
impl Fetcher for Collector {
    async fn fetch(&mut self) -> Result<Vec<MetricEvent>, Error> {
        let parsed = match self.http.get().await {
            Ok(body) => text::parse(&String::from_utf8_lossy(&body))
                .map_err(|e| Error::parse(&self.http.url, e)),
            Err(e) => Err(e),
        };
        let samples = match parsed {
            Ok(s) => s,
            Err(e) => {
                let error = MetricEvent {
                    error: Some(format!(
                        "unable to decode response from prometheus endpoint: {e}"
                    )),
                    ..Default::default()
                };
                return Ok(vec![self.up(0), error]);
            }
        };
        let mut groups = text::group(samples, &self.instance, "prometheus", &self.filter);
        let base = vec![
            ("instance".to_owned(), self.instance.clone()),
            ("job".to_owned(), "prometheus".to_owned()),
        ];
        groups
            .entry(base)
            .or_default()
            .insert("up".into(), Value::from(1));
        Ok(groups
            .into_iter()
            .map(|(labels, metrics)| self.event(labels, metrics))
            .collect())
    }
}
