//! DNS over UDP and TCP, as Packetbeat's `dns` protocol: one event per query and response.
//!
//! Messages are decoded by `simple-dns`; the header flags, the op code and the EDNS `DO` bit
//! and extended rcode are read from the wire here (the crate folds the OPT record's TTL away).
//! Over TCP each message has a 2-byte length prefix and a segment may hold several. A session
//! is one address pair (UDP) or connection (TCP); queries wait by DNS id.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use simple_dns::rdata::RData;
use simple_dns::{Packet, ResourceRecord};
use skiff_config::ConfigError;
use skiff_event::{Map, Timestamp, Value};

use crate::protocol::{
    BuildArgs, CloseReason, Cx, Dir, GapAction, Protocol, ProtocolPlugin, Session, StreamBuf,
    Transaction, Transport, expired,
};

/// `type: dns`.
pub static PLUGIN: ProtocolPlugin = ProtocolPlugin {
    name: "dns",
    tcp: true,
    udp: true,
    default_ports: &[53],
    build,
};

/// The `dns` options (besides the common ones).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// `include_authorities` (default false): add `dns.authorities`.
    #[serde(default)]
    pub include_authorities: bool,
    /// `include_additionals` (default false): add `dns.additionals`.
    #[serde(default)]
    pub include_additionals: bool,
}

struct Settings {
    dns: DnsConfig,
    send_request: bool,
    send_response: bool,
    timeout: Duration,
}

struct Dns {
    cfg: Arc<Settings>,
}

fn build(args: &BuildArgs<'_>) -> Result<Arc<dyn Protocol>, ConfigError> {
    let dns: DnsConfig = args.own.deserialize()?;
    Ok(Arc::new(Dns {
        cfg: Arc::new(Settings {
            dns,
            send_request: args.common.send_request,
            send_response: args.common.send_response,
            timeout: args.common.timeout(),
        }),
    }))
}

impl Protocol for Dns {
    fn session(&self, _t: Transport) -> Box<dyn Session> {
        Box::new(DnsSession {
            cfg: self.cfg.clone(),
            pending: HashMap::new(),
        })
    }
}

/// The most queries waiting on one session.
const MAX_PENDING: usize = 4096;
/// The largest DNS message over TCP.
const MAX_TCP_MESSAGE: usize = 65535 + 2;

/// A decoded message, reduced to what the event needs.
struct Msg {
    ts: Timestamp,
    clock: Timestamp,
    dir: Dir,
    bytes: u64,
    id: u16,
    response: bool,
    fields: Vec<(String, Value)>,
    resolved: Vec<IpAddr>,
    question: Option<(String, String, String)>,
    rcode: &'static str,
    text: String,
    notes: Vec<String>,
}

struct DnsSession {
    cfg: Arc<Settings>,
    pending: HashMap<u16, Msg>,
}

fn type_name(t: u16) -> String {
    let s = match t {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        13 => "HINFO",
        15 => "MX",
        16 => "TXT",
        17 => "RP",
        18 => "AFSDB",
        28 => "AAAA",
        29 => "LOC",
        33 => "SRV",
        35 => "NAPTR",
        39 => "DNAME",
        41 => "OPT",
        43 => "DS",
        44 => "SSHFP",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        50 => "NSEC3",
        51 => "NSEC3PARAM",
        52 => "TLSA",
        64 => "SVCB",
        65 => "HTTPS",
        99 => "SPF",
        251 => "IXFR",
        252 => "AXFR",
        255 => "ANY",
        257 => "CAA",
        _ => return format!("TYPE{t}"),
    };
    s.to_owned()
}

fn class_name(c: u16) -> String {
    match c & 0x7fff {
        1 => "IN".into(),
        3 => "CH".into(),
        4 => "HS".into(),
        254 => "NONE".into(),
        255 => "ANY".into(),
        n => format!("CLASS{n}"),
    }
}

fn rcode_name(r: u16) -> &'static str {
    match r {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        16 => "BADVERS",
        _ => "UNKNOWN",
    }
}

fn opcode_name(o: u8) -> String {
    match o {
        0 => "QUERY".into(),
        1 => "IQUERY".into(),
        2 => "STATUS".into(),
        4 => "NOTIFY".into(),
        5 => "UPDATE".into(),
        n => format!("OPCODE{n}"),
    }
}

fn hex_upper(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// One record as Packetbeat writes it: name, type, class, ttl (a string), data, plus the
/// type's own fields.
fn record(rr: &ResourceRecord<'_>, resolved: &mut Vec<IpAddr>) -> Map {
    let mut m = Map::new();
    let t: u16 = rr.rdata.type_code().into();
    m.insert("name".into(), rr.name.to_string().into());
    m.insert("type".into(), type_name(t).into());
    m.insert("class".into(), class_name(u16::from(rr.class)).into());
    m.insert("ttl".into(), rr.ttl.to_string().into());
    let data: String = match &rr.rdata {
        RData::A(a) => {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(a.address));
            resolved.push(ip);
            ip.to_string()
        }
        RData::AAAA(a) => {
            let ip = IpAddr::from(std::net::Ipv6Addr::from(a.address));
            resolved.push(ip);
            ip.to_string()
        }
        RData::NS(n) => n.0.to_string(),
        RData::CNAME(n) => n.0.to_string(),
        RData::PTR(n) => n.0.to_string(),
        RData::MX(mx) => {
            m.insert("preference".into(), mx.preference.into());
            mx.exchange.to_string()
        }
        RData::TXT(txt) => txt
            .iter_raw()
            .map(|(k, v)| match v {
                Some(v) => format!(
                    "{}={}",
                    String::from_utf8_lossy(k),
                    String::from_utf8_lossy(v)
                ),
                None => String::from_utf8_lossy(k).into_owned(),
            })
            .collect::<Vec<_>>()
            .join(""),
        RData::SOA(s) => {
            m.insert("rname".into(), s.rname.to_string().into());
            m.insert("serial".into(), s.serial.into());
            m.insert("refresh".into(), s.refresh.into());
            m.insert("retry".into(), s.retry.into());
            m.insert("expire".into(), s.expire.into());
            m.insert("minimum".into(), s.minimum.into());
            s.mname.to_string()
        }
        RData::SRV(s) => {
            m.insert("priority".into(), s.priority.into());
            m.insert("weight".into(), s.weight.into());
            m.insert("port".into(), s.port.into());
            s.target.to_string()
        }
        RData::DS(ds) => {
            m.insert("key_tag".into(), ds.key_tag.into());
            m.insert("algorithm".into(), ds.algorithm.into());
            m.insert("digest_type".into(), ds.digest_type.into());
            hex_upper(&ds.digest)
        }
        RData::RRSIG(s) => {
            m.insert("type_covered".into(), type_name(s.type_covered).into());
            m.insert("algorithm".into(), s.algorithm.into());
            m.insert("labels".into(), s.labels.into());
            m.insert("original_ttl".into(), s.original_ttl.to_string().into());
            m.insert(
                "expiration".into(),
                s.signature_expiration.to_string().into(),
            );
            m.insert("inception".into(), s.signature_inception.to_string().into());
            m.insert("key_tag".into(), s.key_tag.into());
            m.insert("signer_name".into(), s.signer_name.to_string().into());
            base64::engine::general_purpose::STANDARD.encode(&s.signature)
        }
        RData::DNSKEY(k) => {
            m.insert("flags".into(), k.flags.into());
            m.insert("protocol".into(), k.protocol.into());
            m.insert("algorithm".into(), k.algorithm.into());
            base64::engine::general_purpose::STANDARD.encode(&k.public_key)
        }
        RData::CAA(c) => format!(
            "{} {} \"{}\"",
            c.flag,
            c.tag,
            String::from_utf8_lossy(&c.value)
        ),
        RData::Empty(_) => String::new(),
        other => format!("{other:?}"),
    };
    m.insert("data".into(), data.into());
    m
}

/// The EDNS OPT record's TTL (extended rcode, version, DO bit), found by walking the message:
/// `simple-dns` keeps only part of it.
fn opt_ttl(msg: &[u8]) -> Option<(u16, u32)> {
    let count = |i: usize| Some(u16::from_be_bytes([*msg.get(i)?, *msg.get(i + 1)?]) as usize);
    let (qd, an, ns, ar) = (count(4)?, count(6)?, count(8)?, count(10)?);
    let skip_name = |mut p: usize| -> Option<usize> {
        loop {
            let l = *msg.get(p)? as usize;
            if l == 0 {
                return Some(p + 1);
            }
            if l & 0xc0 == 0xc0 {
                return Some(p + 2);
            }
            p += l + 1;
        }
    };
    let mut p = 12;
    for _ in 0..qd {
        p = skip_name(p)? + 4;
    }
    for i in 0..an + ns + ar {
        p = skip_name(p)?;
        let t = count(p)? as u16;
        let class = count(p + 2)? as u16;
        let ttl = u32::from_be_bytes([
            *msg.get(p + 4)?,
            *msg.get(p + 5)?,
            *msg.get(p + 6)?,
            *msg.get(p + 7)?,
        ]);
        let rdlen = count(p + 8)?;
        if t == 41 && i >= an + ns {
            return Some((class, ttl));
        }
        p += 10 + rdlen;
    }
    None
}

fn decode(
    cfg: &Settings,
    raw: &[u8],
    ts: Timestamp,
    dir: Dir,
    bytes: u64,
    udp: bool,
) -> Option<Msg> {
    if raw.len() < 12 {
        return None;
    }
    let packet = Packet::parse(raw).ok()?;
    let id = u16::from_be_bytes([raw[0], raw[1]]);
    let (f1, f2) = (raw[2], raw[3]);
    let response = f1 & 0x80 != 0;
    let opcode = (f1 >> 3) & 0x0f;
    let opt = opt_ttl(raw);
    let ext = opt.map_or(0u16, |(_, ttl)| ((ttl >> 24) as u16) << 4);
    let rcode = rcode_name(ext | u16::from(f2 & 0x0f));
    let mut fields: Vec<(String, Value)> = Vec::new();
    let mut set = |k: &str, v: Value| fields.push((k.to_owned(), v));
    set("dns.id", id.into());
    set("dns.op_code", opcode_name(opcode).into());
    let flag = |b: u8, bit: u8| b & bit != 0;
    let flags = [
        ("authoritative", "AA", flag(f1, 0x04)),
        ("truncated_response", "TC", flag(f1, 0x02)),
        ("recursion_desired", "RD", flag(f1, 0x01)),
        ("recursion_available", "RA", flag(f2, 0x80)),
        ("authentic_data", "AD", flag(f2, 0x20)),
        ("checking_disabled", "CD", flag(f2, 0x10)),
    ];
    let mut header_flags: Vec<&str> = Vec::new();
    for (name, short, on) in flags {
        set(&format!("dns.flags.{name}"), on.into());
        if on {
            header_flags.push(short);
        }
    }
    let do_bit = opt.is_some_and(|(_, ttl)| ttl & 0x8000 != 0);
    if do_bit {
        header_flags.push("DO");
    }
    set("dns.header_flags", serde_json::json!(header_flags));
    set("dns.response_code", rcode.into());
    if let Some((udp_size, ttl)) = opt {
        set("dns.opt.version", ((ttl >> 16) as u8).to_string().into());
        set("dns.opt.do", do_bit.into());
        set("dns.opt.ext_rcode", rcode_name(ext).into());
        set("dns.opt.udp_size", udp_size.into());
    }
    let mut notes = Vec::new();
    if udp && raw.len() > 512 && opt.is_none() {
        notes.push("Non-EDNS packet has size greater than 512".to_owned());
    }
    let question = packet.questions.first().map(|q| {
        let name = q.qname.to_string();
        (
            name,
            type_name(u16::from(q.qtype)),
            class_name(u16::from(q.qclass)),
        )
    });
    if let Some((name, t, c)) = &question {
        set("dns.question.name", name.clone().into());
        set("dns.question.type", t.clone().into());
        set("dns.question.class", c.clone().into());
        let lower = name.to_ascii_lowercase();
        if let Some(reg) = psl::domain_str(&lower) {
            set("dns.question.registered_domain", reg.into());
            set("dns.question.etld_plus_one", reg.into());
            if let Some(sub) = lower.strip_suffix(reg).and_then(|s| s.strip_suffix('.'))
                && !sub.is_empty()
            {
                set("dns.question.subdomain", sub.into());
            }
        }
        if let Some(tld) = psl::suffix_str(&lower) {
            set("dns.question.top_level_domain", tld.into());
        }
    }
    let mut resolved = Vec::new();
    let mut text = String::new();
    let _ = writeln!(
        text,
        ";; opcode: {}, status: {rcode}, id: {id}\n;; flags: {};",
        opcode_name(opcode),
        header_flags.join(" ").to_lowercase()
    );
    if let Some((name, t, c)) = &question {
        let _ = writeln!(text, "\n;; QUESTION SECTION:\n;{name}.\t{c}\t{t}");
    }
    if response {
        let sections: [(&str, &[ResourceRecord<'_>], bool); 3] = [
            ("answers", &packet.answers, true),
            (
                "authorities",
                &packet.name_servers,
                cfg.dns.include_authorities,
            ),
            (
                "additionals",
                &packet.additional_records,
                cfg.dns.include_additionals,
            ),
        ];
        for (name, rrs, include) in sections {
            set(&format!("dns.{name}_count"), rrs.len().into());
            let mut list = Vec::new();
            let _ = writeln!(text, "\n;; {} SECTION:", name.to_uppercase());
            for rr in rrs {
                let mut ips = Vec::new();
                let r = record(rr, &mut ips);
                if name == "answers" {
                    resolved.extend(ips);
                }
                let _ = writeln!(
                    text,
                    "{}.\t{}\t{}\t{}\t{}",
                    rr.name,
                    rr.ttl,
                    r.get("class").and_then(Value::as_str).unwrap_or(""),
                    r.get("type").and_then(Value::as_str).unwrap_or(""),
                    r.get("data").and_then(Value::as_str).unwrap_or("")
                );
                list.push(Value::Object(r));
            }
            if include && !list.is_empty() {
                set(&format!("dns.{name}"), Value::Array(list));
            }
        }
        if !resolved.is_empty() {
            let ips: Vec<String> = resolved.iter().map(|i| i.to_string()).collect();
            set("dns.resolved_ip", serde_json::json!(ips));
        }
    }
    Some(Msg {
        ts,
        clock: ts,
        dir,
        bytes,
        id,
        response,
        fields,
        resolved,
        question,
        rcode,
        text,
        notes,
    })
}

impl DnsSession {
    fn transaction(&self, req: Option<Msg>, resp: Option<Msg>) -> Transaction {
        let dir = req
            .as_ref()
            .map(|r| r.dir)
            .or(resp.as_ref().map(|r| r.dir.flip()))
            .unwrap_or(Dir::Orig);
        let mut tx = Transaction::new("dns", dir);
        // The response's view wins for header fields; the request supplies what it lacks.
        let main = resp.as_ref().or(req.as_ref());
        if let Some(m) = main {
            for (k, v) in &m.fields {
                tx.set(k, v.clone());
            }
            tx.related_ips.extend(m.resolved.iter().copied());
            tx.notes.extend(m.notes.iter().cloned());
            if let Some((name, t, c)) = &m.question {
                tx.set("method", "QUERY");
                tx.set("resource", name.clone());
                tx.set("query", format!("class {c}, type {t}, {name}"));
            }
        }
        if let Some(r) = &req {
            tx.start = Some(r.ts);
            tx.request_bytes = Some(r.bytes);
            if resp.is_some() {
                tx.notes.extend(r.notes.iter().cloned());
            }
            if self.cfg.send_request {
                tx.set("request", r.text.clone());
            }
        }
        match &resp {
            Some(r) => {
                tx.end = Some(r.ts);
                tx.response_bytes = Some(r.bytes);
                tx.set("dns.type", "answer");
                if r.rcode != "NOERROR" {
                    tx.status = "Error";
                }
                if self.cfg.send_response {
                    tx.set("response", r.text.clone());
                }
                if req.is_none() {
                    tx.status = "Error";
                    tx.note("Response: received without an associated Query");
                }
            }
            None => {
                tx.set("dns.type", "query");
                tx.status = "Error";
                tx.note("No response to this query was received");
            }
        }
        tx
    }

    fn message(&mut self, cx: &mut Cx<'_>, dir: Dir, raw: &[u8], bytes: u64) {
        let udp = cx.transport() == Transport::Udp;
        let Some(mut msg) = decode(&self.cfg, raw, cx.now, dir, bytes, udp) else {
            return;
        };
        msg.clock = cx.clock;
        if msg.response {
            let req = self.pending.remove(&msg.id);
            let tx = self.transaction(req, Some(msg));
            cx.emit(tx);
            return;
        }
        if self.pending.len() >= MAX_PENDING && !self.pending.contains_key(&msg.id) {
            return;
        }
        if let Some(mut old) = self.pending.insert(msg.id, msg) {
            old.notes.push("Another query with the same DNS ID from this client was received so this query was closed without receiving a response".into());
            let tx = self.transaction(Some(old), None);
            cx.emit(tx);
        }
    }
}

impl Session for DnsSession {
    fn parse(&mut self, cx: &mut Cx<'_>, dir: Dir, buf: &mut StreamBuf) {
        if cx.transport() == Transport::Udp {
            let raw = buf.data().to_vec();
            buf.clear();
            self.message(cx, dir, &raw, raw.len() as u64);
            return;
        }
        loop {
            let d = buf.data();
            if d.len() < 2 {
                return;
            }
            let len = u16::from_be_bytes([d[0], d[1]]) as usize;
            if len + 2 > MAX_TCP_MESSAGE {
                buf.clear();
                return;
            }
            if d.len() < len + 2 {
                return;
            }
            let raw = d[2..len + 2].to_vec();
            buf.consume(len + 2);
            self.message(cx, dir, &raw, (len + 2) as u64);
        }
    }

    fn gap(
        &mut self,
        _cx: &mut Cx<'_>,
        _dir: Dir,
        _missing: u64,
        _buf: &mut StreamBuf,
    ) -> GapAction {
        GapAction::Drop
    }

    fn tick(&mut self, cx: &mut Cx<'_>) {
        let timeout = self.cfg.timeout;
        let old: Vec<u16> = self
            .pending
            .iter()
            .filter(|(_, m)| expired(m.clock, cx.clock, timeout))
            .map(|(k, _)| *k)
            .collect();
        for id in old {
            if let Some(m) = self.pending.remove(&id) {
                let tx = self.transaction(Some(m), None);
                cx.emit(tx);
            }
        }
    }

    fn close(&mut self, cx: &mut Cx<'_>, why: CloseReason) {
        if why == CloseReason::EndOfInput {
            self.pending.clear();
            return;
        }
        for (_, m) in std::mem::take(&mut self.pending) {
            let tx = self.transaction(Some(m), None);
            cx.emit(tx);
        }
    }

    fn held_bytes(&self) -> usize {
        self.pending.values().map(|m| 512 + m.text.len()).sum()
    }
}
