//! The Kafka output: Filebeat's `output.kafka`, producing each event as one JSON record.
//!
//! Where it sits: the output end of the pipeline. The [worker](skiff_pipeline::worker) hands a
//! client a batch; the client picks each event's topic (`topic` template, `topics` rules with
//! `when`, see [`skiff_processors::select`]), key (`key` template) and partition (`partition.random|round_robin|hash`, placed as
//! Beats/Sarama place them, see [`partition`]), encodes it as ECS JSON with `@metadata` (as
//! Beats' JSON codec does), hands it to librdkafka, then waits for **every event's delivery
//! report** before returning:
//!
//! * delivered: acked by the worker (the input may commit past it);
//! * retriable errors (broker down, leader moving, `timeout` expired): [`Outcome::retry`](skiff_pipeline::Outcome::retry), sent
//!   again after the worker's backoff;
//! * permanent errors (message too large, topic authorization, invalid topic): rejected with the
//!   broker's reason and dead-lettered. An event larger than `max_message_bytes` is rejected
//!   before it is produced.
//!
//! **Why librdkafka** (the `rdkafka` crate, built from its bundled sources): Kafka's protocol is
//! large (metadata, leader changes, idempotence, compression codecs, SASL/SCRAM) and librdkafka
//! is the client most Kafka producers outside the JVM run on. Debian's packaged librdkafka is
//! too old for some brokers, so the crate builds its bundled copy (with OpenSSL for TLS and
//! SASL, zlib for gzip, zstd; snappy and lz4 are built in).
//!
//! **TLS for Kafka goes through librdkafka, i.e. OpenSSL**, not rustls like skiff's other
//! outputs: `ssl.*` is translated into librdkafka's properties (`ssl.ca.location`,
//! `ssl.certificate.location`, `ssl.endpoint.identification.algorithm`, ...; see [`config`]).
//! `ssl.ca_trusted_fingerprint` cannot be expressed there and is refused; `cipher_suites` take
//! OpenSSL's names.
//!
//! Beats' `version` pins a protocol version for Sarama; librdkafka negotiates versions with the
//! broker, so it is accepted and ignored. Sarama-only tuning keys map onto the nearest librdkafka
//! property (see [`config::KafkaConfig`]).
//!
//! `skiff test output` (the probe) checks DNS and TCP for every bootstrap host, then fetches
//! the cluster's metadata: brokers and the topic's partitions and leaders.

pub mod client;
pub mod config;
pub mod error;
pub mod partition;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::Producer as _;
use skiff_config::{ConfigError, ConfigErrors, Node};
use skiff_metrics::names;
use skiff_pipeline::{BuildContext, Output, OutputPlugin, OutputSet, OutputSettings, ProbeStep};

use client::{KafkaClient, Producer, TracingContext};
use config::KafkaConfig;
use partition::Partitioner;
use skiff_processors::select::{Selector, template_at};

/// The `output.kafka` plugin.
pub static PLUGIN: OutputPlugin = OutputPlugin {
    name: "kafka",
    build,
    probe: Some(|node, ctx| Box::pin(probe(node.clone(), ctx.clone()))),
    setup: None,
};

struct Built {
    cfg: KafkaConfig,
    producer: Producer,
    topics: Arc<Selector>,
    key: Option<skiff_event::template::Template>,
    partitioning: config::Partitioning,
}

fn parse(node: &Node) -> Result<Built, ConfigErrors> {
    let cfg: KafkaConfig = node.deserialize()?;
    let t = config::translate(&cfg, node).map_err(ConfigErrors)?;
    let topics = Arc::new(Selector::from_node(node, "topic", "topics", None)?);
    let key = match &cfg.key {
        Some(k) => Some(template_at(
            k,
            node.get("key"),
            &format!("{}.key", node.path()),
        )?),
        None => None,
    };
    if cfg.version.is_some() {
        tracing::info!(
            "output.kafka.version is ignored: librdkafka negotiates the protocol version with the brokers"
        );
    }
    let mut cc = ClientConfig::new();
    for (k, v) in &t.props {
        cc.set(k, v);
    }
    let producer: Producer = cc.create_with_context(TracingContext).map_err(|e| {
        ConfigError::new(
            node.path(),
            node.mark.clone(),
            format!("librdkafka refused the settings: {e}"),
        )
    })?;
    Ok(Built {
        cfg,
        producer,
        topics,
        key,
        partitioning: t.partitioning,
    })
}

/// Validates `output.kafka` and builds `worker` clients sharing one librdkafka producer.
pub fn build(node: &Node, ctx: &BuildContext) -> Result<OutputSet, ConfigErrors> {
    let b = parse(node)?;
    let write_bytes = ctx.metrics.counter(&names::OUTPUT_WRITE_BYTES);
    let hosts = b.cfg.hosts.join(",");
    let clients: Vec<Box<dyn Output>> = (0..b.cfg.worker)
        .map(|_| {
            Box::new(KafkaClient {
                producer: b.producer.clone(),
                hosts: hosts.clone(),
                topics: b.topics.clone(),
                key: b.key.clone(),
                partitioner: Partitioner::new(b.partitioning.clone()),
                max_message_bytes: b.cfg.max_message_bytes,
                timeout: b.cfg.timeout.0,
                metadata_ttl: b.cfg.metadata.refresh_frequency.0,
                partitions: HashMap::new(),
                write_bytes: write_bytes.clone(),
                scratch: Vec::new(),
            }) as Box<dyn Output>
        })
        .collect();
    Ok(OutputSet {
        clients,
        settings: OutputSettings {
            bulk_max_size: b.cfg.bulk_max_size,
            max_retries: b.cfg.max_retries,
            backoff_init: b.cfg.backoff.init.0,
            backoff_max: b.cfg.backoff.max.0,
            loadbalance: true,
        },
    })
}

/// `skiff test output`: DNS and TCP per bootstrap host, then the cluster's metadata.
async fn probe(node: Node, _ctx: BuildContext) -> Vec<ProbeStep> {
    let b = match parse(&node) {
        Ok(b) => b,
        Err(e) => {
            return vec![ProbeStep::new(
                "configuration",
                false,
                e.to_string(),
                Some("fix output.kafka in the configuration file"),
            )];
        }
    };
    let mut steps = Vec::new();
    let timeout = b.cfg.timeout.0.min(Duration::from_secs(10));
    let mut reachable = 0;
    for h in &b.cfg.hosts {
        let name = h.rsplit_once(':').map_or(h.as_str(), |(n, _)| n);
        let t0 = Instant::now();
        let addrs: Vec<std::net::SocketAddr> = match tokio::net::lookup_host(h.as_str()).await {
            Ok(a) => a.collect(),
            Err(e) => {
                steps.push(ProbeStep::new(
                    format!("dns {name}"),
                    false,
                    e.to_string(),
                    Some("check the host name in `hosts` and the machine's DNS settings"),
                ));
                continue;
            }
        };
        let ips: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
        steps.push(ProbeStep::new(
            format!("dns {name}"),
            true,
            format!("{} ({:?})", ips.join(", "), t0.elapsed()),
            None,
        ));
        let t0 = Instant::now();
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(h.as_str())).await {
            Ok(Ok(_)) => {
                reachable += 1;
                steps.push(ProbeStep::new(
                    format!("connect {h}"),
                    true,
                    format!("{:?}", t0.elapsed()),
                    None,
                ));
            }
            Ok(Err(e)) => steps.push(ProbeStep::new(
                format!("connect {h}"),
                false,
                e.to_string(),
                Some("is the broker running and listening on this address, and is the port open?"),
            )),
            Err(_) => steps.push(ProbeStep::new(
                format!("connect {h}"),
                false,
                format!("timed out after {timeout:?}"),
                Some("a firewall may be dropping packets to this port"),
            )),
        }
    }
    if reachable == 0 {
        return steps;
    }
    let topic = b.topics.constant();
    let producer = b.producer.clone();
    let t = topic.clone();
    let md = tokio::task::spawn_blocking(move || {
        producer
            .client()
            .fetch_metadata(t.as_deref(), timeout)
            .map(|md| {
                let brokers: Vec<String> = md
                    .brokers()
                    .iter()
                    .map(|b| format!("{}@{}:{}", b.id(), b.host(), b.port()))
                    .collect();
                let topic = t.as_ref().and_then(|t| {
                    md.topics().iter().find(|x| x.name() == t).map(|x| {
                        let leaders: Vec<String> = x
                            .partitions()
                            .iter()
                            .map(|p| format!("{}:leader {}", p.id(), p.leader()))
                            .collect();
                        (x.error().map(|e| format!("{e:?}")), leaders)
                    })
                });
                (brokers, topic)
            })
    })
    .await;
    match md {
        Ok(Ok((brokers, topic_md))) => {
            steps.push(ProbeStep::new(
                "metadata",
                true,
                format!("brokers: {}", brokers.join(", ")),
                None,
            ));
            match (topic, topic_md) {
                (Some(t), Some((None, parts))) => steps.push(ProbeStep::new(
                    format!("topic {t}"),
                    !parts.is_empty(),
                    format!("{} partitions ({})", parts.len(), parts.join(", ")),
                    None,
                )),
                (Some(t), Some((Some(e), _))) => steps.push(ProbeStep::new(
                    format!("topic {t}"),
                    false,
                    e,
                    Some("create the topic, or check the user's DESCRIBE/WRITE ACLs on it"),
                )),
                (Some(t), None) => steps.push(ProbeStep::new(
                    format!("topic {t}"),
                    false,
                    "not in the cluster's metadata",
                    Some("create the topic (or enable auto.create.topics.enable)"),
                )),
                (None, _) => steps.push(ProbeStep::new(
                    "topic",
                    true,
                    "chosen per event (template or `topics` rules): not checked",
                    None,
                )),
            }
        }
        Ok(Err(e)) => steps.push(ProbeStep::new(
            "metadata",
            false,
            e.to_string(),
            Some("the brokers accepted TCP but not a Kafka metadata request: check security settings (ssl, sasl) and the advertised listeners"),
        )),
        Err(e) => steps.push(ProbeStep::new("metadata", false, e.to_string(), None)),
    }
    steps
}
