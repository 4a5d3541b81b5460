//! The registry: where each file's acknowledged offset is kept across restarts.
//!
//! One file per input, `<path.data>/registry/filestream/<input id>.ndjson`, one JSON record per
//! line. Changes are appended and fsynced in groups (one write and one fsync per `registry.flush`
//! interval while acknowledgements move, and at shutdown); when the file would hold many more
//! records than there are live entries, it is rewritten instead to a temporary file, fsynced,
//! and renamed over the old one (atomic on POSIX), then the directory is fsynced.
//!
//! A crash can leave a torn last line; a disk problem or a hand edit can leave garbage. Loading
//! skips every line it cannot read, logs how many and which, keeps the rest, and rewrites the
//! file clean. Only acknowledged offsets are ever written, so a record can be old but never
//! ahead of delivery: the worst case after any damage is reading some lines again.
//!
//! # Versions (forward and backward compatible)
//!
//! Operators roll back. A registry written by a newer skiff must keep working with an older
//! one (it ships from the saved offsets, not from 0) and must come back intact when the newer
//! one returns. So the first record (the header) carries a `format` number ([`FORMAT`]; a
//! header without one is format 1, the layout before the field existed, read the same), and
//! loading keeps what it does not understand instead of dropping it:
//!
//! * fields it does not know on a file's record are kept and written back with every later
//!   record of that file (and at compaction);
//! * records it does not understand (an unknown `kind`, or known fields of another type) are
//!   kept verbatim, in order, and written back at every compaction (up to 16 MiB);
//! * lines that are not JSON objects (damage, a torn last line) cannot be kept in the live
//!   file; they stay in the backup.
//!
//! A newer file is rewritten (in this format) when it is opened; an older one at the next
//! compaction. Before the first rewrite of a file that would drop or change anything (damaged
//! lines, another format, records beyond the bound), the file is copied to
//! `<file>.v<format>.<unix seconds>.bak` and fsynced; the newest [`BACKUPS_KEPT`] are kept.
//! Routine compaction, which only drops records superseded by later ones, takes no backup.
//! The layout is described for operators in `docs/file-identity.md`.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::identity::{FileKey, Fingerprint};
use crate::state::Phase;

/// Where the registries of all filestream inputs live under `path.data`.
pub fn registry_dir(data: &Path) -> PathBuf {
    data.join("registry").join("filestream")
}

/// One line of the registry file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// The input id.
    pub input: String,
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// True for a removal record (the state was cleaned).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// Last known path.
    #[serde(default)]
    pub path: String,
    /// Acknowledged offset.
    #[serde(default)]
    pub offset: u64,
    /// Size when written.
    #[serde(default)]
    pub size: u64,
    /// Fingerprint: bytes covered.
    #[serde(default)]
    pub fp_len: u64,
    /// Fingerprint: hash.
    #[serde(default)]
    pub fp: u64,
    /// Phase when written.
    #[serde(default = "closed")]
    pub phase: Phase,
    /// Unix seconds of the last change of the file seen.
    #[serde(default)]
    pub changed: i64,
    /// Unix seconds when the input first created this registry (header record only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<i64>,
}

fn closed() -> Phase {
    Phase::Closed
}

impl Record {
    /// The file key.
    pub fn key(&self) -> FileKey {
        FileKey {
            dev: self.dev,
            ino: self.ino,
        }
    }

    /// The fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint {
            len: self.fp_len,
            hash: self.fp,
        }
    }

    fn is_header(&self) -> bool {
        self.created.is_some()
    }
}

/// The registry format this version writes (in the header record's `format` field). A file
/// whose header has no `format` is format 1 (written before the field existed); its records
/// read the same.
pub const FORMAT: u64 = 2;

/// Backups kept per registry file (the oldest beyond this are removed).
pub const BACKUPS_KEPT: usize = 3;

/// At most this many bytes of records this version does not understand are kept and written
/// back; the rest stay only in the backup (a newer version's records are small and few).
const UNKNOWN_MAX_BYTES: usize = 16 << 20;

/// The fields of a [`Record`]; anything else on a line was written by a newer skiff and is
/// kept as it is.
const KNOWN_FIELDS: &[&str] = &[
    "input", "dev", "ino", "deleted", "path", "offset", "size", "fp_len", "fp", "phase", "changed",
    "created",
];

/// What loading found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Live entries by key.
    pub entries: HashMap<FileKey, Record>,
    /// When the registry was first created (unix seconds).
    pub created: Option<i64>,
    /// Lines that could not be read at all (not JSON objects, or a torn last line). They are
    /// kept in the backup written before the file is rewritten.
    pub damaged: usize,
    /// The format of the file: 0 for a missing or empty file, 1 for a file without a
    /// `format` in its header (or without a header), else the header's.
    pub format: u64,
    /// Fields of live entries that this version does not know (written by a newer version),
    /// kept and written back with every later record of the same file.
    pub extras: HashMap<FileKey, Map<String, Value>>,
    /// Header fields this version does not know.
    pub header_extra: Map<String, Value>,
    /// Records this version does not understand (an unknown `kind`, or a known shape with
    /// fields of another type), verbatim and in order, duplicates removed.
    pub unknown: Vec<String>,
    /// Records not understood beyond [`UNKNOWN_MAX_BYTES`]: only in the backup.
    pub unknown_dropped: usize,
}

impl Loaded {
    /// Whether rewriting the file would drop or change something it holds (damaged lines,
    /// records beyond the bound, another format): a backup is taken first.
    pub fn needs_backup(&self) -> bool {
        self.format != 0 && (self.damaged > 0 || self.unknown_dropped > 0 || self.format != FORMAT)
    }
}

/// What one line of a registry file is.
enum Line {
    Header {
        created: Option<i64>,
        format: u64,
        extra: Map<String, Value>,
    },
    Record(Record, Map<String, Value>),
    Unknown,
    Damaged,
}

/// Reads one line. The common case (a record of this format) is one typed parse; anything
/// else is parsed as a JSON object and taken apart.
fn parse_line(line: &[u8]) -> Line {
    if let Ok(r) = serde_json::from_slice::<Record>(line) {
        return if r.is_header() {
            Line::Header {
                created: r.created,
                format: 1,
                extra: Map::new(),
            }
        } else {
            Line::Record(r, Map::new())
        };
    }
    let Ok(Value::Object(mut m)) = serde_json::from_slice::<Value>(line) else {
        return Line::Damaged;
    };
    if let Some(format) = m.remove("format") {
        let Some(format) = format.as_u64() else {
            return Line::Unknown;
        };
        let created = m.get("created").and_then(Value::as_i64);
        m.retain(|k, _| !KNOWN_FIELDS.contains(&k.as_str()));
        return Line::Header {
            created,
            format,
            extra: m,
        };
    }
    if m.get("kind").is_some_and(|k| k != "file") {
        return Line::Unknown;
    }
    let mut known = Map::new();
    for k in KNOWN_FIELDS {
        if let Some(v) = m.remove(*k) {
            known.insert((*k).to_owned(), v);
        }
    }
    match serde_json::from_value::<Record>(Value::Object(known)) {
        Ok(r) if !r.is_header() => Line::Record(r, m),
        _ => Line::Unknown,
    }
}

/// Reads a registry file; damaged lines are skipped and logged, and parts written by a newer
/// version are kept (see [`Loaded`]). A missing file is empty.
pub fn load(path: &Path) -> std::io::Result<Loaded> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::default()),
        Err(e) => return Err(e),
    };
    let mut out = Loaded::default();
    let mut bad_lines: Vec<usize> = Vec::new();
    let mut unknown_seen: HashSet<&[u8]> = HashSet::new();
    let mut unknown_bytes = 0usize;
    let torn = !data.is_empty() && !data.ends_with(b"\n");
    let n_lines = data.split(|b| *b == b'\n').count();
    let mut header_format = None;
    let mut any = false;
    for (i, line) in data.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        any = true;
        if torn && i + 1 == n_lines {
            bad_lines.push(i + 1);
            continue;
        }
        match parse_line(line) {
            Line::Header {
                created,
                format,
                extra,
            } => {
                out.created = out.created.or(created);
                header_format = header_format.or(Some(format));
                if out.header_extra.is_empty() {
                    out.header_extra = extra;
                }
            }
            Line::Record(r, _) if r.deleted => {
                out.extras.remove(&r.key());
                out.entries.remove(&r.key());
            }
            Line::Record(r, extra) => {
                if extra.is_empty() {
                    out.extras.remove(&r.key());
                } else {
                    out.extras.insert(r.key(), extra);
                }
                out.entries.insert(r.key(), r);
            }
            Line::Unknown => {
                if !unknown_seen.insert(line) {
                    continue;
                }
                // Valid JSON, hence UTF-8.
                let text = String::from_utf8_lossy(line).into_owned();
                if unknown_bytes + text.len() > UNKNOWN_MAX_BYTES {
                    out.unknown_dropped += 1;
                } else {
                    unknown_bytes += text.len() + 1;
                    out.unknown.push(text);
                }
            }
            Line::Damaged => bad_lines.push(i + 1),
        }
    }
    out.format = match header_format {
        Some(f) => f,
        None if any => 1,
        None => 0,
    };
    out.damaged = bad_lines.len();
    if !bad_lines.is_empty() {
        let shown: Vec<String> = bad_lines.iter().take(10).map(|n| n.to_string()).collect();
        tracing::warn!(
            file = %path.display(),
            skipped_lines = bad_lines.len(),
            lines = %shown.join(","),
            torn_last_line = torn,
            kept_entries = out.entries.len(),
            "registry file is damaged: skipped the lines that could not be read and kept the rest (the whole file is kept in a backup next to it); files whose state was lost are read again from the start or from an older offset"
        );
    }
    if !out.unknown.is_empty() || !out.extras.is_empty() || out.format > FORMAT {
        tracing::warn!(
            file = %path.display(),
            format = out.format,
            this_format = FORMAT,
            unknown_records = out.unknown.len() + out.unknown_dropped,
            entries_with_unknown_fields = out.extras.len(),
            "registry file was written by a newer skiff: reading from its saved offsets and keeping what this version does not understand"
        );
    }
    if out.unknown_dropped > 0 {
        tracing::warn!(file = %path.display(), records = out.unknown_dropped, "too many registry records not understood by this version: the rest are only kept in the backup");
    }
    Ok(out)
}

/// The registry file of one input, open for appending.
pub struct Store {
    path: PathBuf,
    file: std::fs::File,
    /// Records written since the last compaction.
    appended: usize,
    /// Unix seconds of the registry's creation.
    pub created: i64,
    /// Unknown fields per file, written back with each of its records.
    extras: HashMap<FileKey, Map<String, Value>>,
    /// Unknown header fields.
    header_extra: Map<String, Value>,
    /// Records not understood, written back at each compaction.
    unknown: Vec<String>,
    /// The format of the file as loaded, when the next rewrite must back it up first.
    backup_due: Option<u64>,
}

fn sanitize(id: &str) -> String {
    let mut s = String::with_capacity(id.len());
    for c in id.chars() {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
            s.push(c);
        } else {
            for b in c.to_string().bytes() {
                s.push_str(&format!("%{b:02X}"));
            }
        }
    }
    if s.starts_with('.') {
        s.insert_str(0, "%2E");
        s.remove(3);
    }
    s
}

/// The registry file of input `id` under `data`.
pub fn store_path(data: &Path, id: &str) -> PathBuf {
    registry_dir(data).join(format!("{}.ndjson", sanitize(id)))
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Store {
    /// Opens (creating) the registry of input `id` and loads it. A damaged file, or one of
    /// another format, is backed up and rewritten at once (keeping what this version does not
    /// understand).
    pub fn open(data: &Path, id: &str) -> anyhow::Result<(Store, Loaded)> {
        let dir = registry_dir(data);
        std::fs::create_dir_all(&dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot create the registry directory {}: {e}; check that path.data is writable",
                dir.display()
            )
        })?;
        let path = store_path(data, id);
        let mut loaded = load(&path).map_err(|e| {
            anyhow::anyhow!("cannot read the registry file {}: {e}", path.display())
        })?;
        let created = loaded.created.unwrap_or_else(now_secs);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| {
                anyhow::anyhow!("cannot open the registry file {}: {e}", path.display())
            })?;
        let mut store = Store {
            path,
            file,
            appended: 0,
            created,
            extras: std::mem::take(&mut loaded.extras),
            header_extra: std::mem::take(&mut loaded.header_extra),
            unknown: std::mem::take(&mut loaded.unknown),
            backup_due: loaded.needs_backup().then_some(loaded.format),
        };
        // A newer file is rewritten at once, so that its header never claims a format that
        // this version's records do not follow; an older one is upgraded by the next
        // compaction (not at start-up: a 100k-entry registry would delay the first event).
        if loaded.damaged > 0 || loaded.created.is_none() || loaded.format > FORMAT {
            store.compact(loaded.entries.values()).map_err(|e| {
                anyhow::anyhow!(
                    "cannot rewrite the registry file {}: {e}",
                    store.path.display()
                )
            })?;
        }
        Ok((store, loaded))
    }

    /// The registry file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serializes `r` with the unknown fields kept for its file.
    fn encode(&mut self, r: &Record, buf: &mut Vec<u8>) -> std::io::Result<()> {
        if r.deleted {
            self.extras.remove(&r.key());
        }
        match self.extras.get(&r.key()) {
            Some(extra) if !r.deleted => write_merged(buf, r, extra)?,
            _ => serde_json::to_writer(&mut *buf, r).map_err(std::io::Error::other)?,
        }
        buf.push(b'\n');
        Ok(())
    }

    /// Appends records and fsyncs.
    pub fn append(&mut self, records: &[Record]) -> std::io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(records.len() * 160);
        for r in records {
            self.encode(r, &mut buf)?;
        }
        self.file.write_all(&buf)?;
        self.file.sync_data()?;
        self.appended += records.len();
        Ok(())
    }

    /// Whether the file would hold enough stale records, once `more` are appended, to be
    /// worth rewriting with the `live` ones only.
    pub fn wants_compaction(&self, more: usize, live: usize) -> bool {
        self.appended + more > 4096.max(live * 2)
    }

    /// Copies the file as it is to `<file>.v<format>.<unix seconds>.bak` (fsynced), and
    /// removes the oldest backups beyond [`BACKUPS_KEPT`].
    fn backup(&self, format: u64) -> std::io::Result<()> {
        let Some(name) = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
        else {
            return Ok(());
        };
        let bak = self
            .path
            .with_file_name(format!("{name}.v{format}.{:010}.bak", now_secs()));
        std::fs::copy(&self.path, &bak)?;
        std::fs::File::open(&bak)?.sync_all()?;
        tracing::info!(file = %self.path.display(), backup = %bak.display(), format, "registry file backed up before it is rewritten");
        let prefix = format!("{name}.v");
        let mut olds: Vec<(String, PathBuf)> =
            std::fs::read_dir(self.path.parent().unwrap_or(Path::new(".")))?
                .flatten()
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    let stamp = n.strip_prefix(&prefix)?.strip_suffix(".bak")?;
                    let (_, secs) = stamp.split_once('.')?;
                    Some((secs.to_owned(), e.path()))
                })
                .collect();
        olds.sort();
        let excess = olds.len().saturating_sub(BACKUPS_KEPT);
        for (_, p) in olds.into_iter().take(excess) {
            let _ = std::fs::remove_file(p);
        }
        Ok(())
    }

    /// Rewrites the file with only `live` records (and what this version keeps without
    /// understanding it): temp file, fsync, rename, fsync directory. The first rewrite of a
    /// file that would lose or change something is preceded by a backup.
    pub fn compact<'a>(&mut self, live: impl Iterator<Item = &'a Record>) -> std::io::Result<()> {
        if let Some(format) = self.backup_due {
            self.backup(format)?;
            self.backup_due = None;
        }
        let tmp = self.path.with_extension("ndjson.tmp");
        let mut buf = Vec::new();
        let header = Record {
            input: String::new(),
            dev: 0,
            ino: 0,
            deleted: false,
            path: String::new(),
            offset: 0,
            size: 0,
            fp_len: 0,
            fp: 0,
            phase: Phase::Closed,
            changed: 0,
            created: Some(self.created),
        };
        let mut header_extra = self.header_extra.clone();
        header_extra.insert("format".into(), Value::from(FORMAT));
        write_merged(&mut buf, &header, &header_extra)?;
        buf.push(b'\n');
        for u in &self.unknown {
            buf.extend_from_slice(u.as_bytes());
            buf.push(b'\n');
        }
        for r in live {
            self.encode(r, &mut buf)?;
        }
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&buf)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent()
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        self.file = std::fs::OpenOptions::new().append(true).open(&self.path)?;
        self.appended = 0;
        Ok(())
    }
}

/// Writes `r` with the fields of `extra` it does not have itself.
fn write_merged(buf: &mut Vec<u8>, r: &Record, extra: &Map<String, Value>) -> std::io::Result<()> {
    let Value::Object(mut m) = serde_json::to_value(r).map_err(std::io::Error::other)? else {
        return Err(std::io::Error::other(
            "a registry record is not a JSON object",
        ));
    };
    for (k, v) in extra {
        if !m.contains_key(k) {
            m.insert(k.clone(), v.clone());
        }
    }
    serde_json::to_writer(&mut *buf, &m).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ino: u64, offset: u64) -> Record {
        Record {
            input: "a".into(),
            dev: 1,
            ino,
            deleted: false,
            path: format!("/x/{ino}"),
            offset,
            size: offset,
            fp_len: 3,
            fp: 9,
            phase: Phase::Closed,
            changed: 0,
            created: None,
        }
    }

    #[test]
    fn append_compact_reload_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, l) = Store::open(dir.path(), "in/1").unwrap();
        assert!(l.entries.is_empty());
        s.append(&[rec(1, 10), rec(2, 20), rec(1, 15)]).unwrap();
        let mut del = rec(2, 0);
        del.deleted = true;
        s.append(&[del]).unwrap();
        let path = store_path(dir.path(), "in/1");
        assert!(path.ends_with("in%2F1.ndjson"));
        let l = load(&path).unwrap();
        assert_eq!(l.entries.len(), 1);
        assert_eq!(l.entries[&FileKey { dev: 1, ino: 1 }].offset, 15);
        assert!(l.created.is_some());
        // Garbage and a torn last line.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"\x00\x01garbage\n{\"input\":\"a\",\"dev\":1,\"ino\":3,\"off")
            .unwrap();
        drop(f);
        let (_s, l) = Store::open(dir.path(), "in/1").unwrap();
        assert_eq!(l.damaged, 2);
        assert_eq!(l.entries.len(), 1);
        // Rewritten clean.
        assert_eq!(load(&path).unwrap().damaged, 0);
    }

    fn lines(path: &Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn backups(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".bak"))
            .collect();
        v.sort();
        v
    }

    /// A registry directory holding input `in`'s file with `text`.
    fn registry_with(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = store_path(dir.path(), "in");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    /// A registry as a future version would write it: format 3, a header field and record
    /// fields this version does not know, a record kind it does not know, and garbage.
    #[test]
    fn a_newer_registry_keeps_its_unknown_parts_through_append_and_compaction() {
        let (dir, path) = registry_with(concat!(
            r#"{"format":3,"created":1700000000,"writer":"skiff 9"}"#,
            "\n",
            r#"{"input":"in","dev":1,"ino":7,"path":"/x/7","offset":700,"size":900,"fp_len":3,"fp":9,"phase":"closed","changed":5,"lines":42,"codec":{"k":"zstd"}}"#,
            "\n",
            r#"{"kind":"checkpoint","seq":12,"at":"2030-01-01"}"#,
            "\n",
            r#"{"input":"in","dev":1,"ino":8,"path":"/x/8","offset":80,"size":80,"fp_len":3,"fp":9,"phase":"closed","changed":5}"#,
            "\n",
            r#"{"input":"in","dev":1,"ino":9,"offset":"a string now"}"#,
            "\n",
            "not json\n",
        ));
        let (mut s, l) = Store::open(dir.path(), "in").unwrap();
        assert_eq!(l.format, 3);
        assert_eq!(l.damaged, 1);
        assert_eq!(l.entries.len(), 2);
        assert_eq!(l.entries[&FileKey { dev: 1, ino: 7 }].offset, 700);
        assert_eq!(l.created, Some(1_700_000_000));
        // Backed up verbatim before the rewrite.
        let baks = backups(path.parent().unwrap());
        assert_eq!(baks.len(), 1, "{baks:?}");
        assert!(baks[0].starts_with("in.ndjson.v3."), "{baks:?}");
        let bak = std::fs::read_to_string(path.parent().unwrap().join(&baks[0])).unwrap();
        assert!(bak.contains("not json"));
        // Our own progress on file 7, then a compaction.
        s.append(&[rec(7, 800)]).unwrap();
        let after_append = lines(&path);
        let last = after_append.last().unwrap();
        assert_eq!(last["offset"], 800);
        assert_eq!(
            last["lines"], 42,
            "unknown fields follow the file's later records"
        );
        assert_eq!(last["codec"]["k"], "zstd");
        let l = load(&path).unwrap();
        s.compact(l.entries.values()).unwrap();
        let v = lines(&path);
        assert_eq!(v[0]["format"], FORMAT);
        assert_eq!(v[0]["writer"], "skiff 9");
        assert_eq!(v[0]["created"], 1_700_000_000);
        assert!(
            v.iter()
                .any(|r| r["kind"] == "checkpoint" && r["seq"] == 12)
        );
        assert!(v.iter().any(|r| r["offset"] == "a string now"));
        let seven = v.iter().find(|r| r["ino"] == 7).unwrap();
        assert_eq!(
            (seven["offset"].clone(), seven["lines"].clone()),
            (800.into(), 42.into())
        );
        // A removal forgets the file's unknown fields with it.
        let mut del = rec(7, 0);
        del.deleted = true;
        s.append(&[del]).unwrap();
        let l = load(&path).unwrap();
        s.compact(l.entries.values()).unwrap();
        assert!(!lines(&path).iter().any(|r| r["lines"] == 42));
        // Routine compaction of a clean current-format file takes no backup.
        assert_eq!(backups(path.parent().unwrap()).len(), 1);
        let (_s, l) = Store::open(dir.path(), "in").unwrap();
        assert_eq!((l.format, l.damaged), (FORMAT, 0));
        assert_eq!(backups(path.parent().unwrap()).len(), 1);
    }

    /// Exactly what skiff wrote before the `format` field existed (format 1).
    #[test]
    fn a_format_1_registry_loads_and_is_upgraded_with_a_backup() {
        let (dir, path) = registry_with(concat!(
            r#"{"input":"","dev":0,"ino":0,"path":"","offset":0,"size":0,"fp_len":0,"fp":0,"phase":"closed","changed":0,"created":1600000000}"#,
            "\n",
            r#"{"input":"in","dev":1,"ino":3,"path":"/x/3","offset":30,"size":30,"fp_len":3,"fp":9,"phase":"closed","changed":0}"#,
            "\n",
            r#"{"input":"in","dev":1,"ino":4,"deleted":true,"path":"","offset":0,"size":0,"fp_len":0,"fp":0,"phase":"removed","changed":0}"#,
            "\n",
        ));
        let before = std::fs::read(&path).unwrap();
        let (mut s, l) = Store::open(dir.path(), "in").unwrap();
        assert_eq!(l.format, 1);
        assert_eq!((l.entries.len(), l.damaged), (1, 0));
        assert_eq!(l.entries[&FileKey { dev: 1, ino: 3 }].offset, 30);
        assert_eq!(l.created, Some(1_600_000_000));
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "not rewritten at start-up"
        );
        assert!(backups(path.parent().unwrap()).is_empty());
        s.compact(l.entries.values()).unwrap();
        let baks = backups(path.parent().unwrap());
        assert!(
            baks.len() == 1 && baks[0].starts_with("in.ndjson.v1."),
            "{baks:?}"
        );
        let v = lines(&path);
        assert_eq!(v[0]["format"], FORMAT);
        assert_eq!(v[0]["created"], 1_600_000_000);
        // Records of this format carry no new field: a skiff of format 1 reads them.
        assert!(
            v[1..]
                .iter()
                .all(|r| serde_json::from_value::<Record>(r.clone()).is_ok())
        );
    }

    #[test]
    fn backups_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = Store::open(dir.path(), "in").unwrap();
        let reg = path_parent(&s);
        for i in 0..(BACKUPS_KEPT + 3) {
            std::fs::write(reg.join(format!("in.ndjson.v1.{:010}.bak", i)), b"x").unwrap();
        }
        s.backup(1).unwrap();
        let baks = backups(&reg);
        assert_eq!(baks.len(), BACKUPS_KEPT, "{baks:?}");
        assert!(!baks.iter().any(|b| b.ends_with("0000000000.bak")));
    }

    fn path_parent(s: &Store) -> PathBuf {
        s.path().parent().unwrap().to_path_buf()
    }

    proptest::proptest! {
        /// Any line, however hostile, is classified without a panic; a record of this format
        /// with extra fields reads back with them.
        #[test]
        fn any_line_is_classified_without_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
                                               key in "[a-z]{1,8}", n in 0u64..1_000_000) {
            let _ = parse_line(&bytes);
            let line = format!(r#"{{"input":"a","dev":1,"ino":{n},"offset":{n},"x{key}":{n}}}"#);
            match parse_line(line.as_bytes()) {
                Line::Record(r, extra) => {
                    proptest::prop_assert_eq!(r.offset, n);
                    proptest::prop_assert_eq!(extra.get(&format!("x{key}")), Some(&Value::from(n)));
                }
                _ => proptest::prop_assert!(false, "not read as a record: {}", line),
            }
        }
    }
}
