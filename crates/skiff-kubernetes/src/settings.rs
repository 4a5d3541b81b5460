//! The settings the `kubernetes` provider and `add_kubernetes_metadata` share, as Filebeat
//! names them: which node and namespace, how to connect, which labels and annotations.
//!
//! Each component takes its own keys off first ([`split`]) and reads the rest here, so that an
//! unknown key is still an error with its line, and the shared keys are written once.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;
use skiff_config::{ConfigError, ConfigErrors, Node};

use crate::pod::{Dedot, MetaOptions};
use crate::{Backoff, PodQuery, Target};

/// The shared keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommonSettings {
    /// `node` (the provider's name) or `host` (the processor's): the node whose pods are
    /// followed. Default: `NODE_NAME`, else the host name.
    #[serde(default, alias = "host")]
    pub node: Option<String>,
    /// `scope`: `node` (default) or `cluster` (every node's pods).
    #[serde(default)]
    pub scope: Option<String>,
    /// `namespace`: only this namespace's pods.
    #[serde(default)]
    pub namespace: Option<String>,
    /// `kube_config`: a kubeconfig file (default `$KUBECONFIG`, else in-cluster).
    #[serde(default)]
    pub kube_config: Option<PathBuf>,
    /// `include_labels`: only these labels (default: all).
    #[serde(default)]
    pub include_labels: Vec<String>,
    /// `exclude_labels`.
    #[serde(default)]
    pub exclude_labels: Vec<String>,
    /// `include_annotations` (default: none).
    #[serde(default)]
    pub include_annotations: Vec<String>,
    /// `labels.dedot` (default true).
    #[serde(default)]
    pub labels: Dedot,
    /// `annotations.dedot` (default true).
    #[serde(default)]
    pub annotations: Dedot,
    /// `add_resource_metadata.{namespace,node}.enabled` (default true): add the namespace's and
    /// node's labels (`deployment`, `cronjob` are accepted, not used).
    #[serde(default)]
    pub add_resource_metadata: Option<Value>,
    /// Accepted for compatibility, not used: `sync_period` (the watch keeps up by itself),
    /// `kube_client_options` (client-go's QPS and burst).
    #[serde(default)]
    pub sync_period: Option<Value>,
    /// See `sync_period`.
    #[serde(default)]
    pub kube_client_options: Option<Value>,
}

/// Splits `node` (a map) into the shared settings and a map of the keys in `own`, which keep
/// their paths and lines for the component's own errors.
pub fn split(node: &Node, own: &[&str]) -> Result<(CommonSettings, Node), ConfigErrors> {
    let mut rest = node.clone();
    if matches!(rest.value, skiff_config::NodeValue::Null) {
        rest = Node::empty_map();
        rest.fix_paths(&node.path);
    }
    let mut mine = Node::empty_map();
    mine.fix_paths(&node.path);
    for key in own {
        if let Some(v) = rest.remove(key) {
            let mark = v.mark.clone();
            mine.insert(key, v, &mark);
        }
    }
    Ok((rest.deserialize()?, mine))
}

impl CommonSettings {
    /// Where to connect and which pods to follow. `node` locates a bad `scope`.
    pub fn target(&self, node: &Node) -> Result<Target, ConfigErrors> {
        let on = match self.scope.as_deref() {
            None | Some("node") => Some(self.node.clone().unwrap_or_else(crate::default_node_name)),
            Some("cluster") => None,
            Some(other) => {
                let at = node.get("scope").unwrap_or(node);
                return Err(ConfigError::new(
                    &at.path,
                    at.mark.clone(),
                    format!("scope is `node` or `cluster`, not `{other}`"),
                )
                .into());
            }
        };
        Ok(Target {
            kube_config: self.kube_config.clone(),
            query: PodQuery {
                namespace: self.namespace.clone(),
                node: on,
            },
            backoff: Backoff::default(),
        })
    }

    /// Which resources' metadata to add.
    pub fn resources(&self) -> crate::resources::ResourceOptions {
        crate::resources::ResourceOptions::from_setting(self.add_resource_metadata.as_ref())
    }

    /// The label and annotation options.
    pub fn meta(&self) -> MetaOptions {
        MetaOptions {
            include_labels: self.include_labels.clone(),
            exclude_labels: self.exclude_labels.clone(),
            include_annotations: self.include_annotations.clone(),
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
        }
    }
}
