//! SIP over UDP and TCP, as Packetbeat's `sip` protocol: one event per message (requests
//! and responses are not paired), with the headers, the Digest authorization and the SDP
//! body parsed.
//!
//! The start line and headers are read by `httparse`-like hand code (SIP allows compact
//! header names and a status line `SIP/2.0 code phrase` that `httparse` does not accept as
//! a response); over TCP a message ends after `Content-Length` body bytes.

use std::sync::Arc;

use serde::Deserialize;
use skiff_config::ConfigError;

use crate::protocol::{
    BuildArgs, Cx, Dir, Protocol, ProtocolPlugin, Session, StreamBuf, Transaction, Transport,
};

/// `type: sip`.
pub static PLUGIN: ProtocolPlugin = ProtocolPlugin {
    name: "sip",
    tcp: true,
    udp: true,
    default_ports: &[5060],
    build,
};

/// The `sip` options (besides the common ones).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipConfig {
    /// `parse_authorization` (default true): `sip.auth.*` and `user.name`.
    #[serde(default = "yes")]
    pub parse_authorization: bool,
    /// `parse_body` (default true): `sip.sdp.*` from an SDP body.
    #[serde(default = "yes")]
    pub parse_body: bool,
    /// `keep_original` (default true): the whole message as `event.original`.
    #[serde(default = "yes")]
    pub keep_original: bool,
}

fn yes() -> bool {
    true
}

struct Settings {
    cfg: SipConfig,
}

struct Sip {
    cfg: Arc<Settings>,
}

fn build(args: &BuildArgs<'_>) -> Result<Arc<dyn Protocol>, ConfigError> {
    let cfg: SipConfig = args.own.deserialize()?;
    Ok(Arc::new(Sip {
        cfg: Arc::new(Settings { cfg }),
    }))
}

impl Protocol for Sip {
    fn session(&self, t: Transport) -> Box<dyn Session> {
        Box::new(SipSession {
            cfg: self.cfg.clone(),
            transport: t,
        })
    }
}

/// The largest message accepted.
const MAX_MESSAGE: usize = 64 << 10;

struct SipSession {
    cfg: Arc<Settings>,
    transport: Transport,
}

/// The long name of a compact header.
fn long_name(n: &str) -> String {
    let l = n.to_ascii_lowercase();
    match l.as_str() {
        "i" => "call-id",
        "m" => "contact",
        "e" => "content-encoding",
        "l" => "content-length",
        "c" => "content-type",
        "f" => "from",
        "s" => "subject",
        "k" => "supported",
        "t" => "to",
        "v" => "via",
        _ => return l,
    }
    .to_owned()
}

/// A SIP URI's parts into `tx` at `prefix` (`.original`, `.scheme`, `.username`, `.host`,
/// `.port`); returns (host, username).
fn uri(tx: &mut Transaction, prefix: &str, u: &str) -> (Option<String>, Option<String>) {
    tx.set(&format!("{prefix}.original"), u);
    let Some((scheme, rest)) = u.split_once(':') else {
        return (None, None);
    };
    tx.set(&format!("{prefix}.scheme"), scheme);
    let rest = rest.split([';', '?']).next().unwrap_or("");
    let (user, hostport) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u.split(':').next().unwrap_or(u).to_owned()), h),
        None => (None, rest),
    };
    if let Some(u) = &user {
        tx.set(&format!("{prefix}.username"), u.clone());
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, p)) => (h, p.strip_prefix(':')),
            None => (v6, None),
        }
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    tx.set(&format!("{prefix}.host"), host);
    if let Some(p) = port.and_then(|p| p.parse::<u16>().ok()) {
        tx.set(&format!("{prefix}.port"), p);
    }
    (Some(host.to_owned()), user)
}

/// A name-addr (`"Name" <uri>;tag=x` or `uri;tag=x`) into `tx` at `prefix`.
fn name_addr(tx: &mut Transaction, prefix: &str, v: &str) -> (Option<String>, Option<String>) {
    let v = v.trim();
    let (display, u, params) = match (v.find('<'), v.find('>')) {
        (Some(a), Some(b)) if a < b => (
            v[..a].trim().trim_matches('"').trim(),
            &v[a + 1..b],
            &v[b + 1..],
        ),
        _ => {
            let (u, p) = v.split_once(';').unwrap_or((v, ""));
            ("", u, p)
        }
    };
    if !display.is_empty() {
        tx.set(&format!("{prefix}.display_info"), display);
    }
    for p in params.split(';') {
        if let Some(tag) = p.trim().strip_prefix("tag=") {
            tx.set(&format!("{prefix}.tag"), tag);
        }
    }
    uri(tx, &format!("{prefix}.uri"), u)
}

/// `key=value, key="value"` parameters of a Digest header.
fn auth_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for part in s.split(',') {
        if let Some((k, v)) = part.split_once('=') {
            out.push((
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_owned(),
            ));
        }
    }
    out
}

impl SipSession {
    /// One whole message: an event.
    fn message(&self, cx: &mut Cx<'_>, dir: Dir, raw: &[u8], head_len: usize) {
        let head = String::from_utf8_lossy(&raw[..head_len]);
        let body = &raw[head_len..];
        let mut lines = head.split("\r\n");
        let start = lines.next().unwrap_or("");
        let mut tx = Transaction::new("sip", dir);
        tx.start = Some(cx.now);
        tx.end = Some(cx.now);
        let mut hosts: Vec<String> = Vec::new();
        let mut users: Vec<String> = Vec::new();
        let mut note = |h: (Option<String>, Option<String>)| {
            if let Some(h) = h.0
                && !hosts.contains(&h)
            {
                hosts.push(h);
            }
            if let Some(u) = h.1
                && !users.contains(&u)
            {
                users.push(u);
            }
        };
        let mut cseq_method = String::new();
        let response = start.starts_with("SIP/");
        if response {
            let mut p = start.splitn(3, ' ');
            let version = p.next().unwrap_or("").trim_start_matches("SIP/");
            let code = p.next().and_then(|c| c.parse::<u16>().ok()).unwrap_or(0);
            let phrase = p.next().unwrap_or("");
            tx.set("sip.type", "response");
            tx.set("sip.version", version);
            tx.set("sip.code", code);
            tx.set("sip.status", phrase);
            tx.set("event.reason", phrase);
            if (200..300).contains(&code) {
                tx.set("event.outcome", "success");
            } else if code >= 400 {
                tx.set("event.outcome", "failure");
            }
        } else {
            let mut p = start.split(' ');
            let method = p.next().unwrap_or("");
            let u = p.next().unwrap_or("");
            let version = p.next().unwrap_or("").trim_start_matches("SIP/");
            tx.set("sip.type", "request");
            tx.set("sip.method", method);
            tx.set("sip.version", version);
            note(uri(&mut tx, "sip.uri", u));
            cseq_method = method.to_owned();
        }
        let mut vias = Vec::new();
        let mut category = vec!["network"];
        let mut content_type = String::new();
        let mut prev: Option<(String, String)> = None;
        let mut headers: Vec<(String, String)> = Vec::new();
        for l in lines {
            if l.starts_with([' ', '\t']) {
                // A folded line continues the header before it.
                if let Some(p) = &mut prev {
                    p.1.push(' ');
                    p.1.push_str(l.trim());
                }
                continue;
            }
            if let Some(p) = prev.take() {
                headers.push(p);
            }
            if let Some((k, v)) = l.split_once(':') {
                prev = Some((long_name(k.trim()), v.trim().to_owned()));
            }
        }
        headers.extend(prev);
        for (k, v) in &headers {
            match k.as_str() {
                "via" => vias.extend(v.split(',').map(|s| s.trim().to_owned())),
                "from" => note(name_addr(&mut tx, "sip.from", v)),
                "to" => note(name_addr(&mut tx, "sip.to", v)),
                "contact" => {
                    let first = v.split(',').next().unwrap_or(v);
                    name_addr(&mut tx, "sip.contact", first);
                }
                "call-id" => tx.set("sip.call_id", v.clone()),
                "cseq" => {
                    let mut p = v.split_whitespace();
                    if let Some(n) = p.next().and_then(|n| n.parse::<u64>().ok()) {
                        tx.set("sip.cseq.code", n);
                        tx.set("event.sequence", n);
                    }
                    if let Some(m) = p.next() {
                        tx.set("sip.cseq.method", m);
                        if response {
                            cseq_method = m.to_owned();
                        }
                    }
                }
                "max-forwards" => {
                    if let Ok(n) = v.parse::<u64>() {
                        tx.set("sip.max_forwards", n);
                    }
                }
                "content-length" => {
                    if let Ok(n) = v.parse::<u64>()
                        && n > 0
                    {
                        tx.set("sip.content_length", n);
                    }
                }
                "content-type" => {
                    content_type = v.to_ascii_lowercase();
                    tx.set("sip.content_type", v.clone());
                }
                "user-agent" => tx.set("sip.user_agent.original", v.clone()),
                "accept" => tx.set("sip.accept", v.clone()),
                "allow" => tx.set(
                    "sip.allow",
                    v.split(',')
                        .map(|s| s.trim().to_ascii_lowercase())
                        .collect::<Vec<_>>(),
                ),
                "supported" => tx.set(
                    "sip.supported",
                    v.split(',')
                        .map(|s| s.trim().to_owned())
                        .collect::<Vec<_>>(),
                ),
                "authorization" | "proxy-authorization" if self.cfg.cfg.parse_authorization => {
                    let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
                    tx.set("sip.auth.scheme", scheme);
                    category.push("authentication");
                    for (k, val) in auth_params(rest) {
                        match k.as_str() {
                            "realm" => tx.set("sip.auth.realm", val),
                            "username" => tx.set("user.name", val),
                            "uri" => {
                                uri(&mut tx, "sip.auth.uri", &val);
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if !vias.is_empty() {
            tx.set("sip.via.original", vias);
        }
        tx.set(
            "event.action",
            format!("sip-{}", cseq_method.to_ascii_lowercase()),
        );
        tx.set("event.type", vec!["info", "protocol"]);
        tx.set("event.category", category);
        tx.set("event.duration", 0);
        tx.set("network.application", "sip");
        tx.set(
            "network.iana_number",
            if self.transport == Transport::Udp {
                "17"
            } else {
                "6"
            },
        );
        if !hosts.is_empty() {
            tx.set("related.hosts", hosts);
        }
        if !users.is_empty() {
            tx.set("related.user", users);
        }
        if self.cfg.cfg.parse_body
            && content_type.starts_with("application/sdp")
            && !body.is_empty()
        {
            sdp(&mut tx, &String::from_utf8_lossy(body));
        }
        if self.cfg.cfg.keep_original {
            tx.set("event.original", String::from_utf8_lossy(raw).into_owned());
        }
        cx.emit(tx);
    }
}

/// The SDP session description fields Packetbeat reports.
fn sdp(tx: &mut Transaction, body: &str) {
    tx.set("sip.sdp.body.original", body);
    for l in body.lines() {
        let Some((k, v)) = l.split_once('=') else {
            continue;
        };
        match k {
            "v" => tx.set("sip.sdp.version", v),
            "o" => {
                let p: Vec<&str> = v.split(' ').collect();
                if let [user, id, version, _net, _kind, ip] = p.as_slice() {
                    if *user != "-" {
                        tx.set("sip.sdp.owner.username", *user);
                    }
                    tx.set("sip.sdp.owner.session_id", *id);
                    tx.set("sip.sdp.owner.version", *version);
                    tx.set("sip.sdp.owner.ip", *ip);
                }
            }
            "s" if v != "-" && !v.trim().is_empty() => tx.set("sip.sdp.session.name", v),
            "c" => {
                tx.set("sip.sdp.connection.info", v);
                if let Some(a) = v.split(' ').nth(2) {
                    tx.set("sip.sdp.connection.address", a);
                }
            }
            _ => {}
        }
    }
}

/// The end of the header block and the whole message's length, when complete.
fn frame(b: &[u8]) -> Option<(usize, usize)> {
    let head = b.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let text = String::from_utf8_lossy(&b[..head]);
    let len = text
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| matches!(long_name(k.trim()).as_str(), "content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    Some((head, head.checked_add(len)?))
}

impl Session for SipSession {
    fn parse(&mut self, cx: &mut Cx<'_>, dir: Dir, buf: &mut StreamBuf) {
        loop {
            let d = buf.data();
            // Keep-alive CRLFs between messages.
            let skip = d.iter().take_while(|&&c| c == b'\r' || c == b'\n').count();
            if skip > 0 {
                buf.consume(skip);
                continue;
            }
            if d.is_empty() {
                return;
            }
            let Some((head, total)) = frame(d) else {
                if d.len() > MAX_MESSAGE || self.transport == Transport::Udp {
                    buf.clear();
                }
                return;
            };
            if total > MAX_MESSAGE {
                buf.clear();
                return;
            }
            let total = if self.transport == Transport::Udp {
                // A datagram is one message, whatever Content-Length says.
                d.len()
            } else if d.len() < total {
                return;
            } else {
                total
            };
            let raw = d[..total].to_vec();
            buf.consume(total);
            if raw.starts_with(b"SIP/") || raw.windows(8).take(256).any(|w| w == b" SIP/2.0") {
                self.message(cx, dir, &raw, head.min(raw.len()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_addr_parts() {
        let mut tx = Transaction::new("sip", Dir::Orig);
        let r = name_addr(
            &mut tx,
            "sip.from",
            "\"Bob\" <sip:bob@[::1]:5070;transport=tcp>;tag=9",
        );
        assert_eq!(r, (Some("::1".into()), Some("bob".into())));
        let m = tx.fields_map();
        assert_eq!(m["sip"]["from"]["display_info"], "Bob");
        assert_eq!(m["sip"]["from"]["tag"], "9");
        assert_eq!(m["sip"]["from"]["uri"]["port"], 5070);
    }

    proptest::proptest! {
        /// Hostile bytes: no panic, memory within the input's size plus bounded state.
        #[test]
        fn hostile_bytes(udp: bool, chunks in crate::protocols::fuzzing::chunks(&[
            b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 5\r\nFrom: <sip:x@y>;tag=1\r\n\r\n",
            b"SIP/2.0 200 OK\r\nCSeq: 1 INVITE\r\nl: 99999999999\r\n\r\n",
            b"REGISTER sip:x SIP/2.0\r\nAuthorization: Digest username=\"u\", uri=\"sip:",
        ])) {
            let p = crate::protocols::fuzzing::protocol(&PLUGIN, "{}");
            let t = if udp { Transport::Udp } else { Transport::Tcp };
            let total: usize = chunks.iter().map(|c| c.1.as_ref().map_or(0, Vec::len)).sum();
            let peak = crate::protocols::fuzzing::drive(&*p, t, 5060, &chunks);
            proptest::prop_assert!(peak <= 4 * total + 64 * 1024, "peak {peak} for {total} bytes");
        }
    }
}
