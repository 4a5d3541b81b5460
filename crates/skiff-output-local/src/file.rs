//! `output.file`: events as NDJSON files in a directory, rotated by size.
//!
//! Settings and naming follow Filebeat 8 (see [`FileConfig`] and the rotation rules in
//! `rotate.rs`): files `{filename}-{YYYYMMDD}[-N].ndjson` under `path`, at most
//! `rotate_every_kb` each, at most `number_of_files` kept. `filename` defaults to `skiff` (the
//! Beats default it to the Beat's name); set `filename: filebeat` to keep the old names.
//!
//! Delivery: a batch is encoded into one buffer and written with one `write` per file it spans;
//! it is acknowledged once written and flushed to the operating system (the kernel has the bytes:
//! they survive skiff crashing, not the machine losing power). `fsync: true` (skiff's own
//! setting) also waits for the disk before acknowledging, at a large cost in throughput.
//! A write error fails the whole batch, which the worker retries; lines written before the error
//! are written again (at-least-once).

use std::path::PathBuf;

use anyhow::Context as _;
use async_trait::async_trait;
use serde::Deserialize;
use skiff_config::{ConfigError, ConfigErrors, Node};
use skiff_event::Event;
use skiff_event::template::Template;
use skiff_metrics::{Counter, names};
use skiff_pipeline::{BuildContext, Outcome, Output, OutputSet};

use crate::codec::{Codec, CodecConfig, Scratch, encode_batch};
use crate::rotate::{DateFn, RotateConfig, Rotator, local_date};

/// `output.file.*`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `enabled`. Default true.
    #[serde(default = "crate::yes")]
    pub enabled: bool,
    /// `path`: the directory to write to (created if missing). Required. May contain a date
    /// format, `%{+yyyy.MM.dd}`, expanded once at start.
    #[serde(default)]
    pub path: Option<String>,
    /// `filename`: the files' name prefix. Default `skiff`.
    #[serde(default = "default_filename")]
    pub filename: String,
    /// `rotate_every_kb`: the largest a file may grow, in KiB. Default 10240 (10 MiB).
    #[serde(default = "default_rotate_every_kb")]
    pub rotate_every_kb: u64,
    /// `number_of_files`: how many files to keep, counting the one being written (2 to 1024).
    /// Default 7.
    #[serde(default = "default_number_of_files")]
    pub number_of_files: usize,
    /// `permissions`: the files' mode, in octal (`0600`, `"0644"`). Default 0600.
    #[serde(default = "default_permissions")]
    pub permissions: Permissions,
    /// `rotate_on_startup`: start a new file at start instead of appending to the newest one.
    /// Default true.
    #[serde(default = "crate::yes")]
    pub rotate_on_startup: bool,
    /// `codec`: `json` (default) or `format`.
    #[serde(default)]
    pub codec: CodecConfig,
    /// `bulk_max_size`: events per batch (skiff's own). Default 2048.
    #[serde(default = "crate::default_bulk_max_size")]
    pub bulk_max_size: usize,
    /// `max_retries`: attempts per batch before its events go to the dead-letter file; -1
    /// (the default) retries forever.
    #[serde(default = "crate::default_max_retries")]
    pub max_retries: i64,
    /// `backoff.init` / `backoff.max`: the wait between retries. Default 1s doubling to 60s.
    #[serde(default)]
    pub backoff: crate::Backoff,
    /// `fsync`: wait for the disk (fsync) before acknowledging a batch (skiff's own). Default
    /// false: a batch is acknowledged once the operating system has it.
    #[serde(default)]
    pub fsync: bool,
}

fn default_filename() -> String {
    "skiff".into()
}
fn default_rotate_every_kb() -> u64 {
    10240
}
fn default_number_of_files() -> usize {
    7
}
fn default_permissions() -> Permissions {
    Permissions(0o600)
}

/// A file mode written in octal. YAML reads `0600` as the number 600, so the digits of a
/// number are read as octal (`600` means `0o600`); strings may be `"0600"` or `"0o600"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permissions(pub u32);

impl<'de> Deserialize<'de> for Permissions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        let bad = |what: &str| {
            serde::de::Error::custom(format!(
                "{what} is not a file mode: write it in octal, like `0600` or `0644`"
            ))
        };
        let digits = match Raw::deserialize(d)? {
            Raw::N(n) => n.to_string(),
            Raw::S(s) => s.trim().trim_start_matches("0o").to_owned(),
        };
        match u32::from_str_radix(&digits, 8) {
            Ok(m) if m <= 0o777 => Ok(Permissions(m)),
            _ => Err(bad(&digits)),
        }
    }
}

/// Builds `output.file`.
pub fn build(node: &Node, ctx: &BuildContext) -> Result<OutputSet, ConfigErrors> {
    build_with_clock(node, ctx, std::sync::Arc::new(local_date))
}

fn build_with_clock(
    node: &Node,
    ctx: &BuildContext,
    date: DateFn,
) -> Result<OutputSet, ConfigErrors> {
    let cfg: FileConfig = node.deserialize()?;
    let err = |key: &str, msg: String| {
        let n = node.get(key).unwrap_or(node);
        let path = if node.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", node.path)
        };
        ConfigError::new(path, n.mark.clone(), msg)
    };
    let mut errors = Vec::new();
    let codec = Codec::build(&cfg.codec, false, node)
        .map_err(|e| errors.push(e))
        .ok();
    let dir = match cfg.path.as_deref() {
        None | Some("") => {
            errors.push(err("path", "`path` is required: the directory to write the files to, e.g. `path: /var/lib/skiff/output`".into()));
            None
        }
        Some(p) => match Template::parse(p) {
            Err(e) => {
                errors.push(err("path", e.to_string()));
                None
            }
            Ok(t) => {
                let now = Event::new(Default::default(), String::new());
                match t.render(&now) {
                    Ok(p) => Some(PathBuf::from(p)),
                    Err(e) => {
                        errors.push(err(
                            "path",
                            format!("{e}: only a date (`%{{+yyyy.MM.dd}}`) may be used in `path`"),
                        ));
                        None
                    }
                }
            }
        },
    };
    if cfg.filename.is_empty() || cfg.filename.contains('/') {
        errors.push(err(
            "filename",
            format!(
                "{:?} is not a file name: use a plain name like `skiff`",
                cfg.filename
            ),
        ));
    }
    if cfg.rotate_every_kb == 0 || cfg.rotate_every_kb > u64::MAX / 1024 {
        errors.push(err(
            "rotate_every_kb",
            format!(
                "{} is out of range: use a size in KiB of at least 1 (default 10240)",
                cfg.rotate_every_kb
            ),
        ));
    }
    if !(2..=1024).contains(&cfg.number_of_files) {
        errors.push(err(
            "number_of_files",
            format!(
                "{} is out of range: keep between 2 and 1024 files (default 7)",
                cfg.number_of_files
            ),
        ));
    }
    let (Some(codec), Some(dir), true) = (codec, dir, errors.is_empty()) else {
        return Err(ConfigErrors(errors));
    };
    let rotate = RotateConfig {
        dir,
        filename: cfg.filename,
        max_size: cfg.rotate_every_kb * 1024,
        number_of_files: cfg.number_of_files,
        permissions: cfg.permissions.0,
        rotate_on_startup: cfg.rotate_on_startup,
        fsync: cfg.fsync,
    };
    let client = FileOutput {
        codec,
        describe: format!("file({})", rotate.dir.display()),
        max_line: rotate.max_size,
        rotate,
        date,
        started: false,
        rotator: None,
        buf: Vec::new(),
        scratch: Scratch::default(),
        ends: Vec::new(),
        bytes: ctx.metrics.counter(&names::OUTPUT_WRITE_BYTES),
    };
    Ok(OutputSet {
        clients: vec![Box::new(client)],
        settings: crate::settings(cfg.bulk_max_size, cfg.max_retries, cfg.backoff),
    })
}

/// The file client. The files are opened at the first batch (so `skiff test config` creates
/// nothing), and reopened (appending to the newest file) after a write error.
pub struct FileOutput {
    codec: Codec,
    describe: String,
    max_line: u64,
    rotate: RotateConfig,
    date: DateFn,
    /// Whether the files were opened once (`rotate_on_startup` applies to the first time only).
    started: bool,
    rotator: Option<Rotator>,
    buf: Vec<u8>,
    scratch: Scratch,
    ends: Vec<usize>,
    bytes: Counter,
}

#[async_trait]
impl Output for FileOutput {
    async fn send(&mut self, events: &[Event]) -> Result<Outcome, skiff_pipeline::Failure> {
        let mut buf = std::mem::take(&mut self.buf);
        let mut ends = std::mem::take(&mut self.ends);
        let rejected = encode_batch(
            &self.codec,
            events,
            &mut buf,
            &mut self.scratch,
            &mut ends,
            Some(self.max_line),
        );
        let current = self.rotator.take();
        let reopen = (self.rotate.clone(), self.date.clone(), !self.started);
        // File I/O blocks: keep it off the async workers. The buffers travel there and back.
        let task = tokio::task::spawn_blocking(move || {
            let mut rotator = match current {
                Some(r) => r,
                None => match Rotator::open(reopen.0, reopen.1, reopen.2) {
                    Ok(r) => r,
                    Err(e) => return (buf, ends, None, Err(e)),
                },
            };
            match rotator.write_lines(&buf, &ends) {
                Ok(n) => (buf, ends, Some(rotator), Ok(n)),
                // Drop the handle: the next attempt reopens the newest file and appends.
                Err(e) => (buf, ends, None, Err(e)),
            }
        });
        let (buf, ends, rotator, result) = task.await.context("the file writer task failed")?;
        self.buf = buf;
        self.ends = ends;
        if self.buf.capacity() > 16 << 20 {
            // One huge batch should not pin its buffer for the rest of the run.
            self.buf = Vec::new();
        }
        self.started |= rotator.is_some();
        self.rotator = rotator;
        let written = result.with_context(|| {
            format!(
                "cannot write to {}: check that the directory exists and is writable and that the disk is not full",
                self.describe
            )
        })?;
        self.bytes.add(written);
        Ok(Outcome {
            retry: Vec::new(),
            rejected,
        })
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use skiff_metrics::Registry;

    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;

    fn ctx() -> BuildContext {
        BuildContext::standalone("h", "0.1.0", &Registry::new())
    }

    fn node(yaml: &str) -> Node {
        let root = skiff_config::parse_str(yaml, Some("t.yml")).unwrap();
        root.get("output.file").unwrap().clone()
    }

    fn build_at(yaml: &str, ctx: &BuildContext) -> Result<OutputSet, ConfigErrors> {
        build_with_clock(&node(yaml), ctx, Arc::new(|| "20260102".to_string()))
    }

    fn events(n: usize) -> Vec<Event> {
        let shared = json!({"@metadata": {"beat": "filebeat"}, "input": {"type": "stdin"}});
        let shared = Arc::new(shared.as_object().unwrap().clone());
        (0..n)
            .map(|i| Event::new(shared.clone(), format!("{i:04}")))
            .collect()
    }

    fn files(dir: &std::path::Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn writes_format_lines_rotates_and_counts_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = ctx();
        let yaml = format!(
            "output.file: {{path: '{}', filename: out, rotate_every_kb: 1, number_of_files: 2, permissions: 0640, codec.format.string: '%{{[message]}}'}}",
            dir.path().display()
        );
        let mut set = build_at(&yaml, &ctx).unwrap();
        // 300 lines of 5 bytes = 1500 bytes: a 1 KiB file (204 lines) and the rest.
        let o = set.clients[0].send(&events(300)).await.unwrap();
        assert!(o.rejected.is_empty() && o.retry.is_empty());
        assert_eq!(
            files(dir.path()),
            ["out-20260102-1.ndjson", "out-20260102.ndjson"]
        );
        let first = std::fs::read_to_string(dir.path().join("out-20260102.ndjson")).unwrap();
        assert_eq!(first.len(), 1020);
        assert!(first.starts_with("0000\n0001\n"));
        let second = std::fs::read_to_string(dir.path().join("out-20260102-1.ndjson")).unwrap();
        assert_eq!(second.len(), 480);
        assert!(second.starts_with("0204\n"));
        let mode = std::fs::metadata(dir.path().join("out-20260102-1.ndjson"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
        assert_eq!(ctx.metrics.counter(&names::OUTPUT_WRITE_BYTES).get(), 1500);
        // 1500 more bytes fill `-1` and start `-2`: only number_of_files (2) remain, the newest.
        set.clients[0].send(&events(300)).await.unwrap();
        assert_eq!(
            files(dir.path()),
            ["out-20260102-1.ndjson", "out-20260102-2.ndjson"]
        );
        let last = std::fs::read_to_string(dir.path().join("out-20260102-2.ndjson")).unwrap();
        assert!(
            last.starts_with("0108\n") && last.ends_with("0299\n"),
            "{last}"
        );
    }

    #[tokio::test]
    async fn json_lines_and_oversized_events() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = ctx();
        let yaml = format!(
            "output.file: {{path: '{}', rotate_every_kb: 1}}",
            dir.path().display()
        );
        let mut set = build_at(&yaml, &ctx).unwrap();
        assert_eq!(set.settings.bulk_max_size, 2048);
        let mut evs = events(3);
        evs[1].message = Some("x".repeat(2000));
        let o = set.clients[0].send(&evs).await.unwrap();
        assert_eq!(o.rejected.len(), 1);
        assert_eq!(o.rejected[0].0, 1);
        assert!(
            o.rejected[0].1.contains("rotate_every_kb"),
            "{}",
            o.rejected[0].1
        );
        let text = std::fs::read_to_string(dir.path().join("skiff-20260102.ndjson")).unwrap();
        let msgs: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|v| {
                assert_eq!(v["@metadata"]["beat"], "filebeat");
                v["message"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(msgs, ["0000", "0002"]);
    }

    #[tokio::test]
    async fn unwritable_directory_fails_the_batch_with_the_cause() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file-not-dir");
        std::fs::write(&blocker, "x").unwrap();
        let ctx = ctx();
        let yaml = format!("output.file: {{path: '{}/sub'}}", blocker.display());
        let mut set = build_at(&yaml, &ctx).unwrap();
        let err = set.clients[0].send(&events(1)).await.unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("cannot write to file(") && msg.contains("writable"),
            "{msg}"
        );
    }

    #[test]
    fn config_errors_name_the_key() {
        let ctx = ctx();
        let e = build_at("output.file: {filename: x}", &ctx).err().unwrap();
        assert!(
            e.to_string().contains("output.file.path") && e.to_string().contains("required"),
            "{e}"
        );
        let e = build_at("output.file: {path: /tmp/x, number_of_files: 1}", &ctx)
            .err()
            .unwrap();
        assert!(e.to_string().contains("output.file.number_of_files"), "{e}");
        let e = build_at("output.file: {path: /tmp/x, permissions: 0999}", &ctx)
            .err()
            .unwrap();
        assert!(e.to_string().contains("octal"), "{e}");
        let e = build_at("output.file: {path: /tmp/x, rotate_evry_kb: 5}", &ctx)
            .err()
            .unwrap();
        assert!(e.to_string().contains("rotate_every_kb"), "{e}");
        assert!(build_at("output.file: {path: /tmp/x, permissions: '0o644'}", &ctx).is_ok());
    }

    #[test]
    fn retry_settings() {
        let ctx = ctx();
        let set = build_at("output.file: {path: /tmp/x, max_retries: 3, backoff: {init: 2s, max: 10s}, bulk_max_size: 10}", &ctx).unwrap();
        let s = &set.settings;
        assert_eq!(
            (
                s.bulk_max_size,
                s.max_retries,
                s.backoff_init.as_secs(),
                s.backoff_max.as_secs()
            ),
            (10, 3, 2, 10)
        );
        let set = build_at("output.file: {path: /tmp/x}", &ctx).unwrap();
        assert_eq!(
            (
                set.settings.max_retries,
                set.settings.backoff_init.as_secs(),
                set.settings.backoff_max.as_secs()
            ),
            (-1, 1, 60)
        );
        let e = build_at("output.file: {path: /tmp/x, backoff.inti: 1s}", &ctx)
            .err()
            .unwrap();
        assert!(e.to_string().contains("did you mean `init`"), "{e}");
    }

    #[test]
    fn path_may_hold_a_date() {
        let ctx = ctx();
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!(
            "output.file: {{path: '{}/out-%{{+yyyy}}'}}",
            dir.path().display()
        );
        let set = build_at(&yaml, &ctx).unwrap();
        let year = chrono::Utc::now().format("%Y").to_string();
        assert!(
            set.clients[0].describe().ends_with(&format!("out-{year})")),
            "{}",
            set.clients[0].describe()
        );
    }
}
