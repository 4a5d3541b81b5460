//! One Kafka output client: produces a batch through the shared librdkafka producer and waits
//! for every event's delivery report.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use skiff_event::Event;
use skiff_event::template::Template;
use skiff_metrics::Counter;
use skiff_pipeline::{Failure, Outcome, Output};

use crate::error::KafkaOutputError;
use crate::partition::Partitioner;
use skiff_processors::select::Selector;

/// Sends librdkafka's own log lines and errors to `tracing`.
pub struct TracingContext;

impl ClientContext for TracingContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        use RDKafkaLogLevel::*;
        match level {
            Emerg | Alert | Critical | Error => {
                tracing::error!(facility = fac, detail = log_message, "librdkafka")
            }
            Warning => tracing::warn!(facility = fac, detail = log_message, "librdkafka"),
            Notice | Info => tracing::info!(facility = fac, detail = log_message, "librdkafka"),
            Debug => tracing::debug!(facility = fac, detail = log_message, "librdkafka"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // Broker-down errors repeat while librdkafka reconnects: warn, the worker reports failures.
        tracing::warn!(error = %error, reason, "kafka client error");
    }
}

/// The producer type every client shares.
pub type Producer = FutureProducer<TracingContext>;

/// One client: a handle on the shared producer plus this client's routing state.
pub struct KafkaClient {
    /// The shared librdkafka producer.
    pub producer: Producer,
    /// `hosts`, for messages.
    pub hosts: String,
    /// Topic selection.
    pub topics: Arc<Selector>,
    /// `key`.
    pub key: Option<Template>,
    /// Partition choice.
    pub partitioner: Partitioner,
    /// `max_message_bytes`.
    pub max_message_bytes: usize,
    /// How long metadata requests may take.
    pub timeout: Duration,
    /// How long a topic's partition count is trusted.
    pub metadata_ttl: Duration,
    /// Partition counts by topic (None: unknown, let librdkafka choose), and when learned.
    pub partitions: HashMap<String, (Option<i32>, Instant)>,
    /// `libbeat.output.write.bytes` (event bytes handed to librdkafka, before compression).
    pub write_bytes: Counter,
    /// Encode buffer.
    pub scratch: Vec<u8>,
}

/// Whether a Kafka error means "these events can never be written" (rather than "not now").
pub fn permanent(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        code,
        MessageSizeTooLarge
            | InvalidMessageSize
            | MessageBatchTooLarge
            | TopicAuthorizationFailed
            | InvalidTopic
            | InvalidRecord
            | PolicyViolation
            | UnsupportedForMessageFormat
            | InvalidRequiredAcks
    )
}

pub(crate) fn code_of(e: &KafkaError) -> Option<RDKafkaErrorCode> {
    match e {
        KafkaError::MessageProduction(c) => Some(*c),
        other => other.rdkafka_error_code(),
    }
}

/// A plain-words explanation of a produce error.
fn explain(e: &KafkaError, topic: &str) -> String {
    let hint = match code_of(e) {
        Some(RDKafkaErrorCode::MessageSizeTooLarge) => {
            ": the broker's (or topic's) message.max.bytes is smaller than this event; raise it, or lower max_message_bytes so skiff dead-letters such events itself"
        }
        Some(RDKafkaErrorCode::TopicAuthorizationFailed) => {
            ": the user may not write to this topic; grant WRITE in the broker's ACLs or fix `topic`"
        }
        Some(RDKafkaErrorCode::MessageTimedOut) => {
            ": no broker acknowledged it within `timeout`; are the brokers up and reachable at their advertised addresses?"
        }
        Some(RDKafkaErrorCode::UnknownTopicOrPartition) | Some(RDKafkaErrorCode::UnknownTopic) => {
            ": the topic does not exist; create it, or enable auto.create.topics.enable on the brokers"
        }
        _ => "",
    };
    format!("kafka could not take the event for topic `{topic}`: {e}{hint}")
}

#[async_trait]
impl Output for KafkaClient {
    async fn send(&mut self, events: &[Event]) -> Result<Outcome, Failure> {
        let mut outcome = Outcome::default();
        let mut pending = Vec::with_capacity(events.len());
        let mut bytes = 0u64;
        for (i, ev) in events.iter().enumerate() {
            let topic = match self.topics.select(ev) {
                Ok(t) => t,
                Err(why) => {
                    outcome.rejected.push((i, why));
                    continue;
                }
            };
            self.scratch.clear();
            // With @metadata, as Beats' JSON codec writes it (Logstash's kafka input reads it).
            skiff_event::json::encode(ev, &mut self.scratch, true);
            if self.scratch.len() > self.max_message_bytes {
                outcome.rejected.push((
                    i,
                    format!(
                        "the event is {} bytes encoded, more than max_message_bytes ({}): raise max_message_bytes (and the topic's max.message.bytes) or shorten the event",
                        self.scratch.len(),
                        self.max_message_bytes
                    ),
                ));
                continue;
            }
            let key = self.key.as_ref().and_then(|t| t.render(ev).ok());
            let partition = match self.partition_count(&topic).await {
                Some(n) => Some(self.partitioner.pick(ev, key.as_deref(), n)),
                None => None,
            };
            loop {
                let mut rec = FutureRecord::<str, [u8]>::to(&topic).payload(&self.scratch[..]);
                if let Some(k) = &key {
                    rec = rec.key(k.as_str());
                }
                if let Some(p) = partition {
                    rec = rec.partition(p);
                }
                match self.producer.send_result(rec) {
                    Ok(fut) => {
                        bytes += self.scratch.len() as u64;
                        pending.push((i, fut));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        // librdkafka's local queue is full: wait for deliveries to drain it.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => {
                        if code_of(&e).is_some_and(permanent) {
                            outcome.rejected.push((i, explain(&e, &topic)));
                        } else {
                            tracing::warn!(output = %self.describe(), topic = %topic, error = %e, "produce failed; will retry");
                            outcome.retry.push(i);
                        }
                        break;
                    }
                }
            }
        }
        self.write_bytes.add(bytes);
        // An event counts as delivered only on its own delivery report with success: every
        // event handed to librdkafka has its future here, and every other outcome (an error
        // report, a cancelled future when the producer goes away) puts it in `retry` or
        // `rejected`.
        let mut first_error: Option<KafkaOutputError> = None;
        for (i, fut) in pending {
            match fut.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, msg))) => {
                    let topic = msg.topic().to_owned();
                    if code_of(&e).is_some_and(permanent) {
                        outcome.rejected.push((i, explain(&e, &topic)));
                    } else {
                        if first_error.is_none() {
                            first_error = Some(KafkaOutputError::produce(&e, explain(&e, &topic)));
                        }
                        if code_of(&e) == Some(RDKafkaErrorCode::UnknownTopicOrPartition)
                            || code_of(&e) == Some(RDKafkaErrorCode::UnknownPartition)
                        {
                            // The partition count we used may be stale.
                            self.partitions.remove(&topic);
                        }
                        outcome.retry.push(i);
                    }
                }
                Err(_canceled) => outcome.retry.push(i),
            }
        }
        if let Some(e) = first_error {
            if outcome.retry.len() == events.len() {
                // Nothing went through: a failure of the whole batch, counted by its class.
                return Err(e.into());
            }
            tracing::warn!(output = %self.describe(), kind = %e.kind(), events = outcome.retry.len(), error = %e, "kafka did not acknowledge some events; will retry");
        }
        Ok(outcome)
    }

    fn describe(&self) -> String {
        format!("kafka({})", self.hosts)
    }

    async fn close(&mut self) {
        let p = self.producer.clone();
        let t = self.timeout;
        let _ = tokio::task::spawn_blocking(move || {
            use rdkafka::producer::Producer as _;
            p.flush(t)
        })
        .await;
    }
}

impl KafkaClient {
    /// The topic's partition count, from a cache refreshed every `metadata.refresh_frequency`.
    /// `None` when the broker cannot tell (then librdkafka places the event).
    async fn partition_count(&mut self, topic: &str) -> Option<i32> {
        if let Some((n, at)) = self.partitions.get(topic) {
            let ttl = if n.is_some() {
                self.metadata_ttl
            } else {
                Duration::from_secs(5)
            };
            if at.elapsed() < ttl {
                return *n;
            }
        }
        let producer = self.producer.clone();
        let t = topic.to_owned();
        let timeout = self.timeout.min(Duration::from_secs(10));
        let n = tokio::task::spawn_blocking(move || {
            use rdkafka::producer::Producer as _;
            let md = producer.client().fetch_metadata(Some(&t), timeout).ok()?;
            let topic = md.topics().iter().find(|x| x.name() == t)?;
            if topic.error().is_some() || topic.partitions().is_empty() {
                return None;
            }
            i32::try_from(topic.partitions().len()).ok()
        })
        .await
        .ok()
        .flatten();
        self.partitions
            .insert(topic.to_owned(), (n, Instant::now()));
        n
    }
}
