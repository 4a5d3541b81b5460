//! Per-file progress: what `GET /inputs/` and `skiff registry list` show.

use std::path::Path;
use std::sync::atomic::Ordering;

use serde::Serialize;

use crate::identity::FileKey;
use crate::prospector::FileTable;
use crate::registry::{self, Record};
use crate::state::{FileShared, Phase};

/// The progress of one file.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FileStatus {
    /// The input's id.
    pub input_id: String,
    /// The file's path (its latest name).
    pub path: String,
    /// `<device>-<inode>`.
    pub identity: String,
    /// Device.
    pub device: u64,
    /// Inode.
    pub inode: u64,
    /// Fingerprint of the file's head, `<bytes>-<hash>`.
    pub fingerprint: String,
    /// Size in bytes (now, when the file still exists).
    pub size: u64,
    /// Offset read up to.
    pub read_offset: u64,
    /// Offset up to which every event is acknowledged.
    pub acked_offset: u64,
    /// `reading`, `idle`, `waiting`, `closed` or `removed`.
    pub state: Phase,
    /// Everything in the file is acknowledged and no reader is busy with it: it can be
    /// deleted or archived without losing anything.
    pub fully_shipped: bool,
}

/// The status of a live file.
pub(crate) fn live(input: &str, f: &FileShared) -> FileStatus {
    let size = f.size.load(Ordering::Acquire);
    let acked = f.committed();
    let state = f.phase();
    FileStatus {
        input_id: input.to_owned(),
        path: f.path().to_string_lossy().into_owned(),
        identity: f.key.to_string(),
        device: f.key.dev,
        inode: f.key.ino,
        fingerprint: f.fingerprint().to_text(),
        size,
        read_offset: f.read_offset.load(Ordering::Acquire),
        acked_offset: acked,
        state,
        fully_shipped: acked >= size
            && matches!(state, Phase::Idle | Phase::Closed | Phase::Removed),
    }
}

/// The status document of an input for the status board.
pub(crate) fn document(input: &str, table: &FileTable) -> serde_json::Value {
    let files: Vec<std::sync::Arc<FileShared>> = {
        let t = table.lock().unwrap_or_else(|p| p.into_inner());
        t.values().cloned().collect()
    };
    let mut list: Vec<FileStatus> = files.iter().map(|f| live(input, f)).collect();
    list.sort_by(|a, b| a.path.cmp(&b.path));
    serde_json::json!({
        "id": input,
        "type": "filestream",
        "files": list,
    })
}

fn offline(r: &Record) -> FileStatus {
    let key = r.key();
    let now = std::fs::metadata(&r.path)
        .ok()
        .filter(|m| FileKey::of(m) == key);
    let (size, state) = match &now {
        Some(m) => (m.len(), r.phase),
        None => (r.size, Phase::Removed),
    };
    FileStatus {
        input_id: r.input.clone(),
        path: r.path.clone(),
        identity: key.to_string(),
        device: key.dev,
        inode: key.ino,
        fingerprint: r.fingerprint().to_text(),
        size,
        read_offset: r.offset,
        acked_offset: r.offset,
        state,
        fully_shipped: r.offset >= size,
    }
}

/// Every file in every filestream registry under `data_dir` (`path.data`), for
/// `skiff registry list`. Damaged lines are skipped (and logged).
pub fn list_registry(data_dir: &Path) -> anyhow::Result<Vec<FileStatus>> {
    let dir = registry::registry_dir(data_dir);
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => anyhow::bail!("cannot read the registry directory {}: {e}", dir.display()),
    };
    let mut out = Vec::new();
    let mut files: Vec<_> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "ndjson"))
        .collect();
    files.sort();
    for p in files {
        let loaded = registry::load(&p)
            .map_err(|e| anyhow::anyhow!("cannot read the registry file {}: {e}", p.display()))?;
        out.extend(loaded.entries.values().map(offline));
    }
    out.sort_by(|a, b| (&a.input_id, &a.path).cmp(&(&b.input_id, &b.path)));
    Ok(out)
}
