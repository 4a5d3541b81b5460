//! `golang`: a Go program's expvar document (`/debug/vars`), as Metricbeat's golang module.
//!
//! * `heap`: the `memstats` object mapped to `golang.heap.*`, with `gc.pause.*` computed over
//!   the GC cycles since the previous fetch (all cycles so far on the first fetch) from the
//!   256-entry `PauseNs` ring, so at most the last 256 cycles count;
//! * `expvar`: the whole document under `golang.<expvar.namespace>.*` (dataset
//!   `golang.<namespace>`), `cmdline` joined into one string.
//!
//! Options: `heap.path`, `expvar.path` (default `/debug/vars`), `expvar.namespace` (required
//! by `expvar`). Default host `localhost:6060`.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;
use skiff_config::{ConfigError, ConfigErrors, Node};
use skiff_event::{Map, Value};

use crate::http::HttpFetch;
use crate::{Error, FetchContext, Fetcher, MetricEvent, Module};

/// The module.
pub struct Golang;

const DEFAULT_PATH: &str = "/debug/vars";

/// The module's own keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `heap.*`.
    #[serde(default)]
    heap: PathConfig,
    /// `expvar.*`.
    #[serde(default)]
    expvar: ExpvarConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PathConfig {
    /// `path`: where the expvar document is served. Default `/debug/vars`.
    #[serde(default)]
    path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpvarConfig {
    /// `namespace`: the events' place, `golang.<namespace>`. Required by `expvar`.
    #[serde(default)]
    namespace: Option<String>,
    /// `path`: where the expvar document is served. Default `/debug/vars`.
    #[serde(default)]
    path: Option<String>,
}

impl Module for Golang {
    fn name(&self) -> &'static str {
        "golang"
    }

    fn metricsets(&self) -> &'static [&'static str] {
        &["heap", "expvar"]
    }

    fn default_hosts(&self) -> &'static [&'static str] {
        &["localhost:6060"]
    }

    fn build(
        &self,
        metricset: &str,
        ctx: &FetchContext,
        own: &Node,
    ) -> Result<Box<dyn Fetcher>, ConfigErrors> {
        let cfg: Config = own.deserialize()?;
        let http_err = |e: Error| crate::config_error(own, e);
        if metricset == "heap" {
            let path = cfg.heap.path.as_deref().unwrap_or(DEFAULT_PATH);
            let http = HttpFetch::new(ctx, path, "").map_err(http_err)?;
            return Ok(Box::new(Heap {
                http,
                last_num_gc: 0,
            }));
        }
        let Some(namespace) = cfg.expvar.namespace.filter(|n| !n.is_empty()) else {
            return Err(ConfigErrors(vec![ConfigError::new(
                format!("{}expvar.namespace", prefix(own)),
                own.mark.clone(),
                "the `expvar` metricset needs `expvar.namespace` (its events go under golang.<namespace>)",
            )]));
        };
        let path = cfg.expvar.path.as_deref().unwrap_or(DEFAULT_PATH);
        let http = HttpFetch::new(ctx, path, "").map_err(http_err)?;
        Ok(Box::new(Expvar { http, namespace }))
    }
}

fn prefix(n: &Node) -> String {
    if n.path.is_empty() {
        String::new()
    } else {
        format!("{}.", n.path)
    }
}

/// `cmdline` as one string: the array's items joined by spaces.
fn cmdline(doc: &Value) -> Option<String> {
    let items = doc.get("cmdline")?.as_array()?;
    Some(
        items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

struct Heap {
    http: HttpFetch,
    last_num_gc: u64,
}

fn u(ms: &Map, k: &str) -> u64 {
    ms.get(k).and_then(Value::as_u64).unwrap_or(0)
}

/// The GC pauses of the cycles `last..num_gc` (at most the last 256, the ring's size):
/// (count, sum, max, avg) in nanoseconds.
pub fn pauses(pause_ns: &[u64], last: u64, num_gc: u64) -> (u64, u64, u64, u64) {
    let last = if last > num_gc { 0 } else { last };
    let start = last.max(num_gc.saturating_sub(256));
    let count = num_gc - start;
    let (mut sum, mut max) = (0u64, 0u64);
    for i in start..num_gc {
        let p = usize::try_from(i % 256)
            .ok()
            .and_then(|i| pause_ns.get(i))
            .copied()
            .unwrap_or(0);
        sum = sum.saturating_add(p);
        max = max.max(p);
    }
    let avg = sum.checked_div(count).unwrap_or(0);
    (count, sum, max, avg)
}

#[async_trait]
impl Fetcher for Heap {
    async fn fetch(&mut self) -> Result<Vec<MetricEvent>, Error> {
        let doc = self.http.get_json().await?;
        let Some(ms) = doc.get("memstats").and_then(Value::as_object) else {
            return Err(Error::parse(
                &self.http.url,
                "no `memstats` object: is this a Go expvar document (import _ \"expvar\")?",
            ));
        };
        let num_gc = u(ms, "NumGC");
        let ring: Vec<u64> = ms
            .get("PauseNs")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|v| v.as_u64().unwrap_or(0)).collect())
            .unwrap_or_default();
        let (count, sum, max, avg) = pauses(&ring, self.last_num_gc, num_gc);
        self.last_num_gc = num_gc;
        let mut fields = json!({
            "allocations": {
                "mallocs": u(ms, "Mallocs"),
                "frees": u(ms, "Frees"),
                "objects": u(ms, "HeapObjects"),
                "total": u(ms, "TotalAlloc"),
                "allocated": u(ms, "HeapAlloc"),
                "idle": u(ms, "HeapIdle"),
                "active": u(ms, "HeapInuse"),
            },
            "system": {
                "total": u(ms, "Sys"),
                "obtained": u(ms, "HeapSys"),
                "stack": u(ms, "StackSys"),
                "released": u(ms, "HeapReleased"),
            },
            "gc": {
                "next_gc_limit": u(ms, "NextGC"),
                "total_count": num_gc,
                "cpu_fraction": ms.get("GCCPUFraction").and_then(Value::as_f64).unwrap_or(0.0),
                "total_pause": {"ns": u(ms, "PauseTotalNs")},
                "pause": {
                    "count": count,
                    "sum": {"ns": sum},
                    "max": {"ns": max},
                    "avg": {"ns": avg},
                },
            },
        });
        if let (Some(c), Some(f)) = (cmdline(&doc), fields.as_object_mut()) {
            f.insert("cmdline".into(), Value::from(c));
        }
        Ok(vec![MetricEvent::from_value(fields)])
    }
}

struct Expvar {
    http: HttpFetch,
    namespace: String,
}

#[async_trait]
impl Fetcher for Expvar {
    async fn fetch(&mut self) -> Result<Vec<MetricEvent>, Error> {
        let mut doc = self.http.get_json().await?;
        let joined = cmdline(&doc);
        let Some(m) = doc.as_object_mut() else {
            return Err(Error::parse(
                &self.http.url,
                "the expvar document is not a JSON object",
            ));
        };
        if let Some(c) = joined {
            m.insert("cmdline".into(), Value::from(c));
        }
        let mut ev = MetricEvent::new(std::mem::take(m));
        ev.namespace = Some(format!("golang.{}", self.namespace));
        Ok(vec![ev])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_count_the_cycles_since_the_last_fetch() {
        let mut ring = vec![0u64; 256];
        for (i, p) in ring.iter_mut().enumerate() {
            *p = i as u64 + 1;
        }
        // First fetch after 3 cycles: cycles 0, 1, 2.
        assert_eq!(pauses(&ring, 0, 3), (3, 1 + 2 + 3, 3, 2));
        // Two more.
        assert_eq!(pauses(&ring, 3, 5), (2, 4 + 5, 5, 4));
        // None since.
        assert_eq!(pauses(&ring, 5, 5), (0, 0, 0, 0));
        // More than the ring holds: the last 256 only.
        let (count, sum, _, _) = pauses(&ring, 0, 1000);
        assert_eq!(count, 256);
        assert_eq!(sum, (1..=256).sum::<u64>());
        // The program restarted (fewer cycles than last time): count from zero.
        assert_eq!(pauses(&ring, 900, 2).0, 2);
        // A short or missing ring reads as zeros, never panics.
        assert_eq!(pauses(&[], 0, 3), (3, 0, 0, 0));
    }
}
