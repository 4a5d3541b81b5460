//! The prospector: finds files, tells old from new, runs readers, keeps the registry.
//!
//! One task per input. It owns the table of known files (by device + inode) and is the only
//! writer of the registry. Readers run as tasks of their own; the prospector starts them (within
//! `harvester_limit`, first come first served), learns when they end, cleans old entries and
//! deletes shipped files when asked to.
//!
//! # Saving acknowledged offsets (group commit)
//!
//! Every `registry.flush` (100ms by default) the prospector reads how far the files that are
//! being read, or still have events in flight, are acknowledged, and saves every file that
//! moved with ONE append and ONE fsync. So the cost is at most one fsync per interval per input
//! while acknowledgements move, none while nothing moves, whatever the number of files; and a
//! crash repeats about one interval of acknowledged lines. Only files with events published
//! since they last settled are looked at then (the `active` set), so 100k idle entries, or 10k
//! open readers with nothing to read, cost nothing here; a reader hands its file back to the
//! set when it publishes again ([`FileShared::track`](crate::state::FileShared::track));
//! the once-a-second housekeeping pass over every entry catches renames, removals and cleaning,
//! and queues its records for the same commit.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use regex::RegexSet;
use skiff_metrics::{Counter, Gauge};
use tokio::task::JoinSet;

use crate::copytruncate::Decision;
use crate::harvester::{self, End};
use crate::identity::{self, FileKey, Fingerprint};
use crate::registry::{Record, Store};
use crate::state::{FileShared, Phase, lock};
use crate::watch::{Change, Watch};

/// The prospector's settings.
pub(crate) struct Scan {
    pub patterns: Vec<String>,
    pub recursive_glob: bool,
    pub exclude: Option<RegexSet>,
    pub include: Option<RegexSet>,
    pub symlinks: bool,
    pub check_interval: Duration,
    pub ignore_older: Option<Duration>,
    pub ignore_inactive: Option<String>,
    pub tail_files: bool,
    pub clean_inactive: Option<Duration>,
    pub clean_removed: bool,
    pub harvester_limit: usize,
    pub delete: Option<Duration>,
    /// `registry.flush`: how long an acknowledged offset may wait to be saved.
    pub registry_flush: Duration,
}

/// The shortest `registry.flush`: `0` means "as soon as possible", not a busy loop.
pub(crate) const MIN_REGISTRY_FLUSH: Duration = Duration::from_millis(10);

struct Entry {
    file: Arc<FileShared>,
    harvesting: bool,
    queued: bool,
    /// Unix seconds of the last change seen (mtime).
    changed: i64,
    /// What the registry holds for this file: `(offset, path, phase, fingerprint)`.
    written: Option<(u64, PathBuf, Phase, Fingerprint)>,
    /// The file's `version` (path/fingerprint changes) when `written` was recorded.
    written_version: u64,
    /// When the file was first seen fully shipped and closed (for `delete`).
    shipped_since: Option<Instant>,
    /// Do not restart a reader that failed before this.
    retry_at: Option<Instant>,
}

/// Metrics of the file input.
pub(crate) struct Meters {
    pub open: Gauge,
    pub running: Gauge,
    pub started: Counter,
    pub closed: Counter,
    pub known: Gauge,
    pub unacked: Gauge,
    /// Registry writes (each one write + fsync, or one compaction).
    pub writes: Counter,
    /// Registry writes that failed.
    pub write_failures: Counter,
}

pub(crate) type FileTable = Arc<Mutex<HashMap<FileKey, Arc<FileShared>>>>;

pub(crate) struct Prospector {
    pub id: Arc<str>,
    pub scan: Scan,
    pub hctx: Arc<harvester::Ctx>,
    pub store: Store,
    pub table: FileTable,
    pub meters: Meters,
    pub shutdown_timeout: Duration,
    entries: HashMap<FileKey, Entry>,
    by_path: HashMap<PathBuf, FileKey>,
    queue: VecDeque<FileKey>,
    running: usize,
    tasks: JoinSet<(FileKey, End)>,
    first_scan: bool,
    started: SystemTime,
    known_reported: i64,
    unacked_reported: i64,
    /// Files whose acknowledged offset may still move: read since they last settled.
    active: HashSet<FileKey>,
    /// Records waiting for the next commit.
    pending: Vec<Record>,
    /// The last write failed: the file may end in a torn record and a failed fsync may have
    /// dropped pages, so the next commit rewrites it whole (compaction) instead of appending.
    rewrite: bool,
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn mtime(meta: &std::fs::Metadata) -> i64 {
    meta.modified().map_or(0, unix)
}

/// A file a scan found: what the scan needs of its metadata. Not the whole `Metadata` (about
/// 150 bytes): a scan of 10,000 files holds one of these per file.
struct Seen {
    path: PathBuf,
    size: u64,
    /// Modification time, when the file system knows it.
    modified: Option<SystemTime>,
}

/// Files found by a scan, by identity.
type Found = HashMap<FileKey, Seen>;

impl Prospector {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: Arc<str>,
        scan: Scan,
        hctx: Arc<harvester::Ctx>,
        store: Store,
        loaded: HashMap<FileKey, Record>,
        table: FileTable,
        meters: Meters,
        shutdown_timeout: Duration,
    ) -> Self {
        let mut entries = HashMap::with_capacity(loaded.len());
        for (key, r) in loaded {
            let file = FileShared::new(
                key,
                PathBuf::from(&r.path),
                r.fingerprint(),
                r.size,
                r.offset,
            );
            file.set_phase(if r.phase == Phase::Removed {
                Phase::Removed
            } else {
                Phase::Closed
            });
            entries.insert(
                key,
                Entry {
                    written: Some((
                        r.offset,
                        PathBuf::from(&r.path),
                        file.phase(),
                        r.fingerprint(),
                    )),
                    file,
                    harvesting: false,
                    queued: false,
                    changed: r.changed,
                    shipped_since: None,
                    retry_at: None,
                    written_version: 0,
                },
            );
        }
        Prospector {
            id,
            scan,
            hctx,
            store,
            table,
            meters,
            shutdown_timeout,
            entries,
            by_path: HashMap::new(),
            queue: VecDeque::new(),
            running: 0,
            tasks: JoinSet::new(),
            first_scan: true,
            started: SystemTime::now(),
            known_reported: 0,
            unacked_reported: 0,
            active: HashSet::new(),
            pending: Vec::new(),
            rewrite: false,
        }
    }

    /// Runs until shutdown.
    pub(crate) async fn run(mut self) -> anyhow::Result<()> {
        let (mut watch, mut changes) = Watch::start(&self.scan.patterns);
        self.publish_table();
        let scan_started = Instant::now();
        let (found, added) = self.scan_found(&mut watch);
        // Let the readers just started run before the check of every other known file: with a
        // big registry of files that are gone (100k entries: ~150ms of stat calls) new lines
        // already flow meanwhile. (A task spawned by a worker waits in that worker's own slot,
        // which other workers cannot take, until the spawner yields.)
        tokio::task::yield_now().await;
        self.scan_missing(&found, added);
        tracing::debug!(input = %self.id, known_files = self.entries.len(), queued = self.queue.len(), took_ms = scan_started.elapsed().as_millis() as u64, "first scan done");
        let cancel = self.hctx.cancel.clone();
        let mut scan_tick =
            tokio::time::interval(self.scan.check_interval.max(Duration::from_millis(10)));
        scan_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        scan_tick.reset();
        let mut house_tick = tokio::time::interval(
            Duration::from_secs(1).min(self.scan.check_interval.max(Duration::from_millis(50))),
        );
        house_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut commit_tick =
            tokio::time::interval(self.scan.registry_flush.max(MIN_REGISTRY_FLUSH));
        // A slow fsync delays the next commit instead of queueing a burst of them.
        commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        commit_tick.reset();
        let mut scan_soon: Option<tokio::time::Instant> = None;
        loop {
            let soon = async {
                match scan_soon {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = scan_tick.tick() => self.full_scan(&mut watch),
                _ = soon => {
                    scan_soon = None;
                    self.full_scan(&mut watch);
                }
                _ = commit_tick.tick() => self.commit(),
                _ = house_tick.tick() => {
                    if watch.overflow.swap(false, Ordering::AcqRel) {
                        self.full_scan(&mut watch);
                        for e in self.entries.values() {
                            e.file.wake.notify_one();
                        }
                    }
                    self.housekeeping();
                }
                Some(c) = changes.recv() => {
                    match c {
                        Change::Written(p) => {
                            if !self.written(&p) && scan_soon.is_none() {
                                scan_soon = Some(tokio::time::Instant::now() + Duration::from_millis(50));
                            }
                        }
                        Change::Layout => {
                            if scan_soon.is_none() {
                                scan_soon = Some(tokio::time::Instant::now() + Duration::from_millis(50));
                            }
                        }
                    }
                }
                Some(res) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    match res {
                        Ok((key, end)) => self.reader_ended(key, end),
                        Err(e) => tracing::error!(input = %self.id, error = %e, "file reader task failed"),
                    }
                    self.dispatch();
                }
            }
        }
        self.shutdown().await;
        Ok(())
    }

    fn publish_table(&self) {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        t.clear();
        for (k, e) in &self.entries {
            t.insert(*k, e.file.clone());
        }
    }

    /// A write notification: wake the reader, or start one. False when the path is unknown.
    fn written(&mut self, path: &PathBuf) -> bool {
        let Some(key) = self.by_path.get(path).copied() else {
            return false;
        };
        let Some(e) = self.entries.get_mut(&key) else {
            return false;
        };
        if e.harvesting {
            e.file.wake.notify_one();
            return true;
        }
        if let Ok(meta) = std::fs::metadata(path)
            && FileKey::of(&meta) == key
        {
            e.file.size.store(meta.len(), Ordering::Release);
            e.changed = mtime(&meta);
            if meta.len() != e.file.read_offset.load(Ordering::Acquire) {
                self.enqueue(key);
                self.dispatch();
            }
            return true;
        }
        false
    }

    fn discover(&self) -> Found {
        let mut found = Found::new();
        let opts = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        for pattern in &self.scan.patterns {
            let pat = if self.scan.recursive_glob {
                pattern.clone()
            } else {
                pattern.replace("**", "*")
            };
            let paths = match glob::glob_with(&pat, opts) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(input = %self.id, pattern = %pattern, error = %e, "invalid glob pattern");
                    continue;
                }
            };
            for path in paths.flatten() {
                let text = path.to_string_lossy();
                if self
                    .scan
                    .exclude
                    .as_ref()
                    .is_some_and(|r| r.is_match(&text))
                {
                    continue;
                }
                if self
                    .scan
                    .include
                    .as_ref()
                    .is_some_and(|r| !r.is_match(&text))
                {
                    continue;
                }
                let Ok(lmeta) = std::fs::symlink_metadata(&path) else {
                    continue;
                };
                let is_link = lmeta.file_type().is_symlink();
                let meta = if is_link {
                    if !self.scan.symlinks {
                        continue;
                    }
                    match std::fs::metadata(&path) {
                        Ok(m) => m,
                        Err(_) => continue,
                    }
                } else {
                    lmeta
                };
                if !meta.is_file() {
                    continue;
                }
                let key = FileKey::of(&meta);
                match found.get(&key) {
                    // The same file through a link and directly: keep the real path.
                    Some(_) if is_link => {}
                    _ => {
                        found.insert(
                            key,
                            Seen {
                                path,
                                size: meta.len(),
                                modified: meta.modified().ok(),
                            },
                        );
                    }
                }
            }
        }
        found
    }

    fn full_scan(&mut self, watch: &mut Watch) {
        let (found, added) = self.scan_found(watch);
        self.scan_missing(&found, added);
    }

    /// The first half of a scan: files the patterns match now, new ones registered, readers
    /// started. Returns what was found and whether new files were added.
    fn scan_found(&mut self, watch: &mut Watch) -> (Found, bool) {
        watch.refresh();
        self.hctx
            .notified
            .store(watch.complete(), Ordering::Release);
        let found = self.discover();
        let first = std::mem::replace(&mut self.first_scan, false);
        let since = match self.scan.ignore_inactive.as_deref() {
            Some("since_first_start") => Some(self.store.created),
            Some("since_last_start") => Some(unix(self.started)),
            _ => None,
        };
        let now = SystemTime::now();
        let mut copies = self.hctx.copies.decide(
            found
                .iter()
                .filter_map(|(k, seen)| match self.entries.get(k) {
                    None => Some((*k, seen.path.as_path(), seen.size, None)),
                    // Renamed while closed: maybe a deleted file's inode reused by a copy.
                    Some(e) if !e.harvesting && !e.file.path_is(&seen.path) => Some((
                        *k,
                        seen.path.as_path(),
                        seen.size,
                        Some(e.file.fingerprint()),
                    )),
                    Some(_) => None,
                }),
            // An original is still in `paths` (copies sit next to it), unless the identity
            // settings link a new key to a vanished one: 100k entries of gone files are not
            // looked at.
            self.entries
                .iter()
                .filter(|(k, _)| found.contains_key(k) || self.hctx.copies.wants_vanished())
                .map(|(_, e)| (&e.file, e.harvesting)),
        );
        self.by_path.clear();
        let mut added = false;
        for (key, seen) in &found {
            let (path, size) = (&seen.path, seen.size);
            let changed = seen.modified.map_or(0, unix);
            self.by_path.insert(path.clone(), *key);
            if copies.contains_key(key) && self.entries.remove(key).is_some() {
                // A deleted file's inode, reused by a rotated copy: a new file from here on.
                self.active.remove(key);
            } else if let Some(e) = self.entries.get_mut(key) {
                if !e.file.path_is(path) {
                    tracing::debug!(input = %self.id, from = %e.file.path().display(), to = %path.display(), "file renamed");
                    e.file.set_path(path.clone());
                    if e.harvesting {
                        e.file.renamed.store(true, Ordering::Release);
                        e.file.wake.notify_one();
                    }
                }
                // Seen again after it was gone: maybe a new file under a reused inode, so let
                // a reader check its head even if the size happens to equal the old offset.
                let back = e.file.removed.swap(false, Ordering::AcqRel) && !e.harvesting;
                if back {
                    e.file.set_phase(Phase::Closed);
                }
                e.changed = e.changed.max(changed);
                if e.harvesting && size != e.file.size.load(Ordering::Acquire) {
                    // The safety net for a lost notification: idle readers do not poll while
                    // notifications work.
                    e.file.wake.notify_one();
                }
                if !e.harvesting {
                    e.file.size.store(size, Ordering::Release);
                    let off = e.file.read_offset.load(Ordering::Acquire);
                    if (back || size != off) && e.retry_at.is_none_or(|t| t <= Instant::now()) {
                        let key = *key;
                        self.enqueue(key);
                    }
                }
                continue;
            }
            // A new file, or a rotated copy of a known one (see `copytruncate`).
            let copy = copies.remove(key);
            if copy == Some(Decision::Wait) {
                continue;
            }
            let old = self.scan.ignore_older.is_some_and(|d| {
                now.duration_since(seen.modified.unwrap_or(now))
                    .unwrap_or_default()
                    > d
            }) || since.is_some_and(|s| changed < s);
            let from_end = old || (first && self.scan.tail_files);
            let (offset, fp) = if let Some(Decision::From { offset, fp }) = copy {
                (offset, fp)
            } else if from_end {
                let fp = std::fs::File::open(path)
                    .and_then(|mut f| identity::head_fingerprint(&mut f, size))
                    .unwrap_or_default();
                (size, fp)
            } else {
                (0, Fingerprint::default())
            };
            let file = FileShared::new(*key, path.clone(), fp, size, offset);
            self.entries.insert(
                *key,
                Entry {
                    file,
                    harvesting: false,
                    queued: false,
                    changed,
                    written: None,
                    shipped_since: None,
                    retry_at: None,
                    written_version: u64::MAX,
                },
            );
            added = true;
            if offset != size {
                self.enqueue(*key);
            }
        }
        self.dispatch();
        (found, added)
    }

    /// The second half of a scan: known files not found are removed, or moved out of `paths`.
    fn scan_missing(&mut self, found: &Found, added: bool) {
        for (key, e) in &mut self.entries {
            if found.contains_key(key) || e.file.removed.load(Ordering::Acquire) {
                continue;
            }
            let still = std::fs::metadata(e.file.path()).is_ok_and(|m| FileKey::of(&m) == *key);
            if still && e.file.phase() != Phase::Removed {
                // Excluded now or briefly invisible; it is not gone.
                continue;
            }
            e.file.removed.store(true, Ordering::Release);
            if e.harvesting {
                e.file.wake.notify_one();
            } else {
                e.file.set_phase(Phase::Removed);
            }
        }
        if added {
            self.publish_table();
        }
        self.dispatch();
    }

    fn enqueue(&mut self, key: FileKey) {
        if let Some(e) = self.entries.get_mut(&key)
            && !e.queued
            && !e.harvesting
        {
            e.queued = true;
            e.file.set_phase(Phase::Waiting);
            self.queue.push_back(key);
        }
    }

    fn dispatch(&mut self) {
        let limit = self.scan.harvester_limit;
        while limit == 0 || self.running < limit {
            let Some(key) = self.queue.pop_front() else {
                break;
            };
            let Some(e) = self.entries.get_mut(&key) else {
                continue;
            };
            e.queued = false;
            if e.harvesting {
                continue;
            }
            e.harvesting = true;
            e.file.track();
            self.active.insert(key);
            e.file.renamed.store(false, Ordering::Release);
            self.running += 1;
            self.meters.open.inc_by(1);
            self.meters.running.inc_by(1);
            self.meters.started.inc();
            let ctx = self.hctx.clone();
            let file = e.file.clone();
            self.tasks.spawn(async move {
                let end = harvester::run(&ctx, &file).await;
                (key, end)
            });
        }
        let was = self.hctx.waiting.swap(self.queue.len(), Ordering::AcqRel);
        if was == 0 && !self.queue.is_empty() {
            // Idle readers may be waiting without a timer: ask them to give up their slots.
            self.hctx.slot_wanted.notify_waiters();
        }
    }

    fn reader_ended(&mut self, key: FileKey, end: End) {
        self.running = self.running.saturating_sub(1);
        self.meters.open.inc_by(-1);
        self.meters.running.inc_by(-1);
        self.meters.closed.inc();
        let Some(e) = self.entries.get_mut(&key) else {
            return;
        };
        e.harvesting = false;
        let removed = e.file.removed.load(Ordering::Acquire);
        e.file.set_phase(if removed {
            Phase::Removed
        } else {
            Phase::Closed
        });
        tracing::debug!(input = %self.id, path = %e.file.path().display(), reason = ?end, "file reader closed");
        match end {
            End::Error(msg) => {
                tracing::warn!(input = %self.id, path = %e.file.path().display(), error = %msg, "cannot read file; will retry at the next scan");
                e.retry_at = Some(Instant::now() + self.scan.check_interval);
            }
            End::Gone => {}
            End::Shutdown => {}
            _ => {
                if !removed
                    && let Ok(m) = std::fs::metadata(e.file.path())
                    && FileKey::of(&m) == key
                {
                    e.file.size.store(m.len(), Ordering::Release);
                    if m.len() != e.file.read_offset.load(Ordering::Acquire) {
                        self.enqueue(key);
                    }
                }
            }
        }
    }

    /// Every `registry.flush`: saves what moved since the last commit, in one write + fsync.
    fn commit(&mut self) {
        self.collect_active();
        self.write_pending();
    }

    /// Queues a record for every active file whose acknowledged offset moved, and forgets the
    /// files that settled (nothing in flight): their offset cannot move any more until their
    /// reader publishes again, which hands them back (`activated`).
    fn collect_active(&mut self) {
        self.active
            .extend(std::mem::take(&mut *lock(&self.hctx.activated)));
        let mut settled: Vec<FileKey> = Vec::new();
        for key in &self.active {
            let Some(e) = self.entries.get_mut(key) else {
                settled.push(*key);
                continue;
            };
            // Untracked before looking for events in flight: a reader that publishes after
            // the look hands the file back (see `FileShared::track`).
            e.file.untrack();
            // Looked at before the offset is read: an ack that lands in between is then
            // included in the offset, never lost by settling too early.
            let quiet = e.file.unacked_events() == 0;
            if !quiet {
                e.file.track();
            }
            let acked = e.file.refresh_acked();
            if let Some(r) = changed_record(&self.id, *key, e, acked) {
                self.pending.push(r);
            }
            if quiet {
                settled.push(*key);
            }
        }
        for key in &settled {
            self.active.remove(key);
        }
    }

    /// Writes the queued records with one append and one fsync, or rewrites the file whole
    /// (compaction) when it would hold many stale records or the last write failed.
    fn write_pending(&mut self) {
        if self.pending.is_empty() && !self.rewrite {
            return;
        }
        let result = if self.rewrite
            || self
                .store
                .wants_compaction(self.pending.len(), self.entries.len())
        {
            // The entries' `written` state already holds every queued record, and a rewrite is
            // due anyway: appending first would only write (and fsync) the records twice. This
            // is what happens when 100k removed files are cleaned at start-up.
            self.pending.clear();
            let live = self.live_records();
            self.store.compact(live.iter())
        } else {
            let r = self.store.append(&self.pending);
            self.pending.clear();
            r
        };
        // A burst (10,000 files registered at once) should not pin its records' room.
        self.pending.shrink_to(1024);
        match result {
            Ok(()) => {
                self.meters.writes.inc();
                if std::mem::replace(&mut self.rewrite, false) {
                    tracing::info!(input = %self.id, file = %self.store.path().display(), "registry written again after a failure");
                }
            }
            Err(e) => {
                self.meters.write_failures.inc();
                // Logged once per failure streak; the commit is retried every interval.
                if !std::mem::replace(&mut self.rewrite, true) {
                    tracing::error!(input = %self.id, file = %self.store.path().display(), error = %e, "cannot write the registry; retrying at every commit, and rewriting the file whole once it works; until then a crash repeats more lines");
                } else {
                    tracing::debug!(input = %self.id, error = %e, "registry write failed again");
                }
            }
        }
    }

    /// Once a second: every entry's state (renames, removals, offsets) queued for the next
    /// commit, cleaning, deleting, gauges.
    fn housekeeping(&mut self) {
        let mut records: Vec<Record> = Vec::new();
        let mut drop_keys: Vec<FileKey> = Vec::new();
        let mut unacked_bytes: u64 = 0;
        let now = Instant::now();
        let now_unix = unix(SystemTime::now());
        for (key, e) in &mut self.entries {
            let acked = e.file.refresh_acked();
            let size = e.file.size.load(Ordering::Acquire);
            unacked_bytes += size.saturating_sub(acked);
            let removed = e.file.removed.load(Ordering::Acquire);
            let settled = !e.harvesting && !e.queued && e.file.unacked_events() == 0;
            if settled && removed && self.scan.clean_removed {
                drop_keys.push(*key);
                continue;
            }
            if settled
                && let Some(ci) = self.scan.clean_inactive
                && now_unix - e.changed > ci.as_secs() as i64
            {
                drop_keys.push(*key);
                continue;
            }
            if let Some(grace) = self.scan.delete {
                let shipped = settled
                    && !removed
                    && acked == size
                    && e.file.read_offset.load(Ordering::Acquire) == size;
                if !shipped {
                    e.shipped_since = None;
                } else if e.shipped_since.is_none() {
                    e.shipped_since = Some(now);
                } else if e
                    .shipped_since
                    .is_some_and(|t| now.duration_since(t) >= grace)
                {
                    let path = e.file.path();
                    match std::fs::metadata(&path) {
                        Ok(m) if FileKey::of(&m) == *key && m.len() == size => {
                            match std::fs::remove_file(&path) {
                                Ok(()) => {
                                    tracing::info!(input = %self.id, path = %path.display(), size, "deleted file: read to its end and every event acknowledged");
                                    e.file.removed.store(true, Ordering::Release);
                                    e.file.set_phase(Phase::Removed);
                                }
                                Err(err) => {
                                    tracing::warn!(input = %self.id, path = %path.display(), error = %err, "cannot delete shipped file");
                                    e.shipped_since = None;
                                }
                            }
                        }
                        _ => e.shipped_since = None,
                    }
                }
            }
            if let Some(r) = changed_record(&self.id, *key, e, acked) {
                records.push(r);
            }
        }
        for key in &drop_keys {
            self.active.remove(key);
            if let Some(e) = self.entries.remove(key) {
                tracing::debug!(input = %self.id, path = %e.file.path().display(), "file state cleaned");
                if e.written.is_some() {
                    records.push(Record {
                        input: self.id.to_string(),
                        dev: key.dev,
                        ino: key.ino,
                        deleted: true,
                        path: String::new(),
                        offset: 0,
                        size: 0,
                        fp_len: 0,
                        fp: 0,
                        phase: Phase::Removed,
                        changed: 0,
                        created: None,
                    });
                }
            }
        }
        if !drop_keys.is_empty() {
            self.publish_table();
        }
        // Written by the next commit, within `registry.flush`, together with the offsets of the
        // files being read: still one fsync per interval.
        self.pending.append(&mut records);
        let known = self.entries.len() as i64;
        self.meters.known.add(known - self.known_reported);
        self.known_reported = known;
        let unacked = unacked_bytes.min(i64::MAX as u64) as i64;
        self.meters.unacked.add(unacked - self.unacked_reported);
        self.unacked_reported = unacked;
    }

    fn live_records(&self) -> Vec<Record> {
        self.entries
            .iter()
            .filter_map(|(key, e)| {
                let (offset, path, phase, fp) = e.written.as_ref()?;
                Some(record(&self.id, *key, e, *offset, path, *phase, *fp))
            })
            .collect()
    }

    /// Stops the readers, waits (up to `shutdown_timeout`) for acknowledgements, saves state.
    async fn shutdown(&mut self) {
        for e in self.entries.values() {
            e.file.wake.notify_one();
        }
        while let Some(res) = self.tasks.join_next().await {
            if let Ok((key, end)) = res {
                self.reader_ended(key, end);
            }
        }
        let deadline = Instant::now() + self.shutdown_timeout;
        while Instant::now() < deadline
            && self.entries.values().any(|e| e.file.unacked_events() > 0)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Queued files will not be read now: do not let them be counted as waiting.
        self.queue.clear();
        for e in self.entries.values_mut() {
            e.queued = false;
        }
        self.housekeeping();
        self.commit();
        self.meters.known.add(-self.known_reported);
        self.meters.unacked.add(-self.unacked_reported);
        self.known_reported = 0;
        self.unacked_reported = 0;
        tracing::debug!(input = %self.id, files = self.entries.len(), "file input stopped; registry saved");
    }
}

/// The record to save for `e`, whose acknowledged offset is `acked`, if the registry's copy is
/// out of date; `e.written` then becomes that record. `acked` must come from the file's
/// acknowledgement chain: only delivered offsets are ever saved.
fn changed_record(input: &str, key: FileKey, e: &mut Entry, acked: u64) -> Option<Record> {
    let phase = if e.file.phase() == Phase::Removed {
        Phase::Removed
    } else {
        Phase::Closed
    };
    // The path and fingerprint are compared through the file's version counter: no copy per
    // file per pass.
    let version = e.file.version.load(Ordering::Acquire);
    let unchanged = e
        .written
        .as_ref()
        .is_some_and(|(o, _, ph, _)| *o == acked && *ph == phase && version == e.written_version);
    if unchanged {
        return None;
    }
    let path = e.file.path();
    let fp = e.file.fingerprint();
    e.written_version = version;
    let r = record(input, key, e, acked, &path, phase, fp);
    e.written = Some((acked, path, phase, fp));
    Some(r)
}

/// The registry record of `e` saved at `offset` under `path`, `phase` and `fp`.
fn record(
    input: &str,
    key: FileKey,
    e: &Entry,
    offset: u64,
    path: &std::path::Path,
    phase: Phase,
    fp: Fingerprint,
) -> Record {
    Record {
        input: input.to_owned(),
        dev: key.dev,
        ino: key.ino,
        deleted: false,
        path: path.to_string_lossy().into_owned(),
        offset,
        size: e.file.size.load(Ordering::Acquire),
        fp_len: fp.len,
        fp: fp.hash,
        phase,
        changed: e.changed,
        created: None,
    }
}

trait GaugeExt {
    fn inc_by(&self, n: i64);
}

impl GaugeExt for Gauge {
    fn inc_by(&self, n: i64) {
        self.add(n)
    }
}
