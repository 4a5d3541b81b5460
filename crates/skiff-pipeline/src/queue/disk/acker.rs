//! The acker thread: follows the outputs' acknowledgements, stores the watermark, deletes
//! segments (keeping one for the writer to reuse).
//!
//! Tokens handed out by the reader carry their event's sequence number as position, so the
//! queue's [`AckStream`](skiff_event::AckStream) watermark is "every event up to this one is
//! delivered". Every 20 ms the acker stores a new watermark in `state.json` (fsynced at most once
//! a second, and at a clean stop) and deletes the finished segments whose events are all at or
//! below it. Deleting does not depend on the
//! store succeeding: a fully acknowledged segment is never needed again.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Inner, lock, segment, state};
use crate::queue::disk::config::SyncMode;

const TICK: Duration = Duration::from_millis(20);
/// The most time between two fsyncs of the state file. Losing the state only means more
/// duplicates, never loss (segments are deleted only once fully acknowledged), so fsyncing it on
/// every 20 ms store would cost disk time for little.
const STATE_SYNC: Duration = Duration::from_secs(1);

pub(super) struct Acker {
    inner: Arc<Inner>,
    known: u64,
    persisted: u64,
    failing: bool,
    last_sync: Instant,
    /// The watermark last stored with an fsync (or found at start).
    durable: u64,
}

impl Acker {
    pub(super) fn new(inner: Arc<Inner>, acked: u64) -> Acker {
        Acker {
            inner,
            known: acked,
            persisted: acked,
            failing: false,
            last_sync: Instant::now(),
            durable: acked,
        }
    }

    pub(super) fn run(mut self, persist_on_stop: impl Fn() -> bool) {
        loop {
            if self.inner.stopping() {
                if persist_on_stop() {
                    self.tick(true);
                }
                return;
            }
            self.tick(false);
            std::thread::park_timeout(TICK);
        }
    }

    /// One round; `final_round` fsyncs the state whatever the time since the last fsync.
    fn tick(&mut self, final_round: bool) {
        let inner = self.inner.clone();
        let a = inner.stream.acked_position().unwrap_or(0);
        if a > self.known {
            inner.m.acked.add(a - self.known);
            self.known = a;
            inner.acked.store(a, Ordering::Release);
        }
        if self.known > self.persisted {
            let dir = &inner.cfg.dir;
            let sync = inner.cfg.sync != SyncMode::None
                && (final_round || self.last_sync.elapsed() >= STATE_SYNC);
            match state::store(dir, self.known, sync) {
                Ok(()) => {
                    self.persisted = self.known;
                    if sync {
                        self.last_sync = Instant::now();
                        self.durable = self.known;
                    }
                    if self.failing {
                        self.failing = false;
                        tracing::info!(path = %dir.display(), "disk queue: state stored again");
                    }
                }
                Err(e) => {
                    if !self.failing {
                        self.failing = true;
                        tracing::warn!(path = %dir.join("state.json").display(), error = %e, "disk queue: cannot store the acknowledged position; after a restart more events will be sent again");
                    }
                }
            }
        }
        let mut gone = Vec::new();
        let mut candidate = None;
        {
            let mut st = lock(&inner.s);
            let known = self.known;
            let n = st.segs.len();
            let lasts: Vec<Option<u64>> = (0..n)
                .map(|i| {
                    st.segs[i]
                        .last_seq
                        .or_else(|| st.segs.get(i + 1).and_then(|s| s.first_seq).map(|f| f - 1))
                })
                .collect();
            let mut i = 0;
            let mut freed = 0;
            // One segment may be kept for reuse: none kept yet, the reader past it, and a file
            // the writer would fill (with `sync.mode: none` nothing tells a crash's old records
            // from new ones, see `recovery`).
            let mut reuse = st.spare.is_none() && inner.cfg.sync != SyncMode::None;
            let reading = st.reading;
            st.segs.retain(|s| {
                let last = lasts[i];
                let done =
                    s.finished && (s.first_seq.is_none() || last.is_some_and(|l| l <= known));
                i += 1;
                if done {
                    freed += s.end;
                    if reuse && s.id < reading && s.end > 0 {
                        reuse = false;
                        candidate = Some((s.path.clone(), s.end, last.unwrap_or(0)));
                    } else {
                        gone.push(s.path.clone());
                    }
                }
                !done
            });
            st.disk_bytes = st.disk_bytes.saturating_sub(freed);
            while st.ages.len() >= 2 && st.ages[1].0 <= known + 1 {
                st.ages.pop_front();
            }
            if st.ages.len() == 1 && st.ages[0].0 <= known && st.last_seq <= known {
                st.ages.pop_front();
            }
            inner.publish_gauges(&st);
        }
        if let Some((path, size, last)) = candidate {
            self.keep_for_reuse(path, size, last, &mut gone);
        }
        if gone.is_empty() {
            return;
        }
        gone.iter().for_each(|p| segment::remove(p));
        inner.space_cv.notify_all();
    }

    /// Keeps a fully acknowledged segment (events up to `last`) as the writer's next segment
    /// file, once the state saying they are acknowledged is on disk: a crash before the writer
    /// overwrote them then never replays them, and recovery may take any old record it finds in
    /// a reused file for acknowledged. If the state cannot be stored, the file is deleted.
    fn keep_for_reuse(
        &mut self,
        path: std::path::PathBuf,
        size: u64,
        last: u64,
        gone: &mut Vec<std::path::PathBuf>,
    ) {
        let inner = &self.inner;
        if last > self.durable {
            match state::store(&inner.cfg.dir, self.known, true) {
                Ok(()) => {
                    self.persisted = self.known;
                    self.durable = self.known;
                    self.last_sync = Instant::now();
                }
                Err(_) => {
                    // Reported by the next round's store; this segment goes.
                    gone.push(path);
                    return;
                }
            }
        }
        lock(&inner.s).spare = Some((path, size));
        inner.space_cv.notify_all();
    }
}
