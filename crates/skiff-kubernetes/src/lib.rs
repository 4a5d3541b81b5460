//! The Kubernetes API, as far as skiff needs it: the pods of a node (or namespace) through the
//! API server's list and watch, and the `kubernetes.*` fields Beats derive from a pod.
//!
//! Two components need exactly this and nothing more: the `kubernetes` autodiscover provider
//! (crates/skiff-autodiscover/src/kubernetes.rs: inputs for the containers it finds) and the
//! `add_kubernetes_metadata` processor ([`processor`]: the fields of the pod an event's log file
//! belongs to). It is its own crate so that the processor can sit in skiff-processors' table
//! while the autodiscover crate depends on skiff-processors (for its conditions) without a
//! dependency cycle.
//!
//! - [`connection`]: where the API server is (`kube_config`, `$KUBECONFIG`, in-cluster service
//!   account) and how to authenticate;
//! - [`api`]: GET a JSON document, or a watch's JSON lines, with capped sizes;
//! - [`watch`]: list, then watch from the list's `resourceVersion`, list again on `410 Gone`,
//!   retry with backoff;
//! - [`pod`]: the pod model and the fields;
//! - [`resources`]: `add_resource_metadata`, the pod's namespace and node labels;
//! - [`settings`]: the settings both share (`node`, `scope`, `namespace`, `kube_config`,
//!   labels and annotations);
//! - [`processor`]: the `add_kubernetes_metadata` processor;
//! - `stand_in` (feature `stand-in`, for tests): a stand-in of the API server's pod list and
//!   watch, written from the Kubernetes API documentation, since no cluster runs here.

pub mod api;
pub mod connection;
pub mod pod;
pub mod processor;
pub mod resources;
pub mod settings;
#[cfg(feature = "stand-in")]
pub mod stand_in;
pub mod watch;

use std::path::PathBuf;
use std::time::Duration;

pub use api::Client;
pub use pod::{MetaOptions, Pod};
pub use watch::{Backoff, PodEvent, PodQuery, watch_pods};

/// Why talking to the API server failed.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The settings (kubeconfig, service account, TLS) are unusable.
    #[error("{0}")]
    Config(String),
    /// The server could not be reached.
    #[error("cannot reach the Kubernetes API server {server}: {reason}")]
    Connect {
        /// The server's URL.
        server: String,
        /// Why, with every cause.
        reason: String,
    },
    /// The server answered with an error status.
    #[error("the Kubernetes API server answered {code}: {message}")]
    Status {
        /// The HTTP status (or a watch `ERROR` event's code).
        code: u16,
        /// The server's explanation.
        message: String,
    },
    /// The resource version asked for is gone from the server's history: list again.
    #[error("the resource version is too old (410 Gone)")]
    Gone,
    /// An answer larger than skiff reads.
    #[error("the Kubernetes API server's answer is larger than {limit} bytes")]
    TooLarge {
        /// The cap.
        limit: usize,
    },
    /// An answer skiff does not understand.
    #[error("unexpected answer from the Kubernetes API server: {0}")]
    Protocol(String),
}

/// The node this process runs on, as Beats find it when `node` (or `host`) is not set: the
/// `NODE_NAME` variable (set from `spec.nodeName` in Elastic's DaemonSet manifests), else the
/// host name.
pub fn default_node_name() -> String {
    std::env::var("NODE_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned())
}

/// Where to connect and which pods to follow: the settings the provider and the processor
/// share (`kube_config`, `node`/`host`, `namespace`, `scope`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Target {
    /// `kube_config`: a kubeconfig file; default `$KUBECONFIG`, else in-cluster.
    pub kube_config: Option<PathBuf>,
    /// The pods to follow.
    pub query: PodQuery,
    /// How to retry.
    pub backoff: Backoff,
}

/// How long connecting and non-watch requests may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl Target {
    /// A client for the target's server.
    pub fn client(&self) -> Result<Client, KubeError> {
        let conn = connection::discover(self.kube_config.as_deref())?;
        Client::new(conn, REQUEST_TIMEOUT)
    }
}
