//! What an input holds to publish events.

use std::sync::Arc;

use skiff_event::Event;
use skiff_metrics::{Counter, Registry, names};

use crate::{Closed, Processor, Queue, Verdict};

/// Publishes an input's events: runs the processors (the input's own, then the global ones) in
/// the caller's task, then pushes into the queue, waiting while it is full. Cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    queue: Arc<dyn Queue>,
    processors: Arc<[Arc<dyn Processor>]>,
    published: Counter,
    filtered: Counter,
    shutdown_timeout: std::time::Duration,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Publisher({} processors)", self.processors.len())
    }
}

impl Publisher {
    /// A publisher into `queue` running the global `processors`.
    pub fn new(
        queue: Arc<dyn Queue>,
        processors: Vec<Arc<dyn Processor>>,
        metrics: &Registry,
    ) -> Self {
        Publisher {
            queue,
            processors: processors.into(),
            published: metrics.counter(&names::PIPELINE_EVENTS_PUBLISHED),
            filtered: metrics.counter(&names::PIPELINE_EVENTS_FILTERED),
            shutdown_timeout: std::time::Duration::ZERO,
        }
    }

    /// The same publisher with the pipeline's `shutdown_timeout` set.
    pub fn with_shutdown_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// `shutdown_timeout`: how long an input, once asked to stop, should wait for its published
    /// events to be acknowledged before it saves its state and returns (0: do not wait; the
    /// unacknowledged events are sent again after a restart).
    pub fn shutdown_timeout(&self) -> std::time::Duration {
        self.shutdown_timeout
    }

    /// The same publisher with an input's own processors run first.
    pub fn with_input_processors(&self, own: Vec<Arc<dyn Processor>>) -> Self {
        if own.is_empty() {
            return self.clone();
        }
        let mut all = own;
        all.extend(self.processors.iter().cloned());
        Publisher {
            processors: all.into(),
            ..self.clone()
        }
    }

    /// Processes and queues one event. An event a processor drops is acknowledged at once.
    /// Fails only when skiff is shutting down; the event comes back, unacknowledged.
    pub async fn publish(&self, mut event: Event) -> Result<(), Closed> {
        for p in self.processors.iter() {
            if p.process(&mut event) == Verdict::Drop {
                event.ack();
                self.filtered.inc();
                return Ok(());
            }
        }
        self.queue.push(event).await?;
        self.published.inc();
        Ok(())
    }

    /// Processes and queues all of `events`, in order, leaving the vector empty (its
    /// allocation is kept for the caller's next batch). Cheaper per event than
    /// [`publish`](Self::publish) for an input that reads many events at once.
    pub async fn publish_all(&self, events: &mut Vec<Event>) -> Result<(), Closed> {
        if !self.processors.is_empty() {
            events.retain_mut(|event| {
                for p in self.processors.iter() {
                    if p.process(event) == Verdict::Drop {
                        event.ack();
                        self.filtered.inc();
                        return false;
                    }
                }
                true
            });
        }
        let n = events.len() as u64;
        self.queue.push_all(events).await?;
        self.published.add(n);
        Ok(())
    }
}
