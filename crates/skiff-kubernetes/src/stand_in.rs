//! A stand-in of the Kubernetes API server's pod list and watch, for tests: no cluster (and no
//! container runtime to run one) is available on the machines skiff is tested on.
//!
//! Written from the Kubernetes API documentation ("API Concepts": *Efficient detection of
//! changes*, *Watch bookmarks*, *Resource versions*; the Pod v1 and `watch.Event` references),
//! not from skiff's client:
//! - `GET /api/v1/pods` and `GET /api/v1/namespaces/{ns}/pods`, optionally with
//!   `fieldSelector=spec.nodeName=<node>`, answer a `PodList` whose `metadata.resourceVersion`
//!   is the store's current version;
//! - the same with `watch=true&resourceVersion=N` answers a stream of JSON lines
//!   `{"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":{...}}`: first every change after
//!   `N` (from the history), then changes as they happen; every change bumps the store's version
//!   and sets the object's `metadata.resourceVersion`;
//! - a `resourceVersion` older than the history kept (after [`ApiServer::compact`]) is answered
//!   with one `ERROR` event carrying a `Status` with `code: 410` (`reason: Expired`), as the API
//!   server does for a watch;
//! - `GET /api/v1/namespaces/{name}` and `GET /api/v1/nodes/{name}` answer the objects stored
//!   with [`ApiServer::put_namespace`] / [`ApiServer::put_node`], else `404` with a `Status`;
//! - during an [`ApiServer::outage`], every request is answered `503`;
//! - with a token set, a request without `Authorization: Bearer <token>` gets `401` and a
//!   `Status`.
//!
//! Simplifications (documented, and not relied on by skiff): `limit`/`continue` are ignored (the
//! documentation allows a server to answer the whole list), only the `spec.nodeName` field
//! selector is understood, and a watch with a field selector sees only the events of objects
//! that match it (the real server also sends `ADDED`/`DELETED` when an object starts or stops
//! matching; pods do not change node).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use skiff_tls::SslServerConfig;
use tokio::sync::mpsc;

type Line = Result<Bytes, Infallible>;

/// A watch being answered.
struct Watcher {
    namespace: Option<String>,
    node: Option<String>,
    tx: mpsc::UnboundedSender<Line>,
}

#[derive(Default)]
struct Store {
    version: u64,
    /// `namespace/name` → pod.
    pods: BTreeMap<String, Value>,
    /// Every change: (version, type, object).
    history: Vec<(u64, &'static str, Value)>,
    /// Watches from a version below this get 410.
    oldest: u64,
    watchers: Vec<Watcher>,
    /// `path?query` of every request, in order.
    requests: Vec<String>,
    token: Option<String>,
    /// Answering 503 to everything (a restarting API server).
    down: bool,
    /// Other objects by path (`/api/v1/namespaces/<ns>`, `/api/v1/nodes/<name>`).
    objects: BTreeMap<String, Value>,
}

fn matches(pod: &Value, namespace: Option<&str>, node: Option<&str>) -> bool {
    let ns = pod.pointer("/metadata/namespace").and_then(Value::as_str);
    let on = pod.pointer("/spec/nodeName").and_then(Value::as_str);
    namespace.is_none_or(|n| Some(n) == ns) && node.is_none_or(|n| Some(n) == on)
}

/// `namespace/name` of an object.
fn key(obj: &Value) -> String {
    let text = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or_default();
    format!("{}/{}", text("/metadata/namespace"), text("/metadata/name"))
}

fn line(kind: &str, object: &Value) -> Line {
    let mut text = json!({"type": kind, "object": object}).to_string();
    text.push('\n');
    Ok(Bytes::from(text))
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

impl Store {
    fn change(&mut self, kind: &'static str, mut pod: Value) {
        self.version += 1;
        if let Some(m) = pod.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert(
                "resourceVersion".into(),
                Value::String(self.version.to_string()),
            );
        }
        let key = key(&pod);
        if kind == "DELETED" {
            self.pods.remove(&key);
        } else {
            self.pods.insert(key, pod.clone());
        }
        self.watchers.retain(|w| {
            !matches(&pod, w.namespace.as_deref(), w.node.as_deref())
                || w.tx.send(line(kind, &pod)).is_ok()
        });
        self.history.push((self.version, kind, pod));
    }
}

/// The running stand-in. Dropping it stops it.
pub struct ApiServer {
    addr: SocketAddr,
    store: Arc<Mutex<Store>>,
    task: tokio::task::JoinHandle<()>,
    https: bool,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ApiServer {
    /// Starts on a free port of 127.0.0.1 (plain HTTP); with `token`, requests must carry it.
    pub async fn start(token: Option<&str>) -> std::io::Result<Self> {
        Self::start_with(token, None).await
    }

    /// Starts serving HTTPS with the certificate chain and key `tls` (PEM), as a real API
    /// server (and the in-cluster `https://KUBERNETES_SERVICE_HOST`) does.
    pub async fn start_tls(token: Option<&str>, tls: &SslServerConfig) -> std::io::Result<Self> {
        let cfg = skiff_tls::server_config(tls).map_err(std::io::Error::other)?;
        Self::start_with(token, Some(tokio_rustls::TlsAcceptor::from(cfg))).await
    }

    async fn start_with(
        token: Option<&str>,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> std::io::Result<Self> {
        let store = Arc::new(Mutex::new(Store {
            token: token.map(str::to_string),
            ..Store::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(store.clone());
        let https = tls.is_some();
        let task = match tls {
            None => tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            }),
            Some(acceptor) => tokio::spawn(async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    let (acceptor, app) = (acceptor.clone(), app.clone());
                    tokio::spawn(async move {
                        let Ok(stream) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let svc = hyper_util::service::TowerToHyperService::new(app);
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                            .await;
                    });
                }
            }),
        };
        Ok(ApiServer {
            addr,
            store,
            task,
            https,
        })
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `http://127.0.0.1:<port>` (`https://` when serving TLS).
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Writes a kubeconfig for this server (with the token, if any) into `dir`.
    pub fn kubeconfig(&self, dir: &Path) -> std::io::Result<PathBuf> {
        self.kubeconfig_with_ca(dir, None)
    }

    /// Writes a kubeconfig for this server into `dir`, trusting `ca_pem`
    /// (`certificate-authority-data`, base64 of the PEM, as kubectl writes it).
    pub fn kubeconfig_with_ca(&self, dir: &Path, ca_pem: Option<&str>) -> std::io::Result<PathBuf> {
        use base64::Engine as _;
        let path = dir.join("kubeconfig");
        let token = self.store().token.clone().unwrap_or_default();
        let ca = ca_pem.map_or(String::new(), |pem| {
            format!(
                "\n    certificate-authority-data: {}",
                base64::engine::general_purpose::STANDARD.encode(pem)
            )
        });
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: stand-in\nclusters:\n- name: stand-in\n  cluster:\n    server: {}{ca}\ncontexts:\n- name: stand-in\n  context: {{cluster: stand-in, user: tester}}\nusers:\n- name: tester\n  user: {{token: \"{token}\"}}\n",
                self.url()
            ),
        )?;
        Ok(path)
    }

    /// Creates or replaces a pod (`ADDED` or `MODIFIED`).
    pub fn apply(&self, pod: Value) {
        let mut s = self.store();
        let kind = if s.pods.contains_key(&key(&pod)) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        s.change(kind, pod);
    }

    /// Stores a namespace (`GET /api/v1/namespaces/<name>` answers it).
    pub fn put_namespace(&self, name: &str, labels: Value) {
        let obj = json!({"kind": "Namespace", "apiVersion": "v1",
            "metadata": {"name": name, "uid": format!("ns-uid-{name}"), "labels": labels}});
        self.store()
            .objects
            .insert(format!("/api/v1/namespaces/{name}"), obj);
    }

    /// Stores a node (`GET /api/v1/nodes/<name>` answers it).
    pub fn put_node(&self, name: &str, labels: Value) {
        let obj = json!({"kind": "Node", "apiVersion": "v1",
            "metadata": {"name": name, "uid": format!("node-uid-{name}"), "labels": labels}});
        self.store()
            .objects
            .insert(format!("/api/v1/nodes/{name}"), obj);
    }

    /// Deletes a pod (`DELETED`, with its last state).
    pub fn delete(&self, namespace: &str, name: &str) {
        let mut s = self.store();
        if let Some(pod) = s.pods.get(&format!("{namespace}/{name}")).cloned() {
            s.change("DELETED", pod);
        }
    }

    /// Forgets the history: watches from a version older than the current one get `410 Gone`
    /// (a list, which returns the current version, is then needed).
    pub fn compact(&self) {
        let mut s = self.store();
        s.oldest = s.version;
        s.history.clear();
    }

    /// Ends every open watch, as a lost connection or a restarted API server would.
    pub fn disconnect(&self) {
        self.store().watchers.clear();
    }

    /// Starts (`true`) or ends an outage: while down, open watches are ended and every request
    /// is answered `503 Service Unavailable`, as while the API server restarts.
    pub fn outage(&self, down: bool) {
        let mut s = self.store();
        s.down = down;
        if down {
            s.watchers.clear();
        }
    }

    /// Sends a `BOOKMARK` with the current version to every open watch.
    pub fn bookmark(&self) {
        let mut s = self.store();
        let v = s.version.to_string();
        let obj = json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": v}});
        s.watchers
            .retain(|w| w.tx.send(line("BOOKMARK", &obj)).is_ok());
    }

    /// How many watches are open.
    pub fn watches(&self) -> usize {
        let mut s = self.store();
        s.watchers.retain(|w| !w.tx.is_closed());
        s.watchers.len()
    }

    /// `path?query` of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.store().requests.clone()
    }
}

async fn handle(
    State(store): State<Arc<Mutex<Store>>>,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let mut s = store.lock().unwrap_or_else(|p| p.into_inner());
    s.requests.push(uri.to_string());
    if s.down {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            status(503, "ServiceUnavailable", "the server is restarting").to_string(),
        )
            .into_response();
    }
    if let Some(token) = &s.token {
        let given = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(token.as_str()) {
            return (
                StatusCode::UNAUTHORIZED,
                status(401, "Unauthorized", "Unauthorized").to_string(),
            )
                .into_response();
        }
    }
    let path = uri.path();
    if let Some(obj) = s.objects.get(path) {
        return ([("content-type", "application/json")], obj.to_string()).into_response();
    }
    let namespace = if path == "/api/v1/pods" {
        None
    } else if let Some(ns) = path
        .strip_prefix("/api/v1/namespaces/")
        .and_then(|r| r.strip_suffix("/pods"))
    {
        Some(ns.to_string())
    } else {
        let msg = format!("the server could not find the requested resource ({path})");
        return (
            StatusCode::NOT_FOUND,
            status(404, "NotFound", &msg).to_string(),
        )
            .into_response();
    };
    let node = match q.get("fieldSelector").map(String::as_str) {
        None | Some("") => None,
        Some(sel) => match sel.strip_prefix("spec.nodeName=") {
            Some(n) => Some(n.to_string()),
            None => {
                let msg = format!("field label not supported by the stand-in: {sel}");
                return (
                    StatusCode::BAD_REQUEST,
                    status(400, "BadRequest", &msg).to_string(),
                )
                    .into_response();
            }
        },
    };
    if q.get("watch").map(String::as_str) != Some("true") {
        let items: Vec<&Value> = s
            .pods
            .values()
            .filter(|p| matches(p, namespace.as_deref(), node.as_deref()))
            .collect();
        let body = json!({"kind": "PodList", "apiVersion": "v1",
                          "metadata": {"resourceVersion": s.version.to_string()}, "items": items});
        return ([("content-type", "application/json")], body.to_string()).into_response();
    }
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(s.version);
    let (tx, rx) = mpsc::unbounded_channel();
    if from < s.oldest {
        let _ = tx.send(line(
            "ERROR",
            &status(410, "Expired", "too old resource version"),
        ));
    } else {
        for (v, kind, obj) in &s.history {
            if *v > from && matches(obj, namespace.as_deref(), node.as_deref()) {
                let _ = tx.send(line(kind, obj));
            }
        }
        s.watchers.push(Watcher {
            namespace,
            node,
            tx,
        });
    }
    let body = Body::from_stream(tokio_stream::wrappers::UnboundedReceiverStream::new(rx));
    ([("content-type", "application/json")], body).into_response()
}
