//! The `kubernetes` provider: the running containers of the pods on this node (or in a
//! namespace, or the whole cluster), from the API server's list and watch.
//!
//! The API client, the watch (list, watch from the list's `resourceVersion`, resume after a
//! lost connection, list again on `410 Gone`, backoff) and the `kubernetes.*` fields live in
//! crates/skiff-kubernetes, shared with `add_kubernetes_metadata`. What is here is what makes
//! them a [`Provider`]: one [`Discovered`] per running container of a pod (id = the container
//! id), with the `data` Filebeat's kubernetes provider documents, the `co.elastic.logs/*`
//! annotations as hints, and the differences between what was running and what runs now
//! reported as [`Change`]s (after a new list, too: what vanished while the watch was down is
//! stopped, what appeared is started).
//!
//! A container whose pod changes (labels, annotations) keeps its input: only containers that
//! start or stop (or pods that come or go) are reported, so a label change does not restart
//! the reading of a log file.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_json::{Map, Value, json};
use skiff_config::{ConfigError, ConfigErrors, Node};
use skiff_kubernetes::pod::{self, MetaOptions, Pod};
use skiff_kubernetes::resources::{ResourceOptions, Resources};
use skiff_kubernetes::{Backoff, PodEvent, Target, settings, watch_pods};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{Change, Discovered, Provider, ProviderError};

/// Where the kubelet links each container's log: the log path of the provider's default hints
/// configuration (`hints.default_config`), as Filebeat documents it.
pub const DEFAULT_LOG_PATH: &str = "/var/log/containers/*-${data.kubernetes.container.id}.log";

/// The provider's descriptor, one line in [`crate::PROVIDERS`].
pub static PLUGIN: crate::ProviderPlugin = crate::ProviderPlugin {
    name: "kubernetes",
    build: |node| Ok(Box::new(KubernetesProvider::from_config(node)?)),
    default_hints_config: "type: container\npaths: ['/var/log/containers/*-${data.kubernetes.container.id}.log']\n",
};

/// Filebeat's default `hints.default_config` for this provider: the `container` input on the
/// container's log file.
pub fn default_hints_config() -> Value {
    json!({"type": "container", "paths": [DEFAULT_LOG_PATH]})
}

/// The provider's own settings (the shared ones are `skiff_kubernetes::settings`). The
/// runner's keys (`templates`, `hints.*`, `cleanup_timeout`, `appenders`, `builders`) are
/// accepted here and left to it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// `resource`: only `pod` (the default) is supported.
    #[serde(default)]
    resource: Option<String>,
    /// `unique`: with `scope: cluster`, only the leader of the cluster's Beats runs the
    /// templates (leader election through a Lease); not supported, refused when true.
    #[serde(default)]
    unique: bool,
    /// `prefix` of the hints' annotations (default `co.elastic`).
    #[serde(default)]
    prefix: Option<String>,
}

/// The keys of [`Settings`].
const OWN_KEYS: &[&str] = &["resource", "unique", "prefix"];
/// Keys that are the runner's, or accepted without use (`leader_lease`, `identifier`: only
/// meaningful with `unique`).
const OTHERS_KEYS: &[&str] = &[
    "type",
    "templates",
    "hints",
    "cleanup_timeout",
    "appenders",
    "builders",
    "leader_lease",
    "identifier",
];

/// The `kubernetes` provider.
#[derive(Debug, Clone)]
pub struct KubernetesProvider {
    target: Target,
    opts: MetaOptions,
    resources: ResourceOptions,
    prefix: String,
}

impl KubernetesProvider {
    /// Reads the provider's settings (one item of `filebeat.autodiscover.providers`). Nothing
    /// is contacted yet: a missing cluster is reported when it runs.
    pub fn from_config(node: &Node) -> Result<Self, ConfigErrors> {
        let (common, own) = settings::split(node, &[OWN_KEYS, OTHERS_KEYS].concat())?;
        let s: Settings = {
            let mut own = own;
            for k in OTHERS_KEYS {
                own.remove(k);
            }
            own.deserialize()?
        };
        let err = |key: &str, msg: String| -> ConfigErrors {
            let at = node.get(key).unwrap_or(node);
            ConfigError::new(&at.path, at.mark.clone(), msg).into()
        };
        match s.resource.as_deref() {
            None | Some("pod") => {}
            Some(other) => {
                return Err(err(
                    "resource",
                    format!("resource `{other}` is not supported by skiff yet: only `pod`"),
                ));
            }
        }
        if s.unique {
            return Err(err(
                "unique",
                "`unique: true` (one leader among the cluster's agents, through a Lease) is not supported by skiff yet; run one agent with `scope: cluster` instead".into(),
            ));
        }
        Ok(KubernetesProvider {
            target: common.target(node)?,
            opts: common.meta(),
            resources: common.resources(),
            prefix: s.prefix.unwrap_or_else(|| "co.elastic".into()),
        })
    }

    /// Sets the retry timing (tests use short ones).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.target.backoff = backoff;
        self
    }
}

/// The hints of container `container` of a pod with `annotations`: `<prefix>.logs/<key>`, and
/// `<prefix>.logs.<container>/<key>` which wins for that container, with the prefix removed.
pub fn hints(
    annotations: &BTreeMap<String, String>,
    container: &str,
    prefix: &str,
) -> Vec<(String, String)> {
    let general = format!("{prefix}.logs/");
    let own = format!("{prefix}.logs.{container}/");
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in annotations {
        if let Some(key) = k.strip_prefix(&general) {
            out.entry(key.to_string()).or_insert_with(|| v.clone());
        }
    }
    for (k, v) in annotations {
        if let Some(key) = k.strip_prefix(&own) {
            out.insert(key.to_string(), v.clone());
        }
    }
    out.into_iter().collect()
}

/// What the provider finds in a pod (the JSON the API server sends): one [`Discovered`] per
/// running container. A pure function, so that it is tested against documented pods.
pub fn discover(pod: &Value, opts: &MetaOptions, prefix: &str) -> Vec<Discovered> {
    match serde_json::from_value::<Pod>(pod.clone()) {
        Ok(p) => discover_pod(&p, opts, prefix),
        Err(_) => Vec::new(),
    }
}

fn discover_pod(p: &Pod, opts: &MetaOptions, prefix: &str) -> Vec<Discovered> {
    let mut out = Vec::new();
    for c in p.containers().into_iter().filter(|c| c.running) {
        let mut k = pod::pod_fields(p, opts);
        // Templates and conditions see every annotation (Filebeat passes them all in `data`).
        let all = pod::annotations(p, opts, None);
        if all.is_empty() {
            k.remove("annotations");
        } else {
            k.insert("annotations".into(), Value::Object(all));
        }
        k.insert(
            "container".into(),
            json!({"id": c.id, "name": c.name, "image": c.image}),
        );
        let mut data = Map::new();
        if let Some(ip) = p.status.pod_ip.as_deref().filter(|i| !i.is_empty()) {
            data.insert("host".into(), Value::String(ip.into()));
        }
        if let Some(port) = c.spec.and_then(|s| s.ports.first()) {
            data.insert("port".into(), Value::from(port.container_port));
        }
        data.insert("kubernetes".into(), Value::Object(k));
        let mut container = pod::ecs_container(&c);
        if let Some(m) = container.as_object_mut() {
            m.insert("name".into(), Value::String(c.name.into()));
        }
        data.insert("container".into(), container);
        out.push(Discovered {
            id: c.id.to_string(),
            data,
            hints: hints(&p.metadata.annotations, c.name, prefix),
            meta: pod::container_fields(p, &c, opts),
        });
    }
    out
}

/// What has been reported as started, by pod uid and container id.
#[derive(Debug, Default)]
struct Running {
    pods: HashMap<String, BTreeMap<String, Discovered>>,
}

impl Running {
    /// The changes that bring what was reported to what `ev` says runs now.
    fn apply(&mut self, ev: PodEvent, opts: &MetaOptions, prefix: &str) -> Vec<Change> {
        let found = |p: &Pod| -> BTreeMap<String, Discovered> {
            discover_pod(p, opts, prefix)
                .into_iter()
                .map(|d| (d.id.clone(), d))
                .collect()
        };
        let mut changes = Vec::new();
        match ev {
            PodEvent::Synced(pods) => {
                let mut now: HashMap<String, BTreeMap<String, Discovered>> = pods
                    .iter()
                    .map(|p| (p.metadata.uid.clone(), found(p)))
                    .collect();
                let uids: Vec<String> = self.pods.keys().cloned().collect();
                for uid in uids {
                    let new = now.remove(&uid).unwrap_or_default();
                    self.update(uid, new, &mut changes);
                }
                for (uid, new) in now {
                    self.update(uid, new, &mut changes);
                }
            }
            PodEvent::Applied(p) => {
                let new = found(&p);
                self.update(p.metadata.uid, new, &mut changes);
            }
            PodEvent::Deleted(p) => self.update(p.metadata.uid, BTreeMap::new(), &mut changes),
        }
        changes
    }

    fn update(&mut self, uid: String, new: BTreeMap<String, Discovered>, out: &mut Vec<Change>) {
        let old = self.pods.remove(&uid).unwrap_or_default();
        for id in old.keys().filter(|id| !new.contains_key(*id)) {
            out.push(Change::Stop { id: id.clone() });
        }
        let mut kept = BTreeMap::new();
        for (id, d) in new {
            match old.get(&id) {
                // Still running: keep what was reported (no restart on a label change).
                Some(before) => {
                    kept.insert(id, before.clone());
                }
                None => {
                    out.push(Change::Start(d.clone()));
                    kept.insert(id, d);
                }
            }
        }
        if !kept.is_empty() {
            self.pods.insert(uid, kept);
        }
    }
}

#[async_trait::async_trait]
impl Provider for KubernetesProvider {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    async fn run(
        self: Box<Self>,
        tx: mpsc::Sender<Change>,
        cancel: CancellationToken,
    ) -> Result<(), ProviderError> {
        let client = self.target.client().map_err(|e| ProviderError::Connect {
            what: "the Kubernetes API server".into(),
            reason: e.to_string(),
        })?;
        let mut resources = Resources::new(client.clone(), self.resources);
        let (ptx, mut prx) = mpsc::channel(64);
        let (query, backoff) = (self.target.query.clone(), self.target.backoff);
        let stop = cancel.child_token();
        let watcher = {
            let stop = stop.clone();
            tokio::spawn(async move { watch_pods(&client, &query, backoff, &ptx, &stop).await })
        };
        let mut running = Running::default();
        while let Some(mut ev) = prx.recv().await {
            resources.enrich(&mut ev).await;
            for change in running.apply(ev, &self.opts, &self.prefix) {
                if tx.send(change).await.is_err() {
                    stop.cancel();
                    break;
                }
            }
        }
        stop.cancel();
        let _ = watcher.await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pod of the Kubernetes documentation's "Pods" page (`nginx`, image `nginx:1.14.2`,
    /// port 80) as the API server returns it once running, with a sidecar whose own hints
    /// override the pod's, and a label with dots.
    fn doc_pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "nginx", "namespace": "default", "uid": "5f0a-uid", "resourceVersion": "42",
                "labels": {"app": "web", "app.kubernetes.io/name": "nginx"},
                "annotations": {
                    "co.elastic.logs/module": "nginx",
                    "co.elastic.logs/fileset.stdout": "access",
                    "co.elastic.logs.sidecar/enabled": "false",
                    "co.elastic.logs.sidecar/module": "none"
                }
            },
            "spec": {"nodeName": "worker-1", "containers": [
                {"name": "nginx", "image": "nginx:1.14.2", "ports": [{"containerPort": 80}]},
                {"name": "sidecar", "image": "busybox"},
                {"name": "waiting", "image": "busybox"}
            ]},
            "status": {"phase": "Running", "podIP": "10.244.1.5", "containerStatuses": [
                {"name": "nginx", "image": "docker.io/library/nginx:1.14.2", "containerID": "containerd://aaa111",
                 "state": {"running": {"startedAt": "2024-05-01T10:00:00Z"}}},
                {"name": "sidecar", "image": "docker.io/library/busybox:latest", "containerID": "containerd://bbb222",
                 "state": {"running": {}}},
                {"name": "waiting", "image": "busybox", "state": {"waiting": {"reason": "ContainerCreating"}}}
            ]}
        })
    }

    #[test]
    fn one_discovered_per_running_container_with_filebeats_data() {
        let found = discover(&doc_pod(), &MetaOptions::default(), "co.elastic");
        assert_eq!(found.len(), 2);
        let d = &found[0];
        assert_eq!(d.id, "aaa111");
        assert_eq!(
            Value::Object(d.data.clone()),
            json!({
                "host": "10.244.1.5",
                "port": 80,
                "kubernetes": {
                    "pod": {"name": "nginx", "uid": "5f0a-uid", "ip": "10.244.1.5"},
                    "namespace": "default",
                    "node": {"name": "worker-1"},
                    "labels": {"app": "web", "app_kubernetes_io/name": "nginx"},
                    "annotations": {
                        "co_elastic_logs/module": "nginx",
                        "co_elastic_logs/fileset_stdout": "access",
                        "co_elastic_logs_sidecar/enabled": "false",
                        "co_elastic_logs_sidecar/module": "none"
                    },
                    "container": {"id": "aaa111", "name": "nginx", "image": "nginx:1.14.2"}
                },
                "container": {"id": "aaa111", "name": "nginx", "runtime": "containerd", "image": {"name": "nginx:1.14.2"}}
            })
        );
        assert_eq!(
            d.hints,
            [
                ("fileset.stdout".to_string(), "access".to_string()),
                ("module".into(), "nginx".into())
            ]
        );
        assert_eq!(
            Value::Object(d.meta.clone()),
            json!({
                "kubernetes": {
                    "pod": {"name": "nginx", "uid": "5f0a-uid", "ip": "10.244.1.5"},
                    "namespace": "default",
                    "node": {"name": "worker-1"},
                    "labels": {"app": "web", "app_kubernetes_io/name": "nginx"},
                    "container": {"name": "nginx"}
                },
                "container": {"id": "aaa111", "runtime": "containerd", "image": {"name": "nginx:1.14.2"}}
            })
        );
        // The sidecar's own hints win over the pod's.
        assert_eq!(
            found[1].hints,
            [
                ("enabled".to_string(), "false".to_string()),
                ("fileset.stdout".into(), "access".into()),
                ("module".into(), "none".into())
            ]
        );
        assert_eq!(found[1].data["container"]["image"]["name"], "busybox");
        assert!(found[1].data.get("port").is_none());
    }

    #[test]
    fn pending_pods_and_garbage_find_nothing() {
        let mut p = doc_pod();
        p["status"] = json!({"phase": "Pending"});
        assert!(discover(&p, &MetaOptions::default(), "co.elastic").is_empty());
        assert!(discover(&json!("nope"), &MetaOptions::default(), "co.elastic").is_empty());
    }

    #[test]
    fn changes_are_the_difference() {
        let pod = |v: Value| serde_json::from_value::<Pod>(v).unwrap();
        let opts = MetaOptions::default();
        let mut r = Running::default();
        let ids = |cs: &[Change]| -> Vec<String> {
            cs.iter()
                .map(|c| match c {
                    Change::Start(d) => format!("+{}", d.id),
                    Change::Stop { id } => format!("-{id}"),
                })
                .collect()
        };
        let full = pod(doc_pod());
        assert_eq!(
            ids(&r.apply(PodEvent::Synced(vec![full.clone()]), &opts, "co.elastic")),
            ["+aaa111", "+bbb222"]
        );
        // A label change: nothing.
        let mut relabelled = doc_pod();
        relabelled["metadata"]["labels"]["app"] = json!("other");
        assert!(
            r.apply(PodEvent::Applied(pod(relabelled)), &opts, "co.elastic")
                .is_empty()
        );
        // The sidecar terminates.
        let mut v = doc_pod();
        v["status"]["containerStatuses"][1]["state"] = json!({"terminated": {"exitCode": 0}});
        assert_eq!(
            ids(&r.apply(PodEvent::Applied(pod(v)), &opts, "co.elastic")),
            ["-bbb222"]
        );
        // A new list without the pod: it went while the watch was down.
        assert_eq!(
            ids(&r.apply(PodEvent::Synced(vec![]), &opts, "co.elastic")),
            ["-aaa111"]
        );
        assert_eq!(
            ids(&r.apply(PodEvent::Applied(full.clone()), &opts, "co.elastic")),
            ["+aaa111", "+bbb222"]
        );
        assert_eq!(
            ids(&r.apply(PodEvent::Deleted(full), &opts, "co.elastic")),
            ["-aaa111", "-bbb222"]
        );
    }

    fn config(yaml: &str) -> Result<KubernetesProvider, String> {
        let node = skiff_config::parse_str(yaml, Some("t.yml")).unwrap();
        KubernetesProvider::from_config(&node).map_err(|e| e.to_string())
    }

    #[test]
    fn filebeat_settings() {
        let p = config("type: kubernetes\nnode: n1\nnamespace: prod\nhints.enabled: true\nhints.default_config: {type: container, paths: [/x]}\ntemplates: []\ncleanup_timeout: 30s\nadd_resource_metadata: {namespace.enabled: true}\n").unwrap();
        assert_eq!(p.target.query.node.as_deref(), Some("n1"));
        assert_eq!(p.target.query.namespace.as_deref(), Some("prod"));
        let p = config("scope: cluster\n").unwrap();
        assert_eq!(p.target.query.node, None);
        let e = config("scope: everywhere\n").unwrap_err();
        assert!(e.contains("t.yml:1") && e.contains("everywhere"), "{e}");
        let e = config("resource: service\n").unwrap_err();
        assert!(e.contains("resource `service`"), "{e}");
        let e = config("scope: cluster\nunique: true\n").unwrap_err();
        assert!(e.contains("unique"), "{e}");
        let e = config("nod: x\n").unwrap_err();
        assert!(e.contains("nod"), "{e}");
    }
}
