//! Segment files: naming, listing, and the scan that recovery runs over them.
//!
//! Segments are named `<id>.seg` with a 16-digit increasing id, and hold frames (see
//! [`frame`](super::frame)) whose event sequence numbers increase. Recovery never appends to an
//! old segment: writing always starts in a new one, so a torn tail only needs cutting once.
//!
//! A segment file may be a reused one (see `writer`): a fully acknowledged segment renamed and
//! written again from its start. Until the new frames reach its old end, the old frames stay
//! behind them; their events all have lower sequence numbers than any new one, so a scan ends a
//! segment at the first event whose number does not increase (`Scan::stale`), and such a tail
//! is nothing to warn about: it is what a crash in a reused segment leaves.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::frame::{FrameReader, Next, event_seq};

const EXT: &str = "seg";

/// The file name of segment `id`.
pub(crate) fn path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016}.{EXT}"))
}

/// Deletes a segment file, with a warning naming it when that fails (one already gone is
/// fine). Acknowledged segments, spares and empty leftovers all go this way.
pub(crate) fn remove(path: &Path) {
    if let Err(e) = fs::remove_file(path)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "disk queue: cannot delete a segment");
    }
}

/// The segments in `dir`, by id.
pub(crate) fn list(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let p = entry?.path();
        if p.extension().and_then(|e| e.to_str()) != Some(EXT) {
            continue;
        }
        if let Some(id) = p
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse::<u64>().ok())
        {
            out.push((id, p));
        }
    }
    out.sort_by_key(|(id, _)| *id);
    Ok(out)
}

/// What a scan of one segment found.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// The file's size.
    pub size: u64,
    /// The first good event's sequence number.
    pub first_seq: Option<u64>,
    /// The last good event's (full scans only).
    pub last_seq: Option<u64>,
    /// The end of the last good frame (full scans only).
    pub good_end: u64,
    /// Where a damaged tail starts, and why (full scans only).
    pub torn: Option<(u64, &'static str)>,
    /// Where the old frames of a reused segment start (full scans only): the first event whose
    /// sequence number is not above the one before it. The file ends there.
    pub stale: Option<u64>,
    /// Damaged regions followed by good frames (full scans only).
    pub skipped: Vec<(u64, u64, &'static str)>,
}

/// Scans a segment: up to its first event, or (`full`) all of it, checking every frame.
pub(crate) fn scan(path: &Path, full: bool) -> io::Result<Scan> {
    let size = fs::metadata(path)?.len();
    let mut s = Scan {
        size,
        ..Scan::default()
    };
    let mut r = FrameReader::open(path, 0)?;
    loop {
        match r.next(size)? {
            Next::Frame(at) => {
                let seq = event_seq(r.payload());
                if let (Some(seq), Some(last)) = (seq, s.last_seq)
                    && seq <= last
                {
                    // A damaged region just before is the new write that was cut, not damage
                    // between good records.
                    s.skipped.retain(|(from, _, _)| *from < s.good_end);
                    s.stale = Some(at);
                    return Ok(s);
                }
                s.good_end = r.pos();
                if let Some(seq) = seq {
                    s.first_seq.get_or_insert(seq);
                    s.last_seq = Some(seq);
                    if !full {
                        return Ok(s);
                    }
                }
            }
            Next::Bad(at, why) => match r.resync(at, size)? {
                Some(next) => s.skipped.push((at, next, why)),
                None => {
                    s.torn = Some((at, why));
                    return Ok(s);
                }
            },
            Next::End => return Ok(s),
        }
    }
}
