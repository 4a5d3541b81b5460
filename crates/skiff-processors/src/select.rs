//! Output routing rules: Elasticsearch `indices`/`pipelines`, Redis `keys`, Kafka `topics`.
//!
//! libbeat's outputs choose a destination per event from a list of rules tried in order, then
//! the output's top-level format string:
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
//! As in libbeat, a rule whose condition does not match is skipped; a rule whose format string
//! lacks a field (or renders empty), or whose `mappings` have no entry for the rendered name,
//! gives its `default` if it has one and is skipped otherwise. Only the top-level format
//! string's missing field is an error for the event.
//!
//! The `when` of a rule is a [`Condition`], the same evaluator as the processors' `when`: this
//! module lives next to it so that the three outputs share one rule type and one evaluator
//! rather than each keeping a copy that drifts. [`Rule`] and [`first_match`] are the shared
//! part; [`Selector`] adds the top-level format string and the messages of the Redis and Kafka
//! outputs (Elasticsearch puts its own `@metadata` routing in front of the rules).

use std::collections::BTreeMap;

use serde::Deserialize;
use skiff_config::{ConfigError, ConfigErrors, Node, NodeValue};
use skiff_event::Event;
use skiff_event::template::{MissingField, Template};

use crate::condition::Condition;

/// One routing rule: `{<name>, mappings, default, when}`.
#[derive(Clone, Debug)]
pub struct Rule {
    template: Template,
    mappings: BTreeMap<String, String>,
    default: Option<String>,
    when: Option<Condition>,
}

impl Rule {
    /// A rule from its parts. Empty `mappings` means none (the rendered name is used as is).
    pub fn new(
        template: Template,
        mappings: BTreeMap<String, String>,
        default: Option<String>,
        when: Option<Condition>,
    ) -> Rule {
        Rule {
            template,
            mappings,
            default,
            when,
        }
    }

    /// The destination this rule gives `ev`, or `None` when the rule does not apply.
    pub fn pick(&self, ev: &Event) -> Option<String> {
        if self.when.as_ref().is_some_and(|c| !c.matches(ev)) {
            return None;
        }
        let name = self.template.render(ev).ok().filter(|s| !s.is_empty());
        let name = if self.mappings.is_empty() {
            name
        } else {
            name.and_then(|n| self.mappings.get(&n).cloned())
        };
        name.or_else(|| self.default.clone())
    }
}

/// The destination given by the first rule that applies to `ev`.
pub fn first_match(rules: &[Rule], ev: &Event) -> Option<String> {
    rules.iter().find_map(|r| r.pick(ev))
}

/// Compiles the `when` of the rule written at `rule`: `None` when it has none (or an empty
/// `when:`, which the outputs have always read as "always"). Errors carry the condition's key
/// path (`output.kafka.topics.0.when.regexp.message`).
pub fn when_at(rule: &Node) -> Result<Option<Condition>, ConfigErrors> {
    match rule.get("when") {
        Some(w) if !matches!(w.value, NodeValue::Null) => Condition::build(w).map(Some),
        _ => Ok(None),
    }
}

/// Parses a format string written at `node` (`path` names it), as a configuration error when it
/// is malformed.
pub fn template_at(text: &str, node: Option<&Node>, path: &str) -> Result<Template, ConfigError> {
    Template::parse(text).map_err(|e| {
        ConfigError::new(
            path,
            node.map(|n| n.mark.clone()).unwrap_or_default(),
            e.to_string(),
        )
    })
}

/// The YAML form of a Redis or Kafka rule; the name is under `key` or `topic`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleConfig {
    #[serde(alias = "key", alias = "topic", alias = "index")]
    name: String,
    /// Read from the node by [`when_at`], so that its errors carry their key path.
    #[allow(dead_code)]
    when: Option<serde::de::IgnoredAny>,
    mappings: Option<BTreeMap<String, String>>,
    default: Option<String>,
}

/// A destination selector: rules tried in order, then the top-level format string.
#[derive(Debug)]
pub struct Selector {
    rules: Vec<Rule>,
    fallback: Option<Template>,
    what: &'static str,
}

impl Selector {
    /// Builds a selector from the output's node: `what` is the top-level key (`key`, `topic`),
    /// `rules_key` the list (`keys`, `topics`), `default` the top-level value when unset.
    pub fn from_node(
        output: &Node,
        what: &'static str,
        rules_key: &str,
        default: Option<&str>,
    ) -> Result<Selector, ConfigErrors> {
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
                rules.push(Rule::new(
                    template,
                    cfg.mappings.unwrap_or_default(),
                    cfg.default,
                    when_at(item)?,
                ));
            }
            if list.items().is_empty() && !matches!(list.value, NodeValue::Seq(_)) {
                return Err(ConfigError::new(
                    list.path(),
                    list.mark.clone(),
                    format!(
                        "`{rules_key}` is a list of rules, each with `{what}` and optionally `when`, `mappings`, `default`"
                    ),
                )
                .into());
            }
        }
        if fallback.is_none() && rules.is_empty() {
            return Err(ConfigError::new(
                base,
                output.mark.clone(),
                format!("set `{what}` (or `{rules_key}`): where to send events"),
            )
            .into());
        }
        Ok(Selector {
            rules,
            fallback,
            what,
        })
    }

    /// The destination of every event, when it is always the same.
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
        if let Some(n) = first_match(&self.rules, ev) {
            return Ok(n);
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
    use skiff_event::Value;
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
        assert_eq!(s.constant(), None);
        let k = Selector::from_node(&node("key: k"), "key", "keys", None).unwrap();
        assert_eq!(k.constant().as_deref(), Some("k"));
    }

    #[test]
    fn a_rule_that_cannot_name_falls_to_its_default_then_the_next_rule() {
        let n = node(
            r#"
topics:
  - topic: "%{[fields.kind]}"
    default: no-kind
    when.equals.fields.app: nginx
  - topic: "%{[fields.kind]}"
  - topic: "%{[fields.app]}"
    mappings: { db: databases }
  - topic: last
"#,
        );
        let s = Selector::from_node(&n, "topic", "topics", None).unwrap();
        assert_eq!(s.select(&event("nginx", "m")).unwrap(), "no-kind");
        assert_eq!(s.select(&event("db", "m")).unwrap(), "databases");
        assert_eq!(s.select(&event("cron", "m")).unwrap(), "last");
        let mut e = event("cron", "m");
        e.insert("fields.kind", Value::from(""));
        assert_eq!(s.select(&e).unwrap(), "last");
        e.insert("fields.kind", Value::from("k"));
        assert_eq!(s.select(&e).unwrap(), "k");
    }

    #[test]
    fn configuration_errors_carry_the_key_path() {
        let err = |yaml: &str| {
            Selector::from_node(&node(yaml), "key", "keys", None)
                .unwrap_err()
                .to_string()
        };
        let e = err("keys:\n  - key: k\n    when.regexp: {message: '('}");
        assert!(e.contains("keys.0.when.regexp.message"), "{e}");
        assert!(e.contains("invalid regular expression"), "{e}");
        let e = err("keys:\n  - key: k\n    when: {equals: {a: 1}, contains: {b: x}}");
        assert!(
            e.contains("keys.0.when") && e.contains("exactly one"),
            "{e}"
        );
        let e = err("keys:\n  - key: k\n    when.equal: {a: 1}");
        assert!(e.contains("did you mean `equals`"), "{e}");
        let e = err("keys:\n  - key: \"%{[x\"");
        assert!(e.contains("keys.0.key"), "{e}");
        let e = err("keys: x");
        assert!(e.contains("is a list of rules"), "{e}");
        let e = err("hosts: [a]");
        assert!(e.contains("set `key` (or `keys`)"), "{e}");
    }
}
