//! `add_resource_metadata`: the labels of a pod's namespace and node, added beside the pod's
//! (`kubernetes.namespace_labels.*`, `kubernetes.namespace_uid`, `kubernetes.node.labels.*`,
//! `kubernetes.node.uid`), on by default as in Beats 8.
//!
//! A node's pods share one node and a few namespaces, so each is fetched once
//! (`GET /api/v1/namespaces/<ns>`, `GET /api/v1/nodes/<name>`) and kept until the pods are
//! listed again (which also picks up label changes). A fetch that fails leaves the fields out
//! rather than holding the pod back.

use std::collections::HashMap;

use serde_json::Value;

use crate::Client;
use crate::pod::{ObjectMeta, Pod};
use crate::watch::PodEvent;

/// Which resources' metadata to add: `add_resource_metadata.namespace.enabled` and
/// `.node.enabled` (both default true).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceOptions {
    /// Add the namespace's labels and uid.
    pub namespace: bool,
    /// Add the node's labels and uid.
    pub node: bool,
}

impl Default for ResourceOptions {
    fn default() -> Self {
        ResourceOptions {
            namespace: true,
            node: true,
        }
    }
}

impl ResourceOptions {
    /// From the `add_resource_metadata` setting as written.
    pub fn from_setting(v: Option<&Value>) -> Self {
        let on = |kind: &str| {
            v.and_then(|v| v.get(kind))
                .and_then(|k| k.get("enabled"))
                .and_then(Value::as_bool)
                .unwrap_or(true)
        };
        ResourceOptions {
            namespace: on("namespace"),
            node: on("node"),
        }
    }
}

/// The most namespaces and nodes remembered before starting afresh.
const MAX_CACHED: usize = 10_000;

/// Namespaces and nodes fetched so far (`None`: the fetch failed).
pub struct Resources {
    client: Client,
    opts: ResourceOptions,
    namespaces: HashMap<String, Option<ObjectMeta>>,
    nodes: HashMap<String, Option<ObjectMeta>>,
}

impl Resources {
    /// Fetches through `client` what `opts` asks for.
    pub fn new(client: Client, opts: ResourceOptions) -> Self {
        Resources {
            client,
            opts,
            namespaces: HashMap::new(),
            nodes: HashMap::new(),
        }
    }

    /// Attaches the namespace's and node's metadata to the pods of `ev`. After a list, what
    /// was fetched before is fetched again.
    pub async fn enrich(&mut self, ev: &mut PodEvent) {
        match ev {
            PodEvent::Synced(pods) => {
                self.namespaces.clear();
                self.nodes.clear();
                for p in pods {
                    self.enrich_pod(p).await;
                }
            }
            PodEvent::Applied(p) | PodEvent::Deleted(p) => self.enrich_pod(p).await,
        }
    }

    async fn enrich_pod(&mut self, pod: &mut Pod) {
        if self.opts.namespace && !pod.metadata.namespace.is_empty() {
            let ns = pod.metadata.namespace.clone();
            pod.namespace_meta = fetch(
                &self.client,
                &mut self.namespaces,
                &format!("/api/v1/namespaces/{ns}"),
                ns,
            )
            .await;
        }
        if self.opts.node
            && let Some(node) = pod.spec.node_name.clone().filter(|n| !n.is_empty())
        {
            pod.node_meta = fetch(
                &self.client,
                &mut self.nodes,
                &format!("/api/v1/nodes/{node}"),
                node,
            )
            .await;
        }
    }
}

/// `name`'s metadata from `cache`, or fetched from `path` and remembered.
async fn fetch(
    client: &Client,
    cache: &mut HashMap<String, Option<ObjectMeta>>,
    path: &str,
    name: String,
) -> Option<ObjectMeta> {
    if let Some(hit) = cache.get(&name) {
        return hit.clone();
    }
    let got = match client.get(path, &[]).await {
        Ok(v) => v
            .get("metadata")
            .cloned()
            .and_then(|m| serde_json::from_value::<ObjectMeta>(m).ok()),
        Err(e) => {
            tracing::warn!(path, error = %e, "kubernetes: cannot fetch metadata for add_resource_metadata");
            None
        }
    };
    if cache.len() >= MAX_CACHED {
        cache.clear();
    }
    cache.insert(name, got.clone());
    got
}
