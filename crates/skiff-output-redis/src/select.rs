//! Routing rules: `key`/`keys` (Redis) and `topic`/`topics` (Kafka), with libbeat's `when`
//! conditions.
//!
//! libbeat's outputs choose a destination per event from a list of rules tried in order, then
//! the top-level template:
//!
//! ```yaml
//! key: "logs-%{[fields.app]:other}"
//! keys:
//!   - key: "errors"
//!     when.contains: { message: "ERR" }
//!   - key: "%{[fields.kind]}"
//!     mappings: { nginx: web, haproxy: web }
//!     default: misc
//! ```
//!
//! As in libbeat, a rule whose condition does not match, whose template lacks a field, or whose
//! mapping has no entry falls through to its `default` (if any) and then to the next rule; only
//! the top-level template's missing field is an error for the event.
//!
//! Conditions support `equals`, `contains`, `regexp`, `range`, `has_fields`, `and`, `or`, `not`
//! on event fields (`network` and friends are not needed for routing).
//!
//! This file is shared verbatim by the Redis and Kafka outputs (the Kafka crate includes it by
//! path) so the two cannot drift. The Elasticsearch output has a similar evaluator for
//! `indices`; all three belong in one shared crate once the processors' `when` lands.

use std::collections::BTreeMap;

use serde::Deserialize;
use skiff_config::{ConfigError, Node};
use skiff_event::template::{MissingField, Template};
use skiff_event::{Event, FieldRef, Value};

/// A `when` condition, compiled.
#[derive(Debug)]
pub enum Condition {
    /// `equals: {field: value, ...}`: every field equals its value.
    Equals(Vec<(String, Value)>),
    /// `contains: {field: text, ...}`: every field (a string, or a list of strings) contains text.
    Contains(Vec<(String, String)>),
    /// `regexp: {field: pattern, ...}`: every field matches its pattern.
    Regexp(Vec<(String, regex::Regex)>),
    /// `range: {field: {gte: 1, lt: 5}}`: every field is a number within the bounds.
    Range(Vec<(String, Bounds)>),
    /// `has_fields: [a, b]`: every field exists.
    HasFields(Vec<String>),
    /// `and: [...]`.
    And(Vec<Condition>),
    /// `or: [...]`.
    Or(Vec<Condition>),
    /// `not: {...}`.
    Not(Box<Condition>),
}

/// The bounds of a `range` condition.
#[derive(Debug, Default, Clone, Copy)]
pub struct Bounds {
    /// `gt`: greater than.
    pub gt: Option<f64>,
    /// `gte`: greater than or equal.
    pub gte: Option<f64>,
    /// `lt`: less than.
    pub lt: Option<f64>,
    /// `lte`: less than or equal.
    pub lte: Option<f64>,
}

/// The YAML form of a condition: exactly one key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionConfig {
    equals: Option<BTreeMap<String, Value>>,
    contains: Option<BTreeMap<String, Value>>,
    regexp: Option<BTreeMap<String, Value>>,
    range: Option<BTreeMap<String, Value>>,
    has_fields: Option<Vec<String>>,
    and: Option<Vec<ConditionConfig>>,
    or: Option<Vec<ConditionConfig>>,
    not: Option<Box<ConditionConfig>>,
}

impl Condition {
    /// Reads and compiles the condition written at `node` (the value of a `when` key).
    pub fn from_node(node: &Node) -> Result<Condition, ConfigError> {
        let cfg: ConditionConfig = node.deserialize()?;
        compile(cfg, node)
    }

    /// Whether the event satisfies the condition.
    pub fn matches(&self, ev: &Event) -> bool {
        match self {
            Condition::Equals(pairs) => pairs.iter().all(|(f, want)| equals(ev.get(f), want)),
            Condition::Contains(pairs) => pairs
                .iter()
                .all(|(f, s)| any_str(ev.get(f), |v| v.contains(s.as_str()))),
            Condition::Regexp(pairs) => pairs
                .iter()
                .all(|(f, re)| any_str(ev.get(f), |v| re.is_match(v))),
            Condition::Range(pairs) => pairs.iter().all(|(f, b)| {
                number(ev.get(f)).is_some_and(|x| {
                    b.gt.is_none_or(|v| x > v)
                        && b.gte.is_none_or(|v| x >= v)
                        && b.lt.is_none_or(|v| x < v)
                        && b.lte.is_none_or(|v| x <= v)
                })
            }),
            Condition::HasFields(fields) => fields.iter().all(|f| ev.get(f).is_some()),
            Condition::And(cs) => cs.iter().all(|c| c.matches(ev)),
            Condition::Or(cs) => cs.iter().any(|c| c.matches(ev)),
            Condition::Not(c) => !c.matches(ev),
        }
    }
}

fn compile(cfg: ConditionConfig, node: &Node) -> Result<Condition, ConfigError> {
    let err = |key: &str, msg: String| {
        let at = node.get(key).unwrap_or(node);
        ConfigError::new(format!("{}.{key}", node.path()), at.mark.clone(), msg)
    };
    let set = [
        cfg.equals.is_some(),
        cfg.contains.is_some(),
        cfg.regexp.is_some(),
        cfg.range.is_some(),
        cfg.has_fields.is_some(),
        cfg.and.is_some(),
        cfg.or.is_some(),
        cfg.not.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if set != 1 {
        return Err(ConfigError::new(
            node.path(),
            node.mark.clone(),
            format!(
                "a condition needs exactly one of equals, contains, regexp, range, has_fields, \
                 and, or, not (found {set}); to combine several, list them under `and:`"
            ),
        ));
    }
    // The configuration layer turns dotted keys (`fields.app: x`) into nested maps: flatten
    // them back into field paths.
    if let Some(m) = cfg.equals {
        let mut out = Vec::new();
        for (k, v) in flatten(m, &|v| !v.is_object()) {
            if !(v.is_string() || v.is_number() || v.is_boolean()) {
                return Err(err(
                    &format!("equals.{k}"),
                    "`equals` compares with a string, a number or a boolean".into(),
                ));
            }
            out.push((k, v));
        }
        return Ok(Condition::Equals(out));
    }
    if let Some(m) = cfg.contains {
        let mut out = Vec::new();
        for (k, v) in flatten(m, &|v| !v.is_object()) {
            match v {
                Value::String(s) => out.push((k, s)),
                _ => {
                    return Err(err(
                        &format!("contains.{k}"),
                        "`contains` takes a string".into(),
                    ));
                }
            }
        }
        return Ok(Condition::Contains(out));
    }
    if let Some(m) = cfg.regexp {
        let mut out = Vec::new();
        for (k, pat) in flatten(m, &|v| !v.is_object()) {
            let Value::String(pat) = pat else {
                return Err(err(
                    &format!("regexp.{k}"),
                    "`regexp` takes a pattern string".into(),
                ));
            };
            match regex::Regex::new(&pat) {
                Ok(re) => out.push((k, re)),
                Err(e) => {
                    return Err(err(
                        &format!("regexp.{k}"),
                        format!("invalid regular expression {pat:?}: {e}"),
                    ));
                }
            }
        }
        return Ok(Condition::Regexp(out));
    }
    if let Some(m) = cfg.range {
        let is_bounds = |v: &Value| {
            v.as_object().is_some_and(|o| {
                !o.is_empty()
                    && o.keys()
                        .all(|k| matches!(k.as_str(), "gt" | "gte" | "lt" | "lte"))
            })
        };
        let mut out = Vec::new();
        for (k, v) in flatten(m, &|v| is_bounds(v) || !v.is_object()) {
            let bound = |name: &str| v.get(name).and_then(Value::as_f64);
            if !is_bounds(&v)
                || v.as_object()
                    .is_some_and(|o| o.values().any(|x| !x.is_number()))
            {
                return Err(err(
                    &format!("range.{k}"),
                    "`range` takes numeric bounds: {gte: 1, lt: 10} (gt, gte, lt, lte)".into(),
                ));
            }
            out.push((
                k,
                Bounds {
                    gt: bound("gt"),
                    gte: bound("gte"),
                    lt: bound("lt"),
                    lte: bound("lte"),
                },
            ));
        }
        return Ok(Condition::Range(out));
    }
    if let Some(f) = cfg.has_fields {
        return Ok(Condition::HasFields(f));
    }
    let list = |key: &str, items: Vec<ConditionConfig>| -> Result<Vec<Condition>, ConfigError> {
        let sub = node.get(key);
        items
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let n = sub.and_then(|s| s.items().get(i)).unwrap_or(node);
                compile(c, n)
            })
            .collect()
    };
    if let Some(items) = cfg.and {
        return Ok(Condition::And(list("and", items)?));
    }
    if let Some(items) = cfg.or {
        return Ok(Condition::Or(list("or", items)?));
    }
    match cfg.not {
        Some(c) => Ok(Condition::Not(Box::new(compile(
            *c,
            node.get("not").unwrap_or(node),
        )?))),
        None => Err(ConfigError::new(
            node.path(),
            node.mark.clone(),
            "empty condition",
        )),
    }
}

/// Flattens nested maps into dotted paths, stopping at values for which `leaf` is true.
fn flatten(m: BTreeMap<String, Value>, leaf: &dyn Fn(&Value) -> bool) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut stack: Vec<(String, Value)> = m.into_iter().rev().collect();
    while let Some((k, v)) = stack.pop() {
        match v {
            Value::Object(o) if !leaf(&Value::Object(o.clone())) => {
                for (k2, v2) in o.into_iter().rev() {
                    stack.push((format!("{k}.{k2}"), v2));
                }
            }
            v => out.push((k, v)),
        }
    }
    out
}

fn equals(field: Option<FieldRef<'_>>, want: &Value) -> bool {
    let Some(f) = field else { return false };
    match want {
        Value::String(s) => any_str(Some(f), |v| v == s),
        Value::Number(n) => number(Some(f)).is_some_and(|x| n.as_f64() == Some(x)),
        Value::Bool(b) => matches!(f, FieldRef::Value(Value::Bool(v)) if v == b),
        _ => false,
    }
}

/// True when the field is a string satisfying `pred`, or a list with such a string.
fn any_str(field: Option<FieldRef<'_>>, pred: impl Fn(&str) -> bool) -> bool {
    match field {
        Some(FieldRef::Value(Value::Array(items))) => {
            items.iter().any(|v| v.as_str().is_some_and(&pred))
        }
        Some(f) => f.as_str().is_some_and(pred),
        None => false,
    }
}

fn number(field: Option<FieldRef<'_>>) -> Option<f64> {
    match field? {
        FieldRef::U64(n) => Some(n as f64),
        FieldRef::Value(Value::Number(n)) => n.as_f64(),
        _ => None,
    }
}

/// One `keys`/`topics` rule.
#[derive(Debug)]
pub struct Rule {
    template: Template,
    when: Option<Condition>,
    mappings: Option<BTreeMap<String, String>>,
    default: Option<String>,
}

/// The YAML form of a rule; `name_key` is `key` or `topic`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleConfig {
    #[serde(alias = "key", alias = "topic", alias = "index")]
    name: String,
    when: Option<serde_json::Value>,
    mappings: Option<BTreeMap<String, String>>,
    default: Option<String>,
}

/// A destination selector: rules tried in order, then the top-level template.
#[derive(Debug)]
pub struct Selector {
    rules: Vec<Rule>,
    fallback: Option<Template>,
    what: &'static str,
}

/// Parses a template written at `node`, as a configuration error when it is malformed.
pub fn template_at(text: &str, node: Option<&Node>, path: &str) -> Result<Template, ConfigError> {
    Template::parse(text).map_err(|e| {
        ConfigError::new(
            path,
            node.map(|n| n.mark.clone()).unwrap_or_default(),
            e.to_string(),
        )
    })
}

impl Selector {
    /// Builds a selector from the output's node: `what` is the top-level key (`key`, `topic`),
    /// `rules_key` the list (`keys`, `topics`), `default` the top-level value when unset.
    pub fn from_node(
        output: &Node,
        what: &'static str,
        rules_key: &str,
        default: Option<&str>,
    ) -> Result<Selector, ConfigError> {
        let base = output.path();
        let top = output.get(what);
        let fallback = match top {
            Some(n) => {
                let s: String = n.deserialize()?;
                Some(template_at(&s, Some(n), &format!("{base}.{what}"))?)
            }
            None => match default {
                Some(d) => Some(template_at(d, None, &format!("{base}.{what}"))?),
                None => None,
            },
        };
        let mut rules = Vec::new();
        if let Some(list) = output.get(rules_key) {
            for item in list.items() {
                let cfg: RuleConfig = item.deserialize()?;
                let path = format!("{}.{what}", item.path());
                let template = template_at(&cfg.name, item.get(what), &path)?;
                let when = match item.get("when") {
                    Some(w) if cfg.when.is_some() => Some(Condition::from_node(w)?),
                    _ => None,
                };
                rules.push(Rule {
                    template,
                    when,
                    mappings: cfg.mappings,
                    default: cfg.default,
                });
            }
            if list.items().is_empty() && !matches!(list.value, skiff_config::NodeValue::Seq(_)) {
                return Err(ConfigError::new(
                    list.path(),
                    list.mark.clone(),
                    format!(
                        "`{rules_key}` is a list of rules, each with `{what}` and optionally `when`, `mappings`, `default`"
                    ),
                ));
            }
        }
        if fallback.is_none() && rules.is_empty() {
            return Err(ConfigError::new(
                base,
                output.mark.clone(),
                format!("set `{what}` (or `{rules_key}`): where to send events"),
            ));
        }
        Ok(Selector {
            rules,
            fallback,
            what,
        })
    }

    /// True when every event goes to the same place.
    pub fn constant(&self) -> Option<String> {
        match (&self.fallback, self.rules.is_empty()) {
            (Some(t), true) if t.is_constant() => t
                .render(&Event::new(Default::default(), String::new()))
                .ok(),
            _ => None,
        }
    }

    /// The destination of `ev`, or why there is none (the event is then rejected).
    pub fn select(&self, ev: &Event) -> Result<String, String> {
        for r in &self.rules {
            if r.when.as_ref().is_some_and(|c| !c.matches(ev)) {
                continue;
            }
            let name = r.template.render(ev).ok().filter(|s| !s.is_empty());
            let name = match (&r.mappings, name) {
                (Some(m), Some(n)) => m.get(&n).cloned(),
                (None, n) => n,
                (Some(_), None) => None,
            };
            if let Some(n) = name.or_else(|| r.default.clone()) {
                return Ok(n);
            }
        }
        match &self.fallback {
            Some(t) => match t.render(ev) {
                Ok(s) if !s.is_empty() => Ok(s),
                Ok(_) => Err(format!(
                    "the {} template renders to an empty string",
                    self.what
                )),
                Err(MissingField(f)) => Err(format!(
                    "no {} for this event: it has no field `{f}` (give the reference a default: `%{{[{f}]:fallback}}`)",
                    self.what
                )),
            },
            None => Err(format!("no `{}` rule matched this event", self.what)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn node(yaml: &str) -> Node {
        skiff_config::parse_str(yaml, None).unwrap()
    }

    fn event(app: &str, msg: &str) -> Event {
        let mut e = Event::new(Arc::new(Default::default()), msg.to_owned());
        e.insert("fields.app", Value::from(app));
        e.insert("code", Value::from(503));
        e.insert("tags", serde_json::json!(["a", "b"]));
        e
    }

    #[test]
    fn rules_in_order_then_fallback() {
        let n = node(
            r#"
key: "logs-%{[fields.app]}"
keys:
  - key: errors
    when.contains: { message: ERR }
  - key: "%{[fields.app]}"
    mappings: { nginx: web }
  - key: fivexx
    when.range.code: { gte: 500, lt: 600 }
"#,
        );
        let s = Selector::from_node(&n, "key", "keys", Some("filebeat")).unwrap();
        assert_eq!(s.select(&event("x", "an ERR here")).unwrap(), "errors");
        assert_eq!(s.select(&event("nginx", "ok")).unwrap(), "web");
        assert_eq!(s.select(&event("db", "ok")).unwrap(), "fivexx");
        let mut e = event("db", "ok");
        e.insert("code", Value::from(200));
        assert_eq!(s.select(&e).unwrap(), "logs-db");
        let bare = Event::new(Arc::new(Default::default()), "m".into());
        let err = s.select(&bare).unwrap_err();
        assert!(err.contains("fields.app"), "{err}");
    }

    #[test]
    fn conditions() {
        let c = |y: &str| Condition::from_node(&node(y)).unwrap();
        let e = event("nginx", "GET /x 200");
        assert!(c("equals: {fields.app: nginx, code: 503}").matches(&e));
        assert!(!c("equals: {fields.app: nginx, code: 504}").matches(&e));
        assert!(c("equals: {tags: b}").matches(&e));
        assert!(c("regexp: {message: '^GET /'}").matches(&e));
        assert!(c("has_fields: [fields.app, code]").matches(&e));
        assert!(!c("has_fields: [nope]").matches(&e));
        assert!(c("not: {contains: {message: POST}}").matches(&e));
        assert!(c("or: [{equals: {code: 1}}, {contains: {tags: a}}]").matches(&e));
        assert!(!c("and: [{equals: {code: 503}}, {equals: {fields.app: db}}]").matches(&e));
    }

    #[test]
    fn bad_conditions_are_config_errors() {
        let e = Condition::from_node(&node("regexp: {message: '('}")).unwrap_err();
        assert!(e.to_string().contains("regexp.message"), "{e}");
        let e = Condition::from_node(&node("equals: {a: 1}\ncontains: {b: x}")).unwrap_err();
        assert!(e.to_string().contains("exactly one"), "{e}");
        let e = Condition::from_node(&node("equal: {a: 1}")).unwrap_err();
        assert!(e.to_string().contains("equal"), "{e}");
    }
}
