//! `when` conditions as the Beats write them, for `indices` and `pipelines` rules.
//!
//! Supported: `equals`, `contains`, `regexp`, `has_fields`, `range`, `and`, `or`, `not`. A
//! condition object with several of these requires all of them. Parsed once at start-up, so a
//! bad regular expression is a configuration error.

use regex::Regex;
use serde_json::Value;
use skiff_event::{Event, FieldRef};

/// A parsed condition.
#[derive(Debug, Clone)]
pub enum Condition {
    /// Every field equals its value (strings, numbers, booleans).
    Equals(Vec<(String, Value)>),
    /// Every field (a string, or an array of strings) contains its substring.
    Contains(Vec<(String, String)>),
    /// Every field matches its regular expression (anywhere in the value).
    Regexp(Vec<(String, Regex)>),
    /// Every field exists.
    HasFields(Vec<String>),
    /// Numeric bounds: field, operator (`gt`, `gte`, `lt`, `lte`), bound.
    Range(Vec<(String, String, f64)>),
    /// All of them.
    And(Vec<Condition>),
    /// Any of them.
    Or(Vec<Condition>),
    /// Not this one.
    Not(Box<Condition>),
}

impl Condition {
    /// Parses a `when` object.
    pub fn parse(v: &Value) -> Result<Condition, String> {
        let obj = v.as_object().ok_or_else(|| {
            format!("a condition must be a map like `equals: {{field: value}}`, found {v}")
        })?;
        if obj.is_empty() {
            return Err("empty condition".into());
        }
        let mut all = Vec::new();
        for (kind, body) in obj {
            all.push(parse_one(kind, body)?);
        }
        Ok(if all.len() == 1 {
            all.remove(0)
        } else {
            Condition::And(all)
        })
    }

    /// Whether the event satisfies the condition.
    pub fn matches(&self, ev: &Event) -> bool {
        match self {
            Condition::Equals(list) => list
                .iter()
                .all(|(f, want)| ev.get(f).is_some_and(|got| equals(got, want))),
            Condition::Contains(list) => list.iter().all(|(f, sub)| match ev.get(f) {
                Some(FieldRef::Value(Value::Array(a))) => a
                    .iter()
                    .any(|x| x.as_str().is_some_and(|s| s.contains(sub.as_str()))),
                Some(r) => r.as_str().is_some_and(|s| s.contains(sub.as_str())),
                None => false,
            }),
            Condition::Regexp(list) => list.iter().all(|(f, re)| match ev.get(f) {
                Some(FieldRef::Value(Value::Array(a))) => {
                    a.iter().any(|x| x.as_str().is_some_and(|s| re.is_match(s)))
                }
                Some(r) => match r.as_str() {
                    Some(s) => re.is_match(s),
                    None => re.is_match(&r.to_text()),
                },
                None => false,
            }),
            Condition::HasFields(list) => list.iter().all(|f| ev.get(f).is_some()),
            Condition::Range(list) => list.iter().all(|(f, op, bound)| {
                let Some(n) = ev.get(f).and_then(number) else {
                    return false;
                };
                match op.as_str() {
                    "gt" => n > *bound,
                    "gte" => n >= *bound,
                    "lt" => n < *bound,
                    _ => n <= *bound,
                }
            }),
            Condition::And(c) => c.iter().all(|c| c.matches(ev)),
            Condition::Or(c) => c.iter().any(|c| c.matches(ev)),
            Condition::Not(c) => !c.matches(ev),
        }
    }
}

fn fields<'a>(kind: &str, body: &'a Value) -> Result<&'a serde_json::Map<String, Value>, String> {
    body.as_object()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| format!("`{kind}` needs a map of field: value, found {body}"))
}

fn parse_one(kind: &str, body: &Value) -> Result<Condition, String> {
    Ok(match kind {
        "equals" => Condition::Equals(
            fields(kind, body)?
                .iter()
                .map(|(k, v)| match v {
                    Value::String(_) | Value::Number(_) | Value::Bool(_) => {
                        Ok((k.clone(), v.clone()))
                    }
                    _ => Err(format!(
                        "equals.{k}: compare with a string, number or boolean"
                    )),
                })
                .collect::<Result<_, _>>()?,
        ),
        "contains" => Condition::Contains(
            fields(kind, body)?
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    _ => Err(format!("contains.{k}: the value must be a string")),
                })
                .collect::<Result<_, _>>()?,
        ),
        "regexp" => Condition::Regexp(
            fields(kind, body)?
                .iter()
                .map(|(k, v)| {
                    let s = v
                        .as_str()
                        .ok_or_else(|| format!("regexp.{k}: the pattern must be a string"))?;
                    let re = Regex::new(s).map_err(|e| format!("regexp.{k}: {e}"))?;
                    Ok((k.clone(), re))
                })
                .collect::<Result<_, String>>()?,
        ),
        "has_fields" => {
            let list = body
                .as_array()
                .ok_or_else(|| "has_fields needs a list of field names".to_owned())?;
            Condition::HasFields(
                list.iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| "has_fields: names must be strings".to_owned())
                    })
                    .collect::<Result<_, _>>()?,
            )
        }
        "range" => {
            let mut out = Vec::new();
            for (k, v) in fields(kind, body)? {
                // `range: {http.status: {gte: 400}}` or `range: {http.status.gte: 400}`.
                if let Some(ops) = v.as_object() {
                    for (op, b) in ops {
                        out.push(range_item(k, op, b)?);
                    }
                } else {
                    let (f, op) = k
                        .rsplit_once('.')
                        .ok_or_else(|| format!("range.{k}: write `field.gte: number`"))?;
                    out.push(range_item(f, op, v)?);
                }
            }
            Condition::Range(out)
        }
        "and" | "or" => {
            let list = body
                .as_array()
                .ok_or_else(|| format!("`{kind}` needs a list of conditions"))?;
            let c = list
                .iter()
                .map(Condition::parse)
                .collect::<Result<_, _>>()?;
            if kind == "and" {
                Condition::And(c)
            } else {
                Condition::Or(c)
            }
        }
        "not" => Condition::Not(Box::new(Condition::parse(body)?)),
        other => {
            return Err(format!(
                "unknown condition `{other}`: use equals, contains, regexp, has_fields, range, \
                 and, or, not"
            ));
        }
    })
}

fn range_item(field: &str, op: &str, bound: &Value) -> Result<(String, String, f64), String> {
    if !matches!(op, "gt" | "gte" | "lt" | "lte") {
        return Err(format!(
            "range.{field}.{op}: the operator must be gt, gte, lt or lte"
        ));
    }
    let b = bound
        .as_f64()
        .ok_or_else(|| format!("range.{field}.{op}: the bound must be a number"))?;
    Ok((field.to_owned(), op.to_owned(), b))
}

fn number(r: FieldRef<'_>) -> Option<f64> {
    match r {
        FieldRef::U64(n) => Some(n as f64),
        FieldRef::Value(Value::Number(n)) => n.as_f64(),
        FieldRef::Value(Value::String(s)) => s.parse().ok(),
        FieldRef::Str(s) => s.parse().ok(),
        _ => None,
    }
}

fn equals(got: FieldRef<'_>, want: &Value) -> bool {
    match want {
        Value::String(w) => got.as_str() == Some(w.as_str()),
        Value::Number(w) => number(got).is_some_and(|n| Some(n) == w.as_f64()),
        Value::Bool(w) => matches!(got, FieldRef::Value(Value::Bool(b)) if b == w),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn ev() -> Event {
        let shared =
            json!({"log": {"file": {"path": "/var/log/app.log"}}, "tags": ["web", "prod"]});
        let mut e = Event::new(
            Arc::new(shared.as_object().unwrap().clone()),
            "GET /x 500".into(),
        );
        e.insert("http.status", json!(500));
        e.insert("ok", json!(false));
        e
    }

    fn check(c: Value) -> bool {
        Condition::parse(&c).unwrap().matches(&ev())
    }

    #[test]
    fn each_kind() {
        assert!(check(json!({"equals": {"http.status": 500}})));
        assert!(!check(json!({"equals": {"http.status": 404}})));
        assert!(check(json!({"equals": {"ok": false}})));
        assert!(check(json!({"contains": {"message": "500"}})));
        assert!(check(json!({"contains": {"tags": "pro"}})));
        assert!(!check(json!({"contains": {"missing": "x"}})));
        assert!(check(json!({"regexp": {"log.file.path": "app\\.log$"}})));
        assert!(check(json!({"has_fields": ["http.status", "message"]})));
        assert!(!check(json!({"has_fields": ["http.nope"]})));
        assert!(check(json!({"range": {"http.status.gte": 500}})));
        assert!(!check(json!({"range": {"http.status": {"lt": 500}}})));
        assert!(check(
            json!({"or": [{"equals": {"http.status": 1}}, {"contains": {"message": "GET"}}]})
        ));
        assert!(!check(
            json!({"and": [{"equals": {"http.status": 1}}, {"contains": {"message": "GET"}}]})
        ));
        assert!(check(json!({"not": {"equals": {"http.status": 1}}})));
    }

    #[test]
    fn bad_conditions_are_errors() {
        assert!(Condition::parse(&json!({"regexp": {"m": "("}})).is_err());
        assert!(
            Condition::parse(&json!({"equal": {"m": 1}}))
                .unwrap_err()
                .contains("unknown condition")
        );
        assert!(Condition::parse(&json!({"range": {"x.between": 1}})).is_err());
        assert!(Condition::parse(&json!("x")).is_err());
    }
}
