//! `system`: the local host, as Metricbeat's system module: `cpu`, `load`, `memory`,
//! `network`, `process` (top N by CPU and memory), `process_summary`, `filesystem`, `fsstat`,
//! `diskio`, `uptime`, `socket_summary`, with Metricbeat's field names and formulas
//! (percentages as ratios rounded to 4 decimals, `pct` per core and `norm.pct` per machine).
//!
//! Everything is read from `/proc` (under `hostfs`, default `/`, for a host mounted in a
//! container) through the `procfs` crate's parsers; sizes of filesystems come from
//! `statvfs`. Metricsets that compute rates keep the previous sample in their fetcher: the
//! first fetch's CPU percentages are averages since boot (the counters against zero), the
//! first `process` fetch has no `cpu.total.pct` yet and the first `diskio` has no `iostat`.

mod disk;
mod host;
mod process;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use skiff_config::{ConfigErrors, Node};

use crate::{Error, FetchContext, Fetcher, Module};

/// The module.
pub struct System;

/// The module's own keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// `hostfs`: where the host's filesystem is mounted. Default `/`.
    #[serde(default)]
    pub hostfs: Option<PathBuf>,
    /// `cpu.metrics`: `percentages`, `normalized_percentages`, `ticks`. Default the first two.
    #[serde(default)]
    pub cpu: Option<MetricsList>,
    /// `processes`: regular expressions on process names. Default `['.*']`.
    #[serde(default)]
    pub processes: Vec<String>,
    /// `process.*`.
    #[serde(default)]
    pub process: process::ProcessConfig,
    /// `filesystem.ignore_types`: default the `nodev` types of `/proc/filesystems`.
    #[serde(default)]
    pub filesystem: Option<FilesystemConfig>,
    /// `diskio.include_devices`: default all.
    #[serde(default)]
    pub diskio: Option<DiskioConfig>,
    /// `interfaces` (network): default all.
    #[serde(default)]
    pub interfaces: Vec<String>,
}

/// `cpu.metrics`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MetricsList {
    /// The list.
    #[serde(default)]
    pub metrics: Vec<String>,
}

/// `filesystem.*`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilesystemConfig {
    /// `ignore_types`.
    #[serde(default)]
    pub ignore_types: Option<Vec<String>>,
}

/// `diskio.*`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DiskioConfig {
    /// `include_devices`.
    #[serde(default)]
    pub include_devices: Vec<String>,
}

impl Module for System {
    fn name(&self) -> &'static str {
        "system"
    }

    fn metricsets(&self) -> &'static [&'static str] {
        &[
            "cpu",
            "load",
            "memory",
            "network",
            "process",
            "process_summary",
            "filesystem",
            "fsstat",
            "diskio",
            "uptime",
            "socket_summary",
        ]
    }

    fn default_metricsets(&self) -> &'static [&'static str] {
        &[
            "cpu",
            "load",
            "memory",
            "network",
            "process",
            "process_summary",
            "socket_summary",
        ]
    }

    fn build(
        &self,
        metricset: &str,
        _ctx: &FetchContext,
        own: &Node,
    ) -> Result<Box<dyn Fetcher>, ConfigErrors> {
        let cfg: Config = own.deserialize()?;
        let root = cfg.hostfs.clone().unwrap_or_else(|| PathBuf::from("/"));
        let err = |m: String| crate::config_error(own, m);
        Ok(match metricset {
            "cpu" => Box::new(host::Cpu::new(root, &cfg).map_err(err)?),
            "load" => Box::new(host::Load { root }),
            "memory" => Box::new(host::Memory { root }),
            "network" => Box::new(host::Network {
                root,
                interfaces: cfg.interfaces,
            }),
            "uptime" => Box::new(host::Uptime { root }),
            "socket_summary" => Box::new(host::SocketSummary { root }),
            "process_summary" => Box::new(process::Summary { root }),
            "process" => Box::new(process::Processes::new(root, &cfg).map_err(err)?),
            "filesystem" | "fsstat" => Box::new(disk::Filesystems::new(
                root,
                metricset == "fsstat",
                cfg.filesystem.and_then(|f| f.ignore_types),
            )),
            _ => Box::new(disk::DiskIo::new(
                root,
                cfg.diskio.map(|d| d.include_devices).unwrap_or_default(),
            )),
        })
    }
}

/// `x` rounded to 4 decimals, as Metricbeat rounds its ratios.
pub(crate) fn round4(x: f64) -> f64 {
    if x.is_finite() {
        (x * 10_000.0).round() / 10_000.0
    } else {
        0.0
    }
}

/// `root/rel`, for `rel` an absolute path like `/proc/stat`.
pub(crate) fn under(root: &Path, rel: &str) -> PathBuf {
    root.join(rel.trim_start_matches('/'))
}

/// A procfs error as a fetch error naming the file.
pub(crate) fn proc_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Other(format!("reading {what}: {e}"))
}

/// Clock ticks per second and page size, for the procfs parsers that need them.
pub(crate) fn system_info() -> procfs_core::ExplicitSystemInfo {
    procfs_core::ExplicitSystemInfo {
        boot_time_secs: 0,
        ticks_per_second: rustix::param::clock_ticks_per_second(),
        page_size: rustix::param::page_size() as u64,
        is_little_endian: cfg!(target_endian = "little"),
    }
}
