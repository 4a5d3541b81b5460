//! The fields of an HTTP transaction, as Packetbeat names and fills them.

use std::io::Read;
use std::net::IpAddr;

use base64::Engine as _;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use skiff_event::{Map, Value};

use super::Settings;
use super::message::Message;
use crate::protocol::{ConnInfo, Dir, Transaction};

/// What Go's `url.QueryEscape` leaves alone (Packetbeat re-encodes `url.query` with it).
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn query_escape(s: &str) -> String {
    utf8_percent_encode(s, QUERY)
        .to_string()
        .replace("%20", "+")
}

fn form_unescape(s: &str) -> String {
    percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// Parses `a=1&b=2` into pairs (decoded).
fn parse_form(s: &str, out: &mut Vec<(String, String)>) {
    for part in s.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        out.push((form_unescape(k), form_unescape(v)));
    }
}

/// Decodes a captured body (`Content-Encoding` gzip/deflate), bounded by `max` bytes.
fn decode_body(msg: &Message, max: usize) -> Result<Vec<u8>, String> {
    let enc = msg
        .header("content-encoding")
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let mut out = Vec::new();
    let res = match enc.as_str() {
        "gzip" | "x-gzip" => flate2::read::GzDecoder::new(&msg.body[..])
            .take(max as u64)
            .read_to_end(&mut out),
        "deflate" | "x-deflate" => flate2::read::ZlibDecoder::new(&msg.body[..])
            .take(max as u64)
            .read_to_end(&mut out),
        _ => return Ok(msg.body.clone()),
    };
    match res {
        Ok(_) => Ok(out),
        // A body cut at max_message_size ends in the middle of the stream: keep what decoded.
        Err(_) if !out.is_empty() => Ok(out),
        Err(e) => Err(format!("Unable to decode body using {enc} encoding: {e}")),
    }
}

fn headers_map(cfg: &Settings, msg: &Message) -> Map {
    let h = &cfg.http;
    let mut m = Map::new();
    let cl = msg
        .header("content-length")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    for (name, value) in &msg.headers {
        let wanted = h.send_all_headers
            || h.send_headers.iter().any(|s| s == name)
            || name == "content-type";
        if !wanted || name == "content-length" {
            continue;
        }
        let mut value = value.clone();
        if h.redact_headers.iter().any(|r| r == name) {
            value = "REDACTED".into();
        } else if h.redact_authorization
            && (name == "authorization" || name == "proxy-authorization")
        {
            value = "*".into();
        }
        if h.split_cookie && (name == "cookie" || name == "set-cookie") {
            let mut c = match m.remove(name) {
                Some(Value::Object(c)) => c,
                _ => Map::new(),
            };
            // Both are split at `;`, as Packetbeat does: a Set-Cookie's attributes (expires,
            // max-age, path) become entries beside the cookie.
            for part in value.split(';') {
                let part = part.trim();
                if part.is_empty() {
                    continue;
                }
                let (k, v) = part.split_once('=').unwrap_or((part, ""));
                c.insert(
                    k.trim().to_ascii_lowercase(),
                    Value::from(v.trim().trim_matches('"')),
                );
            }
            m.insert(name.clone(), Value::Object(c));
            continue;
        }
        match m.get_mut(name) {
            Some(Value::String(prev)) => {
                prev.push_str(", ");
                prev.push_str(&value);
            }
            _ => {
                m.insert(name.clone(), Value::from(value));
            }
        }
    }
    m.insert("content-length".into(), Value::from(cl));
    m
}

fn raw_text(cfg: &Settings, msg: &Message, with_body: bool) -> String {
    let mut text = String::from_utf8_lossy(&msg.head).into_owned();
    if cfg.http.redact_authorization {
        let mut out = String::new();
        for line in text.split_inclusive('\n') {
            let lower = line.to_ascii_lowercase();
            if lower.starts_with("authorization:") || lower.starts_with("proxy-authorization:") {
                let (name, rest) = line.split_once(':').unwrap_or((line, ""));
                let v = rest.trim_end_matches(['\r', '\n']);
                out.push_str(name);
                out.push(':');
                out.push_str(&"*".repeat(v.len()));
                out.push_str(&rest[v.len()..]);
            } else {
                out.push_str(line);
            }
        }
        text = out;
    }
    if with_body {
        text.push_str(&String::from_utf8_lossy(&msg.body));
    }
    text
}

fn body_wanted(cfg: &Settings, msg: &Message) -> bool {
    let h = &cfg.http;
    let ct = msg
        .header("content-type")
        .map(|c| c.to_ascii_lowercase())
        .unwrap_or_default();
    if ct.is_empty() {
        return false;
    }
    let dir = if msg.is_request {
        &h.include_request_body_for
    } else {
        &h.include_response_body_for
    };
    h.include_body_for
        .iter()
        .chain(dir)
        .any(|t| ct.contains(t.as_str()))
}

fn side(cfg: &Settings, tx: &mut Transaction, prefix: &str, msg: &Message) {
    tx.set(&format!("{prefix}.bytes"), msg.size);
    if msg.body_len > 0 {
        tx.set(&format!("{prefix}.body.bytes"), msg.body_len);
    }
    tx.set(
        &format!("{prefix}.headers"),
        Value::Object(headers_map(cfg, msg)),
    );
    if body_wanted(cfg, msg) && !msg.body.is_empty() {
        let body = if cfg.http.decode_body {
            match decode_body(msg, cfg.http.max_message_size) {
                Ok(b) => b,
                Err(note) => {
                    tx.note(note);
                    msg.body.clone()
                }
            }
        } else {
            msg.body.clone()
        };
        tx.set(
            &format!("{prefix}.body.content"),
            String::from_utf8_lossy(&body).into_owned(),
        );
    }
}

/// The request's part of a transaction.
fn request(cfg: &Settings, tx: &mut Transaction, conn_port: Option<u16>, req: &Message) {
    let h = &cfg.http;
    tx.start = Some(req.ts);
    tx.request_bytes = Some(req.size);
    tx.set("http.version", req.version.clone());
    tx.set("http.request.method", req.method.clone());
    tx.set("method", req.method.clone());
    side(cfg, tx, "http.request", req);
    let (path, qs) = req.uri.split_once('?').unwrap_or((req.uri.as_str(), ""));
    // An absolute URI (a proxy request) carries its own host.
    let path = path
        .strip_prefix("http://")
        .map(|rest| rest.find('/').map_or("/", |i| &rest[i..]))
        .unwrap_or(path);
    tx.set("query", format!("{} {}", req.method, path));
    tx.set("url.scheme", "http");
    tx.set("url.path", path.to_owned());
    if let Some(dot) = path.rfind('.')
        && !path[dot..].contains('/')
        && dot + 1 < path.len()
    {
        tx.set("url.extension", path[dot + 1..].to_owned());
    }
    let mut params = Vec::new();
    parse_form(qs, &mut params);
    let is_form = req
        .header("content-type")
        .is_some_and(|c| c.to_ascii_lowercase().contains("x-www-form-urlencoded"));
    if is_form && !req.body.is_empty() {
        parse_form(&String::from_utf8_lossy(&req.body), &mut params);
    }
    for (k, v) in params.iter_mut() {
        if h.hide_keywords.iter().any(|w| w.eq_ignore_ascii_case(k)) {
            *v = "xxxxx".into();
        }
    }
    params.sort_by(|a, b| a.0.cmp(&b.0));
    let query = params
        .iter()
        .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
        .collect::<Vec<_>>()
        .join("&");
    if !query.is_empty() {
        tx.set("url.query", query.clone());
    }
    if let Some(host) = req.header("host") {
        let host = host.trim();
        let (name, port) = match host.rsplit_once(':') {
            Some((n, p)) if !n.contains(']') || n.ends_with(']') => (n, p.parse::<u16>().ok()),
            _ => (host, None),
        };
        let name = name.trim_start_matches('[').trim_end_matches(']');
        if !name.is_empty() {
            tx.set("url.domain", name.to_owned());
            let port = port.or(conn_port).filter(|p| *p != 80);
            if let Some(p) = port {
                tx.set("url.port", p);
            }
            let mut full = format!("http://{name}");
            if let Some(p) = port {
                full.push_str(&format!(":{p}"));
            }
            full.push_str(path);
            if !query.is_empty() {
                full.push('?');
                full.push_str(&query);
            }
            tx.set("url.full", full);
            match name.parse::<IpAddr>() {
                Ok(ip) => tx.related_ips.push(ip),
                Err(_) => tx.destination_domain = Some(name.to_owned()),
            }
            let mut hosts = vec![name.to_owned()];
            if let Some(r) = req.header("referer")
                && let Some(rh) = r
                    .split("://")
                    .nth(1)
                    .and_then(|x| x.split(['/', ':']).next())
                && !hosts.iter().any(|h| h == rh)
            {
                hosts.push(rh.to_owned());
            }
            if name.parse::<IpAddr>().is_err() {
                tx.set("related.hosts", hosts);
            }
        }
    }
    if let Some(r) = req.header("referer") {
        tx.set("http.request.referrer", r.to_owned());
    }
    if let Some(ua) = req.header("user-agent") {
        tx.set("user_agent.original", ua.to_owned());
    }
    if !h.redact_authorization
        && let Some(auth) = req.header("authorization")
        && let Some(b64) = auth.trim().strip_prefix("Basic ")
        && let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim())
    {
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let user = raw.split(':').next().unwrap_or("").to_owned();
        if !user.is_empty() {
            tx.set("user.name", user.clone());
            tx.set("related.user", vec![user]);
        }
    }
    if let Some(name) = &h.real_ip_header
        && let Some(v) = req.header(&name.to_ascii_lowercase())
        && let Some(first) = v.split(',').next()
    {
        let first = first.trim();
        if !first.is_empty() {
            tx.set("network.forwarded_ip", first.to_owned());
            if let Ok(ip) = first.parse::<IpAddr>() {
                tx.related_ips.push(ip);
            }
        }
    }
    if cfg.send_request {
        tx.set("request", raw_text(cfg, req, body_wanted(cfg, req)));
    }
    tx.notes.extend(req.notes.iter().cloned());
}

fn response(cfg: &Settings, tx: &mut Transaction, resp: &Message) {
    tx.end = Some(resp.ts);
    tx.response_bytes = Some(resp.size);
    tx.set("http.version", resp.version.clone());
    tx.set("http.response.status_code", resp.status_code);
    tx.set(
        "http.response.status_phrase",
        resp.phrase.to_ascii_lowercase(),
    );
    side(cfg, tx, "http.response", resp);
    if resp.status_code >= 400 {
        tx.status = "Error";
    }
    if cfg.send_response {
        tx.set("response", raw_text(cfg, resp, body_wanted(cfg, resp)));
    }
    tx.notes.extend(resp.notes.iter().cloned());
}

/// A request and its response.
pub fn pair(
    cfg: &Settings,
    conn: &ConnInfo,
    req_dir: Dir,
    req: Message,
    resp: Message,
) -> Transaction {
    let mut tx = Transaction::new("http", req_dir);
    let server_port = conn.sender(req_dir.flip()).1;
    request(cfg, &mut tx, Some(server_port), &req);
    response(cfg, &mut tx, &resp);
    tx
}

/// A request that got no response.
pub fn unmatched_request(cfg: &Settings, req_dir: Dir, req: Message) -> Transaction {
    let mut tx = Transaction::new("http", req_dir);
    request(cfg, &mut tx, None, &req);
    tx.status = "Error";
    tx.note("Unmatched request");
    tx
}

/// A response without its request.
pub fn unmatched_response(cfg: &Settings, req_dir: Dir, resp: Message) -> Transaction {
    let mut tx = Transaction::new("http", req_dir);
    response(cfg, &mut tx, &resp);
    tx.status = "Error";
    tx.note("Unmatched response");
    tx
}
