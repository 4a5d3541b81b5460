//! Rotated copies: a new file that is a copy of a known one continues from the known one's
//! offset instead of from 0.
//!
//! With `copytruncate` rotation (`cp app.log app.log.1; : > app.log`) and the copies inside
//! `paths`, the copy is a new inode; read from 0 it ships again everything the original already
//! shipped (80 % of the lines twice in the issue's test). The lines in the copy after the
//! original's read offset are exactly the ones the original had not read yet, so the copy is
//! read from there.
//!
//! Telling a copy from a genuinely new file that happens to begin like an old one is the risk:
//! skipping the head of a new file loses data, which is worse than duplicates. So a new file is
//! taken for a copy of a known file `O` only when:
//!
//! * its head matches `O`'s fingerprint, and that fingerprint is full (1 KiB), or the file's
//!   name links it to `O` (`rotation.external.strategy.copytruncate.suffix_regex`, or
//!   `file_identity.path`/`inode_marker`, see `docs/file-identity.md`);
//! * when `O` still holds its old content: the copy's bytes just before the offset it would
//!   start at equal `O`'s (a copy, not a new file with the same header);
//! * when `O` was truncated (its old content is gone and cannot be compared): the copy is at
//!   least as long as what was read from `O`, and every event read from `O` before the
//!   truncation is acknowledged (so the copy's saved offset never passes an unacknowledged
//!   event of the original).
//!
//! The copy usually appears before the truncation (that is the order of copytruncate) while
//! the original's reader may still be behind: then the decision waits (the file is looked at
//! again at the next scan) until the reader caught up or noted the truncation, at most
//! [`MAX_WAIT`]; after that the copy is read from the original's read offset (a few lines may
//! be shipped twice, none lost).

use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use regex::Regex;
use skiff_event::AckStream;

use crate::identity::{FINGERPRINT_MAX, FileKey, Fingerprint};
use crate::state::{FileShared, lock};

/// How long a new file may wait for its original's reader to catch up or note a truncation.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(300);
/// How long a noted truncation may match a copy found later.
const NOTE_KEEP: Duration = Duration::from_secs(300);
/// Noted truncations kept at most (oldest dropped).
const NOTES_MAX: usize = 256;

/// How a new file's name links it to the known file it may be a copy of.
#[derive(Clone, Debug, Default)]
pub(crate) enum Link {
    /// By content only (full fingerprint).
    #[default]
    None,
    /// `rotation.external.strategy.copytruncate`: the path without this suffix is the original.
    Suffix(Regex),
    /// `file_identity.path`: a new inode under a known path is that file.
    SamePath,
    /// `file_identity.inode_marker`: device ids are not stable; the same inode on another
    /// device id is the same file.
    SameInode,
}

/// The link from the input's `rotation` and `file_identity` settings (checked when the input
/// was built).
pub(crate) fn link(cfg: &crate::config::FilestreamConfig) -> Link {
    use crate::config::{FileIdentity, copytruncate_suffix, file_identity};
    if let Ok(Some(re)) = copytruncate_suffix(cfg.rotation.as_ref())
        && let Ok(re) = Regex::new(&re)
    {
        return Link::Suffix(re);
    }
    match file_identity(cfg.file_identity.as_ref()) {
        Ok(FileIdentity::Path) => Link::SamePath,
        Ok(FileIdentity::InodeMarker(marker)) => {
            tracing::info!(marker = %marker, "file_identity.inode_marker: device ids are not trusted; a known inode on another device id continues from its offset when its head matches");
            Link::SameInode
        }
        _ => Link::None,
    }
}

/// What to do with a new file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Not decided yet: leave it for the next scan.
    Wait,
    /// A copy: read it from `offset`; `fp` is its head's fingerprint.
    From { offset: u64, fp: Fingerprint },
}

/// What the detector concluded about one new file.
enum Verdict {
    /// A new file: read from 0.
    New,
    /// A copy.
    From(Decision),
    /// Not yet known: wait for `original`'s reader, then `fallback` (`None`: a new file).
    Wait {
        original: FileKey,
        fallback: Option<Decision>,
    },
}

/// A truncation a reader found.
struct Note {
    key: FileKey,
    path: PathBuf,
    fp: Fingerprint,
    read_to: u64,
    /// The acknowledgements of what was read before the truncation.
    stream: Option<Arc<AckStream>>,
    at: Instant,
}

/// The rotated-copy detector of one input, shared by its readers (which note truncations)
/// and its prospector (which asks about new files).
pub(crate) struct Copies {
    enabled: bool,
    link: Link,
    notes: Mutex<VecDeque<Note>>,
    /// New files waiting for a decision: since when, and for which original.
    waiting: Mutex<HashMap<FileKey, (Instant, FileKey)>>,
    /// The size of each waiting file at the last look.
    sizes: Mutex<HashMap<FileKey, u64>>,
}

/// A known file that a new one may be a copy of.
struct Candidate<'a> {
    file: &'a Arc<FileShared>,
    harvesting: bool,
}

impl Copies {
    pub(crate) fn new(enabled: bool, link: Link) -> Self {
        Copies {
            enabled,
            link,
            notes: Mutex::new(VecDeque::new()),
            waiting: Mutex::new(HashMap::new()),
            sizes: Mutex::new(HashMap::new()),
        }
    }

    /// Whether every known file may be an original, not only those a scan still finds at
    /// their key (`file_identity.path` and `inode_marker` link a new key to a vanished one).
    pub(crate) fn wants_vanished(&self) -> bool {
        matches!(self.link, Link::SamePath | Link::SameInode)
    }

    /// A reader found `file` truncated or replaced after reading it up to `read_to`; `stream`
    /// holds the acknowledgements of what it read. Called before the file's fingerprint and
    /// offset are reset.
    pub(crate) fn note(&self, file: &FileShared, read_to: u64, stream: Option<Arc<AckStream>>) {
        let fp = file.fingerprint();
        if !self.enabled || read_to == 0 || fp.len == 0 {
            return;
        }
        let mut notes = lock(&self.notes);
        while notes.len() >= NOTES_MAX {
            notes.pop_front();
        }
        notes.push_back(Note {
            key: file.key,
            path: file.path(),
            fp,
            read_to,
            stream,
            at: Instant::now(),
        });
    }

    /// Decides, for each new file `(key, path, size, None)`, or known file renamed while no
    /// reader had it open `(key, path, size, Some(its fingerprint))` (its inode may have been
    /// reused by a copy), whether it is a copy of a known file
    /// (`known`: the known files that may be originals, and whether a reader has each open).
    /// Files not in the answer are new files. `known` is only walked when there is a new file.
    pub(crate) fn decide<'a>(
        &self,
        new: impl Iterator<Item = (FileKey, &'a Path, u64, Option<Fingerprint>)>,
        known: impl Iterator<Item = (&'a Arc<FileShared>, bool)>,
    ) -> HashMap<FileKey, Decision> {
        let mut out = HashMap::new();
        if !self.enabled {
            return out;
        }
        let mut known = Some(known);
        let mut index: Option<Index<'a>> = None;
        let now = Instant::now();
        let no_notes = {
            let mut notes = lock(&self.notes);
            notes.retain(|n| now.duration_since(n.at) < NOTE_KEEP);
            notes.is_empty()
        };
        for (key, path, size, own) in new {
            if size == 0 {
                continue;
            }
            let idx = index.get_or_insert_with(|| {
                Index::build(known.take().into_iter().flatten(), &self.link)
            });
            if no_notes && idx.is_empty() {
                // Nothing it could be a copy of: no head to read (10,000 new files at
                // start-up cost no extra I/O).
                break;
            }
            let Some((head, size)) = read_head(path, key) else {
                // Renamed since the scan listed it (the next rotation shifting it): look again
                // at the next scan rather than take it for a new file under the wrong path. (A
                // known file keeps its state: nothing to decide.)
                if own.is_none() {
                    out.insert(key, Decision::Wait);
                }
                continue;
            };
            if own.is_some_and(|fp| matches(&head, &fp) || fp.len == 0) {
                // A known file renamed with its content: not a new file.
                continue;
            }
            let verdict = match self.against_notes(key, path, &head, size) {
                Some(v) => v,
                None => match self.against_known(idx, key, path, &head, size) {
                    Some(v) => v,
                    None => continue,
                },
            };
            if let Some(d) = self.bounded(key, verdict, now) {
                if let Decision::From { offset, .. } = d {
                    tracing::info!(path = %path.display(), offset, size, "new file is a rotated copy of a known file: reading it from where the original was read to");
                }
                out.insert(key, d);
            }
        }
        let mut waiting = lock(&self.waiting);
        waiting.retain(|_, (since, _)| now.duration_since(*since) < MAX_WAIT * 2);
        lock(&self.sizes).retain(|k, _| waiting.contains_key(k));
        out
    }

    /// A `Wait` (for `original`) turns into `fallback` once the file waited [`MAX_WAIT`].
    fn bounded(&self, key: FileKey, v: Verdict, now: Instant) -> Option<Decision> {
        let mut waiting = lock(&self.waiting);
        let Verdict::Wait { original, fallback } = v else {
            waiting.remove(&key);
            return match v {
                Verdict::From(d) => Some(d),
                _ => None,
            };
        };
        let since = waiting.entry(key).or_insert((now, original)).0;
        if now.duration_since(since) < MAX_WAIT {
            return Some(Decision::Wait);
        }
        waiting.remove(&key);
        tracing::info!(
            waited_s = MAX_WAIT.as_secs(),
            "a possible rotated copy waited too long for its original's reader; deciding now"
        );
        fallback
    }

    /// Against truncations readers noted.
    fn against_notes(&self, key: FileKey, path: &Path, head: &[u8], size: u64) -> Option<Verdict> {
        let awaited = lock(&self.waiting).get(&key).map(|w| w.1);
        let mut notes = lock(&self.notes);
        let i = notes.iter().rposition(|n| {
            n.key != key
                && (awaited == Some(n.key) || self.eligible(&n.fp, &n.path, n.key, path, key))
                && matches(head, &n.fp)
        })?;
        let n = &notes[i];
        if size < n.read_to {
            // Shorter than what was read from the original: the copy cannot be checked any
            // further (the original's content is gone), and skipping its head could lose a new
            // file's lines. Read in full.
            tracing::info!(path = %path.display(), size, read_from_original = n.read_to, "new file begins like a truncated file but is shorter than what was read from it: read from the start");
            notes.remove(i);
            return Some(Verdict::New);
        }
        let from = Decision::From {
            offset: n.read_to,
            fp: Fingerprint::of(head),
        };
        if n.stream
            .as_ref()
            .is_some_and(|s| s.progress().pending() > 0)
        {
            return Some(Verdict::Wait {
                original: n.key,
                fallback: Some(from),
            });
        }
        notes.remove(i);
        Some(Verdict::From(from))
    }

    /// A known file whose content was replaced (its inode reused by a new file, typically the
    /// next copy after the oldest copy was deleted): whether it is a copy of a file a reader
    /// found truncated, and from where to read it. Not waited for: the reader is starting.
    pub(crate) fn replaced(&self, file: &FileShared) -> Option<u64> {
        if !self.enabled {
            return None;
        }
        let path = file.path();
        let (head, size) = read_head(&path, file.key)?;
        match self.against_notes(file.key, &path, &head, size)? {
            Verdict::From(Decision::From { offset, .. })
            | Verdict::Wait {
                fallback: Some(Decision::From { offset, .. }),
                ..
            } => {
                lock(&self.notes).retain(|n| n.read_to != offset || !matches(&head, &n.fp));
                tracing::info!(path = %path.display(), offset, size, "replaced content is a rotated copy of a truncated file: reading it from where the original was read to");
                Some(offset)
            }
            _ => None,
        }
    }

    /// Against known files.
    fn against_known(
        &self,
        idx: &Index<'_>,
        key: FileKey,
        path: &Path,
        head: &[u8],
        size: u64,
    ) -> Option<Verdict> {
        let c = idx.find(self, key, path, head)?;
        let o = c.file;
        let read_to = o.read_offset.load(Ordering::Acquire);
        if read_to == 0 {
            return None;
        }
        let fp = Fingerprint::of(head);
        let at = |offset| Decision::From { offset, fp };
        let ofp = o.fingerprint();
        let intact = std::fs::File::open(o.path()).ok().and_then(|mut f| {
            let m = f.metadata().ok()?;
            let same = FileKey::of(&m) == o.key
                && m.len() >= read_to
                && crate::identity::head_matches(&mut f, m.len(), &ofp).unwrap_or(false);
            same.then_some(f)
        });
        let partial = !ofp.is_full() && !self.eligible(&ofp, &o.path(), o.key, path, key);
        match intact {
            Some(orig) => {
                // The original still holds what the copy holds. A short fingerprint (the
                // reader has not grown it yet) is completed from the original's head; then
                // the bytes before the offset the copy would start at are compared.
                if partial
                    && ((head.len() as u64) < FINGERPRINT_MAX
                        || read_range_file(&orig, 0, FINGERPRINT_MAX).as_deref() != Some(head))
                {
                    return None;
                }
                let end = read_to.min(size);
                let start = end.saturating_sub(FINGERPRINT_MAX);
                let same = read_range(path, start, end)
                    .zip(read_range_file(&orig, start, end))
                    .is_some_and(|(a, b)| a == b);
                if !same {
                    return None;
                }
                if size <= read_to {
                    // Everything in it was read from the original, but it may be a copy still
                    // being written: decided once two looks saw the same size.
                    if self.seen_at(key, size) {
                        Some(Verdict::From(at(size)))
                    } else {
                        Some(Verdict::Wait {
                            original: o.key,
                            fallback: Some(at(size)),
                        })
                    }
                } else {
                    // The original's reader is behind: it will read these lines itself, or
                    // note the truncation first.
                    Some(Verdict::Wait {
                        original: o.key,
                        fallback: Some(at(read_to)),
                    })
                }
            }
            // Truncated (or gone) and its reader has not noted it yet: wait for the note
            // (which also tells how far it read). A short fingerprint cannot confirm a copy
            // without the note.
            None if c.harvesting || partial => Some(Verdict::Wait {
                original: o.key,
                fallback: (size >= read_to && !partial).then(|| at(read_to)),
            }),
            None if o.unacked_events() > 0 => Some(Verdict::Wait {
                original: o.key,
                fallback: (size >= read_to).then(|| at(read_to)),
            }),
            None if size >= read_to => Some(Verdict::From(at(read_to))),
            None => None,
        }
    }

    /// Whether the last look at waiting file `key` saw it `size` long; remembers `size`.
    fn seen_at(&self, key: FileKey, size: u64) -> bool {
        lock(&self.sizes).insert(key, size) == Some(size)
    }

    /// Whether a known file `(fp, o_path, o_key)` may be the original of a new file at `path`.
    fn eligible(
        &self,
        fp: &Fingerprint,
        o_path: &Path,
        o_key: FileKey,
        path: &Path,
        key: FileKey,
    ) -> bool {
        if fp.is_full() {
            return true;
        }
        fp.len > 0 && self.linked(o_path, o_key, path, key)
    }

    /// Whether the new file's name (or inode) links it to the known file.
    fn linked(&self, o_path: &Path, o_key: FileKey, path: &Path, key: FileKey) -> bool {
        match &self.link {
            Link::None => false,
            Link::SamePath => o_path == path,
            Link::SameInode => o_key.ino == key.ino,
            Link::Suffix(re) => original_path(re, path).is_some_and(|p| p == o_path),
        }
    }
}

/// The path `path` was rotated from: without the part `suffix` matches at its end.
pub(crate) fn original_path(suffix: &Regex, path: &Path) -> Option<PathBuf> {
    let text = path.to_str()?;
    let m = suffix
        .find_iter(text)
        .find(|m| m.end() == text.len() && m.start() > 0)?;
    Some(PathBuf::from(&text[..m.start()]))
}

/// The known files with a full fingerprint by hash, and by path and inode for linked names.
struct Index<'a> {
    by_hash: HashMap<u64, Vec<Candidate<'a>>>,
    linked: Vec<Candidate<'a>>,
}

impl<'a> Index<'a> {
    fn build(known: impl Iterator<Item = (&'a Arc<FileShared>, bool)>, link: &Link) -> Self {
        let mut by_hash: HashMap<u64, Vec<Candidate<'a>>> = HashMap::new();
        let mut linked = Vec::new();
        for (file, harvesting) in known {
            let fp = file.fingerprint();
            if fp.is_full() {
                by_hash
                    .entry(fp.hash)
                    .or_default()
                    .push(Candidate { file, harvesting });
            } else if fp.len > 0 && (harvesting || !matches!(link, Link::None)) {
                // Linked by name, or open with a fingerprint its reader has not grown yet.
                linked.push(Candidate { file, harvesting });
            }
        }
        Index { by_hash, linked }
    }

    fn is_empty(&self) -> bool {
        self.by_hash.is_empty() && self.linked.is_empty()
    }

    /// The best candidate: matching head and allowed; open ones first, then the furthest read.
    fn find(
        &self,
        copies: &Copies,
        key: FileKey,
        path: &Path,
        head: &[u8],
    ) -> Option<&Candidate<'a>> {
        let full = (head.len() as u64 >= FINGERPRINT_MAX)
            .then(|| Fingerprint::of(&head[..FINGERPRINT_MAX as usize]).hash);
        full.and_then(|h| self.by_hash.get(&h))
            .into_iter()
            .flatten()
            .chain(&self.linked)
            .filter(|c| c.file.key != key)
            .filter(|c| {
                let fp = c.file.fingerprint();
                (c.harvesting || copies.eligible(&fp, &c.file.path(), c.file.key, path, key))
                    && matches(head, &fp)
            })
            .max_by_key(|c| (c.harvesting, c.file.read_offset.load(Ordering::Acquire)))
    }
}

/// Whether `head` (the first bytes of a file) hashes to `fp` over `fp.len` bytes.
fn matches(head: &[u8], fp: &Fingerprint) -> bool {
    fp.len > 0 && (head.len() as u64) >= fp.len && Fingerprint::of(&head[..fp.len as usize]) == *fp
}

/// The first `min(size, 1 KiB)` bytes of the file at `path`, if it is still `key`,
/// and its size now (the scan's may be stale: a copy still being written).
fn read_head(path: &Path, key: FileKey) -> Option<(Vec<u8>, u64)> {
    let f = std::fs::File::open(path).ok()?;
    let m = f.metadata().ok()?;
    if FileKey::of(&m) != key {
        return None;
    }
    Some((
        read_range_file(&f, 0, m.len().min(FINGERPRINT_MAX))?,
        m.len(),
    ))
}

fn read_range(path: &Path, start: u64, end: u64) -> Option<Vec<u8>> {
    read_range_file(&std::fs::File::open(path).ok()?, start, end)
}

/// Bytes `start..end` of `f` (at most 1 KiB is ever asked for), or `None` if shorter.
fn read_range_file(f: &std::fs::File, start: u64, end: u64) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; end.saturating_sub(start).min(FINGERPRINT_MAX) as usize];
    f.read_exact_at(&mut buf, start).ok()?;
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_original_of_a_rotated_name() {
        let re = Regex::new(r"\.\d+$").unwrap();
        assert_eq!(
            original_path(&re, Path::new("/l/app.log.12")),
            Some(PathBuf::from("/l/app.log"))
        );
        assert_eq!(original_path(&re, Path::new("/l/app.log")), None);
    }

    /// A new file with the same first bytes as a file still holding its content, but other
    /// bytes before the offset it would start at, is a new file, not a copy.
    #[test]
    fn a_new_file_with_the_same_head_is_not_taken_for_a_copy() {
        let dir = tempfile::tempdir().unwrap();
        let header: String = "#".repeat(1500) + "\n";
        let o = dir.path().join("a.log");
        let n = dir.path().join("b.log");
        std::fs::write(&o, format!("{header}old 1\nold 2\n")).unwrap();
        std::fs::write(&n, format!("{header}new 1\nnew 2\nnew 3\n")).unwrap();
        let key = |p: &Path| FileKey::of(&std::fs::metadata(p).unwrap());
        let head = |p: &Path| {
            let mut f = std::fs::File::open(p).unwrap();
            crate::identity::head_fingerprint(&mut f, 1024).unwrap()
        };
        let osize = std::fs::metadata(&o).unwrap().len();
        let file = FileShared::new(
            key(&o),
            o.clone(),
            head(&o),
            osize,
            osize,
            Default::default(),
        );
        let copies = Copies::new(true, Link::None);
        let nsize = std::fs::metadata(&n).unwrap().len();
        let known = [(&file, false)];
        let d = copies.decide(
            [(key(&n), n.as_path(), nsize, None)].into_iter(),
            known.iter().map(|(f, h)| (*f, *h)),
        );
        assert!(d.is_empty(), "{d:?}");
        // A real copy of it is one, once its size was seen twice (not a copy in progress).
        std::fs::copy(&o, &n).unwrap();
        let look = || {
            copies.decide(
                [(key(&n), n.as_path(), osize, None)].into_iter(),
                known.iter().map(|(f, h)| (*f, *h)),
            )
        };
        assert_eq!(look().get(&key(&n)), Some(&Decision::Wait));
        let d = look();
        assert_eq!(
            d.get(&key(&n)),
            Some(&Decision::From {
                offset: osize,
                fp: head(&o)
            })
        );
    }
}
