//! Keeping up with the pods of a node (or namespace, or cluster) the way the Kubernetes API
//! documents it ("Efficient detection of changes"): list them, note the list's
//! `metadata.resourceVersion`, then watch from that version; each watch event carries the
//! object's new `resourceVersion`, so a watch that ends (the server closes it after
//! `timeoutSeconds`, or the connection drops) is resumed from the last one seen. When the server
//! no longer has that version (`410 Gone`, as an HTTP status or an `ERROR` event), the pods are
//! listed again. After a list, the consumer gets the whole set ([`PodEvent::Synced`]) and works
//! out what changed while it was not watching.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::KubeError;
use crate::api::Client;
use crate::pod::Pod;

/// Which pods to follow.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodQuery {
    /// Only this namespace's pods (`/api/v1/namespaces/<ns>/pods`), else every namespace's.
    pub namespace: Option<String>,
    /// Only the pods scheduled on this node (`fieldSelector=spec.nodeName=<node>`).
    pub node: Option<String>,
}

impl PodQuery {
    fn path(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("/api/v1/namespaces/{ns}/pods"),
            None => "/api/v1/pods".to_string(),
        }
    }

    fn selector(&self) -> Vec<(&'static str, String)> {
        match &self.node {
            Some(n) => vec![("fieldSelector", format!("spec.nodeName={n}"))],
            None => Vec::new(),
        }
    }
}

/// What the watcher reports.
#[derive(Debug, Clone, PartialEq)]
pub enum PodEvent {
    /// Every pod there is now (after the first list, and after each list again).
    Synced(Vec<Pod>),
    /// A pod was added or changed.
    Applied(Pod),
    /// A pod was deleted (its last state).
    Deleted(Pod),
}

/// How long to wait before retrying after a failure: doubling from `initial` up to `max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The first wait.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

/// Pods per list page (`limit`); the server hands a `continue` token for the next page.
const PAGE: &str = "500";
/// How long the server keeps a watch open (`timeoutSeconds`) before we resume it.
const WATCH_SECONDS: u64 = 300;
/// The most pods kept from one list (a guard against a server that never stops paging).
pub const MAX_PODS: usize = 200_000;

/// Lists then watches the pods `query` names, reporting through `tx`, until `cancel` fires or
/// `tx` is closed. Failures are logged and retried after `backoff`; it never gives up.
pub async fn watch_pods(
    client: &Client,
    query: &PodQuery,
    backoff: Backoff,
    tx: &mpsc::Sender<PodEvent>,
    cancel: &CancellationToken,
) {
    let mut wait = backoff.initial;
    let mut version: Option<String> = None;
    loop {
        if cancel.is_cancelled() || tx.is_closed() {
            return;
        }
        let step = match &version {
            None => match tokio::select! {
                _ = cancel.cancelled() => return,
                r = list(client, query) => r,
            } {
                Ok((pods, v)) => {
                    tracing::debug!(server = client.server(), pods = pods.len(), version = %v, "kubernetes: listed pods");
                    if tx.send(PodEvent::Synced(pods)).await.is_err() {
                        return;
                    }
                    version = Some(v);
                    wait = backoff.initial;
                    continue;
                }
                Err(e) => Err(e),
            },
            Some(v) => watch(client, query, v, tx, cancel).await,
        };
        match step {
            // The watch ended as planned (timeoutSeconds) or was cancelled: resume.
            Ok(Some(v)) => {
                version = Some(v);
                wait = backoff.initial;
            }
            Ok(None) => return,
            Err(KubeError::Gone) => {
                tracing::info!(
                    server = client.server(),
                    "kubernetes: resource version expired (410 Gone), listing pods again"
                );
                version = None;
            }
            Err(e) => {
                tracing::warn!(server = client.server(), error = %e, retry_in = ?wait, "kubernetes: cannot follow pods");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(backoff.max);
            }
        }
    }
}

/// Lists every page; returns the pods and the list's resource version.
async fn list(client: &Client, query: &PodQuery) -> Result<(Vec<Pod>, String), KubeError> {
    #[derive(Deserialize)]
    struct ListMeta {
        #[serde(default, rename = "resourceVersion")]
        resource_version: String,
        #[serde(default, rename = "continue")]
        cont: Option<String>,
    }
    #[derive(Deserialize)]
    struct PodList {
        metadata: ListMeta,
        #[serde(default)]
        items: Option<Vec<Value>>,
    }
    let mut pods = Vec::new();
    let mut cont: Option<String> = None;
    let path = query.path();
    loop {
        let mut q = query.selector();
        q.push(("limit", PAGE.into()));
        if let Some(c) = &cont {
            q.push(("continue", c.clone()));
        }
        let body = match client.get(&path, &q).await {
            Err(KubeError::Status { code: 410, .. }) => return Err(KubeError::Gone),
            other => other?,
        };
        let page: PodList = serde_json::from_value(body)
            .map_err(|e| KubeError::Protocol(format!("the pod list: {e}")))?;
        for item in page.items.unwrap_or_default() {
            match serde_json::from_value::<Pod>(item) {
                Ok(p) => pods.push(p),
                Err(e) => {
                    tracing::warn!(error = %e, "kubernetes: a pod of the list is not understood, skipped")
                }
            }
        }
        if pods.len() > MAX_PODS {
            return Err(KubeError::Protocol(format!(
                "more than {MAX_PODS} pods listed"
            )));
        }
        match page.metadata.cont.filter(|c| !c.is_empty()) {
            Some(c) => cont = Some(c),
            None => return Ok((pods, page.metadata.resource_version)),
        }
    }
}

/// One watch event (`watch.Event` in the API reference).
#[derive(Deserialize)]
struct WatchEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    object: Value,
}

/// Watches from `version` until the server ends the answer; returns the last version seen, or
/// `None` when cancelled or the receiver is gone.
async fn watch(
    client: &Client,
    query: &PodQuery,
    version: &str,
    tx: &mpsc::Sender<PodEvent>,
    cancel: &CancellationToken,
) -> Result<Option<String>, KubeError> {
    let mut q = query.selector();
    q.push(("watch", "true".into()));
    q.push(("resourceVersion", version.into()));
    q.push(("allowWatchBookmarks", "true".into()));
    q.push(("timeoutSeconds", WATCH_SECONDS.to_string()));
    let path = query.path();
    let mut lines = match tokio::select! {
        _ = cancel.cancelled() => return Ok(None),
        r = client.watch(&path, &q) => r,
    } {
        Err(KubeError::Status { code: 410, .. }) => return Err(KubeError::Gone),
        other => other?,
    };
    let mut version = version.to_string();
    // A server that goes silent past its own timeout is as good as gone.
    let idle = Duration::from_secs(WATCH_SECONDS + 60);
    loop {
        let line = tokio::select! {
            _ = cancel.cancelled() => return Ok(None),
            r = tokio::time::timeout(idle, lines.next_line()) => match r {
                Ok(r) => r?,
                Err(_) => return Err(KubeError::Protocol("the watch went silent".into())),
            },
        };
        let Some(line) = line else {
            return Ok(Some(version));
        };
        let ev: WatchEvent = match serde_json::from_slice(&line) {
            Ok(ev) => ev,
            Err(e) => {
                tracing::warn!(error = %e, "kubernetes: a watch event is not understood, skipped");
                continue;
            }
        };
        if ev.kind == "ERROR" {
            let code = ev.object.get("code").and_then(Value::as_u64);
            if code == Some(410) {
                return Err(KubeError::Gone);
            }
            let message = ev
                .object
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("no message")
                .to_string();
            return Err(KubeError::Status {
                code: code.and_then(|c| u16::try_from(c).ok()).unwrap_or(0),
                message,
            });
        }
        if let Some(v) = ev
            .object
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
        {
            version = v.to_string();
        }
        let pod = || serde_json::from_value::<Pod>(ev.object.clone());
        let out = match ev.kind.as_str() {
            "ADDED" | "MODIFIED" => pod().map(PodEvent::Applied),
            "DELETED" => pod().map(PodEvent::Deleted),
            // BOOKMARK only moves the version on.
            _ => continue,
        };
        match out {
            Ok(ev) => {
                if tx.send(ev).await.is_err() {
                    return Ok(None);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "kubernetes: a pod of the watch is not understood, skipped")
            }
        }
    }
}
