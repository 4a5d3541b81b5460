//! The `kafka` input: a member of a Kafka consumer group that reads `topics` and publishes one
//! event per record, as Filebeat's `type: kafka`.
//!
//! Where it sits: an input of the pipeline (**input** -> processors -> queue -> output), a crate
//! of its own because of librdkafka (the `rdkafka` crate, with the kafka output's features, so
//! one librdkafka is linked). TLS and SASL settings are translated by the kafka output's
//! [`security_props`](skiff_output_kafka::config::security_props), the same keys both ways.
//!
//! # Acknowledgement contract
//!
//! * Each assigned partition has one [`AckStream`](skiff_event::AckStream); every event gets a
//!   token whose position is the offset after its record. A partition's offset is **stored
//!   only once the output acknowledged every event before it** (the stream's watermark), and
//!   librdkafka commits only stored offsets (`enable.auto.offset.store: false`), every second,
//!   at a rebalance and when the input stops. See [`offsets`].
//! * Nothing is acknowledged to Kafka beyond the commit: while the output is down nothing is
//!   committed; the input keeps reading until the queue is full (then stops reading: librdkafka
//!   prefetches at most `fetch.max`/its 64MiB queue). After a crash, a restart or a rebalance,
//!   the group reads again from the last commit: **at least once**, the records after the last
//!   commit may come twice, none is lost.
//! * At shutdown the input stops reading, waits up to `wait_close` (at most
//!   `shutdown_timeout`) for the output's acknowledgements, stores and commits what they cover,
//!   and leaves the group.
//! * A record that a parser holds (multiline) or that a processor dropped does not hold the
//!   watermark back once its event is resolved; a record whose event was lost (a token dropped
//!   unresolved) holds its partition's commit back until the next restart or rebalance.
//!
//! # Events
//!
//! `message` (the record's value, UTF-8 with invalid bytes replaced), `kafka.topic`,
//! `kafka.partition`, `kafka.offset`, `kafka.key` (text, empty when none), `kafka.headers`
//! (`"name: value"` strings, when present) and `@timestamp` from the record's time, as
//! Filebeat. `parsers` (ndjson, multiline, container) run per partition;
//! `expand_event_list_from_field` makes one event per list element instead.

#![deny(missing_docs)]

pub mod config;
pub mod error;
pub mod offsets;
pub mod record;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use skiff_config::{ConfigErrors, Node};
use skiff_event::Event;
use skiff_metrics::names;
use skiff_output_kafka::client::TracingContext;
use skiff_parsers::{Parser, ParserChain};
use skiff_pipeline::{BuildContext, Failure, Input, InputContext, InputPlugin};

use crate::config::KafkaInputConfig;
use crate::error::KafkaInputError;
use crate::offsets::{Key, Offsets};

/// `type: kafka`.
pub static PLUGIN: InputPlugin = InputPlugin {
    name: "kafka",
    agent_type: "filebeat",
    build,
};

fn build(
    node: &Node,
    _common: &skiff_pipeline::InputCommon,
    ctx: &BuildContext,
) -> Result<Box<dyn Input>, ConfigErrors> {
    let cfg: KafkaInputConfig = node.deserialize()?;
    let mut errs = Vec::new();
    let props = match config::translate(&cfg, node) {
        Ok(p) => p,
        Err(e) => {
            errs.extend(e.0);
            BTreeMap::new()
        }
    };
    let max = usize::try_from(cfg.max_message_size.0).unwrap_or(usize::MAX);
    // Built once to report its problems now; each partition gets its own chain at run time.
    if let Err(e) = ParserChain::build(node.get("parsers"), ctx, max) {
        errs.extend(e.0);
    }
    if !errs.is_empty() {
        return Err(ConfigErrors(errs));
    }
    Ok(Box::new(KafkaInput {
        cfg,
        props,
        parsers: node.get("parsers").cloned(),
        max_message_size: max,
    }))
}

/// A built kafka input.
pub struct KafkaInput {
    cfg: KafkaInputConfig,
    props: BTreeMap<String, String>,
    parsers: Option<Node>,
    max_message_size: usize,
}

/// The consumer's callbacks: librdkafka's log to `tracing`, and the partitions a rebalance
/// took away, for the reading task to end their generation.
struct GroupContext {
    revoked: Mutex<Vec<Key>>,
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        TracingContext.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        TracingContext.error(error, reason);
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let keys: Vec<Key> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect();
                tracing::info!(partitions = ?keys, "kafka input: partitions revoked");
                self.revoked
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(keys);
            }
            Rebalance::Assign(tpl) => {
                let keys: Vec<Key> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect();
                tracing::info!(partitions = ?keys, "kafka input: partitions assigned");
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "kafka input: rebalance failed"),
        }
    }
}

type GroupConsumer = StreamConsumer<GroupContext>;

/// Stores the offsets whose watermark moved; librdkafka's auto-commit sends them.
fn store_moved(consumer: &GroupConsumer, offsets: &Offsets) {
    for ((topic, partition), next) in offsets.take_moved() {
        // rd_kafka_offsets_store takes the offset to resume from as given (its single-partition
        // sibling behind `store_offset` adds 1 itself).
        let mut tpl = TopicPartitionList::new();
        let stored = tpl
            .add_partition_offset(&topic, partition, Offset::Offset(next))
            .and_then(|()| consumer.store_offsets(&tpl));
        if let Err(e) = stored {
            // The partition was revoked meanwhile: its new owner reads it again.
            tracing::debug!(topic, partition, offset = next, error = %e, "kafka input: offset not stored");
        }
    }
}

#[async_trait]
impl Input for KafkaInput {
    async fn run(self: Box<Self>, ctx: InputContext) -> Result<(), Failure> {
        let KafkaInput {
            cfg,
            props,
            parsers,
            max_message_size,
        } = *self;
        let mut cc = ClientConfig::new();
        for (k, v) in &props {
            cc.set(k, v);
        }
        let consumer: Arc<GroupConsumer> = Arc::new(
            cc.create_with_context(GroupContext {
                revoked: Mutex::default(),
            })
            .map_err(KafkaInputError::Create)?,
        );
        let topics: Vec<&str> = cfg.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|source| KafkaInputError::Subscribe {
                topics: cfg.topics.clone(),
                source,
            })?;
        tracing::info!(input = %ctx.id, hosts = ?cfg.hosts, topics = ?cfg.topics,
            group = cfg.group_id.as_deref().unwrap_or_default(), "kafka input started");

        let offsets = Arc::new(Offsets::default());
        let label = [("input", ctx.id.as_str())];
        let events = ctx.build.metrics.counter_with(&names::INPUT_EVENTS, &label);
        let bytes = ctx.build.metrics.counter_with(&names::INPUT_BYTES, &label);
        {
            let o = offsets.clone();
            let (hosts, group) = (cfg.hosts.clone(), cfg.group_id.clone());
            ctx.build.status.register(&ctx.id, move || {
                let parts: Vec<serde_json::Value> = o
                    .streams()
                    .into_iter()
                    .map(|((t, p), s)| {
                        let pr = s.progress();
                        serde_json::json!({"topic": t, "partition": p, "acked": pr.acked,
                            "pending": pr.pending(), "committable_offset": s.acked_position()})
                    })
                    .collect();
                serde_json::json!({"type": "kafka", "hosts": hosts, "group_id": group,
                    "partitions": parts})
            });
        }
        let storer = {
            let (c, o) = (consumer.clone(), offsets.clone());
            tokio::spawn(async move {
                loop {
                    o.moved.notified().await;
                    store_moved(&c, &o);
                }
            })
        };

        let expand = cfg.expand_event_list_from_field.clone();
        let mut chains: HashMap<Key, ParserChain> = HashMap::new();
        let new_chain = || {
            ParserChain::build(parsers.as_ref(), &ctx.build, max_message_size)
                .unwrap_or_else(|_| ParserChain::from_stages(Vec::new()))
        };
        let mut out = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        'read: loop {
            let polled = tokio::select! {
                m = consumer.recv() => Some(m),
                _ = tick.tick() => None,
                _ = ctx.shutdown.cancelled() => break,
            };
            // Partitions taken away by a rebalance (served inside recv): end their generation
            // and drop what their parsers held (the new owner reads it again).
            let revoked: Vec<Key> = std::mem::take(
                &mut *consumer
                    .context()
                    .revoked
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()),
            );
            for key in &revoked {
                offsets.revoke(key);
                chains.remove(key);
            }
            // The record is read and let go of before any await: librdkafka's message is not
            // Send.
            let failed = matches!(&polled, Some(Err(_)));
            let (key, msgs) = match polled {
                None => (None, Vec::new()),
                Some(Err(e)) => {
                    tracing::warn!(input = %ctx.id, error = %e, retry_in = ?cfg.consume_backoff.0, "kafka input: read failed");
                    (None, Vec::new())
                }
                Some(Ok(msg)) => {
                    let key: Key = (msg.topic().to_owned(), msg.partition());
                    let payload_len = msg.payload_len();
                    if payload_len > max_message_size {
                        // Skipped, and its offset counted as done: say loudly why.
                        tracing::error!(input = %ctx.id, topic = key.0, partition = key.1, offset = msg.offset(),
                            size = payload_len, max = max_message_size,
                            "kafka input: record larger than max_message_size skipped; raise max_message_size");
                        offsets.stream(&key).token(next_offset(&msg)).ack();
                        continue;
                    }
                    events.inc();
                    bytes.add(payload_len as u64);
                    let msgs = record::messages(&to_record(&msg), expand.as_deref());
                    (Some(key), msgs)
                }
            };
            let Some(key) = key else {
                if failed {
                    tokio::select! {
                        _ = tokio::time::sleep(cfg.consume_backoff.0) => {}
                        _ = ctx.shutdown.cancelled() => break,
                    }
                    continue;
                }
                // A tick: multiline events whose timeout passed.
                let now = Instant::now();
                for (key, chain) in chains.iter_mut() {
                    if chain.deadline().is_some_and(|d| d <= now) {
                        chain.flush_expired(now, &mut out);
                        if !publish(&ctx, &offsets, key, &mut out).await {
                            break 'read;
                        }
                    }
                }
                continue;
            };
            if expand.is_some() {
                out.extend(msgs);
            } else {
                let chain = chains.entry(key.clone()).or_insert_with(new_chain);
                for m in msgs {
                    chain.feed(m, &mut out);
                }
            }
            if !publish(&ctx, &offsets, &key, &mut out).await {
                break;
            }
        }

        // Shutdown: wait for the output's acknowledgements, store and commit what they cover.
        let wait = cfg.wait_close.0.min(ctx.publisher.shutdown_timeout());
        let deadline = tokio::time::Instant::now() + wait;
        for (_, s) in offsets.streams() {
            s.wait_all_acked(deadline).await;
        }
        storer.abort();
        // Its handle on the consumer goes with it, so the close below is the last one.
        let _ = storer.await;
        store_moved(&consumer, &offsets);
        let c = consumer.clone();
        drop(consumer);
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = c.commit_consumer_state(CommitMode::Sync) {
                tracing::debug!(error = %e, "kafka input: final commit");
            }
            // Dropping the last handle closes the consumer: it leaves the group.
            drop(c);
        })
        .await;
        tracing::info!(input = %ctx.id, "kafka input stopped");
        Ok(())
    }

    fn replays_unacked(&self) -> bool {
        // The group reads again from the last commit, which never passes an unacknowledged
        // record.
        true
    }
}

/// The offset after `msg`: the position to commit once its event is delivered.
fn next_offset(msg: &BorrowedMessage<'_>) -> u64 {
    u64::try_from(msg.offset()).unwrap_or(0).saturating_add(1)
}

fn to_record<'a>(msg: &'a BorrowedMessage<'a>) -> record::Record<'a> {
    let headers = msg
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| (h.key, h.value.unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    record::Record {
        topic: msg.topic(),
        partition: msg.partition(),
        offset: msg.offset(),
        key: msg.key(),
        payload: msg.payload().unwrap_or_default(),
        headers,
        timestamp_ms: msg.timestamp().to_millis(),
    }
}

/// Publishes the parsed messages of partition `key` (drained from `out`), each with a token
/// of the partition's stream. False when the pipeline closed.
async fn publish(
    ctx: &InputContext,
    offsets: &Arc<Offsets>,
    key: &Key,
    out: &mut Vec<skiff_parsers::Message>,
) -> bool {
    if out.is_empty() {
        return true;
    }
    let stream = offsets.stream(key);
    for m in out.drain(..) {
        let token = stream.token(m.end);
        let mut ev = Event::new(ctx.shared.clone(), String::new());
        skiff_parsers::apply_to_event(m, &mut ev);
        // `log.offset` is a file's: the record's offset is `kafka.offset`.
        ev.offset = None;
        ev.ack = Some(token);
        // Waiting here stops the reads from the broker: back-pressure.
        let published = tokio::select! {
            r = ctx.publisher.publish(ev) => r.is_ok(),
            _ = ctx.shutdown.cancelled() => false,
        };
        if !published {
            return false;
        }
    }
    true
}
