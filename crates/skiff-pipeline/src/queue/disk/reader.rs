//! The reader thread: streams segments into the bounded read-ahead buffer.
//!
//! It reads frame by frame, never past what the writer made visible, so memory is the
//! read-ahead buffer (`read_ahead` events, `max_ahead_bytes`) however large the backlog. Each
//! event gets a token of the queue's [`AckStream`](skiff_event::AckStream) with its sequence
//! number as position, in order. Events at or below the last one handed out are skipped (the
//! acknowledged ones after a restart, and copies left by a write that was retried). A damaged
//! record is skipped to the next good frame, with a warning; nothing after it is lost.
//!
//! Waiting at the end of the segment being written, it says so (`Store::reader_idle`); the
//! writer may then hand its next group to the read-ahead buffer itself, and the reader only
//! moves its position past those events (`Store::handed`).

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use skiff_event::{AckToken, Event, Map};

use super::frame::{self, FrameReader, Next, Record};
use super::{Handed, Inner, MAX_AGES, lock, nap};

/// Frames read per round before the buffer is updated.
const ROUND: usize = 256;

pub(super) struct Reader {
    inner: Arc<Inner>,
    /// The segment being read, and where.
    cur: Option<(u64, PathBuf)>,
    fr: Option<FrameReader>,
    /// Where to open the current segment when `fr` is `None`.
    resume: u64,
    shared: HashMap<u32, Arc<Map>>,
    /// The last event handed on.
    delivered: u64,
    /// The events of a round, and their tokens (both reused: no allocation per round).
    out: Vec<(Event, usize, u64)>,
    tokens: Vec<AckToken>,
}

enum Work {
    /// Read segment `id` at `path` up to `end`, at most this many events and (but for one
    /// event) bytes.
    Read(u64, PathBuf, u64, usize, usize),
    Stop,
}

impl Reader {
    pub(super) fn new(inner: Arc<Inner>, acked: u64) -> Reader {
        Reader {
            inner,
            cur: None,
            fr: None,
            resume: 0,
            shared: HashMap::new(),
            delivered: acked,
            out: Vec::new(),
            tokens: Vec::new(),
        }
    }

    /// Waits until there is room and something to read.
    fn wait_work(&mut self) -> Work {
        let inner = self.inner.clone();
        let cfg = &inner.cfg;
        let mut st = lock(&inner.s);
        loop {
            st.reader_idle = None;
            if let Some(h) = st.handed.take() {
                self.adopt(h);
            }
            if inner.stopping() {
                return Work::Stop;
            }
            let room = st.ahead.is_empty()
                || (st.ahead.len() < cfg.read_ahead && st.ahead_bytes < cfg.max_ahead_bytes);
            let pos = self.pos();
            let cur_id = self.cur.as_ref().map(|c| c.0);
            // The current segment, or the first after it.
            let seg = st.segs.iter().find(|s| cur_id.is_none_or(|c| s.id >= c));
            let mut at_end = true;
            match seg {
                Some(s) if Some(s.id) == cur_id && pos < s.end => {
                    if room {
                        let n = (cfg.read_ahead - st.ahead.len().min(cfg.read_ahead)).max(1);
                        let bytes = cfg.max_ahead_bytes.saturating_sub(st.ahead_bytes).max(1);
                        return Work::Read(s.id, s.path.clone(), s.end, n, bytes);
                    }
                    at_end = false;
                }
                Some(s) if Some(s.id) == cur_id && !s.finished => {
                    // At the end of what is written, with room or not: the writer may hand its
                    // next group over, within the buffer's bounds (it checks them).
                    st.reader_idle = Some((s.id, pos));
                }
                Some(s) if Some(s.id) != cur_id => {
                    // Move on to the next segment.
                    self.cur = Some((s.id, s.path.clone()));
                    st.reading = s.id;
                    self.new_segment();
                    continue;
                }
                Some(s) => {
                    // Finished and read: the next one, if any.
                    let id = s.id;
                    if let Some(n) = st.segs.iter().find(|n| n.id > id) {
                        self.cur = Some((n.id, n.path.clone()));
                        st.reading = n.id;
                        self.new_segment();
                        continue;
                    }
                }
                None => {}
            }
            if at_end && st.writer_done && !st.reader_done {
                st.reader_done = true;
                inner.not_empty.notify_waiters();
                inner.not_empty.notify_one();
            }
            st = nap(&inner.read_cv, st, Duration::from_secs(1));
        }
    }

    fn new_segment(&mut self) {
        self.fr = None;
        self.resume = 0;
        self.shared.clear();
    }

    /// The offset of the next frame to read in the current segment.
    fn pos(&self) -> u64 {
        self.fr.as_ref().map_or(self.resume, FrameReader::pos)
    }

    /// Moves past events the writer handed over.
    fn adopt(&mut self, h: Handed) {
        if self.cur.as_ref().map(|c| c.0) != Some(h.seg) || h.seq <= self.delivered {
            // Cannot happen (the writer hands over only where the reader waits); reading the
            // frames instead would deliver them twice, never lose them.
            tracing::debug!(
                segment = h.seg,
                "disk queue: hand-over for another position ignored"
            );
            return;
        }
        self.delivered = h.seq;
        self.shared.extend(h.shared);
        match self.fr.as_mut().map(|f| f.seek(h.pos)) {
            Some(Ok(())) => {}
            Some(Err(_)) | None => {
                self.fr = None;
                self.resume = h.pos;
            }
        }
    }

    pub(super) fn run(mut self) {
        loop {
            let (id, path, end, room, room_bytes) = match self.wait_work() {
                Work::Stop => return,
                Work::Read(id, path, end, room, bytes) => (id, path, end, room, bytes),
            };
            match self.read(&path, end, room, room_bytes) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // Deleted under us (all acknowledged): move on.
                    tracing::debug!(segment = id, "disk queue: segment gone while reading");
                    self.skip_to_end(id, end);
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "disk queue: cannot read a segment; retrying");
                    self.fr = None;
                    self.resume = 0;
                    let st = lock(&self.inner.s);
                    let _st = nap(&self.inner.read_cv, st, self.inner.cfg.retry_interval);
                }
            }
        }
    }

    fn skip_to_end(&mut self, id: u64, end: u64) {
        // Mark the segment read by moving to the next one.
        let mut st = lock(&self.inner.s);
        match st.segs.iter().find(|n| n.id > id) {
            Some(n) => self.cur = Some((n.id, n.path.clone())),
            None => self.cur = Some((id + 1, PathBuf::new())),
        }
        st.reading = self.cur.as_ref().map_or(0, |c| c.0);
        drop(st);
        let _ = end;
        self.new_segment();
    }

    fn read(
        &mut self,
        path: &std::path::Path,
        end: u64,
        room: usize,
        room_bytes: usize,
    ) -> io::Result<()> {
        if self.fr.is_none() {
            self.fr = Some(FrameReader::open(path, self.resume)?);
        }
        let Some(fr) = self.fr.as_mut() else {
            return Ok(());
        };
        let mut out = std::mem::take(&mut self.out);
        out.reserve(room.min(ROUND * 4));
        let mut first_age = None;
        let mut frames = 0;
        let mut failed = None;
        let mut out_bytes = 0;
        while out.len() < room && out_bytes < room_bytes && frames < ROUND * 4 {
            frames += 1;
            let next = match fr.next(end) {
                Ok(n) => n,
                Err(e) => {
                    // Keep what was read; report after.
                    failed = Some(e);
                    break;
                }
            };
            match next {
                Next::End => break,
                Next::Bad(at, why) => {
                    self.inner.m.corrupt.inc();
                    let found = match fr.resync(at, end) {
                        Ok(f) => f,
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    };
                    match found {
                        Some(next) => {
                            tracing::warn!(path = %path.display(), offset = at, skipped_bytes = next - at, reason = why, "disk queue: skipping a damaged record; the records after it are kept");
                        }
                        None => {
                            tracing::warn!(path = %path.display(), offset = at, cut_bytes = end - at, reason = why, "disk queue: damaged end of segment; skipping the rest of it");
                            match FrameReader::open(path, end) {
                                Ok(r) => *fr = r,
                                Err(e) => failed = Some(e),
                            }
                            break;
                        }
                    }
                }
                // Already handed out (acknowledged before a restart, or a retried write's first
                // copy): skip without decoding.
                Next::Frame(_)
                    if frame::event_seq(fr.payload()).is_some_and(|s| s <= self.delivered) => {}
                Next::Frame(at) => match frame::decode(fr.version(), fr.payload()) {
                    Ok(Record::Shared(id, map)) => {
                        self.shared.insert(id, Arc::new(map));
                    }
                    Ok(Record::Event {
                        seq,
                        shared,
                        queued_ms,
                        mut event,
                    }) => {
                        if seq <= self.delivered {
                            continue;
                        }
                        match self.shared.get(&shared) {
                            Some(m) => event.shared = m.clone(),
                            None => {
                                tracing::warn!(path = %path.display(), offset = at, seq, "disk queue: an event's shared fields were in a damaged record; sending it without them")
                            }
                        }
                        self.delivered = seq;
                        first_age.get_or_insert((seq, queued_ms));
                        let size = event.size_bytes();
                        out_bytes += size;
                        out.push((event, size, seq));
                    }
                    Err(e) => {
                        self.inner.m.corrupt.inc();
                        tracing::warn!(path = %path.display(), offset = at, error = %e, "disk queue: skipping a record that cannot be decoded");
                    }
                },
            }
        }
        // The queue's tokens for the whole round under one lock of its stream, in order.
        self.inner
            .stream
            .tokens(out.iter().map(|e| e.2), &mut self.tokens);
        for ((event, _, _), token) in out.iter_mut().zip(self.tokens.drain(..)) {
            event.ack = Some(token);
        }
        self.push(&mut out, first_age);
        self.out = out;
        if let Some(e) = failed {
            // Reading again from the segment's start skips what was handed out already.
            self.fr = None;
            self.resume = 0;
            return Err(e);
        }
        Ok(())
    }

    fn push(&mut self, out: &mut Vec<(Event, usize, u64)>, first_age: Option<(u64, u64)>) {
        if out.is_empty() {
            return;
        }
        let bytes: usize = out.iter().map(|e| e.1).sum();
        self.inner.read_stage.add(bytes);
        self.inner
            .read_back
            .fetch_add(out.len() as u64, Ordering::Relaxed);
        let mut st = lock(&self.inner.s);
        st.ahead_bytes += bytes;
        st.ahead.extend(out.drain(..));
        if let Some(a) = first_age
            && st.ages.len() < MAX_AGES
        {
            st.ages.push_back(a);
        }
        drop(st);
        self.inner.not_empty.notify_one();
    }
}
