//! HTTP/1.x, as Packetbeat's `http` protocol: one event per request/response pair.
//!
//! Each direction is parsed on its own (a message starting with `HTTP/` is a response, one
//! with a request line a request; httparse reads the head); complete requests wait in a FIFO
//! and each complete response takes the oldest, so pipelining works. Bodies are framed by
//! `Transfer-Encoding: chunked`, `Content-Length`, or the end of the connection; they are
//! counted in full but stored only up to `max_message_size`, and only when an option needs
//! them (`include_body_for`, form parameters, `send_request`/`send_response`). Interim `1xx`
//! responses produce no event. Field rules are in [`fields`].

mod fields;
mod message;

use std::collections::VecDeque;
use std::sync::Arc;

use serde::Deserialize;
use skiff_config::ConfigError;

use crate::protocol::{
    BuildArgs, CloseReason, Cx, Dir, GapAction, Protocol, ProtocolPlugin, Session, StreamBuf,
    Transaction, Transport, expired,
};
use message::{Message, Parser, Progress};

/// `type: http`.
pub static PLUGIN: ProtocolPlugin = ProtocolPlugin {
    name: "http",
    tcp: true,
    udp: false,
    default_ports: &[80, 8080, 8000, 5000, 8002],
    build,
};

/// The `http` options (besides the common ones).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// `send_headers`: header names to put in the header maps (besides content-length and
    /// content-type, always there). Default none.
    #[serde(default)]
    pub send_headers: Vec<String>,
    /// `send_all_headers` (default false): every header.
    #[serde(default)]
    pub send_all_headers: bool,
    /// `redact_headers`: header names whose values become `REDACTED`. Default none.
    #[serde(default)]
    pub redact_headers: Vec<String>,
    /// `redact_authorization` (default false): mask `Authorization`/`Proxy-Authorization` and
    /// do not extract `user.name`.
    #[serde(default)]
    pub redact_authorization: bool,
    /// `split_cookie` (default false): `cookie`/`set-cookie` as maps.
    #[serde(default)]
    pub split_cookie: bool,
    /// `real_ip_header`: the header naming the real client (`network.forwarded_ip`).
    #[serde(default)]
    pub real_ip_header: Option<String>,
    /// `hide_keywords`: parameter names whose values become `xxxxx`. Default none.
    #[serde(default)]
    pub hide_keywords: Vec<String>,
    /// `include_body_for`: content types (substrings) whose bodies are captured. Default none.
    #[serde(default)]
    pub include_body_for: Vec<String>,
    /// `include_request_body_for`: the same, requests only.
    #[serde(default)]
    pub include_request_body_for: Vec<String>,
    /// `include_response_body_for`: the same, responses only.
    #[serde(default)]
    pub include_response_body_for: Vec<String>,
    /// `decode_body` (default true): undo gzip/deflate of captured bodies.
    #[serde(default = "yes")]
    pub decode_body: bool,
    /// `max_message_size` (default 10 MiB): bytes stored per message; the rest is counted.
    #[serde(default = "default_max")]
    pub max_message_size: usize,
}

fn yes() -> bool {
    true
}
fn default_max() -> usize {
    10 << 20
}

/// The built protocol.
pub struct Http {
    cfg: Arc<Settings>,
}

/// Options plus the common ones a session needs.
pub struct Settings {
    /// The `http` options.
    pub http: HttpConfig,
    /// `send_request`.
    pub send_request: bool,
    /// `send_response`.
    pub send_response: bool,
    /// `transaction_timeout`.
    pub timeout: std::time::Duration,
}

fn build(args: &BuildArgs<'_>) -> Result<Arc<dyn Protocol>, ConfigError> {
    let mut http: HttpConfig = args.own.deserialize()?;
    for list in [
        &mut http.send_headers,
        &mut http.redact_headers,
        &mut http.include_body_for,
        &mut http.include_request_body_for,
        &mut http.include_response_body_for,
    ] {
        for h in list.iter_mut() {
            *h = h.to_ascii_lowercase();
        }
    }
    Ok(Arc::new(Http {
        cfg: Arc::new(Settings {
            http,
            send_request: args.common.send_request,
            send_response: args.common.send_response,
            timeout: args.common.timeout(),
        }),
    }))
}

impl Protocol for Http {
    fn session(&self, _t: Transport) -> Box<dyn Session> {
        Box::new(HttpSession {
            cfg: self.cfg.clone(),
            parsers: [Parser::default(), Parser::default()],
            requests: VecDeque::new(),
            unmatched_at_end: 0,
        })
    }
}

/// The most complete requests waiting for their responses on one connection.
const MAX_PENDING: usize = 64;

struct HttpSession {
    cfg: Arc<Settings>,
    parsers: [Parser; 2],
    requests: VecDeque<(Dir, Message)>,
    unmatched_at_end: u64,
}

impl HttpSession {
    fn complete(&mut self, cx: &mut Cx<'_>, dir: Dir, msg: Message) {
        if msg.is_request {
            if self.requests.len() >= MAX_PENDING
                && let Some((d, old)) = self.requests.pop_front()
            {
                cx.emit(fields::unmatched_request(&self.cfg, d, old));
            }
            self.requests.push_back((dir, msg));
            return;
        }
        if (100..200).contains(&msg.status_code) {
            return;
        }
        let pos = self.requests.iter().position(|(d, _)| *d != dir);
        let tx: Transaction = match pos.and_then(|i| self.requests.remove(i)) {
            Some((d, req)) => fields::pair(&self.cfg, cx.conn, d, req, msg),
            None => fields::unmatched_response(&self.cfg, dir.flip(), msg),
        };
        cx.emit(tx);
    }

    fn run(&mut self, cx: &mut Cx<'_>, dir: Dir, buf: &mut StreamBuf) {
        loop {
            let p = &mut self.parsers[dir.index()];
            match p.parse(&self.cfg.http, cx.now, cx.clock, buf) {
                Progress::Done(msg) => self.complete(cx, dir, *msg),
                Progress::More => return,
                Progress::Invalid => {
                    // Not HTTP (or lost in the middle of a message): drop this direction's
                    // bytes and wait for the next message start.
                    buf.clear();
                    *p = Parser::default();
                    return;
                }
            }
        }
    }
}

impl Session for HttpSession {
    fn parse(&mut self, cx: &mut Cx<'_>, dir: Dir, buf: &mut StreamBuf) {
        self.run(cx, dir, buf);
    }

    fn gap(&mut self, cx: &mut Cx<'_>, dir: Dir, missing: u64, buf: &mut StreamBuf) -> GapAction {
        let p = &mut self.parsers[dir.index()];
        if p.absorb_gap(missing, buf) {
            self.run(cx, dir, buf);
            GapAction::Continue
        } else {
            GapAction::Drop
        }
    }

    fn fin(&mut self, cx: &mut Cx<'_>, dir: Dir, buf: &mut StreamBuf) {
        let p = &mut self.parsers[dir.index()];
        if let Some(msg) = p.finish(buf) {
            self.complete(cx, dir, msg);
        }
    }

    fn tick(&mut self, cx: &mut Cx<'_>) {
        while let Some((d, req)) = self.requests.front() {
            if !expired(req.clock, cx.clock, self.cfg.timeout) {
                break;
            }
            let d = *d;
            if let Some((_, req)) = self.requests.pop_front() {
                cx.emit(fields::unmatched_request(&self.cfg, d, req));
            }
        }
    }

    fn close(&mut self, cx: &mut Cx<'_>, why: CloseReason) {
        // A body delimited by the end of the connection is complete now.
        for dir in [Dir::Orig, Dir::Reply] {
            let mut empty = StreamBuf::default();
            if let Some(msg) = self.parsers[dir.index()].finish(&mut empty) {
                self.complete(cx, dir, msg);
            }
        }
        for (d, req) in std::mem::take(&mut self.requests) {
            if why == CloseReason::EndOfInput {
                self.unmatched_at_end += 1;
            } else {
                cx.emit(fields::unmatched_request(&self.cfg, d, req));
            }
        }
        if self.unmatched_at_end > 0 {
            tracing::debug!(
                requests = self.unmatched_at_end,
                "http: requests without a response at the end of the capture were dropped"
            );
        }
    }

    fn held_bytes(&self) -> usize {
        self.requests
            .iter()
            .map(|(_, m)| m.held_bytes())
            .sum::<usize>()
            + self.parsers.iter().map(Parser::held_bytes).sum::<usize>()
    }
}
