//! The state of one known file, shared between its reader, the prospector and the status API.

use std::collections::HashSet;
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

/// The acknowledgement stream of a file's current content.
///
/// Every reading session of the file (closed when inactive, reopened when it grows) takes its
/// tokens from the same stream, so tokens are in file order across sessions and the stream's
/// acked prefix is the file's committed offset. A truncation, a replaced file or a reader
/// reopened after a panic starts a new generation: acknowledgements of the old one no longer
/// say anything about what is committed (the old content is gone, or is read again from the
/// new generation's start).
struct Generation {
    /// Created by the first reader of this generation: 100k registry entries of files that are
    /// not read cost no stream.
    stream: Option<Arc<AckStream>>,
    /// The committed offset when the generation started.
    start: u64,
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
    acks: Mutex<Generation>,
    /// Where this file's key goes when its committed offset moves: the input's commit set.
    commits: Arc<CommitSet>,
    phase: AtomicU8,
    /// Set by the prospector: the file was renamed.
    pub renamed: AtomicBool,
    /// Set by the prospector: the file was removed.
    pub removed: AtomicBool,
    /// Woken on a change notification for this file and at shutdown.
    pub wake: Notify,
}

impl std::fmt::Debug for FileShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "File({}, {})", self.key, self.path().display())
    }
}

impl FileShared {
    /// A file at `offset` (its committed offset from the registry, or 0) whose offset moves are
    /// reported to `commits`.
    pub fn new(
        key: FileKey,
        path: PathBuf,
        fp: Fingerprint,
        size: u64,
        offset: u64,
        commits: Arc<CommitSet>,
    ) -> Arc<Self> {
        Arc::new(FileShared {
            key,
            path: Mutex::new(path),
            version: AtomicU64::new(0),
            fingerprint: Mutex::new(fp),
            size: AtomicU64::new(size),
            read_offset: AtomicU64::new(offset),
            acks: Mutex::new(Generation {
                stream: None,
                start: offset,
            }),
            commits,
            phase: AtomicU8::new(Phase::Closed as u8),
            renamed: AtomicBool::new(false),
            removed: AtomicBool::new(false),
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

    /// The stream a reader takes this file's tokens from (created at the first call of a
    /// generation). Its acked prefix advancing pushes the file's key into the commit set.
    pub fn stream(self: &Arc<Self>) -> Arc<AckStream> {
        let mut g = lock(&self.acks);
        if let Some(s) = &g.stream {
            return s.clone();
        }
        let (key, commits) = (self.key, self.commits.clone());
        let s = AckStream::with_on_advance(move || commits.push(key));
        g.stream = Some(s.clone());
        s
    }

    /// Starts a new generation committed at `offset`: the content was replaced (truncation, a
    /// new file under the same inode; `offset` 0) or a reader died and the file is read again
    /// from its committed offset. Tokens of the old generation still in flight no longer move
    /// the committed offset. The key goes to the commit set at once: the offset may have moved
    /// back without any acknowledgement.
    pub fn new_generation(&self, offset: u64) {
        let mut g = lock(&self.acks);
        g.stream = None;
        g.start = offset;
        drop(g);
        self.commits.push(self.key);
    }

    /// The committed offset: everything before it is acknowledged. Only ever saved to the
    /// registry, sent as status, or used to reopen a file.
    pub fn committed(&self) -> u64 {
        let g = lock(&self.acks);
        g.stream
            .as_ref()
            .and_then(|s| s.acked_position())
            .map_or(g.start, |p| p.max(g.start))
    }

    /// Events of the current generation published and not acknowledged yet.
    pub fn unacked_events(&self) -> u64 {
        lock(&self.acks)
            .stream
            .as_ref()
            .map_or(0, |s| s.progress().pending())
    }
}

/// The files whose committed offset may have moved since the registry commit last looked: the
/// one way an offset change reaches the registry. Pushed to by the ack path (each time a file's
/// acked prefix advances) and by [`FileShared::new_generation`]; drained by the commit every
/// `registry.flush`, which saves those files only. An idle file is never looked at.
///
/// Why nothing is missed: a push happens after the new position is visible, and the commit
/// reads positions after draining; an advance between the drain and the read is saved early
/// and its key is looked at again next time (no change, nothing written).
#[derive(Default)]
pub struct CommitSet(Mutex<HashSet<FileKey>>);

impl CommitSet {
    /// Marks `key` for the next commit.
    pub fn push(&self, key: FileKey) {
        lock(&self.0).insert(key);
    }

    /// Takes every marked key.
    pub fn drain(&self) -> HashSet<FileKey> {
        std::mem::take(&mut *lock(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ack_pushes_the_file_and_a_new_generation_forgets_the_old_stream() {
        let commits = Arc::new(CommitSet::default());
        let key = FileKey { dev: 1, ino: 2 };
        let f = FileShared::new(
            key,
            PathBuf::from("/x"),
            Fingerprint::default(),
            0,
            5,
            commits.clone(),
        );
        let s = f.stream();
        let (t1, t2) = (s.token(10), s.token(20));
        assert!(commits.drain().is_empty(), "tokens alone move nothing");
        t2.ack();
        assert!(commits.drain().is_empty(), "a gap: the prefix did not move");
        assert_eq!(f.committed(), 5);
        t1.ack();
        assert_eq!(commits.drain().into_iter().collect::<Vec<_>>(), vec![key]);
        assert_eq!(f.committed(), 20);
        // Truncated: committed goes back to 0 and the file is marked; the old stream's late
        // acks do not move it.
        let t3 = s.token(30);
        f.new_generation(0);
        assert_eq!(commits.drain().len(), 1);
        assert_eq!(f.committed(), 0);
        t3.ack();
        assert_eq!(f.committed(), 0);
        assert_eq!(f.unacked_events(), 0);
    }
}
