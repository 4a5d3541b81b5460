//! `add_nomad_metadata`: adds the Nomad allocation an event comes from (Filebeat's, technical
//! preview there): `nomad.allocation.{id,name,status}`, `nomad.job.{name,type}`,
//! `nomad.namespace`, `nomad.datacenter`, `nomad.region`, and `nomad.task.name` when the log
//! path names the task.
//!
//! ```yaml
//! - add_nomad_metadata:
//!     address: http://127.0.0.1:4646   # default
//!     scope: node                       # node (default) or global
//!     refresh_interval: 30s
//! ```
//!
//! How it works, as Filebeat's: *indexers* key each allocation (`allocation_uid`, also spelt
//! `allocation_uuid`: its ID; `allocation_name`: `<namespace>/<name>`), *matchers* make the key
//! of an event (`logs_path`: the allocation ID in `log.file.path` under
//! `/var/lib/nomad/alloc/<id>/alloc/logs/`; `fields`: the first of `lookup_fields` the event
//! has; `field_format`: a `%{[field]}` format). The defaults are Filebeat's: the
//! `allocation_uid` indexer and the `logs_path` matcher (`default_indexers.enabled`,
//! `default_matchers.enabled`).
//!
//! Why a thread: the allocations are read from the agent's HTTP API ([`api`]) every
//! `refresh_interval` by a thread of this processor (with its own small Tokio runtime), into a
//! table the pipeline reads without waiting. An allocation gone from the API is kept
//! `cleanup_timeout` more, for the last lines of its logs. Until the first read is done (at most
//! `sync_timeout`, 5s) the first events wait for it, once; an agent that cannot be reached
//! leaves events as they are, with a warning in the log at each failed refresh.

pub mod api;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::Deserialize;
use skiff_config::{ConfigError, ConfigErrors, Node};
use skiff_event::{Event, Map, Value};
use skiff_pipeline::{BuildContext, Processor, Verdict};

use crate::{error_at, plugin};
use api::{Allocation, Client};

plugin!(ADD_NOMAD_METADATA, "add_nomad_metadata", build);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Enabled {
    #[serde(default = "crate::yes")]
    enabled: bool,
}

impl Default for Enabled {
    fn default() -> Self {
        Enabled { enabled: true }
    }
}

/// `add_nomad_metadata`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `address`: the agent's API. Default `http://127.0.0.1:4646`.
    #[serde(default = "default_address")]
    address: String,
    /// `namespace`: only allocations of this namespace.
    #[serde(default)]
    namespace: Option<String>,
    /// `region`: only allocations of this region.
    #[serde(default)]
    region: Option<String>,
    /// `secret_id`: the ACL token.
    #[serde(default)]
    secret_id: Option<String>,
    /// `refresh_interval`. Default 30s.
    #[serde(default)]
    refresh_interval: Option<skiff_config::Duration>,
    /// `cleanup_timeout`. Default 60s.
    #[serde(default)]
    cleanup_timeout: Option<skiff_config::Duration>,
    /// `sync_timeout` / `sync_period`: the longest wait for the first read. Default 5s.
    #[serde(default, alias = "sync_period")]
    sync_timeout: Option<skiff_config::Duration>,
    /// `scope`: node (default) or global.
    #[serde(default)]
    scope: Option<String>,
    /// `node`: the local node's name (default: the agent's own).
    #[serde(default)]
    node: Option<String>,
    /// `indexers`.
    #[serde(default)]
    indexers: Vec<Map>,
    /// `matchers`.
    #[serde(default)]
    matchers: Vec<Map>,
    /// `default_indexers.enabled`. Default true.
    #[serde(default)]
    default_indexers: Enabled,
    /// `default_matchers.enabled`. Default true.
    #[serde(default)]
    default_matchers: Enabled,
}

fn default_address() -> String {
    "http://127.0.0.1:4646".into()
}

/// The default `logs_path` (Filebeat's).
const DEFAULT_LOGS_PATH: &str = "/var/lib/nomad";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Indexer {
    /// The allocation ID.
    Uid,
    /// `<namespace>/<name>`.
    Name,
}

#[derive(Debug, Clone)]
enum Matcher {
    /// The first of these fields the event has.
    Fields(Vec<String>),
    /// `%{[field]}` placeholders and literal text.
    Format(Vec<Piece>),
    /// The allocation ID in `log.file.path` under this directory.
    LogsPath(String),
}

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Field(String),
}

/// A `%{[a.b]}` format, as Filebeat's `field_format` matcher.
fn compile_format(f: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut rest = f;
    while let Some(i) = rest.find("%{") {
        if i > 0 {
            out.push(Piece::Text(rest[..i].to_owned()));
        }
        let after = &rest[i + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed %{{ in `{f}`"))?;
        let name = after[..end]
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if name.is_empty() {
            return Err(format!("empty field name in `{f}`"));
        }
        out.push(Piece::Field(name.to_owned()));
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.to_owned()));
    }
    Ok(out)
}

/// The allocation ID (and task, from the file name) of a log path under `base`:
/// `<base>/alloc/<id>/alloc/logs/<task>.stdout.0`.
fn from_logs_path<'a>(path: &'a str, base: &str) -> Option<(&'a str, Option<&'a str>)> {
    let rest = path.strip_prefix(base.trim_end_matches('/'))?;
    let rest = rest.trim_start_matches('/');
    let rest = rest.strip_prefix("alloc/").unwrap_or(rest);
    let (id, rest) = rest.split_once('/')?;
    let is_uuid = id.len() == 36
        && id.bytes().enumerate().all(|(i, b)| {
            matches!(i, 8 | 13 | 18 | 23) == (b == b'-') && (b == b'-' || b.is_ascii_hexdigit())
        });
    if !is_uuid {
        return None;
    }
    let task = rest
        .strip_prefix("alloc/logs/")
        .and_then(|f| f.split_once(".std"))
        .map(|(t, _)| t)
        .filter(|t| !t.is_empty() && !t.contains('/'));
    Some((id, task))
}

impl Matcher {
    /// The key of `event`, and the task name when the matcher found one.
    fn key(&self, event: &Event) -> Option<(String, Option<String>)> {
        match self {
            Matcher::Fields(fields) => fields
                .iter()
                .find_map(|f| event.get(f).and_then(|v| v.as_str().map(str::to_owned)))
                .map(|k| (k, None)),
            Matcher::Format(pieces) => {
                let mut s = String::new();
                for p in pieces {
                    match p {
                        Piece::Text(t) => s.push_str(t),
                        Piece::Field(f) => {
                            let v = event.get(f)?.to_value();
                            match v {
                                Value::String(x) => s.push_str(&x),
                                Value::Null => return None,
                                other => s.push_str(&other.to_string()),
                            }
                        }
                    }
                }
                (!s.is_empty()).then_some((s, None))
            }
            Matcher::LogsPath(base) => {
                let path = event.get("log.file.path")?;
                let (id, task) = from_logs_path(path.as_str()?, base)?;
                Some((id.to_owned(), task.map(str::to_owned)))
            }
        }
    }
}

/// The metadata table the refresher fills and `process` reads.
#[derive(Default)]
struct Table {
    /// Key -> (metadata, when the allocation was last seen gone).
    by_key: HashMap<String, (Arc<Map>, Option<Instant>)>,
}

struct Shared {
    table: RwLock<Table>,
    /// Set once the first refresh finished (well or not).
    ready: (Mutex<bool>, Condvar),
    /// The processor was dropped: the refresher stops.
    stop: AtomicBool,
}

struct Nomad {
    matchers: Vec<Matcher>,
    shared: Arc<Shared>,
    sync_timeout: Duration,
    waited: AtomicBool,
}

impl Drop for Nomad {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

fn build(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    let cfg: Config = node.deserialize()?;
    let at = |key: &str, msg: String| error_at(node.get(key).unwrap_or(node), msg);
    let mut errs: Vec<ConfigError> = Vec::new();
    let global = match cfg.scope.as_deref() {
        None | Some("node") => false,
        Some("global" | "cluster") => true,
        Some(other) => {
            errs.push(at(
                "scope",
                format!("unknown scope `{other}`: use node or global"),
            ));
            false
        }
    };
    if global && cfg.node.is_some() {
        errs.push(at("node", "`node` is for `scope: node`".into()));
    }
    if !(cfg.address.starts_with("http://") || cfg.address.starts_with("https://")) {
        errs.push(at(
            "address",
            format!(
                "`{}` is not an http:// or https:// URL (e.g. http://127.0.0.1:4646)",
                cfg.address
            ),
        ));
    }
    let mut indexers = Vec::new();
    if cfg.default_indexers.enabled {
        indexers.push(Indexer::Uid);
    }
    for item in &cfg.indexers {
        for name in item.keys() {
            match name.as_str() {
                "allocation_uid" | "allocation_uuid" => indexers.push(Indexer::Uid),
                "allocation_name" => indexers.push(Indexer::Name),
                other => errs.push(at(
                    "indexers",
                    format!("unknown indexer `{other}`: use allocation_uid or allocation_name"),
                )),
            }
        }
    }
    let mut matchers = Vec::new();
    if cfg.default_matchers.enabled {
        matchers.push(Matcher::LogsPath(DEFAULT_LOGS_PATH.into()));
    }
    for item in &cfg.matchers {
        for (name, settings) in item {
            let get = |k: &str| settings.get(k);
            match name.as_str() {
                "fields" => match get("lookup_fields").and_then(Value::as_array) {
                    Some(list) if !list.is_empty() => matchers.push(Matcher::Fields(
                        list.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect(),
                    )),
                    _ => errs.push(at(
                        "matchers",
                        "the `fields` matcher needs `lookup_fields: [field, ...]`".into(),
                    )),
                },
                "field_format" => match get("format").and_then(Value::as_str) {
                    Some(f) if !f.is_empty() => match compile_format(f) {
                        Ok(p) => matchers.push(Matcher::Format(p)),
                        Err(e) => errs.push(at("matchers", e)),
                    },
                    _ => errs.push(at(
                        "matchers",
                        "the `field_format` matcher needs `format`".into(),
                    )),
                },
                "logs_path" => matchers.push(Matcher::LogsPath(
                    get("logs_path")
                        .and_then(Value::as_str)
                        .unwrap_or(DEFAULT_LOGS_PATH)
                        .to_owned(),
                )),
                other => errs.push(at(
                    "matchers",
                    format!("unknown matcher `{other}`: use logs_path, fields or field_format"),
                )),
            }
        }
    }
    if indexers.is_empty() || matchers.is_empty() {
        errs.push(at(
            "indexers",
            "with the default indexers or matchers disabled, give at least one of each".into(),
        ));
    }
    let refresh = cfg
        .refresh_interval
        .map_or(Duration::from_secs(30), |d| d.0)
        .max(Duration::from_millis(100));
    let cleanup = cfg.cleanup_timeout.map_or(Duration::from_secs(60), |d| d.0);
    let sync_timeout = cfg.sync_timeout.map_or(Duration::from_secs(5), |d| d.0);
    let client = Client::new(
        &cfg.address,
        cfg.secret_id.clone(),
        cfg.namespace.clone(),
        cfg.region.clone(),
        Duration::from_secs(10).min(refresh.max(Duration::from_secs(1))),
    );
    let client = match client {
        Ok(c) => Some(c),
        Err(e) => {
            errs.push(at("address", e));
            None
        }
    };
    let (Some(client), true) = (client, errs.is_empty()) else {
        return Err(ConfigErrors(errs));
    };
    let shared = Arc::new(Shared {
        table: RwLock::new(Table::default()),
        ready: (Mutex::new(false), Condvar::new()),
        stop: AtomicBool::new(false),
    });
    let refresher = Refresher {
        client,
        shared: shared.clone(),
        indexers,
        node: if global { None } else { Some(cfg.node.clone()) },
        namespace: cfg.namespace.clone(),
        region: cfg.region.clone(),
        refresh,
        cleanup,
    };
    refresher.spawn().map_err(|e| {
        ConfigErrors(vec![error_at(
            node,
            format!("cannot start the Nomad metadata thread: {e}"),
        )])
    })?;
    Ok(Box::new(Nomad {
        matchers,
        shared,
        sync_timeout,
        waited: AtomicBool::new(false),
    }))
}

struct Refresher {
    client: Client,
    shared: Arc<Shared>,
    indexers: Vec<Indexer>,
    /// `Some` for `scope: node`, with the configured node name if any.
    node: Option<Option<String>>,
    namespace: Option<String>,
    region: Option<String>,
    refresh: Duration,
    cleanup: Duration,
}

impl Refresher {
    fn spawn(self) -> std::io::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("skiff-nomad".into())
            .spawn(move || rt.block_on(self.run()))?;
        Ok(())
    }

    async fn run(self) {
        let mut known: HashMap<String, Allocation> = HashMap::new();
        let mut node_id: Option<String> = None;
        loop {
            if self.shared.stop.load(Ordering::SeqCst) {
                return;
            }
            match self.refresh_once(&mut node_id, &known).await {
                Ok(allocs) => {
                    known = allocs.into_iter().map(|a| (a.id.clone(), a)).collect();
                    self.publish(&known);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "add_nomad_metadata: cannot read the allocations")
                }
            }
            {
                let (lock, cv) = &self.shared.ready;
                *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
                cv.notify_all();
            }
            // Sleep in small steps so a dropped processor's thread ends soon.
            let until = Instant::now() + self.refresh;
            while Instant::now() < until {
                if self.shared.stop.load(Ordering::SeqCst) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100).min(self.refresh)).await;
            }
        }
    }

    async fn refresh_once(
        &self,
        node_id: &mut Option<String>,
        known: &HashMap<String, Allocation>,
    ) -> Result<Vec<Allocation>, api::ApiError> {
        if let Some(node) = &self.node
            && node_id.is_none()
        {
            let name = match node {
                Some(n) => n.clone(),
                None => self.client.local_node_name().await?,
            };
            *node_id = Some(self.client.node_id(&name).await?);
        }
        let all = self.client.current(node_id.as_deref(), known).await?;
        Ok(all
            .into_iter()
            .filter(|a| self.namespace.as_ref().is_none_or(|n| &a.namespace == n))
            .filter(|a| {
                self.region.as_ref().is_none_or(|r| {
                    a.job
                        .as_ref()
                        .is_none_or(|j| j.region.is_empty() || &j.region == r)
                })
            })
            .collect())
    }

    fn keys(&self, a: &Allocation) -> Vec<String> {
        self.indexers
            .iter()
            .map(|i| match i {
                Indexer::Uid => a.id.clone(),
                Indexer::Name => format!("{}/{}", a.namespace, a.name),
            })
            .collect()
    }

    /// Replaces the table's live entries; entries of allocations gone are kept for
    /// `cleanup_timeout` after they were first seen gone.
    fn publish(&self, current: &HashMap<String, Allocation>) {
        let now = Instant::now();
        let mut fresh: HashMap<String, (Arc<Map>, Option<Instant>)> = HashMap::new();
        for a in current.values() {
            let meta = Arc::new(api::metadata(a));
            for k in self.keys(a) {
                fresh.insert(k, (meta.clone(), None));
            }
        }
        let mut table = self.shared.table.write().unwrap_or_else(|p| p.into_inner());
        for (k, (meta, gone)) in table.by_key.drain() {
            if fresh.contains_key(&k) {
                continue;
            }
            let gone = gone.unwrap_or(now);
            if now.duration_since(gone) < self.cleanup {
                fresh.insert(k, (meta, Some(gone)));
            }
        }
        table.by_key = fresh;
    }
}

impl Nomad {
    /// Waits once for the first refresh, at most `sync_timeout`.
    fn wait_ready(&self) {
        if self.waited.load(Ordering::Relaxed) {
            return;
        }
        let (lock, cv) = &self.shared.ready;
        let wait = || {
            let g = lock.lock().unwrap_or_else(|p| p.into_inner());
            let _ = cv
                .wait_timeout_while(g, self.sync_timeout, |ready| !*ready)
                .unwrap_or_else(|p| p.into_inner());
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        }
        self.waited.store(true, Ordering::Relaxed);
    }
}

impl Processor for Nomad {
    fn process(&self, event: &mut Event) -> Verdict {
        let Some((key, task)) = self.matchers.iter().find_map(|m| m.key(event)) else {
            return Verdict::Keep;
        };
        self.wait_ready();
        let meta = {
            let table = self.shared.table.read().unwrap_or_else(|p| p.into_inner());
            table.by_key.get(&key).map(|(m, _)| m.clone())
        };
        let Some(meta) = meta else {
            return Verdict::Keep;
        };
        let mut leaves = Vec::new();
        crate::fields::leaves("nomad", &meta, &mut leaves);
        for (path, v) in leaves {
            event.insert(&path, v);
        }
        if let Some(t) = task {
            event.insert("nomad.task.name", Value::String(t));
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn log_paths() {
        let id = "5f3b2c1d-0a9e-4e2f-8c7b-1234567890ab";
        assert_eq!(
            from_logs_path(
                &format!("/var/lib/nomad/alloc/{id}/alloc/logs/web.stdout.0"),
                "/var/lib/nomad"
            ),
            Some((id, Some("web")))
        );
        assert_eq!(
            from_logs_path(
                &format!("/var/lib/NomadClient001/alloc/{id}/alloc/logs/api.stderr.3"),
                "/var/lib/NomadClient001/"
            ),
            Some((id, Some("api")))
        );
        assert_eq!(
            from_logs_path(
                &format!("/var/lib/nomad/alloc/{id}/web/local/x.log"),
                "/var/lib/nomad"
            ),
            Some((id, None))
        );
        assert_eq!(
            from_logs_path(
                "/var/lib/nomad/alloc/not-a-uuid/alloc/logs/a.stdout.0",
                "/var/lib/nomad"
            ),
            None
        );
        assert_eq!(
            from_logs_path(&format!("/var/log/{id}/x"), "/var/lib/nomad"),
            None
        );
    }

    #[test]
    fn formats() {
        let p = compile_format("%{[labels.ns]}/%{[fields.alloc]}").unwrap();
        assert_eq!(p.len(), 3);
        assert!(compile_format("%{[open").is_err());
    }

    #[test]
    fn configuration_problems() {
        let e = crate::testing::build(
            "processors:\n  - add_nomad_metadata:\n      scope: planet\n      address: 127.0.0.1:4646\n      indexers: [{pod_uid: {}}]\n      matchers: [{fields: {}}, {field_format: {format: '%{[x'}}]\n",
        )
        .err()
        .unwrap()
        .to_string();
        for want in [
            "unknown scope `planet`",
            "is not an http:// or https:// URL",
            "unknown indexer `pod_uid`",
            "needs `lookup_fields",
            "unclosed %{",
        ] {
            assert!(e.contains(want), "{want} missing in {e}");
        }
    }
}
