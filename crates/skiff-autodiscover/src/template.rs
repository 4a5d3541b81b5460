//! Templates: a `condition` over what the provider found, and the input settings to start when
//! it matches, with `${data.*}` filled in.
//!
//! Filebeat writes conditions without the `data.` prefix (`equals.docker.container.image:
//! nginx`), in the same language as a processor's `when`; so the condition is the processors'
//! [`Condition`], evaluated on an event whose fields are the data (and, for configurations that
//! do write the prefix, the same data again under `data`).

use std::sync::Arc;

use serde_json::{Map, Value};
use skiff_config::{ConfigError, ConfigErrors, Node, NodeValue};
use skiff_event::Event;
use skiff_processors::condition::Condition;

/// One entry of `templates`.
#[derive(Debug, Clone)]
pub struct Template {
    /// `condition` (none: always matches).
    pub condition: Option<Condition>,
    /// `config`: input settings, each a map with `type`.
    pub config: Vec<Node>,
}

impl Template {
    /// Reads one `templates` item.
    pub fn build(node: &Node) -> Result<Template, ConfigErrors> {
        let mut errors = Vec::new();
        if !matches!(node.value, NodeValue::Map(_)) {
            return Err(at(node, "a template is a map with `condition` and `config`").into());
        }
        for (k, n) in node.entries() {
            if k != "condition" && k != "config" {
                errors.push(
                    at(n, format!("unknown key `{k}` in a template"))
                        .with_suggestion(skiff_config::suggest(k, &["condition", "config"])),
                );
            }
        }
        let condition = match node.get("condition").map(Condition::build).transpose() {
            Ok(c) => c,
            Err(e) => {
                errors.extend(e.0);
                None
            }
        };
        let config = match node.get("config") {
            None => {
                errors.push(at(node, "a template needs `config`: the inputs to start"));
                Vec::new()
            }
            Some(Node {
                value: NodeValue::Seq(items),
                ..
            }) => items.clone(),
            Some(
                n @ Node {
                    value: NodeValue::Map(_),
                    ..
                },
            ) => vec![n.clone()],
            Some(n) => {
                errors.push(at(
                    n,
                    "`config` is a list of inputs (`- type: container ...`)",
                ));
                Vec::new()
            }
        };
        ConfigErrors(errors).into_result()?;
        Ok(Template { condition, config })
    }

    /// Whether the template applies to `data`.
    pub fn matches(&self, data: &Map<String, Value>) -> bool {
        self.condition
            .as_ref()
            .is_none_or(|c| c.matches(&data_event(data)))
    }
}

/// An event carrying `data` as its fields, for conditions.
pub fn data_event(data: &Map<String, Value>) -> Event {
    let mut ev = Event::new(Arc::new(Map::new()), String::new());
    ev.remove("message");
    for (k, v) in data {
        ev.insert(k, v.clone());
    }
    ev.insert("data", Value::Object(data.clone()));
    ev
}

fn at(node: &Node, msg: impl Into<String>) -> ConfigError {
    ConfigError::new(node.path.clone(), node.mark.clone(), msg)
}

/// A `${data.*}` variable that names nothing in the data.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}: `${{data.{var}}}` is not known for this container")]
pub struct Unresolved {
    /// The key path of the value with the variable.
    pub path: String,
    /// The variable, without `data.`.
    pub var: String,
}

/// Fills every `${data.x.y}` in `node` from `data`. A string that is only one variable takes
/// the value's type (a list of labels stays a list); inside text, the value's text is used.
pub fn substitute(node: &mut Node, data: &Map<String, Value>) -> Result<(), Unresolved> {
    match &mut node.value {
        NodeValue::String(s) if s.contains("${data.") => {
            let text = s.clone();
            if let Some(var) = whole_variable(&text) {
                let v = lookup(data, var).ok_or_else(|| Unresolved {
                    path: node.path.clone(),
                    var: var.to_owned(),
                })?;
                node.value = match v {
                    Value::String(s) => NodeValue::String(s.clone()),
                    Value::Bool(b) => NodeValue::Bool(*b),
                    other => json_node(other, &node.mark),
                };
                return Ok(());
            }
            let mut out = String::new();
            let mut rest = text.as_str();
            while let Some(start) = rest.find("${data.") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 7..];
                let Some(end) = after.find('}') else {
                    out.push_str(&rest[start..]);
                    rest = "";
                    break;
                };
                let var = &after[..end];
                let v = lookup(data, var).ok_or_else(|| Unresolved {
                    path: node.path.clone(),
                    var: var.to_owned(),
                })?;
                match v {
                    Value::String(s) => out.push_str(s),
                    other => out.push_str(&other.to_string()),
                }
                rest = &after[end + 1..];
            }
            out.push_str(rest);
            node.value = NodeValue::String(out);
            Ok(())
        }
        NodeValue::Seq(items) => items.iter_mut().try_for_each(|n| substitute(n, data)),
        NodeValue::Map(entries) => entries
            .iter_mut()
            .try_for_each(|(_, n)| substitute(n, data)),
        _ => Ok(()),
    }
}

/// `x.y` when `s` is exactly `${data.x.y}`.
fn whole_variable(s: &str) -> Option<&str> {
    let inner = s.strip_prefix("${data.")?.strip_suffix('}')?;
    (!inner.contains('}')).then_some(inner)
}

/// Looks a dotted path up in nested maps. Keys may contain dots themselves (labels such as
/// `com.example.team`), so at each level the longest key that prefixes the rest wins.
pub fn lookup<'a>(data: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = data.get(path) {
        return Some(v);
    }
    let mut best: Option<&'a Value> = None;
    for (i, _) in path.match_indices('.') {
        let (head, tail) = (&path[..i], &path[i + 1..]);
        if let Some(Value::Object(m)) = data.get(head)
            && let Some(v) = lookup(m, tail)
        {
            best = Some(v);
        }
    }
    best
}

/// A JSON value as a configuration node (lists and maps of labels in templates).
pub fn json_node(v: &Value, mark: &skiff_config::Mark) -> NodeValue {
    match v {
        Value::Null => NodeValue::Null,
        Value::Bool(b) => NodeValue::Bool(*b),
        Value::String(s) => NodeValue::String(s.clone()),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => NodeValue::Int(i),
            (None, Some(f)) => NodeValue::Float(f),
            _ => NodeValue::String(n.to_string()),
        },
        Value::Array(items) => NodeValue::Seq(
            items
                .iter()
                .map(|i| Node::new(json_node(i, mark), mark.clone()))
                .collect(),
        ),
        Value::Object(m) => NodeValue::Map(
            m.iter()
                .map(|(k, i)| (k.clone(), Node::new(json_node(i, mark), mark.clone())))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn data() -> Map<String, Value> {
        json!({"docker": {"container": {"id": "abc", "name": "web", "image": "nginx:1.25",
            "labels": {"com.example.team": "ops", "app": "shop"}}},
            "container": {"id": "abc", "image": {"name": "nginx:1.25"}}})
        .as_object()
        .unwrap()
        .clone()
    }

    fn node(yaml: &str) -> Node {
        skiff_config::parse_str(yaml, Some("t.yml")).unwrap()
    }

    #[test]
    fn conditions_see_the_data_without_and_with_the_prefix() {
        let t = Template::build(&node(
            "condition.contains.docker.container.image: nginx\nconfig: [{type: container}]",
        ))
        .unwrap();
        assert!(t.matches(&data()));
        let t = Template::build(&node(
            "condition.equals.data.docker.container.name: web\nconfig: [{type: container}]",
        ))
        .unwrap();
        assert!(t.matches(&data()));
        let t = Template::build(&node(
            "condition.equals.docker.container.image: redis\nconfig: [{type: container}]",
        ))
        .unwrap();
        assert!(!t.matches(&data()));
    }

    #[test]
    fn variables_are_filled_in_text_and_whole_values() {
        let mut n = node(
            "paths: ['/d/${data.docker.container.id}/*-json.log']\ntags: '${data.docker.container.labels}'\nteam: '${data.docker.container.labels.com.example.team}'",
        );
        substitute(&mut n, &data()).unwrap();
        let j = n.to_json();
        assert_eq!(j["paths"][0], "/d/abc/*-json.log");
        assert_eq!(j["tags"]["app"], "shop");
        assert_eq!(j["team"], "ops");
        let mut n = node("paths: ['${data.nope}']");
        assert_eq!(substitute(&mut n, &data()).unwrap_err().var, "nope");
    }

    #[test]
    fn template_errors_are_located() {
        let e = Template::build(&node("condition.equal.x: 1\nconfigs: []"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("configs") && e.contains("equal"), "{e}");
        assert!(e.contains("t.yml:"), "{e}");
    }
}
