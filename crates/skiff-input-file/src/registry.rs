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

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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

/// What loading found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Live entries by key.
    pub entries: HashMap<FileKey, Record>,
    /// When the registry was first created (unix seconds).
    pub created: Option<i64>,
    /// Lines that could not be read.
    pub damaged: usize,
}

/// Reads a registry file; damaged lines are skipped and logged. A missing file is empty.
pub fn load(path: &Path) -> std::io::Result<Loaded> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::default()),
        Err(e) => return Err(e),
    };
    let mut out = Loaded::default();
    let mut bad_lines: Vec<usize> = Vec::new();
    let torn = !data.is_empty() && !data.ends_with(b"\n");
    let n_lines = data.split(|b| *b == b'\n').count();
    for (i, line) in data.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if torn && i + 1 == n_lines {
            bad_lines.push(i + 1);
            continue;
        }
        match serde_json::from_slice::<Record>(line) {
            Ok(r) if r.is_header() => out.created = out.created.or(r.created),
            Ok(r) if r.deleted => {
                out.entries.remove(&r.key());
            }
            Ok(r) => {
                out.entries.insert(r.key(), r);
            }
            Err(_) => bad_lines.push(i + 1),
        }
    }
    out.damaged = bad_lines.len();
    if !bad_lines.is_empty() {
        let shown: Vec<String> = bad_lines.iter().take(10).map(|n| n.to_string()).collect();
        tracing::warn!(
            file = %path.display(),
            skipped_lines = bad_lines.len(),
            lines = %shown.join(","),
            torn_last_line = torn,
            kept_entries = out.entries.len(),
            "registry file is damaged: skipped the lines that could not be read and kept the rest; files whose state was lost are read again from the start or from an older offset"
        );
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
    /// Opens (creating) the registry of input `id` and loads it. A damaged file is rewritten
    /// clean at once.
    pub fn open(data: &Path, id: &str) -> anyhow::Result<(Store, Loaded)> {
        let dir = registry_dir(data);
        std::fs::create_dir_all(&dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot create the registry directory {}: {e}; check that path.data is writable",
                dir.display()
            )
        })?;
        let path = store_path(data, id);
        let loaded = load(&path).map_err(|e| {
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
        };
        if loaded.damaged > 0 || loaded.created.is_none() {
            store.compact(loaded.entries.values())?;
        }
        Ok((store, loaded))
    }

    /// The registry file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends records and fsyncs.
    pub fn append(&mut self, records: &[Record]) -> std::io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(records.len() * 160);
        for r in records {
            serde_json::to_writer(&mut buf, r).map_err(std::io::Error::other)?;
            buf.push(b'\n');
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

    /// Rewrites the file with only `live` records: temp file, fsync, rename, fsync directory.
    pub fn compact<'a>(&mut self, live: impl Iterator<Item = &'a Record>) -> std::io::Result<()> {
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
        serde_json::to_writer(&mut buf, &header).map_err(std::io::Error::other)?;
        buf.push(b'\n');
        for r in live {
            serde_json::to_writer(&mut buf, r).map_err(std::io::Error::other)?;
            buf.push(b'\n');
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
}
