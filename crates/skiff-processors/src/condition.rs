//! Beats conditions: the `when:` of a processor, and the `when:` of output routing rules
//! (Elasticsearch `indices`, Kafka `topics`, Redis `keys`).
//!
//! ```yaml
//! when:
//!   or:
//!     - equals: {http.response.code: 200}
//!     - and:
//!         - contains: {message: "error"}
//!         - not.regexp: {message: "^DEBUG"}
//!     - range: {http.response.code: {gte: 400, lt: 500}}
//!     - has_fields: ["user.id"]
//! ```
//!
//! As in libbeat: `equals` compares strings, integers or booleans exactly (a number does not
//! equal the string of its digits); `contains` and `regexp` apply to string fields (and to each
//! string of a list of strings: any may match) — `regexp` searches, it is not anchored; `range`
//! takes `gt`/`gte`/`lt`/`lte` on numeric fields; several fields under one of these must all
//! match. A missing field never matches (so `not` of it does).
//!
//! Field names are dotted paths. The configuration loader turns `a.b: 1` into `a: {b: 1}`, so a
//! condition's nested maps are flattened back into paths here.
//!
//! Differences, for clear errors: a condition map with several operators (libbeat silently uses
//! one of them) is an error asking for `and`.
//!
//! `network` matches an address field against named ranges, CIDRs or addresses (one or a list:
//! `network: {source.ip: [private, 203.0.113.0/24]}`; see [`crate::network`]).

use regex::Regex;

use crate::network::{Range, any_contains};
use skiff_config::{ConfigError, ConfigErrors, Node, NodeValue};
use skiff_event::{Event, FieldRef, Value};

/// A compiled condition.
#[derive(Debug, Clone)]
pub struct Condition(Op);

#[derive(Debug, Clone)]
enum Op {
    Equals(Vec<(String, Scalar)>),
    Contains(Vec<(String, String)>),
    Regexp(Vec<(String, Regex)>),
    Range(Vec<(String, Bounds)>),
    HasFields(Vec<String>),
    Network(Vec<(String, Vec<Range>)>),
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
}

#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    Str(String),
    Int(i64),
    Bool(bool),
}

#[derive(Debug, Clone, Default)]
struct Bounds {
    gt: Option<f64>,
    gte: Option<f64>,
    lt: Option<f64>,
    lte: Option<f64>,
}

/// The operators, for "did you mean".
const OPERATORS: &[&str] = &[
    "equals",
    "contains",
    "regexp",
    "range",
    "has_fields",
    "network",
    "and",
    "or",
    "not",
];

fn err(node: &Node, msg: impl Into<String>) -> ConfigError {
    ConfigError::new(node.path.clone(), node.mark.clone(), msg)
}

impl Condition {
    /// Builds a condition from its node (the value of a `when:` key): a map with exactly one
    /// operator. Every problem is reported with its key path and line.
    pub fn build(node: &Node) -> Result<Condition, ConfigErrors> {
        let entries = match &node.value {
            NodeValue::Map(e) => e,
            other => {
                return Err(err(
                    node,
                    format!(
                        "a condition is a map like `equals: {{field: value}}`, found {}",
                        other.describe()
                    ),
                )
                .into());
            }
        };
        let [(op, arg)] = entries.as_slice() else {
            let names: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
            return Err(err(
                node,
                if names.is_empty() {
                    "the condition is empty: give one operator, like `equals: {field: value}`"
                        .to_owned()
                } else {
                    format!(
                        "a condition has exactly one operator, found {}: combine them with `and: [...]` or `or: [...]`",
                        names.join(", ")
                    )
                },
            )
            .into());
        };
        let op = match op.as_str() {
            "equals" => Op::Equals(
                leaves(arg)?
                    .into_iter()
                    .map(|(path, n)| {
                        let v = match &n.value {
                            NodeValue::String(s) => Scalar::Str(s.clone()),
                            NodeValue::Int(i) => Scalar::Int(*i),
                            NodeValue::Bool(b) => Scalar::Bool(*b),
                            other => {
                                return Err(err(
                                    n,
                                    format!(
                                        "`equals` compares with a string, an integer or a boolean, found {}",
                                        other.describe()
                                    ),
                                ));
                            }
                        };
                        Ok((path, v))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            "contains" => Op::Contains(
                leaves(arg)?
                    .into_iter()
                    .map(|(path, n)| string_of(n, "contains").map(|s| (path, s)))
                    .collect::<Result<_, _>>()?,
            ),
            "regexp" => Op::Regexp(
                leaves(arg)?
                    .into_iter()
                    .map(|(path, n)| {
                        let s = string_of(n, "regexp")?;
                        Regex::new(&s)
                            .map(|r| (path, r))
                            .map_err(|e| err(n, format!("invalid regular expression: {e}")))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            "range" => Op::Range(range(arg)?),
            "has_fields" => {
                let items = match &arg.value {
                    NodeValue::Seq(items) => items,
                    _ => {
                        return Err(err(arg, "`has_fields` takes a list of field names, like `has_fields: [user.id]`").into());
                    }
                };
                Op::HasFields(
                    items
                        .iter()
                        .map(|n| string_of(n, "has_fields"))
                        .collect::<Result<_, _>>()?,
                )
            }
            "and" | "or" => {
                let items = match &arg.value {
                    NodeValue::Seq(items) if !items.is_empty() => items,
                    _ => {
                        return Err(err(arg, format!("`{op}` takes a list of conditions, like `{op}: [{{equals: {{a: 1}}}}, {{has_fields: [b]}}]`")).into());
                    }
                };
                let mut conds = Vec::new();
                let mut errors = Vec::new();
                for item in items {
                    match Condition::build(item) {
                        Ok(c) => conds.push(c),
                        Err(e) => errors.extend(e),
                    }
                }
                ConfigErrors(errors).into_result()?;
                if op == "and" {
                    Op::And(conds)
                } else {
                    Op::Or(conds)
                }
            }
            "not" => Op::Not(Box::new(Condition::build(arg)?)),
            "network" => Op::Network(
                leaves(arg)?
                    .into_iter()
                    .map(|(path, n)| {
                        let names: Vec<String> = match &n.value {
                            NodeValue::Seq(items) => items
                                .iter()
                                .map(|i| string_of(i, "network"))
                                .collect::<Result<_, _>>()?,
                            _ => vec![string_of(n, "network")?],
                        };
                        let ranges = names
                            .iter()
                            .map(|s| Range::parse(s))
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(|e| err(n, e))?;
                        Ok((path, ranges))
                    })
                    .collect::<Result<_, ConfigError>>()?,
            ),
            other => {
                return Err(ConfigError::new(
                    arg.path.clone(),
                    arg.mark.clone(),
                    format!("unknown condition `{other}`; conditions are {}", OPERATORS.join(", ")),
                )
                .with_suggestion(skiff_config::suggest(other, OPERATORS))
                .into());
            }
        };
        Ok(Condition(op))
    }

    /// Whether `event` satisfies the condition.
    pub fn matches(&self, event: &Event) -> bool {
        match &self.0 {
            Op::Equals(list) => list
                .iter()
                .all(|(path, want)| event.get(path).is_some_and(|f| equals(f, want))),
            Op::Contains(list) => list.iter().all(|(path, needle)| {
                event
                    .get(path)
                    .is_some_and(|f| any_str(f, |s| s.contains(needle.as_str())))
            }),
            Op::Regexp(list) => list.iter().all(|(path, re)| {
                event
                    .get(path)
                    .is_some_and(|f| any_str(f, |s| re.is_match(s)))
            }),
            Op::Range(list) => list.iter().all(|(path, b)| {
                event
                    .get(path)
                    .and_then(|f| number(f))
                    .is_some_and(|x| b.contains(x))
            }),
            Op::HasFields(list) => list.iter().all(|path| event.get(path).is_some()),
            Op::Network(list) => list.iter().all(|(path, ranges)| {
                event.get(path).is_some_and(|f| {
                    any_str(f, |s| {
                        s.parse::<std::net::IpAddr>()
                            .is_ok_and(|ip| any_contains(ranges, ip))
                    })
                })
            }),
            Op::And(list) => list.iter().all(|c| c.matches(event)),
            Op::Or(list) => list.iter().any(|c| c.matches(event)),
            Op::Not(c) => !c.matches(event),
        }
    }
}

impl Bounds {
    fn contains(&self, x: f64) -> bool {
        self.gt.is_none_or(|b| x > b)
            && self.gte.is_none_or(|b| x >= b)
            && self.lt.is_none_or(|b| x < b)
            && self.lte.is_none_or(|b| x <= b)
    }
}

fn equals(f: FieldRef<'_>, want: &Scalar) -> bool {
    match (f, want) {
        (FieldRef::Str(s), Scalar::Str(w)) => s == w,
        (FieldRef::U64(n), Scalar::Int(w)) => i64::try_from(n).is_ok_and(|n| n == *w),
        (FieldRef::Value(Value::String(s)), Scalar::Str(w)) => s == w,
        (FieldRef::Value(Value::Number(n)), Scalar::Int(w)) => {
            n.as_i64() == Some(*w) || n.as_f64() == Some(*w as f64)
        }
        (FieldRef::Value(Value::Bool(b)), Scalar::Bool(w)) => b == w,
        _ => false,
    }
}

fn any_str(f: FieldRef<'_>, test: impl Fn(&str) -> bool) -> bool {
    match f {
        FieldRef::Str(s) => test(s),
        FieldRef::Value(Value::String(s)) => test(s),
        FieldRef::Value(Value::Array(items)) => items.iter().any(|v| v.as_str().is_some_and(&test)),
        _ => false,
    }
}

fn number(f: FieldRef<'_>) -> Option<f64> {
    match f {
        FieldRef::U64(n) => Some(n as f64),
        FieldRef::Value(Value::Number(n)) => n.as_f64(),
        _ => None,
    }
}

fn string_of(n: &Node, op: &str) -> Result<String, ConfigError> {
    match &n.value {
        NodeValue::String(s) => Ok(s.clone()),
        NodeValue::Int(i) => Ok(i.to_string()),
        NodeValue::Float(f) => Ok(f.to_string()),
        NodeValue::Bool(b) => Ok(b.to_string()),
        other => Err(err(
            n,
            format!("`{op}` needs text here, found {}", other.describe()),
        )),
    }
}

/// `{a: {b: 1}, c: x}` as `[("a.b", 1), ("c", x)]`.
fn leaves(node: &Node) -> Result<Vec<(String, &Node)>, ConfigError> {
    fn walk<'a>(prefix: &str, node: &'a Node, out: &mut Vec<(String, &'a Node)>) {
        for (k, v) in node.entries() {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match &v.value {
                NodeValue::Map(e) if !e.is_empty() => walk(&path, v, out),
                _ => out.push((path, v)),
            }
        }
    }
    if !matches!(&node.value, NodeValue::Map(e) if !e.is_empty()) {
        return Err(err(
            node,
            "give at least one `field: value` pair, like `{message: error}`",
        ));
    }
    let mut out = Vec::new();
    walk("", node, &mut out);
    Ok(out)
}

/// `range`: maps whose keys are `gt`/`gte`/`lt`/`lte` end a field path.
fn range(node: &Node) -> Result<Vec<(String, Bounds)>, ConfigError> {
    const KEYS: &[&str] = &["gt", "gte", "lt", "lte"];
    let mut out: Vec<(String, Bounds)> = Vec::new();
    for (path, leaf) in leaves(node)? {
        let Some((field, key)) = path.rsplit_once('.') else {
            return Err(err(
                leaf,
                format!("`range` needs bounds: write `{path}: {{gte: 1, lt: 10}}`"),
            ));
        };
        if !KEYS.contains(&key) {
            return Err(ConfigError::new(
                leaf.path.clone(),
                leaf.mark.clone(),
                format!("`{key}` is not a range bound: use gt, gte, lt or lte"),
            )
            .with_suggestion(skiff_config::suggest(key, KEYS)));
        }
        let x = match &leaf.value {
            NodeValue::Int(i) => *i as f64,
            NodeValue::Float(f) => *f,
            other => {
                return Err(err(
                    leaf,
                    format!("a range bound is a number, found {}", other.describe()),
                ));
            }
        };
        let idx = match out.iter().position(|(f, _)| f == field) {
            Some(i) => i,
            None => {
                out.push((field.to_owned(), Bounds::default()));
                out.len() - 1
            }
        };
        let b = &mut out[idx].1;
        match key {
            "gt" => b.gt = Some(x),
            "gte" => b.gte = Some(x),
            "lt" => b.lt = Some(x),
            _ => b.lte = Some(x),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use skiff_event::Map;
    use std::sync::Arc;

    fn cond(yaml: &str) -> Result<Condition, ConfigErrors> {
        let root = skiff_config::parse_str(yaml, Some("t.yml")).unwrap();
        Condition::build(root.get("when").unwrap())
    }

    fn event() -> Event {
        let shared = json!({"tags": ["forwarded", "web"], "host": {"name": "web-1"}});
        let mut e = Event::new(
            Arc::new(shared.as_object().unwrap().clone()),
            "GET /index.html 404".into(),
        );
        e.offset = Some(120);
        e.insert("http.response.code", json!(404));
        e.insert("http.response.ok", json!(false));
        e.insert("duration", json!(1.5));
        e.insert("status", json!("404"));
        e
    }

    /// libbeat's documentation examples of `network`.
    #[test]
    fn network() {
        let mut e = event();
        e.insert("source.ip", json!("192.168.1.7"));
        e.insert("destination.ip", json!("8.8.8.8"));
        let cases: &[(&str, bool)] = &[
            ("when.network.source.ip: private", true),
            ("when.network.destination.ip: private", false),
            ("when.network.destination.ip: '8.8.8.8'", true),
            (
                "when.network: {source.ip: ['10.0.0.0/8', '192.168.0.0/16'], destination.ip: public}",
                true,
            ),
            ("when.network: {source.ip: loopback}", false),
            ("when.network: {status: private}", false),
            ("when.network: {nope: private}", false),
            ("when.not.network.source.ip: public", true),
        ];
        for (yaml, want) in cases {
            let c = cond(yaml).unwrap_or_else(|err| panic!("{yaml}: {err}"));
            assert_eq!(c.matches(&e), *want, "{yaml}");
        }
    }

    #[test]
    fn table() {
        let cases: &[(&str, bool)] = &[
            ("when.equals.http.response.code: 404", true),
            ("when.equals.http.response.code: 200", false),
            ("when.equals: {http.response.code: '404'}", false),
            ("when.equals: {status: '404'}", true),
            ("when.equals: {status: 404}", false),
            ("when.equals: {http.response.ok: false}", true),
            (
                "when.equals: {host.name: web-1, http.response.code: 404}",
                true,
            ),
            (
                "when.equals: {host.name: web-1, http.response.code: 500}",
                false,
            ),
            ("when.equals: {missing: x}", false),
            ("when.equals: {log.offset: 120}", true),
            ("when.contains: {message: index}", true),
            ("when.contains: {message: INDEX}", false),
            ("when.contains: {tags: forward}", true),
            ("when.contains: {tags: mail}", false),
            ("when.regexp: {message: '^GET .* 4\\d\\d$'}", true),
            ("when.regexp: {message: 'index'}", true),
            ("when.regexp: {message: '^index'}", false),
            ("when.regexp: {tags: '^w'}", true),
            (
                "when.range: {http.response.code: {gte: 400, lt: 500}}",
                true,
            ),
            (
                "when.range: {http.response.code.gte: 400, http.response.code.lt: 404}",
                false,
            ),
            ("when.range: {duration: {gt: 1, lte: 1.5}}", true),
            ("when.range: {status: {gte: 0}}", false),
            ("when.range: {log.offset: {lt: 121}}", true),
            ("when.has_fields: [http.response.code, host.name]", true),
            ("when.has_fields: [http.response.code, nope]", false),
            ("when.not.has_fields: [nope]", true),
            ("when.not.contains.tags: forwarded", false),
            (
                "when.or: [{equals: {status: x}}, {contains: {message: GET}}]",
                true,
            ),
            (
                "when.or: [{equals: {status: x}}, {contains: {message: PUT}}]",
                false,
            ),
            (
                "when.and: [{equals: {status: '404'}}, {contains: {message: GET}}]",
                true,
            ),
            (
                "when.and: [{equals: {status: '404'}}, {not: {contains: {message: GET}}}]",
                false,
            ),
        ];
        let e = event();
        for (yaml, want) in cases {
            let c = cond(yaml).unwrap_or_else(|err| panic!("{yaml}: {err}"));
            assert_eq!(c.matches(&e), *want, "{yaml}");
        }
        let _ = Map::new();
    }

    #[test]
    fn errors() {
        let cases: &[(&str, &str)] = &[
            ("when.equal: {a: 1}", "did you mean `equals`"),
            ("when: {equals: {a: 1}, contains: {b: x}}", "and: [...]"),
            ("when.regexp: {a: '('}", "invalid regular expression"),
            ("when.range: {a: {gtt: 1}}", "did you mean `gt`"),
            ("when.range: {a: 1}", "needs bounds"),
            ("when.network: {source.ip: intranet}", "is not a network"),
            ("when.and: []", "list of conditions"),
            ("when.equals: {a: [1]}", "string, an integer or a boolean"),
            ("when: x", "a condition is a map"),
            ("when.has_fields: a", "list of field names"),
        ];
        for (yaml, want) in cases {
            let e = cond(yaml).err().unwrap_or_else(|| panic!("{yaml} built"));
            assert!(e.to_string().contains(want), "{yaml}: {e}");
        }
        let e = cond("when.or: [{equals: {a: 1}}, {bogus: {}}]").unwrap_err();
        assert!(e.to_string().contains("when.or.1.bogus"), "{e}");
    }
}
