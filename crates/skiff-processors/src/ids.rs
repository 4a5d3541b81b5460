//! `fingerprint` and `add_id` (libbeat's): a hash of chosen fields, and a unique document id.
//!
//! `fingerprint` hashes `|field|value` for each field in sorted order, then `|`, as libbeat
//! does (values written as Go's `%v` writes them: times in UTC as
//! `2006-01-02 15:04:05.999999999 +0000 UTC`); an object or list value is an error.
//! `add_id` writes Elasticsearch-style time-based ids (20 URL-safe base64 characters, the
//! layout of Elasticsearch's `TimeBasedUUIDGenerator`), so documents sort by time of creation
//! and a retried bulk request does not duplicate them.

use std::sync::Mutex;

use data_encoding::{BASE32, BASE64, BASE64URL_NOPAD, HEXLOWER};
use md5::Md5;
use serde::Deserialize;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};
use skiff_config::{ConfigErrors, Node};
use skiff_event::{Event, FieldRef, Value};
use skiff_pipeline::{BuildContext, Processor, Verdict};

use crate::fields::OneOrMany;
use crate::{plugin, set_error};

plugin!(FINGERPRINT, "fingerprint", build_fingerprint);
plugin!(ADD_ID, "add_id", build_add_id);

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Method {
    Md5,
    Sha1,
    #[default]
    Sha256,
    Sha384,
    Sha512,
    Xxhash,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Encoding {
    #[default]
    Hex,
    Base32,
    Base64,
}

/// `fingerprint`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FingerprintConfig {
    /// `fields`: the fields to hash (order does not matter). Required.
    fields: OneOrMany,
    /// `target_field`: where the hash goes. Default `fingerprint`.
    #[serde(default = "fingerprint")]
    target_field: String,
    /// `method`: md5, sha1, sha256, sha384, sha512 or xxhash. Default sha256.
    #[serde(default)]
    method: Method,
    /// `encoding`: hex, base32 or base64. Default hex.
    #[serde(default)]
    encoding: Encoding,
    /// `ignore_missing`: skip missing fields instead of failing. Default false.
    #[serde(default)]
    ignore_missing: bool,
}

fn fingerprint() -> String {
    "fingerprint".into()
}

struct Fingerprint {
    cfg: FingerprintConfig,
    fields: Vec<String>,
}

fn build_fingerprint(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    let mut cfg: FingerprintConfig = node.deserialize()?;
    let mut fields = std::mem::replace(&mut cfg.fields, OneOrMany::Many(vec![])).into_vec();
    fields.sort();
    fields.dedup();
    Ok(Box::new(Fingerprint { cfg, fields }))
}

/// A scalar as Go's `%v` prints it.
fn go_format(f: &FieldRef<'_>) -> Option<String> {
    Some(match f {
        FieldRef::Str(s) => (*s).to_owned(),
        FieldRef::U64(n) => n.to_string(),
        FieldRef::Timestamp(t) => {
            let c = t.to_chrono();
            let frac = c.format("%.9f").to_string();
            let frac = frac.trim_end_matches('0');
            let frac = if frac == "." { "" } else { frac };
            format!("{}{frac} +0000 UTC", c.format("%Y-%m-%d %H:%M:%S"))
        }
        FieldRef::Value(v) => match v {
            Value::String(s) => s.clone(),
            Value::Null => "<nil>".into(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => i.to_string(),
                (_, Some(u), _) => u.to_string(),
                (_, _, Some(x)) => go_float(x),
                _ => n.to_string(),
            },
            Value::Array(_) | Value::Object(_) => return None,
        },
    })
}

/// Go's `%v` of a float64 (`strconv.FormatFloat(x, 'g', -1, 64)`): shortest digits, exponent
/// form when the exponent is < -4 or >= 21.
fn go_float(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let exp = x.abs().log10().floor() as i32;
    if (-4..21).contains(&exp) {
        format!("{x}")
    } else {
        let s = format!("{x:e}");
        match s.split_once('e') {
            Some((m, e)) => {
                let (sign, digits) = e.strip_prefix('-').map_or(("+", e), |d| ("-", d));
                format!("{m}e{sign}{digits:0>2}")
            }
            None => s,
        }
    }
}

fn digest<D: Digest>(data: &[u8]) -> Vec<u8> {
    D::digest(data).to_vec()
}

impl Processor for Fingerprint {
    fn process(&self, event: &mut Event) -> Verdict {
        let mut text = String::new();
        for k in &self.fields {
            let Some(f) = event.get(k) else {
                if self.cfg.ignore_missing {
                    continue;
                }
                set_error(
                    event,
                    format!("fingerprint: failed to find field [{k}] in event"),
                );
                return Verdict::Keep;
            };
            let Some(v) = go_format(&f) else {
                set_error(
                    event,
                    format!("fingerprint: cannot compute fingerprint using non-scalar field [{k}]"),
                );
                return Verdict::Keep;
            };
            text.push('|');
            text.push_str(k);
            text.push('|');
            text.push_str(&v);
        }
        text.push('|');
        let data = text.as_bytes();
        let hash = match self.cfg.method {
            Method::Md5 => digest::<Md5>(data),
            Method::Sha1 => digest::<Sha1>(data),
            Method::Sha256 => digest::<Sha256>(data),
            Method::Sha384 => digest::<Sha384>(data),
            Method::Sha512 => digest::<Sha512>(data),
            Method::Xxhash => xxhash_rust::xxh64::xxh64(data, 0).to_be_bytes().to_vec(),
        };
        let out = match self.cfg.encoding {
            Encoding::Hex => HEXLOWER.encode(&hash),
            Encoding::Base32 => BASE32.encode(&hash),
            Encoding::Base64 => BASE64.encode(&hash),
        };
        event.remove(&self.cfg.target_field);
        event.insert(&self.cfg.target_field, Value::String(out));
        Verdict::Keep
    }
}

// ---------------------------------------------------------------------------------------------

/// `add_id`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddIdConfig {
    /// `target_field`: where the id goes. Default `@metadata._id`.
    #[serde(default = "meta_id")]
    target_field: String,
    /// `type`: the id generator; only `elasticsearch`. Default elasticsearch.
    #[serde(default = "elasticsearch", rename = "type")]
    kind: String,
}

fn meta_id() -> String {
    "@metadata._id".into()
}
fn elasticsearch() -> String {
    "elasticsearch".into()
}

/// Elasticsearch's time-based id generator: a millisecond clock that never goes back, a
/// sequence number, and a random 6-byte node id (Elasticsearch uses the MAC address or random
/// bytes; random keeps hosts' ids apart without reading interfaces).
struct IdGen {
    node: [u8; 6],
    /// (last timestamp in ms, sequence).
    state: Mutex<(u64, u32)>,
}

impl IdGen {
    fn new() -> IdGen {
        let node: [u8; 6] = rand::random();
        IdGen {
            node,
            state: Mutex::new((0, rand::random::<u32>() & 0xff_ffff)),
        }
    }

    fn next(&self) -> String {
        let now = u64::try_from(skiff_event::Timestamp::now().as_millis()).unwrap_or(0);
        let (ts, seq) = match self.state.lock() {
            Ok(mut s) => {
                s.1 = (s.1 + 1) & 0xff_ffff;
                // Same or earlier millisecond: keep the last time; a wrapped sequence moves it on.
                s.0 = if now > s.0 {
                    now
                } else if s.1 == 0 {
                    s.0 + 1
                } else {
                    s.0
                };
                *s
            }
            Err(_) => (now, rand::random::<u32>() & 0xff_ffff),
        };
        let mut b = [0u8; 15];
        b[0] = seq as u8;
        b[1] = (seq >> 16) as u8;
        b[2] = (ts >> 16) as u8;
        b[3] = (ts >> 24) as u8;
        b[4] = (ts >> 32) as u8;
        b[5] = (ts >> 40) as u8;
        b[6..12].copy_from_slice(&self.node);
        b[12] = (ts >> 8) as u8;
        b[13] = (seq >> 8) as u8;
        b[14] = ts as u8;
        BASE64URL_NOPAD.encode(&b)
    }
}

struct AddId {
    target: String,
    ids: IdGen,
}

fn build_add_id(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    let cfg: AddIdConfig = node.deserialize()?;
    if cfg.kind != "elasticsearch" {
        return Err(crate::error_at(
            node.get("type").unwrap_or(node),
            format!("id type `{}` is not known; use `elasticsearch`", cfg.kind),
        )
        .into());
    }
    Ok(Box::new(AddId {
        target: cfg.target_field,
        ids: IdGen::new(),
    }))
}

impl Processor for AddId {
    fn process(&self, event: &mut Event) -> Verdict {
        event.insert(&self.target, Value::String(self.ids.next()));
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::testing::*;
    use serde_json::json;

    fn fp(yaml: &str, fields: serde_json::Value) -> serde_json::Value {
        let p = build(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
        let mut ev = event("m");
        for (k, v) in fields.as_object().unwrap() {
            ev.insert(k, v.clone());
        }
        json(&run(&p, ev).unwrap())
    }

    /// Expected values computed independently (Python's hashlib and base64) over libbeat's
    /// input format `|field1|foo|field2|bar|` (fields sorted, whatever the configured order).
    #[test]
    fn fingerprint_table() {
        let f = json!({"field2": "bar", "field1": "foo"});
        let cases = [
            ("md5", "hex", "4c45df4792f3ef850c928ec5f5232538"),
            ("sha1", "hex", "22f76427d626516d3f7a05785165b99617683b22"),
            (
                "sha256",
                "hex",
                "1208288932231e313b369bae587ff574cd3016a408e52e7128d7bee752674003",
            ),
            (
                "sha256",
                "base32",
                "CIECRCJSEMPDCOZWTOXFQ77VOTGTAFVEBDSS44JI267OOUTHIABQ====",
            ),
            (
                "sha256",
                "base64",
                "EggoiTIjHjE7NpuuWH/1dM0wFqQI5S5xKNe+51JnQAM=",
            ),
            (
                "sha384",
                "base64",
                "KVrf4LwDkIlI5LC2pU9EF2eGfkJt2lkEMEWcihR/u6JCo4y6KCre54M1ueCId7hs",
            ),
            (
                "sha512",
                "hex",
                "f50ad51b63c92a0ed0c910527119b81806f3110f0afaa1dcb93506a78371ea761e50c0fc09b08c441d832dd2da1b45e5d8361adfb240e1fffc2695122a23e183",
            ),
        ];
        for (method, enc, want) in cases {
            let v = fp(
                &format!(
                    "processors: [{{fingerprint: {{fields: [field2, field1], method: {method}, encoding: {enc}}}}}]"
                ),
                f.clone(),
            );
            assert_eq!(v["fingerprint"], want, "{method} {enc}");
        }
        let a = fp(
            "processors: [{fingerprint: {fields: [field1], method: xxhash}}]",
            f.clone(),
        );
        let b = fp(
            "processors: [{fingerprint: {fields: [field2], method: xxhash}}]",
            f.clone(),
        );
        assert_eq!(a["fingerprint"].as_str().unwrap().len(), 16);
        assert_ne!(a["fingerprint"], b["fingerprint"]);
        // Times as Go prints them in UTC, numbers as Go's %v (sha256 of
        // `|@timestamp|2017-10-27 18:21:04.7 +0000 UTC|message|m|n|1.5|`).
        let p = build("processors: [{fingerprint: {fields: [n, message, '@timestamp'], target_field: event.hash}}]").unwrap();
        let mut ev = event("m");
        ev.timestamp = skiff_event::Timestamp::parse("2017-10-27T18:21:04.700Z").unwrap();
        ev.insert("n", json!(1.5));
        assert_eq!(
            json(&run(&p, ev).unwrap())["event"]["hash"],
            "fb6a0c1778c8bf2c395156f198101aeff64d2fa0c4f2701eaa1a8a4352f765e0"
        );
        // Missing and non-scalar fields.
        let v = fp("processors: [{fingerprint: {fields: [nope]}}]", json!({}));
        assert_eq!(
            v["error"]["message"],
            "fingerprint: failed to find field [nope] in event"
        );
        let v = fp(
            "processors: [{fingerprint: {fields: [nope, field1], ignore_missing: true}}]",
            f.clone(),
        );
        assert_eq!(v["fingerprint"].as_str().unwrap().len(), 64);
        let v = fp("processors: [{fingerprint: {fields: [host]}}]", json!({}));
        assert_eq!(
            v["error"]["message"],
            "fingerprint: cannot compute fingerprint using non-scalar field [host]"
        );
        assert_eq!(super::go_float(1e21), "1e+21");
        assert_eq!(super::go_float(0.00001), "1e-05");
        assert_eq!(super::go_float(123456.5), "123456.5");
    }

    #[test]
    fn add_id_makes_unique_time_ordered_ids() {
        let p = build("processors: [{add_id: ~}]").unwrap();
        let ids: Vec<String> = (0..1000)
            .map(|_| {
                run(&p, event("m"))
                    .unwrap()
                    .get("@metadata._id")
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert!(
            ids.iter().all(|i| i.len() == 20
                && i.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')),
            "{:?}",
            &ids[..3]
        );
        let mut uniq = ids.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), ids.len());
        let p = build("processors: [{add_id: {target_field: event.id}}]").unwrap();
        assert_eq!(
            json(&run(&p, event("m")).unwrap())["event"]["id"]
                .as_str()
                .unwrap()
                .len(),
            20
        );
        assert!(build("processors: [{add_id: {type: uuid}}]").is_err());
    }
}
