//! Pods as the API server sends them, and the `kubernetes.*` / `container.*` fields Beats derive
//! from them.
//!
//! Only the fields Beats use are modelled; everything else in the JSON is ignored, and every
//! field may be absent or `null` (the API server omits empty ones), so any pod the server can
//! send deserializes. The field names and meanings follow the Kubernetes API reference (Pod v1:
//! `metadata`, `spec.nodeName`, `spec.containers`, `status.podIP`, `status.containerStatuses`).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value, json};

/// `null` as the type's default (the API server writes `null` for some empty lists and maps).
fn nullable<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A pod (`v1.Pod`), the parts Beats read.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Pod {
    /// `metadata`.
    #[serde(deserialize_with = "nullable")]
    pub metadata: ObjectMeta,
    /// `spec`.
    #[serde(deserialize_with = "nullable")]
    pub spec: PodSpec,
    /// `status`.
    #[serde(deserialize_with = "nullable")]
    pub status: PodStatus,
    /// The metadata of the pod's namespace, when `add_resource_metadata.namespace` fetched it
    /// (not part of the pod's JSON).
    #[serde(skip)]
    pub namespace_meta: Option<ObjectMeta>,
    /// The metadata of the pod's node, when `add_resource_metadata.node` fetched it.
    #[serde(skip)]
    pub node_meta: Option<ObjectMeta>,
}

/// `metadata` of any object.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct ObjectMeta {
    /// `name`.
    pub name: String,
    /// `namespace`.
    pub namespace: String,
    /// `uid`.
    pub uid: String,
    /// `resourceVersion`.
    pub resource_version: String,
    /// `labels`.
    #[serde(deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
    /// `annotations`.
    #[serde(deserialize_with = "nullable")]
    pub annotations: BTreeMap<String, String>,
    /// `ownerReferences`: the controller that made the pod (ReplicaSet, StatefulSet...).
    #[serde(deserialize_with = "nullable")]
    pub owner_references: Vec<OwnerReference>,
}

/// One `metadata.ownerReferences` item.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct OwnerReference {
    /// `kind`: `ReplicaSet`, `StatefulSet`, `DaemonSet`, `Job`...
    pub kind: String,
    /// `name`.
    pub name: String,
    /// `controller`: whether this owner manages the pod.
    pub controller: Option<bool>,
}

/// `spec`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct PodSpec {
    /// `nodeName`: the node the pod was scheduled on.
    pub node_name: Option<String>,
    /// `containers`.
    #[serde(deserialize_with = "nullable")]
    pub containers: Vec<ContainerSpec>,
    /// `initContainers`.
    #[serde(deserialize_with = "nullable")]
    pub init_containers: Vec<ContainerSpec>,
    /// `ephemeralContainers`.
    #[serde(deserialize_with = "nullable")]
    pub ephemeral_containers: Vec<ContainerSpec>,
}

/// A container of the spec.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct ContainerSpec {
    /// `name`.
    pub name: String,
    /// `image`.
    pub image: String,
    /// `ports`.
    #[serde(deserialize_with = "nullable")]
    pub ports: Vec<ContainerPort>,
}

/// A declared container port.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerPort {
    /// `containerPort`.
    pub container_port: u16,
    /// `name`.
    pub name: Option<String>,
}

/// `status`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct PodStatus {
    /// `phase`: Pending, Running, Succeeded, Failed, Unknown.
    pub phase: String,
    /// `podIP`.
    #[serde(rename = "podIP")]
    pub pod_ip: Option<String>,
    /// `containerStatuses`.
    #[serde(deserialize_with = "nullable")]
    pub container_statuses: Vec<ContainerStatus>,
    /// `initContainerStatuses`.
    #[serde(deserialize_with = "nullable")]
    pub init_container_statuses: Vec<ContainerStatus>,
    /// `ephemeralContainerStatuses`.
    #[serde(deserialize_with = "nullable")]
    pub ephemeral_container_statuses: Vec<ContainerStatus>,
}

/// A container's status.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerStatus {
    /// `name`.
    pub name: String,
    /// `image`.
    pub image: String,
    /// `containerID`: `<runtime>://<id>`, absent until the container was created.
    #[serde(rename = "containerID")]
    pub container_id: Option<String>,
    /// `state`: exactly one of `running`, `waiting`, `terminated`.
    #[serde(deserialize_with = "nullable")]
    pub state: BTreeMap<String, Value>,
}

/// A container of a pod that has an id (it was created), with what Beats report about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Container<'a> {
    /// The container's name in the pod.
    pub name: &'a str,
    /// The id without the runtime prefix.
    pub id: &'a str,
    /// The runtime (`containerd`, `docker`, `cri-o`), from the id's prefix.
    pub runtime: &'a str,
    /// The image, as the spec names it (the status's resolved name when the spec has none).
    pub image: &'a str,
    /// Whether it is running now.
    pub running: bool,
    /// Its spec, when the pod has one for it.
    pub spec: Option<&'a ContainerSpec>,
}

/// Splits `containerd://abc` into (`containerd`, `abc`); an id without a prefix has no runtime.
pub fn split_container_id(raw: &str) -> (&str, &str) {
    raw.split_once("://").unwrap_or(("", raw))
}

impl Pod {
    /// Every container of the pod (regular, init, ephemeral) that has an id.
    pub fn containers(&self) -> Vec<Container<'_>> {
        let groups = [
            (&self.status.container_statuses, &self.spec.containers),
            (
                &self.status.init_container_statuses,
                &self.spec.init_containers,
            ),
            (
                &self.status.ephemeral_container_statuses,
                &self.spec.ephemeral_containers,
            ),
        ];
        let mut out = Vec::new();
        for (statuses, specs) in groups {
            for st in statuses {
                let Some(raw) = st.container_id.as_deref().filter(|s| !s.is_empty()) else {
                    continue;
                };
                let (runtime, id) = split_container_id(raw);
                if id.is_empty() {
                    continue;
                }
                let spec = specs.iter().find(|s| s.name == st.name);
                let image = spec
                    .map(|s| s.image.as_str())
                    .filter(|i| !i.is_empty())
                    .unwrap_or(&st.image);
                out.push(Container {
                    name: &st.name,
                    id,
                    runtime,
                    image,
                    running: st.state.contains_key("running"),
                    spec,
                });
            }
        }
        out
    }

    /// `namespace/name`, the key the `pod_name` indexer uses.
    pub fn key(&self) -> String {
        format!("{}/{}", self.metadata.namespace, self.metadata.name)
    }
}

/// Which labels and annotations go into the fields, and how their keys are written: Filebeat's
/// `include_labels`, `exclude_labels`, `include_annotations`, `labels.dedot`, `annotations.dedot`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetaOptions {
    /// `include_labels`: only these labels (default: all).
    pub include_labels: Vec<String>,
    /// `exclude_labels`: never these labels.
    pub exclude_labels: Vec<String>,
    /// `include_annotations`: these annotations are added (default: none).
    pub include_annotations: Vec<String>,
    /// `labels.dedot` (default true): `.` in label keys becomes `_`, so `app.kubernetes.io/name`
    /// does not turn into nested objects in Elasticsearch.
    pub labels: Dedot,
    /// `annotations.dedot` (default true).
    pub annotations: Dedot,
}

/// `labels.dedot` / `annotations.dedot`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Dedot {
    /// `dedot` (default true).
    pub dedot: bool,
}

impl Default for Dedot {
    fn default() -> Self {
        Dedot { dedot: true }
    }
}

/// `key` with `.` replaced by `_` when `dedot`.
fn dedot_key(key: &str, dedot: bool) -> String {
    if dedot {
        key.replace('.', "_")
    } else {
        key.to_string()
    }
}

/// A namespace's or node's labels as fields.
fn dedotted(labels: &BTreeMap<String, String>, dedot: bool) -> Map<String, Value> {
    labels
        .iter()
        .map(|(k, v)| (dedot_key(k, dedot), Value::String(v.clone())))
        .collect()
}

/// The labels as fields, filtered and dedotted as `opts` say.
pub fn labels(pod: &Pod, opts: &MetaOptions) -> Map<String, Value> {
    pod.metadata
        .labels
        .iter()
        .filter(|(k, _)| opts.include_labels.is_empty() || opts.include_labels.contains(k))
        .filter(|(k, _)| !opts.exclude_labels.contains(k))
        .map(|(k, v)| (dedot_key(k, opts.labels.dedot), Value::String(v.clone())))
        .collect()
}

/// The annotations as fields: `only` (when given) filters them; dedotted as `opts` say.
pub fn annotations(pod: &Pod, opts: &MetaOptions, only: Option<&[String]>) -> Map<String, Value> {
    pod.metadata
        .annotations
        .iter()
        .filter(|(k, _)| only.is_none_or(|o| o.contains(k)))
        .map(|(k, v)| {
            (
                dedot_key(k, opts.annotations.dedot),
                Value::String(v.clone()),
            )
        })
        .collect()
}

/// The pod's own `kubernetes.*` fields (not a container's): `pod.{name,uid,ip}`, `namespace`,
/// `node.name`, `labels`, the included `annotations`, the controller
/// (`replicaset.name`, `statefulset.name`, `daemonset.name`, `job.name`), and when fetched
/// (`add_resource_metadata`) `namespace_uid`, `namespace_labels`, `node.uid`, `node.labels`, as
/// Beats' metadata generator writes them. Empty values are left out.
pub fn pod_fields(pod: &Pod, opts: &MetaOptions) -> Map<String, Value> {
    let m = &pod.metadata;
    let mut k = Map::new();
    let mut p = Map::new();
    put(&mut p, "name", &m.name);
    put(&mut p, "uid", &m.uid);
    if let Some(ip) = &pod.status.pod_ip {
        put(&mut p, "ip", ip);
    }
    k.insert("pod".into(), Value::Object(p));
    put(&mut k, "namespace", &m.namespace);
    if let Some(node) = pod.spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        let mut n = Map::new();
        put(&mut n, "name", node);
        if let Some(meta) = &pod.node_meta {
            put(&mut n, "uid", &meta.uid);
            let l = dedotted(&meta.labels, opts.labels.dedot);
            if !l.is_empty() {
                n.insert("labels".into(), Value::Object(l));
            }
        }
        k.insert("node".into(), Value::Object(n));
    }
    if let Some(meta) = &pod.namespace_meta {
        put(&mut k, "namespace_uid", &meta.uid);
        let l = dedotted(&meta.labels, opts.labels.dedot);
        if !l.is_empty() {
            k.insert("namespace_labels".into(), Value::Object(l));
        }
    }
    let l = labels(pod, opts);
    if !l.is_empty() {
        k.insert("labels".into(), Value::Object(l));
    }
    let a = annotations(pod, opts, Some(&opts.include_annotations));
    if !a.is_empty() {
        k.insert("annotations".into(), Value::Object(a));
    }
    for owner in &m.owner_references {
        if owner.controller != Some(true) {
            continue;
        }
        let key = match owner.kind.as_str() {
            "ReplicaSet" => "replicaset",
            "StatefulSet" => "statefulset",
            "DaemonSet" => "daemonset",
            "Job" => "job",
            "CronJob" => "cronjob",
            _ => continue,
        };
        k.insert(key.into(), json!({ "name": owner.name }));
    }
    k
}

/// The fields `add_kubernetes_metadata` puts on an event of container `c` of `pod`:
/// `kubernetes.*` of the pod plus `kubernetes.container.name`, and `container.{id,runtime,
/// image.name}`, nested.
pub fn container_fields(pod: &Pod, c: &Container<'_>, opts: &MetaOptions) -> Map<String, Value> {
    let mut k = pod_fields(pod, opts);
    k.insert("container".into(), json!({ "name": c.name }));
    let mut out = Map::new();
    out.insert("kubernetes".into(), Value::Object(k));
    out.insert("container".into(), ecs_container(c));
    out
}

/// `container.{id,runtime,image.name}` (ECS).
pub fn ecs_container(c: &Container<'_>) -> Value {
    let mut m = Map::new();
    put(&mut m, "id", c.id);
    put(&mut m, "runtime", c.runtime);
    if !c.image.is_empty() {
        m.insert("image".into(), json!({ "name": c.image }));
    }
    Value::Object(m)
}

fn put(m: &mut Map<String, Value>, key: &str, v: &str) {
    if !v.is_empty() {
        m.insert(key.into(), Value::String(v.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pod of the Kubernetes documentation's "Pods" page (`nginx`, `nginx:1.14.2`, port 80),
    /// as the API server returns it once running, with a ReplicaSet owner and a dotted label.
    pub(crate) fn doc_pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "nginx-7d9c8b-x2x5q", "namespace": "default",
                "uid": "a1b2c3d4-0000-4000-8000-000000000001", "resourceVersion": "1001",
                "labels": {"app": "nginx", "app.kubernetes.io/name": "web"},
                "annotations": {"co.elastic.logs/module": "nginx", "note": "x"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "nginx-7d9c8b", "uid": "r", "controller": true}]
            },
            "spec": {"nodeName": "node-1", "containers": [{"name": "nginx", "image": "nginx:1.14.2", "ports": [{"containerPort": 80}]}]},
            "status": {
                "phase": "Running", "podIP": "10.244.0.7",
                "containerStatuses": [{"name": "nginx", "image": "docker.io/library/nginx:1.14.2", "imageID": "sha",
                  "containerID": "containerd://0123abcd", "ready": true, "restartCount": 0,
                  "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}}}]
            }
        })
    }

    #[test]
    fn container_fields_of_the_documentation_pod() {
        let pod: Pod = serde_json::from_value(doc_pod()).unwrap();
        let cs = pod.containers();
        assert_eq!(cs.len(), 1);
        assert!(cs[0].running);
        let f = container_fields(&pod, &cs[0], &MetaOptions::default());
        assert_eq!(
            Value::Object(f),
            json!({
                "kubernetes": {
                    "pod": {"name": "nginx-7d9c8b-x2x5q", "uid": "a1b2c3d4-0000-4000-8000-000000000001", "ip": "10.244.0.7"},
                    "namespace": "default",
                    "node": {"name": "node-1"},
                    "labels": {"app": "nginx", "app_kubernetes_io/name": "web"},
                    "replicaset": {"name": "nginx-7d9c8b"},
                    "container": {"name": "nginx"}
                },
                "container": {"id": "0123abcd", "runtime": "containerd", "image": {"name": "nginx:1.14.2"}}
            })
        );
    }

    #[test]
    fn label_and_annotation_options() {
        let pod: Pod = serde_json::from_value(doc_pod()).unwrap();
        let opts = MetaOptions {
            exclude_labels: vec!["app".into()],
            include_annotations: vec!["note".into()],
            labels: Dedot { dedot: false },
            ..MetaOptions::default()
        };
        let f = pod_fields(&pod, &opts);
        assert_eq!(f["labels"], json!({"app.kubernetes.io/name": "web"}));
        assert_eq!(f["annotations"], json!({"note": "x"}));
    }

    #[test]
    fn null_and_missing_parts_deserialize() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "labels": null},
            "spec": null,
            "status": {"containerStatuses": [{"name": "c", "containerID": ""}, {"name": "d", "state": {"waiting": {}}}]}
        }))
        .unwrap();
        assert!(pod.containers().is_empty());
        assert_eq!(split_container_id("docker://x"), ("docker", "x"));
        assert_eq!(split_container_id("x"), ("", "x"));
    }
}
