//! Disks and filesystems: filesystem, fsstat, diskio.

use std::collections::HashMap;
use std::path::PathBuf;

use async_trait::async_trait;
use procfs_core::prelude::*;
use procfs_core::{DiskStat, DiskStats, KernelStats};
use serde_json::json;
use skiff_event::Value;

use super::{proc_err, round4, system_info, under};
use crate::{Error, Fetcher, MetricEvent};

/// `filesystem` (one event per filesystem) or `fsstat` (their totals).
pub(crate) struct Filesystems {
    root: PathBuf,
    totals: bool,
    ignore_types: Option<Vec<String>>,
}

impl Filesystems {
    pub(crate) fn new(root: PathBuf, totals: bool, ignore_types: Option<Vec<String>>) -> Self {
        Filesystems {
            root,
            totals,
            ignore_types,
        }
    }
}

/// A mount table's field with its octal escapes (`\040` for a space) decoded.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && let Some(oct) = s.get(i + 1..i + 4)
            && let Ok(v) = u8::from_str_radix(oct, 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `(device, mount point, type)` of every line of a mounts file.
pub(crate) fn mounts(text: &str) -> Vec<(String, String, String)> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((
                unescape(w.next()?),
                unescape(w.next()?),
                w.next()?.to_owned(),
            ))
        })
        .collect()
}

/// The `nodev` types of `/proc/filesystems`: the default `ignore_types`.
fn nodev_types(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("nodev"))
        .map(|t| t.trim().to_owned())
        .collect()
}

#[async_trait]
impl Fetcher for Filesystems {
    async fn fetch(&mut self) -> Result<Vec<MetricEvent>, Error> {
        let rel = if self.root == std::path::Path::new("/") {
            "proc/self/mounts"
        } else {
            "proc/1/mounts"
        };
        let text = std::fs::read_to_string(under(&self.root, rel)).map_err(|e| proc_err(rel, e))?;
        let ignore = match &self.ignore_types {
            Some(t) => t.clone(),
            None => std::fs::read_to_string(under(&self.root, "proc/filesystems"))
                .map(|t| nodev_types(&t))
                .unwrap_or_default(),
        };
        let mut seen = std::collections::HashSet::new();
        let mut events = Vec::new();
        let (mut count, mut files, mut free, mut used, mut total) = (0u64, 0u64, 0u64, 0u64, 0u64);
        for (device, mount_point, kind) in mounts(&text) {
            if ignore.contains(&kind) || !seen.insert(mount_point.clone()) {
                continue;
            }
            let Ok(st) = rustix::fs::statvfs(under(&self.root, &mount_point)) else {
                continue;
            };
            let frsize = if st.f_frsize > 0 {
                st.f_frsize
            } else {
                st.f_bsize
            };
            let t = st.f_blocks * frsize;
            if t == 0 {
                continue;
            }
            let f = st.f_bfree * frsize;
            let avail = st.f_bavail * frsize;
            let u = t.saturating_sub(f);
            let pct = if u + avail == 0 {
                0.0
            } else {
                round4(u as f64 / (u + avail) as f64)
            };
            count += 1;
            files += st.f_files;
            free += f;
            used += u;
            total += t;
            events.push(MetricEvent::from_value(json!({
                "device_name": device, "mount_point": mount_point, "type": kind,
                "total": t, "free": f, "available": avail,
                "used": {"bytes": u, "pct": pct},
                "files": st.f_files, "free_files": st.f_ffree,
            })));
        }
        if self.totals {
            return Ok(vec![MetricEvent::from_value(json!({
                "count": count, "total_files": files,
                "total_size": {"free": free, "used": used, "total": total},
            }))]);
        }
        Ok(events)
    }
}

/// `diskio`.
pub(crate) struct DiskIo {
    root: PathBuf,
    include: Vec<String>,
    last: HashMap<String, DiskStat>,
    last_cpu_ticks: Option<u64>,
}

impl DiskIo {
    pub(crate) fn new(root: PathBuf, include: Vec<String>) -> Self {
        DiskIo {
            root,
            include,
            last: HashMap::new(),
            last_cpu_ticks: None,
        }
    }
}

/// `iostat.*` between two samples `dms` milliseconds apart.
pub(crate) fn iostat(prev: &DiskStat, now: &DiskStat, dms: f64) -> Value {
    let d = |a: u64, b: u64| a.saturating_sub(b) as f64;
    let per_sec = |x: f64| {
        if dms > 0.0 {
            round4(x * 1000.0 / dms)
        } else {
            0.0
        }
    };
    let rd = d(now.reads, prev.reads);
    let wr = d(now.writes, prev.writes);
    let ios = rd + wr;
    let rbytes = d(now.sectors_read, prev.sectors_read) * 512.0;
    let wbytes = d(now.sectors_written, prev.sectors_written) * 512.0;
    let rtime = d(now.time_reading, prev.time_reading);
    let wtime = d(now.time_writing, prev.time_writing);
    let io_time = d(now.time_in_progress, prev.time_in_progress);
    let div = |a: f64, b: f64| if b > 0.0 { round4(a / b) } else { 0.0 };
    json!({
        "read": {
            "request": {"merges_per_sec": per_sec(d(now.merged, prev.merged)), "per_sec": per_sec(rd)},
            "per_sec": {"bytes": per_sec(rbytes)},
            "await": div(rtime, rd),
        },
        "write": {
            "request": {"merges_per_sec": per_sec(d(now.writes_merged, prev.writes_merged)), "per_sec": per_sec(wr)},
            "per_sec": {"bytes": per_sec(wbytes)},
            "await": div(wtime, wr),
        },
        "request": {"avg_size": div(rbytes + wbytes, ios)},
        "queue": {"avg_size": div(d(now.weighted_time_in_progress, prev.weighted_time_in_progress), dms)},
        "await": div(rtime + wtime, ios),
        "service_time": div(io_time, ios),
        "busy": if dms > 0.0 { round4((100.0 * io_time / dms).min(100.0)) } else { 0.0 },
    })
}

fn serial(root: &std::path::Path, major: i32, minor: i32) -> Option<String> {
    let text =
        std::fs::read_to_string(under(root, &format!("run/udev/data/b{major}:{minor}"))).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("E:ID_SERIAL="))
        .map(str::to_owned)
}

#[async_trait]
impl Fetcher for DiskIo {
    async fn fetch(&mut self) -> Result<Vec<MetricEvent>, Error> {
        let stats: DiskStats = DiskStats::from_file(under(&self.root, "proc/diskstats"))
            .map_err(|e| proc_err("/proc/diskstats", e))?;
        // The interval, as Metricbeat measures it: CPU time elapsed over the cores.
        let si = system_info();
        let ks = KernelStats::from_file(under(&self.root, "proc/stat"), &si).ok();
        let cpu_ticks = ks.as_ref().map(|k| {
            let t = &k.total;
            t.user
                + t.nice
                + t.system
                + t.idle
                + t.iowait.unwrap_or(0)
                + t.irq.unwrap_or(0)
                + t.softirq.unwrap_or(0)
                + t.steal.unwrap_or(0)
        });
        let cores = ks.as_ref().map_or(1, |k| k.cpu_time.len().max(1)) as f64;
        let dms = match (self.last_cpu_ticks, cpu_ticks) {
            (Some(a), Some(b)) if b > a => {
                (b - a) as f64 / cores / si.ticks_per_second as f64 * 1000.0
            }
            _ => 0.0,
        };
        let mut out = Vec::new();
        let mut next = HashMap::new();
        for s in stats.0 {
            if !self.include.is_empty() && !self.include.contains(&s.name) {
                continue;
            }
            if self.include.is_empty() && s.reads == 0 && s.writes == 0 {
                continue;
            }
            let mut v = json!({
                "name": s.name,
                "read": {"count": s.reads, "bytes": s.sectors_read * 512, "time": s.time_reading},
                "write": {"count": s.writes, "bytes": s.sectors_written * 512, "time": s.time_writing},
                "io": {"time": s.time_in_progress, "ops": s.in_progress},
            });
            if let Some(sn) = serial(&self.root, s.major, s.minor) {
                v["serial_number"] = Value::from(sn);
            }
            if let Some(prev) = self.last.get(&s.name)
                && dms > 0.0
            {
                v["iostat"] = iostat(prev, &s, dms);
            }
            out.push(MetricEvent::from_value(v));
            next.insert(s.name.clone(), s);
        }
        self.last = next;
        self.last_cpu_ticks = cpu_ticks;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_corpus_diskstats_and_iostat() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(
            "../../../shared/corpus/metricbeat-modules/system/diskio/testdata/proc/diskstats",
        );
        let stats = DiskStats::from_file(p).unwrap();
        assert!(!stats.0.is_empty());
        let a = stats.0[0].clone();
        let mut b = a.clone();
        b.reads += 100;
        b.sectors_read += 800;
        b.time_reading += 50;
        b.time_in_progress += 500;
        let io = iostat(&a, &b, 1000.0);
        assert_eq!(io["read"]["request"]["per_sec"], 100.0);
        assert_eq!(io["read"]["per_sec"]["bytes"], 409600.0);
        assert_eq!(io["read"]["await"], 0.5);
        assert_eq!(io["busy"], 50.0);
        assert_eq!(io["request"]["avg_size"], 4096.0);
    }

    #[test]
    fn mount_lines_decode_spaces() {
        let m = mounts("/dev/sda1 /mnt/my\\040disk ext4 rw 0 0\n");
        assert_eq!(m[0].1, "/mnt/my disk");
        assert_eq!(nodev_types("nodev\tproc\n\text4\n"), vec!["proc"]);
    }
}
