//! Host-wide metricsets: cpu, load, memory, network, uptime, socket_summary.

use std::path::PathBuf;

use async_trait::async_trait;
use procfs_core::prelude::*;
use procfs_core::{CpuTime, KernelStats, LoadAverage, Meminfo, VmStat};
use serde_json::json;
use skiff_event::{Map, Value};

use super::{Config, proc_err, round4, system_info, under};
use crate::modules::schema::put;
use crate::{Error, Fetcher, MetricEvent};

fn event(fields: Value) -> Vec<MetricEvent> {
    vec![MetricEvent::from_value(fields)]
}

/// Reads a file of the host's `/proc` with a procfs parser.
fn read<T: FromRead>(root: &std::path::Path, rel: &str) -> Result<T, Error> {
    T::from_file(under(root, rel)).map_err(|e| proc_err(rel, e))
}

/// `cpu`.
pub(crate) struct Cpu {
    root: PathBuf,
    pct: bool,
    norm: bool,
    ticks: bool,
    last: Option<CpuTime>,
}

const STATES: [&str; 8] = [
    "user", "system", "nice", "idle", "iowait", "irq", "softirq", "steal",
];

fn states(t: &CpuTime) -> [u64; 8] {
    [
        t.user,
        t.system,
        t.nice,
        t.idle,
        t.iowait.unwrap_or(0),
        t.irq.unwrap_or(0),
        t.softirq.unwrap_or(0),
        t.steal.unwrap_or(0),
    ]
}

impl Cpu {
    pub(crate) fn new(root: PathBuf, cfg: &Config) -> Result<Cpu, String> {
        let metrics: Vec<String> = cfg
            .cpu
            .as_ref()
            .map(|c| c.metrics.clone())
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| vec!["percentages".into(), "normalized_percentages".into()]);
        for m in &metrics {
            if !["percentages", "normalized_percentages", "ticks"].contains(&m.as_str()) {
                return Err(format!(
                    "cpu.metrics: `{m}` is not one of percentages, normalized_percentages, ticks"
                ));
            }
        }
        let has = |m: &str| metrics.iter().any(|x| x == m);
        Ok(Cpu {
            root,
            pct: has("percentages"),
            norm: has("normalized_percentages"),
            ticks: has("ticks"),
            last: None,
        })
    }
}

/// The `system.cpu` fields from two samples (`prev` all zeros on the first fetch).
pub(crate) fn cpu_fields(
    prev: &[u64; 8],
    now: &[u64; 8],
    cores: usize,
    pct: bool,
    norm: bool,
    ticks: bool,
) -> Map {
    let mut m = Map::new();
    m.insert("cores".into(), Value::from(cores));
    let delta: Vec<u64> = now
        .iter()
        .zip(prev)
        .map(|(n, p)| n.saturating_sub(*p))
        .collect();
    let total: u64 = delta.iter().sum();
    let ratio = |d: u64| {
        if total == 0 {
            0.0
        } else {
            d as f64 / total as f64
        }
    };
    let cores_f = cores as f64;
    for (i, name) in STATES.iter().enumerate() {
        if pct {
            put(
                &mut m,
                &format!("{name}.pct"),
                Value::from(round4(ratio(delta[i]) * cores_f)),
            );
        }
        if norm {
            put(
                &mut m,
                &format!("{name}.norm.pct"),
                Value::from(round4(ratio(delta[i]))),
            );
        }
        if ticks {
            put(&mut m, &format!("{name}.ticks"), Value::from(now[i]));
        }
    }
    // iowait counts as idle.
    let busy = if total == 0 {
        0.0
    } else {
        1.0 - ratio(delta[3]) - ratio(delta[4])
    };
    if pct {
        put(&mut m, "total.pct", Value::from(round4(busy * cores_f)));
    }
    if norm {
        put(&mut m, "total.norm.pct", Value::from(round4(busy)));
    }
    m
}

#[async_trait]
impl Fetcher for Cpu {
    async fn fetch(&mut self) -> Result<Vec<MetricEvent>, Error> {
        let path = under(&self.root, "proc/stat");
        let ks =
            KernelStats::from_file(&path, &system_info()).map_err(|e| proc_err("/proc/stat", e))?;
        let now = states(&ks.total);
        let prev = self.last.as_ref().map_or([0; 8], states);
        self.last = Some(ks.total);
        let cores = ks.cpu_time.len().max(1);
        let fields = cpu_fields(&prev, &now, cores, self.pct, self.norm, self.ticks);
        let mut ev = MetricEvent::new(fields);
        if self.norm {
            let usage = ev
                .fields
                .get("total")
                .and_then(|t| t.get("norm"))
                .and_then(|n| n.get("pct"))
                .cloned();
            if let Some(u) = usage {
                put(&mut ev.root_fields, "host.cpu.usage", u);
            }
        }
        Ok(vec![ev])
    }
}

/// A float read as f32 by the parser, printed back as the kernel wrote it (`2.33`, not
/// `2.3299999`).
fn f32_exact(x: f32) -> f64 {
    format!("{x}").parse().unwrap_or(f64::from(x))
}

/// `load`.
pub(crate) struct Load {
    pub(crate) root: PathBuf,
}

#[async_trait]
impl Fetcher for Load {
    async fn fetch(&mut self) -> Result<Vec<MetricEvent>, Error> {
        let l: LoadAverage = read(&self.root, "proc/loadavg")?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let (one, five, fifteen) = (f32_exact(l.one), f32_exact(l.five), f32_exact(l.fifteen));
        Ok(event(json!({
            "1": one, "5": five, "15": fifteen, "cores": cores as u64,
            "norm": {"1": round4(one / cores), "5": round4(five / cores), "15": round4(fifteen / cores)},
        })))
    }
}

/// `memory`.
pub(crate) struct Memory {
    pub(crate) root: PathBuf,
}

/// The `system.memory` fields from `/proc/meminfo` and `/proc/vmstat`.
pub(crate) fn memory_fields(mi: &Meminfo, vm: Option<&VmStat>) -> Value {
    let pct = |part: u64, whole: u64| {
        if whole == 0 {
            0.0
        } else {
            round4(part as f64 / whole as f64)
        }
    };
    let total = mi.mem_total;
    let used = total.saturating_sub(mi.mem_free);
    let actual_free = mi
        .mem_available
        .unwrap_or(mi.mem_free + mi.buffers + mi.cached);
    let actual_used = total.saturating_sub(actual_free);
    let swap_used = mi.swap_total.saturating_sub(mi.swap_free);
    let mut m = json!({
        "total": total,
        "free": mi.mem_free,
        "cached": mi.cached,
        "used": {"bytes": used, "pct": pct(used, total)},
        "actual": {"free": actual_free, "used": {"bytes": actual_used, "pct": pct(actual_used, total)}},
        "swap": {"total": mi.swap_total, "free": mi.swap_free, "used": {"bytes": swap_used, "pct": pct(swap_used, mi.swap_total)}},
    });
    if let (Some(t), Some(f), Some(size)) = (mi.hugepages_total, mi.hugepages_free, mi.hugepagesize)
    {
        let r = mi.hugepages_rsvd.unwrap_or(0);
        let used_pages = (t + r).saturating_sub(f);
        m["hugepages"] = json!({
            "total": t, "free": f, "reserved": r, "surplus": mi.hugepages_surp.unwrap_or(0),
            "default_size": size,
            "used": {"bytes": used_pages * size, "pct": pct(used_pages, t)},
        });
    }
    if let Some(vm) = vm {
        let g = |k: &str| vm.0.get(k).copied().unwrap_or(0).max(0) as u64;
        m["swap"]["in"] = json!({"pages": g("pswpin")});
        m["swap"]["out"] = json!({"pages": g("pswpout")});
        m["swap"]["readahead"] = json!({"pages": g("swap_ra"), "cached": g("swap_ra_hit")});
        let scan_k = g("pgscan_kswapd");
        let scan_d = g("pgscan_direct");
        let steal_k = g("pgsteal_kswapd");
        let steal_d = g("pgsteal_direct");
        let mut ps = json!({
            "pgscan_kswapd": {"pages": scan_k}, "pgscan_direct": {"pages": scan_d},
            "pgsteal_kswapd": {"pages": steal_k}, "pgsteal_direct": {"pages": steal_d},
            "pgfree": {"pages": g("pgfree")},
        });
        if scan_k != 0 {
            ps["kswapd_efficiency"] = json!({"pct": pct(steal_k, scan_k)});
        }
        if scan_d != 0 {
            ps["direct_efficiency"] = json!({"pct": pct(steal_d, scan_d)});
        }
        m["page_stats"] = ps;
        m["hugepages"]["swap"] =
            json!({"out": {"pages": g("thp_swpout"), "fallback": g("thp_swpout_fallback")}});
    }
    m
}

#[async_trait]
impl Fetcher for Memory {
    async fn fetch(&mut self) -> Result<Vec<MetricEvent>, Error> {
        let mi: Meminfo = read(&self.root, "proc/meminfo")?;
        let vm: Option<VmStat> = read(&self.root, "proc/vmstat").ok();
        Ok(event(memory_fields(&mi, vm.as_ref())))
    }
}

/// `network`.
pub(crate) struct Network {
    pub(crate) root: PathBuf,
    pub(crate) interfaces: Vec<String>,
}

#[async_trait]
impl Fetcher for Network {
    async fn fetch(&mut self) -> Result<Vec<MetricEvent>, Error> {
        let devs: procfs_core::net::InterfaceDeviceStatus = read(&self.root, "proc/net/dev")?;
        let mut out: Vec<MetricEvent> = devs
            .0
            .values()
            .filter(|d| {
                self.interfaces.is_empty()
                    || self.interfaces.iter().any(|i| i.eq_ignore_ascii_case(&d.name))
            })
            .map(|d| {
                MetricEvent::from_value(json!({
                    "name": d.name,
                    "in": {"bytes": d.recv_bytes, "packets": d.recv_packets, "errors": d.recv_errs, "dropped": d.recv_drop},
                    "out": {"bytes": d.sent_bytes, "packets": d.sent_packets, "errors": d.sent_errs, "dropped": d.sent_drop},
                }))
            })
            .collect();
        out.sort_by(|a, b| a.fields["name"].as_str().cmp(&b.fields["name"].as_str()));
        Ok(out)
    }
}

/// `uptime`.
pub(crate) struct Uptime {
    pub(crate) root: PathBuf,
}

#[async_trait]
impl Fetcher for Uptime {
    async fn fetch(&mut self) -> Result<Vec<MetricEvent>, Error> {
        let u: procfs_core::Uptime = read(&self.root, "proc/uptime")?;
        Ok(event(
            json!({"duration": {"ms": (u.uptime * 1000.0) as u64}}),
        ))
    }
}

/// `socket_summary`.
pub(crate) struct SocketSummary {
    pub(crate) root: PathBuf,
}

/// `/proc/net/sockstat`: `(protocol, key) -> value`.
pub(crate) fn sockstat(text: &str) -> std::collections::HashMap<(String, String), u64> {
    let mut out = std::collections::HashMap::new();
    for line in text.lines() {
        let Some((proto, rest)) = line.split_once(':') else {
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        for pair in words.chunks(2) {
            if let [k, v] = pair
                && let Ok(v) = v.parse()
            {
                out.insert((proto.trim().to_owned(), (*k).to_owned()), v);
            }
        }
    }
    out
}

/// TCP states by the kernel's numbers (`include/net/tcp_states.h`).
const TCP_STATES: &[(u8, &str)] = &[
    (1, "established"),
    (2, "syn_sent"),
    (3, "syn_recv"),
    (4, "fin_wait1"),
    (5, "fin_wait2"),
    (6, "time_wait"),
    (8, "close_wait"),
    (9, "last_ack"),
    (10, "listening"),
    (11, "closing"),
];

/// The state column of every socket in a `/proc/net/{tcp,udp}[6]` table.
fn socket_states(text: &str) -> Vec<u8> {
    text.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(3))
        .filter_map(|s| u8::from_str_radix(s, 16).ok())
        .collect()
}

#[async_trait]
impl Fetcher for SocketSummary {
    async fn fetch(&mut self) -> Result<Vec<MetricEvent>, Error> {
        let read_text = |rel: &str| std::fs::read_to_string(under(&self.root, rel));
        let ss = read_text("proc/net/sockstat").map_err(|e| proc_err("/proc/net/sockstat", e))?;
        let ss = sockstat(&ss);
        let states = |files: [&str; 2]| -> Vec<u8> {
            files
                .iter()
                .filter_map(|rel| read_text(rel).ok())
                .flat_map(|t| socket_states(&t))
                .collect()
        };
        let tcp = states(["proc/net/tcp", "proc/net/tcp6"]);
        let udp = states(["proc/net/udp", "proc/net/udp6"]);
        let page = rustix::param::page_size() as u64;
        let get = |p: &str, k: &str| ss.get(&(p.to_owned(), k.to_owned())).copied().unwrap_or(0);
        let mut tcp_all = Map::new();
        tcp_all.insert("count".into(), Value::from(tcp.len()));
        for (n, name) in TCP_STATES {
            tcp_all.insert(
                (*name).into(),
                Value::from(tcp.iter().filter(|s| *s == n).count()),
            );
        }
        tcp_all.insert("orphan".into(), Value::from(get("TCP", "orphan")));
        let listening = tcp.iter().filter(|s| **s == 10).count();
        Ok(vec![MetricEvent {
            fields: json!({
                "all": {"count": tcp.len() + udp.len(), "listening": listening},
                "tcp": {"memory": get("TCP", "mem") * page, "all": tcp_all},
                "udp": {"memory": get("UDP", "mem") * page, "all": {"count": udp.len()}},
            })
            .as_object()
            .cloned()
            .unwrap_or_default(),
            namespace: Some("system.socket.summary".into()),
            ..Default::default()
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_percentages_follow_metricbeat() {
        // user 10, system 10, idle 70, iowait 10 over 100 ticks on 2 cores.
        let prev = [100, 100, 0, 1000, 0, 0, 0, 0];
        let now = [110, 110, 0, 1070, 10, 0, 0, 0];
        let m = Value::Object(cpu_fields(&prev, &now, 2, true, true, true));
        assert_eq!(m["user"]["pct"], 0.2);
        assert_eq!(m["user"]["norm"]["pct"], 0.1);
        assert_eq!(m["idle"]["norm"]["pct"], 0.7);
        assert_eq!(m["total"]["norm"]["pct"], 0.2);
        assert_eq!(m["total"]["pct"], 0.4);
        assert_eq!(m["user"]["ticks"], 110);
        // No time passed: zeros, not NaN.
        let m = Value::Object(cpu_fields(&now, &now, 2, true, true, false));
        assert_eq!(m["total"]["pct"], 0.0);
    }

    #[test]
    fn the_corpus_sockstat() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(
            "../../../shared/corpus/metricbeat-modules/system/socket_summary/testdata/sockstat",
        );
        let s = sockstat(&std::fs::read_to_string(p).unwrap());
        assert_eq!(s[&("TCP".into(), "inuse".into())], 2);
        assert_eq!(s[&("TCP".into(), "mem".into())], 1);
        assert_eq!(s[&("UDP".into(), "mem".into())], 11);
        assert_eq!(s[&("sockets".into(), "used".into())], 249);
    }
}
