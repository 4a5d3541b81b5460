//! Opening a queue directory after a clean stop or a crash.
//!
//! * The stored watermark (`state.json`) says which events the outputs acknowledged.
//! * The newest segment holding events is scanned in full: a torn or damaged tail (a write cut
//!   by the crash) is cut off with a warning and counted in `skiff.queue.disk.corrupt_records`;
//!   damaged records followed by good ones are reported (the reader skips them when it gets
//!   there). Older segments are only opened to find their first event: they were complete
//!   before a newer segment was started, and the reader checks every frame anyway.
//! * Segments without any event (created just before a crash) are removed, and so are segments
//!   whose events are all acknowledged. A reused segment (see `writer`) cut by a crash ends
//!   where its old records start; one holding nothing but old records (the crash came before
//!   its first write) holds only acknowledged events: a segment is reused only once the state
//!   saying so is on disk.
//! * Writing resumes in a new segment; sequence numbers continue after the highest seen.

use std::fs;

use skiff_metrics::Counter;

use super::Seg;
use super::config::Settings;
use super::segment::{self, remove, scan};
use super::state;

/// What recovery found.
pub(super) struct Recovered {
    pub segs: Vec<Seg>,
    pub acked: u64,
    pub next_seq: u64,
    pub next_id: u64,
}

fn io_err(what: &str, path: &std::path::Path, e: std::io::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "disk queue: cannot {what} {}: {e}; check that queue.disk.path is a directory skiff may write to",
        path.display()
    )
}

pub(super) fn recover(cfg: &Settings, corrupt: &Counter) -> anyhow::Result<Recovered> {
    let dir = &cfg.dir;
    fs::create_dir_all(dir).map_err(|e| io_err("create the directory", dir, e))?;
    let (acked, warning) = state::load(dir);
    if let Some(w) = warning {
        tracing::warn!(path = %dir.display(), "disk queue state unusable: {w}");
    }
    let files = segment::list(dir).map_err(|e| io_err("list", dir, e))?;
    let next_id = files.last().map_or(1, |(id, _)| id + 1);
    let mut segs: Vec<Seg> = Vec::with_capacity(files.len());
    let mut last_seq = None;
    let mut newest = files.len();
    // The newest segment with an event: full scan, cut its tail.
    while newest > 0 {
        let (id, path) = &files[newest - 1];
        let s = scan(path, true).map_err(|e| io_err("read", path, e))?;
        for (from, to, why) in &s.skipped {
            tracing::warn!(path = %path.display(), offset = from, skipped_bytes = to - from, reason = why, "disk queue: damaged record in the middle of a segment; the records after it are kept, this one is lost");
        }
        if let Some(at) = s.stale {
            tracing::info!(path = %path.display(), offset = at, cut_bytes = s.size - s.good_end, "disk queue: cutting the old records of a reused segment");
        }
        if let Some((at, why)) = s.torn {
            corrupt.inc();
            tracing::warn!(path = %path.display(), offset = at, cut_bytes = s.size - s.good_end, reason = why, "disk queue: damaged tail after a crash; cutting it off");
        }
        if (s.torn.is_some() || s.stale.is_some())
            && let Err(e) = fs::OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|f| f.set_len(s.good_end))
        {
            tracing::warn!(path = %path.display(), error = %e, "disk queue: cannot cut the damaged tail; it will be skipped when read");
        }
        // A segment reused just before the crash and not written yet holds only old records:
        // numbers below those of the segment before it. (It holds acknowledged events only, but
        // this holds even when the state file was lost.)
        let older_first = match newest.checked_sub(2).map(|i| &files[i].1) {
            Some(p) => scan(p, false).map_err(|e| io_err("read", p, e))?.first_seq,
            None => None,
        };
        let stale = matches!((s.first_seq, older_first), (Some(f), Some(o)) if f <= o);
        if stale {
            tracing::info!(path = %path.display(), "disk queue: removing a reused segment that holds only old records");
        }
        // Only acknowledged events: nothing to replay here, and the newest events, if any, are
        // in an older segment.
        if !stale && s.last_seq.is_some_and(|l| l > acked) {
            last_seq = s.last_seq;
            segs.push(Seg {
                id: *id,
                path: path.clone(),
                first_seq: s.first_seq,
                last_seq: s.last_seq,
                end: s.good_end,
                finished: true,
            });
            break;
        }
        remove(path);
        newest -= 1;
    }
    // Older ones: their first event only.
    for (id, path) in files[..newest.saturating_sub(1)].iter().rev() {
        let s = scan(path, false).map_err(|e| io_err("read", path, e))?;
        if s.first_seq.is_none() {
            if s.size > 0 {
                tracing::warn!(path = %path.display(), bytes = s.size, "disk queue: segment without a readable event; removing it");
            }
            remove(path);
            continue;
        }
        segs.push(Seg {
            id: *id,
            path: path.clone(),
            first_seq: s.first_seq,
            last_seq: None,
            end: s.size,
            finished: true,
        });
    }
    segs.reverse();
    // Drop segments already acknowledged in full.
    let lasts: Vec<Option<u64>> = (0..segs.len())
        .map(|i| {
            segs[i]
                .last_seq
                .or_else(|| segs.get(i + 1).and_then(|n| n.first_seq).map(|f| f - 1))
        })
        .collect();
    let mut i = 0;
    segs.retain(|s| {
        let done = lasts[i].is_some_and(|l| l <= acked);
        i += 1;
        if done {
            remove(&s.path);
        }
        !done
    });
    let next_seq = last_seq.unwrap_or(0).max(acked) + 1;
    if !segs.is_empty() {
        tracing::info!(path = %dir.display(), segments = segs.len(), acked_seq = acked, last_seq = next_seq - 1, "disk queue: replaying unacknowledged events");
    }
    Ok(Recovered {
        segs,
        acked,
        next_seq,
        next_id,
    })
}
