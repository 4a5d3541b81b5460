//! The state of one known file, shared between its reader, the prospector and the status API.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use skiff_event::AckStream;
use tokio::sync::Notify;

use crate::identity::{FileKey, Fingerprint};

/// What a file is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// A reader is reading it.
    Reading = 0,
    /// A reader has it open at its end, waiting for more.
    Idle = 1,
    /// No reader has it open.
    Closed = 2,
    /// It was removed (or moved out of `paths`).
    Removed = 3,
    /// It waits for a reader slot (`harvester_limit`).
    Waiting = 4,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Reading,
            1 => Phase::Idle,
            3 => Phase::Removed,
            4 => Phase::Waiting,
            _ => Phase::Closed,
        }
    }
}

/// Locks `m`, taking the data of a poisoned lock as it is (a panicked reader must not stop
/// the input).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The acknowledgement streams of one file's reading sessions, oldest first.
///
/// A file may be read by several sessions in turn (closed when inactive, reopened when it
/// grows); events of an earlier session may still be in flight when the next starts. The
/// committed offset follows the oldest session until all of its events are acknowledged, then
/// the next. A truncation or a replaced file clears the chain: acknowledgements of the old
/// content no longer say anything about the new.
#[derive(Default)]
struct AckChain {
    /// `(stream, offset the session started at)`.
    streams: Vec<(Arc<AckStream>, u64)>,
    /// The committed offset of the file.
    committed: u64,
}

impl AckChain {
    fn refresh(&mut self) -> u64 {
        while let Some((s, start)) = self.streams.first() {
            let p = s.progress();
            let pos = p.acked_position.unwrap_or(*start).max(*start);
            self.committed = pos;
            if p.pending() == 0 && self.streams.len() > 1 {
                self.streams.remove(0);
                continue;
            }
            break;
        }
        self.committed
    }

    fn unacked_events(&self) -> u64 {
        self.streams
            .iter()
            .map(|(s, _)| s.progress().pending())
            .sum()
    }
}

/// One known file.
pub struct FileShared {
    /// Device and inode.
    pub key: FileKey,
    path: Mutex<PathBuf>,
    /// Bumped when `path` or `fingerprint` changes (readers rebuild their shared fields).
    pub version: AtomicU64,
    fingerprint: Mutex<Fingerprint>,
    /// Last size seen.
    pub size: AtomicU64,
    /// Offset read up to (next line start).
    pub read_offset: AtomicU64,
    acks: Mutex<AckChain>,
    /// Bumped by this file's ack streams when their prefix moves, and by a new session.
    pub activity: Arc<AtomicU64>,
    /// `activity` when the committed offset was last recomputed.
    refreshed: AtomicU64,
    /// Mirror of the committed offset, for lock-free status reads.
    pub acked: AtomicU64,
    phase: AtomicU8,
    /// Set by the prospector: the file was renamed.
    pub renamed: AtomicBool,
    /// Set by the prospector: the file was removed.
    pub removed: AtomicBool,
    /// Whether the prospector's set of active files (those whose offset may move, looked at
    /// every `registry.flush`) holds this file. See [`FileShared::track`].
    tracked: AtomicBool,
    /// Woken on a change notification for this file and at shutdown.
    pub wake: Notify,
}

impl std::fmt::Debug for FileShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "File({}, {})", self.key, self.path().display())
    }
}

impl FileShared {
    /// A file at `offset` (its committed offset from the registry, or 0).
    pub fn new(key: FileKey, path: PathBuf, fp: Fingerprint, size: u64, offset: u64) -> Arc<Self> {
        Arc::new(FileShared {
            key,
            path: Mutex::new(path),
            version: AtomicU64::new(0),
            fingerprint: Mutex::new(fp),
            size: AtomicU64::new(size),
            read_offset: AtomicU64::new(offset),
            acks: Mutex::new(AckChain {
                streams: Vec::new(),
                committed: offset,
            }),
            acked: AtomicU64::new(offset),
            activity: Arc::new(AtomicU64::new(1)),
            refreshed: AtomicU64::new(0),
            phase: AtomicU8::new(Phase::Closed as u8),
            renamed: AtomicBool::new(false),
            removed: AtomicBool::new(false),
            tracked: AtomicBool::new(false),
            wake: Notify::new(),
        })
    }

    /// The file's current path.
    pub fn path(&self) -> PathBuf {
        lock(&self.path).clone()
    }

    /// Whether the file's path is `p` (no copy).
    pub fn path_is(&self, p: &std::path::Path) -> bool {
        *lock(&self.path) == p
    }

    /// Records a new path (a rename).
    pub fn set_path(&self, p: PathBuf) {
        *lock(&self.path) = p;
        self.version.fetch_add(1, Ordering::Release);
    }

    /// The fingerprint known so far.
    pub fn fingerprint(&self) -> Fingerprint {
        *lock(&self.fingerprint)
    }

    /// Records a (grown or new) fingerprint.
    pub fn set_fingerprint(&self, fp: Fingerprint) {
        let mut g = lock(&self.fingerprint);
        if *g != fp {
            *g = fp;
            drop(g);
            self.version.fetch_add(1, Ordering::Release);
        }
    }

    /// The phase.
    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    /// Sets the phase.
    pub fn set_phase(&self, p: Phase) {
        self.phase.store(p as u8, Ordering::Release);
    }

    /// A reading session starts at `offset` with `stream`; `reset` when the content was
    /// replaced (truncation, new file under the same inode): older sessions no longer count.
    pub fn start_session(&self, stream: Arc<AckStream>, offset: u64, reset: bool) {
        let mut g = lock(&self.acks);
        if reset {
            g.streams.clear();
            g.committed = offset;
            self.acked.store(offset, Ordering::Release);
        }
        g.streams.push((stream, offset));
        drop(g);
        self.activity.fetch_add(1, Ordering::AcqRel);
    }

    /// Marks the file active; `true` when it was not, and the caller must then hand its key to
    /// the prospector. A reader calls it after creating acknowledgement tokens, so that an idle
    /// reader's file costs the prospector nothing at each commit (10,000 idle files were 6 % of
    /// a core when every open file stayed active).
    ///
    /// Why nothing is missed: the prospector calls [`FileShared::untrack`] before it checks
    /// that no event is in flight. Either the reader's tokens were created first (the check
    /// sees them and the file stays active), or the reader's `track` comes after `untrack`
    /// and returns `true`.
    pub fn track(&self) -> bool {
        !self.tracked.swap(true, Ordering::SeqCst)
    }

    /// Marks the file no longer active (the prospector, before deciding to forget it).
    pub fn untrack(&self) {
        self.tracked.store(false, Ordering::SeqCst);
    }

    /// Recomputes the committed (acknowledged) offset and returns it. Cheap when nothing was
    /// acknowledged since the last call (no lock): the prospector calls it for every known
    /// file, often, and most files are idle.
    pub fn refresh_acked(&self) -> u64 {
        let a = self.activity.load(Ordering::Acquire);
        if a == self.refreshed.load(Ordering::Acquire) {
            return self.acked.load(Ordering::Acquire);
        }
        // Read `activity` before recomputing: a bump in between only makes the next call
        // recompute again.
        let c = lock(&self.acks).refresh();
        self.acked.store(c, Ordering::Release);
        self.refreshed.store(a, Ordering::Release);
        c
    }

    /// Events published from this file and not acknowledged yet.
    pub fn unacked_events(&self) -> u64 {
        lock(&self.acks).unacked_events()
    }

    /// The committed offset as last refreshed.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Arc<FileShared> {
        let key = FileKey { dev: 1, ino: 2 };
        FileShared::new(key, PathBuf::from("/x"), Fingerprint::default(), 0, 0)
    }

    #[test]
    fn a_reader_hands_back_a_file_the_prospector_let_go() {
        let f = file();
        let stream = AckStream::with_activity(f.activity.clone());
        f.start_session(stream.clone(), 0, false);
        // Started by the prospector: tracked, so the reader's first batch hands nothing back.
        assert!(f.track());
        let t = stream.token(10);
        assert!(!f.track(), "already tracked: no hand-back");
        // The prospector looks: events in flight, so it keeps the file (and tracks it again).
        f.untrack();
        assert_eq!(f.unacked_events(), 1);
        f.track();
        t.ack();
        assert_eq!(f.refresh_acked(), 10);
        // Next look: nothing in flight, the file is let go; the reader's next batch must hand
        // it back exactly once.
        f.untrack();
        assert_eq!(f.unacked_events(), 0);
        let t2 = stream.token(20);
        assert!(
            f.track(),
            "the first batch after a let-go hands the file back"
        );
        assert!(!f.track());
        t2.ack();
        assert_eq!(f.refresh_acked(), 20);
    }
}
