//! The acknowledgement state: how far the outputs have acknowledged, in one small file.
//!
//! `state.json` holds `acked_seq`: every event with a sequence number up to it was acknowledged
//! by the output, so a restart replays only what follows. It is replaced atomically (write a
//! temporary file, fsync it, rename it over the old one, fsync the directory), so a crash leaves
//! either the old or the new state. Losing it is safe: the queue then replays everything still on
//! disk (duplicates, never loss), because segments are deleted only once fully acknowledged.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

const FILE: &str = "state.json";
const TMP: &str = "state.json.tmp";

#[derive(Serialize, Deserialize)]
struct State {
    version: u32,
    acked_seq: u64,
}

/// The acknowledged watermark stored in `dir` (0 when there is none), and a warning when the file
/// exists but cannot be used.
pub(crate) fn load(dir: &Path) -> (u64, Option<String>) {
    let path = dir.join(FILE);
    match fs::read(&path) {
        Ok(bytes) => match serde_json::from_slice::<State>(&bytes) {
            Ok(s) => (s.acked_seq, None),
            Err(e) => (
                0,
                Some(format!(
                    "cannot parse {}: {e}; everything still on disk will be sent again",
                    path.display()
                )),
            ),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => (0, None),
        Err(e) => (
            0,
            Some(format!(
                "cannot read {}: {e}; everything still on disk will be sent again",
                path.display()
            )),
        ),
    }
}

/// Stores the watermark atomically (fsynced when `sync`).
pub(crate) fn store(dir: &Path, acked_seq: u64, sync: bool) -> io::Result<()> {
    let tmp = dir.join(TMP);
    let body = serde_json::to_vec(&State {
        version: 1,
        acked_seq,
    })
    .map_err(io::Error::other)?;
    let mut f = File::create(&tmp)?;
    f.write_all(&body)?;
    if sync {
        f.sync_all()?;
    }
    drop(f);
    fs::rename(&tmp, dir.join(FILE))?;
    if sync {
        sync_dir(dir)?;
    }
    Ok(())
}

/// fsyncs a directory so that created, renamed and deleted entries are durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_then_load_and_damaged_state_replays_all() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(load(d.path()), (0, None));
        store(d.path(), 42, true).unwrap();
        store(d.path(), 43, true).unwrap();
        assert_eq!(load(d.path()), (43, None));
        fs::write(d.path().join(FILE), b"{garbage").unwrap();
        let (acked, warn) = load(d.path());
        assert_eq!(acked, 0);
        assert!(warn.unwrap().contains("state.json"));
    }
}
