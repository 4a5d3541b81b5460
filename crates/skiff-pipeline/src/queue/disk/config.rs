//! `queue.disk.*`: the disk queue's settings, with Beats' names and defaults where Beats has them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use skiff_config::{ByteSize, Duration as ConfDuration};

use crate::queue::WhenFull;

/// `queue.disk.*`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskQueueConfig {
    /// `path`: the queue's directory. Default `${path.data}/diskqueue` (as Beats).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// `max_size`: the most the segment files may take on disk; when reached, inputs wait.
    /// Default 10GiB (as Beats).
    #[serde(default = "default_max_size")]
    pub max_size: ByteSize,
    /// `segment_size`: a segment file is closed and a new one started past this size; a segment
    /// is deleted (or kept for reuse) once all its events are acknowledged. Default
    /// `max_size / 10` (as Beats), but at most 64MiB (Beats: 1GiB with its default `max_size`);
    /// never more than `max_size`. See [`DEFAULT_MAX_SEGMENT`] for why.
    #[serde(default)]
    pub segment_size: Option<ByteSize>,
    /// `read_ahead`: events read from disk and held in memory ahead of the outputs. Default 2048
    /// (Beats: 512): as many as one write group, so that a group just written can be handed to
    /// the outputs whole instead of read back (see `writer`).
    #[serde(default = "default_read_ahead")]
    pub read_ahead: usize,
    /// `write_ahead`: events accepted from inputs and held in memory while waiting to be written;
    /// also the largest group committed with one fsync. Default 2048 (as Beats).
    #[serde(default = "default_write_ahead")]
    pub write_ahead: usize,
    /// `max_ahead_bytes` (skiff's own): the bytes bound of each of the read-ahead and
    /// write-ahead buffers (an event larger than this passes alone). Default 32MiB.
    #[serde(default = "default_max_ahead_bytes")]
    pub max_ahead_bytes: ByteSize,
    /// `retry_interval`: the first wait after a failed write (disk full, read-only, I/O
    /// error) before trying again. Default 1s (as Beats).
    #[serde(default = "default_retry_interval")]
    pub retry_interval: ConfDuration,
    /// `max_retry_interval`: the wait doubles after each failure up to this. Default 30s (as
    /// Beats).
    #[serde(default = "default_max_retry_interval")]
    pub max_retry_interval: ConfDuration,
    /// `sync.*` (skiff's own): when written events are forced to stable storage.
    #[serde(default)]
    pub sync: SyncConfig,
    /// `when_full`: `block` (default: inputs wait) or `drop_newest` (when the queue is at
    /// `max_size` or cannot write, new events are dropped, acknowledged and counted in
    /// `libbeat.pipeline.events.dropped`).
    #[serde(default)]
    pub when_full: WhenFull,
}

/// `queue.disk.sync.*`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// `mode`: `batch` (default), `interval` or `none`; see [`SyncMode`].
    #[serde(default)]
    pub mode: SyncMode,
    /// `interval`: with `mode: interval`, the most time between two fsyncs. Default 1s.
    #[serde(default = "default_sync_interval")]
    pub interval: ConfDuration,
}

/// When the disk queue calls fsync, and so when an input's events count as safely queued.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// fsync once per written group (up to `write_ahead` events), then acknowledge the group to
    /// its inputs: nothing acknowledged is lost even on power loss. The default.
    #[default]
    Batch,
    /// fsync at most once per `sync.interval`; events are acknowledged to their inputs after the
    /// fsync that covers them. Fewer fsyncs on slow disks, at the price of up to one interval of
    /// latency before an input may commit its offset.
    Interval,
    /// Never fsync: events are acknowledged once written to the operating system. Survives a
    /// crash of skiff (kill -9), not a power loss or kernel crash.
    None,
}

fn default_max_size() -> ByteSize {
    ByteSize(10 << 30)
}
fn default_read_ahead() -> usize {
    2048
}
fn default_write_ahead() -> usize {
    2048
}
fn default_max_ahead_bytes() -> ByteSize {
    ByteSize(32 << 20)
}
fn default_retry_interval() -> ConfDuration {
    ConfDuration(Duration::from_secs(1))
}
fn default_max_retry_interval() -> ConfDuration {
    ConfDuration(Duration::from_secs(30))
}
fn default_sync_interval() -> ConfDuration {
    ConfDuration(Duration::from_secs(1))
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            mode: SyncMode::Batch,
            interval: default_sync_interval(),
        }
    }
}

impl Default for DiskQueueConfig {
    fn default() -> Self {
        DiskQueueConfig {
            path: None,
            max_size: default_max_size(),
            segment_size: None,
            read_ahead: default_read_ahead(),
            write_ahead: default_write_ahead(),
            max_ahead_bytes: default_max_ahead_bytes(),
            retry_interval: default_retry_interval(),
            max_retry_interval: default_max_retry_interval(),
            sync: SyncConfig::default(),
            when_full: WhenFull::Block,
        }
    }
}

/// How many times `read_ahead` events the writer may put in the read-ahead buffer by handing a
/// written group over. Those events are in memory already; refusing them means dropping them and
/// reading and decoding them back from disk a moment later. With room for only one group
/// (factor 1) about half of the events of file -> disk queue -> discard on one core were read
/// back (the outputs had not taken the previous group yet when the next was written); with 4
/// (8192 events by default, ~4 MiB of 256-byte lines) fewer than 0.1 % were.
/// `docs/performance.md` has the runs.
pub(crate) const HAND_OVER_FACTOR: usize = 4;

/// The largest default `segment_size`. Smaller segments than Beats' (up to 1 GiB) because:
/// delivered events stay on disk until their whole segment is acknowledged (at most one segment
/// of them, now 64 MiB); recovery reads the newest segment in full before the queue opens; the
/// file kept for reuse and the old records of a reused file count against `max_size` (at most
/// one segment each); and a segment is only reused once the next one is being read, so with
/// 1 GiB segments a queue writes its first 2 GiB into new files, the kernel's costly case (see
/// `writer`). 64 MiB segments make a 10 GiB queue 160 files.
pub(crate) const DEFAULT_MAX_SEGMENT: u64 = 64 << 20;

/// The settings with defaults filled in and bounds applied.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub dir: PathBuf,
    pub max_size: u64,
    pub segment_size: u64,
    pub read_ahead: usize,
    pub write_ahead: usize,
    /// Events the read-ahead buffer may hold with the writer's hand-over (see `writer`):
    /// `HAND_OVER_FACTOR × read_ahead`, within `max_ahead_bytes` all the same.
    pub hand_over: usize,
    pub max_ahead_bytes: usize,
    pub retry_interval: Duration,
    pub max_retry_interval: Duration,
    pub sync: SyncMode,
    pub sync_interval: Duration,
    pub when_full: WhenFull,
}

impl DiskQueueConfig {
    /// The directory the queue uses: `path`, or `<data_dir>/diskqueue`.
    pub fn dir(&self, data_dir: &Path) -> PathBuf {
        match &self.path {
            Some(p) if p.is_absolute() => p.clone(),
            Some(p) => data_dir.join(p),
            None => data_dir.join("diskqueue"),
        }
    }

    pub(crate) fn settings(&self, data_dir: &Path) -> Result<Settings, String> {
        if self.max_size.0 == 0 {
            return Err("queue.disk.max_size must be more than 0 (default 10GiB)".into());
        }
        let segment_size = match self.segment_size {
            Some(s) if s.0 == 0 => {
                return Err("queue.disk.segment_size must be more than 0".into());
            }
            Some(s) => s.0.min(self.max_size.0),
            None => (self.max_size.0 / 10).clamp(1, DEFAULT_MAX_SEGMENT),
        };
        Ok(Settings {
            dir: self.dir(data_dir),
            max_size: self.max_size.0,
            segment_size,
            read_ahead: self.read_ahead.max(1),
            write_ahead: self.write_ahead.max(1),
            hand_over: self.read_ahead.max(1).saturating_mul(HAND_OVER_FACTOR),
            max_ahead_bytes: usize::try_from(self.max_ahead_bytes.0)
                .unwrap_or(usize::MAX)
                .max(1),
            retry_interval: self.retry_interval.0.max(Duration::from_millis(1)),
            max_retry_interval: self.max_retry_interval.0.max(self.retry_interval.0),
            sync: self.sync.mode,
            sync_interval: self.sync.interval.0,
            when_full: self.when_full,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_beats() {
        let s = DiskQueueConfig::default()
            .settings(Path::new("/data"))
            .unwrap();
        assert_eq!(s.dir, Path::new("/data/diskqueue"));
        assert_eq!(s.max_size, 10 << 30);
        // Not as Beats (1GiB): see DEFAULT_MAX_SEGMENT.
        assert_eq!(s.segment_size, DEFAULT_MAX_SEGMENT);
        assert_eq!((s.read_ahead, s.write_ahead), (2048, 2048));
        assert_eq!(s.sync, SyncMode::Batch);
        let small = DiskQueueConfig {
            max_size: ByteSize(1000),
            ..Default::default()
        };
        assert_eq!(small.settings(Path::new("/d")).unwrap().segment_size, 100);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let r: Result<DiskQueueConfig, _> =
            serde_json::from_value(serde_json::json!({"max_size": 10, "maxsize": 1}));
        assert!(r.is_err());
        let c: DiskQueueConfig = serde_json::from_value(
            serde_json::json!({"sync": {"mode": "interval", "interval": "2s"}, "when_full": "drop_newest"}),
        )
        .unwrap();
        assert_eq!(c.sync.mode, SyncMode::Interval);
        assert_eq!(c.when_full, WhenFull::DropNewest);
    }

    #[test]
    fn filebeat_yaml_with_units_parses_and_typos_name_the_key() {
        let root = skiff_config::parse_str(
            "queue.disk:\n  path: /var/lib/skiff/dq\n  max_size: 1GiB\n  segment_size: 64MiB\n  retry_interval: 500ms\n  sync: {mode: interval, interval: 2s}\n",
            None,
        )
        .unwrap();
        let c: DiskQueueConfig = root.get("queue.disk").unwrap().deserialize().unwrap();
        assert_eq!(c.max_size, ByteSize(1 << 30));
        assert_eq!(c.segment_size, Some(ByteSize(64 << 20)));
        assert_eq!(c.retry_interval.0, Duration::from_millis(500));
        assert_eq!(c.sync.interval.0, Duration::from_secs(2));
        assert_eq!(c.dir(Path::new("/data")), Path::new("/var/lib/skiff/dq"));
        let root = skiff_config::parse_str("queue.disk:\n  max_sise: 1GiB\n", None).unwrap();
        let err = root
            .get("queue.disk")
            .unwrap()
            .deserialize::<DiskQueueConfig>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_sise"), "{err}");
    }
}
