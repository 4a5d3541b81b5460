//! The `syslog` input: RFC 3164 and RFC 5424 messages over UDP, TCP (with TLS) or a unix
//! socket, as Filebeat's `type: syslog`.
//!
//! ```yaml
//! - type: syslog
//!   format: auto                # rfc3164 (default), rfc5424, auto
//!   timezone: Europe/Berlin     # for time stamps without zone; default Local
//!   protocol.tcp:
//!     host: "0.0.0.0:6514"
//!     framing: rfc6587
//!     ssl: {certificate: /etc/skiff/cert.pem, key: /etc/skiff/key.pem}
//! ```
//!
//! Exactly one of `protocol.udp`, `protocol.tcp`, `protocol.unix`, each with the settings of
//! the input of that name. The acknowledgement contract is the transport's: back-pressure for
//! TCP and unix streams, counted drops for UDP and unix datagrams (docs/inputs-network.md).
//!
//! Events, with Filebeat's fields: `message` (MSG), `@timestamp` (the message's time stamp;
//! the receive time when it has none), `log.syslog.priority`, `log.syslog.facility.{code,name}`,
//! `log.syslog.severity.{code,name}`, `log.syslog.hostname`, `log.syslog.appname`,
//! `log.syslog.procid`, `log.syslog.msgid`, `log.syslog.version`,
//! `log.syslog.structured_data` (`{SD-ID: {name: value}}`), `host.hostname`, `process.name`,
//! `process.pid` (when PROCID is a number), `event.severity`, `log.source.address`. A message
//! that is not syslog is kept whole as `message`, with `error.message` saying why and the tag
//! `_syslog_parse_failure`, so nothing is lost to a sender that speaks another dialect.
//!
//! Time stamps: one with a zone (RFC 5424, RFC 3339) is exact. One without (RFC 3164) is read
//! in `timezone`. One without a year gets the year that puts it latest but not more than a day
//! ahead of the clock (a December message read in January is last year's; a "Jan 1" message
//! read at 23:00 on December 31 in a zone behind UTC is the coming year's).

/// The syslog parser: the `syslog` processor's (skiff-processors), one parser for both.
pub use skiff_processors::syslog::parse;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Datelike, FixedOffset, NaiveDateTime, TimeZone, Utc};
use serde::Deserialize;
use skiff_config::{ConfigErrors, Node, NodeValue};
use skiff_event::{Event, Map, Timestamp, Value};
use skiff_pipeline::{Failure, Input, InputContext, InputPlugin};

use crate::config::at;
use crate::message::ToEvent;
use crate::transport::Transport;
use parse::{Format, Message, Stamp};

/// `type: syslog`.
pub static SYSLOG: InputPlugin = InputPlugin {
    name: "syslog",
    agent_type: "filebeat",
    build: |n, _, _| build(n),
};

/// The syslog input's own settings besides `protocol.*`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// `format`: `rfc3164`, `rfc5424` or `auto`. Default `rfc3164` (as Filebeat).
    #[serde(default)]
    pub format: Format,
    /// `timezone`: for time stamps without zone: an IANA name (`America/New_York`), a fixed
    /// offset (`+0200`, `-05:00`), `UTC`, or `Local`. Default `Local`.
    #[serde(default)]
    pub timezone: Option<String>,
}

/// The zone of zoneless time stamps.
#[derive(Clone, Copy, Debug)]
pub enum Zone {
    /// The machine's.
    Local,
    /// A fixed offset.
    Fixed(FixedOffset),
    /// An IANA zone.
    Named(chrono_tz::Tz),
}

impl Zone {
    /// Parses `timezone`.
    pub fn parse(s: &str) -> Option<Zone> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("local") {
            return Some(Zone::Local);
        }
        if s.eq_ignore_ascii_case("utc") || s == "Z" {
            return FixedOffset::east_opt(0).map(Zone::Fixed);
        }
        if let Some(sign) = s.chars().next().filter(|c| *c == '+' || *c == '-') {
            let digits: String = s[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 && digits.len() != 2 {
                return None;
            }
            let h: i32 = digits.get(..2)?.parse().ok()?;
            let m: i32 = digits
                .get(2..)
                .filter(|m| !m.is_empty())
                .map_or(Some(0), |m| m.parse().ok())?;
            let secs = (h * 3600 + m * 60) * if sign == '-' { -1 } else { 1 };
            return FixedOffset::east_opt(secs).map(Zone::Fixed);
        }
        s.parse::<chrono_tz::Tz>().ok().map(Zone::Named)
    }

    /// The instant of a wall-clock time in this zone (the earlier one in a DST overlap; the
    /// time after the gap when it falls in one).
    fn instant(self, t: NaiveDateTime) -> Option<DateTime<Utc>> {
        fn pick<Z: TimeZone>(z: &Z, t: NaiveDateTime) -> Option<DateTime<Utc>> {
            z.from_local_datetime(&t)
                .earliest()
                .or_else(|| {
                    z.from_local_datetime(&(t + chrono::Duration::hours(1)))
                        .earliest()
                })
                .map(|d| d.with_timezone(&Utc))
        }
        match self {
            Zone::Local => pick(&chrono::Local, t),
            Zone::Fixed(z) => pick(&z, t),
            Zone::Named(z) => pick(&z, t),
        }
    }

    fn year_now(self, now: DateTime<Utc>) -> i32 {
        match self {
            Zone::Local => now.with_timezone(&chrono::Local).year(),
            Zone::Fixed(z) => now.with_timezone(&z).year(),
            Zone::Named(z) => now.with_timezone(&z).year(),
        }
    }
}

/// Parses messages into events.
pub struct SyslogEvents {
    /// The format.
    pub format: Format,
    /// The zone of zoneless time stamps.
    pub zone: Zone,
}

fn build(node: &Node) -> Result<Box<dyn Input>, ConfigErrors> {
    let mut own = node.clone();
    let protocol = own.remove("protocol");
    let mut errs = Vec::new();
    let cfg: Option<SyslogConfig> = own.deserialize().map_err(|e| errs.push(e)).ok();
    let zone = cfg.as_ref().and_then(|c| match c.timezone.as_deref() {
        None => Some(Zone::Local),
        Some(tz) => Zone::parse(tz).or_else(|| {
            errs.push(at(node, "timezone", format!("unknown time zone {tz:?}: use an IANA name (Europe/Paris), an offset (+0200) or Local")));
            None
        }),
    });
    let transport = match protocol.as_ref().map(|p| (&p.value, p)) {
        Some((NodeValue::Map(entries), p)) if entries.len() == 1 => {
            let (name, sub) = &entries[0];
            match name.as_str() {
                "udp" => Transport::udp(sub, &mut errs),
                "tcp" => Transport::tcp(sub, &mut errs),
                "unix" => Transport::unix(sub, &mut errs),
                other => {
                    errs.push(at(p, other, format!("unknown protocol {other:?}: use protocol.udp, protocol.tcp or protocol.unix")));
                    None
                }
            }
        }
        Some((_, p)) => {
            errs.push(at(
                p,
                "",
                "give exactly one of protocol.udp, protocol.tcp, protocol.unix",
            ));
            None
        }
        None => {
            errs.push(at(
                node,
                "protocol",
                "missing: add protocol.udp (host), protocol.tcp (host) or protocol.unix (path)",
            ));
            None
        }
    };
    match (cfg, zone, transport) {
        (Some(cfg), Some(zone), Some(transport)) if errs.is_empty() => Ok(Box::new(SyslogInput {
            transport,
            events: Arc::new(SyslogEvents {
                format: cfg.format,
                zone,
            }),
        })),
        _ => Err(ConfigErrors(errs)),
    }
}

/// A built syslog input.
pub struct SyslogInput {
    transport: Transport,
    events: Arc<SyslogEvents>,
}

#[async_trait]
impl Input for SyslogInput {
    async fn run(self: Box<Self>, ctx: InputContext) -> Result<(), Failure> {
        self.transport.run(self.events, "syslog", &ctx).await
    }
}

impl ToEvent for SyslogEvents {
    fn to_event(
        &self,
        msg: &[u8],
        shared: &Arc<Map>,
        source: Option<&str>,
        now: Timestamp,
    ) -> Event {
        let text = String::from_utf8_lossy(msg);
        let mut log = Map::new();
        if let Some(s) = source {
            log.insert("source".into(), serde_json::json!({ "address": s }));
        }
        let mut ev = match parse::parse(&text, self.format) {
            Ok(m) => {
                let mut ev = Event::new_at(now, shared.clone(), m.message.to_owned());
                if let Some(t) = m.timestamp.and_then(|t| self.instant(t, now)) {
                    ev.timestamp = t;
                }
                fill(&mut ev.fields, &mut log, &m);
                ev
            }
            Err(e) => {
                let mut ev = Event::new_at(now, shared.clone(), text.into_owned());
                ev.fields.insert(
                    "error".into(),
                    serde_json::json!({ "message": format!("cannot parse the syslog message: {e}") }),
                );
                // The event's own `tags` replace the shared ones: keep the configured tags.
                let mut tags = match shared.get("tags") {
                    Some(Value::Array(t)) => t.clone(),
                    _ => Vec::new(),
                };
                tags.push(Value::from("_syslog_parse_failure"));
                ev.fields.insert("tags".into(), Value::Array(tags));
                ev
            }
        };
        if !log.is_empty() {
            ev.fields.insert("log".into(), Value::Object(log));
        }
        ev
    }
}

impl SyslogEvents {
    fn instant(&self, t: Stamp, now: Timestamp) -> Option<Timestamp> {
        let utc = match t {
            Stamp::Zoned(t) => t.with_timezone(&Utc),
            Stamp::Local {
                year,
                month,
                day,
                time,
            } => {
                let now = now.to_chrono();
                let at = |y| {
                    parse::local_datetime(y, month, day, time).and_then(|t| self.zone.instant(t))
                };
                match year {
                    Some(y) => at(y)?,
                    None => {
                        // The latest of last, this and next year (in the zone) that is not
                        // more than a day ahead of the clock.
                        let y = self.zone.year_now(now);
                        let limit = now + chrono::Duration::days(1);
                        [y - 1, y, y + 1]
                            .into_iter()
                            .filter_map(at)
                            .filter(|t| *t <= limit)
                            .max()?
                    }
                }
            }
        };
        utc.timestamp_nanos_opt().map(Timestamp)
    }
}

fn fill(fields: &mut Map, log: &mut Map, m: &Message<'_>) {
    let mut sys = Map::new();
    if let Some(p) = m.priority {
        let (f, s) = (p / 8, p % 8);
        sys.insert("priority".into(), Value::from(p));
        sys.insert(
            "facility".into(),
            serde_json::json!({"code": f, "name": parse::facility_name(f)}),
        );
        sys.insert(
            "severity".into(),
            serde_json::json!({"code": s, "name": parse::severity_name(s)}),
        );
        fields.insert("event".into(), serde_json::json!({ "severity": s }));
    }
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v {
            sys.insert(k.into(), Value::from(v));
        }
    };
    put("hostname", m.hostname);
    put("appname", m.appname);
    put("procid", m.procid);
    put("msgid", m.msgid);
    if let Some(v) = m.version {
        sys.insert("version".into(), Value::from(v));
    }
    if !m.structured_data.is_empty() {
        let sd: Map = m
            .structured_data
            .iter()
            .map(|(id, params)| {
                let p: Map = params
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                    .collect();
                (id.clone(), Value::Object(p))
            })
            .collect();
        sys.insert("structured_data".into(), Value::Object(sd));
    }
    if let Some(h) = m.hostname {
        fields.insert("host".into(), serde_json::json!({ "hostname": h }));
    }
    let mut process = Map::new();
    if let Some(a) = m.appname {
        process.insert("name".into(), Value::from(a));
    }
    if let Some(pid) = m.procid.and_then(|p| p.parse::<u64>().ok()) {
        process.insert("pid".into(), Value::from(pid));
    }
    if !process.is_empty() {
        fields.insert("process".into(), Value::Object(process));
    }
    log.insert("syslog".into(), Value::Object(sys));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn events(format: Format, zone: &str) -> SyslogEvents {
        SyslogEvents {
            format,
            zone: Zone::parse(zone).unwrap(),
        }
    }

    fn at_time(rfc3339: &str) -> Timestamp {
        Timestamp::parse(rfc3339).unwrap()
    }

    #[test]
    fn rfc5424_fields() {
        let e = events(Format::Auto, "UTC");
        let ev = e.to_event(
            b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 1234 ID47 [exampleSDID@32473 iut=\"3\"] hello",
            &Arc::new(Map::new()),
            Some("10.0.0.1:514"),
            Timestamp::now(),
        );
        let v = ev.to_value(false);
        assert_eq!(v["@timestamp"], "2003-10-11T22:14:15.003Z");
        assert_eq!(v["message"], "hello");
        assert_eq!(
            v["log"],
            json!({"source": {"address": "10.0.0.1:514"}, "syslog": {
                "priority": 165, "facility": {"code": 20, "name": "local4"},
                "severity": {"code": 5, "name": "Notice"}, "hostname": "mymachine.example.com",
                "appname": "evntslog", "procid": "1234", "msgid": "ID47", "version": 1,
                "structured_data": {"exampleSDID@32473": {"iut": "3"}}}})
        );
        assert_eq!(v["host"]["hostname"], "mymachine.example.com");
        assert_eq!(v["process"], json!({"name": "evntslog", "pid": 1234}));
        assert_eq!(v["event"]["severity"], 5);
    }

    #[test]
    fn zoneless_times_use_the_timezone_and_the_year_rule() {
        let e = events(Format::Rfc3164, "America/New_York");
        let now = at_time("2026-07-01T12:00:00Z");
        let t = e
            .instant(
                parse::parse("<13>Jun 30 08:00:00 h p: m", Format::Rfc3164)
                    .unwrap()
                    .timestamp
                    .unwrap(),
                now,
            )
            .unwrap();
        // EDT is UTC-4 in June.
        assert_eq!(t.to_rfc3339_millis(), "2026-06-30T12:00:00.000Z");
        // A December message read on the 1st of January is from last year.
        let now = at_time("2027-01-01T00:05:00Z");
        let e = events(Format::Rfc3164, "+0000");
        let stamp = parse::parse("Dec 31 23:59:00 h p: m", Format::Rfc3164)
            .unwrap()
            .timestamp
            .unwrap();
        assert_eq!(
            e.instant(stamp, now).unwrap().to_rfc3339_millis(),
            "2026-12-31T23:59:00.000Z"
        );
        // A fixed offset with a colon; a few hours ahead of the clock is still this year.
        let e = events(Format::Rfc3164, "-05:30");
        let stamp = parse::parse("Jan  1 00:00:00 h p: m", Format::Rfc3164)
            .unwrap()
            .timestamp
            .unwrap();
        assert_eq!(
            e.instant(stamp, now).unwrap().to_rfc3339_millis(),
            "2027-01-01T05:30:00.000Z"
        );
    }

    #[test]
    fn bad_messages_are_kept_whole() {
        let e = events(Format::Rfc5424, "UTC");
        let shared: Map = json!({"tags": ["configured"]}).as_object().unwrap().clone();
        let ev = e.to_event(b"<13>hello", &Arc::new(shared), None, Timestamp::now());
        let v = ev.to_value(false);
        assert_eq!(v["message"], "<13>hello");
        assert!(v["error"]["message"].as_str().unwrap().contains("RFC 5424"));
        assert_eq!(v["tags"], json!(["configured", "_syslog_parse_failure"]));
    }

    #[test]
    fn zones() {
        assert!(Zone::parse("Local").is_some());
        assert!(Zone::parse("Europe/Berlin").is_some());
        assert!(Zone::parse("+0200").is_some());
        assert!(Zone::parse("Mars/Olympus").is_none());
        assert!(Zone::parse("+2").is_none());
    }
}
