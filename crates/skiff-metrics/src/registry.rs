//! The registry of live metrics and its two renderings.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use crate::{Def, Kind};

/// A monotonically increasing count.
#[derive(Clone, Debug, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1)
    }
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Clone, Debug, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    /// Adds `n` (may be negative).
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// Subtracts `n`.
    pub fn sub(&self, n: i64) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

enum Source {
    Counter(Counter),
    Gauge(Gauge),
    Fn(Box<dyn Fn() -> f64 + Send + Sync>),
}

struct Entry {
    def: &'static Def,
    labels: Vec<(&'static str, String)>,
    source: Source,
}

impl Entry {
    fn value(&self) -> f64 {
        match &self.source {
            Source::Counter(c) => c.get() as f64,
            Source::Gauge(g) => g.get() as f64,
            Source::Fn(f) => f(),
        }
    }
}

/// All metrics of one skiff process. Cheap to clone (it is shared).
#[derive(Clone, Default)]
pub struct Registry {
    entries: Arc<Mutex<Vec<Entry>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Registry")
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Vec<Entry>) -> T) -> T {
        let mut g = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// The counter `def` (created on first use; the same counter on every later call).
    pub fn counter(&self, def: &'static Def) -> Counter {
        self.counter_with(def, &[])
    }

    /// The counter `def` for one set of label values (`[("input", "app-logs")]`).
    pub fn counter_with(&self, def: &'static Def, labels: &[(&'static str, &str)]) -> Counter {
        debug_assert!(def.kind == Kind::Counter, "{} is not a counter", def.name);
        self.with(|entries| {
            if let Some(Entry {
                source: Source::Counter(c),
                ..
            }) = find(entries, def, labels)
            {
                return c.clone();
            }
            let c = Counter::default();
            entries.push(Entry {
                def,
                labels: own(labels),
                source: Source::Counter(c.clone()),
            });
            c
        })
    }

    /// The gauge `def` (created on first use).
    pub fn gauge(&self, def: &'static Def) -> Gauge {
        self.gauge_with(def, &[])
    }

    /// The gauge `def` for one set of label values.
    pub fn gauge_with(&self, def: &'static Def, labels: &[(&'static str, &str)]) -> Gauge {
        self.with(|entries| {
            if let Some(Entry {
                source: Source::Gauge(g),
                ..
            }) = find(entries, def, labels)
            {
                return g.clone();
            }
            let g = Gauge::default();
            entries.push(Entry {
                def,
                labels: own(labels),
                source: Source::Gauge(g.clone()),
            });
            g
        })
    }

    /// A gauge computed when read (process RSS, a queue's size). Replaces an earlier one.
    pub fn gauge_fn(&self, def: &'static Def, f: impl Fn() -> f64 + Send + Sync + 'static) {
        self.with(|entries| {
            entries.retain(|e| !(std::ptr::eq(e.def, def) && e.labels.is_empty()));
            entries.push(Entry {
                def,
                labels: Vec::new(),
                source: Source::Fn(Box::new(f)),
            });
        })
    }

    /// The current value of `def` summed over its label sets, if it exists.
    pub fn value(&self, def: &'static Def) -> Option<f64> {
        self.with(|entries| {
            let mut found = None;
            for e in entries.iter().filter(|e| e.def.name == def.name) {
                *found.get_or_insert(0.0) += e.value();
            }
            found
        })
    }

    /// The Beats-shaped nested JSON of `/stats`. Labelled series are summed under their name;
    /// the per-label values are under `skiff.by_label`.
    pub fn json(&self) -> Value {
        let mut root = Map::new();
        self.with(|entries| {
            let mut sums: Vec<(&'static str, f64)> = Vec::new();
            for e in entries.iter() {
                match sums.iter_mut().find(|(n, _)| *n == e.def.name) {
                    Some((_, v)) => *v += e.value(),
                    None => sums.push((e.def.name, e.value())),
                }
                if !e.labels.is_empty() {
                    let mut path = format!("skiff.by_label.{}", e.def.name.replace('.', "_"));
                    for (_, v) in &e.labels {
                        path.push('.');
                        path.push_str(&v.replace('.', "_"));
                    }
                    insert(&mut root, &path, num(e.value()));
                }
            }
            for (name, v) in sums {
                insert(&mut root, name, num(v));
            }
        });
        Value::Object(root)
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        self.with(|entries| {
            let mut done: Vec<&'static str> = Vec::new();
            for e in entries.iter() {
                if done.contains(&e.def.name) {
                    continue;
                }
                done.push(e.def.name);
                let name = prom_name(e.def);
                let kind = match e.def.kind {
                    Kind::Counter => "counter",
                    Kind::Gauge => "gauge",
                };
                let _ = writeln!(out, "# HELP {name} {}", e.def.help);
                let _ = writeln!(out, "# TYPE {name} {kind}");
                for s in entries.iter().filter(|s| s.def.name == e.def.name) {
                    out.push_str(&name);
                    if !s.labels.is_empty() {
                        out.push('{');
                        for (i, (k, v)) in s.labels.iter().enumerate() {
                            if i > 0 {
                                out.push(',');
                            }
                            let v = v
                                .replace('\\', "\\\\")
                                .replace('"', "\\\"")
                                .replace('\n', "\\n");
                            let _ = write!(out, "{k}=\"{v}\"");
                        }
                        out.push('}');
                    }
                    let _ = writeln!(out, " {}", fmt_num(s.value()));
                }
            }
        });
        out
    }
}

/// The Prometheus name of a metric: the dotted name with `_`, prefixed `skiff_` (once), `_total`
/// on counters.
pub fn prom_name(def: &Def) -> String {
    let base = def.name.replace(['.', '-'], "_");
    let mut n = if base.starts_with("skiff_") {
        base
    } else {
        format!("skiff_{base}")
    };
    if def.kind == Kind::Counter && !n.ends_with("_total") {
        n.push_str("_total");
    }
    n
}

fn find<'a>(entries: &'a [Entry], def: &Def, labels: &[(&str, &str)]) -> Option<&'a Entry> {
    entries.iter().find(|e| {
        e.def.name == def.name
            && e.labels.len() == labels.len()
            && e.labels
                .iter()
                .zip(labels)
                .all(|((k1, v1), (k2, v2))| k1 == k2 && v1 == v2)
    })
}

fn own(labels: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

fn num(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Value::from(v as i64)
    } else {
        Value::from(v)
    }
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn insert(root: &mut Map<String, Value>, path: &str, v: Value) {
    let mut parts = path.split('.').peekable();
    let mut cur = root;
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(p.to_owned(), v);
            return;
        }
        let e = cur
            .entry(p.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !e.is_object() {
            *e = Value::Object(Map::new());
        }
        let Value::Object(m) = e else { return };
        cur = m;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names;

    #[test]
    fn labelled_series_sum_in_json_and_split_in_prometheus() {
        let r = Registry::new();
        r.counter_with(&names::OUTPUT_EVENTS_ACKED, &[("output", "a")])
            .add(2);
        r.counter_with(&names::OUTPUT_EVENTS_ACKED, &[("output", "b")])
            .add(3);
        r.counter_with(&names::OUTPUT_EVENTS_ACKED, &[("output", "a")])
            .add(1);
        assert_eq!(r.json()["libbeat"]["output"]["events"]["acked"], 6);
        let p = r.prometheus();
        assert!(
            p.contains("skiff_libbeat_output_events_acked_total{output=\"a\"} 3\n"),
            "{p}"
        );
        assert!(
            p.contains("skiff_libbeat_output_events_acked_total{output=\"b\"} 3\n"),
            "{p}"
        );
        assert_eq!(p.matches("# TYPE").count(), 1);
    }

    #[test]
    fn gauges_and_functions() {
        let r = Registry::new();
        r.gauge(&names::QUEUE_FILLED_BYTES).set(-5);
        r.gauge_fn(&names::PROCESS_RSS_BYTES, || 1.5);
        assert_eq!(r.value(&names::QUEUE_FILLED_BYTES), Some(-5.0));
        assert!(r.prometheus().contains("skiff_beat_memstats_rss 1.5"));
        assert_eq!(r.json()["beat"]["memstats"]["rss"], 1.5);
    }
}
