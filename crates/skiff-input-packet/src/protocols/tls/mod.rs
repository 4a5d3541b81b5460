//! TLS, as Packetbeat's `tls` protocol: one event per connection describing its handshake.
//!
//! The session frames TLS records per direction (5-byte header) and handshake messages across
//! records, and hands each handshake message to `tls-parser`; certificates go to
//! `x509-parser` (see [`cert`]). Nothing is decrypted: a direction is "encrypted" once it sends
//! ChangeCipherSpec or application data. The event is published once, when both directions
//! are encrypted (the handshake is done, `tls.established: true`, status OK), or at the first
//! FIN, gap, connection expiry or end of input (`established: false`, status Error), as
//! Packetbeat does. `event.start` is the first handshake message, `event.end` the moment
//! both sides are encrypted; no byte counts, as upstream.
//!
//! Resumption follows Packetbeat: neither side sent a key exchange and the server echoed the
//! client's session id (`id`) or acknowledged an offered ticket (`ticket`). With TLS 1.3's
//! compatibility session id this says `resumed: true, method id` for a full 1.3 handshake too;
//! we keep upstream's answer so that events compare equal.
//!
//! The fields are listed in docs/packet.md (tls).

mod cert;
mod names;

use std::sync::Arc;

use md5::Digest;
use serde::Deserialize;
use skiff_config::ConfigError;
use skiff_event::{Timestamp, Value};
use tls_parser::{TlsExtension, TlsMessage, TlsMessageHandshake};

use crate::protocol::{
    BuildArgs, CloseReason, Cx, Dir, GapAction, Protocol, ProtocolPlugin, Session, StreamBuf,
    Transaction, Transport,
};

/// `type: tls`.
pub static PLUGIN: ProtocolPlugin = ProtocolPlugin {
    name: "tls",
    tcp: true,
    udp: false,
    default_ports: &[443, 993, 995, 5223, 8443, 8883, 9243],
    build,
};

/// The `tls` options (besides the common ones).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// `send_certificates` (default true): certificate details (`tls.*.x509.*` and the
    /// detailed chains) in the event.
    #[serde(default = "yes")]
    pub send_certificates: bool,
    /// `include_raw_certificates` (default false): the PEM chains as
    /// `tls.{client,server}.certificate_chain`.
    #[serde(default)]
    pub include_raw_certificates: bool,
    /// `include_detailed_fields` (default true): `tls.detailed.*` and the x509 objects.
    #[serde(default = "yes")]
    pub include_detailed_fields: bool,
    /// `fingerprints` (default `[sha1]`): hashes of the leaf certificates, among `md5`,
    /// `sha1`, `sha256`.
    #[serde(default = "default_fingerprints")]
    pub fingerprints: Vec<Fingerprint>,
    /// `include_ja3s` (default false; not a Packetbeat option): the server's JA3S
    /// fingerprint as `tls.server.ja3s`. Off by default so that events stay equal to
    /// Packetbeat's golden files, which have none.
    #[serde(default)]
    pub include_ja3s: bool,
}

/// A certificate fingerprint algorithm.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Fingerprint {
    /// MD5.
    Md5,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
}

fn yes() -> bool {
    true
}

fn default_fingerprints() -> Vec<Fingerprint> {
    vec![Fingerprint::Sha1]
}

struct Tls {
    cfg: Arc<TlsConfig>,
}

fn build(args: &BuildArgs<'_>) -> Result<Arc<dyn Protocol>, ConfigError> {
    let cfg: TlsConfig = args.own.deserialize()?;
    Ok(Arc::new(Tls { cfg: Arc::new(cfg) }))
}

impl Protocol for Tls {
    fn session(&self, _t: Transport) -> Box<dyn Session> {
        Box::new(TlsSession {
            cfg: self.cfg.clone(),
            dirs: Default::default(),
            client_dir: None,
            start: None,
            client_hello: None,
            server_hello: None,
            cert_requested: false,
            key_exchange: false,
            alerts: Vec::new(),
            client_unparsed: Vec::new(),
            server_unparsed: Vec::new(),
            ocsp_response: None,
            done: false,
        })
    }
}

/// A handshake message larger than this is not followed (certificate chains are a few KiB;
/// the TLS limit is 16 MiB, which we do not buffer from an untrusted length).
const MAX_HANDSHAKE: usize = 256 << 10;

/// What one direction has sent.
#[derive(Default)]
struct Side {
    /// Handshake bytes spanning records, waiting for a whole message.
    pending: Vec<u8>,
    /// ChangeCipherSpec or application data seen: the rest is opaque.
    encrypted: bool,
    /// The DER certificates this side sent.
    certs: Vec<Vec<u8>>,
    /// Framing failed: ignore the rest of this direction.
    broken: bool,
}

/// What the ClientHello said.
#[derive(Default)]
struct ClientHello {
    version: u16,
    random: Vec<u8>,
    session_id: Vec<u8>,
    ciphers: Vec<u16>,
    compression: Vec<u8>,
    ext_types: Vec<u16>,
    sni: Vec<String>,
    alpn: Vec<String>,
    groups: Vec<u16>,
    point_formats: Vec<u8>,
    versions: Vec<u16>,
    sig_algs: Vec<u16>,
    ticket_offered: bool,
    /// The OCSP `status_request`: (responder id list length, request extensions length).
    ocsp: Option<(u16, u16)>,
}

/// What the ServerHello said.
#[derive(Default)]
struct ServerHello {
    version: u16,
    random: Vec<u8>,
    session_id: Vec<u8>,
    cipher: u16,
    compression: u8,
    alpn: Vec<String>,
    point_formats: Vec<u8>,
    selected_version: Option<u16>,
    ticket_ack: bool,
    ext_types: Vec<u16>,
}

struct TlsSession {
    cfg: Arc<TlsConfig>,
    dirs: [Side; 2],
    client_dir: Option<Dir>,
    start: Option<Timestamp>,
    client_hello: Option<ClientHello>,
    server_hello: Option<ServerHello>,
    cert_requested: bool,
    key_exchange: bool,
    alerts: Vec<(u8, u8)>,
    /// Extensions sent but not decoded, by name or number (`extensions._unparsed_`).
    client_unparsed: Vec<String>,
    server_unparsed: Vec<String>,
    /// The `responseStatus` of a stapled OCSP response.
    ocsp_response: Option<&'static str>,
    done: bool,
}

impl Session for TlsSession {
    fn parse(&mut self, cx: &mut Cx<'_>, dir: Dir, buf: &mut StreamBuf) {
        if self.done {
            buf.clear();
            return;
        }
        loop {
            let data = buf.data();
            if data.len() < 5 || self.dirs[dir.index()].broken {
                break;
            }
            let (kind, major) = (data[0], data[1]);
            let len = usize::from(u16::from_be_bytes([data[3], data[4]]));
            if !(20..=23).contains(&kind) || major != 3 || len > (1 << 14) + 2048 {
                // Not TLS (or we lost the framing): nothing more to learn here.
                self.dirs[dir.index()].broken = true;
                buf.clear();
                break;
            }
            if data.len() < 5 + len {
                break;
            }
            let body = data[5..5 + len].to_vec();
            buf.consume(5 + len);
            self.record(cx, dir, kind, &body);
            if self.done {
                buf.clear();
                return;
            }
        }
        if self.dirs[dir.index()].broken {
            buf.clear();
        }
    }

    fn gap(&mut self, cx: &mut Cx<'_>, _dir: Dir, _missing: u64, buf: &mut StreamBuf) -> GapAction {
        buf.clear();
        self.publish(cx, cx.now);
        GapAction::Drop
    }

    fn fin(&mut self, cx: &mut Cx<'_>, _dir: Dir, _buf: &mut StreamBuf) {
        self.publish(cx, cx.now);
    }

    fn close(&mut self, cx: &mut Cx<'_>, _why: CloseReason) {
        self.publish(cx, cx.now);
    }

    fn held_bytes(&self) -> usize {
        self.dirs
            .iter()
            .map(|s| s.pending.capacity() + s.certs.iter().map(Vec::len).sum::<usize>())
            .sum()
    }
}

impl TlsSession {
    fn record(&mut self, cx: &mut Cx<'_>, dir: Dir, kind: u8, body: &[u8]) {
        match kind {
            20 | 23 => {
                self.dirs[dir.index()].encrypted = true;
                if self.dirs.iter().all(|s| s.encrypted) && self.client_hello.is_some() {
                    self.publish(cx, cx.now);
                }
            }
            21 if !self.dirs[dir.index()].encrypted
                && body.len() >= 2
                && self.alerts.len() < 16 =>
            {
                self.alerts.push((body[0], body[1]));
            }
            22 if !self.dirs[dir.index()].encrypted => {
                let side = &mut self.dirs[dir.index()];
                if side.pending.len() + body.len() > MAX_HANDSHAKE {
                    side.broken = true;
                    side.pending = Vec::new();
                    return;
                }
                side.pending.extend_from_slice(body);
                while let Some(msg) = next_message(&mut self.dirs[dir.index()].pending) {
                    self.start.get_or_insert(cx.now);
                    self.handshake(dir, &msg);
                }
            }
            _ => {}
        }
    }

    fn handshake(&mut self, dir: Dir, msg: &[u8]) {
        let Ok((_, TlsMessage::Handshake(hs))) = tls_parser::parse_tls_message_handshake(msg)
        else {
            return;
        };
        match hs {
            TlsMessageHandshake::ClientHello(ch) => {
                self.client_dir = Some(dir);
                let mut h = ClientHello {
                    version: ch.version.0,
                    random: ch.random.to_vec(),
                    session_id: ch.session_id.map(<[u8]>::to_vec).unwrap_or_default(),
                    ciphers: ch.ciphers.iter().map(|c| c.0).collect(),
                    compression: ch.comp.iter().map(|c| c.0).collect(),
                    ..ClientHello::default()
                };
                if let Some(ext) = ch.ext {
                    let exts = extensions(ext);
                    h.ext_types = exts.iter().map(|e| e.0).collect();
                    h.ocsp = exts.iter().find(|e| e.0 == 5).and_then(|e| ocsp(e.1));
                    self.client_unparsed = unparsed(&exts, CLIENT_PARSED);
                    if let Ok((_, list)) = tls_parser::parse_tls_client_hello_extensions(ext) {
                        for e in list {
                            client_extension(&mut h, e);
                        }
                    }
                }
                self.client_hello = Some(h);
            }
            TlsMessageHandshake::ServerHello(sh) => {
                self.client_dir.get_or_insert(dir.flip());
                let mut h = ServerHello {
                    version: sh.version.0,
                    random: sh.random.to_vec(),
                    session_id: sh.session_id.map(<[u8]>::to_vec).unwrap_or_default(),
                    cipher: sh.cipher.0,
                    compression: sh.compression.0,
                    ..ServerHello::default()
                };
                if let Some(ext) = sh.ext {
                    let exts = extensions(ext);
                    h.ext_types = exts.iter().map(|e| e.0).collect();
                    self.server_unparsed = unparsed(&exts, SERVER_PARSED);
                }
                if let Some(ext) = sh.ext
                    && let Ok((_, list)) = tls_parser::parse_tls_server_hello_extensions(ext)
                {
                    for e in list {
                        server_extension(&mut h, e);
                    }
                }
                self.server_hello = Some(h);
            }
            TlsMessageHandshake::Certificate(c) => {
                let side = &mut self.dirs[dir.index()];
                side.certs = c
                    .cert_chain
                    .iter()
                    .take(16)
                    .map(|c| c.data.to_vec())
                    .collect();
            }
            TlsMessageHandshake::CertificateRequest(_) => self.cert_requested = true,
            TlsMessageHandshake::CertificateStatus(st) if st.status_type == 1 => {
                self.ocsp_response = ocsp_response_status(st.blob);
            }
            TlsMessageHandshake::ClientKeyExchange(_)
            | TlsMessageHandshake::ServerKeyExchange(_) => self.key_exchange = true,
            _ => {}
        }
    }

    /// Publishes the connection's event (once).
    fn publish(&mut self, cx: &mut Cx<'_>, end: Timestamp) {
        if self.done || self.client_hello.is_none() && self.server_hello.is_none() {
            return;
        }
        self.done = true;
        let client = self.client_dir.unwrap_or(Dir::Orig);
        let server = client.flip();
        let established = self.dirs.iter().all(|s| s.encrypted);
        let mut tx = Transaction::new("tls", client);
        tx.start = self.start;
        tx.end = established.then_some(end);
        tx.status = if established { "OK" } else { "Error" };
        tx.set("tls.established", established);
        let resumption = self.resumption();
        tx.set("tls.resumed", resumption.is_some());
        let version = self.version();
        if let Some((proto, number)) = version.and_then(names::version) {
            tx.set("tls.version_protocol", proto);
            tx.set("tls.version", number);
        }
        if let Some(sh) = &self.server_hello {
            tx.set("tls.cipher", names::cipher(sh.cipher));
            if let Some(p) = sh.alpn.first() {
                tx.set("tls.next_protocol", p.clone());
            }
            if self.cfg.include_ja3s {
                tx.set("tls.server.ja3s", ja3s(sh));
            }
        }
        if let Some(ch) = &self.client_hello {
            tx.set("tls.client.ja3", ja3(ch));
            if let Some(sni) = ch.sni.first() {
                tx.set("tls.client.server_name", sni.clone());
                tx.destination_domain = Some(sni.clone());
            }
            let ciphers: Vec<String> = ch
                .ciphers
                .iter()
                .filter(|c| !names::is_grease(**c))
                .map(|c| names::cipher(*c))
                .collect();
            tx.set("tls.client.supported_ciphers", ciphers);
        }
        let cfg = self.cfg.clone();
        for (who, side) in [("client", client), ("server", server)] {
            let certs = &self.dirs[side.index()].certs;
            cert::fields(&mut tx, &cfg, who, certs);
        }
        if cfg.include_detailed_fields {
            self.detailed(&mut tx, version, resumption, client);
        }
        cx.emit(tx);
        self.dirs = Default::default();
    }

    /// The negotiated version: the server's `supported_versions` choice, else the server
    /// hello's, else the client hello's.
    fn version(&self) -> Option<u16> {
        self.server_hello
            .as_ref()
            .map(|s| s.selected_version.unwrap_or(s.version))
            .or(self.client_hello.as_ref().map(|c| c.version))
    }

    fn resumption(&self) -> Option<&'static str> {
        let (ch, sh) = (self.client_hello.as_ref()?, self.server_hello.as_ref()?);
        if self.key_exchange {
            return None;
        }
        if !ch.session_id.is_empty() && ch.session_id == sh.session_id {
            Some("id")
        } else if ch.ticket_offered && sh.ticket_ack {
            Some("ticket")
        } else {
            None
        }
    }

    fn detailed(
        &self,
        tx: &mut Transaction,
        version: Option<u16>,
        resumption: Option<&str>,
        client: Dir,
    ) {
        if let Some(name) = version.and_then(names::version_name) {
            tx.set("tls.detailed.version", name);
        }
        tx.set_opt("tls.detailed.resumption_method", resumption);
        tx.set(
            "tls.detailed.client_certificate_requested",
            self.cert_requested,
        );
        if let Some(ch) = &self.client_hello {
            let p = "tls.detailed.client_hello";
            tx.set(&format!("{p}.version"), names::raw_version(ch.version));
            tx.set(&format!("{p}.random"), hex::encode(&ch.random));
            if !ch.session_id.is_empty() {
                tx.set(&format!("{p}.session_id"), hex::encode(&ch.session_id));
            }
            let comp: Vec<String> = ch
                .compression
                .iter()
                .map(|c| names::compression(*c))
                .collect();
            tx.set(&format!("{p}.supported_compression_methods"), comp);
            let e = format!("{p}.extensions");
            set_list(tx, &format!("{e}.server_name_indication"), ch.sni.clone());
            set_list(
                tx,
                &format!("{e}.application_layer_protocol_negotiation"),
                ch.alpn.clone(),
            );
            set_list(
                tx,
                &format!("{e}.supported_groups"),
                map(&ch.groups, names::group),
            );
            set_list(
                tx,
                &format!("{e}.signature_algorithms"),
                map(&ch.sig_algs, names::sig_alg),
            );
            let pf: Vec<String> = ch
                .point_formats
                .iter()
                .map(|f| names::point_format(*f))
                .collect();
            set_list(tx, &format!("{e}.ec_points_formats"), pf);
            let versions: Vec<String> = ch
                .versions
                .iter()
                .filter(|v| !names::is_grease(**v))
                .filter_map(|v| names::version_name(*v))
                .collect();
            set_list(tx, &format!("{e}.supported_versions"), versions);
            if ch.ticket_offered {
                tx.set(&format!("{e}.session_ticket"), "");
            }
            if let Some((ids, exts)) = ch.ocsp {
                tx.set(&format!("{e}.status_request.type"), "ocsp");
                tx.set(&format!("{e}.status_request.responder_id_list_length"), ids);
                tx.set(&format!("{e}.status_request.request_extensions"), exts);
            }
            set_list(tx, &format!("{e}._unparsed_"), self.client_unparsed.clone());
        }
        if let Some(sh) = &self.server_hello {
            let p = "tls.detailed.server_hello";
            tx.set(&format!("{p}.version"), names::raw_version(sh.version));
            tx.set(&format!("{p}.random"), hex::encode(&sh.random));
            if !sh.session_id.is_empty() {
                tx.set(&format!("{p}.session_id"), hex::encode(&sh.session_id));
            }
            tx.set(
                &format!("{p}.selected_compression_method"),
                names::compression(sh.compression),
            );
            let e = format!("{p}.extensions");
            set_list(
                tx,
                &format!("{e}.application_layer_protocol_negotiation"),
                sh.alpn.clone(),
            );
            let pf: Vec<String> = sh
                .point_formats
                .iter()
                .map(|f| names::point_format(*f))
                .collect();
            set_list(tx, &format!("{e}.ec_points_formats"), pf);
            if let Some(v) = sh.selected_version.and_then(names::version_name) {
                tx.set(&format!("{e}.supported_versions"), v);
            }
            set_list(tx, &format!("{e}._unparsed_"), self.server_unparsed.clone());
        }
        if self.cfg.send_certificates {
            let server = client.flip();
            for (name, dir) in [("client", client), ("server", server)] {
                let chain = cert::chain(&self.dirs[dir.index()].certs);
                if !chain.is_empty() {
                    tx.set(&format!("tls.detailed.{name}_certificate_chain"), chain);
                }
            }
        }
        tx.set_opt("tls.detailed.ocsp_response", self.ocsp_response);
        if !self.alerts.is_empty() {
            let alerts: Vec<Value> = self
                .alerts
                .iter()
                .map(|(level, code)| {
                    serde_json::json!({
                        "severity": level,
                        "code": code,
                        "type": names::alert(*code),
                    })
                })
                .collect();
            let types: Vec<String> = self.alerts.iter().map(|a| names::alert(a.1)).collect();
            tx.set("tls.detailed.alerts", alerts);
            tx.set("tls.detailed.alert_types", types);
        }
    }
}

fn map(values: &[u16], name: fn(u16) -> String) -> Vec<String> {
    values
        .iter()
        .filter(|v| !names::is_grease(**v))
        .map(|v| name(*v))
        .collect()
}

fn set_list(tx: &mut Transaction, path: &str, values: Vec<String>) {
    if !values.is_empty() {
        tx.set(path, values);
    }
}

/// Takes one whole handshake message (header included) off the front of `pending`.
fn next_message(pending: &mut Vec<u8>) -> Option<Vec<u8>> {
    if pending.len() < 4 {
        return None;
    }
    let len =
        (usize::from(pending[1]) << 16) | (usize::from(pending[2]) << 8) | usize::from(pending[3]);
    if pending.len() < 4 + len {
        return None;
    }
    Some(pending.drain(..4 + len).collect())
}

/// The extensions (type, body) in wire order: JA3 and `_unparsed_` need every type id, which
/// tls-parser's typed list does not keep.
fn extensions(mut ext: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while ext.len() >= 4 && out.len() < 256 {
        let kind = u16::from_be_bytes([ext[0], ext[1]]);
        let len = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
        out.push((kind, ext.get(4..4 + len).unwrap_or_default()));
        ext = ext.get(4 + len..).unwrap_or_default();
    }
    out
}

/// The client extensions whose contents go to `tls.detailed.client_hello.extensions.*`.
const CLIENT_PARSED: &[u16] = &[0, 5, 10, 11, 13, 16, 35, 43];
/// The same for the server hello (a server's empty SNI acknowledgement counts as unparsed,
/// as upstream).
const SERVER_PARSED: &[u16] = &[11, 16, 35, 43];

fn unparsed(exts: &[(u16, &[u8])], parsed: &[u16]) -> Vec<String> {
    exts.iter()
        .map(|e| e.0)
        .filter(|t| !parsed.contains(t) && !names::is_grease(*t))
        .map(names::extension)
        .collect()
}

/// An OCSP `status_request` body: type 1, then the two list lengths.
fn ocsp(body: &[u8]) -> Option<(u16, u16)> {
    let (&kind, rest) = body.split_first()?;
    let ids = u16::from_be_bytes([*rest.first()?, *rest.get(1)?]);
    let skip = 2 + usize::from(ids);
    let exts = u16::from_be_bytes([*rest.get(skip)?, *rest.get(skip + 1)?]);
    (kind == 1).then_some((ids, exts))
}

fn utf8(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn client_extension(h: &mut ClientHello, e: TlsExtension<'_>) {
    match e {
        TlsExtension::SNI(list) => h.sni = list.iter().map(|(_, n)| utf8(n)).collect(),
        TlsExtension::ALPN(list) => h.alpn = list.iter().map(|p| utf8(p)).collect(),
        TlsExtension::EllipticCurves(g) => h.groups = g.iter().map(|g| g.0).collect(),
        TlsExtension::EcPointFormats(f) => h.point_formats = f.to_vec(),
        TlsExtension::SupportedVersions(v) => h.versions = v.iter().map(|v| v.0).collect(),
        TlsExtension::SignatureAlgorithms(s) => h.sig_algs = s,
        TlsExtension::SessionTicket(_) => h.ticket_offered = true,
        _ => {}
    }
}

fn server_extension(h: &mut ServerHello, e: TlsExtension<'_>) {
    match e {
        TlsExtension::ALPN(list) => h.alpn = list.iter().map(|p| utf8(p)).collect(),
        TlsExtension::EcPointFormats(f) => h.point_formats = f.to_vec(),
        TlsExtension::SupportedVersions(v) => h.selected_version = v.first().map(|v| v.0),
        TlsExtension::SessionTicket(_) => h.ticket_ack = true,
        _ => {}
    }
}

/// The `responseStatus` of a DER `OCSPResponse` (RFC 6960: `SEQUENCE { ENUMERATED, ... }`).
fn ocsp_response_status(der: &[u8]) -> Option<&'static str> {
    let (_, obj) = x509_parser::der_parser::parse_der(der).ok()?;
    let status = obj.as_sequence().ok()?.first()?.as_u64().ok()?;
    Some(match status {
        0 => "successful",
        1 => "malformedRequest",
        2 => "internalError",
        3 => "tryLater",
        5 => "sigRequired",
        6 => "unauthorized",
        _ => return None,
    })
}

/// JA3S: `version,cipher,extensions` of the ServerHello, MD5 in hex.
fn ja3s(sh: &ServerHello) -> String {
    let exts: Vec<String> = sh.ext_types.iter().map(u16::to_string).collect();
    let text = format!("{},{},{}", sh.version, sh.cipher, exts.join("-"));
    hex::encode(md5::Md5::digest(text.as_bytes()))
}

/// JA3: `version,ciphers,extensions,groups,point formats` (decimal, `-`-joined, GREASE
/// values left out), MD5 in hex.
fn ja3(ch: &ClientHello) -> String {
    fn join(v: impl Iterator<Item = u16>) -> String {
        v.filter(|x| !names::is_grease(*x))
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join("-")
    }
    let text = format!(
        "{},{},{},{},{}",
        ch.version,
        join(ch.ciphers.iter().copied()),
        join(ch.ext_types.iter().copied()),
        join(ch.groups.iter().copied()),
        join(ch.point_formats.iter().map(|f| u16::from(*f))),
    );
    hex::encode(md5::Md5::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests;
