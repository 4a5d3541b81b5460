//! `kafka`: Metricbeat's Kafka-protocol metricsets, asked of a broker through librdkafka (the
//! `rdkafka` crate skiff's kafka input and output link already): `partition` (metadata and
//! watermarks) and `consumergroup` (the groups, their members' assignments and committed
//! offsets). Default host `localhost:9092`. The Jolokia metricsets (`broker`, `consumer`,
//! `producer`) are not here.
//!
//! librdkafka's calls block, so each fetch runs on tokio's blocking pool with the fetch
//! `timeout` as librdkafka's own timeout. Every fetch opens a client and drops it: a fetch every
//! `period` costs one connection, and no client state outlives a failed broker.
//!
//! Options (Metricbeat's): `client_id` (`metricbeat`), `topics` (all when empty), `groups`
//! (consumergroup; all when empty), `retries` and `backoff` (accepted; librdkafka retries on
//! its own), `username`/`password` with `sasl.mechanism` (PLAIN, SCRAM-SHA-256/512). TLS to the
//! broker is not supported yet by this module (refused at configuration time).

use std::time::Duration;

use async_trait::async_trait;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;
use rdkafka::{Offset, TopicPartitionList};
use serde::Deserialize;
use serde_json::json;
use skiff_config::{ConfigError, ConfigErrors, Node};
use skiff_event::{Map, Value};

use crate::{Error, FetchContext, Fetcher, MetricEvent, Module};

/// The module.
pub struct Kafka;

/// The module's own options.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    topics: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    retries: Option<i64>,
    #[serde(default)]
    backoff: Option<skiff_config::Duration>,
    #[serde(default)]
    sasl: Option<Sasl>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sasl {
    #[serde(default)]
    mechanism: Option<String>,
}

impl Module for Kafka {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn metricsets(&self) -> &'static [&'static str] {
        &["partition", "consumergroup"]
    }

    fn default_metricsets(&self) -> &'static [&'static str] {
        &["partition", "consumergroup"]
    }

    fn default_hosts(&self) -> &'static [&'static str] {
        &["localhost:9092"]
    }

    fn build(
        &self,
        metricset: &str,
        ctx: &FetchContext,
        own: &Node,
    ) -> Result<Box<dyn Fetcher>, ConfigErrors> {
        let opts: Options = own.deserialize()?;
        let _ = (opts.retries, opts.backoff);
        let raw = ctx
            .host
            .as_ref()
            .map_or("localhost:9092", |h| h.raw.as_str());
        let addr = raw
            .split_once("://")
            .map_or(raw, |(_, rest)| rest)
            .trim_end_matches('/')
            .to_owned();
        let mut props = vec![
            ("bootstrap.servers", addr.clone()),
            (
                "client.id",
                opts.client_id.unwrap_or_else(|| "metricbeat".into()),
            ),
            // A failed broker is a failed fetch, not minutes of retries.
            ("socket.timeout.ms", ms(ctx.timeout)),
            ("enable.auto.commit", "false".into()),
        ];
        let at = |key: &str, msg: &str| {
            let n = own.get(key).unwrap_or(own);
            ConfigError::new(n.path().to_owned(), n.mark.clone(), msg.to_owned())
        };
        if ctx
            .http
            .options
            .ssl
            .as_ref()
            .is_some_and(|s| s.enabled != Some(false))
        {
            return Err(ConfigErrors(vec![at(
                "ssl",
                "TLS to Kafka brokers is not supported yet by the kafka module (set ssl.enabled: false)",
            )]));
        }
        let mechanism = opts
            .sasl
            .and_then(|s| s.mechanism)
            .map(|m| m.to_ascii_uppercase());
        match (&ctx.username, mechanism) {
            (Some(u), m) => {
                let m = m.unwrap_or_else(|| "PLAIN".into());
                if !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(&m.as_str()) {
                    return Err(ConfigErrors(vec![at(
                        "sasl.mechanism",
                        "must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
                    )]));
                }
                props.push(("security.protocol", "sasl_plaintext".into()));
                props.push(("sasl.mechanisms", m));
                props.push(("sasl.username", u.clone()));
                props.push(("sasl.password", ctx.password.clone().unwrap_or_default()));
            }
            (None, Some(_)) => {
                return Err(ConfigErrors(vec![at(
                    "sasl.mechanism",
                    "set `username` and `password` for SASL",
                )]));
            }
            (None, None) => {}
        }
        Ok(Box::new(Fetch {
            props,
            addr,
            // librdkafka's own calls end first, so a down broker's error names the broker
            // rather than being the framework's bare timeout.
            timeout: ctx.timeout.mul_f64(0.75),
            topics: opts.topics,
            groups: opts.groups,
            consumergroup: metricset == "consumergroup",
        }))
    }
}

fn ms(d: Duration) -> String {
    d.as_millis().clamp(10, i32::MAX as u128).to_string()
}

struct Fetch {
    props: Vec<(&'static str, String)>,
    addr: String,
    timeout: Duration,
    topics: Vec<String>,
    groups: Vec<String>,
    consumergroup: bool,
}

/// What one fetch needs, owned, for the blocking pool.
#[derive(Clone)]
struct Query {
    props: Vec<(&'static str, String)>,
    addr: String,
    timeout: Duration,
    topics: Vec<String>,
    groups: Vec<String>,
}

#[async_trait]
impl Fetcher for Fetch {
    async fn fetch(&mut self) -> Result<Vec<MetricEvent>, Error> {
        let q = Query {
            props: self.props.clone(),
            addr: self.addr.clone(),
            timeout: self.timeout,
            topics: self.topics.clone(),
            groups: self.groups.clone(),
        };
        let group = self.consumergroup;
        tokio::task::spawn_blocking(move || {
            if group {
                consumergroup(&q)
            } else {
                partition(&q)
            }
        })
        .await
        .map_err(|e| Error::Other(format!("kafka fetch: {e}")))?
    }
}

fn client(q: &Query, group: Option<&str>) -> Result<BaseConsumer, Error> {
    let mut cc = ClientConfig::new();
    for (k, v) in &q.props {
        cc.set(*k, v);
    }
    if let Some(g) = group {
        cc.set("group.id", g);
    }
    cc.create()
        .map_err(|e| Error::Other(format!("kafka client for {}: {e}", q.addr)))
}

fn connect_error(q: &Query, e: &KafkaError) -> Error {
    let mut reason = e.to_string();
    if reason.contains("Timed out") {
        reason = format!("no answer within {:?} ({reason})", q.timeout);
    }
    if reason.contains("SASL") || reason.contains("uthentication") {
        return Error::Auth {
            what: q.addr.clone(),
            reason,
        };
    }
    Error::Connect {
        what: q.addr.clone(),
        reason,
    }
}

/// The broker this host is: its id and advertised address. As Metricbeat, the broker whose
/// advertised `host:port` is the configured one; else the one librdkafka says answered (it is
/// -1, unknown, when the answer came over the bootstrap connection); else the only broker.
fn answering_broker(md: &Metadata, addr: &str) -> Option<(i32, String)> {
    let listed =
        |b: &rdkafka::metadata::MetadataBroker| (b.id(), format!("{}:{}", b.host(), b.port()));
    let brokers = md.brokers();
    brokers
        .iter()
        .map(listed)
        .find(|(_, a)| a == addr)
        .or_else(|| {
            brokers
                .iter()
                .find(|b| b.id() == md.orig_broker_id())
                .map(listed)
        })
        .or_else(|| match brokers {
            [only] => Some(listed(only)),
            _ => None,
        })
}

fn wanted(filter: &[String], name: &str) -> bool {
    filter.is_empty() || filter.iter().any(|t| t == name)
}

/// A client, the cluster's metadata, and the broker that answered (`{id, address}`).
fn connect(q: &Query) -> Result<(BaseConsumer, Metadata, i32, Value), Error> {
    let c = client(q, None)?;
    let md = c
        .fetch_metadata(None, q.timeout)
        .map_err(|e| connect_error(q, &e))?;
    let (broker_id, broker_addr) = answering_broker(&md, &q.addr).ok_or_else(|| {
        Error::Other(format!(
            "{}: not among the brokers the cluster lists ({:?}); give a broker's advertised host:port",
            q.addr,
            md.brokers()
                .iter()
                .map(|b| format!("{}:{}", b.host(), b.port()))
                .collect::<Vec<_>>()
        ))
    })?;
    let broker = json!({"id": broker_id, "address": broker_addr});
    Ok((c, md, broker_id, broker))
}

/// `partition`: for every partition the answering broker leads, one event per replica.
fn partition(q: &Query) -> Result<Vec<MetricEvent>, Error> {
    let (c, md, broker_id, broker) = connect(q)?;
    let mut out = Vec::new();
    for topic in md.topics() {
        if !wanted(&q.topics, topic.name()) {
            continue;
        }
        for p in topic.partitions() {
            // Offsets can only be asked of the partition's leader (Metricbeat's rule).
            if p.leader() != broker_id {
                continue;
            }
            let (oldest, newest) = c
                .fetch_watermarks(topic.name(), p.id(), q.timeout)
                .map_err(|e| connect_error(q, &e))?;
            for &replica in p.replicas() {
                let mut part = json!({
                    "id": p.id(),
                    "leader": p.leader(),
                    "replica": replica,
                    "is_leader": replica == p.leader(),
                    "insync_replica": p.isr().contains(&replica),
                });
                if let Some(e) = p.error() {
                    part["error"] = json!({"code": e as i32});
                }
                let topic_id = format!("{}-{}", p.id(), topic.name());
                let mut fields = Map::new();
                fields.insert("id".into(), Value::from(p.id()));
                fields.insert("topic_id".into(), Value::from(topic_id.clone()));
                fields.insert(
                    "topic_broker_id".into(),
                    Value::from(format!("{topic_id}-{replica}")),
                );
                fields.insert("partition".into(), part);
                fields.insert("offset".into(), json!({"newest": newest, "oldest": oldest}));
                fields.insert("topic".into(), json!({"name": topic.name()}));
                fields.insert("broker".into(), broker.clone());
                let mut ev = MetricEvent::new(fields);
                ev.module_fields = module_fields(&broker, topic.name(), topic.error());
                out.push(ev);
            }
        }
    }
    Ok(out)
}

fn module_fields(
    broker: &Value,
    topic: &str,
    error: Option<rdkafka::types::RDKafkaRespErr>,
) -> Map {
    let mut t = json!({"name": topic});
    if let Some(e) = error {
        t["error"] = json!({"code": e as i32});
    }
    let mut m = Map::new();
    m.insert("broker".into(), broker.clone());
    m.insert("topic".into(), t);
    m
}

/// A member's assignment: which partitions of which topics it reads.
pub type Assignment = Vec<(String, Vec<i32>)>;

/// Reads a consumer group member's assignment, the "consumer" protocol's
/// `ConsumerProtocolAssignment` (version i16, then topics: name as i16-length string and
/// partitions as an i32-count array of i32, then user data). Hand-written because librdkafka
/// hands it over as bytes and the few lines below are all it takes; every count is checked
/// against the bytes left, so hostile input cannot allocate more than it is long.
pub fn parse_assignment(b: &[u8]) -> Option<Assignment> {
    struct R<'a>(&'a [u8]);
    impl R<'_> {
        fn take(&mut self, n: usize) -> Option<&[u8]> {
            if self.0.len() < n {
                return None;
            }
            let (h, t) = self.0.split_at(n);
            self.0 = t;
            Some(h)
        }
        fn i16(&mut self) -> Option<i16> {
            self.take(2).map(|s| i16::from_be_bytes([s[0], s[1]]))
        }
        fn i32(&mut self) -> Option<i32> {
            self.take(4)
                .map(|s| i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        }
    }
    let mut r = R(b);
    let _version = r.i16()?;
    let topics = usize::try_from(r.i32()?).ok()?;
    // Each topic takes at least 6 bytes: a count larger than that is a lie.
    if topics > r.0.len() / 6 {
        return None;
    }
    let mut out = Vec::with_capacity(topics);
    for _ in 0..topics {
        let len = usize::try_from(r.i16()?).ok()?;
        let name = String::from_utf8_lossy(r.take(len)?).into_owned();
        let n = usize::try_from(r.i32()?).ok()?;
        if n > r.0.len() / 4 {
            return None;
        }
        let mut parts = Vec::with_capacity(n);
        for _ in 0..n {
            parts.push(r.i32()?);
        }
        out.push((name, parts));
    }
    Some(out)
}

/// `consumergroup`: one event per (group, topic, partition) with a committed offset.
fn consumergroup(q: &Query) -> Result<Vec<MetricEvent>, Error> {
    let (c, md, _, broker) = connect(q)?;
    // ListGroups + DescribeGroups: the groups and their members. A broker that cannot list
    // them (some Kafka-protocol brokers lack DescribeGroups) still answers OffsetFetch: the
    // configured `groups` are then asked directly, without member details.
    let listed: Vec<(String, Vec<(Value, Assignment)>)> = match c.fetch_group_list(None, q.timeout)
    {
        Ok(list) => list
            .groups()
            .iter()
            .filter(|g| wanted(&q.groups, g.name()))
            .filter(|g| g.protocol_type().is_empty() || g.protocol_type() == "consumer")
            .map(|g| {
                let members = g
                    .members()
                    .iter()
                    .filter_map(|m| {
                        let a = m.assignment().and_then(parse_assignment)?;
                        let client = json!({
                            "id": m.client_id(),
                            "host": m.client_host().trim_start_matches('/'),
                            "member_id": m.id(),
                        });
                        Some((client, a))
                    })
                    .collect();
                (g.name().to_owned(), members)
            })
            .collect(),
        Err(e) if !q.groups.is_empty() => {
            tracing::debug!(error = %e, "kafka consumergroup: groups not listed; asking the configured ones");
            q.groups.iter().map(|g| (g.clone(), Vec::new())).collect()
        }
        Err(e) => return Err(connect_error(q, &e)),
    };
    let mut out = Vec::new();
    for (name, members) in &listed {
        // Who reads what, from the members' assignments.
        let mut owner: std::collections::HashMap<(&str, i32), &Value> = Default::default();
        for (client, a) in members {
            for (t, ps) in a {
                for p in ps {
                    owner.insert((t.as_str(), *p), client);
                }
            }
        }
        // The group's committed offsets, for every partition of the wanted topics.
        let mut tpl = TopicPartitionList::new();
        for t in md.topics() {
            if !wanted(&q.topics, t.name()) || t.name().starts_with("__") {
                continue;
            }
            for p in t.partitions() {
                tpl.add_partition(t.name(), p.id());
            }
        }
        if tpl.count() == 0 {
            continue;
        }
        let gc = client(q, Some(name))?;
        let committed = gc
            .committed_offsets(tpl, q.timeout)
            .map_err(|e| connect_error(q, &e))?;
        for e in committed.elements() {
            let Offset::Offset(offset) = e.offset() else {
                // No commit for this partition: Metricbeat reports nothing for it.
                continue;
            };
            let code = match e.error() {
                Ok(()) => 0,
                Err(err) => err.rdkafka_error_code().map_or(-1, |c| c as i32),
            };
            let mut fields = json!({
                "id": name,
                "topic": e.topic(),
                "partition": e.partition(),
                "offset": offset,
                "meta": e.metadata(),
                "error": {"code": code},
                "broker": broker,
            });
            if let Ok((_, newest)) = c.fetch_watermarks(e.topic(), e.partition(), q.timeout) {
                fields["consumer_lag"] = json!((newest - offset).max(0));
            }
            if let Some(cl) = owner.get(&(e.topic(), e.partition())) {
                fields["client"] = (*cl).clone();
            }
            let mut ev = MetricEvent::from_value(fields);
            ev.module_fields = module_fields(&broker, e.topic(), None);
            ev.module_fields
                .insert("partition".into(), json!({"id": e.partition()}));
            out.push(ev);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_are_read_and_lies_refused() {
        let mut b = vec![0, 1, 0, 0, 0, 2];
        for (t, ps) in [("logs", vec![0i32, 2]), ("x", vec![])] {
            b.extend((t.len() as i16).to_be_bytes());
            b.extend(t.as_bytes());
            b.extend((ps.len() as i32).to_be_bytes());
            for p in ps {
                b.extend(p.to_be_bytes());
            }
        }
        b.extend([0, 0, 0, 0]); // no user data
        assert_eq!(
            parse_assignment(&b),
            Some(vec![("logs".into(), vec![0, 2]), ("x".into(), vec![])])
        );
        // A huge count in a short buffer: refused, nothing allocated for it.
        assert_eq!(parse_assignment(&[0, 1, 0x7f, 0xff, 0xff, 0xff]), None);
        assert_eq!(parse_assignment(&b[..b.len() - 12]), None);
        assert_eq!(parse_assignment(&[]), None);
    }
}
