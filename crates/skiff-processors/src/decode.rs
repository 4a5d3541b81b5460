//! Decoders of one field: `decode_base64_field`, `decompress_gzip_field` and `decode_duration`
//! (libbeat's).
//!
//! The first two read `field.from` and write `field.to` (in place when `to` is empty); a
//! missing field is an error unless `ignore_missing`, and with `fail_on_error` (default) an
//! error leaves the event as it was. Decompressed data is capped at 10 MiB ([`GZIP_LIMIT`]):
//! a small hostile field cannot make the processor allocate without bound (Filebeat has no
//! cap); skiff fields are text, so the gzip stream must arrive as a string. `decode_duration` turns a Go duration (`1h2m3.5s`) into a number of `format` units.

use std::io::Read;

use base64::Engine as _;
use serde::Deserialize;
use skiff_config::{ConfigErrors, Node};
use skiff_event::{Event, Value};
use skiff_pipeline::{BuildContext, Processor, Verdict};

use crate::{plugin, set_error, yes};

plugin!(DECODE_BASE64_FIELD, "decode_base64_field", build_base64);
plugin!(DECOMPRESS_GZIP_FIELD, "decompress_gzip_field", build_gzip);
plugin!(DECODE_DURATION, "decode_duration", build_duration);

/// The most bytes `decompress_gzip_field` writes for one field.
pub const GZIP_LIMIT: u64 = 10 << 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FromTo {
    from: String,
    #[serde(default)]
    to: String,
}

/// `decode_base64_field` and `decompress_gzip_field`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OneFieldConfig {
    /// `field`: `{from, to}`; an empty `to` decodes in place. Required.
    field: FromTo,
    /// `ignore_missing`: no error when `from` is missing. Default false.
    #[serde(default)]
    ignore_missing: bool,
    /// `fail_on_error`: on an error leave the event unchanged (otherwise the error is only
    /// recorded, which here comes to the same). Default true.
    #[serde(default = "yes")]
    #[allow(dead_code)]
    fail_on_error: bool,
}

type Decode = fn(&[u8]) -> Result<Vec<u8>, String>;

struct OneField {
    cfg: OneFieldConfig,
    name: &'static str,
    decode: Decode,
}

fn base64_decode(input: &[u8]) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(input)
        .map_err(|e| e.to_string())
}

fn gunzip(input: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut r = flate2::read::GzDecoder::new(input).take(GZIP_LIMIT + 1);
    r.read_to_end(&mut out).map_err(|e| e.to_string())?;
    if out.len() as u64 > GZIP_LIMIT {
        return Err(format!("decompressed data exceeds {GZIP_LIMIT} bytes"));
    }
    Ok(out)
}

fn build_base64(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    Ok(Box::new(OneField {
        cfg: node.deserialize()?,
        name: "decode_base64_field",
        decode: base64_decode,
    }))
}

fn build_gzip(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    Ok(Box::new(OneField {
        cfg: node.deserialize()?,
        name: "decompress_gzip_field",
        decode: gunzip,
    }))
}

impl Processor for OneField {
    fn process(&self, event: &mut Event) -> Verdict {
        let from = &self.cfg.field.from;
        let result = match event.get(from) {
            None if self.cfg.ignore_missing => return Verdict::Keep,
            None => Err(format!("could not fetch value for key: {from}")),
            Some(f) => match f.as_str() {
                None => Err(format!("field {from} is not a string")),
                Some(s) => (self.decode)(s.as_bytes())
                    .map_err(|e| format!("error decoding field {from}: {e}"))
                    .map(|b| String::from_utf8_lossy(&b).into_owned()),
            },
        };
        match result {
            Ok(text) => {
                let to = if self.cfg.field.to.is_empty() {
                    from
                } else {
                    &self.cfg.field.to
                };
                event.remove(to);
                event.insert(to, Value::String(text));
            }
            Err(e) => set_error(event, format!("{}: {e}", self.name)),
        }
        Verdict::Keep
    }
}

// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Unit {
    #[default]
    Milliseconds,
    Seconds,
    Minutes,
    Hours,
}

/// `decode_duration`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DurationConfig {
    /// `field`: the field with a Go duration. Required.
    field: String,
    /// `format`: milliseconds, seconds, minutes or hours. Default milliseconds.
    #[serde(default)]
    format: Unit,
}

struct DecodeDuration(DurationConfig);

fn build_duration(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    Ok(Box::new(DecodeDuration(node.deserialize()?)))
}

impl Processor for DecodeDuration {
    fn process(&self, event: &mut Event) -> Verdict {
        let field = &self.0.field;
        let Some(text) = event.get(field).and_then(|f| f.as_str().map(str::to_owned)) else {
            return Verdict::Keep;
        };
        match skiff_config::Duration::parse(&text) {
            Ok(d) => {
                let secs = d.0.as_secs_f64();
                let n = match self.0.format {
                    Unit::Milliseconds => secs * 1e3,
                    Unit::Seconds => secs,
                    Unit::Minutes => secs / 60.0,
                    Unit::Hours => secs / 3600.0,
                };
                if let Some(num) = serde_json::Number::from_f64(n) {
                    event.insert(field, Value::Number(num));
                }
            }
            Err(e) => set_error(event, format!("decode_duration: `{field}` = `{text}`: {e}")),
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::testing::*;
    use serde_json::json;
    use std::io::Write;

    /// Filebeat's documentation example of `decode_base64_field`.
    #[test]
    fn base64() {
        let doc = "processors:\n  - decode_base64_field:\n      field:\n        from: \"field1\"\n        to: \"field2\"\n      ignore_missing: false\n      fail_on_error: true\n";
        let v = with(doc, "field1", json!("Y29ycmVjdCBkYXRh"));
        assert_eq!(v["field2"], "correct data");
        let v = with(doc, "field1", json!("not base64!"));
        assert!(v.get("field2").is_none());
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("decode_base64_field: error decoding field field1"),
            "{v}"
        );
        let v = with(
            "processors: [{decode_base64_field: {field: {from: a}}}]",
            "a",
            json!("eA=="),
        );
        assert_eq!(v["a"], "x");
        let p = build(doc).unwrap();
        assert_eq!(
            json(&run(&p, event("m")).unwrap())["error"]["message"],
            "decode_base64_field: could not fetch value for key: field1"
        );
    }

    /// `decompress_gzip_field`: skiff fields are UTF-8 text, so gzip data reaches the processor
    /// only as a string whose bytes are the compressed stream; the decoder itself is tested on
    /// raw bytes, the processor on its error path and the size cap.
    #[test]
    fn gzip() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(b"correct data").unwrap();
        let gz = enc.finish().unwrap();
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&gz);
        assert_eq!(super::gunzip(&gz).unwrap(), b"correct data");
        assert!(super::gunzip(b"nope").is_err());
        // A bomb: 11 MiB of zeros compress to a few KiB and are refused.
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![0u8; 11 << 20]).unwrap();
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 64 << 10);
        assert!(super::gunzip(&bomb).unwrap_err().contains("exceeds"));
        // Through the configuration: base64 text is not gzip.
        let doc = "processors:\n  - decompress_gzip_field:\n      field:\n        from: \"field1\"\n        to: \"field2\"\n      ignore_missing: false\n      fail_on_error: true\n";
        let v = with(doc, "field1", json!(b64));
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("decompress_gzip_field: error decoding field field1"),
            "{v}"
        );
    }

    /// Filebeat's documentation example of `decode_duration`.
    #[test]
    fn duration() {
        let doc = "processors:\n  - decode_duration:\n      field: \"app.rpc.cost\"\n      format: \"milliseconds\"\n";
        let v = with(doc, "app.rpc.cost", json!("1h3m5.5s"));
        assert_eq!(v["app"]["rpc"]["cost"], json!(3_785_500.0));
        for (fmt, want) in [("seconds", 90.0), ("minutes", 1.5), ("hours", 0.025)] {
            let v = with(
                &format!("processors: [{{decode_duration: {{field: d, format: {fmt}}}}}]"),
                "d",
                json!("1m30s"),
            );
            assert_eq!(v["d"], json!(want), "{fmt}");
        }
        let v = with(doc, "app.rpc.cost", json!("soon"));
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("decode_duration"),
            "{v}"
        );
    }
}
