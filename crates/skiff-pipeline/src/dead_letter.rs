//! The dead-letter file: where events go that an output refused for good.
//!
//! An Elasticsearch mapping error or a message too large for Kafka will never succeed however
//! often it is retried. Filebeat drops such events (logging at debug level) or retries them
//! forever, blocking everything behind them. skiff writes each one, with the server's reason, as
//! one JSON line to `dead_letter.path` (default `${path.data}/dead_letter/`), then acknowledges
//! it: the pipeline moves on and nothing vanishes. The file rotates at `max_size`, keeping one
//! older file; `skiff.output.dead_lettered` counts what was written.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Deserialize;
use skiff_config::ByteSize;
use skiff_event::{Event, Timestamp, json};
use skiff_metrics::{Counter, Registry, names};

/// `dead_letter.*`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterConfig {
    /// `enabled` (default true). When false, rejected events are dropped (and counted).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `path`: the directory (default `${path.data}/dead_letter`).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// `max_size`: rotate the file at this size (default 100 MiB; one older file is kept).
    #[serde(default = "default_max_size")]
    pub max_size: ByteSize,
}

fn yes() -> bool {
    true
}
fn default_max_size() -> ByteSize {
    ByteSize(100 << 20)
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        DeadLetterConfig {
            enabled: true,
            path: None,
            max_size: default_max_size(),
        }
    }
}

/// The dead-letter file writer.
pub struct DeadLetter {
    file_path: PathBuf,
    max_size: u64,
    file: Mutex<Option<(File, u64)>>,
    count: Counter,
}

impl std::fmt::Debug for DeadLetter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeadLetter({})", self.file_path.display())
    }
}

impl DeadLetter {
    /// A writer into `dir/dead_letter.ndjson` (the directory is created on first write).
    pub fn new(dir: &Path, max_size: u64, metrics: &Registry) -> Self {
        DeadLetter {
            file_path: dir.join("dead_letter.ndjson"),
            max_size: max_size.max(4096),
            file: Mutex::new(None),
            count: metrics.counter(&names::OUTPUT_DEAD_LETTERED),
        }
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.file_path
    }

    /// Records one rejected event with the reason and the output that rejected it.
    pub fn write(&self, event: &Event, reason: &str, output: &str) -> std::io::Result<()> {
        let mut line = Vec::with_capacity(256);
        line.extend_from_slice(b"{\"@timestamp\":\"");
        Timestamp::now().write_rfc3339_millis(&mut line);
        line.extend_from_slice(b"\",\"output\":");
        json::write_str(&mut line, output);
        line.extend_from_slice(b",\"reason\":");
        json::write_str(&mut line, reason);
        line.extend_from_slice(b",\"event\":");
        json::encode(event, &mut line, true);
        line.extend_from_slice(b"}\n");

        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if guard
            .as_ref()
            .is_some_and(|(_, size)| size + line.len() as u64 > self.max_size)
        {
            *guard = None;
            let old = self.file_path.with_extension("ndjson.1");
            std::fs::rename(&self.file_path, old)?;
        }
        if guard.is_none() {
            if let Some(dir) = self.file_path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.file_path)?;
            let size = f.metadata()?.len();
            *guard = Some((f, size));
        }
        if let Some((f, size)) = guard.as_mut() {
            f.write_all(&line)?;
            f.flush()?;
            *size += line.len() as u64;
        }
        self.count.inc();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_event::Map;
    use std::sync::Arc;

    #[test]
    fn writes_reason_and_event_and_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::new();
        let dl = DeadLetter::new(dir.path(), 4096, &reg);
        let e = Event::new(Arc::new(Map::new()), "bad doc".into());
        dl.write(
            &e,
            "mapper_parsing_exception: failed to parse [x]",
            "elasticsearch",
        )
        .unwrap();
        let text = std::fs::read_to_string(dl.path()).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["reason"], "mapper_parsing_exception: failed to parse [x]");
        assert_eq!(v["event"]["message"], "bad doc");
        for _ in 0..40 {
            dl.write(&e, &"r".repeat(200), "o").unwrap();
        }
        assert!(dir.path().join("dead_letter.ndjson.1").exists());
        assert!(std::fs::metadata(dl.path()).unwrap().len() <= 4096);
        assert_eq!(reg.counter(&names::OUTPUT_DEAD_LETTERED).get(), 41);
    }
}
