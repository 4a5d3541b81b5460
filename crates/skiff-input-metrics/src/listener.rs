//! Push metricsets: metricsets that are not fetched every `period` but receive what a service
//! sends them (prometheus `remote_write`: Prometheus POSTs samples to it). Metricbeat calls
//! them push metricsets; they run continuously instead of on the ticker.
//!
//! How they fit the framework: a push metricset is still one [`Module`](crate::Module)
//! metricset built into a [`Fetcher`](crate::Fetcher) (so its configuration is validated like
//! every other and `skiff test modules` can ask it), but its fetcher answers
//! [`Fetcher::listener`](crate::Fetcher::listener) with a [`Listener`]. The block then runs that
//! listener in place of the periodic schedule, handing it a [`Sink`] that adds the envelope and
//! publishes.
//!
//! Envelope: as for fetched events, except that push events carry no `metricset.period` and no
//! `event.duration` (there is neither a period nor a fetch), as in Metricbeat.
//!
//! Delivery: unlike fetched metrics (which a later fetch replaces), pushed samples exist only in
//! the sender's request. [`Sink::publish`] therefore gives every event an acknowledgement token
//! and returns only once skiff's output acknowledged all of them, so the receiver can answer the
//! sender after delivery: at least once (a sender that gives up waiting and sends again may
//! deliver twice).
//!
//! A listener that fails (its port is taken) publishes an event with `error.message` and is
//! started again one `period` later, as a failed fetch is followed by the next.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use skiff_event::{AckStream, AckToken, Event, Map, Timestamp};
use skiff_pipeline::Publisher;
use tokio_util::sync::CancellationToken;

use crate::scheduler::{Counters, envelope};
use crate::{Error, FetchContext, MetricEvent};

/// A push metricset at work.
#[async_trait]
pub trait Listener: Send {
    /// Receives until `sink.shutdown()` is cancelled. An `Err` (cannot listen) becomes an error
    /// event and the listener is started again after `period`.
    async fn listen(&mut self, sink: Sink) -> Result<(), Error>;
}

/// Why events were not delivered.
#[derive(Debug, PartialEq, Eq)]
pub enum NotDelivered {
    /// skiff is stopping (the queue closed or shutdown began) before the output acknowledged
    /// them: the sender should send again.
    Stopping,
}

/// Where a listener's events go: the envelope, the block's publisher, its counters.
#[derive(Clone)]
pub struct Sink {
    ctx: Arc<FetchContext>,
    service_name: Option<String>,
    publisher: Publisher,
    shared: Arc<Map>,
    shutdown: CancellationToken,
    counters: Counters,
}

impl Sink {
    /// A sink publishing through `publisher` with `shared` fields.
    pub fn new(
        ctx: FetchContext,
        service_name: Option<String>,
        publisher: Publisher,
        shared: Arc<Map>,
        shutdown: CancellationToken,
        counters: Counters,
    ) -> Sink {
        Sink {
            ctx: Arc::new(ctx),
            service_name,
            publisher,
            shared,
            shutdown,
            counters,
        }
    }

    /// The metricset's settings (host, timeout, `ssl`).
    pub fn context(&self) -> &FetchContext {
        &self.ctx
    }

    /// Cancelled when skiff stops.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// One pushed event: the metricset's data plus the push envelope.
    fn event(&self, ev: MetricEvent, ack: Option<AckToken>) -> Event {
        let timestamp = ev.timestamp.unwrap_or_else(Timestamp::now);
        let mut fields = envelope(&self.ctx, self.service_name.as_deref(), ev, 0);
        if let Some(ms) = fields.get_mut("metricset").and_then(|v| v.as_object_mut()) {
            ms.remove("period");
        }
        if let Some(e) = fields.get_mut("event").and_then(|v| v.as_object_mut()) {
            e.remove("duration");
        }
        // A push metricset has no host it fetched from (Metricbeat's empty host parser).
        if let Some(s) = fields.get_mut("service").and_then(|v| v.as_object_mut()) {
            s.remove("address");
        }
        Event {
            timestamp,
            message: None,
            offset: None,
            fields,
            meta: Map::new(),
            shared: self.shared.clone(),
            ack,
        }
    }

    /// Publishes `events` and waits until the output acknowledged every one of them.
    pub async fn publish(&self, events: Vec<MetricEvent>) -> Result<(), NotDelivered> {
        if events.is_empty() {
            return Ok(());
        }
        let stream = AckStream::new();
        let mut batch: Vec<Event> = events
            .into_iter()
            .enumerate()
            .map(|(i, ev)| self.event(ev, Some(stream.token(i as u64 + 1))))
            .collect();
        self.counters.events.add(batch.len() as u64);
        let queued = tokio::select! {
            r = self.publisher.publish_all(&mut batch) => r.is_ok(),
            _ = self.shutdown.cancelled() => false,
        };
        if !queued {
            return Err(NotDelivered::Stopping);
        }
        loop {
            // Wait as long as the output needs (it retries while Elasticsearch is down); the
            // sender's own timeout decides when to give up and send again.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                done = stream.wait_all_acked(deadline) => if done { return Ok(()) },
                _ = self.shutdown.cancelled() => {
                    let grace = tokio::time::Instant::now() + self.publisher.shutdown_timeout();
                    return if stream.wait_all_acked(grace).await {
                        Ok(())
                    } else {
                        Err(NotDelivered::Stopping)
                    };
                }
            }
        }
    }

    /// Publishes an event with `error.message` (no acknowledgement awaited).
    pub async fn publish_error(&self, message: String) {
        self.counters.errors.inc();
        let ev = MetricEvent {
            error: Some(message),
            ..Default::default()
        };
        let mut batch = vec![self.event(ev, None)];
        tokio::select! {
            _ = self.publisher.publish_all(&mut batch) => {}
            _ = self.shutdown.cancelled() => {}
        }
    }
}

/// Runs a listener until shutdown; a failure is an error event and a new start after `period`.
pub async fn run_listener(mut listener: Box<dyn Listener>, sink: Sink) {
    let period = sink.ctx.period;
    loop {
        // Not raced against shutdown: the listener sees it itself and answers the requests in
        // progress (delivered, or 503) before it returns.
        let result = listener.listen(sink.clone()).await;
        if sink.shutdown.is_cancelled() {
            return;
        }
        if let Err(e) = result {
            tracing::warn!(module = sink.ctx.module, metricset = %sink.ctx.metricset, error = %e, "listener failed; starting again after the period");
            sink.publish_error(e.to_string()).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = sink.shutdown.cancelled() => return,
        }
    }
}
