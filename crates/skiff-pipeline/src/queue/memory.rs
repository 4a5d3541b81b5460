//! The memory queue (`queue.mem`), bounded by events *and* bytes.
//!
//! Filebeat bounds its memory queue by events only, so its memory is `events x line size`. Here
//! an event is admitted only if both `events` and `max_bytes` leave room; the bytes of events
//! being sent still count until their batch is done. One event larger than `max_bytes` is
//! admitted into an empty queue (otherwise it could never pass); so the worst case is
//! `max(max_bytes, message_max_bytes)`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Deserialize;
use skiff_config::{ByteSize, Duration as ConfDuration};
use skiff_event::Event;
use skiff_metrics::{Counter, Gauge, Registry, names};
use tokio::sync::Notify;

use super::{Batch, Closed, Queue, QueueStats, WhenFull};
use crate::budget::{Budget, Stage};

/// `queue.mem.*`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryQueueConfig {
    /// `events`: capacity in events. Default 3200 (as Beats 8).
    #[serde(default = "default_events")]
    pub events: usize,
    /// `max_bytes`: capacity in bytes (skiff's own). Default 64 MiB.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: ByteSize,
    /// `flush.*`: how long an output waits for a fuller batch.
    #[serde(default)]
    pub flush: FlushConfig,
    /// `when_full`: `block` (default) or `drop_newest`.
    #[serde(default)]
    pub when_full: WhenFull,
}

/// `queue.mem.flush.*`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlushConfig {
    /// `min_events`: hand out a batch as soon as this many events wait. Default 1600.
    #[serde(default = "default_min_events")]
    pub min_events: usize,
    /// `timeout`: or when the oldest waiting event is this old. Default 1s (`0s`: at once).
    #[serde(default = "default_flush_timeout")]
    pub timeout: ConfDuration,
}

fn default_events() -> usize {
    3200
}
fn default_max_bytes() -> ByteSize {
    ByteSize(64 << 20)
}
fn default_min_events() -> usize {
    1600
}
fn default_flush_timeout() -> ConfDuration {
    ConfDuration(Duration::from_secs(1))
}

impl Default for FlushConfig {
    fn default() -> Self {
        FlushConfig {
            min_events: default_min_events(),
            timeout: default_flush_timeout(),
        }
    }
}

impl Default for MemoryQueueConfig {
    fn default() -> Self {
        MemoryQueueConfig {
            events: default_events(),
            max_bytes: default_max_bytes(),
            flush: FlushConfig::default(),
            when_full: WhenFull::Block,
        }
    }
}

enum TryPush {
    Closed(Event),
    Full(Event),
}

struct Slot {
    event: Event,
    size: usize,
    at: Instant,
}

#[derive(Default)]
struct State {
    waiting: VecDeque<Slot>,
    /// Events held, waiting or in batches not yet dropped.
    events: usize,
    /// Bytes held, likewise.
    bytes: usize,
    /// Enqueue times of the oldest event of each batch being sent.
    in_flight: Vec<(u64, Instant)>,
    next_batch: u64,
    closed: bool,
}

struct Inner {
    cfg: MemoryQueueConfig,
    state: Mutex<State>,
    /// Signalled when events arrive (or the queue closes).
    not_empty: Notify,
    /// Signalled when room is made (or the queue closes).
    not_full: Notify,
    stage: Stage,
    filled_events: Gauge,
    filled_bytes: Gauge,
    dropped: Counter,
    waits: Counter,
    acked: Counter,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish_gauges(&self, st: &State) {
        self.filled_events.set(st.events as i64);
        self.filled_bytes.set(st.bytes as i64);
    }
}

/// The memory queue. Cheap to clone.
#[derive(Clone)]
pub struct MemoryQueue {
    inner: Arc<Inner>,
}

impl MemoryQueue {
    /// A queue reporting into `metrics` and accounted in `budget` as stage `queue.mem`.
    pub fn new(cfg: MemoryQueueConfig, metrics: &Registry, budget: &Budget) -> Self {
        let cfg = MemoryQueueConfig {
            events: cfg.events.max(1),
            ..cfg
        };
        metrics
            .gauge(&names::QUEUE_MAX_EVENTS)
            .set(cfg.events as i64);
        metrics
            .gauge(&names::QUEUE_MAX_BYTES)
            .set(cfg.max_bytes.0.min(i64::MAX as u64) as i64);
        let inner = Arc::new(Inner {
            stage: budget.stage("queue.mem", cfg.max_bytes.0),
            cfg,
            state: Mutex::default(),
            not_empty: Notify::new(),
            not_full: Notify::new(),
            filled_events: metrics.gauge(&names::QUEUE_FILLED_EVENTS),
            filled_bytes: metrics.gauge(&names::QUEUE_FILLED_BYTES),
            dropped: metrics.counter(&names::PIPELINE_EVENTS_DROPPED),
            waits: metrics.counter(&names::PIPELINE_BLOCKED),
            acked: metrics.counter(&names::QUEUE_ACKED),
        });
        let weak = Arc::downgrade(&inner);
        metrics.gauge_fn(&names::QUEUE_OLDEST_AGE_MS, move || {
            let Some(inner) = weak.upgrade() else {
                return 0.0;
            };
            let st = inner.lock();
            let oldest = st
                .in_flight
                .iter()
                .map(|(_, t)| *t)
                .chain(st.waiting.front().map(|s| s.at))
                .min();
            oldest.map_or(0.0, |t| t.elapsed().as_millis() as f64)
        });
        MemoryQueue { inner }
    }

    // The event comes back by value when it does not fit: boxing it would cost an allocation.
    #[allow(clippy::result_large_err)]
    fn try_push(&self, ev: Event, size: usize) -> Result<(), TryPush> {
        let mut st = self.inner.lock();
        if st.closed {
            return Err(TryPush::Closed(ev));
        }
        if !self.fits(&st, size) {
            return Err(TryPush::Full(ev));
        }
        st.events += 1;
        st.bytes += size;
        st.waiting.push_back(Slot {
            event: ev,
            size,
            at: Instant::now(),
        });
        self.inner.stage.add(size);
        self.inner.publish_gauges(&st);
        let wake = st.waiting.len() == 1 || st.waiting.len() >= self.inner.cfg.flush.min_events;
        drop(st);
        if wake {
            self.inner.not_empty.notify_one();
        }
        Ok(())
    }

    fn fits(&self, st: &State, size: usize) -> bool {
        st.events == 0
            || (st.events < self.inner.cfg.events
                && st.bytes + size <= self.inner.cfg.max_bytes.0 as usize)
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn push(&self, event: Event) -> Result<(), Closed> {
        let size = event.size_bytes();
        let mut event = Some(event);
        // Fast path: room now (the common case) costs one lock, no waiter registration.
        if let Some(ev) = event.take() {
            match self.try_push(ev, size) {
                Ok(()) => return Ok(()),
                Err(TryPush::Closed(ev)) => return Err(Closed(ev)),
                Err(TryPush::Full(ev)) => event = Some(ev),
            }
        }
        let mut waited = false;
        loop {
            let notified = self.inner.not_full.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let Some(ev) = event.take() else {
                return Ok(());
            };
            match self.try_push(ev, size) {
                Ok(()) => return Ok(()),
                Err(TryPush::Closed(ev)) => return Err(Closed(ev)),
                Err(TryPush::Full(mut ev)) => {
                    if self.inner.cfg.when_full == WhenFull::DropNewest {
                        ev.ack();
                        self.inner.dropped.inc();
                        return Ok(());
                    }
                    event = Some(ev);
                }
            }
            if !waited {
                waited = true;
                self.inner.waits.inc();
            }
            notified.await;
        }
    }

    async fn push_all(&self, events: &mut Vec<Event>) -> Result<(), Closed> {
        let mut rest = events.drain(..).map(|ev| {
            let size = ev.size_bytes();
            (ev, size)
        });
        // The event that did not fit last time round.
        let mut carry = rest.next();
        let mut waited = false;
        while carry.is_some() {
            let notified = self.inner.not_full.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.inner.lock();
                if st.closed {
                    return match carry {
                        Some((ev, _)) => Err(Closed(ev)),
                        None => Ok(()),
                    };
                }
                // One clock read per call: these events arrived together.
                let at = Instant::now();
                let before = st.waiting.len();
                let mut added = 0;
                while let Some((mut ev, size)) = carry.take() {
                    if !self.fits(&st, size) {
                        if self.inner.cfg.when_full == WhenFull::DropNewest {
                            ev.ack();
                            self.inner.dropped.inc();
                            carry = rest.next();
                            continue;
                        }
                        carry = Some((ev, size));
                        break;
                    }
                    st.events += 1;
                    st.bytes += size;
                    added += size;
                    st.waiting.push_back(Slot {
                        event: ev,
                        size,
                        at,
                    });
                    carry = rest.next();
                }
                self.inner.stage.add(added);
                self.inner.publish_gauges(&st);
                let after = st.waiting.len();
                drop(st);
                if after > before && (before == 0 || after >= self.inner.cfg.flush.min_events) {
                    self.inner.not_empty.notify_one();
                }
            }
            if carry.is_none() {
                break;
            }
            if !waited {
                waited = true;
                self.inner.waits.inc();
            }
            notified.await;
        }
        Ok(())
    }

    async fn pop(&self, max: usize) -> Option<Batch> {
        let max = max.max(1);
        let flush = self.inner.cfg.flush.timeout.0;
        let min_events = self.inner.cfg.flush.min_events.clamp(1, max);
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let notified = self.inner.not_empty.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.inner.lock();
                let n = st.waiting.len();
                let due = deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
                if n > 0 && (n >= min_events || st.closed || flush.is_zero() || due) {
                    let take = n.min(max);
                    let mut events = Vec::with_capacity(take);
                    let mut bytes = 0;
                    let oldest = st
                        .waiting
                        .front()
                        .map(|s| s.at)
                        .unwrap_or_else(Instant::now);
                    for slot in st.waiting.drain(..take) {
                        bytes += slot.size;
                        events.push(slot.event);
                    }
                    let id = st.next_batch;
                    st.next_batch += 1;
                    st.in_flight.push((id, oldest));
                    let more = !st.waiting.is_empty();
                    drop(st);
                    if more {
                        // Another worker may take the rest.
                        self.inner.not_empty.notify_one();
                    }
                    let inner = self.inner.clone();
                    return Some(Batch::new(events, move || {
                        let mut st = inner.lock();
                        st.events -= take;
                        st.bytes -= bytes;
                        st.in_flight.retain(|(i, _)| *i != id);
                        inner.stage.sub(bytes);
                        inner.publish_gauges(&st);
                        inner.acked.add(take as u64);
                        drop(st);
                        inner.not_full.notify_waiters();
                    }));
                }
                if n == 0 && st.closed {
                    drop(st);
                    self.inner.not_empty.notify_one();
                    return None;
                }
                if n > 0 && deadline.is_none() {
                    let age = st
                        .waiting
                        .front()
                        .map_or(Duration::ZERO, |s| s.at.elapsed());
                    deadline = Some(tokio::time::Instant::now() + flush.saturating_sub(age));
                }
            }
            match deadline {
                Some(d) => {
                    let _ = tokio::time::timeout_at(d, notified).await;
                }
                None => notified.await,
            }
        }
    }

    fn close(&self) {
        self.inner.lock().closed = true;
        self.inner.not_empty.notify_waiters();
        self.inner.not_empty.notify_one();
        self.inner.not_full.notify_waiters();
    }

    fn stats(&self) -> QueueStats {
        let st = self.inner.lock();
        QueueStats {
            events: st.events as u64,
            bytes: st.bytes as u64,
            waiting: st.waiting.len() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_event::{AckStream, Map};

    fn ev(i: usize, len: usize) -> Event {
        let mut e = Event::new(Arc::new(Map::new()), "x".repeat(len));
        e.offset = Some(i as u64);
        e
    }

    fn queue(events: usize, max_bytes: u64, min_events: usize) -> (MemoryQueue, Registry) {
        let reg = Registry::new();
        let cfg = MemoryQueueConfig {
            events,
            max_bytes: ByteSize(max_bytes),
            flush: FlushConfig {
                min_events,
                timeout: ConfDuration(Duration::from_millis(50)),
            },
            when_full: WhenFull::Block,
        };
        (MemoryQueue::new(cfg, &reg, &Budget::new(reg.clone())), reg)
    }

    #[tokio::test]
    async fn bounded_by_bytes_blocks_then_resumes_in_order() {
        let one = ev(0, 1000).size_bytes();
        let (q, reg) = queue(1000, (one * 3) as u64, 1);
        for i in 0..3 {
            q.push(ev(i, 1000)).await.unwrap();
        }
        // The fourth does not fit: the push must wait.
        let q2 = q.clone();
        let pusher = tokio::spawn(async move { q2.push(ev(3, 1000)).await.is_ok() });
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!pusher.is_finished());
        assert!(q.stats().bytes <= (one * 3) as u64);
        assert_eq!(reg.counter(&names::PIPELINE_BLOCKED).get(), 1);
        let b = q.pop(2).await.unwrap();
        assert_eq!(
            b.events
                .iter()
                .map(|e| e.offset.unwrap())
                .collect::<Vec<_>>(),
            vec![0, 1]
        );
        // Taken but not done: still accounted, still blocked.
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!pusher.is_finished());
        drop(b);
        assert!(pusher.await.unwrap());
        let b = q.pop(10).await.unwrap();
        assert_eq!(
            b.events
                .iter()
                .map(|e| e.offset.unwrap())
                .collect::<Vec<_>>(),
            vec![2, 3]
        );
    }

    #[tokio::test]
    async fn an_event_larger_than_the_limit_passes_alone() {
        let (q, _) = queue(10, 100, 1);
        q.push(ev(0, 10_000)).await.unwrap();
        let q2 = q.clone();
        let next = tokio::spawn(async move { q2.push(ev(1, 10)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !next.is_finished(),
            "a second event must wait for the big one"
        );
        drop(q.pop(10).await);
        next.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn flush_waits_for_min_events_or_timeout() {
        let (q, _) = queue(100, 1 << 20, 5);
        q.push(ev(0, 1)).await.unwrap();
        let start = Instant::now();
        let b = q.pop(10).await.unwrap();
        assert_eq!(b.events.len(), 1);
        assert!(
            start.elapsed() >= Duration::from_millis(40),
            "a lone event waits for the flush timeout"
        );
        for i in 0..5 {
            q.push(ev(i, 1)).await.unwrap();
        }
        assert_eq!(q.pop(10).await.unwrap().events.len(), 5);
    }

    #[tokio::test]
    async fn drop_newest_acks_and_counts() {
        let reg = Registry::new();
        let cfg = MemoryQueueConfig {
            events: 1,
            when_full: WhenFull::DropNewest,
            ..Default::default()
        };
        let q = MemoryQueue::new(cfg, &reg, &Budget::new(reg.clone()));
        let s = AckStream::new();
        for i in 0..3u64 {
            let mut e = ev(i as usize, 1);
            e.ack = Some(s.token(i));
            q.push(e).await.unwrap();
        }
        assert_eq!(reg.counter(&names::PIPELINE_EVENTS_DROPPED).get(), 2);
        assert_eq!(q.stats().events, 1);
        // The dropped two are acked but the first is not, so the watermark stays put.
        assert_eq!(s.progress().acked, 0);
    }

    #[tokio::test]
    async fn close_drains_then_ends() {
        let (q, _) = queue(10, 1 << 20, 1);
        q.push(ev(0, 1)).await.unwrap();
        q.close();
        assert!(q.push(ev(1, 1)).await.is_err());
        assert_eq!(q.pop(10).await.unwrap().events.len(), 1);
        assert!(q.pop(10).await.is_none());
    }

    fn offsets(b: &Batch) -> Vec<u64> {
        b.events
            .iter()
            .map(|e| e.offset.unwrap_or(u64::MAX))
            .collect()
    }

    #[tokio::test]
    async fn push_all_waits_for_room_and_keeps_the_order() {
        let one = ev(0, 1000).size_bytes();
        let (q, reg) = queue(1000, (one * 3) as u64, 1);
        let q2 = q.clone();
        let pusher = tokio::spawn(async move {
            let mut all: Vec<Event> = (0..7).map(|i| ev(i, 1000)).collect();
            let r = q2.push_all(&mut all).await.is_ok();
            (r, all.len())
        });
        let mut got = Vec::new();
        while got.len() < 7 {
            let b = q.pop(2).await.unwrap();
            assert!(q.stats().bytes <= (one * 3) as u64, "over the byte limit");
            got.extend(offsets(&b));
        }
        assert_eq!(got, (0..7).collect::<Vec<u64>>());
        assert_eq!(pusher.await.unwrap(), (true, 0));
        assert_eq!(reg.counter(&names::PIPELINE_BLOCKED).get(), 1);
    }

    #[tokio::test]
    async fn push_all_with_drop_newest_acks_what_does_not_fit() {
        let reg = Registry::new();
        let cfg = MemoryQueueConfig {
            events: 2,
            when_full: WhenFull::DropNewest,
            ..Default::default()
        };
        let q = MemoryQueue::new(cfg, &reg, &Budget::new(reg.clone()));
        let s = AckStream::new();
        let mut all: Vec<Event> = (0..5u64)
            .map(|i| {
                let mut e = ev(i as usize, 1);
                e.ack = Some(s.token(i));
                e
            })
            .collect();
        q.push_all(&mut all).await.unwrap();
        assert!(all.is_empty());
        assert_eq!(reg.counter(&names::PIPELINE_EVENTS_DROPPED).get(), 3);
        assert_eq!(q.stats().events, 2);
        assert_eq!(
            s.progress().acked,
            0,
            "the two queued are not delivered yet"
        );
        let mut b = q.pop(10).await.unwrap();
        skiff_event::ack_all(b.events.iter_mut().filter_map(|e| e.ack.take()));
        assert_eq!(s.acked_position(), Some(4));
    }

    #[tokio::test]
    async fn push_all_into_a_closed_queue_fails_and_keeps_nothing() {
        let (q, _) = queue(10, 1 << 20, 1);
        q.close();
        let mut all: Vec<Event> = (0..3).map(|i| ev(i, 1)).collect();
        let err = q.push_all(&mut all).await.unwrap_err();
        assert_eq!(err.0.offset, Some(0));
        assert!(all.is_empty());
        assert_eq!(q.stats().events, 0);
    }
}
