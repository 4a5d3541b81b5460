//! `convert`: converts field values to another type, optionally copying or renaming them
//! (libbeat's).
//!
//! ```yaml
//! - convert:
//!     fields:
//!       - {from: src_ip, to: source.ip, type: ip}
//!       - {from: src_port, to: source.port, type: integer}
//!     ignore_missing: true
//!     fail_on_error: false
//! ```
//!
//! Types: `integer` (32-bit), `long`, `float`, `double`, `string`, `boolean`, `ip`; without a
//! type the value is only copied or renamed. Integers are read from strings as Go's
//! `strconv.ParseInt(s, 0, n)` does (`0x1F`, `0o17`, `0b101`, `1_000`); a float converts to an
//! integer by dropping its fraction. `mode: rename` removes `from` when `to` is set.

use serde::Deserialize;
use skiff_config::{ConfigErrors, Node};
use skiff_event::{Event, Value};
use skiff_pipeline::{BuildContext, Processor, Verdict};

use crate::{each_item, plugin, yes};

plugin!(CONVERT, "convert", build);

/// A target type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Type {
    Integer,
    Long,
    Float,
    Double,
    String,
    Boolean,
    Ip,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Conversion {
    /// `from`: the field to convert. Required.
    from: String,
    /// `to`: where the result goes. Default: `from` itself.
    #[serde(default)]
    to: Option<String>,
    /// `type`: the target type. Default: none (copy or rename only).
    #[serde(default, rename = "type")]
    ty: Option<Type>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    #[default]
    Copy,
    Rename,
}

/// `convert`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `fields`: the conversions, in order. Required.
    fields: Vec<Conversion>,
    /// `ignore_missing`: no error when `from` is missing. Default false.
    #[serde(default)]
    ignore_missing: bool,
    /// `fail_on_error`: on an error, undo all conversions. Default true.
    #[serde(default = "yes")]
    fail_on_error: bool,
    /// `mode`: `copy` or `rename`, when `to` is set. Default copy.
    #[serde(default)]
    mode: Mode,
    /// `tag`: a name for this processor in messages. Default none.
    #[serde(default)]
    tag: Option<String>,
}

struct Convert {
    cfg: Config,
    name: String,
}

fn build(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    let cfg: Config = node.deserialize()?;
    let name = cfg
        .tag
        .as_ref()
        .map_or_else(|| "convert".into(), |t| format!("convert {t}"));
    Ok(Box::new(Convert { cfg, name }))
}

/// An integer in decimal or `0x` hex, with an optional sign (libbeat's `strToInt`).
pub(crate) fn parse_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let n = match body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        Some(hex) if !hex.starts_with(['+', '-']) => i128::from_str_radix(hex, 16).ok()?,
        Some(_) => return None,
        None if body.starts_with(['+', '-']) => return None,
        None => body.parse::<i128>().ok()?,
    };
    i64::try_from(if neg { -n } else { n }).ok()
}

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Converts `v` to `ty`, or says why not.
pub(crate) fn convert(v: &Value, ty: Type) -> Result<Value, String> {
    let fail = || format!("unable to convert value [{v}] to {ty:?}");
    let int = |bits32: bool| -> Result<Value, String> {
        let n = match v {
            Value::Number(n) => n.as_i64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && f.abs() < 9.2e18)
                    .map(|f| f as i64)
            }),
            Value::String(s) => parse_int(s),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
        .ok_or_else(fail)?;
        if bits32 {
            i32::try_from(n).map(Value::from).map_err(|_| fail())
        } else {
            Ok(Value::from(n))
        }
    };
    let float = |bits32: bool| -> Result<Value, String> {
        let f = match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.parse::<f64>().ok(),
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            _ => None,
        }
        .ok_or_else(fail)?;
        let f = if bits32 { f64::from(f as f32) } else { f };
        serde_json::Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(fail)
    };
    match ty {
        Type::Integer => int(true),
        Type::Long => int(false),
        Type::Float => float(true),
        Type::Double => float(false),
        Type::String => Ok(Value::String(match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })),
        Type::Boolean => match v {
            Value::Bool(b) => Ok(Value::Bool(*b)),
            Value::String(s) => parse_bool(s).map(Value::Bool).ok_or_else(fail),
            Value::Number(n) => Ok(Value::Bool(n.as_f64().is_some_and(|f| f != 0.0))),
            _ => Err(fail()),
        },
        Type::Ip => match v {
            Value::String(s) if s.parse::<std::net::IpAddr>().is_ok() => Ok(v.clone()),
            _ => Err(fail()),
        },
    }
}

impl Processor for Convert {
    fn process(&self, event: &mut Event) -> Verdict {
        let _ = each_item(
            event,
            &self.name,
            self.cfg.fail_on_error,
            &self.cfg.fields,
            |event, c| {
                let Some(v) = event.get(&c.from).map(|f| f.to_value()) else {
                    return if self.cfg.ignore_missing {
                        Ok(())
                    } else {
                        Err(format!("field [{}] is missing", c.from))
                    };
                };
                let out = match c.ty {
                    Some(ty) => {
                        convert(&v, ty).map_err(|e| format!("{e} in field [{}]", c.from))?
                    }
                    None => v,
                };
                let to = c.to.as_deref().unwrap_or(&c.from);
                if matches!(self.cfg.mode, Mode::Rename) && to != c.from {
                    event.remove(&c.from);
                }
                event.remove(to);
                event.insert(to, out);
                Ok(())
            },
        );
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::{Type, convert};
    use crate::testing::*;
    use serde_json::json;
    use skiff_event::Value;

    #[test]
    fn conversions_table() {
        let cases: &[(Value, Type, Option<Value>)] = &[
            (json!("42"), Type::Integer, Some(json!(42))),
            (json!("0x1F"), Type::Integer, Some(json!(31))),
            (json!("-0x10"), Type::Long, Some(json!(-16))),
            (json!("08"), Type::Integer, Some(json!(8))),
            (json!("1_000"), Type::Integer, None),
            (json!("3000000000"), Type::Integer, None),
            (
                json!("3000000000"),
                Type::Long,
                Some(json!(3_000_000_000i64)),
            ),
            (json!(1.9), Type::Long, Some(json!(1))),
            (json!("x"), Type::Long, None),
            (json!("1.5"), Type::Double, Some(json!(1.5))),
            (json!(2), Type::Float, Some(json!(2.0))),
            (json!(12), Type::String, Some(json!("12"))),
            (json!(true), Type::String, Some(json!("true"))),
            (json!("T"), Type::Boolean, Some(json!(true))),
            (json!("no"), Type::Boolean, None),
            (json!(0), Type::Boolean, Some(json!(false))),
            (json!("10.0.0.1"), Type::Ip, Some(json!("10.0.0.1"))),
            (json!("::1"), Type::Ip, Some(json!("::1"))),
            (json!("10.0.0"), Type::Ip, None),
            (json!({"a": 1}), Type::Long, None),
        ];
        for (v, ty, want) in cases {
            assert_eq!(convert(v, *ty).ok(), *want, "{v} to {ty:?}");
        }
    }

    /// Filebeat's documentation example.
    #[test]
    fn filebeat_doc_example() {
        let p = build(
            "processors:\n  - convert:\n      fields:\n        - {from: \"src_ip\", to: \"source.ip\", type: \"ip\"}\n        - {from: \"src_port\", to: \"source.port\", type: \"integer\"}\n      ignore_missing: true\n      fail_on_error: false\n",
        )
        .unwrap();
        let mut ev = event("m");
        ev.insert("src_ip", json!("192.168.1.1"));
        ev.insert("src_port", json!("8080"));
        let v = json(&run(&p, ev).unwrap());
        assert_eq!(v["source"], json!({"ip": "192.168.1.1", "port": 8080}));
        assert_eq!(v["src_ip"], "192.168.1.1", "copy mode keeps the source");
        // Missing fields are ignored.
        let v = json(&run(&p, event("m")).unwrap());
        assert!(v.get("error").is_none() && v.get("source").is_none());
    }

    #[test]
    fn modes_and_errors() {
        let p = build("processors: [{convert: {mode: rename, fields: [{from: a, to: b, type: long}, {from: c}]}}]").unwrap();
        let mut ev = event("m");
        ev.insert("a", json!("5"));
        ev.insert("c", json!("keep"));
        let v = json(&run(&p, ev).unwrap());
        assert_eq!(
            (v["b"].clone(), v.get("a").is_none(), v["c"].clone()),
            (json!(5), true, json!("keep"))
        );
        // fail_on_error (default): the first error undoes the rest.
        let p = build("processors: [{convert: {tag: t1, fields: [{from: a, type: long}, {from: b, type: long}]}}]").unwrap();
        let mut ev = event("m");
        ev.insert("a", json!("5"));
        ev.insert("b", json!("x"));
        let v = json(&run(&p, ev).unwrap());
        assert_eq!(v["a"], "5");
        assert_eq!(
            v["error"]["message"],
            "convert t1: unable to convert value [\"x\"] to Long in field [b]"
        );
        let p = build("processors: [{convert: {fail_on_error: false, fields: [{from: a, type: long}, {from: nope, type: long}]}}]").unwrap();
        let mut ev = event("m");
        ev.insert("a", json!("5"));
        let v = json(&run(&p, ev).unwrap());
        assert_eq!(v["a"], 5);
        assert_eq!(v["error"]["message"], "convert: field [nope] is missing");
        assert!(build("processors: [{convert: {fields: [{from: a, type: number}]}}]").is_err());
    }
}
