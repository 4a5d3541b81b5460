//! The input's settings, with Filebeat's names and defaults, and their translation into
//! librdkafka consumer properties. Every problem of a block is reported at once, each with its
//! key.

use std::collections::BTreeMap;

use serde::Deserialize;
use skiff_config::{ByteSize, ConfigError, ConfigErrors, Duration, Node};
use skiff_output_kafka::config::{Sasl, Ssl, bootstrap_servers, security_props};

/// `type: kafka` settings (Filebeat's names; the common input keys are already removed).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaInputConfig {
    /// `hosts`: bootstrap brokers, `host:port`. Required.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// `topics`: the topics to consume. Required.
    #[serde(default)]
    pub topics: Vec<String>,
    /// `group_id`: the consumer group. Required.
    #[serde(default)]
    pub group_id: Option<String>,
    /// `client_id`: default `filebeat` (Filebeat's).
    #[serde(default = "filebeat")]
    pub client_id: String,
    /// `version`: the Kafka protocol version to assume. Accepted; librdkafka asks the broker
    /// which versions it speaks (ApiVersions) instead.
    #[serde(default)]
    pub version: Option<serde_json::Value>,
    /// `initial_offset`: where a group without a committed offset starts: `oldest` (default)
    /// or `newest`.
    #[serde(default = "oldest")]
    pub initial_offset: String,
    /// `connect_backoff`: the longest wait between reconnection attempts. Default 30s.
    #[serde(default = "skiff_config::seconds::<30>")]
    pub connect_backoff: Duration,
    /// `consume_backoff`: the wait before retrying a failed read. Default 2s.
    #[serde(default = "skiff_config::seconds::<2>")]
    pub consume_backoff: Duration,
    /// `max_wait_time`: how long the broker may wait for `fetch.min` bytes. Default 250ms.
    #[serde(default = "skiff_config::millis::<250>")]
    pub max_wait_time: Duration,
    /// `wait_close`: at shutdown, how long to wait for the output to acknowledge what was
    /// read, so its offsets can be committed. Default 2s (capped by `shutdown_timeout`).
    #[serde(default = "skiff_config::seconds::<2>")]
    pub wait_close: Duration,
    /// `isolation_level`: `read_uncommitted` (default) or `read_committed`.
    #[serde(default = "read_uncommitted")]
    pub isolation_level: String,
    /// `fetch.*`.
    #[serde(default)]
    pub fetch: Fetch,
    /// `rebalance.*`.
    #[serde(default)]
    pub rebalance: Rebalance,
    /// `username` (SASL).
    #[serde(default)]
    pub username: Option<String>,
    /// `password` (SASL).
    #[serde(default)]
    pub password: Option<String>,
    /// `sasl.mechanism`: `PLAIN` (default), `SCRAM-SHA-256`, `SCRAM-SHA-512`.
    #[serde(default)]
    pub sasl: Option<Sasl>,
    /// `ssl.*`.
    #[serde(default)]
    pub ssl: Option<Ssl>,
    /// `kerberos.*`: refused (GSSAPI is not built into skiff's librdkafka).
    #[serde(default)]
    pub kerberos: Option<serde_json::Value>,
    /// `expand_event_list_from_field`: a JSON message whose field holds a list becomes one
    /// event per element (the AWS CloudWatch style bundles). Parsers do not run then.
    #[serde(default)]
    pub expand_event_list_from_field: Option<String>,
    /// `parsers`: as filestream's (ndjson, multiline, container); built by skiff-parsers.
    #[serde(default)]
    pub parsers: Option<serde_json::Value>,
    /// `max_message_size` (skiff): the largest message accepted from the broker (librdkafka's
    /// `fetch.message.max.bytes` cap per partition is `fetch.default`). Default 10MiB.
    #[serde(default = "ten_mib")]
    pub max_message_size: ByteSize,
}

/// `fetch.*`: the sizes of fetch requests.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fetch {
    /// `fetch.min`: bytes the broker waits for (up to `max_wait_time`). Default 1.
    #[serde(default = "one_byte")]
    pub min: ByteSize,
    /// `fetch.default`: bytes asked per partition and request. Default 1MiB.
    #[serde(default = "one_mib")]
    pub default: ByteSize,
    /// `fetch.max`: bytes at most per request; 0 (default) is librdkafka's bound (50MiB).
    #[serde(default)]
    pub max: ByteSize,
}

impl Default for Fetch {
    fn default() -> Self {
        Fetch {
            min: one_byte(),
            default: one_mib(),
            max: ByteSize(0),
        }
    }
}

/// `rebalance.*`: the group's rebalancing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rebalance {
    /// `rebalance.strategy`: `range` (default) or `roundrobin`.
    #[serde(default = "range")]
    pub strategy: String,
    /// `rebalance.timeout`: how long a rebalance may take. Default 60s.
    #[serde(default = "skiff_config::seconds::<60>")]
    pub timeout: Duration,
    /// `rebalance.max_retries`: accepted; librdkafka rejoins by itself until it succeeds.
    #[serde(default)]
    pub max_retries: Option<i64>,
    /// `rebalance.retry_backoff`: the wait between two join attempts. Default 2s.
    #[serde(default = "skiff_config::seconds::<2>")]
    pub retry_backoff: Duration,
}

impl Default for Rebalance {
    fn default() -> Self {
        Rebalance {
            strategy: range(),
            timeout: skiff_config::seconds::<60>(),
            max_retries: None,
            retry_backoff: skiff_config::seconds::<2>(),
        }
    }
}

fn filebeat() -> String {
    "filebeat".into()
}
fn oldest() -> String {
    "oldest".into()
}
fn read_uncommitted() -> String {
    "read_uncommitted".into()
}
fn range() -> String {
    "range".into()
}
fn one_byte() -> ByteSize {
    ByteSize(1)
}
fn one_mib() -> ByteSize {
    ByteSize(1 << 20)
}
fn ten_mib() -> ByteSize {
    ByteSize(10 << 20)
}

fn ms(d: Duration) -> String {
    d.0.as_millis().clamp(1, i32::MAX as u128).to_string()
}

/// The librdkafka properties of a block, or every problem found in it.
pub fn translate(
    cfg: &KafkaInputConfig,
    node: &Node,
) -> Result<BTreeMap<String, String>, ConfigErrors> {
    let mut errs = Vec::new();
    let mut err = |key: &str, msg: String| {
        let n = node.get(key).unwrap_or(node);
        errs.push(ConfigError::new(
            format!("{}.{key}", node.path()),
            n.mark.clone(),
            msg,
        ));
    };
    let mut p = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        p.insert(k.to_owned(), v);
    };
    set("bootstrap.servers", bootstrap_servers(&cfg.hosts, &mut err));
    if cfg.topics.is_empty() || cfg.topics.iter().any(String::is_empty) {
        err(
            "topics",
            "list the topics to read, like `topics: [logs]`".into(),
        );
    }
    match cfg.group_id.as_deref() {
        None | Some("") => err(
            "group_id",
            "set the consumer group, like `group_id: skiff` (offsets are committed for it)".into(),
        ),
        Some(g) => set("group.id", g.to_owned()),
    }
    set("client.id", cfg.client_id.clone());
    match cfg.initial_offset.as_str() {
        "oldest" => set("auto.offset.reset", "earliest".into()),
        "newest" => set("auto.offset.reset", "latest".into()),
        other => err(
            "initial_offset",
            format!("{other:?} is not `oldest` or `newest`"),
        ),
    }
    match cfg.isolation_level.as_str() {
        "read_uncommitted" | "read_committed" => {
            set("isolation.level", cfg.isolation_level.clone());
        }
        other => err(
            "isolation_level",
            format!("{other:?} is not `read_uncommitted` or `read_committed`"),
        ),
    }
    match cfg.rebalance.strategy.as_str() {
        "range" | "roundrobin" => {
            set(
                "partition.assignment.strategy",
                cfg.rebalance.strategy.clone(),
            );
        }
        other => err(
            "rebalance.strategy",
            format!("{other:?} is not `range` or `roundrobin`"),
        ),
    }
    // The acknowledgement contract: librdkafka commits (every second, at a rebalance and at
    // close) only the offsets the input stored, and it stores one only once the output
    // acknowledged every event before it.
    set("enable.auto.commit", "true".into());
    set("enable.auto.offset.store", "false".into());
    set("auto.commit.interval.ms", "1000".into());
    set("enable.partition.eof", "false".into());
    // The rebalance timeout of the JoinGroup request is librdkafka's max.poll.interval.ms,
    // which is also how long the input may go without reading: while the queue is full (the
    // output down) it does not read, and past that librdkafka leaves the group (it rejoins
    // when reading resumes, and the records after the last commit are read again). So never
    // below librdkafka's default of 5 minutes.
    set(
        "max.poll.interval.ms",
        ms(cfg.rebalance.timeout.max(skiff_config::seconds::<300>())),
    );
    // Filebeat's client (sarama) keeps a group session of 10s with a heartbeat every 3s; so
    // does the input (librdkafka's 45s would make a dead member hold its partitions 4 times
    // longer, and joins that wait on the session slower).
    set("session.timeout.ms", "10000".into());
    set("heartbeat.interval.ms", "3000".into());
    set("retry.backoff.ms", ms(cfg.rebalance.retry_backoff));
    set("reconnect.backoff.max.ms", ms(cfg.connect_backoff));
    set(
        "reconnect.backoff.ms",
        ms(cfg
            .connect_backoff
            .min(Duration(std::time::Duration::from_millis(100)))),
    );
    set("fetch.error.backoff.ms", ms(cfg.consume_backoff));
    set("fetch.wait.max.ms", ms(cfg.max_wait_time));
    let max_msg = cfg.max_message_size.0;
    if max_msg == 0 || max_msg > 256 << 20 {
        err(
            "max_message_size",
            "must be between 1 byte and 256MiB".into(),
        );
    }
    if cfg.fetch.min.0 == 0 || cfg.fetch.min.0 > 100 << 20 {
        err("fetch.min", "must be between 1 byte and 100MiB".into());
    }
    if cfg.fetch.default.0 == 0 || cfg.fetch.default.0 > 256 << 20 {
        err("fetch.default", "must be between 1 byte and 256MiB".into());
    }
    if cfg.fetch.max.0 > 1 << 30 {
        err(
            "fetch.max",
            "must be at most 1GiB (0: librdkafka's 50MiB)".into(),
        );
    }
    set(
        "fetch.min.bytes",
        cfg.fetch.min.0.clamp(1, 100 << 20).to_string(),
    );
    set(
        "max.partition.fetch.bytes",
        cfg.fetch.default.0.clamp(1, 256 << 20).to_string(),
    );
    // Memory: what librdkafka prefetches is bounded by fetch.max (one request) and by the local
    // queue (queued.max.messages.kbytes, librdkafka's 64MiB); the largest record accepted by
    // receive.message.max.bytes.
    let fetch_max = match cfg.fetch.max.0 {
        0 => 50 << 20,
        n => n.clamp(1, 1 << 30),
    };
    set("fetch.max.bytes", fetch_max.to_string());
    set(
        "receive.message.max.bytes",
        (fetch_max.max(max_msg.clamp(1, 256 << 20)) + 512).to_string(),
    );
    security_props(
        cfg.ssl.as_ref(),
        cfg.sasl.as_ref(),
        cfg.username.as_deref(),
        cfg.password.as_deref(),
        &mut set,
        &mut err,
    );
    if cfg.kerberos.as_ref().is_some_and(|k| {
        !k.is_null() && k.get("enabled").and_then(serde_json::Value::as_bool) != Some(false)
    }) {
        err(
            "kerberos",
            "Kerberos (SASL GSSAPI) is not supported by skiff's kafka input: use SASL PLAIN or SCRAM \
             (`username`, `password`, `sasl.mechanism`)"
                .into(),
        );
    }
    if cfg.expand_event_list_from_field.as_deref() == Some("") {
        err(
            "expand_event_list_from_field",
            "name the field that holds the list of events".into(),
        );
    }
    if errs.is_empty() {
        Ok(p)
    } else {
        Err(ConfigErrors(errs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(yaml: &str) -> Result<BTreeMap<String, String>, ConfigErrors> {
        let node = skiff_config::parse_str(yaml, None).unwrap();
        let cfg: KafkaInputConfig = node.deserialize()?;
        translate(&cfg, &node)
    }

    #[test]
    fn filebeat_defaults() {
        let p = tr("hosts: [k1:9092]\ntopics: [logs]\ngroup_id: g").unwrap();
        assert_eq!(p["group.id"], "g");
        assert_eq!(p["client.id"], "filebeat");
        assert_eq!(p["auto.offset.reset"], "earliest");
        assert_eq!(p["isolation.level"], "read_uncommitted");
        assert_eq!(p["partition.assignment.strategy"], "range");
        assert_eq!(p["enable.auto.offset.store"], "false");
        assert_eq!(p["fetch.wait.max.ms"], "250");
        assert_eq!(p["fetch.error.backoff.ms"], "2000");
        assert_eq!(p["max.partition.fetch.bytes"], "1048576");
        assert_eq!(p["max.poll.interval.ms"], "300000");
        assert_eq!(p["security.protocol"], "plaintext");
    }

    #[test]
    fn options_are_translated() {
        let p = tr(r#"
hosts: ["k1:9093", "k2:9093"]
topics: [a, b]
group_id: g
client_id: me
version: 2.1.0
initial_offset: newest
isolation_level: read_committed
fetch: {min: 10, default: 2MiB, max: 4MiB}
rebalance: {strategy: roundrobin, timeout: 600s, max_retries: 3, retry_backoff: 1s}
username: u
password: p
sasl.mechanism: SCRAM-SHA-256
"#)
        .unwrap();
        assert_eq!(p["bootstrap.servers"], "k1:9093,k2:9093");
        assert_eq!(p["auto.offset.reset"], "latest");
        assert_eq!(p["isolation.level"], "read_committed");
        assert_eq!(p["fetch.min.bytes"], "10");
        assert_eq!(p["max.partition.fetch.bytes"], "2097152");
        assert_eq!(p["fetch.max.bytes"], "4194304");
        assert_eq!(p["partition.assignment.strategy"], "roundrobin");
        assert_eq!(p["max.poll.interval.ms"], "600000");
        assert_eq!(p["security.protocol"], "sasl_plaintext");
        assert_eq!(p["sasl.mechanisms"], "SCRAM-SHA-256");
    }

    #[test]
    fn every_problem_is_reported() {
        let e = tr("hosts: [k1]\ntopics: []\ninitial_offset: latest\nrebalance.strategy: sticky\nkerberos.enabled: true")
            .err()
            .unwrap();
        let text = e.to_string();
        for k in [
            "hosts.0",
            "topics",
            "group_id",
            "initial_offset",
            "rebalance.strategy",
            "kerberos",
        ] {
            assert!(text.contains(k), "{k} missing in {text}");
        }
        assert_eq!(e.0.len(), 6, "{text}");
    }
}
