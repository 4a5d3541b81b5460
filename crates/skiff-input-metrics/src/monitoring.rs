//! Beats' internal monitoring (`monitoring.*`): every `monitoring.elasticsearch.metrics.period`
//! the agent's own `/stats` document is sent to a monitoring cluster, as a Beat's
//! `beats_stats` document through Elasticsearch's `_monitoring/bulk` endpoint (the way Beats'
//! internal collection ships it, so Stack Monitoring shows the agent).
//!
//! Keys: `monitoring.enabled` (default false), `monitoring.cluster_uuid` (default none),
//! `monitoring.elasticsearch.{hosts (required when enabled), username, password, api_key,
//! ssl.*, metrics.period (default 10s), timeout (default 10s)}`. A failed send is logged and the
//! next period sends again; nothing is queued (a lost sample is only a gap in a chart).

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use skiff_config::{ConfigError, ConfigErrors, Node};
use tokio_util::sync::CancellationToken;

/// `monitoring.*`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitoringConfig {
    /// `enabled`: ship the agent's own metrics. Default false.
    #[serde(default)]
    pub enabled: bool,
    /// `cluster_uuid`: the production cluster the documents are filed under. Default none.
    #[serde(default)]
    pub cluster_uuid: Option<String>,
    /// `elasticsearch.*`: the monitoring cluster. Required when enabled.
    #[serde(default)]
    pub elasticsearch: Option<MonitoringElasticsearch>,
}

/// `monitoring.elasticsearch.*`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitoringElasticsearch {
    /// `hosts`: `http(s)://host:port` URLs; the first that answers is used. Required.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// `username`. Default none.
    #[serde(default)]
    pub username: Option<String>,
    /// `password`. Default none.
    #[serde(default)]
    pub password: Option<String>,
    /// `api_key` (`id:key`). Default none.
    #[serde(default)]
    pub api_key: Option<String>,
    /// `ssl.*`. Default none (system trust store for https).
    #[serde(default)]
    pub ssl: Option<skiff_tls::SslConfig>,
    /// `metrics.period`: how often to send. Default 10s.
    #[serde(default)]
    pub metrics: Option<PeriodConfig>,
    /// `timeout`: bound on one send. Default 10s.
    #[serde(default)]
    pub timeout: Option<skiff_config::Duration>,
}

/// `metrics.*`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodConfig {
    /// `period`. Default 10s.
    #[serde(default)]
    pub period: Option<skiff_config::Duration>,
}

impl MonitoringConfig {
    /// Checks what serde cannot: hosts are required when enabled. `node` is `monitoring`.
    pub fn validate(&self, node: &Node) -> Result<(), ConfigErrors> {
        let no_hosts = self
            .elasticsearch
            .as_ref()
            .is_none_or(|e| e.hosts.is_empty());
        if self.enabled && no_hosts {
            return Err(ConfigErrors(vec![ConfigError::new(
                "monitoring.elasticsearch.hosts",
                node.mark.clone(),
                "monitoring.enabled needs monitoring.elasticsearch.hosts (the monitoring cluster)",
            )]));
        }
        Ok(())
    }

    /// The send period.
    pub fn period(&self) -> Duration {
        self.elasticsearch
            .as_ref()
            .and_then(|e| e.metrics.as_ref())
            .and_then(|m| m.period)
            .map_or(Duration::from_secs(10), |d| d.0)
    }
}

/// The `_monitoring/bulk` body of one sample.
pub fn document(
    beat: &Value,
    stats: Value,
    cluster_uuid: Option<&str>,
    period: Duration,
) -> String {
    let now = skiff_event::Timestamp::now().to_rfc3339_millis();
    let mut doc = json!({
        "beats_stats": {"beat": beat, "metrics": stats, "timestamp": now},
        "timestamp": now,
        "interval_ms": period.as_millis() as u64,
        "type": "beats_stats",
    });
    if let Some(c) = cluster_uuid {
        doc["cluster_uuid"] = Value::from(c);
    }
    format!("{}\n{}\n", json!({"index": {"_type": "beats_stats"}}), doc)
}

/// Sends a sample every period until `stop`. `beat` is the agent's identity
/// (`{name, host, type, uuid, version}`), `stats` reads the `/stats` document.
pub async fn ship(
    cfg: MonitoringConfig,
    beat: Value,
    stats: impl Fn() -> Value + Send + 'static,
    stop: CancellationToken,
) {
    let Some(es) = cfg.elasticsearch.clone() else {
        return;
    };
    let period = cfg.period();
    let timeout = es.timeout.map_or(Duration::from_secs(10), |d| d.0);
    let tls = match skiff_tls::client_config(&es.ssl.clone().unwrap_or_default()) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "monitoring: ssl settings unusable; not shipping");
            return;
        }
    };
    let client = match reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .timeout(timeout)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "monitoring: cannot build the HTTP client");
            return;
        }
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let body = document(&beat, stats(), cfg.cluster_uuid.as_deref(), period);
        let mut sent = false;
        for host in &es.hosts {
            let base = if host.contains("://") {
                host.clone()
            } else {
                format!("http://{host}")
            };
            let url = format!(
                "{}/_monitoring/bulk?system_id=beats&system_api_version=7&interval={}s",
                base.trim_end_matches('/'),
                period.as_secs().max(1)
            );
            let mut req = client
                .post(&url)
                .header("Content-Type", "application/x-ndjson")
                .body(body.clone());
            if let Some(u) = &es.username {
                req = req.basic_auth(u, es.password.as_ref());
            }
            if let Some(k) = &es.api_key {
                req = req.header("Authorization", format!("ApiKey {}", base64_key(k)));
            }
            match req.send().await {
                Ok(r) if r.status().is_success() => {
                    sent = true;
                    break;
                }
                Ok(r) => {
                    tracing::warn!(host = %host, status = %r.status(), "monitoring: the monitoring cluster refused the sample")
                }
                Err(e) => {
                    tracing::warn!(host = %host, error = %e, "monitoring: cannot reach the monitoring cluster")
                }
            }
        }
        if !sent {
            tracing::debug!("monitoring: sample dropped; next one in {period:?}");
        }
    }
}

/// Beats take `api_key: id:key` and send it base64-encoded.
fn base64_key(k: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_are_base64() {
        assert_eq!(base64_key("id:key"), "aWQ6a2V5");
        assert_eq!(base64_key("ab"), "YWI=");
    }

    #[test]
    fn a_document_is_a_beats_stats_bulk_item() {
        let body = document(
            &json!({"type": "skiff"}),
            json!({"libbeat": {}}),
            Some("u"),
            Duration::from_secs(10),
        );
        let lines: Vec<Value> = body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["index"]["_type"], "beats_stats");
        assert_eq!(lines[1]["beats_stats"]["beat"]["type"], "skiff");
        assert_eq!(lines[1]["cluster_uuid"], "u");
        assert_eq!(lines[1]["interval_ms"], 10000);
    }
}
