//! `output.kafka` settings, as Filebeat reads them, and their translation into librdkafka
//! properties.

use std::collections::BTreeMap;

use serde::Deserialize;
use skiff_config::{ConfigError, Duration, Node};

/// `output.kafka.*`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `enabled`: default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `hosts`: bootstrap brokers, `host:port`. Required.
    pub hosts: Vec<String>,
    /// `topic`: a format string (`%{[fields.log_topic]}`). Read by the selector from the node.
    #[serde(default)]
    pub topic: Option<String>,
    /// `topics`: rules tried before `topic` (`topic`, `when`, `mappings`, `default`).
    #[serde(default)]
    pub topics: Option<serde_json::Value>,
    /// `key`: the message key, a format string. Default none (no key).
    #[serde(default)]
    pub key: Option<String>,
    /// `partition.*`: how a partition is chosen. Default `hash` on the key (random without one).
    #[serde(default)]
    pub partition: Option<BTreeMap<String, PartitionerConfig>>,
    /// `required_acks`: 1 (leader, default), 0 (none), -1 (all in-sync replicas).
    #[serde(default = "one_i")]
    pub required_acks: i64,
    /// `compression`: `gzip` (default), `none`, `snappy`, `lz4`, `zstd`.
    #[serde(default)]
    pub compression: Compression,
    /// `compression_level`: gzip 1-9 (default 4, as Beats); for lz4 and zstd only when set.
    #[serde(default)]
    pub compression_level: Option<i64>,
    /// `max_message_bytes`: larger events are rejected (dead-lettered). Default 1000000.
    #[serde(default = "million")]
    pub max_message_bytes: usize,
    /// `version`: the Kafka protocol version Beats pins. Accepted and ignored: librdkafka asks
    /// the broker which versions it speaks (ApiVersionRequest).
    #[serde(default)]
    pub version: Option<serde_json::Value>,
    /// `client_id`. Default `beats`.
    #[serde(default = "beats")]
    pub client_id: String,
    /// `username`: SASL user (PLAIN unless `sasl.mechanism` says otherwise). Default none.
    #[serde(default)]
    pub username: Option<String>,
    /// `password`: SASL password. Default none.
    #[serde(default)]
    pub password: Option<String>,
    /// `sasl.mechanism`: `PLAIN` (default with a username), `SCRAM-SHA-256`, `SCRAM-SHA-512`.
    #[serde(default)]
    pub sasl: Option<Sasl>,
    /// `ssl.*`: TLS, applied through librdkafka (OpenSSL), not rustls.
    #[serde(default)]
    pub ssl: Option<Ssl>,
    /// `timeout`: how long a batch may wait for the brokers' acknowledgements before it is
    /// retried (librdkafka `message.timeout.ms`, `socket.timeout.ms`). Default 30s.
    #[serde(default = "skiff_config::seconds::<30>")]
    pub timeout: Duration,
    /// `broker_timeout`: how long a broker may wait for replicas (`request.timeout.ms`).
    /// Default 10s.
    #[serde(default = "skiff_config::seconds::<10>")]
    pub broker_timeout: Duration,
    /// `bulk_max_size`: events per batch. Default 2048.
    #[serde(default = "bulk")]
    pub bulk_max_size: usize,
    /// `bulk_flush_frequency`: how long librdkafka waits to fill a message set (`linger.ms`).
    /// Default 0s (librdkafka's 5 ms floor applies only when unset here).
    #[serde(default)]
    pub bulk_flush_frequency: Option<Duration>,
    /// `channel_buffer_size`: messages buffered per broker in Beats. Here it raises the floor of
    /// librdkafka's local queue (`queue.buffering.max.messages`). Default 256.
    #[serde(default = "buffer")]
    pub channel_buffer_size: usize,
    /// `keep_alive`: TCP keep-alive. librdkafka can only turn it on (`socket.keepalive.enable`),
    /// not set its period: any value above 0 turns it on. Default 0 (off).
    #[serde(default)]
    pub keep_alive: Option<Duration>,
    /// `metadata.*`: how often cluster metadata is refreshed.
    #[serde(default)]
    pub metadata: Metadata,
    /// `backoff.*`: waits between retries.
    #[serde(default)]
    pub backoff: Backoff,
    /// `max_retries`: attempts per batch; negative retries forever. Default -1 (skiff: never
    /// drop; Beats defaults to 3).
    #[serde(default = "forever")]
    pub max_retries: i64,
    /// `worker`: batches in flight at once (clients sharing one librdkafka producer). Default 1.
    #[serde(default = "one_u", alias = "workers")]
    pub worker: usize,
    /// `codec`: only `codec.json` (the default) is supported.
    #[serde(default)]
    pub codec: Option<serde_json::Value>,
    /// `headers`: not supported yet (an error when set).
    #[serde(default)]
    pub headers: Option<serde_json::Value>,
    /// `loadbalance`: accepted for symmetry with other outputs; Kafka balances by partition.
    #[serde(default)]
    pub loadbalance: Option<bool>,
}

/// One `partition.<name>` entry.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct PartitionerConfig {
    /// `reachable_only`: only partitions whose leader is up (librdkafka does this by itself).
    #[serde(default)]
    pub reachable_only: bool,
    /// `group_events` (round_robin): events sent to one partition before moving on. Default 1.
    #[serde(default)]
    pub group_events: Option<usize>,
    /// `hash` (hash): fields hashed instead of the key.
    #[serde(default)]
    pub hash: Vec<String>,
    /// `random` (hash): pick a random partition when there is nothing to hash. Default true.
    #[serde(default)]
    pub random: Option<bool>,
}

/// `compression`.
#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// `none`.
    None,
    /// `gzip` (default).
    #[default]
    Gzip,
    /// `snappy`.
    Snappy,
    /// `lz4`.
    Lz4,
    /// `zstd`.
    Zstd,
}

impl Compression {
    /// librdkafka's `compression.codec` value.
    pub fn codec(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// `sasl.*`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sasl {
    /// `sasl.mechanism`: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    #[serde(default)]
    pub mechanism: Option<String>,
}

/// `ssl.*`, as the Beats write it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ssl {
    /// `ssl.enabled`: default true when `ssl` is present.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// `ssl.certificate_authorities`: CA files or inline PEM. Default: the system's CAs.
    #[serde(default)]
    pub certificate_authorities: Vec<String>,
    /// `ssl.certificate`: client certificate file or inline PEM.
    #[serde(default)]
    pub certificate: Option<String>,
    /// `ssl.key`: client key file or inline PEM.
    #[serde(default)]
    pub key: Option<String>,
    /// `ssl.key_passphrase`: the key's passphrase.
    #[serde(default)]
    pub key_passphrase: Option<String>,
    /// `ssl.verification_mode`: `full` (default), `strict`, `certificate`, `none`.
    #[serde(default)]
    pub verification_mode: Option<String>,
    /// `ssl.supported_protocols`: accepted; librdkafka leaves protocol versions to OpenSSL.
    #[serde(default)]
    pub supported_protocols: Option<serde_json::Value>,
    /// `ssl.cipher_suites`: passed to OpenSSL (`ssl.cipher.suites`): use OpenSSL's names.
    #[serde(default)]
    pub cipher_suites: Vec<String>,
    /// `ssl.curve_types`: passed to OpenSSL (`ssl.curves.list`).
    #[serde(default)]
    pub curve_types: Vec<String>,
    /// `ssl.ca_trusted_fingerprint`: not supported by librdkafka (an error when set).
    #[serde(default)]
    pub ca_trusted_fingerprint: Option<String>,
    /// `ssl.renegotiation`: accepted and ignored.
    #[serde(default)]
    pub renegotiation: Option<String>,
}

/// `metadata.*`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// `metadata.refresh_frequency`: default 10m.
    #[serde(default = "skiff_config::seconds::<600>")]
    pub refresh_frequency: Duration,
    /// `metadata.full`: accepted (librdkafka fetches what it needs).
    #[serde(default)]
    pub full: bool,
    /// `metadata.retry.*`: `max` (accepted) and `backoff` (default 250ms).
    #[serde(default)]
    pub retry: MetadataRetry,
}

impl Default for Metadata {
    fn default() -> Self {
        Metadata {
            refresh_frequency: skiff_config::seconds::<600>(),
            full: false,
            retry: MetadataRetry::default(),
        }
    }
}

/// `metadata.retry.*`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataRetry {
    /// `metadata.retry.max`: default 3 (accepted; librdkafka retries on its own).
    #[serde(default)]
    pub max: Option<i64>,
    /// `metadata.retry.backoff`: default 250ms.
    #[serde(default = "skiff_config::millis::<250>")]
    pub backoff: Duration,
}

impl Default for MetadataRetry {
    fn default() -> Self {
        MetadataRetry {
            max: None,
            backoff: skiff_config::millis::<250>(),
        }
    }
}

/// `backoff.*`: shared by every output (`init` 1s, `max` 60s).
pub use skiff_pipeline::BackoffConfig as Backoff;

fn yes() -> bool {
    true
}
fn one_i() -> i64 {
    1
}
fn one_u() -> usize {
    1
}
fn forever() -> i64 {
    -1
}
fn million() -> usize {
    1_000_000
}
fn bulk() -> usize {
    2048
}
fn buffer() -> usize {
    256
}
fn beats() -> String {
    "beats".into()
}

/// How a partition is chosen, after validation.
#[derive(Debug, Clone, PartialEq)]
pub enum Partitioning {
    /// `random`.
    Random,
    /// `round_robin` with `group_events`.
    RoundRobin(usize),
    /// `hash`: the listed fields (or the key when empty); random when nothing to hash and
    /// `random` is true, else partition 0.
    Hash {
        /// Fields to hash.
        fields: Vec<String>,
        /// Random fallback.
        random: bool,
    },
}

/// The librdkafka properties of a configuration, and the partitioning.
pub struct Translated {
    /// librdkafka properties for the producer.
    pub props: BTreeMap<String, String>,
    /// How partitions are chosen.
    pub partitioning: Partitioning,
}

fn ms(d: Duration) -> String {
    d.0.as_millis().max(1).to_string()
}

/// A `certificate_authorities` / `certificate` / `key` value is inline PEM or a file path.
fn pem_or_path(v: &str) -> bool {
    v.trim_start().starts_with("-----BEGIN")
}

/// `hosts` as librdkafka's `bootstrap.servers`, each checked to be `host:port`. Public: the
/// kafka input reads the same key.
pub fn bootstrap_servers(hosts: &[String], err: &mut impl FnMut(&str, String)) -> String {
    if hosts.is_empty() {
        err(
            "hosts",
            "list at least one broker, like `kafka1:9092`".into(),
        );
    }
    for (i, h) in hosts.iter().enumerate() {
        let ok = h
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !ok || h.contains("://") {
            err(
                &format!("hosts.{i}"),
                format!("{h:?} is not host:port (like `kafka1:9092`)"),
            );
        }
    }
    hosts.join(",")
}

/// Validates and translates the settings into librdkafka properties.
pub fn translate(cfg: &KafkaConfig, node: &Node) -> Result<Translated, Vec<ConfigError>> {
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
    set("client.id", cfg.client_id.clone());
    match cfg.required_acks {
        -1 => set("acks", "all".into()),
        0 | 1 => set("acks", cfg.required_acks.to_string()),
        n => err(
            "required_acks",
            format!("{n} is not 0 (no wait), 1 (leader, default) or -1 (all replicas)"),
        ),
    }
    set("compression.codec", cfg.compression.codec().into());
    let level = match (cfg.compression, cfg.compression_level) {
        (Compression::Gzip, None) => Some(4),
        (_, l) => l,
    };
    if let Some(l) = level {
        let range = match cfg.compression {
            Compression::Gzip => 0..=9,
            Compression::Lz4 => 0..=12,
            Compression::Zstd => 1..=22,
            Compression::None | Compression::Snappy => 0..=0,
        };
        if cfg.compression == Compression::Gzip && l == 0 {
            // Beats: level 0 disables gzip.
            set("compression.codec", "none".into());
        } else if range.contains(&l) {
            set("compression.level", l.to_string());
        } else if cfg.compression_level.is_some() {
            err(
                "compression_level",
                format!(
                    "{l} is out of range for {} ({}..={})",
                    cfg.compression.codec(),
                    range.start(),
                    range.end()
                ),
            );
        }
    }
    if cfg.max_message_bytes < 1000 || cfg.max_message_bytes > 1_000_000_000 {
        err(
            "max_message_bytes",
            "must be between 1000 and 1000000000".into(),
        );
    }
    // librdkafka counts protocol overhead in message.max.bytes; the event itself is checked
    // against max_message_bytes by the client.
    set(
        "message.max.bytes",
        (cfg.max_message_bytes.saturating_add(4096)).to_string(),
    );
    if cfg.timeout.0.is_zero() || cfg.broker_timeout.0.is_zero() {
        err(
            "timeout",
            "timeout and broker_timeout must be more than 0s".into(),
        );
    }
    set("message.timeout.ms", ms(cfg.timeout));
    set(
        "socket.timeout.ms",
        ms(cfg.timeout.max(skiff_config::seconds::<10>())),
    );
    set(
        "request.timeout.ms",
        ms(cfg.broker_timeout.min(cfg.timeout)),
    );
    if cfg.bulk_max_size == 0 || cfg.worker == 0 {
        err(
            "bulk_max_size",
            "bulk_max_size and worker must be at least 1".into(),
        );
    }
    set(
        "batch.num.messages",
        cfg.bulk_max_size.clamp(1, 1_000_000).to_string(),
    );
    set(
        "linger.ms",
        cfg.bulk_flush_frequency
            .map_or_else(|| "0".into(), |d| d.0.as_millis().to_string()),
    );
    // The local queue holds what is in flight: bounded by the batches the workers send at once.
    let queue = (cfg.bulk_max_size.saturating_mul(cfg.worker)).max(cfg.channel_buffer_size);
    set(
        "queue.buffering.max.messages",
        queue.clamp(1, 10_000_000).to_string(),
    );
    let kbytes =
        (queue.saturating_mul(cfg.max_message_bytes.min(1 << 20)) / 1024).clamp(1024, 2_097_151);
    set("queue.buffering.max.kbytes", kbytes.to_string());
    if cfg.keep_alive.is_some_and(|d| !d.0.is_zero()) {
        set("socket.keepalive.enable", "true".into());
    }
    set(
        "topic.metadata.refresh.interval.ms",
        ms(cfg.metadata.refresh_frequency),
    );
    set(
        "retry.backoff.ms",
        ms(cfg.metadata.retry.backoff.min(cfg.backoff.max)),
    );
    set(
        "retry.backoff.max.ms",
        ms(cfg.backoff.max.min(skiff_config::seconds::<300>())),
    );
    set("reconnect.backoff.ms", ms(cfg.backoff.init));
    set("reconnect.backoff.max.ms", ms(cfg.backoff.max));
    if cfg.backoff.init.0.is_zero() || cfg.backoff.max.0 < cfg.backoff.init.0 {
        err(
            "backoff",
            "backoff.init must be more than 0s and at most backoff.max".into(),
        );
    }

    security_props(
        cfg.ssl.as_ref(),
        cfg.sasl.as_ref(),
        cfg.username.as_deref(),
        cfg.password.as_deref(),
        &mut set,
        &mut err,
    );

    let partitioning = partitioning(cfg, &mut err);
    if let Some(c) = &cfg.codec
        && (c.get("json").is_none() || c.as_object().is_some_and(|o| o.len() != 1))
    {
        err(
            "codec",
            "only `codec.json` is supported by the kafka output (events are sent as ECS JSON)"
                .into(),
        );
    }
    if cfg.headers.is_some() {
        err(
            "headers",
            "Kafka record headers are not supported yet; remove `headers`".into(),
        );
    }
    if errs.is_empty() {
        Ok(Translated {
            props: p,
            partitioning,
        })
    } else {
        Err(errs)
    }
}

/// The librdkafka properties of `ssl.*`, `username`/`password` and `sasl.mechanism` (TLS, SASL
/// and `security.protocol`), as the Beats write them. Public: the kafka input reads the same
/// keys and must translate them the same way.
pub fn security_props(
    ssl: Option<&Ssl>,
    sasl: Option<&Sasl>,
    username: Option<&str>,
    password: Option<&str>,
    set: &mut impl FnMut(&str, String),
    err: &mut impl FnMut(&str, String),
) {
    let tls = match ssl {
        Some(s) if s.enabled != Some(false) => {
            ssl_props(s, set, err);
            true
        }
        _ => false,
    };
    let mechanism = sasl
        .and_then(|s| s.mechanism.clone())
        .map(|m| m.to_ascii_uppercase());
    let sasl = match (username, &mechanism) {
        (Some(u), m) => {
            let m = m.clone().unwrap_or_else(|| "PLAIN".into());
            if !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(&m.as_str()) {
                err(
                    "sasl.mechanism",
                    format!("{m:?} is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"),
                );
            }
            set("sasl.mechanisms", m);
            set("sasl.username", u.to_owned());
            set("sasl.password", password.unwrap_or_default().to_owned());
            true
        }
        (None, Some(_)) => {
            err(
                "sasl.mechanism",
                "set `username` and `password` for SASL".into(),
            );
            false
        }
        (None, None) => {
            if password.is_some() {
                err("password", "a password needs a `username`".into());
            }
            false
        }
    };
    set(
        "security.protocol",
        match (tls, sasl) {
            (false, false) => "plaintext",
            (true, false) => "ssl",
            (false, true) => "sasl_plaintext",
            (true, true) => "sasl_ssl",
        }
        .into(),
    );
}

fn ssl_props(s: &Ssl, set: &mut impl FnMut(&str, String), err: &mut impl FnMut(&str, String)) {
    match s.certificate_authorities.as_slice() {
        [] => {}
        [one] if !pem_or_path(one) => set("ssl.ca.location", one.clone()),
        many => {
            // librdkafka takes one CA file or one PEM string: join them into one PEM string.
            let mut pem = String::new();
            for (i, ca) in many.iter().enumerate() {
                if pem_or_path(ca) {
                    pem.push_str(ca);
                } else {
                    match std::fs::read_to_string(ca) {
                        Ok(t) => pem.push_str(&t),
                        Err(e) => err(
                            &format!("ssl.certificate_authorities.{i}"),
                            format!("cannot read {ca}: {e}"),
                        ),
                    }
                }
                pem.push('\n');
            }
            set("ssl.ca.pem", pem);
        }
    }
    if let Some(c) = &s.certificate {
        let k = if pem_or_path(c) {
            "ssl.certificate.pem"
        } else {
            "ssl.certificate.location"
        };
        set(k, c.clone());
    }
    if let Some(k) = &s.key {
        let key = if pem_or_path(k) {
            "ssl.key.pem"
        } else {
            "ssl.key.location"
        };
        set(key, k.clone());
    }
    if s.certificate.is_some() != s.key.is_some() {
        err(
            "ssl",
            "set both `ssl.certificate` and `ssl.key` for a client certificate".into(),
        );
    }
    if let Some(p) = &s.key_passphrase {
        set("ssl.key.password", p.clone());
    }
    match s.verification_mode.as_deref().unwrap_or("full") {
        "full" | "strict" => set("ssl.endpoint.identification.algorithm", "https".into()),
        "certificate" => set("ssl.endpoint.identification.algorithm", "none".into()),
        "none" => {
            set("enable.ssl.certificate.verification", "false".into());
            set("ssl.endpoint.identification.algorithm", "none".into());
        }
        other => err(
            "ssl.verification_mode",
            format!("{other:?} is not full, strict, certificate or none"),
        ),
    }
    if !s.cipher_suites.is_empty() {
        set("ssl.cipher.suites", s.cipher_suites.join(":"));
    }
    if !s.curve_types.is_empty() {
        set("ssl.curves.list", s.curve_types.join(":"));
    }
    if s.ca_trusted_fingerprint.is_some() {
        err(
            "ssl.ca_trusted_fingerprint",
            "not supported by the kafka output (TLS for Kafka goes through librdkafka/OpenSSL); \
             put the CA in `ssl.certificate_authorities` instead"
                .into(),
        );
    }
}

fn partitioning(cfg: &KafkaConfig, err: &mut impl FnMut(&str, String)) -> Partitioning {
    let Some(map) = &cfg.partition else {
        return Partitioning::Hash {
            fields: Vec::new(),
            random: true,
        };
    };
    if map.len() != 1 {
        err(
            "partition",
            "set exactly one of partition.random, partition.round_robin, partition.hash".into(),
        );
    }
    match map.iter().next() {
        Some((name, p)) => match name.as_str() {
            "random" => Partitioning::Random,
            "round_robin" => Partitioning::RoundRobin(p.group_events.unwrap_or(1).max(1)),
            "hash" => Partitioning::Hash {
                fields: p.hash.clone(),
                random: p.random.unwrap_or(true),
            },
            other => {
                err(
                    "partition",
                    format!("unknown partitioner {other:?}: use random, round_robin or hash"),
                );
                Partitioning::Random
            }
        },
        None => Partitioning::Random,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(yaml: &str) -> Result<Translated, Vec<ConfigError>> {
        let node = skiff_config::parse_str(yaml, None).unwrap();
        let cfg: KafkaConfig = node.deserialize().map_err(|e| vec![e])?;
        translate(&cfg, &node)
    }

    #[test]
    fn defaults_match_beats() {
        let t = tr("hosts: [k1:9092, k2:9092]\ntopic: logs").unwrap();
        let p = &t.props;
        assert_eq!(p["bootstrap.servers"], "k1:9092,k2:9092");
        assert_eq!(p["acks"], "1");
        assert_eq!(p["compression.codec"], "gzip");
        assert_eq!(p["compression.level"], "4");
        assert_eq!(p["client.id"], "beats");
        assert_eq!(p["message.timeout.ms"], "30000");
        assert_eq!(p["security.protocol"], "plaintext");
        assert_eq!(
            t.partitioning,
            Partitioning::Hash {
                fields: vec![],
                random: true
            }
        );
    }

    #[test]
    fn sasl_tls_and_partitioners() {
        let t = tr(r#"
hosts: ["k1:9093"]
topic: t
username: u
password: p
sasl.mechanism: scram-sha-512
ssl.certificate_authorities: [/etc/ca.pem]
ssl.verification_mode: certificate
required_acks: -1
compression: lz4
partition.round_robin: { group_events: 5 }
version: "2.1.0"
"#)
        .unwrap();
        let p = &t.props;
        assert_eq!(p["security.protocol"], "sasl_ssl");
        assert_eq!(p["sasl.mechanisms"], "SCRAM-SHA-512");
        assert_eq!(p["ssl.ca.location"], "/etc/ca.pem");
        assert_eq!(p["ssl.endpoint.identification.algorithm"], "none");
        assert_eq!(p["acks"], "all");
        assert_eq!(p["compression.codec"], "lz4");
        assert!(!p.contains_key("compression.level"));
        assert_eq!(t.partitioning, Partitioning::RoundRobin(5));
    }

    #[test]
    fn mistakes_are_named() {
        let e = tr("hosts: [k1]\ntopic: t").err().unwrap();
        assert!(e[0].to_string().contains("hosts.0"), "{}", e[0]);
        let e = tr("hosts: [k1:1]\ntopic: t\nrequired_acks: 2")
            .err()
            .unwrap();
        assert!(e[0].to_string().contains("required_acks"), "{}", e[0]);
        let e = tr("hosts: [k1:1]\ntopic: t\nsasl.mechanism: GSSAPI\nusername: u")
            .err()
            .unwrap();
        assert!(e[0].to_string().contains("GSSAPI"), "{}", e[0]);
        let e = tr("hosts: [k1:1]\ntopic: t\ncompression: brotli")
            .err()
            .unwrap();
        assert!(e[0].to_string().contains("compression"), "{}", e[0]);
        let e = tr("hosts: [k1:1]\ntopic: t\npartition.sticky: {}")
            .err()
            .unwrap();
        assert!(e[0].to_string().contains("sticky"), "{}", e[0]);
    }
}
