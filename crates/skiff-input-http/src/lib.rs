//! The `http_endpoint` input: a webhook receiver, as Filebeat's `type: http_endpoint`. A JSON
//! object POSTed to it becomes one event (an array of objects, one event each), under
//! `prefix` (default `json`).
//!
//! Where it sits: an input of the pipeline (**input** -> processors -> queue -> output); its
//! own crate for its HTTP server (hyper, HTTP/1.1, TLS through `skiff-tls`).
//!
//! # Acknowledgement contract
//!
//! The HTTP response *is* the acknowledgement: a request is answered `response_code` (200)
//! only after skiff's output acknowledged every event of it. While the output is down the
//! request waits (the sender sees a slow server; webhook senders retry on their own timeout,
//! so a request given up by its sender may arrive twice: at least once). A request whose events
//! cannot be queued because skiff is stopping is answered 503, so the sender retries
//! elsewhere or later. Filebeat (before 8.x ack support) answered as soon as the events were
//! queued; skiff waits for the output, which is the stronger promise.
//!
//! Authentication, checked in this order, each answered 401 with a reason: `basic_auth`
//! (`username`/`password`), `secret.header`/`secret.value`, `hmac.header`/`hmac.key`/
//! `hmac.type` (`sha256`, `sha1`)/`hmac.prefix` (the signature is the hex digest of the body,
//! after the prefix, e.g. GitHub's `sha256=`). Other answers: 404 (another path), 405 (not
//! POST), 415 (`content_type` mismatch), 413 (over `max_body_size`), 400 (not JSON, or not
//! objects).

#![deny(missing_docs)]

pub mod server;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use skiff_config::{ByteSize, ConfigError, ConfigErrors, Node};
use skiff_event::{AckStream, Event, Map, Timestamp, Value};
use skiff_metrics::{Counter, names};
use skiff_pipeline::{Failure, FailureKind, Input, InputContext, InputPlugin, Publisher};
use skiff_tls::SslServerConfig;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// `type: http_endpoint`.
pub static PLUGIN: InputPlugin = InputPlugin {
    name: "http_endpoint",
    agent_type: "filebeat",
    build: |n, _, _| build(n),
};

/// `secret.*`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secret {
    /// `secret.header`: the request header carrying the secret.
    #[serde(default)]
    pub header: Option<String>,
    /// `secret.value`: its expected value.
    #[serde(default)]
    pub value: Option<String>,
}

/// `hmac.*`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hmac {
    /// `hmac.header`: the header carrying the signature.
    #[serde(default)]
    pub header: Option<String>,
    /// `hmac.key`: the shared key.
    #[serde(default)]
    pub key: Option<String>,
    /// `hmac.type`: `sha256` or `sha1`. Default `sha256`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// `hmac.prefix`: text before the hex signature in the header (`sha256=`). Default none.
    #[serde(default)]
    pub prefix: Option<String>,
}

/// The input's settings (Filebeat's names and defaults).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// `listen_address`. Default `127.0.0.1`.
    #[serde(default = "localhost")]
    pub listen_address: String,
    /// `listen_port`. Default 8000.
    #[serde(default = "port_8000")]
    pub listen_port: u16,
    /// `url`: the path served. Default `/`.
    #[serde(default = "slash")]
    pub url: String,
    /// `prefix`: the field the body goes under. Default `json`.
    #[serde(default = "json")]
    pub prefix: String,
    /// `content_type`: the required `Content-Type` (parameters ignored). Default
    /// `application/json`; empty accepts any.
    #[serde(default = "application_json")]
    pub content_type: String,
    /// `basic_auth`: require HTTP basic authentication. Default false.
    #[serde(default)]
    pub basic_auth: bool,
    /// `username` (with `basic_auth`).
    #[serde(default)]
    pub username: Option<String>,
    /// `password` (with `basic_auth`).
    #[serde(default)]
    pub password: Option<String>,
    /// `secret.*`. Default: none.
    #[serde(default)]
    pub secret: Secret,
    /// `hmac.*`. Default: none.
    #[serde(default)]
    pub hmac: Hmac,
    /// `response_code`: the status of a successful request. Default 200.
    #[serde(default = "two_hundred")]
    pub response_code: u16,
    /// `response_body`: its body. Default `{"message": "success"}`.
    #[serde(default = "success")]
    pub response_body: String,
    /// `include_headers`: request headers copied to `<prefix>`'s sibling `headers.<name>`.
    /// Default none.
    #[serde(default)]
    pub include_headers: Vec<String>,
    /// `preserve_original_event`: keep the raw body in `event.original`. Default false.
    #[serde(default)]
    pub preserve_original_event: bool,
    /// `max_body_size` (skiff): the largest body read; larger ones get 413. Default 10MiB.
    #[serde(default = "ten_mib")]
    pub max_body_size: ByteSize,
    /// `ssl.*`: serve HTTPS. Default: plain HTTP.
    #[serde(default)]
    pub ssl: Option<SslServerConfig>,
}

fn localhost() -> String {
    "127.0.0.1".into()
}
fn port_8000() -> u16 {
    8000
}
fn slash() -> String {
    "/".into()
}
fn json() -> String {
    "json".into()
}
fn application_json() -> String {
    "application/json".into()
}
fn two_hundred() -> u16 {
    200
}
fn success() -> String {
    r#"{"message": "success"}"#.into()
}
fn ten_mib() -> ByteSize {
    ByteSize(10 << 20)
}

fn at(node: &Node, key: &str, msg: impl Into<String>) -> ConfigError {
    let n = node.get(key).unwrap_or(node);
    ConfigError::new(n.path().to_owned(), n.mark.clone(), msg.into())
}

/// HMAC algorithms.
#[derive(Clone, Copy, Debug)]
enum HmacKind {
    Sha256,
    Sha1,
}

fn build(node: &Node) -> Result<Box<dyn Input>, ConfigErrors> {
    let cfg: HttpConfig = node.deserialize()?;
    let mut errs = Vec::new();
    if cfg.basic_auth && (cfg.username.is_none() || cfg.password.is_none()) {
        errs.push(at(
            node,
            "basic_auth",
            "basic_auth needs username and password",
        ));
    }
    if cfg.secret.header.is_some() != cfg.secret.value.is_some() {
        errs.push(at(
            node,
            "secret",
            "give both secret.header and secret.value",
        ));
    }
    let hmac = match (&cfg.hmac.header, &cfg.hmac.key) {
        (None, None) => None,
        (Some(_), Some(_)) => match cfg.hmac.kind.as_deref().unwrap_or("sha256") {
            "sha256" => Some(HmacKind::Sha256),
            "sha1" => Some(HmacKind::Sha1),
            other => {
                errs.push(at(
                    node,
                    "hmac.type",
                    format!("unknown hmac.type {other:?}: use sha256 or sha1"),
                ));
                None
            }
        },
        _ => {
            errs.push(at(node, "hmac", "give both hmac.header and hmac.key"));
            None
        }
    };
    if !cfg.url.starts_with('/') {
        errs.push(at(node, "url", "must start with /"));
    }
    if StatusCode::from_u16(cfg.response_code).is_err() {
        errs.push(at(node, "response_code", "not an HTTP status code"));
    }
    let tls = match &cfg.ssl {
        Some(ssl) if ssl.is_enabled() => match skiff_tls::server_config(ssl) {
            Ok(c) => Some(TlsAcceptor::from(c)),
            Err(e) => {
                errs.push(at(node, "ssl", e.to_string()));
                None
            }
        },
        _ => None,
    };
    if !errs.is_empty() {
        return Err(ConfigErrors(errs));
    }
    Ok(Box::new(HttpInput { cfg, hmac, tls }))
}

/// A built http_endpoint input.
pub struct HttpInput {
    cfg: HttpConfig,
    hmac: Option<HmacKind>,
    tls: Option<TlsAcceptor>,
}

/// What every request handler shares.
struct Handler {
    cfg: HttpConfig,
    hmac: Option<HmacKind>,
    publisher: Publisher,
    shared: Arc<Map>,
    shutdown: CancellationToken,
    events: Counter,
    bytes: Counter,
    id: String,
}

#[async_trait]
impl Input for HttpInput {
    async fn run(self: Box<Self>, ctx: InputContext) -> Result<(), Failure> {
        let HttpInput { cfg, hmac, tls } = *self;
        let addr = if cfg.listen_address.contains(':') {
            format!("[{}]:{}", cfg.listen_address, cfg.listen_port)
        } else {
            format!("{}:{}", cfg.listen_address, cfg.listen_port)
        };
        let listener = TcpListener::bind(&addr).await.map_err(|e| {
            Failure::new(
                FailureKind::of_io(&e),
                format!(
                    "http_endpoint input {}: cannot listen on {addr}: {e}",
                    ctx.id
                ),
            )
        })?;
        let label = [("input", ctx.id.as_str())];
        let h = Arc::new(Handler {
            hmac,
            publisher: ctx.publisher.clone(),
            shared: ctx.shared.clone(),
            shutdown: ctx.shutdown.clone(),
            events: ctx.build.metrics.counter_with(&names::INPUT_EVENTS, &label),
            bytes: ctx.build.metrics.counter_with(&names::INPUT_BYTES, &label),
            id: ctx.id.clone(),
            cfg,
        });
        {
            let (addr, tls_on, url) = (addr.clone(), tls.is_some(), h.cfg.url.clone());
            ctx.build.status.register(&ctx.id, move || {
                serde_json::json!({"type": "http_endpoint", "listen": addr, "url": url, "tls": tls_on})
            });
        }
        tracing::info!(input = %ctx.id, listen = %addr, tls = tls.is_some(), "http_endpoint input listening");
        let what = format!("http_endpoint input {}", ctx.id);
        server::serve_until(listener, tls, &ctx.shutdown, &what, move |req| {
            let h = h.clone();
            async move { h.handle(req).await }
        })
        .await;
        Ok(())
    }
}

fn reply(code: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = code;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn error(code: StatusCode, msg: &str) -> Response<Full<Bytes>> {
    reply(code, serde_json::json!({ "message": msg }).to_string())
}

fn header<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

impl Handler {
    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        if req.uri().path() != self.cfg.url {
            return error(StatusCode::NOT_FOUND, "no such path");
        }
        if req.method() != Method::POST {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                "only POST requests are supported",
            );
        }
        if !self.cfg.content_type.is_empty() {
            let ct = header(&req, "content-type").unwrap_or("");
            let base = ct.split(';').next().unwrap_or("").trim();
            if !base.eq_ignore_ascii_case(&self.cfg.content_type) {
                return error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    &format!(
                        "wrong Content-Type header, expecting {}",
                        self.cfg.content_type
                    ),
                );
            }
        }
        if let Err(why) = self.authenticate_headers(&req) {
            return error(StatusCode::UNAUTHORIZED, why);
        }
        let headers: Map = self
            .cfg
            .include_headers
            .iter()
            .filter_map(|n| Some((n.clone(), Value::from(header(&req, n)?))))
            .collect();
        let sig = self
            .cfg
            .hmac
            .header
            .as_deref()
            .and_then(|n| header(&req, n))
            .map(str::to_owned);
        let max = usize::try_from(self.cfg.max_body_size.0).unwrap_or(usize::MAX);
        let body = match Limited::new(req.into_body(), max).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                return error(StatusCode::PAYLOAD_TOO_LARGE, "body over max_body_size");
            }
            Err(_) => return error(StatusCode::BAD_REQUEST, "the body could not be read"),
        };
        self.bytes.add(body.len() as u64);
        if let Some(kind) = self.hmac
            && let Err(why) = self.check_hmac(kind, sig.as_deref(), &body)
        {
            return error(StatusCode::UNAUTHORIZED, why);
        }
        let docs = match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(o)) => vec![o],
            Ok(Value::Array(a)) => {
                let mut out = Vec::with_capacity(a.len());
                for v in a {
                    match v {
                        Value::Object(o) => out.push(o),
                        _ => {
                            return error(
                                StatusCode::BAD_REQUEST,
                                "an array must hold JSON objects",
                            );
                        }
                    }
                }
                out
            }
            Ok(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "the body must be a JSON object or an array of objects",
                );
            }
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("malformed JSON body: {e}"),
                );
            }
        };
        let stream = AckStream::new();
        let now = Timestamp::now();
        let original = self
            .cfg
            .preserve_original_event
            .then(|| String::from_utf8_lossy(&body).into_owned());
        let mut events: Vec<Event> = docs
            .into_iter()
            .enumerate()
            .map(|(i, doc)| {
                let mut ev = Event::new_at(now, self.shared.clone(), String::new());
                ev.message = None;
                ev.fields
                    .insert(self.cfg.prefix.clone(), Value::Object(doc));
                if !headers.is_empty() {
                    ev.fields
                        .insert("headers".into(), Value::Object(headers.clone()));
                }
                if let Some(o) = &original {
                    ev.fields
                        .insert("event".into(), serde_json::json!({ "original": o }));
                }
                ev.ack = Some(stream.token(i as u64 + 1));
                ev
            })
            .collect();
        self.events.add(events.len() as u64);
        let queued = tokio::select! {
            r = self.publisher.publish_all(&mut events) => r.is_ok(),
            _ = self.shutdown.cancelled() => false,
        };
        if !queued {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "skiff is stopping: send again later",
            );
        }
        // The response is the acknowledgement: wait for the output.
        loop {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                done = stream.wait_all_acked(deadline) => if done { break },
                _ = self.shutdown.cancelled() => {
                    let grace = tokio::time::Instant::now() + self.publisher.shutdown_timeout();
                    if stream.wait_all_acked(grace).await {
                        break;
                    }
                    tracing::info!(input = %self.id, "http_endpoint: answering 503 to a request not delivered at shutdown");
                    return error(StatusCode::SERVICE_UNAVAILABLE, "skiff stopped before the events were delivered: send again");
                }
            }
        }
        let code = StatusCode::from_u16(self.cfg.response_code).unwrap_or(StatusCode::OK);
        reply(code, self.cfg.response_body.clone())
    }

    fn authenticate_headers(&self, req: &Request<Incoming>) -> Result<(), &'static str> {
        if self.cfg.basic_auth {
            let given = header(req, "authorization")
                .and_then(|a| a.strip_prefix("Basic "))
                .and_then(|b| {
                    base64::engine::general_purpose::STANDARD
                        .decode(b.trim())
                        .ok()
                })
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or("basic authentication required")?;
            let want = format!(
                "{}:{}",
                self.cfg.username.as_deref().unwrap_or(""),
                self.cfg.password.as_deref().unwrap_or("")
            );
            if !constant_eq(given.as_bytes(), want.as_bytes()) {
                return Err("incorrect username or password");
            }
        }
        if let (Some(h), Some(v)) = (&self.cfg.secret.header, &self.cfg.secret.value) {
            let got = header(req, h).ok_or("missing secret header")?;
            if !constant_eq(got.as_bytes(), v.as_bytes()) {
                return Err("incorrect secret");
            }
        }
        Ok(())
    }

    fn check_hmac(
        &self,
        kind: HmacKind,
        sig: Option<&str>,
        body: &[u8],
    ) -> Result<(), &'static str> {
        let sig = sig.ok_or("missing HMAC signature header")?;
        let hex = match &self.cfg.hmac.prefix {
            Some(p) => sig
                .strip_prefix(p.as_str())
                .ok_or("HMAC signature without its prefix")?,
            None => sig,
        };
        let given = decode_hex(hex.trim()).ok_or("HMAC signature is not hex")?;
        let alg = match kind {
            HmacKind::Sha256 => ring::hmac::HMAC_SHA256,
            HmacKind::Sha1 => ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        };
        let key = ring::hmac::Key::new(alg, self.cfg.hmac.key.as_deref().unwrap_or("").as_bytes());
        ring::hmac::verify(&key, body, &given).map_err(|_| "invalid HMAC signature")
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 256 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_compare() {
        assert_eq!(decode_hex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(decode_hex("0g"), None);
        assert_eq!(decode_hex("abc"), None);
        assert!(constant_eq(b"abc", b"abc"));
        assert!(!constant_eq(b"abc", b"abd"));
        assert!(!constant_eq(b"abc", b"ab"));
    }

    #[test]
    fn config_problems_are_all_reported() {
        let n = skiff_config::parse_str(
            "basic_auth: true\nsecret.header: X\nhmac.header: Y\nhmac.key: k\nhmac.type: md5\nurl: x",
            None,
        )
        .unwrap();
        let errs = build(&n).err().unwrap();
        assert_eq!(errs.0.len(), 4, "{errs}");
    }
}
