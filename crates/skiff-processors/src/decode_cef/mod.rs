//! `decode_cef`: decodes CEF (Common Event Format) messages (Filebeat's, beta there).
//!
//! ```yaml
//! - rename: {fields: [{from: message, to: event.original}]}
//! - decode_cef: {field: event.original}
//! ```
//!
//! The header goes to `cef.version`, `cef.device.{vendor,product,version,event_class_id}`,
//! `cef.name`, `cef.severity`; extensions to `cef.extensions.<full name>` (short keys such as
//! `src` are written under their full CEF names, `sourceAddress`, as Filebeat does; unknown keys
//! as written; values as text). With `ecs` (default) the common keys are also copied to ECS
//! fields (`source.ip`, `destination.port`, `event.action`, ...; numbers as numbers), the name
//! to `message`, the header to `observer.*` and `event.code`/`event.severity`. A value that
//! does not fit its ECS field (`dvc=hostname` for `observer.ip`) is reported in
//! `error.message` and left out; malformed extensions are dropped and reported, the others are
//! kept. The parser is in [`parse`].

pub mod parse;

use serde::Deserialize;
use skiff_config::{ConfigErrors, Node};
use skiff_event::{Event, Value};
use skiff_pipeline::{BuildContext, Processor, Verdict};

use crate::{plugin, set_error, yes};

plugin!(DECODE_CEF, "decode_cef", build);

/// `decode_cef`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `field`: the CEF text. Default `message`.
    #[serde(default = "message")]
    field: String,
    /// `target_field`: where the CEF object goes. Default `cef`.
    #[serde(default = "cef")]
    target_field: String,
    /// `ecs`: also write ECS fields. Default true.
    #[serde(default = "yes")]
    ecs: bool,
    /// `ignore_missing`: no error when `field` is missing. Default false.
    #[serde(default)]
    ignore_missing: bool,
    /// `ignore_failure`: no error when the text is not CEF. Default false.
    #[serde(default)]
    ignore_failure: bool,
    /// `id`: a name for this processor in messages. Default none.
    #[serde(default)]
    id: Option<String>,
}

fn message() -> String {
    "message".into()
}
fn cef() -> String {
    "cef".into()
}

struct DecodeCef {
    cfg: Config,
    name: String,
}

fn build(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    let cfg: Config = node.deserialize()?;
    let name = cfg
        .id
        .as_ref()
        .map_or_else(|| "decode_cef".into(), |i| format!("decode_cef {i}"));
    Ok(Box::new(DecodeCef { cfg, name }))
}

/// CEF short keys and their full names (the CEF specification's key table; `cn2`'s
/// capitalisation is Filebeat's).
const FULL_NAMES: &[(&str, &str)] = &[
    ("act", "deviceAction"),
    ("app", "applicationProtocol"),
    ("c6a1", "deviceCustomIPv6Address1"),
    ("c6a1Label", "deviceCustomIPv6Address1Label"),
    ("c6a3", "deviceCustomIPv6Address3"),
    ("c6a3Label", "deviceCustomIPv6Address3Label"),
    ("c6a4", "deviceCustomIPv6Address4"),
    ("c6a4Label", "deviceCustomIPv6Address4Label"),
    ("cat", "deviceEventCategory"),
    ("cfp1", "deviceCustomFloatingPoint1"),
    ("cfp1Label", "deviceCustomFloatingPoint1Label"),
    ("cfp2", "deviceCustomFloatingPoint2"),
    ("cfp2Label", "deviceCustomFloatingPoint2Label"),
    ("cfp3", "deviceCustomFloatingPoint3"),
    ("cfp3Label", "deviceCustomFloatingPoint3Label"),
    ("cfp4", "deviceCustomFloatingPoint4"),
    ("cfp4Label", "deviceCustomFloatingPoint4Label"),
    ("cn1", "deviceCustomNumber1"),
    ("cn1Label", "deviceCustomNumber1Label"),
    ("cn2", "DeviceCustomNumber2"),
    ("cn2Label", "deviceCustomNumber2Label"),
    ("cn3", "deviceCustomNumber3"),
    ("cn3Label", "deviceCustomNumber3Label"),
    ("cnt", "baseEventCount"),
    ("cs1", "deviceCustomString1"),
    ("cs1Label", "deviceCustomString1Label"),
    ("cs2", "deviceCustomString2"),
    ("cs2Label", "deviceCustomString2Label"),
    ("cs3", "deviceCustomString3"),
    ("cs3Label", "deviceCustomString3Label"),
    ("cs4", "deviceCustomString4"),
    ("cs4Label", "deviceCustomString4Label"),
    ("cs5", "deviceCustomString5"),
    ("cs5Label", "deviceCustomString5Label"),
    ("cs6", "deviceCustomString6"),
    ("cs6Label", "deviceCustomString6Label"),
    ("deviceCustomDate1", "deviceCustomDate1"),
    ("dhost", "destinationHostName"),
    ("dmac", "destinationMacAddress"),
    ("dntdom", "destinationNtDomain"),
    ("dpid", "destinationProcessId"),
    ("dpriv", "destinationUserPrivileges"),
    ("dproc", "destinationProcessName"),
    ("dpt", "destinationPort"),
    ("dst", "destinationAddress"),
    ("dtz", "deviceTimeZone"),
    ("duid", "destinationUserId"),
    ("duser", "destinationUserName"),
    ("dvc", "deviceAddress"),
    ("dvchost", "deviceHostName"),
    ("dvcmac", "deviceMacAddress"),
    ("dvcpid", "deviceProcessId"),
    ("end", "endTime"),
    ("externalId", "externalId"),
    ("fname", "filename"),
    ("fsize", "fileSize"),
    ("in", "bytesIn"),
    ("msg", "message"),
    ("out", "bytesOut"),
    ("outcome", "eventOutcome"),
    ("proto", "transportProtocol"),
    ("request", "requestUrl"),
    ("rt", "deviceReceiptTime"),
    ("shost", "sourceHostName"),
    ("smac", "sourceMacAddress"),
    ("sntdom", "sourceNtDomain"),
    ("sourceDnsDomain", "sourceDnsDomain"),
    ("spid", "sourceProcessId"),
    ("spriv", "sourceUserPrivileges"),
    ("sproc", "sourceProcessName"),
    ("spt", "sourcePort"),
    ("src", "sourceAddress"),
    ("start", "startTime"),
    ("suid", "sourceUserId"),
    ("suser", "sourceUserName"),
];

/// How an ECS copy is typed.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Ip,
    Port,
    Long,
    Lower,
}

/// Full CEF names copied to ECS fields.
const ECS: &[(&str, &str, Kind)] = &[
    ("sourceAddress", "source.ip", Kind::Ip),
    ("sourcePort", "source.port", Kind::Port),
    ("sourceMacAddress", "source.mac", Kind::Text),
    ("sourceHostName", "source.domain", Kind::Text),
    ("sourceUserName", "source.user.name", Kind::Text),
    ("sourceUserId", "source.user.id", Kind::Text),
    ("sourceProcessName", "process.name", Kind::Text),
    ("sourceProcessId", "process.pid", Kind::Long),
    ("bytesIn", "source.bytes", Kind::Long),
    ("destinationAddress", "destination.ip", Kind::Ip),
    ("destinationPort", "destination.port", Kind::Port),
    ("destinationMacAddress", "destination.mac", Kind::Text),
    ("destinationHostName", "destination.domain", Kind::Text),
    ("destinationUserName", "destination.user.name", Kind::Text),
    ("destinationUserId", "destination.user.id", Kind::Text),
    ("bytesOut", "destination.bytes", Kind::Long),
    ("deviceAction", "event.action", Kind::Text),
    ("deviceAddress", "observer.ip", Kind::Ip),
    ("deviceHostName", "observer.hostname", Kind::Text),
    ("deviceMacAddress", "observer.mac", Kind::Text),
    ("transportProtocol", "network.transport", Kind::Lower),
    ("applicationProtocol", "network.protocol", Kind::Lower),
    ("filePath", "file.path", Kind::Text),
    ("fileSize", "file.size", Kind::Long),
    ("fileHash", "file.hash", Kind::Text),
    ("requestUrl", "url.original", Kind::Text),
    ("requestMethod", "http.request.method", Kind::Text),
    (
        "requestClientApplication",
        "user_agent.original",
        Kind::Text,
    ),
    ("eventOutcome", "event.outcome", Kind::Text),
];

fn full_name(key: &str) -> &str {
    FULL_NAMES
        .iter()
        .find(|(k, _)| *k == key)
        .map_or(key, |(_, v)| v)
}

fn ecs_value(kind: Kind, v: &str) -> Result<Value, &'static str> {
    Ok(match kind {
        Kind::Text => Value::String(v.to_owned()),
        Kind::Lower => Value::String(v.to_lowercase()),
        Kind::Ip => {
            v.parse::<std::net::IpAddr>()
                .map_err(|_| "value is not a valid IP address")?;
            Value::String(v.to_owned())
        }
        Kind::Port => Value::from(v.parse::<u16>().map_err(|_| "value is not a valid port")?),
        Kind::Long => Value::from(v.parse::<i64>().map_err(|_| "value is not a number")?),
    })
}

impl Processor for DecodeCef {
    fn process(&self, event: &mut Event) -> Verdict {
        let c = &self.cfg;
        let text = match event.get(&c.field) {
            None if c.ignore_missing => return Verdict::Keep,
            None => {
                set_error(
                    event,
                    format!("{}: field `{}` not found", self.name, c.field),
                );
                return Verdict::Keep;
            }
            Some(f) => match f.as_str() {
                Some(s) => s.to_owned(),
                None => {
                    set_error(
                        event,
                        format!("{}: field `{}` is not a string", self.name, c.field),
                    );
                    return Verdict::Keep;
                }
            },
        };
        let (cef, mut errors) = parse::parse(&text);
        if !text.contains("CEF:") {
            if !c.ignore_failure {
                set_error(event, format!("{}: {}", self.name, errors.join("; ")));
            }
            return Verdict::Keep;
        }
        let t = &c.target_field;
        let [vendor, product, version, class, name, severity] = cef.header;
        event.insert(&format!("{t}.version"), Value::from(cef.version));
        event.insert(&format!("{t}.device.vendor"), Value::String(vendor.clone()));
        event.insert(
            &format!("{t}.device.product"),
            Value::String(product.clone()),
        );
        event.insert(
            &format!("{t}.device.version"),
            Value::String(version.clone()),
        );
        event.insert(
            &format!("{t}.device.event_class_id"),
            Value::String(class.clone()),
        );
        event.insert(&format!("{t}.name"), Value::String(name.clone()));
        event.insert(&format!("{t}.severity"), Value::String(severity.clone()));
        for (k, v) in &cef.extensions {
            event.insert(
                &format!("{t}.extensions.{}", full_name(k)),
                Value::String(v.clone()),
            );
        }
        if c.ecs {
            event.insert("observer.vendor", Value::String(vendor));
            event.insert("observer.product", Value::String(product));
            event.insert("observer.version", Value::String(version));
            event.insert("event.code", Value::String(class));
            if let Ok(n) = severity.trim().parse::<i64>() {
                event.insert("event.severity", Value::from(n));
            }
            event.insert("message", Value::String(name));
            for (k, v) in &cef.extensions {
                let full = full_name(k);
                if let Some((_, target, kind)) = ECS.iter().find(|(n, _, _)| *n == full) {
                    match ecs_value(*kind, v) {
                        Ok(val) => event.insert(target, val),
                        Err(why) => errors.push(format!("{full}: {why}")),
                    }
                }
            }
        }
        if !errors.is_empty() && !c.ignore_failure {
            set_error(event, errors.join("; "));
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::testing::*;
    use serde_json::json;

    fn decode(msg: &str) -> serde_json::Value {
        let p = build("processors:\n  - rename:\n      fields:\n        - {from: \"message\", to: \"event.original\"}\n  - decode_cef:\n      field: event.original\n").unwrap();
        json(&run(&p, event(msg)).unwrap())
    }

    /// Filebeat's documentation example configuration, on samples from its golden test file.
    #[test]
    fn filebeat_golden_samples() {
        let v = decode(
            "CEF:0|security|threatmanager|1.0|100|trojan successfully stopped|10|src=10.0.0.192 additional.dotfieldName=new_value ad.Authentification=MICROSOFT_AUTHENTICATION_PACKAGE_V1_0 ad.Error_,Code=3221225578 dst=12.121.122.82 ad.field[0]=field0 ad.foo.name[1]=new_name",
        );
        assert_eq!(
            v["cef"],
            json!({
                "device": {"event_class_id": "100", "product": "threatmanager", "vendor": "security", "version": "1.0"},
                "extensions": {
                    "ad": {"Authentification": "MICROSOFT_AUTHENTICATION_PACKAGE_V1_0", "Error_,Code": "3221225578", "field[0]": "field0", "foo": {"name[1]": "new_name"}},
                    "additional": {"dotfieldName": "new_value"},
                    "destinationAddress": "12.121.122.82",
                    "sourceAddress": "10.0.0.192"
                },
                "name": "trojan successfully stopped", "severity": "10", "version": 0
            })
        );
        assert_eq!(v["destination"], json!({"ip": "12.121.122.82"}));
        assert_eq!(v["source"], json!({"ip": "10.0.0.192"}));
        assert_eq!(v["event"]["code"], "100");
        assert_eq!(v["event"]["severity"], 10);
        assert_eq!(v["message"], "trojan successfully stopped");
        assert_eq!(
            v["observer"],
            json!({"product": "threatmanager", "vendor": "security", "version": "1.0"})
        );
        assert!(v.get("error").is_none());

        let v = decode(
            "CEF:0|Trend Micro|Deep Security Manager|1.2.3|600|User Signed In|3|src=10.52.116.160 suser=admin target=admin msg=User signed in from 2001:db8::5",
        );
        assert_eq!(
            v["cef"]["extensions"],
            json!({"message": "User signed in from 2001:db8::5", "sourceAddress": "10.52.116.160", "sourceUserName": "admin", "target": "admin"})
        );
        assert_eq!(
            v["source"],
            json!({"ip": "10.52.116.160", "user": {"name": "admin"}})
        );

        let v = decode(
            "CEF:0|Trend Micro|Deep Security Agent|1.2.3|20|Log for TCP Port 80|0|cn1=1 cn1Label=Host ID dvc=hostname act=Log dmac=00:50:56:F5:7F:47 smac=00:0C:29:EB:35:DE TrendMicroDsFrameType=IP src=192.168.126.150 dst=72.14.204.147 out=1019 cs3=DF MF cs3Label=Fragmentation Bits proto=TCP spt=49617 dpt=80 cs2=0x00 ACK PSH cs2Label=TCP Flags cnt=1 TrendMicroDsPacketData=AFB",
        );
        assert_eq!(
            v["destination"],
            json!({"bytes": 1019, "ip": "72.14.204.147", "mac": "00:50:56:F5:7F:47", "port": 80})
        );
        assert_eq!(
            v["source"],
            json!({"ip": "192.168.126.150", "mac": "00:0C:29:EB:35:DE", "port": 49617})
        );
        assert_eq!(v["network"], json!({"transport": "tcp"}));
        assert_eq!(v["event"]["action"], "Log");
        assert_eq!(
            v["error"]["message"],
            "deviceAddress: value is not a valid IP address"
        );
        assert_eq!(v["cef"]["extensions"]["deviceCustomString3"], "DF MF");
        assert_eq!(v["cef"]["extensions"]["baseEventCount"], "1");
        assert!(v["observer"].get("ip").is_none());

        let v = decode(
            "CEF:0|Trend Micro|Deep Security Agent|10.2.229|6001200|AppControl detectOnly|6|cn1=202 cn1Label=Host ID dvc=192.168.33.128 TrendMicroDsTenant=Primary TrendMicroDsTenantId=0 fileHash=80D4AC182F97D2AB48EE4310AC51DA5974167C596D133D64A83107B9069745E0 suser=root suid=0 act=detectOnly filePath=/home/user1/Desktop/Directory1//heartbeatSync.sh fsize=20 aggregationType=0 repeatCount=1 cs1=notWhitelisted cs1Label=actionReason cs2=0CC9713BA896193A527213D9C94892D41797EB7C cs2Label=sha1 cs3=7EA8EF10BEB2E9876D4D7F7E5A46CF8D cs3Label=md5",
        );
        assert_eq!(
            v["file"]["path"],
            "/home/user1/Desktop/Directory1//heartbeatSync.sh"
        );
        assert_eq!(v["file"]["size"], 20);
        assert_eq!(v["observer"]["ip"], "192.168.33.128");
        assert_eq!(v["source"]["user"], json!({"id": "0", "name": "root"}));
    }

    #[test]
    fn options_and_errors() {
        let p = build("processors: [{decode_cef: {target_field: c, ecs: false}}]").unwrap();
        let v = json(&run(&p, event("CEF:1|v|p|1|2|n|3|src=1.2.3.4")).unwrap());
        assert_eq!(v["c"]["extensions"]["sourceAddress"], "1.2.3.4");
        assert!(v.get("source").is_none());
        assert_eq!(
            v["message"], "CEF:1|v|p|1|2|n|3|src=1.2.3.4",
            "without ecs the message stays"
        );
        let v = json(&run(&p, event("not cef")).unwrap());
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("`CEF:` not found"),
            "{v}"
        );
        assert!(v.get("c").is_none());
        let p = build("processors: [{decode_cef: {ignore_failure: true, id: x}}]").unwrap();
        assert!(
            json(&run(&p, event("not cef")).unwrap())
                .get("error")
                .is_none()
        );
        let p = build("processors: [{decode_cef: {field: nope, id: x}}]").unwrap();
        assert_eq!(
            json(&run(&p, event("m")).unwrap())["error"]["message"],
            "decode_cef x: field `nope` not found"
        );
        let p = build("processors: [{decode_cef: {field: nope, ignore_missing: true}}]").unwrap();
        assert!(json(&run(&p, event("m")).unwrap()).get("error").is_none());
    }
}
