//! `syslog`: parses an RFC 3164 or RFC 5424 message held in a field (libbeat's, experimental
//! there) into `log.syslog.*`, `@timestamp` and `message`.
//!
//! ```yaml
//! - syslog:
//!     field: message     # default
//!     format: auto       # rfc3164, rfc5424 or auto (by the version after <PRI>)
//!     timezone: Local    # for RFC 3164 times, which have no zone; default Local
//! ```
//!
//! RFC 3164 times (`Jan 23 14:09:01`) get the current year in `timezone`; RFC 3339 times (the
//! RFC 5424 form, also accepted in RFC 3164 messages) carry their own offset. The message's
//! fields overwrite the event's unless `overwrite_keys: false`. A field that is missing or not
//! syslog (an RFC 3164 message needs its time stamp here) is an error in `error.message` unless
//! `ignore_missing` / `ignore_failure`. The parser is in [`parse`], shared with the `syslog`
//! input.

pub mod parse;

use serde::Deserialize;
use skiff_config::{ConfigErrors, Node};
use skiff_event::{Event, Map, Timestamp, Value};
use skiff_pipeline::{BuildContext, Processor, Verdict};

use crate::timestamp::Zone;
use crate::timestamp::golayout::Parsed;
use crate::{error_at, plugin, set_error, yes};
use parse::{Format, Message, Stamp};

plugin!(SYSLOG, "syslog", build);

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum FormatName {
    #[default]
    Auto,
    Rfc3164,
    Rfc5424,
}

/// `syslog`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `field`: the syslog text. Default `message`.
    #[serde(default = "message")]
    field: String,
    /// `format`: auto, rfc3164 or rfc5424. Default auto.
    #[serde(default)]
    format: FormatName,
    /// `timezone`: the zone of RFC 3164 times. Default `Local`.
    #[serde(default)]
    timezone: Option<String>,
    /// `overwrite_keys`: replace fields the event has. Default true.
    #[serde(default = "yes")]
    overwrite_keys: bool,
    /// `ignore_missing`: no error when `field` is missing. Default false.
    #[serde(default)]
    ignore_missing: bool,
    /// `ignore_failure`: no error at all. Default false.
    #[serde(default)]
    ignore_failure: bool,
    /// `tag`: a name for this processor in messages. Default none.
    #[serde(default)]
    tag: Option<String>,
}

fn message() -> String {
    "message".into()
}

struct SyslogProc {
    cfg: Config,
    format: Format,
    zone: Zone,
    name: String,
}

fn build(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    let cfg: Config = node.deserialize()?;
    let zone = Zone::parse(cfg.timezone.as_deref().unwrap_or("Local"))
        .map_err(|e| error_at(node.get("timezone").unwrap_or(node), e))?;
    let format = match cfg.format {
        FormatName::Auto => Format::Auto,
        FormatName::Rfc3164 => Format::Rfc3164,
        FormatName::Rfc5424 => Format::Rfc5424,
    };
    let name = cfg
        .tag
        .as_ref()
        .map_or_else(|| "syslog".into(), |t| format!("syslog {t}"));
    Ok(Box::new(SyslogProc {
        cfg,
        format,
        zone,
        name,
    }))
}

/// The facility's name as Filebeat writes it; the `syslog` input uses the same table.
pub fn facility_name(code: u8) -> Option<&'static str> {
    FACILITIES.get(usize::from(code)).copied()
}

/// The severity's name as Filebeat writes it; the `syslog` input uses the same table.
pub fn severity_name(code: u8) -> Option<&'static str> {
    SEVERITIES.get(usize::from(code)).copied()
}

const FACILITIES: [&str; 24] = [
    "kernel",
    "user-level",
    "mail",
    "system",
    "security/authorization",
    "syslogd",
    "line printer",
    "network news",
    "UUCP",
    "clock",
    "security/authorization",
    "FTP",
    "NTP",
    "log audit",
    "log alert",
    "clock",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];
const SEVERITIES: [&str; 8] = [
    "Emergency",
    "Alert",
    "Critical",
    "Error",
    "Warning",
    "Notice",
    "Informational",
    "Debug",
];

impl SyslogProc {
    /// The instant of a time stamp: a zoneless one is read in `timezone`, in the zone's current
    /// year when it has none.
    fn time(&self, stamp: Stamp) -> Option<Timestamp> {
        use chrono::Timelike;
        let utc = match stamp {
            Stamp::Zoned(t) => t.with_timezone(&chrono::Utc),
            Stamp::Local {
                year,
                month,
                day,
                time,
            } => self.zone.resolve(&Parsed {
                year,
                rest: (
                    month,
                    day,
                    time.hour(),
                    time.minute(),
                    time.second(),
                    time.nanosecond(),
                ),
                offset: None,
                abbrev: None,
            })?,
        };
        utc.timestamp_nanos_opt().map(Timestamp)
    }

    fn fields(&self, m: Message<'_>) -> (Map, Option<Timestamp>, String) {
        let mut s = Map::new();
        if let Some(pri) = m.priority {
            s.insert("priority".into(), Value::from(pri));
            let (f, sev) = (usize::from(pri / 8), usize::from(pri % 8));
            let code_name = |code: usize, name: &str| {
                let mut o = Map::new();
                o.insert("code".into(), Value::from(code));
                o.insert("name".into(), Value::from(name));
                Value::Object(o)
            };
            s.insert(
                "facility".into(),
                code_name(f, FACILITIES.get(f).copied().unwrap_or("")),
            );
            s.insert("severity".into(), code_name(sev, SEVERITIES[sev]));
        }
        for (k, v) in [
            ("hostname", m.hostname),
            ("appname", m.appname),
            ("procid", m.procid),
            ("msgid", m.msgid),
        ] {
            if let Some(v) = v {
                s.insert(k.into(), Value::String(v.to_owned()));
            }
        }
        if let Some(v) = m.version {
            s.insert("version".into(), Value::from(v));
        }
        if !m.structured_data.is_empty() {
            let mut sd = Map::new();
            for (id, params) in m.structured_data {
                let p: Map = params
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect();
                sd.insert(id, Value::Object(p));
            }
            s.insert("structured_data".into(), Value::Object(sd));
        }
        let ts = m.timestamp.and_then(|t| self.time(t));
        (s, ts, m.message.to_owned())
    }
}

impl Processor for SyslogProc {
    fn process(&self, event: &mut Event) -> Verdict {
        let c = &self.cfg;
        let text = match event.get(&c.field) {
            None if c.ignore_missing || c.ignore_failure => return Verdict::Keep,
            None => {
                set_error(
                    event,
                    format!("{}: field `{}` not found", self.name, c.field),
                );
                return Verdict::Keep;
            }
            Some(f) => f.as_str().map(str::to_owned),
        };
        let Some(text) = text else {
            if !c.ignore_failure {
                set_error(
                    event,
                    format!("{}: field `{}` is not a string", self.name, c.field),
                );
            }
            return Verdict::Keep;
        };
        let parsed = parse::parse(&text, self.format)
            .map_err(|e| e.to_string())
            .and_then(|m| {
                // libbeat's processor refuses an RFC 3164 message without its time stamp.
                if m.version.is_none() && m.timestamp.is_none() {
                    Err("RFC 3164 message without a timestamp".to_owned())
                } else {
                    Ok(m)
                }
            });
        let m = match parsed {
            Ok(m) => m,
            Err(e) => {
                if !c.ignore_failure {
                    set_error(event, format!("{}: {e}", self.name));
                }
                return Verdict::Keep;
            }
        };
        let (fields, ts, msg) = self.fields(m);
        let mut leaves = Vec::new();
        crate::fields::leaves("log.syslog", &fields, &mut leaves);
        for (path, v) in leaves {
            if c.overwrite_keys || event.get(&path).is_none() {
                event.insert(&path, v);
            }
        }
        if let Some(ts) = ts {
            event.timestamp = ts;
        }
        if c.overwrite_keys || c.field == "message" {
            event.insert("message", Value::String(msg));
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::testing::*;
    use chrono::Datelike;
    use serde_json::json;

    /// Filebeat's documentation example.
    #[test]
    fn doc_example() {
        let p = build("processors:\n  - syslog:\n      field: message\n").unwrap();
        let v = json(&run(&p, event(r#"<165>1 2022-01-11T22:14:15.003Z mymachine.example.com eventslog 1024 ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"] this is the message"#)).unwrap());
        assert_eq!(v["@timestamp"], "2022-01-11T22:14:15.003Z");
        assert_eq!(v["message"], "this is the message");
        assert_eq!(
            v["log"]["syslog"],
            json!({
                "priority": 165,
                "facility": {"code": 20, "name": "local4"},
                "severity": {"code": 5, "name": "Notice"},
                "hostname": "mymachine.example.com",
                "appname": "eventslog",
                "procid": "1024",
                "msgid": "ID47",
                "version": 1,
                "structured_data": {
                    "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"},
                    "examplePriority@32473": {"class": "high"}
                }
            })
        );
    }

    #[test]
    fn rfc3164_time_zone_and_errors() {
        let p =
            build("processors: [{syslog: {timezone: America/New_York, format: rfc3164}}]").unwrap();
        let v = json(&run(&p, event("<13>Jul  4 12:00:00 web-1 sshd[7]: hello")).unwrap());
        let year = chrono::Utc::now().year();
        assert_eq!(v["@timestamp"], format!("{year}-07-04T16:00:00.000Z"));
        assert_eq!(v["log"]["syslog"]["appname"], "sshd");
        assert_eq!(v["log"]["syslog"]["facility"]["name"], "user-level");
        assert_eq!(v["message"], "hello");
        let v = json(&run(&p, event("garbage")).unwrap());
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("syslog: "),
            "{v}"
        );
        let p = build("processors: [{syslog: {field: nope, ignore_missing: true}}]").unwrap();
        assert!(json(&run(&p, event("m")).unwrap()).get("error").is_none());
        // overwrite_keys: false keeps what the event has.
        let p = build("processors: [{syslog: {overwrite_keys: false}}]").unwrap();
        let mut ev = event("<13>Jul  4 12:00:00 web-1 app: x");
        ev.insert("log.syslog.hostname", json!("mine"));
        assert_eq!(
            json(&run(&p, ev).unwrap())["log"]["syslog"]["hostname"],
            "mine"
        );
        assert!(build("processors: [{syslog: {timezone: Mars/Base}}]").is_err());
    }
}
