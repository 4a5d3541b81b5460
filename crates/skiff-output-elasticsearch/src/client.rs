//! One Elasticsearch client (one host, one worker): sends a batch as `_bulk` and reports per
//! event what became of it.
//!
//! HTTP is reqwest over hyper with the rustls configuration from skiff-tls
//! (`use_preconfigured_tls`): reqwest gives connection reuse, timeouts and proxies (Beats'
//! `proxy_url`) for free, and the bulk API needs nothing lower-level. One `reqwest::Client`
//! (one connection pool) is shared by all clients of an output.

use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap};
use skiff_event::Event;
use skiff_metrics::Counter;
use skiff_pipeline::{Failure, Outcome, Output};

use crate::bulk::{self, Body};
use crate::config::Host;
use crate::error::EsError;
use crate::select::Routing;

/// The response filter Beats uses: only what per-item results need (the full response of a
/// large batch is several MB).
const FILTER: &str = "filter_path=errors,items.*.error,items.*.status";

/// The largest response read: a filtered bulk response is a few bytes per item, so anything
/// near this is a broken server or proxy (and must not make us allocate without bound).
const MAX_RESPONSE: usize = 64 << 20;

/// Reads a response body, refusing more than `max` bytes.
pub(crate) async fn read_capped(mut resp: reqwest::Response, max: usize) -> Result<Bytes, String> {
    let mut out = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if out.len() + c.len() > max {
                    return Err(format!(
                        "the response is larger than {} MiB: is this Elasticsearch?",
                        max >> 20
                    ));
                }
                out.extend_from_slice(&c);
            }
            Ok(None) => return Ok(Bytes::from(out)),
            Err(e) => return Err(skiff_tls::explain(&e, "the server")),
        }
    }
}

/// A client for one host.
pub struct EsClient {
    pub(crate) http: reqwest::Client,
    pub(crate) host: Host,
    /// `<base>/_bulk?filter_path=...&<parameters>`.
    pub(crate) bulk_url: String,
    pub(crate) headers: HeaderMap,
    pub(crate) compression_level: u32,
    pub(crate) routing: Routing,
    pub(crate) write_bytes: Counter,
    pub(crate) read_errors: Counter,
    pub(crate) body: Body,
    pub(crate) shared_json: skiff_event::fastjson::SharedCache,
    pub(crate) wire: Vec<u8>,
}

/// What a bulk request came back with, when it came back.
enum Reply {
    Done(Bytes),
    TooLarge,
}

/// The URL of `_bulk` on `host` with the filter and the user's `parameters`.
pub(crate) fn bulk_url(
    host: &Host,
    parameters: &std::collections::BTreeMap<String, String>,
) -> String {
    let mut url = format!("{}/_bulk?{FILTER}", host.base);
    for (k, v) in parameters {
        url.push('&');
        url.push_str(&encode_component(k));
        url.push('=');
        url.push_str(&encode_component(v));
    }
    url
}

fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~*,".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `error.type: error.reason` of an Elasticsearch error body, if it has one.
pub(crate) fn error_text(body: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => match v.get("error") {
            Some(e @ serde_json::Value::Object(_)) => format!(
                "{}: {}",
                e.get("type").and_then(|t| t.as_str()).unwrap_or("error"),
                e.get("reason").and_then(|t| t.as_str()).unwrap_or("")
            ),
            Some(serde_json::Value::String(s)) => s.clone(),
            _ => truncate(&String::from_utf8_lossy(body)),
        },
        Err(_) => truncate(&String::from_utf8_lossy(body)),
    }
}

fn truncate(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(300) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}

impl EsClient {
    /// POSTs one NDJSON slice to `_bulk`.
    async fn post(&mut self, ndjson: &[u8]) -> Result<Reply, EsError> {
        let body: Vec<u8> = if self.compression_level > 0 {
            bulk::gzip(ndjson, self.compression_level, &mut self.wire);
            std::mem::take(&mut self.wire)
        } else {
            ndjson.to_vec()
        };
        self.write_bytes.add(body.len() as u64);
        let mut req = self
            .http
            .post(&self.bulk_url)
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json");
        if self.compression_level > 0 {
            req = req.header(CONTENT_ENCODING, "gzip");
        }
        let started = Instant::now();
        let resp = req.body(body).send().await.map_err(|e| {
            let msg = format!(
                "{}: bulk request to {} failed: {}",
                self.describe(),
                self.host.base,
                skiff_tls::explain(&e, &format!("{}:{}", self.host.name, self.host.port))
            );
            if e.is_timeout() {
                EsError::Timeout(msg)
            } else {
                EsError::Connect(msg)
            }
        })?;
        let status = resp.status();
        let bytes = read_capped(resp, MAX_RESPONSE).await.map_err(|e| {
            self.read_errors.inc();
            EsError::Connect(format!(
                "reading the bulk response from {} failed: {e}",
                self.host.base
            ))
        })?;
        tracing::trace!(host = %self.host.base, status = status.as_u16(), took_ms = started.elapsed().as_millis() as u64, "bulk response");
        match status {
            StatusCode::OK => Ok(Reply::Done(bytes)),
            StatusCode::PAYLOAD_TOO_LARGE => Ok(Reply::TooLarge),
            StatusCode::UNAUTHORIZED => Err(EsError::Auth(format!(
                "{} refused our credentials (401 {}): check username/password or api_key",
                self.host.base,
                error_text(&bytes)
            ))),
            StatusCode::FORBIDDEN => Err(EsError::Auth(format!(
                "{} denied the bulk request (403 {}): the user or API key needs the `create_doc` \
                     and `auto_configure` privileges on the target indices or data streams",
                self.host.base,
                error_text(&bytes)
            ))),
            StatusCode::TOO_MANY_REQUESTS
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::BAD_GATEWAY
            | StatusCode::GATEWAY_TIMEOUT => Err(EsError::Overloaded(format!(
                "{} is overloaded or unavailable ({} {}): will retry",
                self.host.base,
                status.as_u16(),
                error_text(&bytes)
            ))),
            StatusCode::NOT_FOUND => Err(EsError::Rejected(format!(
                "{}/_bulk not found (404 {}): check the host URL and `path`",
                self.host.base,
                error_text(&bytes)
            ))),
            s if s.is_server_error() => Err(EsError::Server(format!(
                "{} failed the bulk request ({} {}): will retry",
                self.host.base,
                s.as_u16(),
                error_text(&bytes)
            ))),
            s if s.is_client_error() => Err(EsError::Rejected(format!(
                "{} refused the bulk request ({} {}): check `parameters` and the output settings",
                self.host.base,
                s.as_u16(),
                error_text(&bytes)
            ))),
            // `_bulk` answers 200 or an error; a 1xx/2xx/3xx other than 200 is not its answer.
            s => Err(EsError::Protocol(format!(
                "{} answered the bulk request with {} ({}), expected 200 with per-item results: is a proxy in the way?",
                self.host.base,
                s.as_u16(),
                error_text(&bytes)
            ))),
        }
    }
}

#[async_trait]
impl Output for EsClient {
    async fn send(&mut self, events: &[Event]) -> Result<Outcome, Failure> {
        let mut body = std::mem::take(&mut self.body);
        let rejected = bulk::encode(events, &mut self.routing, &mut self.shared_json, &mut body);
        let mut outcome = Outcome {
            retry: Vec::new(),
            rejected,
        };
        // Contiguous runs of spans; a 413 splits a run in halves.
        let mut todo = Vec::with_capacity(4);
        todo.push(0..body.spans.len());
        let mut sent_any = false;
        let result = loop {
            let Some(run) = todo.pop() else {
                break Ok(());
            };
            if run.is_empty() {
                continue;
            }
            let spans = &body.spans[run.clone()];
            let bytes = spans[0].bytes.start..spans[spans.len() - 1].bytes.end;
            match self.post(&body.ndjson[bytes]).await {
                Ok(Reply::Done(resp)) => match bulk::read_response(&resp, spans) {
                    Ok(r) => {
                        sent_any = true;
                        outcome.retry.extend(r.retry);
                        outcome.rejected.extend(r.rejected);
                    }
                    Err(e) => {
                        self.read_errors.inc();
                        // A server that breaks the protocol once is trusted for nothing in this
                        // batch: the whole of it is sent again (at least once; `create` makes
                        // the copies already in a 409, which counts as delivered).
                        self.body = body;
                        return Err(EsError::Protocol(format!("{}: {e}", self.host.base)).into());
                    }
                },
                Ok(Reply::TooLarge) if run.len() == 1 => {
                    outcome.rejected.push((
                        spans[0].event,
                        format!(
                            "status 413: the event ({} bytes of JSON) is larger than the \
                             server's http.max_content_length",
                            spans[0].bytes.len()
                        ),
                    ));
                }
                Ok(Reply::TooLarge) => {
                    tracing::info!(host = %self.host.base, events = run.len(), "request too large (413); splitting the batch");
                    let mid = run.start + run.len() / 2;
                    todo.push(mid..run.end);
                    todo.push(run.start..mid);
                }
                Err(e) => {
                    todo.push(run);
                    break Err(e);
                }
            }
        };
        let out = match result {
            Ok(()) => Ok(outcome),
            // Part of the batch is in: report the rest for a retry rather than resend it all.
            Err(e) if sent_any => {
                tracing::warn!(host = %self.host.base, kind = %e.kind(), error = %e, "bulk request failed after part of the batch was sent");
                for run in todo {
                    outcome
                        .retry
                        .extend(body.spans[run].iter().map(|s| s.event));
                }
                Ok(outcome)
            }
            Err(e) => Err(e.into()),
        };
        self.body = body;
        out
    }

    fn describe(&self) -> String {
        format!("elasticsearch({})", self.host.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_url_has_filter_and_parameters() {
        let h = crate::config::parse_host("es1", "http", Some("pre")).unwrap();
        let mut p = std::collections::BTreeMap::new();
        p.insert("refresh".to_owned(), "wait_for".to_owned());
        p.insert("a b".to_owned(), "x&y".to_owned());
        assert_eq!(
            bulk_url(&h, &p),
            "http://es1:9200/pre/_bulk?filter_path=errors,items.*.error,items.*.status&a%20b=x%26y&refresh=wait_for"
        );
    }

    #[test]
    fn error_text_reads_es_errors() {
        assert_eq!(
            error_text(br#"{"error":{"type":"security_exception","reason":"bad"},"status":401}"#),
            "security_exception: bad"
        );
        assert_eq!(error_text(b"plain"), "plain");
    }
}
