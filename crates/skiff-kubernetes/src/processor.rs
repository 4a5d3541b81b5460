//! `add_kubernetes_metadata`: the fields of the pod (and container) an event came from.
//!
//! As in Beats, two halves meet in an index. *Indexers* file every pod of the node under keys:
//! `container` (each container's id), `pod_name` (`namespace/name`), `pod_uid`, `ip_port` (the
//! pod's IP, and `ip:port` for each declared port). *Matchers* compute a key from the event:
//! `logs_path` (the container id in `log.file.path`, from `/var/log/containers/<pod>_<ns>_
//! <container>-<id>.log` or `<logs_path><id>/...`; with `resource_type: pod`, the pod uid from
//! `/var/log/pods/<ns>_<name>_<uid>/` or `/var/lib/kubelet/pods/<uid>/`), `fields` (the value
//! of one of `lookup_fields`). The first matcher that yields a key found in the index wins; the
//! pod's fields are merged into the event.
//!
//! The index is kept up to date by a watch of the node's pods ([`crate::watch`]), started when
//! the first event comes (so `skiff test config` connects nowhere) and stopped with the
//! processor. A deleted pod stays in the index for `cleanup_timeout` (default 60s), so the last
//! lines of its logs, read after it is gone, still get its fields. Without a cluster (no
//! `kube_config`, not in a pod) the processor warns once and does nothing, as Filebeat does.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Map, Value};
use skiff_config::{ConfigError, ConfigErrors, Node};
use skiff_event::Event;
use skiff_pipeline::{BuildContext, Processor, Verdict};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::pod::{MetaOptions, Pod, container_fields, pod_fields};
use crate::resources::{ResourceOptions, Resources};
use crate::watch::{PodEvent, watch_pods};
use crate::{Client, Target};

/// `add_kubernetes_metadata`'s own settings (the shared ones are in [`crate::settings::CommonSettings`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// `cleanup_timeout`: how long a deleted pod stays indexed (default 60s).
    #[serde(default)]
    cleanup_timeout: Option<skiff_config::Duration>,
    /// `default_indexers.enabled` (default true): the `container` and `ip_port` indexers.
    #[serde(default)]
    default_indexers: Toggle,
    /// `default_matchers.enabled` (default true): the `logs_path` matcher.
    #[serde(default)]
    default_matchers: Toggle,
    /// `indexers`: `- container: {}`, `- pod_name: {}`, `- pod_uid: {}`, `- ip_port: {}`.
    #[serde(default)]
    indexers: Vec<BTreeMap<String, Value>>,
    /// `matchers`: `- logs_path: {logs_path, resource_type}`, `- fields: {lookup_fields}`.
    #[serde(default)]
    matchers: Vec<BTreeMap<String, Value>>,
}

/// The keys of [`Settings`].
const OWN_KEYS: &[&str] = &[
    "cleanup_timeout",
    "default_indexers",
    "default_matchers",
    "indexers",
    "matchers",
];

/// `x.enabled`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Toggle {
    #[serde(default = "yes")]
    enabled: bool,
}

impl Default for Toggle {
    fn default() -> Self {
        Toggle { enabled: true }
    }
}

fn yes() -> bool {
    true
}

/// Where Docker keeps container logs: the default `logs_path`.
pub const DEFAULT_LOGS_PATH: &str = "/var/lib/docker/containers/";
/// Where the kubelet links every container's log (`<pod>_<namespace>_<container>-<id>.log`).
pub const CONTAINER_LOGS_PATH: &str = "/var/log/containers/";

/// How pods are filed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Indexer {
    Container,
    PodName,
    PodUid,
    IpPort,
}

/// How an event finds its key.
#[derive(Debug, Clone, PartialEq)]
enum Matcher {
    LogsPath { logs_path: String, pod: bool },
    Fields(Vec<String>),
}

/// Builds the processor (the `add_kubernetes_metadata` entry of skiff-processors' table calls
/// this with the settings, `when` already taken off).
pub fn build(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    let (common, own) = crate::settings::split(node, OWN_KEYS)?;
    let s: Settings = own.deserialize()?;
    let err = |key: &str, msg: String| -> ConfigErrors {
        let at = node.get(key).unwrap_or(node);
        ConfigError::new(&at.path, at.mark.clone(), msg).into()
    };
    let mut indexers = Vec::new();
    if s.default_indexers.enabled {
        indexers.extend([Indexer::Container, Indexer::IpPort]);
    }
    for item in &s.indexers {
        for name in item.keys() {
            indexers.push(match name.as_str() {
                "container" => Indexer::Container,
                "pod_name" => Indexer::PodName,
                "pod_uid" => Indexer::PodUid,
                "ip_port" => Indexer::IpPort,
                other => {
                    return Err(err(
                        "indexers",
                        format!("unknown indexer `{other}`: skiff has container, pod_name, pod_uid, ip_port"),
                    ));
                }
            });
        }
    }
    let mut matchers = Vec::new();
    for item in &s.matchers {
        for (name, cfg) in item {
            let text = |k: &str| cfg.get(k).and_then(Value::as_str).map(str::to_string);
            matchers.push(match name.as_str() {
                "logs_path" => Matcher::LogsPath {
                    logs_path: text("logs_path").unwrap_or_else(|| DEFAULT_LOGS_PATH.into()),
                    pod: text("resource_type").as_deref() == Some("pod"),
                },
                "fields" => Matcher::Fields(
                    cfg.get("lookup_fields")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default(),
                ),
                other => {
                    return Err(err(
                        "matchers",
                        format!("unknown matcher `{other}`: skiff has logs_path, fields"),
                    ));
                }
            });
        }
    }
    if s.default_matchers.enabled && matchers.is_empty() {
        matchers.push(Matcher::LogsPath {
            logs_path: DEFAULT_LOGS_PATH.into(),
            pod: false,
        });
    }
    let target = common.target(node)?;
    let opts = common.meta();
    let resources = common.resources();
    let client = match target.client() {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "add_kubernetes_metadata: no Kubernetes API server to ask; events will not get kubernetes.* fields");
            None
        }
    };
    Ok(Box::new(AddKubernetesMetadata {
        index: Arc::new(RwLock::new(Index::new(indexers, opts))),
        matchers,
        client,
        target,
        resources,
        cleanup: s.cleanup_timeout.map_or(Duration::from_secs(60), |d| d.0),
        started: OnceLock::new(),
        cancel: CancellationToken::new(),
    }))
}

/// The processor.
struct AddKubernetesMetadata {
    index: Arc<RwLock<Index>>,
    matchers: Vec<Matcher>,
    client: Option<Client>,
    target: Target,
    resources: ResourceOptions,
    cleanup: Duration,
    started: OnceLock<()>,
    cancel: CancellationToken,
}

impl Drop for AddKubernetesMetadata {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl AddKubernetesMetadata {
    /// Starts the watch that fills the index, once, on the runtime the first event comes on.
    fn start(&self) {
        let Some(client) = self.client.clone() else {
            return;
        };
        self.started.get_or_init(|| {
            let Ok(rt) = tokio::runtime::Handle::try_current() else {
                tracing::warn!("add_kubernetes_metadata: no async runtime to watch pods on");
                return;
            };
            let (tx, mut rx) = mpsc::channel(64);
            let (query, backoff, cancel) = (
                self.target.query.clone(),
                self.target.backoff,
                self.cancel.clone(),
            );
            let mut resources = Resources::new(client.clone(), self.resources);
            rt.spawn(async move { watch_pods(&client, &query, backoff, &tx, &cancel).await });
            let (index, cleanup) = (Arc::downgrade(&self.index), self.cleanup);
            rt.spawn(async move {
                while let Some(mut ev) = rx.recv().await {
                    resources.enrich(&mut ev).await;
                    let Some(index) = index.upgrade() else { return };
                    let mut ix = index.write().unwrap_or_else(|p| p.into_inner());
                    ix.apply(ev, Instant::now(), cleanup);
                }
            });
        });
    }

    /// The index key of `event` by the first matcher that yields one found in the index.
    fn lookup(&self, event: &Event, ix: &Index) -> Option<Arc<Map<String, Value>>> {
        for m in &self.matchers {
            let keys: Vec<String> = match m {
                Matcher::LogsPath { logs_path, pod } => event
                    .get("log.file.path")
                    .and_then(|f| f.as_str().map(|p| logs_path_key(p, logs_path, *pod)))
                    .flatten()
                    .into_iter()
                    .collect(),
                Matcher::Fields(fields) => fields
                    .iter()
                    .filter_map(|f| event.get(f).map(|v| v.to_text()))
                    .collect(),
            };
            for k in keys {
                if let Some(meta) = ix.by_key.get(&k) {
                    return Some(meta.clone());
                }
            }
        }
        None
    }
}

impl Processor for AddKubernetesMetadata {
    fn process(&self, event: &mut Event) -> Verdict {
        self.start();
        let meta = {
            let ix = self.index.read().unwrap_or_else(|p| p.into_inner());
            self.lookup(event, &ix)
        };
        if let Some(meta) = meta {
            for (k, v) in meta.iter() {
                merge(&mut event.fields, k, v);
            }
        }
        Verdict::Keep
    }
}

/// Sets `key` to `value` in `into`, merging objects key by key (values of `value` win).
fn merge(into: &mut Map<String, Value>, key: &str, value: &Value) {
    match (into.get_mut(key), value) {
        (Some(Value::Object(have)), Value::Object(add)) => {
            for (k, v) in add {
                merge(have, k, v);
            }
        }
        _ => {
            into.insert(key.to_string(), value.clone());
        }
    }
}

/// The key the `logs_path` matcher finds in a log file's path: a container id, or with `pod`
/// a pod uid.
pub fn logs_path_key(path: &str, logs_path: &str, pod: bool) -> Option<String> {
    if pod {
        if let Some(rest) = path.strip_prefix("/var/log/pods/") {
            // `<namespace>_<name>_<uid>/<container>/0.log`
            let dir = rest.split('/').next()?;
            return dir
                .rsplit('_')
                .next()
                .filter(|u| !u.is_empty())
                .map(str::to_string);
        }
        let rest = path.strip_prefix("/var/lib/kubelet/pods/")?;
        return rest
            .split('/')
            .next()
            .filter(|u| !u.is_empty())
            .map(str::to_string);
    }
    if let Some(name) = path.strip_prefix(CONTAINER_LOGS_PATH) {
        // `<pod>_<namespace>_<container>-<id>.log`: the id is after the last `-`.
        let id = name.strip_suffix(".log")?.rsplit('-').next()?;
        return (!id.is_empty() && !id.contains('/')).then(|| id.to_string());
    }
    let rest = path.strip_prefix(logs_path)?;
    // `<logs_path><id>/<id>-json.log`
    let id = rest.split('/').next()?;
    (!id.is_empty()).then(|| id.to_string())
}

/// Pods filed under the indexers' keys.
#[derive(Debug)]
struct Index {
    indexers: Vec<Indexer>,
    opts: MetaOptions,
    /// Key → the fields to add.
    by_key: HashMap<String, Arc<Map<String, Value>>>,
    /// Pod uid → the keys it is filed under.
    keys_of: HashMap<String, Vec<String>>,
    /// Deleted pods (uid) and when to forget them.
    retired: Vec<(String, Instant)>,
}

impl Index {
    fn new(indexers: Vec<Indexer>, opts: MetaOptions) -> Self {
        Index {
            indexers,
            opts,
            by_key: HashMap::new(),
            keys_of: HashMap::new(),
            retired: Vec::new(),
        }
    }

    fn apply(&mut self, ev: PodEvent, now: Instant, cleanup: Duration) {
        self.retired.retain(|(uid, at)| {
            if *at > now {
                return true;
            }
            if let Some(keys) = self.keys_of.remove(uid) {
                for k in keys {
                    self.by_key.remove(&k);
                }
            }
            false
        });
        match ev {
            PodEvent::Synced(pods) => {
                let live: std::collections::HashSet<&str> =
                    pods.iter().map(|p| p.metadata.uid.as_str()).collect();
                let gone: Vec<String> = self
                    .keys_of
                    .keys()
                    .filter(|u| !live.contains(u.as_str()))
                    .cloned()
                    .collect();
                for uid in gone {
                    self.retire(uid, now + cleanup);
                }
                for p in &pods {
                    self.file(p);
                }
            }
            PodEvent::Applied(p) => self.file(&p),
            PodEvent::Deleted(p) => self.retire(p.metadata.uid, now + cleanup),
        }
    }

    fn retire(&mut self, uid: String, at: Instant) {
        if !self.retired.iter().any(|(u, _)| *u == uid) {
            self.retired.push((uid, at));
        }
    }

    /// Files `pod` under its keys (replacing what it was filed under before).
    fn file(&mut self, pod: &Pod) {
        let uid = pod.metadata.uid.clone();
        self.retired.retain(|(u, _)| *u != uid);
        if let Some(old) = self.keys_of.remove(&uid) {
            for k in old {
                self.by_key.remove(&k);
            }
        }
        let mut keys = Vec::new();
        let pod_meta = Arc::new(Map::from_iter([(
            "kubernetes".to_string(),
            Value::Object(pod_fields(pod, &self.opts)),
        )]));
        let containers = pod.containers();
        for ix in &self.indexers {
            match ix {
                Indexer::Container => {
                    for c in &containers {
                        let m = Arc::new(container_fields(pod, c, &self.opts));
                        keys.push((c.id.to_string(), m));
                    }
                }
                Indexer::PodName => keys.push((pod.key(), pod_meta.clone())),
                Indexer::PodUid => keys.push((uid.clone(), pod_meta.clone())),
                Indexer::IpPort => {
                    let Some(ip) = pod.status.pod_ip.as_deref().filter(|i| !i.is_empty()) else {
                        continue;
                    };
                    keys.push((ip.to_string(), pod_meta.clone()));
                    for c in &containers {
                        for port in c.spec.map(|s| s.ports.as_slice()).unwrap_or_default() {
                            let m = Arc::new(container_fields(pod, c, &self.opts));
                            keys.push((format!("{ip}:{}", port.container_port), m));
                        }
                    }
                }
            }
        }
        let mut filed = Vec::with_capacity(keys.len());
        for (k, m) in keys {
            self.by_key.insert(k.clone(), m);
            filed.push(k);
        }
        self.keys_of.insert(uid, filed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_path_keys() {
        let id = "2d2f2a2b3c4d5e6f";
        assert_eq!(
            logs_path_key(
                &format!("/var/log/containers/nginx-7d9c8b-x2x5q_default_nginx-{id}.log"),
                DEFAULT_LOGS_PATH,
                false
            ),
            Some(id.to_string())
        );
        assert_eq!(
            logs_path_key(
                &format!("/var/lib/docker/containers/{id}/{id}-json.log"),
                DEFAULT_LOGS_PATH,
                false
            ),
            Some(id.to_string())
        );
        assert_eq!(
            logs_path_key("/var/log/syslog", DEFAULT_LOGS_PATH, false),
            None
        );
        assert_eq!(
            logs_path_key(
                "/var/log/pods/default_nginx_a1b2-c3/nginx/0.log",
                "/var/log/pods/",
                true
            ),
            Some("a1b2-c3".into())
        );
        assert_eq!(
            logs_path_key("/var/lib/kubelet/pods/u-1/volumes/x", "/", true),
            Some("u-1".into())
        );
    }

    #[test]
    fn merge_keeps_what_the_event_has_beside() {
        let mut m = Map::new();
        m.insert(
            "container".into(),
            serde_json::json!({"name": "x", "id": "old"}),
        );
        merge(&mut m, "container", &serde_json::json!({"id": "new"}));
        assert_eq!(
            m["container"],
            serde_json::json!({"name": "x", "id": "new"})
        );
    }
}
