//! The prospector: finds files, tells old from new, runs readers, keeps the registry.
//!
//! One task per input. It owns the table of known files (by device + inode) and is the only
//! writer of the registry. Readers run as tasks of their own; the prospector starts them (within
//! `harvester_limit`, first come first served), learns when they end, cleans old entries and
//! deletes shipped files when asked to.
//!
//! # Saving acknowledged offsets (group commit)
//!
//! When a file's acknowledged prefix advances, the ack path pushes the file's key into the
//! input's [`CommitSet`]. Every `registry.flush` (100ms by default) the prospector drains the
//! set, reads those files' committed offsets and saves the ones that moved with ONE append and
//! ONE fsync, on the registry writer's thread ([`crate::writer`]). So the cost is at most one
//! fsync per interval per input while acknowledgements move, none while nothing moves, whatever
//! the number of files; a crash repeats about one interval of acknowledged lines; 100k idle
//! entries, or 10k open readers with nothing to read, cost nothing here. The once-a-second
//! housekeeping pass over every entry catches renames, removals and cleaning, and queues its
//! records for the same commit (with the offset last saved: offsets move only through the set).
//!
//! # Blocking work
//!
//! Registry writes and fsyncs run on the writer thread; glob scans, the stats of files a scan
//! did not find, and deletions run on Tokio's blocking pool. The prospector's task only decides.
//!
//! # Dead readers
//!
//! A reader that panics is seen through its task's `JoinError`: logged (the panic hook names it
//! `file/<input>:<path>`), counted (`skiff.input.file.reader_restarts`), and its file read again
//! from its committed offset in a new acknowledgement generation, after a backoff (1s doubling
//! to 60s while it keeps dying). Its events already in the queue are still delivered; those it
//! held are read again: at-least-once.

use std::collections::{HashMap, VecDeque};
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
use crate::registry::Record;
use crate::state::{CommitSet, FileShared, Phase};
use crate::watch::{Change, Watch};
use crate::writer::{Done, Job, Writer};

/// How long the stopping input waits for its last registry write, whatever `shutdown_timeout`
/// is (its default, 0, must not lose the last offsets): a write takes milliseconds, a disk that
/// does not answer in this time is stuck. It fits in the 5 s the topology gives an input beyond
/// `shutdown_timeout` to stop.
const LAST_WRITE_LIMIT: Duration = Duration::from_secs(3);

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

/// The prospector's view of one known file.
pub(crate) struct Entry {
    pub(crate) file: Arc<FileShared>,
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
    /// The reader died (a panic): read the file again from its committed offset at this time.
    reopen_at: Option<Instant>,
    /// Panics of this file's readers in a row (the backoff before reopening).
    panics: u32,
}

impl Entry {
    /// A file the registry knows, at its saved offset.
    pub(crate) fn loaded(key: FileKey, r: &Record, commits: &Arc<CommitSet>) -> Entry {
        let file = FileShared::new(
            key,
            PathBuf::from(&r.path),
            r.fingerprint(),
            r.size,
            r.offset,
            commits.clone(),
        );
        file.set_phase(if r.phase == Phase::Removed {
            Phase::Removed
        } else {
            Phase::Closed
        });
        Entry {
            written: Some((
                r.offset,
                PathBuf::from(&r.path),
                file.phase(),
                r.fingerprint(),
            )),
            written_version: file.version.load(Ordering::Acquire),
            ..Entry::found(file, r.changed)
        }
    }

    /// A file a scan found that the registry does not know yet (nothing written).
    pub(crate) fn found(file: Arc<FileShared>, changed: i64) -> Entry {
        Entry {
            file,
            harvesting: false,
            queued: false,
            changed,
            written: None,
            written_version: u64::MAX,
            shipped_since: None,
            retry_at: None,
            reopen_at: None,
            panics: 0,
        }
    }
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
    /// Readers that died (panicked) and whose file was reopened.
    pub reader_restarts: Counter,
}

pub(crate) type FileTable = Arc<Mutex<HashMap<FileKey, Arc<FileShared>>>>;

pub(crate) struct Prospector {
    pub id: Arc<str>,
    pub scan: Scan,
    pub hctx: Arc<harvester::Ctx>,
    writer: Writer,
    /// When the registry was first created (unix seconds; `ignore_inactive: since_first_start`).
    created: i64,
    pub table: FileTable,
    pub meters: Meters,
    pub shutdown_timeout: Duration,
    entries: HashMap<FileKey, Entry>,
    by_path: HashMap<PathBuf, FileKey>,
    queue: VecDeque<FileKey>,
    running: usize,
    tasks: JoinSet<(FileKey, End)>,
    /// The file each reader task reads, to know which file a panicked task was reading.
    task_files: HashMap<tokio::task::Id, FileKey>,
    /// What a scan needs, shared with the blocking task that runs it.
    discover: Arc<Discover>,
    /// A scan is running on the blocking pool.
    scanning: bool,
    /// Whether the scan in progress added files (its first half's result, for its second).
    scan_added: bool,
    /// Whether the first scan's second half (missing files) was processed.
    first_scan_settled: bool,
    /// Why the input cannot go on (its registry writer died).
    failed: Option<String>,
    first_scan: bool,
    started: SystemTime,
    known_reported: i64,
    unacked_reported: i64,
    /// Files whose committed offset moved since the last commit (pushed by the ack path).
    commits: Arc<CommitSet>,
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

/// What a scan needs of the settings, shared with the blocking task that runs it.
struct Discover {
    id: Arc<str>,
    patterns: Vec<String>,
    recursive_glob: bool,
    exclude: Option<RegexSet>,
    include: Option<RegexSet>,
    symlinks: bool,
}

/// What a scan running on the blocking pool reports.
enum ScanResult {
    /// The glob's result, sent as soon as it is known: new files are read at once.
    Found(Arc<Found>),
    /// Then the known files the patterns did not match, and whether their path still leads to
    /// them. With 100k entries of gone files these stats take ~150 ms: readers do not wait for
    /// them (start-up to the first line was twice as long when they did).
    Missing(Arc<Found>, Vec<(FileKey, bool)>),
}

impl Prospector {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: Arc<str>,
        scan: Scan,
        hctx: Arc<harvester::Ctx>,
        (writer, created): (Writer, i64),
        loaded: HashMap<FileKey, Record>,
        table: FileTable,
        meters: Meters,
        shutdown_timeout: Duration,
    ) -> Self {
        let commits = Arc::new(CommitSet::default());
        let mut entries = HashMap::with_capacity(loaded.len());
        for (key, r) in loaded {
            entries.insert(key, Entry::loaded(key, &r, &commits));
        }
        let discover = Arc::new(Discover {
            id: id.clone(),
            patterns: scan.patterns.clone(),
            recursive_glob: scan.recursive_glob,
            exclude: scan.exclude.clone(),
            include: scan.include.clone(),
            symlinks: scan.symlinks,
        });
        Prospector {
            id,
            scan,
            hctx,
            writer,
            created,
            table,
            meters,
            shutdown_timeout,
            entries,
            by_path: HashMap::new(),
            queue: VecDeque::new(),
            running: 0,
            tasks: JoinSet::new(),
            task_files: HashMap::new(),
            discover,
            scanning: false,
            scan_added: false,
            first_scan_settled: false,
            failed: None,
            first_scan: true,
            started: SystemTime::now(),
            known_reported: 0,
            unacked_reported: 0,
            commits,
            pending: Vec::new(),
            rewrite: false,
        }
    }

    /// Runs until shutdown.
    pub(crate) async fn run(mut self) -> anyhow::Result<()> {
        let (mut watch, mut changes) = Watch::start(&self.scan.patterns);
        self.publish_table();
        let scan_started = Instant::now();
        let (scan_tx, mut scan_rx) = tokio::sync::mpsc::channel::<ScanResult>(1);
        self.start_scan(&mut watch, &scan_tx);
        if let Some(r) = scan_rx.recv().await {
            self.scan_done(r);
        }
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
            if self.failed.is_some() {
                break;
            }
            let scanning = self.scanning;
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = scan_tick.tick(), if !scanning => self.start_scan(&mut watch, &scan_tx),
                _ = soon, if !scanning => {
                    scan_soon = None;
                    self.start_scan(&mut watch, &scan_tx);
                }
                Some(r) = scan_rx.recv() => self.scan_done(r),
                _ = commit_tick.tick() => self.commit(),
                done = self.writer.done() => self.write_done(done),
                _ = house_tick.tick() => {
                    if watch.overflow.swap(false, Ordering::AcqRel) {
                        if !scanning {
                            self.start_scan(&mut watch, &scan_tx);
                        }
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
                Some(res) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    match res {
                        Ok((id, (key, end))) => {
                            self.task_files.remove(&id);
                            self.reader_ended(key, end);
                        }
                        Err(e) => self.reader_died(e),
                    }
                    self.dispatch();
                }
            }
        }
        self.shutdown().await;
        match self.failed.take() {
            Some(reason) => Err(anyhow::anyhow!(reason)),
            None => Ok(()),
        }
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
        // No stat here (it would run on the runtime once per notification): the reader checks
        // the file's identity, size and head when it opens it.
        self.enqueue(key);
        self.dispatch();
        true
    }

    /// Starts a scan on the blocking pool (globs and stats of many files must not stall the
    /// runtime); its result comes back to `scan_done`.
    fn start_scan(&mut self, watch: &mut Watch, done: &tokio::sync::mpsc::Sender<ScanResult>) {
        watch.refresh();
        self.hctx
            .notified
            .store(watch.complete(), Ordering::Release);
        self.scanning = true;
        // Files that may be missing are looked up after the glob, on the same blocking task:
        // a cheap handle per known file (no path copies), checked there.
        let known: Vec<Arc<FileShared>> = self
            .entries
            .values()
            .filter(|e| !e.file.removed.load(Ordering::Acquire))
            .map(|e| e.file.clone())
            .collect();
        let spec = self.discover.clone();
        let done = done.clone();
        tokio::task::spawn_blocking(move || {
            let found = Arc::new(discover(&spec));
            // The receiver is gone only when the input stopped.
            if done
                .blocking_send(ScanResult::Found(found.clone()))
                .is_err()
            {
                return;
            }
            let missing = known
                .iter()
                .filter(|f| !found.contains_key(&f.key))
                .map(|f| {
                    let still = std::fs::metadata(f.path()).is_ok_and(|m| FileKey::of(&m) == f.key);
                    (f.key, still)
                })
                .collect();
            let _ = done.blocking_send(ScanResult::Missing(found, missing));
        });
    }

    /// A scan's result, in two messages: new files registered and readers started, then
    /// missing files marked (the scan ends there).
    fn scan_done(&mut self, r: ScanResult) {
        match r {
            ScanResult::Found(found) => self.scan_added = self.scan_found(&found),
            ScanResult::Missing(found, missing) => {
                self.scanning = false;
                let added = std::mem::take(&mut self.scan_added);
                self.scan_missing(&found, &missing, added);
                if !self.first_scan_settled {
                    // The housekeeping pass at start ran before this half came back: clean
                    // what the first scan found gone now rather than a second later.
                    self.first_scan_settled = true;
                    self.housekeeping();
                }
            }
        }
    }

    /// The first half of a scan: new files registered, readers started. Returns whether new
    /// files were added.
    fn scan_found(&mut self, found: &Found) -> bool {
        let first = std::mem::replace(&mut self.first_scan, false);
        let since = match self.scan.ignore_inactive.as_deref() {
            Some("since_first_start") => Some(self.created),
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
        for (key, seen) in found {
            let (path, size) = (&seen.path, seen.size);
            let changed = seen.modified.map_or(0, unix);
            self.by_path.insert(path.clone(), *key);
            if copies.contains_key(key) && self.entries.remove(key).is_some() {
                // A deleted file's inode, reused by a rotated copy: a new file from here on. A
                // key of it still in the commit set reads the new entry's offset, never the old.
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
            let file = FileShared::new(*key, path.clone(), fp, size, offset, self.commits.clone());
            self.entries.insert(*key, Entry::found(file, changed));
            added = true;
            if offset != size {
                self.enqueue(*key);
            }
        }
        self.dispatch();
        added
    }

    /// The second half of a scan: known files not found are removed, or moved out of `paths`.
    fn scan_missing(&mut self, found: &Found, missing: &[(FileKey, bool)], added: bool) {
        for &(key, still) in missing {
            let Some(e) = self.entries.get_mut(&key) else {
                continue;
            };
            if found.contains_key(&key) || e.file.removed.load(Ordering::Acquire) {
                continue;
            }
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
            // A reader died on this file: it is reopened after its backoff, not earlier.
            && e.reopen_at.is_none()
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
            e.file.renamed.store(false, Ordering::Release);
            self.running += 1;
            self.meters.open.inc_by(1);
            self.meters.running.inc_by(1);
            self.meters.started.inc();
            let ctx = self.hctx.clone();
            let file = e.file.clone();
            // Named: the panic hook logs a panic in this reader with the file it was reading.
            let name = format!("file/{}:{}", self.id, file.path().display());
            let task = self.tasks.spawn(harvester::task(name, ctx, file));
            self.task_files.insert(task.id(), key);
        }
        let was = self.hctx.waiting.swap(self.queue.len(), Ordering::AcqRel);
        if was == 0 && !self.queue.is_empty() {
            // Idle readers may be waiting without a timer: ask them to give up their slots.
            self.hctx.slot_wanted.notify_waiters();
        }
    }

    fn reader_gone(&mut self) {
        self.running = self.running.saturating_sub(1);
        self.meters.open.inc_by(-1);
        self.meters.running.inc_by(-1);
        self.meters.closed.inc();
    }

    /// A reader task failed (it panicked): its file is read again from its committed offset in
    /// a new acknowledgement generation, after a backoff. Its events already in the queue are
    /// still delivered (their acks no longer move the offset); those it held when it died are
    /// read again. Nothing is lost; lines after the committed offset may be sent twice.
    fn reader_died(&mut self, err: tokio::task::JoinError) {
        let task = err.id();
        let message = skiff_pipeline::supervise::join_error_message(err);
        let Some(key) = self.task_files.remove(&task) else {
            tracing::error!(input = %self.id, error = %message, "an unknown file reader task failed");
            return;
        };
        self.reader_gone();
        self.meters.reader_restarts.inc();
        let Some(e) = self.entries.get_mut(&key) else {
            return;
        };
        e.harvesting = false;
        e.panics = e.panics.saturating_add(1);
        let backoff = Duration::from_secs(1 << e.panics.min(7).saturating_sub(1))
            .min(Duration::from_secs(60));
        e.reopen_at = Some(Instant::now() + backoff);
        e.file.set_phase(Phase::Closed);
        tracing::error!(input = %self.id, path = %e.file.path().display(), error = %message, offset = e.file.committed(), retry_in_s = backoff.as_secs(),
            "file reader died; reading the file again from its acknowledged offset after the backoff (lines after it may be sent twice)");
    }

    /// The backoff after a reader died is over: the file is read again from its committed
    /// offset as it is now (the dead reader's events in the queue moved it meanwhile, up to the
    /// first one it held when it died), in a new generation so that those it held, never to
    /// be acknowledged, do not hold the offset back.
    fn reopen(&mut self, key: FileKey) {
        let Some(e) = self.entries.get_mut(&key) else {
            return;
        };
        e.reopen_at = None;
        let committed = e.file.committed();
        e.file.new_generation(committed);
        e.file.read_offset.store(committed, Ordering::Release);
        tracing::info!(input = %self.id, path = %e.file.path().display(), offset = committed, "reading the file again after its reader died");
        self.enqueue(key);
    }

    fn reader_ended(&mut self, key: FileKey, end: End) {
        self.reader_gone();
        let Some(e) = self.entries.get_mut(&key) else {
            return;
        };
        e.harvesting = false;
        e.panics = 0;
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

    /// Every `registry.flush`: saves what moved since the last commit, in one write + fsync
    /// on the writer thread. While a write is in flight, records wait for the next one.
    fn commit(&mut self) {
        self.collect_moved();
        if !self.writer.busy() {
            self.write_pending();
        }
    }

    /// Queues a record for every file the ack path marked whose committed offset moved.
    fn collect_moved(&mut self) {
        collect_moved(
            &self.id,
            &self.commits,
            &mut self.entries,
            &mut self.pending,
        );
    }

    /// Sends the queued records to the writer: one append and one fsync, or a rewrite of the
    /// file whole (compaction) when it would hold many stale records or the last write failed.
    fn write_pending(&mut self) {
        if self.pending.is_empty() && !self.rewrite {
            return;
        }
        if self.rewrite {
            self.send_compaction();
            return;
        }
        let records = std::mem::take(&mut self.pending);
        let live = self.entries.len();
        let sent = self.writer.send(Job::Append { records, live });
        self.writer_alive(sent);
    }

    /// A registry writer that is gone cannot be replaced (it owned the file): the input stops
    /// with the reason rather than run on without saving offsets.
    fn writer_alive(&mut self, sent: bool) {
        if !sent && self.failed.is_none() {
            self.failed = Some(format!(
                "the registry writer of {} died; offsets can no longer be saved",
                self.writer.path().display()
            ));
        }
    }

    /// The entries' `written` state already holds every queued record: a rewrite needs only
    /// those. (This is what happens when 100k removed files are cleaned at start-up.)
    fn send_compaction(&mut self) {
        self.pending = Vec::new();
        let live = live_records(&self.id, &self.entries);
        let sent = self.writer.send(Job::Compact(live));
        self.writer_alive(sent);
    }

    /// The writer finished a job.
    fn write_done(&mut self, done: Done) {
        match done {
            Done::Written => {
                self.meters.writes.inc();
                if std::mem::replace(&mut self.rewrite, false) {
                    tracing::info!(input = %self.id, file = %self.writer.path().display(), "registry written again after a failure");
                }
            }
            Done::CompactionWanted => self.send_compaction(),
            Done::Failed(e) => {
                self.meters.write_failures.inc();
                // The file may end in a torn record and a failed fsync may have dropped pages:
                // the next commit rewrites it whole. Logged once per failure streak; the commit
                // is retried every interval.
                if !std::mem::replace(&mut self.rewrite, true) {
                    tracing::error!(input = %self.id, file = %self.writer.path().display(), error = %e, "cannot write the registry; retrying at every commit, and rewriting the file whole once it works; until then a crash repeats more lines");
                } else {
                    tracing::debug!(input = %self.id, error = %e, "registry write failed again");
                }
            }
        }
    }

    /// Once a second: every entry's state (renames, removals, phases) queued for the next
    /// commit, cleaning, deleting, reopening files whose reader died, gauges.
    fn housekeeping(&mut self) {
        let mut records: Vec<Record> = Vec::new();
        let mut drop_keys: Vec<FileKey> = Vec::new();
        let mut reopen: Vec<FileKey> = Vec::new();
        let mut unacked_bytes: u64 = 0;
        let now = Instant::now();
        let now_unix = unix(SystemTime::now());
        for (key, e) in &mut self.entries {
            if e.reopen_at.is_some_and(|t| t <= now) {
                reopen.push(*key);
            }
            let acked = e.file.committed();
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
                    // The grace period starts again: a failed deletion is retried after it.
                    e.shipped_since = None;
                    let (file, id) = (e.file.clone(), self.id.clone());
                    tokio::task::spawn_blocking(move || delete_shipped(&id, &file, size));
                }
            }
            // Offsets move only through the commit set: the offset last saved.
            let saved = e.written.as_ref().map_or(acked, |w| w.0);
            if let Some(r) = changed_record(&self.id, *key, e, saved) {
                records.push(r);
            }
        }
        for key in &drop_keys {
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
        if !reopen.is_empty() {
            for key in reopen {
                self.reopen(key);
            }
            self.dispatch();
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

    /// Waits for the write in flight, writes what is left, waits for that (a compaction may
    /// follow), then stops the writer thread. Bounded by `deadline`: a disk that does not
    /// answer must not hold skiff forever (the offsets not saved are read again at the next
    /// start: lines repeated, none lost).
    async fn last_write(&mut self, deadline: tokio::time::Instant) {
        let finish = async {
            let mut sent = false;
            loop {
                if self.writer.busy() {
                    let d = self.writer.done().await;
                    self.write_done(d);
                } else if !sent {
                    sent = true;
                    self.write_pending();
                } else {
                    break;
                }
            }
        };
        if tokio::time::timeout_at(deadline, finish).await.is_err() {
            tracing::error!(input = %self.id, file = %self.writer.path().display(),
                "the last registry write did not finish in time; the next start repeats the lines since the last saved offsets");
            return;
        }
        self.writer.close().await;
    }

    /// Stops the readers, waits (up to `shutdown_timeout`) for acknowledgements, saves state.
    async fn shutdown(&mut self) {
        for e in self.entries.values() {
            e.file.wake.notify_one();
        }
        while let Some(res) = self.tasks.join_next_with_id().await {
            match res {
                Ok((id, (key, end))) => {
                    self.task_files.remove(&id);
                    self.reader_ended(key, end);
                }
                Err(e) => self.reader_died(e),
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
        self.collect_moved();
        self.last_write(tokio::time::Instant::now() + LAST_WRITE_LIMIT)
            .await;
        self.meters.known.add(-self.known_reported);
        self.meters.unacked.add(-self.unacked_reported);
        self.known_reported = 0;
        self.unacked_reported = 0;
        tracing::debug!(input = %self.id, files = self.entries.len(), "file input stopped; registry saved");
    }
}

/// Queues in `out` a record for every file in `commits` (drained) whose committed offset
/// moved since it was last saved: the registry commit.
pub(crate) fn collect_moved(
    input: &str,
    commits: &CommitSet,
    entries: &mut HashMap<FileKey, Entry>,
    out: &mut Vec<Record>,
) {
    for key in commits.drain() {
        let Some(e) = entries.get_mut(&key) else {
            continue;
        };
        // Read after the drain: a push happens after its new position is visible.
        let committed = e.file.committed();
        if let Some(r) = changed_record(input, key, e, committed) {
            out.push(r);
        }
    }
}

/// What a rewrite of the registry holds: every entry as last saved.
pub(crate) fn live_records(input: &str, entries: &HashMap<FileKey, Entry>) -> Vec<Record> {
    entries
        .iter()
        .filter_map(|(key, e)| {
            let (offset, path, phase, fp) = e.written.as_ref()?;
            Some(record(input, *key, e, *offset, path, *phase, *fp))
        })
        .collect()
}

/// Deletes a file read to its end with every event acknowledged (`delete.*`), if it is still
/// that file at that size. Blocking: runs on the blocking pool.
fn delete_shipped(input: &str, file: &FileShared, size: u64) {
    let path = file.path();
    match std::fs::metadata(&path) {
        Ok(m) if FileKey::of(&m) == file.key && m.len() == size => {
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    tracing::info!(input = %input, path = %path.display(), size, "deleted file: read to its end and every event acknowledged");
                    file.removed.store(true, Ordering::Release);
                    file.set_phase(Phase::Removed);
                }
                Err(err) => {
                    tracing::warn!(input = %input, path = %path.display(), error = %err, "cannot delete shipped file");
                }
            }
        }
        _ => {}
    }
}

/// Finds the files the patterns match now (blocking: globs and stats).
fn discover(spec: &Discover) -> Found {
    let mut found = Found::new();
    let opts = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    for pattern in &spec.patterns {
        let pat = if spec.recursive_glob {
            pattern.clone()
        } else {
            pattern.replace("**", "*")
        };
        let paths = match glob::glob_with(&pat, opts) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(input = %spec.id, pattern = %pattern, error = %e, "invalid glob pattern");
                continue;
            }
        };
        for path in paths.flatten() {
            let text = path.to_string_lossy();
            if spec.exclude.as_ref().is_some_and(|r| r.is_match(&text)) {
                continue;
            }
            if spec.include.as_ref().is_some_and(|r| !r.is_match(&text)) {
                continue;
            }
            let Ok(lmeta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let is_link = lmeta.file_type().is_symlink();
            let meta = if is_link {
                if !spec.symlinks {
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

/// The record to save for `e`, whose acknowledged offset is `acked`, if the registry's copy is
/// out of date; `e.written` then becomes that record. `acked` must be the file's committed
/// offset (or the one last saved): only delivered offsets are ever saved.
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
