//! A small client of the API server's REST interface: a GET answered with one JSON document
//! (a list, an object), and a GET with `watch=true` answered with a stream of JSON lines.
//!
//! Why not kube-rs: it brings its own TLS stack choice, k8s-openapi (every type of every API
//! group, a large compile on this shared machine) and a runtime of reflectors, for what is here
//! two GETs on one resource. reqwest with rustls is already in the build (the Elasticsearch
//! output and the metrics modules use it), and skiff-tls turns kubeconfig's CA and client
//! certificates into its TLS settings. Every size read from the server is capped.

use std::time::Duration;

use serde_json::Value;

use crate::KubeError;
use crate::connection::Connection;

/// The largest list answer read (one page; pages are asked for with `limit`).
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// The largest watch event (one JSON line: one pod). Real pods are a few KiB; etcd refuses
/// objects above 1.5 MiB.
pub const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

/// A client of one API server.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    conn: Connection,
    timeout: Duration,
}

impl Client {
    /// A client for `conn`. Connecting, and requests other than watches, time out after
    /// `timeout` (a watch is an answer that lasts: its caller bounds the wait for each line).
    pub fn new(conn: Connection, timeout: Duration) -> Result<Self, KubeError> {
        let http = reqwest::Client::builder()
            .use_preconfigured_tls((*conn.tls).clone())
            .connect_timeout(timeout)
            .user_agent(concat!("skiff/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| KubeError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client {
            http,
            conn,
            timeout,
        })
    }

    /// The server's base URL.
    pub fn server(&self) -> &str {
        &self.conn.server
    }

    async fn send(
        &self,
        path: &str,
        query: &[(&str, String)],
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, KubeError> {
        let url = format!("{}{path}", self.conn.server);
        let mut req = self.http.get(&url).query(query);
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        if let Some(t) = &self.conn.token {
            req = req.bearer_auth(t.value()?);
        }
        let resp = req.send().await.map_err(|e| KubeError::Connect {
            server: self.conn.server.clone(),
            reason: error_chain(&e),
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        // The API server explains failures in a `Status` object.
        let mut resp = resp;
        let body = read_capped(&mut resp, 64 * 1024).await.unwrap_or_default();
        let message = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
        Err(KubeError::Status {
            code: status.as_u16(),
            message,
        })
    }

    /// GETs `path` (with `query`) and parses the JSON answer.
    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, KubeError> {
        let mut resp = self.send(path, query, Some(self.timeout)).await?;
        let body = read_capped(&mut resp, MAX_BODY_BYTES).await?;
        serde_json::from_slice(&body)
            .map_err(|e| KubeError::Protocol(format!("{path}: the answer is not JSON: {e}")))
    }

    /// GETs `path` with `query` as a watch: the answer's body is read line by line.
    pub async fn watch(&self, path: &str, query: &[(&str, String)]) -> Result<Lines, KubeError> {
        let resp = self.send(path, query, None).await?;
        Ok(Lines {
            resp,
            buf: Vec::new(),
            scanned: 0,
            eof: false,
        })
    }
}

/// Every cause of a reqwest error, joined: its own text is only "error sending request".
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}

/// Reads a whole body, refusing more than `cap` bytes.
async fn read_capped(resp: &mut reqwest::Response, cap: usize) -> Result<Vec<u8>, KubeError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| KubeError::Protocol(format!("reading the answer: {}", error_chain(&e))))?
    {
        if body.len() + chunk.len() > cap {
            return Err(KubeError::TooLarge { limit: cap });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The lines of a watch answer.
pub struct Lines {
    resp: reqwest::Response,
    buf: Vec<u8>,
    /// How much of `buf` is known to hold no newline.
    scanned: usize,
    eof: bool,
}

impl Lines {
    /// The next non-empty line, `None` when the server ended the answer.
    pub async fn next_line(&mut self) -> Result<Option<Vec<u8>>, KubeError> {
        loop {
            if let Some(pos) = self
                .buf
                .get(self.scanned..)
                .unwrap_or_default()
                .iter()
                .position(|b| *b == b'\n')
                .map(|p| p + self.scanned)
            {
                self.scanned = 0;
                let rest = self.buf.split_off(pos + 1);
                let mut line = std::mem::replace(&mut self.buf, rest);
                line.pop();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Ok(Some(line));
            }
            // What is buffered has no newline: look only at what comes next.
            self.scanned = self.buf.len();
            if self.eof {
                if self.buf.iter().all(u8::is_ascii_whitespace) {
                    return Ok(None);
                }
                self.scanned = 0;
                return Ok(Some(std::mem::take(&mut self.buf)));
            }
            match self.resp.chunk().await {
                Ok(Some(chunk)) => {
                    // Only an unfinished line is capped: one chunk may carry many whole lines.
                    self.buf.extend_from_slice(&chunk);
                    // The buffer held no newline before this chunk (a line would have been
                    // returned), so the chunk alone says whether a line is complete.
                    if self.buf.len() > MAX_LINE_BYTES && !chunk.contains(&b'\n') {
                        return Err(KubeError::TooLarge {
                            limit: MAX_LINE_BYTES,
                        });
                    }
                }
                Ok(None) => self.eof = true,
                Err(e) => {
                    return Err(KubeError::Connect {
                        server: self.resp.url().origin().ascii_serialization(),
                        reason: error_chain(&e),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(body: Vec<u8>) -> Lines {
        let resp = reqwest::Response::from(http::Response::new(body));
        Lines {
            resp,
            buf: Vec::new(),
            scanned: 0,
            eof: false,
        }
    }

    #[tokio::test]
    async fn lines_blank_lines_and_a_last_line_without_newline() {
        let mut l = lines(b"a\n\n  \n{\"b\":1}\nlast".to_vec());
        assert_eq!(l.next_line().await.unwrap(), Some(b"a".to_vec()));
        assert_eq!(l.next_line().await.unwrap(), Some(b"{\"b\":1}".to_vec()));
        assert_eq!(l.next_line().await.unwrap(), Some(b"last".to_vec()));
        assert_eq!(l.next_line().await.unwrap(), None);
        assert_eq!(l.next_line().await.unwrap(), None);
    }

    #[tokio::test]
    async fn only_an_unfinished_line_is_capped() {
        // Two whole lines of 3 MiB in one chunk: more than the cap together, each below it.
        let mut body = vec![b'x'; 3 << 20];
        body.push(b'\n');
        body.extend(vec![b'y'; 3 << 20]);
        body.push(b'\n');
        let mut l = lines(body);
        assert_eq!(l.next_line().await.unwrap().map(|v| v.len()), Some(3 << 20));
        assert_eq!(l.next_line().await.unwrap().map(|v| v.len()), Some(3 << 20));
        assert_eq!(l.next_line().await.unwrap(), None);
        // One line over the cap.
        let mut l = lines(vec![b'z'; MAX_LINE_BYTES + 1]);
        assert!(matches!(
            l.next_line().await,
            Err(KubeError::TooLarge { .. })
        ));
    }
}
