//! `nats`: the NATS server's monitoring endpoint (port 8222), as Metricbeat's nats module:
//! `stats` (`/varz`), `connections` (`/connz` totals), `connection` (one event per client),
//! `routes` (`/routez` totals), `route` (one per route), `subscriptions` (`/subsz`) and
//! `jetstream` (`/jsz`: the `stats` and `stream` categories). Module fields
//! `nats.server.{id, time}`; times are cut to milliseconds. Options:
//! `<metricset>.metrics_path`, `jetstream.{stats,stream}.enabled`. Default host
//! `localhost:8222`.

use crate::config_error;
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;
use skiff_config::{ConfigErrors, Node};
use skiff_event::{Map, Timestamp, Value};

use super::schema::{get, pick, put};
use crate::http::HttpFetch;
use crate::{Error, FetchContext, Fetcher, MetricEvent, Module};

/// The module.
pub struct Nats;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    stats: PathOpt,
    #[serde(default)]
    connections: PathOpt,
    #[serde(default)]
    connection: PathOpt,
    #[serde(default)]
    routes: PathOpt,
    #[serde(default)]
    route: PathOpt,
    #[serde(default)]
    subscriptions: PathOpt,
    #[serde(default)]
    jetstream: JetStream,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PathOpt {
    /// `metrics_path`: default per metricset (`/varz`, `/connz`, `/routez`, `/subsz`).
    #[serde(default)]
    metrics_path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct JetStream {
    /// `metrics_path`: default `/jsz`.
    #[serde(default)]
    metrics_path: Option<String>,
    /// `stats.enabled` (default false).
    #[serde(default)]
    stats: Flag,
    /// `stream.enabled` (default false).
    #[serde(default)]
    stream: Flag,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Flag {
    #[serde(default)]
    enabled: bool,
}

impl Module for Nats {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn metricsets(&self) -> &'static [&'static str] {
        &[
            "stats",
            "connections",
            "connection",
            "routes",
            "route",
            "subscriptions",
            "jetstream",
        ]
    }

    fn default_metricsets(&self) -> &'static [&'static str] {
        &["stats", "connections", "routes", "subscriptions"]
    }

    fn default_hosts(&self) -> &'static [&'static str] {
        &["localhost:8222"]
    }

    fn build(
        &self,
        metricset: &str,
        ctx: &FetchContext,
        own: &Node,
    ) -> Result<Box<dyn Fetcher>, ConfigErrors> {
        let cfg: Config = own.deserialize()?;
        let (opt, default, query) = match metricset {
            "stats" => (&cfg.stats.metrics_path, "/varz", ""),
            "connections" => (&cfg.connections.metrics_path, "/connz", ""),
            "connection" => (&cfg.connection.metrics_path, "/connz", ""),
            "routes" => (&cfg.routes.metrics_path, "/routez", ""),
            "route" => (&cfg.route.metrics_path, "/routez", ""),
            "subscriptions" => (&cfg.subscriptions.metrics_path, "/subsz", ""),
            _ => (
                &cfg.jetstream.metrics_path,
                "/jsz",
                "config=true&consumers=true",
            ),
        };
        let http = HttpFetch::new(ctx, opt.as_deref().unwrap_or(default), query)
            .map_err(|e| config_error(own, e))?;
        Ok(Box::new(Fetch {
            http,
            set: metricset.to_owned(),
            js_stats: cfg.jetstream.stats.enabled,
            js_stream: cfg.jetstream.stream.enabled,
        }))
    }
}

struct Fetch {
    http: HttpFetch,
    set: String,
    js_stats: bool,
    js_stream: bool,
}

/// A time cut to milliseconds, as Metricbeat writes it.
fn millis(v: &Value) -> Value {
    v.as_str()
        .and_then(Timestamp::parse)
        .map_or_else(|| v.clone(), |t| Value::from(t.to_rfc3339_millis()))
}

/// Seconds in a NATS duration (`1y20d22h3m30s`, a year of 365 days; `1.5s`, `300ms`).
pub fn duration_secs(s: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        let unit = match c {
            'y' => 365.0 * 86400.0,
            'd' => 86400.0,
            'h' => 3600.0,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                0.001
            }
            'm' => 60.0,
            's' => 1.0,
            'u' | 'µ' if chars.peek() == Some(&'s') => {
                chars.next();
                1e-6
            }
            'n' if chars.peek() == Some(&'s') => {
                chars.next();
                1e-9
            }
            _ => return None,
        };
        total += n * unit;
        any = true;
    }
    (any && num.is_empty()).then_some(total)
}

fn secs(v: Option<&Value>) -> Option<Value> {
    let s = duration_secs(v?.as_str()?)?;
    Some(Value::from(s as i64))
}

fn server(doc: &Value) -> Map {
    let mut m = Map::new();
    if let Some(id) = get(doc, "server_id") {
        put(&mut m, "server.id", id.clone());
    }
    if let Some(t) = get(doc, "now") {
        put(&mut m, "server.time", millis(t));
    }
    m
}

fn with_server(fields: Map, doc: &Value) -> MetricEvent {
    MetricEvent {
        fields,
        module_fields: server(doc),
        ..Default::default()
    }
}

fn stats(doc: &Value) -> MetricEvent {
    let mut f = pick(
        doc,
        &[
            ("mem", "mem.bytes"),
            ("cores", "cores"),
            ("total_connections", "total_connections"),
            ("remotes", "remotes"),
            ("in_msgs", "in.messages"),
            ("in_bytes", "in.bytes"),
            ("out_msgs", "out.messages"),
            ("out_bytes", "out.bytes"),
            ("slow_consumers", "slow_consumers"),
        ],
    );
    if let Some(cpu) = get(doc, "cpu").and_then(Value::as_f64) {
        f.insert("cpu".into(), Value::from(cpu / 100.0));
    }
    if let Some(u) = secs(get(doc, "uptime")) {
        f.insert("uptime".into(), u);
    }
    if let Some(Value::Object(req)) = get(doc, "http_req_stats") {
        for (uri, n) in req {
            let name = uri.trim_start_matches('/');
            if !name.is_empty() {
                put(&mut f, &format!("http.req_stats.uri.{name}"), n.clone());
            }
        }
    }
    with_server(f, doc)
}

fn connection(c: &Value) -> Map {
    let mut f = pick(
        c,
        &[
            ("name", "name"),
            ("subscriptions", "subscriptions"),
            ("pending_bytes", "pending_bytes"),
            ("in_msgs", "in.messages"),
            ("in_bytes", "in.bytes"),
            ("out_msgs", "out.messages"),
            ("out_bytes", "out.bytes"),
        ],
    );
    for k in ["uptime", "idle"] {
        if let Some(s) = secs(get(c, k)) {
            f.insert(
                if k == "idle" {
                    "idle_time".into()
                } else {
                    k.into()
                },
                s,
            );
        }
    }
    f
}

fn route(r: &Value) -> Map {
    pick(
        r,
        &[
            ("subscriptions", "subscriptions"),
            ("remote_id", "remote_id"),
            ("pending_size", "pending_size"),
            ("ip", "ip"),
            ("port", "port"),
            ("in_msgs", "in.messages"),
            ("in_bytes", "in.bytes"),
            ("out_msgs", "out.messages"),
            ("out_bytes", "out.bytes"),
        ],
    )
}

fn jetstream_stats(doc: &Value) -> MetricEvent {
    let f = pick(
        doc,
        &[
            ("streams", "stats.streams"),
            ("consumers", "stats.consumers"),
            ("messages", "stats.messages"),
            ("bytes", "stats.bytes"),
            ("memory", "stats.memory"),
            ("reserved_memory", "stats.reserved_memory"),
            ("storage", "stats.storage"),
            ("reserved_storage", "stats.reserved_storage"),
            ("accounts", "stats.accounts"),
            ("config.max_memory", "stats.config.max_memory"),
            ("config.max_storage", "stats.config.max_storage"),
            ("config.store_dir", "stats.config.store_dir"),
            ("config.sync_interval", "stats.config.sync_interval"),
        ],
    );
    let mut ev = with_server(f, doc);
    ev.fields.insert("category".into(), Value::from("stats"));
    ev
}

fn jetstream_streams(doc: &Value) -> Vec<MetricEvent> {
    let mut out = Vec::new();
    let accounts = get(doc, "account_details")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for acc in &accounts {
        let streams = get(acc, "stream_detail")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for s in &streams {
            let mut st = pick(
                s,
                &[
                    ("name", "name"),
                    ("cluster.leader", "cluster.leader"),
                    ("config.subjects", "config.subjects"),
                    ("config.retention", "config.retention"),
                    ("config.max_consumers", "config.max_consumers"),
                    ("config.max_msgs", "config.max_msgs"),
                    ("config.max_bytes", "config.max_bytes"),
                    ("config.max_age", "config.max_age"),
                    ("config.max_msgs_per_subject", "config.max_msgs_per_subject"),
                    ("config.max_msg_size", "config.max_msg_size"),
                    ("config.storage", "config.storage"),
                    ("config.num_replicas", "config.num_replicas"),
                    ("state.messages", "state.messages"),
                    ("state.bytes", "state.bytes"),
                    ("state.first_seq", "state.first_seq"),
                    ("state.last_seq", "state.last_seq"),
                    ("state.num_subjects", "state.num_subjects"),
                    ("state.consumer_count", "state.consumer_count"),
                ],
            );
            let description = get(s, "config.description")
                .cloned()
                .unwrap_or(Value::from(""));
            put(&mut st, "config.description", description);
            let deleted = get(s, "state.num_deleted")
                .cloned()
                .unwrap_or(Value::from(0));
            put(&mut st, "state.num_deleted", deleted);
            for (from, to) in [
                ("created", "created"),
                ("state.first_ts", "state.first_ts"),
                ("state.last_ts", "state.last_ts"),
            ] {
                if let Some(t) = get(s, from) {
                    put(&mut st, to, millis(t));
                }
            }
            for k in ["id", "name"] {
                if let Some(v) = get(acc, k) {
                    put(&mut st, &format!("account.{k}"), v.clone());
                }
            }
            let mut f = Map::new();
            f.insert("category".into(), Value::from("stream"));
            f.insert("stream".into(), Value::Object(st));
            out.push(with_server(f, doc));
        }
    }
    out
}

#[async_trait]
impl Fetcher for Fetch {
    async fn fetch(&mut self) -> Result<Vec<MetricEvent>, Error> {
        let doc = self.http.get_json().await?;
        let list = |k: &str| {
            get(&doc, k)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        Ok(match self.set.as_str() {
            "stats" => vec![stats(&doc)],
            "connections" => {
                let total = get(&doc, "num_connections")
                    .cloned()
                    .unwrap_or(Value::from(0));
                vec![with_server(
                    json!({"total": total})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                    &doc,
                )]
            }
            "routes" => {
                let total = get(&doc, "num_routes").cloned().unwrap_or(Value::from(0));
                vec![with_server(
                    json!({"total": total})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                    &doc,
                )]
            }
            "connection" => list("connections")
                .iter()
                .map(|c| with_server(connection(c), &doc))
                .collect(),
            "route" => list("routes")
                .iter()
                .map(|r| with_server(route(r), &doc))
                .collect(),
            "subscriptions" => {
                let f = pick(
                    &doc,
                    &[
                        ("num_subscriptions", "total"),
                        ("num_inserts", "inserts"),
                        ("num_removes", "removes"),
                        ("num_matches", "matches"),
                        ("num_cache", "cache.size"),
                        ("cache_hit_rate", "cache.hit_rate"),
                        ("max_fanout", "cache.fanout.max"),
                        ("avg_fanout", "cache.fanout.avg"),
                    ],
                );
                vec![with_server(f, &doc)]
            }
            _ => {
                let mut out = Vec::new();
                if self.js_stats {
                    out.push(jetstream_stats(&doc));
                }
                if self.js_stream {
                    out.extend(jetstream_streams(&doc));
                }
                out
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_durations() {
        assert_eq!(duration_secs("2h41m42s"), Some(9702.0));
        assert_eq!(
            duration_secs("1y20d22h3m30s"),
            Some(365.0 * 86400.0 + 20.0 * 86400.0 + 22.0 * 3600.0 + 210.0)
        );
        assert_eq!(duration_secs("300ms"), Some(0.3));
        assert_eq!(duration_secs("x"), None);
        assert_eq!(duration_secs("5"), None);
    }

    #[test]
    fn the_upstream_varz() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/corpus/metricbeat-modules/nats/stats/test/statsmetrics.json");
        let doc: Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
        let ev = stats(&doc);
        assert_eq!(ev.fields["uptime"], 9702);
        assert_eq!(ev.fields["cpu"], 0.52);
        assert_eq!(ev.fields["http"]["req_stats"]["uri"]["varz"], 10);
        assert!(ev.fields["http"]["req_stats"]["uri"].get("").is_none());
        assert_eq!(ev.module_fields["server"]["id"], "bUAdpRFtMWddIBWw80Yd9D");
        assert_eq!(
            ev.module_fields["server"]["time"],
            "2018-12-28T12:33:53.026Z"
        );
    }
}
