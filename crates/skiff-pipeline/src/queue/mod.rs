//! Queues: where events wait between the inputs and the output.
//!
//! A queue is bounded. When it is full, [`Queue::push`] waits (backpressure reaches the inputs,
//! which stop reading) unless `when_full: drop_newest` was chosen. Events taken out by
//! [`Queue::pop`] stay accounted to the queue until their [`Batch`] is dropped: memory that an
//! output is still sending is memory in use.
//!
//! * [`memory`]: in memory, bounded by events and bytes (`queue.mem.*`).
//! * [`disk`]: append-only segment files, bounded by `queue.disk.max_size`.

pub mod disk;
pub mod memory;

use async_trait::async_trait;
use serde::Deserialize;
use skiff_event::Event;

/// The queue is closed (skiff is stopping); the event is given back.
#[derive(Debug)]
pub struct Closed(pub Event);

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the queue is closed: skiff is shutting down")
    }
}

impl std::error::Error for Closed {}

/// What to do with a new event when the queue is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Wait until there is room (backpressure; nothing is lost). The default.
    #[default]
    Block,
    /// Drop the new event, acknowledge it to its input, and count it in
    /// `libbeat.pipeline.events.dropped`.
    DropNewest,
}

/// Events taken from a queue for one send. Dropping it releases them from the queue's accounting.
pub struct Batch {
    /// The events, oldest first.
    pub events: Vec<Event>,
    release: Option<Box<dyn FnOnce() + Send>>,
}

impl Batch {
    /// A batch whose `release` runs when it is dropped.
    pub fn new(events: Vec<Event>, release: impl FnOnce() + Send + 'static) -> Self {
        Batch {
            events,
            release: Some(Box::new(release)),
        }
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        if let Some(r) = self.release.take() {
            r()
        }
    }
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Batch({} events)", self.events.len())
    }
}

/// A queue between inputs and outputs.
#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// Adds an event, waiting while the queue is full (or dropping it, with `drop_newest`).
    async fn push(&self, event: Event) -> Result<(), Closed>;

    /// Adds all of `events` in order (leaving the vector empty), waiting while the queue is
    /// full. Inputs that read many events at once use it: a queue can then take its lock and
    /// wake its consumer once per call instead of once per event. When the queue closes, the
    /// events not yet queued are dropped unacknowledged (so they are read again after a
    /// restart) and the first of them comes back in the error.
    async fn push_all(&self, events: &mut Vec<Event>) -> Result<(), Closed> {
        let mut rest = events.drain(..);
        for ev in rest.by_ref() {
            self.push(ev).await?;
        }
        Ok(())
    }

    /// Takes up to `max` events, waiting for the first one, then for up to the queue's flush
    /// timeout for more. `None` once the queue is closed and empty.
    async fn pop(&self, max: usize) -> Option<Batch>;

    /// Stops accepting events; `pop` drains what is left, then returns `None`.
    fn close(&self);

    /// Events and bytes held (waiting and being sent).
    fn stats(&self) -> QueueStats;
}

/// A queue's fill level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Events held (waiting and in batches being sent).
    pub events: u64,
    /// Accounted bytes held.
    pub bytes: u64,
    /// Events waiting (not yet taken by an output).
    pub waiting: u64,
}
