//! Where the API server is and how to prove who we are: a kubeconfig file (`kube_config`, or
//! `$KUBECONFIG`), or, inside a pod, the service account Kubernetes mounts into every pod.
//!
//! The order is Beats' (and client-go's): the `kube_config` setting, then `$KUBECONFIG`, then
//! the in-cluster configuration (`KUBERNETES_SERVICE_HOST`/`KUBERNETES_SERVICE_PORT`, the token
//! and CA under `/var/run/secrets/kubernetes.io/serviceaccount/`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use serde::Deserialize;
use skiff_tls::{SslConfig, VerificationMode};

use crate::KubeError;

/// Where the service account's token and CA are mounted in every pod.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// How to reach the API server.
#[derive(Clone)]
pub struct Connection {
    /// The server's base URL (`https://10.96.0.1:443`), without a trailing `/`.
    pub server: String,
    /// The bearer token, if any.
    pub token: Option<Token>,
    /// TLS settings for `https` servers.
    pub tls: Arc<skiff_tls::rustls::ClientConfig>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("server", &self.server)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// A bearer token: given, or read from a file at each request (service account tokens are
/// rotated by the kubelet, so a token read once would expire).
#[derive(Clone, PartialEq)]
pub enum Token {
    /// The token itself.
    Literal(String),
    /// A file holding it.
    File(PathBuf),
}

/// The largest token file read (real ones are about 1 KiB).
const MAX_TOKEN_BYTES: u64 = 64 * 1024;

impl Token {
    /// The token's current value.
    pub fn value(&self) -> Result<String, KubeError> {
        match self {
            Token::Literal(s) => Ok(s.clone()),
            Token::File(p) => {
                let meta = std::fs::metadata(p).map_err(|e| {
                    KubeError::Config(format!("cannot read the token file {}: {e}", p.display()))
                })?;
                if meta.len() > MAX_TOKEN_BYTES {
                    return Err(KubeError::Config(format!(
                        "the token file {} is larger than {MAX_TOKEN_BYTES} bytes",
                        p.display()
                    )));
                }
                let s = std::fs::read_to_string(p).map_err(|e| {
                    KubeError::Config(format!("cannot read the token file {}: {e}", p.display()))
                })?;
                Ok(s.trim().to_string())
            }
        }
    }
}

/// Finds the connection: `kube_config` (a path, `~` not expanded), else `$KUBECONFIG`, else the
/// in-cluster service account.
pub fn discover(kube_config: Option<&Path>) -> Result<Connection, KubeError> {
    if let Some(p) = kube_config.filter(|p| !p.as_os_str().is_empty()) {
        return from_kubeconfig(p);
    }
    if let Some(p) = std::env::var_os("KUBECONFIG").filter(|p| !p.is_empty()) {
        // `$KUBECONFIG` may list several files; the first one is used.
        let first = std::env::split_paths(&p).next().unwrap_or_default();
        return from_kubeconfig(&first);
    }
    in_cluster(
        std::env::var("KUBERNETES_SERVICE_HOST").ok().as_deref(),
        std::env::var("KUBERNETES_SERVICE_PORT").ok().as_deref(),
        Path::new(SERVICE_ACCOUNT_DIR),
    )
}

/// The in-cluster connection from the service's host and port and the service account folder.
pub fn in_cluster(
    host: Option<&str>,
    port: Option<&str>,
    account_dir: &Path,
) -> Result<Connection, KubeError> {
    let (Some(host), Some(port)) = (host.filter(|h| !h.is_empty()), port) else {
        return Err(KubeError::Config(
            "not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set) and no kube_config was given".into(),
        ));
    };
    // An IPv6 service address needs brackets in a URL.
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let ca = account_dir.join("ca.crt");
    let ssl = SslConfig {
        certificate_authorities: vec![ca.display().to_string()],
        ..SslConfig::default()
    };
    Ok(Connection {
        server: format!("https://{host}:{port}"),
        token: Some(Token::File(account_dir.join("token"))),
        tls: tls(&ssl)?,
    })
}

fn tls(ssl: &SslConfig) -> Result<Arc<skiff_tls::rustls::ClientConfig>, KubeError> {
    skiff_tls::client_config(ssl).map_err(|e| KubeError::Config(format!("TLS settings: {e}")))
}

/// A kubeconfig file, the parts used here.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
struct KubeConfig {
    current_context: String,
    clusters: Vec<Named<Cluster>>,
    contexts: Vec<Named<Context>>,
    users: Vec<Named<User>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Named<T> {
    name: String,
    #[serde(alias = "cluster", alias = "context", alias = "user")]
    value: Option<T>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
struct Cluster {
    server: String,
    certificate_authority: Option<String>,
    certificate_authority_data: Option<String>,
    insecure_skip_tls_verify: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Context {
    cluster: String,
    user: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
struct User {
    token: Option<String>,
    #[serde(rename = "tokenFile")]
    token_file: Option<String>,
    client_certificate: Option<String>,
    client_certificate_data: Option<String>,
    client_key: Option<String>,
    client_key_data: Option<String>,
}

/// The largest kubeconfig read.
const MAX_KUBECONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// The connection a kubeconfig file's current context names. Relative paths in it are relative
/// to the file's folder, as kubectl reads them.
pub fn from_kubeconfig(path: &Path) -> Result<Connection, KubeError> {
    let err = |m: String| KubeError::Config(format!("kube_config {}: {m}", path.display()));
    let len = std::fs::metadata(path)
        .map_err(|e| err(e.to_string()))?
        .len();
    if len > MAX_KUBECONFIG_BYTES {
        return Err(err(format!("larger than {MAX_KUBECONFIG_BYTES} bytes")));
    }
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let node = skiff_config::parse_str(&text, Some(&path.display().to_string()))
        .map_err(|e| err(e.to_string()))?;
    let cfg: KubeConfig = serde_json::from_value(node.to_json()).map_err(|e| err(e.to_string()))?;
    let ctx = cfg
        .contexts
        .iter()
        .find(|c| c.name == cfg.current_context)
        .and_then(|c| c.value.as_ref())
        .ok_or_else(|| {
            err(format!(
                "the current-context `{}` is not among its contexts",
                cfg.current_context
            ))
        })?;
    let cluster = cfg
        .clusters
        .iter()
        .find(|c| c.name == ctx.cluster)
        .and_then(|c| c.value.as_ref())
        .ok_or_else(|| err(format!("no cluster named `{}`", ctx.cluster)))?;
    let user = cfg
        .users
        .iter()
        .find(|u| u.name == ctx.user)
        .and_then(|u| u.value.as_ref());
    let dir = path.parent().unwrap_or(Path::new("."));
    let file = |p: &str| dir.join(p).display().to_string();
    let pem = |b64: &str, what: &str| -> Result<String, KubeError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| err(format!("{what} is not base64: {e}")))?;
        String::from_utf8(bytes).map_err(|_| err(format!("{what} is not PEM text")))
    };
    let mut ssl = SslConfig::default();
    if let Some(d) = &cluster.certificate_authority_data {
        ssl.certificate_authorities
            .push(pem(d, "certificate-authority-data")?);
    } else if let Some(p) = &cluster.certificate_authority {
        ssl.certificate_authorities.push(file(p));
    }
    if cluster.insecure_skip_tls_verify {
        ssl.verification_mode = VerificationMode::None;
    }
    let mut token = None;
    if let Some(u) = user {
        ssl.certificate = match (&u.client_certificate_data, &u.client_certificate) {
            (Some(d), _) => Some(pem(d, "client-certificate-data")?),
            (None, Some(p)) => Some(file(p)),
            _ => None,
        };
        ssl.key = match (&u.client_key_data, &u.client_key) {
            (Some(d), _) => Some(pem(d, "client-key-data")?),
            (None, Some(p)) => Some(file(p)),
            _ => None,
        };
        token = match (&u.token, &u.token_file) {
            (Some(t), _) if !t.is_empty() => Some(Token::Literal(t.clone())),
            (_, Some(p)) => Some(Token::File(dir.join(p))),
            _ => None,
        };
    }
    let server = cluster.server.trim_end_matches('/').to_string();
    if !(server.starts_with("https://") || server.starts_with("http://")) {
        return Err(err(format!(
            "the cluster's server `{server}` is not an http(s) URL"
        )));
    }
    Ok(Connection {
        server,
        token,
        tls: tls(&ssl)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_context_names_server_user_and_ca() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config");
        std::fs::write(dir.path().join("tok"), "abc\n").unwrap();
        std::fs::write(
            &cfg,
            "apiVersion: v1\nkind: Config\ncurrent-context: b\nclusters:\n- name: one\n  cluster: {server: 'http://127.0.0.1:1/', insecure-skip-tls-verify: true}\ncontexts:\n- name: a\n  context: {cluster: nope, user: u}\n- name: b\n  context: {cluster: one, user: u}\nusers:\n- name: u\n  user: {tokenFile: tok}\n",
        )
        .unwrap();
        let c = from_kubeconfig(&cfg).unwrap();
        assert_eq!(c.server, "http://127.0.0.1:1");
        assert_eq!(c.token.unwrap().value().unwrap(), "abc");
        std::fs::write(&cfg, "current-context: x\ncontexts: []\n").unwrap();
        let e = from_kubeconfig(&cfg).unwrap_err().to_string();
        assert!(e.contains("current-context `x`"), "{e}");
    }

    #[test]
    fn in_cluster_needs_the_service_variables() {
        let e = in_cluster(None, Some("443"), Path::new("/nonexistent"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("KUBERNETES_SERVICE_HOST"), "{e}");
        // The CA file must exist: a missing one is an error naming it.
        let e = in_cluster(Some("10.96.0.1"), Some("443"), Path::new("/nonexistent"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ca.crt"), "{e}");
    }
}
