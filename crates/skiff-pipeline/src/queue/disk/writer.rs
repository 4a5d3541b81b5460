//! The writer thread: group commit of pushed events into segment files.
//!
//! It takes everything pushed so far (up to `write_ahead` events) as one group, encodes it,
//! appends it to the current segment with one `write`, makes it visible to the reader, and
//! acknowledges the group's tokens to the inputs once fsynced per `sync.mode` (`batch`: by the
//! `syncer` thread, while the writer goes on with the next group). A group
//! that would pass `max_size` is cut there; the rest waits for the acker to delete segments. A
//! failed write or fsync (disk full, read-only file system, I/O error) is logged with the path
//! and the OS error; the group is kept, the segment abandoned (its good part stays readable), and
//! the group is written again in a new segment after `retry_interval`, doubling up to
//! `max_retry_interval`. Sequence numbers of a group are fixed only once it is written.
//!
//! When the reader has read everything and waits at the end of the segment being written (the
//! outputs keep up, the usual case), the writer hands the group it just wrote straight to the
//! read-ahead buffer, as far as that buffer's bounds allow (up to four times `read_ahead` events,
//! see `config::HAND_OVER_FACTOR`, and `max_ahead_bytes`), instead of dropping the events and
//! having the reader read and decode them again. The events are on disk all the same (written,
//! and fsynced per `sync.mode`, before they are handed on), so a crash replays them like any
//! other; the reader only skips their bytes. The rest of a group that does not fit is read from
//! disk as usual.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use skiff_event::{AckToken, Event, Map};

use super::config::SyncMode;
use super::syncer::Syncer;
use super::{Handed, Inner, MAX_AGES, Seg, Store, frame, lock, nap, now_ms, segment, state};

/// Sources whose shared fields one segment refers to before a new segment is started.
const MAX_SHARED: usize = 4096;

/// How long a small group waits for more events before it is written (unless half the
/// write-ahead buffer fills first). Without it the writer wakes for every batch an input pushes
/// (on one core the wake-up preempts the input at once): file -> disk queue -> discard wrote
/// groups of ~120 events, one `write` and nearly one `fdatasync` each, and context switches
/// and fsyncs cost more CPU than the writing (docs/performance.md). An event waits at most this
/// much longer before its output can see it; an input never waits for it (the write-ahead
/// buffer takes its events meanwhile).
const LINGER: Duration = Duration::from_millis(2);

type Failure = (PathBuf, io::Error);

enum Wrote {
    All,
    /// `max_size` reached; what remains in the group waits.
    Full,
}

pub(super) struct Writer {
    inner: Arc<Inner>,
    file: Option<Arc<File>>,
    /// `sync.mode: batch`: the fsync thread.
    syncer: Option<Arc<Syncer>>,
    seg_id: u64,
    seg_path: PathBuf,
    /// Bytes written to the current segment.
    seg_len: u64,
    /// The size the current segment's file had when it was taken for reuse (0: a new file):
    /// old records lie past `seg_len` up to there.
    reused: u64,
    /// Bytes of the current segment made visible to the reader.
    seg_pub: u64,
    next_id: u64,
    next_seq: u64,
    /// Shared-field maps already written in this segment, by address (kept alive so that an
    /// address is never reused for another map while it is in here).
    table: HashMap<usize, (u32, Arc<Map>)>,
    next_shared: u32,
    unsynced: Vec<AckToken>,
    last_sync: Instant,
    buf: Vec<u8>,
    /// Per event encoded in `buf`, the end of its frame in `buf`.
    ends: Vec<usize>,
    /// Shared-field frames in `buf`: `(index of the event they precede, id, map)`.
    new_shared: Vec<(usize, u32, Arc<Map>)>,
    /// The queued-at time of the group in `buf`.
    queued_ms: u64,
    /// The inputs' tokens of the group being committed (reused).
    tokens: Vec<AckToken>,
    /// The write-ahead buffer's previous allocation, swapped back in when a group is taken, so
    /// that pushes do not grow a new vector from nothing for every group (under callgrind that
    /// growth was 3 % of file -> disk queue -> discard's instructions, plus the reallocations'
    /// copies of whole events). At most `write_ahead` events of room. The group taken is
    /// written from that same vector, not moved: every move of an event is a copy of ~200 bytes.
    spare: Vec<(Event, usize)>,
}

impl Writer {
    /// A writer with its first segment created (so that an unwritable directory fails here).
    pub(super) fn start(
        inner: Arc<Inner>,
        syncer: Option<Arc<Syncer>>,
        next_id: u64,
        next_seq: u64,
    ) -> anyhow::Result<Writer> {
        let mut w = Writer {
            inner,
            file: None,
            syncer,
            seg_id: 0,
            seg_path: PathBuf::new(),
            seg_len: 0,
            reused: 0,
            seg_pub: 0,
            next_id,
            next_seq,
            table: HashMap::new(),
            next_shared: 0,
            unsynced: Vec::new(),
            last_sync: Instant::now(),
            buf: Vec::new(),
            ends: Vec::new(),
            new_shared: Vec::new(),
            queued_ms: 0,
            tokens: Vec::new(),
            spare: Vec::new(),
        };
        w.open_segment().map_err(|(path, e)| {
            anyhow::anyhow!(
                "disk queue: cannot create {}: {e}; check that queue.disk.path is a writable directory",
                path.display()
            )
        })?;
        Ok(w)
    }

    fn mode(&self) -> SyncMode {
        self.inner.cfg.sync
    }

    /// The test hook of [`DiskQueue::inject_write_failures`](super::DiskQueue::inject_write_failures).
    fn injected(&self) -> io::Result<()> {
        let f = &self.inner.fail_writes;
        match f.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)) {
            Ok(_) => Err(io::Error::from_raw_os_error(28)),
            Err(_) => Ok(()),
        }
    }

    fn open_segment(&mut self) -> Result<(), Failure> {
        let id = self.next_id;
        let path = segment::path(&self.inner.cfg.dir, id);
        // A failed attempt still uses up the id: a file left in the way is never retried.
        self.next_id += 1;
        self.injected().map_err(|e| (path.clone(), e))?;
        let (file, reused) = match self.reuse(&path) {
            Some(reused) => reused,
            None => (
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(|e| (path.clone(), e))?,
                0,
            ),
        };
        if self.mode() != SyncMode::None {
            state::sync_dir(&self.inner.cfg.dir).map_err(|e| (self.inner.cfg.dir.clone(), e))?;
        }
        self.file = Some(Arc::new(file));
        self.seg_id = id;
        self.seg_path = path.clone();
        self.seg_len = 0;
        self.reused = reused;
        self.seg_pub = 0;
        self.table.clear();
        lock(&self.inner.s).segs.push_back(Seg {
            id,
            path,
            first_seq: None,
            last_seq: None,
            end: 0,
            finished: false,
        });
        Ok(())
    }

    /// The spare segment (see `acker`) renamed to `path` and opened for writing from its
    /// start, with its size; `None` when there is none or it cannot be taken (then it goes).
    ///
    /// Why reuse: a new file costs the kernel a page-cache page, a delayed-allocation
    /// reservation and a block allocation per 4 KiB written, and freeing all of it again when
    /// the segment is deleted; overwriting a file whose blocks are allocated (and often still
    /// cached) skips that. Measured with plain writes + fdatasync of 1.3 GB on this project's
    /// machine: half the system time (docs/performance.md). Old records past the write position
    /// are never read: the reader stops at the visible end, a finished segment is cut to its
    /// length, and recovery ends a segment where sequence numbers stop increasing.
    fn reuse(&self, path: &std::path::Path) -> Option<(File, u64)> {
        let (old, size) = lock(&self.inner.s).spare.take()?;
        let taken =
            std::fs::rename(&old, path).and_then(|()| OpenOptions::new().write(true).open(path));
        match taken {
            Ok(f) => Some((f, size)),
            Err(e) => {
                tracing::debug!(path = %old.display(), error = %e, "disk queue: cannot reuse a segment file; deleting it");
                segment::remove(&old);
                segment::remove(path);
                None
            }
        }
    }

    /// Deletes the spare segment kept for reuse (at `max_size`, its space is needed).
    /// Whether there was one.
    fn drop_spare(&self) -> bool {
        let spare = lock(&self.inner.s).spare.take();
        if let Some((path, _)) = &spare {
            segment::remove(path);
        }
        spare.is_some()
    }

    /// Marks the current segment finished at its visible end.
    fn mark_finished(&mut self) {
        let mut st = lock(&self.inner.s);
        if let Some(s) = st.segs.iter_mut().find(|s| s.id == self.seg_id) {
            s.finished = true;
            s.end = self.seg_pub;
        }
        drop(st);
        self.file = None;
        self.table.clear();
        self.inner.read_cv.notify_one();
    }

    /// Syncs and closes the current segment, then starts a new one.
    fn roll(&mut self) -> Result<(), Failure> {
        if let Some(f) = self.file.clone() {
            if self.mode() != SyncMode::None {
                self.sync_now()?;
            }
            // A reused file: its old records after the new ones go.
            if self.reused > self.seg_pub
                && let Err(e) = f.set_len(self.seg_pub)
            {
                tracing::debug!(path = %self.seg_path.display(), error = %e, "disk queue: cannot cut a reused segment's old records (they are skipped when read)");
            }
            self.mark_finished();
        }
        self.open_segment()
    }

    fn sync_now(&mut self) -> Result<(), Failure> {
        if let Some(f) = &self.file {
            f.sync_data().map_err(|e| (self.seg_path.clone(), e))?;
            self.inner.m.syncs.inc();
        }
        self.last_sync = Instant::now();
        for t in self.unsynced.drain(..) {
            t.ack();
        }
        Ok(())
    }

    /// After a failure: keep the visible part of the segment, drop the rest, start anew later.
    fn abandon_segment(&mut self) {
        if let Some(f) = self.file.take() {
            if !self.unsynced.is_empty() {
                match f.sync_data() {
                    Ok(()) => self.unsynced.drain(..).for_each(AckToken::ack),
                    Err(e) => {
                        self.inner.m.sync_failures.inc();
                        tracing::error!(path = %self.seg_path.display(), error = %e, events = self.unsynced.len(), "disk queue: fsync failed; these events are not acknowledged to their inputs and will be read again from their source after a restart");
                        self.unsynced.clear();
                    }
                }
            }
            let _ = f.set_len(self.seg_pub);
            self.file = Some(f);
            self.mark_finished();
        }
    }

    /// Writes `buf` (the frames of `carry[..n]`, sequence numbers `first..=last`) to the current
    /// segment, syncs per mode, makes it visible and acknowledges (or, with `interval`, queues
    /// for acknowledgement) the events' tokens.
    fn commit(&mut self, carry: &mut Vec<(Event, usize)>, n: usize) -> Result<(), Failure> {
        if n == 0 {
            return Ok(());
        }
        if let Some(failed) = self.syncer.as_ref().and_then(|s| s.take_failure()) {
            return Err(failed);
        }
        let injected = self.injected();
        let Some(f) = self.file.clone() else {
            return Err((self.seg_path.clone(), io::Error::other("no open segment")));
        };
        injected
            .and_then(|()| (&*f).write_all(&self.buf))
            .map_err(|e| (self.seg_path.clone(), e))?;
        self.seg_len += self.buf.len() as u64;
        let first = self.next_seq;
        let last = first + n as u64 - 1;
        let mut bytes = 0;
        let mut tokens = std::mem::take(&mut self.tokens);
        for (ev, size) in &mut carry[..n] {
            bytes += *size;
            tokens.extend(ev.ack.take());
        }
        self.inner.write_stage.sub(bytes);
        let handed = {
            let mut st = lock(&self.inner.s);
            if let Some(s) = st.segs.iter_mut().find(|s| s.id == self.seg_id) {
                s.end = self.seg_len;
                s.first_seq.get_or_insert(first);
                s.last_seq = Some(last);
            }
            st.disk_bytes += self.seg_len - self.seg_pub;
            st.last_seq = last;
            self.inner.publish_gauges(&st);
            self.hand_off(&mut st, carry, n, first)
        };
        // Written (and, but for those handed over, read back from disk when their turn comes).
        carry.drain(..n - handed);
        self.seg_pub = self.seg_len;
        self.next_seq = last + 1;
        self.buf.clear();
        self.ends.clear();
        self.new_shared.clear();
        // Acknowledged to the inputs only once the store says the events are there.
        match (self.mode(), &self.syncer) {
            (SyncMode::Interval, _) => self.unsynced.append(&mut tokens),
            (SyncMode::Batch, Some(s)) => s.submit(&f, &self.seg_path, &mut tokens),
            _ => skiff_event::ack_all(tokens.drain(..)),
        }
        self.tokens = tokens;
        if handed > 0 {
            self.inner.not_empty.notify_one();
        }
        if handed < n {
            self.inner.read_cv.notify_one();
        }
        if self.mode() == SyncMode::Interval
            && self.last_sync.elapsed() >= self.inner.cfg.sync_interval
        {
            self.sync_now()?;
        }
        Ok(())
    }

    /// Moves the head of the group just written (`carry[..n]`, sequence numbers from `first`)
    /// to the read-ahead buffer if the reader waits right where it starts, as far as the
    /// buffer's hand-over bounds allow (`hand_over` events, `max_ahead_bytes`; one event even
    /// alone past the byte bound, as the reader would).
    /// Returns how many events were handed over (taken from the front of `carry`).
    fn hand_off(
        &self,
        st: &mut Store,
        carry: &mut Vec<(Event, usize)>,
        n: usize,
        first: u64,
    ) -> usize {
        if st.reader_idle != Some((self.seg_id, self.seg_pub)) || n == 0 {
            return 0;
        }
        let cfg = &self.inner.cfg;
        let (mut k, mut bytes) = (0, 0);
        for (_, size) in carry[..n].iter() {
            let fits = st.ahead.len() + k < cfg.hand_over
                && st.ahead_bytes + bytes + size <= cfg.max_ahead_bytes;
            let alone = st.ahead.is_empty() && k == 0;
            if !(fits || alone) {
                break;
            }
            bytes += size;
            k += 1;
        }
        let Some(&end) = k.checked_sub(1).and_then(|i| self.ends.get(i)) else {
            return 0;
        };
        // The queue's tokens for the whole run under one lock of its stream.
        let mut tokens = Vec::with_capacity(k);
        self.inner
            .stream
            .tokens(first..first + k as u64, &mut tokens);
        for (i, ((mut ev, size), token)) in carry.drain(..k).zip(tokens).enumerate() {
            ev.ack = Some(token);
            st.ahead.push_back((ev, size, first + i as u64));
        }
        st.ahead_bytes += bytes;
        self.inner.read_stage.add(bytes);
        self.inner.handed.fetch_add(k as u64, Ordering::Relaxed);
        if st.ages.len() < MAX_AGES {
            st.ages.push_back((first, self.queued_ms));
        }
        let pos = self.seg_pub + end as u64;
        let last = first + k as u64 - 1;
        let shared = self
            .new_shared
            .iter()
            .take_while(|(i, _, _)| *i < k)
            .map(|(_, id, m)| (*id, m.clone()));
        match &mut st.handed {
            Some(h) if h.seg == self.seg_id => {
                h.pos = pos;
                h.seq = last;
                h.shared.extend(shared);
            }
            h => {
                *h = Some(Handed {
                    seg: self.seg_id,
                    pos,
                    seq: last,
                    shared: shared.collect(),
                })
            }
        }
        // Still waiting at the end if everything was handed over: the next group may follow.
        st.reader_idle = (k == n).then_some((self.seg_id, self.seg_len));
        k
    }

    /// Writes as much of `carry` as `max_size` allows.
    fn write(&mut self, carry: &mut Vec<(Event, usize)>) -> Result<Wrote, Failure> {
        if self.file.is_none() {
            self.open_segment()?;
        }
        let cfg = &self.inner.cfg;
        let (max_size, seg_size) = (cfg.max_size, cfg.segment_size);
        // The spare file and the old records of a reused one take room on disk as well.
        let mut disk = {
            let st = lock(&self.inner.s);
            st.disk_bytes + st.spare.as_ref().map_or(0, |s| s.1)
        } + self.reused.saturating_sub(self.seg_len);
        let queued = now_ms();
        self.queued_ms = queued;
        self.buf.clear();
        self.ends.clear();
        self.new_shared.clear();
        let mut i = 0;
        while i < carry.len() {
            let ev = &carry[i].0;
            let seq = self.next_seq + i as u64;
            let key = Arc::as_ptr(&ev.shared) as usize;
            let known = self.table.get(&key).map(|(id, _)| *id);
            let sid = known.unwrap_or(self.next_shared);
            // Encoded in place; taken back out if it does not go into this write.
            let mark = self.buf.len();
            let encoded = match known {
                Some(_) => Ok(()),
                None => frame::put_shared(&mut self.buf, sid, &ev.shared),
            }
            .and_then(|()| frame::put_event(&mut self.buf, seq, sid, queued, ev));
            if let Err(e) = encoded {
                self.buf.truncate(mark);
                // Cannot be queued at all (larger than the frame limit): drop it loudly rather
                // than block the pipeline forever.
                tracing::error!(error = %e, "disk queue: dropping an event that cannot be stored");
                let (mut ev, size) = carry.remove(i);
                ev.ack();
                self.inner.write_stage.sub(size);
                self.inner.m.dropped.inc();
                continue;
            }
            let need = (self.buf.len() - mark) as u64;
            let used = self.seg_len + mark as u64;
            if used > 0
                && (used + need > seg_size || (known.is_none() && self.table.len() >= MAX_SHARED))
            {
                self.buf.truncate(mark);
                let before = self.seg_len;
                self.commit(carry, i)?;
                disk += self.seg_len - before;
                i = 0;
                self.roll()?;
                continue;
            }
            let on_disk = disk + mark as u64;
            if on_disk > 0 && on_disk + need > max_size {
                self.buf.truncate(mark);
                self.commit(carry, i)?;
                return Ok(Wrote::Full);
            }
            self.ends.push(self.buf.len());
            if known.is_none() {
                self.table.insert(key, (sid, ev.shared.clone()));
                self.new_shared.push((i, sid, ev.shared.clone()));
                self.next_shared = self.next_shared.wrapping_add(1);
            }
            i += 1;
        }
        self.commit(carry, i)?;
        Ok(Wrote::All)
    }

    fn set_blocked(&self, b: bool) {
        let mut w = lock(&self.inner.w);
        if w.blocked != b {
            w.blocked = b;
        }
    }

    /// Drops what is held at stop: the tokens go unacknowledged, so inputs send it again.
    fn release(&mut self, carry: Vec<(Event, usize)>) {
        let bytes: usize = carry.iter().map(|(_, s)| s).sum();
        self.inner.write_stage.sub(bytes);
        let mut w = lock(&self.inner.w);
        let pending: usize = w.pending_bytes;
        w.pending.clear();
        w.pending_bytes = 0;
        drop(w);
        self.inner.write_stage.sub(pending);
    }

    pub(super) fn run(mut self) {
        let inner = self.inner.clone();
        let cfg = &inner.cfg;
        let mut carry: Vec<(Event, usize)> = Vec::new();
        let mut backoff = cfg.retry_interval;
        loop {
            if inner.stopping() {
                return self.release(carry);
            }
            if carry.is_empty() {
                let mut w = lock(&inner.w);
                let mut closing = false;
                loop {
                    if inner.stopping() {
                        drop(w);
                        return self.release(carry);
                    }
                    if !w.pending.is_empty() {
                        let lingered = w.since.map_or(LINGER, |t| t.elapsed());
                        if lingered >= LINGER
                            || w.group_ready(cfg)
                            || inner.closed.load(Ordering::Acquire)
                        {
                            break;
                        }
                        w = nap(&inner.w_cv, w, LINGER - lingered);
                        continue;
                    }
                    if inner.closed.load(Ordering::Acquire) {
                        closing = true;
                        break;
                    }
                    let wait = if self.unsynced.is_empty() {
                        Duration::from_secs(1)
                    } else {
                        let due = cfg.sync_interval.saturating_sub(self.last_sync.elapsed());
                        if due.is_zero() {
                            break;
                        }
                        due
                    };
                    w = nap(&inner.w_cv, w, wait);
                }
                let batch = std::mem::replace(&mut w.pending, std::mem::take(&mut self.spare));
                w.pending_bytes = 0;
                w.since = None;
                drop(w);
                if !batch.is_empty() {
                    inner.not_full.notify_waiters();
                }
                // `carry` is empty here: its allocation becomes the next spare.
                self.spare = std::mem::replace(&mut carry, batch);
                if carry.is_empty() {
                    if !self.unsynced.is_empty()
                        && let Err((path, e)) = self.sync_now()
                    {
                        inner.m.sync_failures.inc();
                        tracing::error!(path = %path.display(), error = %e, "disk queue: fsync failed");
                        self.abandon_segment();
                    }
                    if closing {
                        if let Some(s) = &self.syncer {
                            s.flush(&inner);
                        }
                        let mut st = lock(&inner.s);
                        st.writer_done = true;
                        drop(st);
                        inner.read_cv.notify_all();
                        return;
                    }
                    continue;
                }
            }
            match self.write(&mut carry) {
                Ok(Wrote::All) => {
                    backoff = cfg.retry_interval;
                    self.set_blocked(false);
                }
                Ok(Wrote::Full) if self.drop_spare() => {}
                Ok(Wrote::Full) => {
                    self.set_blocked(true);
                    inner.not_full.notify_waiters();
                    if self.seg_len > 0 {
                        // Let the acknowledged part of the current segment be deleted.
                        if let Err((path, e)) = self.roll() {
                            self.fail(&path, &e, backoff);
                            backoff = (backoff * 2).min(cfg.max_retry_interval);
                            continue;
                        }
                    }
                    let st = lock(&inner.s);
                    let disk = st.disk_bytes;
                    tracing::debug!(
                        bytes = disk,
                        max_size = cfg.max_size,
                        "disk queue full; waiting for the outputs"
                    );
                    let _st = nap(&inner.space_cv, st, Duration::from_secs(1));
                }
                Err((path, e)) => {
                    self.set_blocked(true);
                    inner.not_full.notify_waiters();
                    self.abandon_segment();
                    self.fail(&path, &e, backoff);
                    backoff = (backoff * 2).min(cfg.max_retry_interval);
                }
            }
        }
    }

    /// Logs a write failure and waits before the retry (woken early by a stop).
    fn fail(&self, path: &std::path::Path, e: &io::Error, wait: Duration) {
        tracing::error!(path = %path.display(), error = %e, retry_in = ?wait, "disk queue: cannot write; inputs wait (nothing acknowledged is lost) and the write is retried");
        let deadline = Instant::now() + wait;
        let mut w = lock(&self.inner.w);
        while !self.inner.stopping() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            w = nap(&self.inner.w_cv, w, left);
        }
    }
}
