//! The disk queue (`queue.disk`): events wait in append-only segment files, so hours of output
//! outage cost disk, not memory, and a crash or `kill -9` loses nothing acknowledged.
//!
//! How an event travels:
//!
//! 1. [`push`](Queue::push) puts it in the *write-ahead* buffer (bounded by `write_ahead` events
//!    and `max_ahead_bytes`; a full buffer makes the input wait).
//! 2. The `writer` thread takes everything waiting as one group, appends it to the current
//!    segment as checksummed frames (`frame`); once it is fsynced (group commit, per
//!    `sync.mode`; in `batch` mode by the `syncer` thread, which covers everything written while
//!    the previous fsync ran) the group's tokens are acknowledged: the input may now commit its
//!    file offsets. At
//!    `max_size` the writer waits for space (backpressure); on an I/O error (disk full, read-only)
//!    it logs the path and the OS error and retries with a growing interval, keeping the group.
//! 3. The `reader` thread streams the segments into the *read-ahead* buffer (bounded by
//!    `read_ahead` events and `max_ahead_bytes`), giving each event a token of the queue's own
//!    [`AckStream`]; [`pop`](Queue::pop) hands them to the output workers.
//! 4. The `acker` thread follows that stream's contiguous watermark, stores it in `state.json`
//!    (`state`) and deletes segments whose events are all acknowledged, but one, which the
//!    writer reuses as its next segment file (cheaper for the kernel than a new file).
//!
//! After a restart, `recovery` cuts torn tails, and the reader replays every event after the
//! stored watermark, in order: at-least-once, duplicates only of events delivered but not yet
//! recorded as acknowledged. Memory is bounded by the two ahead buffers whatever the backlog.
//! See `docs/disk-queue.md`.

mod acker;
mod config;
mod frame;
mod reader;
mod recovery;
mod segment;
mod state;
mod syncer;
mod writer;

pub use config::{DiskQueueConfig, SyncConfig, SyncMode};

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use skiff_event::{AckStream, Event};
use skiff_metrics::{Counter, Gauge, Registry, names};
use tokio::sync::Notify;

use super::{Batch, Closed, Queue, QueueStats, WhenFull};
use crate::budget::{Budget, Stage};
use config::Settings;

/// `(seq, queued ms)` samples kept for the oldest-age gauge.
const MAX_AGES: usize = 4096;

/// One segment file as the threads see it.
#[derive(Debug)]
struct Seg {
    id: u64,
    path: PathBuf,
    /// The first event's sequence number, once known.
    first_seq: Option<u64>,
    /// The last event's, when known (segments written by this process, and the last recovered).
    last_seq: Option<u64>,
    /// Readable bytes: the end of the last frame written (and synced, per mode).
    end: u64,
    /// No more writes will come.
    finished: bool,
}

/// The write side: what pushes hand to the writer.
#[derive(Default)]
struct WriteSide {
    pending: Vec<(Event, usize)>,
    pending_bytes: usize,
    /// The writer cannot write (at `max_size`, or failing): `drop_newest` may drop.
    blocked: bool,
    /// When `pending` last went from empty to not empty (the writer's linger, see `writer`).
    since: Option<std::time::Instant>,
}

impl WriteSide {
    /// Enough pending for the writer to take it without lingering: half the write-ahead
    /// buffer, in events or bytes.
    fn group_ready(&self, cfg: &Settings) -> bool {
        self.pending.len() >= cfg.write_ahead.div_ceil(2)
            || self.pending_bytes >= cfg.max_ahead_bytes / 2
    }

    /// Adds an event; whether the writer is to be woken (the first event of a group starts its
    /// linger; a group that is ready ends it).
    fn add(&mut self, ev: Event, size: usize, cfg: &Settings) -> bool {
        let first = self.pending.is_empty();
        let ready_before = !first && self.group_ready(cfg);
        self.pending.push((ev, size));
        self.pending_bytes += size;
        if first {
            self.since = Some(std::time::Instant::now());
        }
        first || (!ready_before && self.group_ready(cfg))
    }
}

/// The store: segments and the read side.
#[derive(Default)]
struct Store {
    segs: VecDeque<Seg>,
    disk_bytes: u64,
    /// The last event written (readable).
    last_seq: u64,
    /// The last event handed out by `pop`.
    popped_seq: u64,
    /// Events read ahead, with their accounted size and sequence number.
    ahead: VecDeque<(Event, usize, u64)>,
    ahead_bytes: usize,
    /// `(seq, queued at ms)` samples of read events, for the oldest-age gauge.
    ages: VecDeque<(u64, u64)>,
    /// The writer wrote everything pushed before `close` and stopped.
    writer_done: bool,
    /// The reader reached the end after `writer_done`.
    reader_done: bool,
    /// The reader has read everything visible and waits at `(segment id, offset)`: the writer may
    /// hand the events it just wrote there straight to the read-ahead buffer (see `writer`).
    reader_idle: Option<(u64, u64)>,
    /// What the writer handed over since the reader last looked.
    handed: Option<Handed>,
    /// A fully acknowledged segment kept for the writer to reuse (path, size), counted against
    /// `max_size` (see `writer`).
    spare: Option<(PathBuf, u64)>,
    /// The id of the segment the reader is in (0 before it starts): only segments before it
    /// may be reused.
    reading: u64,
}

/// Events the writer put in the read-ahead buffer itself, so that the reader skips them on disk.
#[derive(Debug)]
struct Handed {
    /// The segment, and the offset after the last handed event's frame.
    seg: u64,
    pos: u64,
    /// The last handed event.
    seq: u64,
    /// Shared-field maps whose frames were in the handed part.
    shared: Vec<(u32, Arc<skiff_event::Map>)>,
}

struct Meters {
    bytes: Gauge,
    events: Gauge,
    filled: Gauge,
    syncs: Counter,
    sync_failures: Counter,
    corrupt: Counter,
    dropped: Counter,
    blocked: Counter,
    acked: Counter,
}

struct Inner {
    cfg: Settings,
    w: Mutex<WriteSide>,
    /// Wakes the writer (events pushed, close, stop).
    w_cv: Condvar,
    s: Mutex<Store>,
    /// Wakes the reader (data written, room made, close, stop).
    read_cv: Condvar,
    /// Wakes the writer waiting for space (segments deleted, stop).
    space_cv: Condvar,
    not_full: Notify,
    not_empty: Notify,
    stream: Arc<AckStream>,
    /// The acknowledged watermark as last seen by the acker.
    acked: AtomicU64,
    closed: AtomicBool,
    stop: AtomicBool,
    /// Test hook: this many coming writes fail with "no space left on device".
    fail_writes: AtomicU64,
    /// Test hook: fsyncs still to fail (see [`DiskQueue::inject_sync_failures`]).
    fail_syncs: AtomicU64,
    write_stage: Stage,
    read_stage: Stage,
    m: Meters,
    /// `sync.mode: batch`: the fsync thread's side.
    syncer: Option<Arc<syncer::Syncer>>,
    /// Events the writer handed straight to the read-ahead buffer, and events the reader read
    /// back from the segments (logged at stop: how often the hand-over was taken).
    handed: AtomicU64,
    read_back: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Inner {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn publish_gauges(&self, st: &Store) {
        let unacked = st
            .last_seq
            .saturating_sub(self.acked.load(Ordering::Acquire));
        self.m.bytes.set(st.disk_bytes.min(i64::MAX as u64) as i64);
        self.m.events.set(unacked.min(i64::MAX as u64) as i64);
        self.m.filled.set(unacked.min(i64::MAX as u64) as i64);
    }

    fn wake_all(&self) {
        self.w_cv.notify_all();
        self.read_cv.notify_all();
        self.space_cv.notify_all();
        self.not_full.notify_waiters();
        self.not_empty.notify_waiters();
        self.not_empty.notify_one();
        if let Some(s) = &self.syncer {
            s.wake();
        }
    }
}

/// Stops the threads when the last handle goes.
struct Threads {
    inner: Arc<Inner>,
    handles: Mutex<Vec<JoinHandle<()>>>,
    /// Store the watermark on the way out (false only to simulate a crash).
    persist: AtomicBool,
}

impl Threads {
    fn stop(&self) {
        self.inner.stop.store(true, Ordering::Release);
        self.inner.wake_all();
        let handles: Vec<_> = std::mem::take(&mut *lock(&self.handles));
        if handles.is_empty() {
            return;
        }
        for h in handles {
            h.thread().unpark();
            let _ = h.join();
        }
        let i = &self.inner;
        // The file kept for reuse is only worth its disk space while running (a crash leaves
        // it, and recovery deletes it: all its events are acknowledged).
        if self.persist.load(Ordering::Acquire)
            && let Some((path, _)) = lock(&i.s).spare.take()
        {
            segment::remove(&path);
        }
        tracing::info!(
            path = %i.cfg.dir.display(),
            handed_over = i.handed.load(Ordering::Relaxed),
            read_back = i.read_back.load(Ordering::Relaxed),
            "disk queue stopped (events handed from the writer to the outputs, and read back from disk)"
        );
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The disk queue. Cheap to clone; the threads stop when the last clone is dropped.
#[derive(Clone)]
pub struct DiskQueue {
    inner: Arc<Inner>,
    threads: Arc<Threads>,
}

impl std::fmt::Debug for DiskQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DiskQueue({})", self.inner.cfg.dir.display())
    }
}

impl DiskQueue {
    /// Opens (or creates) the queue in `cfg.path` (default `<data_dir>/diskqueue`), recovering
    /// what a previous run left: torn tails are cut, unacknowledged events will be replayed.
    /// Reports into `metrics`; accounts its buffers in `budget` as stages
    /// `queue.disk.write_ahead` and `queue.disk.read_ahead`.
    ///
    /// Fails with a message naming the path and the OS error when the directory cannot be
    /// created or written (read-only, a file in the way, no permission).
    pub fn open(
        cfg: DiskQueueConfig,
        data_dir: &Path,
        metrics: &Registry,
        budget: &Budget,
    ) -> anyhow::Result<DiskQueue> {
        let cfg = cfg.settings(data_dir).map_err(anyhow::Error::msg)?;
        let m = Meters {
            bytes: metrics.gauge(&names::DISK_QUEUE_BYTES),
            events: metrics.gauge(&names::DISK_QUEUE_EVENTS),
            filled: metrics.gauge(&names::QUEUE_FILLED_EVENTS),
            syncs: metrics.counter(&names::DISK_QUEUE_SYNCS),
            sync_failures: metrics.counter(&names::DISK_QUEUE_SYNC_FAILURES),
            corrupt: metrics.counter(&names::DISK_QUEUE_CORRUPT),
            dropped: metrics.counter(&names::PIPELINE_EVENTS_DROPPED),
            blocked: metrics.counter(&names::PIPELINE_BLOCKED),
            acked: metrics.counter(&names::QUEUE_ACKED),
        };
        metrics
            .gauge(&names::QUEUE_MAX_BYTES)
            .set(cfg.max_size.min(i64::MAX as u64) as i64);
        let rec = recovery::recover(&cfg, &m.corrupt)?;
        let ahead = cfg.max_ahead_bytes as u64;
        let store = Store {
            disk_bytes: rec.segs.iter().map(|s| s.end).sum(),
            last_seq: rec.next_seq - 1,
            popped_seq: rec.acked,
            segs: rec.segs.into(),
            ..Store::default()
        };
        let inner = Arc::new(Inner {
            write_stage: budget.stage("queue.disk.write_ahead", ahead.saturating_mul(2)),
            read_stage: budget.stage("queue.disk.read_ahead", ahead),
            w: Mutex::default(),
            w_cv: Condvar::new(),
            s: Mutex::new(store),
            read_cv: Condvar::new(),
            space_cv: Condvar::new(),
            not_full: Notify::new(),
            not_empty: Notify::new(),
            stream: AckStream::new(),
            acked: AtomicU64::new(rec.acked),
            closed: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            fail_writes: AtomicU64::new(0),
            fail_syncs: AtomicU64::new(0),
            handed: AtomicU64::new(0),
            read_back: AtomicU64::new(0),
            m,
            syncer: (cfg.sync == SyncMode::Batch).then(Arc::default),
            cfg,
        });
        inner.publish_gauges(&lock(&inner.s));
        // The first segment of this run is created now, so that an unwritable directory is an
        // error at start rather than a retry loop.
        let w = writer::Writer::start(
            inner.clone(),
            inner.syncer.clone(),
            rec.next_id,
            rec.next_seq,
        )?;
        let r = reader::Reader::new(inner.clone(), rec.acked);
        let a = acker::Acker::new(inner.clone(), rec.acked);
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(f)
                .map_err(|e| anyhow::anyhow!("cannot start the disk queue's {name} thread: {e}"))
        };
        let threads = Arc::new(Threads {
            inner: inner.clone(),
            handles: Mutex::new(Vec::new()),
            persist: AtomicBool::new(true),
        });
        let mut handles = Vec::new();
        handles.push(spawn("dq-writer", Box::new(move || w.run()))?);
        handles.push(spawn("dq-reader", Box::new(move || r.run()))?);
        if let Some(s) = inner.syncer.clone() {
            let i = inner.clone();
            handles.push(spawn("dq-syncer", Box::new(move || s.run(&i)))?);
        }
        let persist = Arc::downgrade(&threads);
        handles.push(spawn(
            "dq-acker",
            Box::new(move || {
                a.run(move || {
                    persist
                        .upgrade()
                        .is_none_or(|t| t.persist.load(Ordering::Acquire))
                })
            }),
        )?);
        *lock(&threads.handles) = handles;
        let weak = Arc::downgrade(&inner);
        metrics.gauge_fn(&names::QUEUE_OLDEST_AGE_MS, move || {
            let Some(inner) = weak.upgrade() else {
                return 0.0;
            };
            let st = lock(&inner.s);
            if st.last_seq <= inner.acked.load(Ordering::Acquire) {
                return 0.0;
            }
            st.ages
                .front()
                .map_or(0.0, |(_, ms)| now_ms().saturating_sub(*ms) as f64)
        });
        tracing::info!(path = %inner.cfg.dir.display(), events = inner.m.events.get(), bytes = inner.m.bytes.get(), "disk queue opened");
        Ok(DiskQueue { inner, threads })
    }

    /// The queue's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.cfg.dir
    }

    /// Stops the queue's threads now, without draining: what was pushed but not yet written is
    /// not acknowledged to its inputs (they send it again after a restart), what is on disk
    /// stays there. The acknowledged watermark is stored first. Later pushes and pops fail.
    pub fn stop(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.threads.stop();
    }

    /// Like [`stop`](Self::stop) but without storing the watermark, as a `kill -9` would: for
    /// crash tests.
    #[doc(hidden)]
    pub fn crash(&self) {
        self.threads.persist.store(false, Ordering::Release);
        self.stop();
    }

    /// Makes the next `n` file writes (and segment creations) fail with `ENOSPC`, as a full
    /// disk would: for tests of the retry path.
    #[doc(hidden)]
    pub fn inject_write_failures(&self, n: u64) {
        self.inner.fail_writes.store(n, Ordering::Release);
    }

    /// Makes the next `n` fsyncs of the fsync thread (`sync.mode: batch`) fail with `EIO`, as
    /// a failing disk would: for tests of what a failed fsync does.
    #[doc(hidden)]
    pub fn inject_sync_failures(&self, n: u64) {
        self.inner.fail_syncs.store(n, Ordering::Release);
    }

    /// Write failures still to be injected (see [`inject_write_failures`](Self::inject_write_failures)).
    #[doc(hidden)]
    pub fn injected_write_failures_left(&self) -> u64 {
        self.inner.fail_writes.load(Ordering::Acquire)
    }

    fn room(&self, w: &WriteSide, size: usize) -> bool {
        w.pending.is_empty()
            || (w.pending.len() < self.inner.cfg.write_ahead
                && w.pending_bytes + size <= self.inner.cfg.max_ahead_bytes)
    }
}

#[async_trait]
impl Queue for DiskQueue {
    async fn push(&self, event: Event) -> Result<(), Closed> {
        let size = event.size_bytes();
        let mut event = Some(event);
        let mut waited = false;
        loop {
            let notified = self.inner.not_full.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut w = lock(&self.inner.w);
                let Some(ev) = event.take() else {
                    return Ok(());
                };
                if self.inner.closed.load(Ordering::Acquire) || self.inner.stopping() {
                    return Err(Closed(ev));
                }
                if self.room(&w, size) {
                    let wake = w.add(ev, size, &self.inner.cfg);
                    self.inner.write_stage.add(size);
                    drop(w);
                    if wake {
                        self.inner.w_cv.notify_one();
                    }
                    return Ok(());
                }
                if self.inner.cfg.when_full == WhenFull::DropNewest && w.blocked {
                    drop(w);
                    let mut ev = ev;
                    ev.ack();
                    self.inner.m.dropped.inc();
                    return Ok(());
                }
                event = Some(ev);
            }
            if !waited {
                waited = true;
                self.inner.m.blocked.inc();
            }
            notified.await;
        }
    }

    async fn push_all(&self, events: &mut Vec<Event>) -> Result<(), Closed> {
        // As `push`, with the writer's lock taken once for as many events as fit.
        let mut rest = events.drain(..).map(|ev| {
            let size = ev.size_bytes();
            (ev, size)
        });
        let mut carry = rest.next();
        let mut waited = false;
        while carry.is_some() {
            let notified = self.inner.not_full.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut w = lock(&self.inner.w);
                if self.inner.closed.load(Ordering::Acquire) || self.inner.stopping() {
                    return match carry {
                        Some((ev, _)) => Err(Closed(ev)),
                        None => Ok(()),
                    };
                }
                let mut wake = false;
                let mut added = 0;
                while let Some((mut ev, size)) = carry.take() {
                    if self.room(&w, size) {
                        wake |= w.add(ev, size, &self.inner.cfg);
                        added += size;
                        carry = rest.next();
                    } else if self.inner.cfg.when_full == WhenFull::DropNewest && w.blocked {
                        ev.ack();
                        self.inner.m.dropped.inc();
                        carry = rest.next();
                    } else {
                        carry = Some((ev, size));
                        break;
                    }
                }
                self.inner.write_stage.add(added);
                // A full buffer (the input about to wait) is ready by definition.
                wake |= carry.is_some() && !w.pending.is_empty();
                drop(w);
                if wake {
                    self.inner.w_cv.notify_one();
                }
            }
            if carry.is_none() {
                break;
            }
            if !waited {
                waited = true;
                self.inner.m.blocked.inc();
            }
            notified.await;
        }
        Ok(())
    }

    async fn pop(&self, max: usize) -> Option<Batch> {
        let max = max.max(1);
        loop {
            let notified = self.inner.not_empty.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = lock(&self.inner.s);
                if !st.ahead.is_empty() {
                    let take = st.ahead.len().min(max);
                    let mut events = Vec::with_capacity(take);
                    let (mut bytes, mut last) = (0, 0);
                    for (ev, size, seq) in st.ahead.drain(..take) {
                        bytes += size;
                        last = seq;
                        events.push(ev);
                    }
                    st.ahead_bytes -= bytes;
                    st.popped_seq = st.popped_seq.max(last);
                    let more = !st.ahead.is_empty();
                    // A reader waiting at the end has nothing to read whatever the room: the
                    // writer wakes it for new data.
                    let wake_reader = st.reader_idle.is_none();
                    drop(st);
                    self.inner.read_stage.sub(bytes);
                    if wake_reader {
                        self.inner.read_cv.notify_one();
                    }
                    if more {
                        self.inner.not_empty.notify_one();
                    }
                    return Some(Batch::new(events, || {}));
                }
                if st.reader_done || self.inner.stopping() {
                    drop(st);
                    self.inner.not_empty.notify_one();
                    return None;
                }
            }
            notified.await;
        }
    }

    fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.wake_all();
    }

    fn stats(&self) -> QueueStats {
        let st = lock(&self.inner.s);
        let acked = self.inner.acked.load(Ordering::Acquire);
        let pending = lock(&self.inner.w).pending.len() as u64;
        QueueStats {
            events: st.last_seq.saturating_sub(acked) + pending,
            bytes: st.disk_bytes,
            waiting: st.last_seq.saturating_sub(st.popped_seq) + pending,
        }
    }
}

/// Sleeps on `cv` for at most `d`, returning early when woken.
fn nap<'a, T>(cv: &Condvar, g: MutexGuard<'a, T>, d: Duration) -> MutexGuard<'a, T> {
    match cv.wait_timeout(g, d) {
        Ok((g, _)) => g,
        Err(p) => p.into_inner().0,
    }
}
