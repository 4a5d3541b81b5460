//! Which index (or data stream) and ingest pipeline an event goes to.
//!
//! The order is libbeat's: the event's `@metadata.raw_index` (an input's `index` setting) as
//! is, `@metadata.alias`, `@metadata.index` (plus `-<version>-<date>`), then the first
//! matching `indices` rule, then `index`. Pipelines: `@metadata.pipeline`, `pipelines` rules,
//! `pipeline`. Names are lower-cased, as Elasticsearch requires.
//!
//! The rules themselves (`{index|pipeline, mappings, default, when}`) are
//! [`skiff_processors::select`]'s, shared with the Redis `keys` and Kafka `topics`, so a rule
//! and its `when` mean the same thing in every output.

use std::collections::HashMap;

use skiff_config::{ConfigError, ConfigErrors, Node};
use skiff_event::Event;
use skiff_event::template::Template;
use skiff_processors::select::{Rule, first_match, when_at};

use crate::config::{DEFAULT_INDEX, EsConfig, RuleConfig};

/// An ordered list of rules and a fallback format string.
#[derive(Clone, Debug, Default)]
struct Selector {
    rules: Vec<Rule>,
    fallback: Option<Template>,
}

impl Selector {
    fn select(&self, ev: &Event) -> Result<Option<String>, String> {
        if let Some(name) = first_match(&self.rules, ev) {
            return Ok(Some(name));
        }
        match &self.fallback {
            None => Ok(None),
            Some(t) => t.render(ev).map(Some).map_err(|e| e.to_string()),
        }
    }
}

/// Picks index and pipeline per event.
#[derive(Clone, Debug)]
pub struct Routing {
    index: Selector,
    pipeline: Selector,
    /// `@metadata.raw_index` values are format strings: parsed once each, a few kept.
    raw: HashMap<String, Option<Template>>,
    /// `index` is not configured: the default follows the event's `@metadata.beat`.
    default_index: bool,
}

/// Where one event goes.
#[derive(Debug, PartialEq)]
pub struct Target {
    /// The index or data stream.
    pub index: String,
    /// The ingest pipeline, if any.
    pub pipeline: Option<String>,
}

fn rules(list: &[RuleConfig], key: &str, node: &Node, errors: &mut Vec<ConfigError>) -> Vec<Rule> {
    let mut out = Vec::new();
    let err = |i: usize, msg: String| {
        let n = node.get(key).unwrap_or(node);
        ConfigError::new(format!("{}.{key}.{i}", node.path()), n.mark.clone(), msg)
    };
    for (i, r) in list.iter().enumerate() {
        let name = if key == "indices" {
            &r.index
        } else {
            &r.pipeline
        };
        let field = if key == "indices" {
            "index"
        } else {
            "pipeline"
        };
        let Some(name) = name else {
            errors.push(err(i, format!("each rule needs `{field}`")));
            continue;
        };
        let name = match Template::parse(name) {
            Ok(t) => t,
            Err(e) => {
                errors.push(err(i, format!("{field}: {e}")));
                continue;
            }
        };
        // The condition is compiled from its node, so its errors name their own key path
        // (`indices.1.when.equals.x`).
        let rule_node = node.get(key).and_then(|l| l.items().get(i));
        let when = match rule_node.map(when_at).transpose() {
            Ok(w) => w.flatten(),
            Err(e) => {
                errors.extend(e);
                continue;
            }
        };
        out.push(Rule::new(name, r.mappings.clone(), r.default.clone(), when));
    }
    out
}

impl Routing {
    /// Builds the routing from the settings; `node` locates errors.
    pub fn new(cfg: &EsConfig, node: &Node) -> Result<Self, ConfigErrors> {
        let mut errors = Vec::new();
        let index_rules = rules(&cfg.indices, "indices", node, &mut errors);
        let pipeline_rules = rules(&cfg.pipelines, "pipelines", node, &mut errors);
        let mut template = |key: &str, s: &str| match Template::parse(s) {
            Ok(t) => Some(t),
            Err(e) => {
                let n = node.get(key).unwrap_or(node);
                errors.push(ConfigError::new(
                    format!("{}.{key}", node.path()),
                    n.mark.clone(),
                    e.to_string(),
                ));
                None
            }
        };
        let index = template("index", cfg.index.as_deref().unwrap_or(DEFAULT_INDEX));
        let pipeline = cfg
            .pipeline
            .as_deref()
            .and_then(|p| template("pipeline", p));
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Ok(Routing {
            index: Selector {
                rules: index_rules,
                fallback: index,
            },
            pipeline: Selector {
                rules: pipeline_rules,
                fallback: pipeline,
            },
            raw: HashMap::new(),
            default_index: cfg.index.is_none(),
        })
    }

    /// Where `ev` goes, or why it cannot be sent.
    pub fn target(&mut self, ev: &Event) -> Result<Target, String> {
        let index = match self.meta_index(ev)? {
            Some(i) => i,
            None => {
                let i = self
                    .index
                    .select(ev)
                    .map_err(|e| format!("cannot name the index: {e} (used in `index`)"))?
                    .ok_or_else(|| "no index: set `index`".to_owned())?;
                // The default index follows the event's Beat: packetbeat-<version>, ...
                match (self.default_index, ev.get("@metadata.beat")) {
                    (true, Some(b)) => match (b.as_str(), i.strip_prefix("filebeat-")) {
                        (Some(beat), Some(rest)) if beat != "filebeat" => format!("{beat}-{rest}"),
                        _ => i,
                    },
                    _ => i,
                }
            }
        };
        if index.is_empty() {
            return Err("the index name is empty".into());
        }
        let pipeline = match ev
            .get("@metadata.pipeline")
            .and_then(|p| p.as_str().map(str::to_owned))
        {
            Some(p) => Some(p),
            None => self
                .pipeline
                .select(ev)
                .map_err(|e| format!("cannot name the pipeline: {e} (used in `pipeline`)"))?,
        };
        Ok(Target {
            index: index.to_lowercase(),
            pipeline: pipeline.filter(|p| !p.is_empty()).map(|p| p.to_lowercase()),
        })
    }

    fn meta_index(&mut self, ev: &Event) -> Result<Option<String>, String> {
        if let Some(raw) = ev
            .get("@metadata.raw_index")
            .and_then(|r| r.as_str().map(str::to_owned))
        {
            if !raw.contains("%{") {
                return Ok(Some(raw));
            }
            if !self.raw.contains_key(&raw) {
                if self.raw.len() >= 256 {
                    self.raw.clear();
                }
                self.raw.insert(raw.clone(), Template::parse(&raw).ok());
            }
            return match self.raw.get(&raw) {
                Some(Some(t)) => t
                    .render(ev)
                    .map(Some)
                    .map_err(|e| format!("cannot name the index from the input's `index`: {e}")),
                _ => Err(format!(
                    "the input's `index` `{raw}` is not a valid format string"
                )),
            };
        }
        if let Some(a) = ev
            .get("@metadata.alias")
            .and_then(|r| r.as_str().map(str::to_owned))
        {
            return Ok(Some(a));
        }
        if let Some(i) = ev
            .get("@metadata.index")
            .and_then(|r| r.as_str().map(str::to_owned))
        {
            let version = ev
                .get("agent.version")
                .or_else(|| ev.get("@metadata.version"))
                .map(|v| v.to_text())
                .unwrap_or_default();
            let date = ev.timestamp.to_chrono().format("%Y.%m.%d");
            return Ok(Some(format!("{i}-{version}-{date}")));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn routing(yaml: &str) -> Routing {
        let node = skiff_config::parse_str(yaml, None).unwrap();
        let cfg: EsConfig = node.deserialize().unwrap();
        Routing::new(&cfg, &node).unwrap()
    }

    fn ev() -> Event {
        let shared =
            json!({"agent": {"version": "8.15.0"}, "@metadata": {"pipeline": "from-input"}});
        let mut e = Event::new(Arc::new(shared.as_object().unwrap().clone()), "m".into());
        e.timestamp = skiff_event::Timestamp::parse("2026-03-04T05:06:07Z").unwrap();
        e
    }

    #[test]
    fn metadata_index_gets_version_and_date_and_names_are_lowercased() {
        let mut r = routing("hosts: [x]\nindex: \"Logs-%{[fields.env]}\"\n");
        let mut e = ev();
        e.insert("@metadata.index", json!("custom"));
        let t = r.target(&e).unwrap();
        assert_eq!(t.index, "custom-8.15.0-2026.03.04");
        // The input's pipeline (per-source @metadata) is used.
        assert_eq!(t.pipeline.as_deref(), Some("from-input"));
        let mut e = ev();
        e.insert("fields.env", json!("Prod"));
        assert_eq!(r.target(&e).unwrap().index, "logs-prod");
        let err = r.target(&ev()).unwrap_err();
        assert!(err.contains("fields.env"), "{err}");
    }

    #[test]
    fn the_default_index_follows_the_events_beat() {
        let beat = |b: Option<&str>| {
            let mut meta = json!({"pipeline": "p"});
            if let Some(b) = b {
                meta["beat"] = json!(b);
            }
            let shared = json!({"agent": {"version": "8.15.0"}, "@metadata": meta});
            Event::new(Arc::new(shared.as_object().unwrap().clone()), "m".into())
        };
        let mut r = routing("hosts: [x]\n");
        assert_eq!(
            r.target(&beat(Some("packetbeat"))).unwrap().index,
            "packetbeat-8.15.0"
        );
        assert_eq!(
            r.target(&beat(Some("metricbeat"))).unwrap().index,
            "metricbeat-8.15.0"
        );
        assert_eq!(
            r.target(&beat(Some("filebeat"))).unwrap().index,
            "filebeat-8.15.0"
        );
        assert_eq!(r.target(&beat(None)).unwrap().index, "filebeat-8.15.0");
        // A configured index is the user's: it does not follow the Beat.
        let mut r = routing("hosts: [x]\nindex: \"filebeat-%{[agent.version]}\"\n");
        assert_eq!(
            r.target(&beat(Some("packetbeat"))).unwrap().index,
            "filebeat-8.15.0"
        );
    }

    fn routing_errors(yaml: &str) -> ConfigErrors {
        let node = skiff_config::parse_str(yaml, None).unwrap();
        let cfg: EsConfig = node.deserialize().unwrap();
        Routing::new(&cfg, &node).unwrap_err()
    }

    #[test]
    fn bad_rules_are_configuration_errors() {
        let errs =
            routing_errors("hosts: [x]\nindices:\n  - index: \"a-%{[x\"\n  - when.equals.x: 1\n");
        assert_eq!(errs.len(), 2, "{errs}");
    }

    #[test]
    fn a_bad_when_is_reported_at_its_key_path() {
        let errs = routing_errors(
            "hosts: [x]\nindices:\n  - index: a\n  - index: b\n    when.regexp.message: '('\n",
        )
        .to_string();
        assert!(errs.contains("indices.1.when.regexp.message"), "{errs}");
        assert!(errs.contains("invalid regular expression"), "{errs}");
    }

    #[test]
    fn rules_pick_mapped_names_and_defaults() {
        let mut r = routing(
            r#"
hosts: [x]
index: fallback
indices:
  - index: "%{[fields.kind]}"
    mappings: {web: web-logs}
    default: other-logs
    when.has_fields: [fields.kind]
  - index: "app-%{[fields.app]}"
    default: no-app
    when.equals.fields.env: prod
pipelines:
  - pipeline: errors
    when.contains.message: ERR
"#,
        );
        let mut e = ev();
        e.insert("fields.kind", json!("web"));
        assert_eq!(r.target(&e).unwrap().index, "web-logs");
        e.insert("fields.kind", json!("db"));
        assert_eq!(r.target(&e).unwrap().index, "other-logs");
        let mut e = ev();
        e.insert("fields.env", json!("prod"));
        assert_eq!(r.target(&e).unwrap().index, "no-app");
        e.insert("fields.app", json!("Shop"));
        assert_eq!(r.target(&e).unwrap().index, "app-shop");
        assert_eq!(r.target(&ev()).unwrap().index, "fallback");
        let mut e = Event::new(Arc::new(Default::default()), "an ERR".into());
        assert_eq!(r.target(&e).unwrap().pipeline.as_deref(), Some("errors"));
        e.message = Some("fine".into());
        assert_eq!(r.target(&e).unwrap().pipeline, None);
    }
}
