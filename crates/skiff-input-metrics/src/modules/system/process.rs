//! Processes: `process` (one event per process, the top N by CPU and by memory) and
//! `process_summary` (counts by state).
//!
//! A fetch reads `/proc/<pid>/stat` of every process (cheap: the ranking needs only CPU time
//! and RSS), then the heavier files (`status`, `cmdline`, `exe`, `cwd`, `limits`, `fd/`,
//! `cgroup`) of the selected processes only: that keeps a 10 s period well under 1 % of a core.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use async_trait::async_trait;
use procfs::process::{Process, Stat, all_processes_with_root};
use procfs_core::prelude::*;
use procfs_core::{KernelStats, Meminfo};
use regex::RegexSet;
use serde::Deserialize;
use serde_json::json;
use skiff_event::{Map, Timestamp, Value};

use super::{Config, proc_err, round4, system_info, under};
use crate::modules::schema::put;
use crate::{Error, Fetcher, MetricEvent};

/// `process.*`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
// `env` and `cmdline` are accepted so that Metricbeat configurations load.
#[allow(dead_code)]
pub(crate) struct ProcessConfig {
    /// `include_top_n.*`.
    #[serde(default)]
    pub include_top_n: TopN,
    /// `cgroups.enabled` (default true): add `system.process.cgroup.{id, path}`.
    #[serde(default)]
    pub cgroups: Option<Enabled>,
    /// `include_cpu_ticks` (default false): add `cpu.*.ticks`.
    #[serde(default)]
    pub include_cpu_ticks: bool,
    /// `env.whitelist`, `cmdline.cache.enabled`: accepted; environments are not reported.
    #[serde(default)]
    pub env: Option<serde_json::Value>,
    /// See `env`.
    #[serde(default)]
    pub cmdline: Option<serde_json::Value>,
}

/// `include_top_n.*`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TopN {
    /// `enabled` (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `by_cpu` (default 0).
    #[serde(default)]
    pub by_cpu: usize,
    /// `by_memory` (default 0).
    #[serde(default)]
    pub by_memory: usize,
}

impl Default for TopN {
    fn default() -> Self {
        TopN {
            enabled: true,
            by_cpu: 0,
            by_memory: 0,
        }
    }
}

/// `enabled`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Enabled {
    /// Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// Metricbeat's name of a `/proc/<pid>/stat` state letter.
pub(crate) fn state_name(c: char) -> &'static str {
    match c {
        'R' => "running",
        'S' | 'D' => "sleeping",
        'I' => "idle",
        'T' | 't' => "stopped",
        'Z' => "zombie",
        'X' | 'x' => "dead",
        _ => "unknown",
    }
}

/// `process_summary`.
pub(crate) struct Summary {
    pub(crate) root: PathBuf,
}

#[async_trait]
impl Fetcher for Summary {
    async fn fetch(&mut self) -> Result<Vec<MetricEvent>, Error> {
        let procs =
            all_processes_with_root(under(&self.root, "proc")).map_err(|e| proc_err("/proc", e))?;
        let mut counts: HashMap<&str, u64> = HashMap::new();
        let mut total = 0u64;
        for p in procs.flatten() {
            // A process that ended between the listing and the read is not counted.
            let Ok(stat) = p.stat() else { continue };
            total += 1;
            *counts.entry(state_name(stat.state)).or_default() += 1;
        }
        let mut fields = Map::new();
        fields.insert("total".into(), Value::from(total));
        for s in [
            "running", "sleeping", "idle", "stopped", "zombie", "dead", "unknown",
        ] {
            fields.insert(s.into(), Value::from(counts.get(s).copied().unwrap_or(0)));
        }
        if let Ok(ks) = KernelStats::from_file(under(&self.root, "proc/stat"), &system_info()) {
            put(
                &mut fields,
                "threads.running",
                Value::from(ks.procs_running.unwrap_or(0)),
            );
            put(
                &mut fields,
                "threads.blocked",
                Value::from(ks.procs_blocked.unwrap_or(0)),
            );
        }
        Ok(vec![MetricEvent {
            fields,
            namespace: Some("system.process.summary".into()),
            ..Default::default()
        }])
    }
}

/// `process`.
pub(crate) struct Processes {
    root: PathBuf,
    names: Option<RegexSet>,
    top: TopN,
    cgroups: bool,
    ticks: bool,
    /// CPU ticks of each pid (with its start time, against pid reuse) at the last fetch.
    last: HashMap<i32, (u64, u64)>,
    last_at: Option<Instant>,
}

impl Processes {
    pub(crate) fn new(root: PathBuf, cfg: &Config) -> Result<Self, String> {
        let names = if cfg.processes.is_empty() {
            None
        } else {
            Some(RegexSet::new(&cfg.processes).map_err(|e| format!("processes: {e}"))?)
        };
        Ok(Processes {
            root,
            names,
            top: TopN {
                enabled: cfg.process.include_top_n.enabled,
                by_cpu: cfg.process.include_top_n.by_cpu,
                by_memory: cfg.process.include_top_n.by_memory,
            },
            cgroups: cfg.process.cgroups.as_ref().is_none_or(|c| c.enabled),
            ticks: cfg.process.include_cpu_ticks,
            last: HashMap::new(),
            last_at: None,
        })
    }
}

struct Candidate {
    process: Process,
    stat: Stat,
    ticks: u64,
    pct: Option<f64>,
}

/// Keeps the union of the top `by_cpu` by CPU and the top `by_memory` by RSS (all when both
/// are 0 or the selection is off).
fn select<T>(
    mut items: Vec<T>,
    top: &TopN,
    cpu: impl Fn(&T) -> f64,
    rss: impl Fn(&T) -> u64,
) -> Vec<T> {
    if !top.enabled || (top.by_cpu == 0 && top.by_memory == 0) {
        return items;
    }
    let mut keep = vec![false; items.len()];
    let mut idx: Vec<usize> = (0..items.len()).collect();
    idx.sort_by(|a, b| cpu(&items[*b]).total_cmp(&cpu(&items[*a])));
    for i in idx.iter().take(top.by_cpu) {
        keep[*i] = true;
    }
    idx.sort_by_key(|i| std::cmp::Reverse(rss(&items[*i])));
    for i in idx.iter().take(top.by_memory) {
        keep[*i] = true;
    }
    let mut k = keep.into_iter();
    items.retain(|_| k.next().unwrap_or(false));
    items
}

fn user_names(root: &std::path::Path) -> HashMap<u32, String> {
    std::fs::read_to_string(under(root, "etc/passwd"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let uid = f.nth(1)?.parse().ok()?;
            Some((uid, name.to_owned()))
        })
        .collect()
}

#[async_trait]
impl Fetcher for Processes {
    async fn fetch(&mut self) -> Result<Vec<MetricEvent>, Error> {
        let si = system_info();
        let tps = si.ticks_per_second.max(1);
        let page = si.page_size;
        let now = Instant::now();
        let wall_ms = self
            .last_at
            .map(|t| now.duration_since(t).as_secs_f64() * 1000.0);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let procs =
            all_processes_with_root(under(&self.root, "proc")).map_err(|e| proc_err("/proc", e))?;
        let mut next = HashMap::new();
        let mut cands = Vec::new();
        for p in procs.flatten() {
            let Ok(stat) = p.stat() else { continue };
            if let Some(names) = &self.names
                && !names.is_match(&stat.comm)
            {
                continue;
            }
            let ticks = stat.utime + stat.stime;
            let pct = match (self.last.get(&stat.pid), wall_ms) {
                (Some((start, before)), Some(ms)) if *start == stat.starttime && ms > 0.0 => {
                    Some(ticks.saturating_sub(*before) as f64 * 1000.0 / tps as f64 / ms)
                }
                _ => None,
            };
            next.insert(stat.pid, (stat.starttime, ticks));
            cands.push(Candidate {
                process: p,
                stat,
                ticks,
                pct,
            });
        }
        self.last = next;
        self.last_at = Some(now);
        let chosen = select(cands, &self.top, |c| c.pct.unwrap_or(0.0), |c| c.stat.rss);
        let mem_total =
            Meminfo::from_file(under(&self.root, "proc/meminfo")).map_or(0, |m| m.mem_total);
        let boot =
            KernelStats::from_file(under(&self.root, "proc/stat"), &si).map_or(0, |k| k.btime);
        let users = user_names(&self.root);
        let mut out = Vec::with_capacity(chosen.len());
        for c in chosen {
            out.push(self.event(&c, tps, page, cores, mem_total, boot, &users));
        }
        Ok(out)
    }
}

impl Processes {
    #[allow(clippy::too_many_arguments)]
    fn event(
        &self,
        c: &Candidate,
        tps: u64,
        page: u64,
        cores: f64,
        mem_total: u64,
        boot: u64,
        users: &HashMap<u32, String>,
    ) -> MetricEvent {
        let s = &c.stat;
        let p = &c.process;
        let ms = |t: u64| t * 1000 / tps;
        let rss = s.rss * page;
        let start_ms = boot * 1000 + ms(s.starttime);
        let start = Timestamp(
            i64::try_from(start_ms)
                .unwrap_or(0)
                .saturating_mul(1_000_000),
        );
        let mut f = json!({
            "state": state_name(s.state),
            "num_threads": s.num_threads,
            "cpu": {
                "start_time": start.to_rfc3339_millis(),
                "total": {"value": ms(c.ticks), "ticks": ms(c.ticks)},
            },
            "memory": {
                "size": s.vsize,
                "rss": {"bytes": rss, "pct": if mem_total > 0 { round4(rss as f64 / mem_total as f64) } else { 0.0 }},
            },
        });
        if let Some(pct) = c.pct {
            f["cpu"]["total"]["pct"] = Value::from(round4(pct));
            f["cpu"]["total"]["norm"] = json!({"pct": round4(pct / cores)});
        }
        if self.ticks {
            f["cpu"]["user"] = json!({"ticks": ms(s.utime)});
            f["cpu"]["system"] = json!({"ticks": ms(s.stime)});
        }
        if let Ok(statm) = p.statm() {
            f["memory"]["share"] = Value::from(statm.shared * page);
        }
        if let Ok(n) = p.fd_count() {
            f["fd"] = json!({"open": n});
        }
        if let Ok(l) = p.limits() {
            let v = |x: &procfs::process::LimitValue| match x {
                procfs::process::LimitValue::Unlimited => Value::from(u64::MAX),
                procfs::process::LimitValue::Value(n) => Value::from(*n),
            };
            f["fd"]["limit"] = json!({"soft": v(&l.max_open_files.soft_limit), "hard": v(&l.max_open_files.hard_limit)});
        }
        let args = p.cmdline().unwrap_or_default();
        if !args.is_empty() {
            f["cmdline"] = Value::from(args.join(" "));
        }
        if self.cgroups
            && let Ok(text) =
                std::fs::read_to_string(under(&self.root, &format!("proc/{}/cgroup", s.pid)))
            && let Some(path) = text.lines().find_map(|l| l.strip_prefix("0::"))
        {
            let id = path.rsplit('/').next().unwrap_or(path);
            f["cgroup"] = json!({"path": path, "id": id});
        }
        let mut root = json!({
            "process": {"pid": s.pid, "ppid": s.ppid, "pgid": s.pgrp, "name": s.comm},
        });
        if !args.is_empty() {
            root["process"]["args"] = Value::from(args);
        }
        if let Ok(exe) = p.exe() {
            root["process"]["executable"] = Value::from(exe.display().to_string());
        }
        if let Ok(cwd) = p.cwd() {
            root["process"]["working_directory"] = Value::from(cwd.display().to_string());
        }
        if let Ok(st) = p.status()
            && let Some(name) = users.get(&st.ruid)
        {
            root["user"] = json!({"name": name});
        }
        MetricEvent {
            fields: f.as_object().cloned().unwrap_or_default(),
            root_fields: root.as_object().cloned().unwrap_or_default(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_n_is_the_union_of_both_rankings() {
        // (cpu, rss)
        let items = vec![(0.9, 1), (0.1, 100), (0.5, 50), (0.0, 0)];
        let top = TopN {
            enabled: true,
            by_cpu: 1,
            by_memory: 1,
        };
        let got = select(items.clone(), &top, |x| x.0, |x| x.1);
        assert_eq!(got, vec![(0.9, 1), (0.1, 100)]);
        let all = TopN {
            enabled: true,
            by_cpu: 0,
            by_memory: 0,
        };
        assert_eq!(select(items, &all, |x| x.0, |x| x.1).len(), 4);
    }
}
