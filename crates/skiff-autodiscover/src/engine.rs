//! A small client of the Docker Engine API (<https://docs.docker.com/reference/api/engine/>):
//! HTTP/1.1 over the daemon's unix socket (`unix:///var/run/docker.sock`) or TCP
//! (`tcp://host:2375`, or with TLS `tcp://host:2376` and `ssl.*`, as `docker --tlsverify`),
//! through hyper's connection-level client. Only what autodiscover and
//! `add_docker_metadata` need: the API version (`GET /version`), the container list
//! (`GET /containers/json`), one container (`GET /containers/{id}/json`) and the event stream
//! (`GET /events`, one JSON document per line, as long as the connection lasts).
//!
//! Why not a Docker client crate: the ones that exist pull a large generated API and their own
//! HTTP stacks; four GET requests on hyper (already in the build) are this file. Every answer
//! is capped ([`MAX_BODY`], [`MAX_EVENT_LINE`]): a daemon (or anything on that socket) cannot
//! make skiff allocate without bound.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// The most bytes of one JSON answer (a list of a few thousand containers fits).
pub const MAX_BODY: usize = 32 << 20;
/// The most bytes of one event line.
pub const MAX_EVENT_LINE: usize = 1 << 20;
/// How long connecting and one JSON request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The newest API version skiff speaks; an older daemon's own version is used instead.
const NEWEST_API: (u32, u32) = (1, 47);

/// Why a request to the Engine API failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// `host` is not a `unix://`, `tcp://` or `http://` address.
    #[error("`host` {0:?} is not an address skiff understands (unix:///path or tcp://host:port)")]
    Host(String),
    /// The socket could not be connected to.
    #[error("cannot connect to the Docker daemon at {host}: {reason}")]
    Connect {
        /// The daemon's address.
        host: String,
        /// Why.
        reason: String,
    },
    /// The request failed on the way.
    #[error("request {path} to the Docker daemon failed: {reason}")]
    Request {
        /// The request's path.
        path: String,
        /// Why.
        reason: String,
    },
    /// The daemon answered with an error status.
    #[error("the Docker daemon answered {status} to {path}: {body}")]
    Status {
        /// The request's path.
        path: String,
        /// The HTTP status.
        status: u16,
        /// The start of its message.
        body: String,
    },
    /// The answer is not what the API documents.
    #[error("unexpected answer to {path}: {reason}")]
    Answer {
        /// The request's path.
        path: String,
        /// What was wrong.
        reason: String,
    },
}

#[derive(Debug, Clone)]
enum Target {
    Unix(PathBuf),
    /// `host:port`, and TLS when configured.
    Tcp(String, Option<Arc<skiff_tls::rustls::ClientConfig>>),
}

/// The Engine API of one daemon.
#[derive(Debug, Clone)]
pub struct Engine {
    host: String,
    target: Target,
}

impl Engine {
    /// A client of the daemon at `host` (`unix:///var/run/docker.sock`, `tcp://h:2375`), with
    /// TLS when `tls` is given (TCP only).
    pub fn new(
        host: &str,
        tls: Option<Arc<skiff_tls::rustls::ClientConfig>>,
    ) -> Result<Engine, EngineError> {
        let target = if let Some(p) = host.strip_prefix("unix://") {
            if tls.is_some() {
                return Err(EngineError::Host(format!(
                    "{host} with ssl (TLS is for tcp:// addresses)"
                )));
            }
            Target::Unix(PathBuf::from(p))
        } else if let Some(a) = host
            .strip_prefix("tcp://")
            .or_else(|| host.strip_prefix("http://"))
            .or_else(|| host.strip_prefix("https://"))
        {
            Target::Tcp(a.trim_end_matches('/').to_owned(), tls)
        } else {
            return Err(EngineError::Host(host.to_owned()));
        };
        if matches!(&target, Target::Tcp(a, _) if a.is_empty())
            || matches!(&target, Target::Unix(p) if p.as_os_str().is_empty())
        {
            return Err(EngineError::Host(host.to_owned()));
        }
        Ok(Engine {
            host: host.to_owned(),
            target,
        })
    }

    /// The daemon's address as configured.
    pub fn host(&self) -> &str {
        &self.host
    }

    async fn send(&self, path: &str) -> Result<hyper::Response<Incoming>, EngineError> {
        let connect_err = |e: std::io::Error| EngineError::Connect {
            host: self.host.clone(),
            reason: e.to_string(),
        };
        let req_err = |e: hyper::Error| EngineError::Request {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        let (mut sender, authority) = match &self.target {
            Target::Unix(p) => {
                let s = tokio::net::UnixStream::connect(p)
                    .await
                    .map_err(connect_err)?;
                (handshake(s).await.map_err(req_err)?, "docker".to_owned())
            }
            Target::Tcp(a, None) => {
                let s = tokio::net::TcpStream::connect(a.as_str())
                    .await
                    .map_err(connect_err)?;
                (handshake(s).await.map_err(req_err)?, a.clone())
            }
            Target::Tcp(a, Some(tls)) => {
                let s = tokio::net::TcpStream::connect(a.as_str())
                    .await
                    .map_err(connect_err)?;
                let name = a.rsplit_once(':').map_or(a.as_str(), |(h, _)| h);
                let (s, _) = skiff_tls::handshake(s, name, tls.clone())
                    .await
                    .map_err(|e| EngineError::Connect {
                        host: self.host.clone(),
                        reason: skiff_tls::explain(&e, name),
                    })?;
                (handshake(s).await.map_err(req_err)?, a.clone())
            }
        };
        let req = hyper::Request::get(path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::ACCEPT, "application/json")
            .body(Empty::<Bytes>::new())
            .map_err(|e| EngineError::Request {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        let resp = sender.send_request(req).await.map_err(req_err)?;
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            let body = Limited::new(resp.into_body(), 4096)
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_owned())
                .unwrap_or_default();
            return Err(EngineError::Status {
                path: path.to_owned(),
                status,
                body,
            });
        }
        Ok(resp)
    }

    /// `GET path`, the answer as JSON (at most [`MAX_BODY`] bytes).
    pub async fn get_json(&self, path: &str) -> Result<Value, EngineError> {
        let fetch = async {
            let resp = self.send(path).await?;
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| EngineError::Answer {
                    path: path.to_owned(),
                    reason: format!("{e} (answers are limited to {MAX_BODY} bytes)"),
                })?
                .to_bytes();
            serde_json::from_slice(&body).map_err(|e| EngineError::Answer {
                path: path.to_owned(),
                reason: format!("not JSON: {e}"),
            })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, fetch)
            .await
            .map_err(|_| EngineError::Request {
                path: path.to_owned(),
                reason: format!("no answer within {REQUEST_TIMEOUT:?}"),
            })?
    }

    /// The API path prefix to use with this daemon (`/v1.47`): the daemon's own version
    /// (`GET /version`, `ApiVersion`) when it is older than skiff's newest.
    pub async fn version_prefix(&self) -> Result<String, EngineError> {
        let v = self.get_json("/version").await?;
        let text =
            v.get("ApiVersion")
                .and_then(Value::as_str)
                .ok_or_else(|| EngineError::Answer {
                    path: "/version".into(),
                    reason: "no ApiVersion".into(),
                })?;
        let parsed = text
            .split_once('.')
            .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
            .ok_or_else(|| EngineError::Answer {
                path: "/version".into(),
                reason: format!("ApiVersion {text:?} is not MAJOR.MINOR"),
            })?;
        let (a, b) = parsed.min(NEWEST_API);
        Ok(format!("/v{a}.{b}"))
    }

    /// `GET path` as a stream of JSON lines (`/events`).
    pub async fn stream(&self, path: &str) -> Result<EventStream, EngineError> {
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, self.send(path))
            .await
            .map_err(|_| EngineError::Request {
                path: path.to_owned(),
                reason: format!("no answer within {REQUEST_TIMEOUT:?}"),
            })??;
        Ok(EventStream {
            path: path.to_owned(),
            body: resp.into_body(),
            buf: Vec::new(),
        })
    }
}

/// An HTTP/1.1 client connection on `io`, its connection task spawned.
async fn handshake<T>(io: T) -> Result<SendRequest<Empty<Bytes>>, hyper::Error>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// The JSON lines of a streaming answer.
pub struct EventStream {
    path: String,
    body: Incoming,
    buf: Vec<u8>,
}

impl EventStream {
    /// The next document; `None` when the daemon closed the stream.
    pub async fn next(&mut self) -> Result<Option<Value>, EngineError> {
        loop {
            if let Some(end) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                let line = line.trim_ascii();
                if line.is_empty() {
                    continue;
                }
                return serde_json::from_slice(line)
                    .map(Some)
                    .map_err(|e| EngineError::Answer {
                        path: self.path.clone(),
                        reason: format!("an event is not JSON: {e}"),
                    });
            }
            if self.buf.len() > MAX_EVENT_LINE {
                return Err(EngineError::Answer {
                    path: self.path.clone(),
                    reason: format!("an event is longer than {MAX_EVENT_LINE} bytes"),
                });
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(EngineError::Request {
                        path: self.path.clone(),
                        reason: e.to_string(),
                    });
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

/// `?filters=` for the documented filter map (`{"type":["container"]}`), URL-encoded.
pub fn filters_query(filters: &Value) -> String {
    let text = filters.to_string();
    let encoded = percent_encoding::utf8_percent_encode(&text, percent_encoding::NON_ALPHANUMERIC);
    format!("filters={encoded}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hosts() {
        assert!(Engine::new("unix:///var/run/docker.sock", None).is_ok());
        assert!(Engine::new("tcp://127.0.0.1:2375", None).is_ok());
        assert!(Engine::new("/var/run/docker.sock", None).is_err());
        assert!(Engine::new("tcp://", None).is_err());
    }

    #[test]
    fn filters_are_encoded() {
        let q = filters_query(&serde_json::json!({"type": ["container"]}));
        assert_eq!(q, "filters=%7B%22type%22%3A%5B%22container%22%5D%7D");
    }

    /// A CA, and a certificate for `localhost` signed by it, as PEM files in `dir`.
    fn pki(dir: &std::path::Path) -> (String, String, String) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca = p.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        (
            write("ca.pem", ca.pem()),
            write("cert.pem", cert.pem()),
            write("key.pem", key.serialize_pem()),
        )
    }

    /// TLS to a `tcp://` daemon (`docker --tlsverify`): a TLS server answering `GET /version`
    /// as the Engine API documents it; trusted through `ssl.certificate_authorities`, refused
    /// with the system's roots.
    #[tokio::test]
    async fn tls_to_a_tcp_daemon() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = pki(dir.path());
        let server: skiff_tls::SslServerConfig =
            serde_json::from_value(serde_json::json!({"certificate": cert, "key": key})).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(skiff_tls::server_config(&server).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = [0u8; 4096];
                    let _ = tls.read(&mut buf).await;
                    let body = r#"{"ApiVersion":"1.41","Version":"20.10.24"}"#;
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(resp.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        let host = format!("tcp://localhost:{port}");
        let ssl: skiff_tls::SslConfig =
            serde_json::from_value(serde_json::json!({"certificate_authorities": [ca]})).unwrap();
        let e = Engine::new(&host, Some(skiff_tls::client_config(&ssl).unwrap())).unwrap();
        assert_eq!(e.version_prefix().await.unwrap(), "/v1.41");
        let untrusted = skiff_tls::client_config(&skiff_tls::SslConfig::default()).unwrap();
        let e = Engine::new(&host, Some(untrusted)).unwrap();
        let err = e.version_prefix().await.unwrap_err();
        assert!(matches!(err, EngineError::Connect { .. }), "{err}");
        // TLS on a unix socket is a mistake, said at once.
        let tls = skiff_tls::client_config(&ssl).unwrap();
        assert!(Engine::new("unix:///var/run/docker.sock", Some(tls)).is_err());
    }
}
