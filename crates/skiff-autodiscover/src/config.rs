//! `filebeat.autodiscover`: the providers, each with its templates, hints and
//! `cleanup_timeout`, read from the configuration with every problem located (file:line).
//!
//! ```yaml
//! filebeat.autodiscover:
//!   providers:
//!     - type: docker
//!       hints.enabled: true
//!       cleanup_timeout: 60s
//!       templates:
//!         - condition.contains.docker.container.image: redis
//!           config:
//!             - type: container
//!               paths: ["/var/lib/docker/containers/${data.docker.container.id}/*.log"]
//! ```
//!
//! The keys every provider shares are read here; the rest of a provider's map (`host`, `ssl`,
//! ...) goes to the provider's own `build` ([`crate::ProviderPlugin`]).

use std::time::Duration;

use skiff_config::{ConfigError, ConfigErrors, Node, NodeValue};

use crate::template::Template;
use crate::{PROVIDERS, Provider, ProviderPlugin};

/// Filebeat's default `cleanup_timeout`.
pub const DEFAULT_CLEANUP: Duration = Duration::from_secs(60);

/// The keys read here, not by the provider.
const SHARED_KEYS: &[&str] = &[
    "type",
    "templates",
    "hints",
    "cleanup_timeout",
    "appenders",
    "enabled",
];

/// `filebeat.autodiscover`.
pub struct AutodiscoverConfig {
    /// The enabled providers, in order.
    pub providers: Vec<ProviderConfig>,
}

/// One provider.
pub struct ProviderConfig {
    /// Its type.
    pub plugin: &'static ProviderPlugin,
    /// Its settings without the shared keys (built again at each start).
    pub settings: Node,
    /// `templates`.
    pub templates: Vec<Template>,
    /// `hints.*`.
    pub hints: HintsConfig,
    /// `cleanup_timeout`: how long after a container stopped its inputs are stopped.
    pub cleanup_timeout: Duration,
}

impl ProviderConfig {
    /// A new provider from the settings (each start builds one).
    pub fn build(&self) -> Result<Box<dyn Provider>, ConfigErrors> {
        (self.plugin.build)(&self.settings)
    }
}

/// `hints.*`.
#[derive(Debug, Clone)]
pub struct HintsConfig {
    /// `hints.enabled` (default false).
    pub enabled: bool,
    /// `hints.default_config` (default: the provider's), as written, with `${data.*}`.
    pub default_config: Node,
    /// `hints.default_config.enabled` (default true): whether containers without
    /// `co.elastic.logs/enabled: true` get the default input.
    pub default_enabled: bool,
}

fn at(node: &Node, msg: impl Into<String>) -> ConfigError {
    ConfigError::new(node.path.clone(), node.mark.clone(), msg)
}

/// Reads `filebeat.autodiscover` (`node`: its value). Every problem is returned, located.
pub fn parse(node: &Node) -> Result<AutodiscoverConfig, ConfigErrors> {
    let mut errors = Vec::new();
    let mut providers = Vec::new();
    for (k, n) in node.entries() {
        if k != "providers" {
            let e = at(
                n,
                format!("unknown key `{k}` in filebeat.autodiscover is ignored"),
            )
            .with_suggestion(skiff_config::suggest(k, &["providers"]));
            if let Err(e) = skiff_config::diag::tolerate(e) {
                errors.push(e);
            }
        }
    }
    let items: Vec<Node> = match node.get("providers").map(|n| &n.value) {
        None | Some(NodeValue::Null) => Vec::new(),
        Some(NodeValue::Seq(items)) => items.clone(),
        Some(NodeValue::Map(_)) => node.get("providers").cloned().into_iter().collect(),
        Some(_) => {
            let n = node.get("providers").unwrap_or(node);
            return Err(at(n, "`providers` is a list (`- type: docker ...`)").into());
        }
    };
    for item in &items {
        if !item.is_enabled() {
            continue;
        }
        match provider(item) {
            Ok(p) => providers.push(p),
            Err(e) => errors.extend(e.0),
        }
    }
    ConfigErrors(errors).into_result()?;
    Ok(AutodiscoverConfig { providers })
}

fn provider(item: &Node) -> Result<ProviderConfig, ConfigErrors> {
    let names: Vec<&str> = PROVIDERS.iter().map(|p| p.name).collect();
    let kind = match item.get("type").map(|n| &n.value) {
        Some(NodeValue::String(s)) => s.clone(),
        _ => {
            return Err(at(
                item,
                format!("a provider needs `type` (one of: {})", names.join(", ")),
            )
            .into());
        }
    };
    let Some(plugin) = PROVIDERS.iter().find(|p| p.name == kind) else {
        let n = item.get("type").unwrap_or(item);
        return Err(at(
            n,
            format!(
                "unknown autodiscover provider `{kind}` (skiff has: {})",
                names.join(", ")
            ),
        )
        .with_suggestion(skiff_config::suggest(&kind, &names))
        .into());
    };
    let mut errors = Vec::new();
    let mut templates = Vec::new();
    match item.get("templates").map(|n| &n.value) {
        None | Some(NodeValue::Null) => {}
        Some(NodeValue::Seq(list)) => {
            for t in list {
                match Template::build(t) {
                    Ok(t) => templates.push(t),
                    Err(e) => errors.extend(e.0),
                }
            }
        }
        Some(_) => errors.push(at(
            item.get("templates").unwrap_or(item),
            "`templates` is a list of `{condition, config}`",
        )),
    }
    let cleanup_timeout = match item.get("cleanup_timeout") {
        None => DEFAULT_CLEANUP,
        Some(n) => match n.deserialize::<skiff_config::Duration>() {
            Ok(d) => d.0,
            Err(e) => {
                errors.push(e);
                DEFAULT_CLEANUP
            }
        },
    };
    let hints = hints(item, plugin, &mut errors);
    if let Some(a) = item.get("appenders") {
        let e = at(
            a,
            "`appenders` is not supported by skiff yet and is ignored",
        );
        if let Err(e) = skiff_config::diag::tolerate(e) {
            errors.push(e);
        }
    }
    let mut settings = item.clone();
    for k in SHARED_KEYS {
        settings.remove(k);
    }
    if let Err(e) = (plugin.build)(&settings) {
        errors.extend(e.0);
    }
    ConfigErrors(errors).into_result()?;
    Ok(ProviderConfig {
        plugin,
        settings,
        templates,
        hints,
        cleanup_timeout,
    })
}

fn hints(item: &Node, plugin: &ProviderPlugin, errors: &mut Vec<ConfigError>) -> HintsConfig {
    let flag = |n: Option<&Node>, errors: &mut Vec<ConfigError>, default: bool| match n {
        None => default,
        Some(n) => n.deserialize::<bool>().unwrap_or_else(|e| {
            errors.push(e);
            default
        }),
    };
    let enabled = flag(item.get("hints.enabled"), errors, false);
    if let Some(h) = item.get("hints") {
        for (k, n) in h.entries() {
            if k != "enabled" && k != "default_config" {
                let e = at(n, format!("unknown key `{k}` in hints is ignored"))
                    .with_suggestion(skiff_config::suggest(k, &["enabled", "default_config"]));
                if let Err(e) = skiff_config::diag::tolerate(e) {
                    errors.push(e);
                }
            }
        }
    }
    let (default_config, default_enabled) = match item.get("hints.default_config") {
        Some(n) if matches!(n.value, NodeValue::Map(_)) => {
            let on = flag(n.get("enabled"), errors, true);
            let mut n = n.clone();
            n.remove("enabled");
            // What is written goes over the provider's default settings, as Filebeat unpacks
            // `default_config` onto its own (go-ucfg merges into the config already there):
            // `enabled: false` alone keeps them all, and a default config that sets only
            // `paths` (or only `exclude_lines`) keeps the provider's `type`.
            let mut merged = provider_default(plugin);
            skiff_config::merge(&mut merged, n);
            (merged, on)
        }
        Some(n) => {
            errors.push(at(n, "`hints.default_config` is a map of input settings"));
            (provider_default(plugin), true)
        }
        None => (provider_default(plugin), true),
    };
    HintsConfig {
        enabled,
        default_config,
        default_enabled,
    }
}

fn provider_default(plugin: &ProviderPlugin) -> Node {
    let name = format!("the {} provider's default hints config", plugin.name);
    skiff_config::parse_str(plugin.default_hints_config, Some(&name)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse_yaml(yaml: &str) -> Result<AutodiscoverConfig, ConfigErrors> {
        let root = skiff_config::parse_str(yaml, Some("t.yml")).unwrap();
        parse(root.get("filebeat.autodiscover").unwrap())
    }

    #[test]
    fn filebeat_docs_example_loads() {
        let c = parse_yaml(
            "filebeat.autodiscover:\n  providers:\n    - type: docker\n      hints.enabled: true\n      templates:\n        - condition:\n            contains:\n              docker.container.image: redis\n          config:\n            - type: container\n              paths:\n                - /var/lib/docker/containers/${data.docker.container.id}/*.log\n              exclude_lines: [\"^\\\\s+[\\\\-`('.|_]\"]\n",
        )
        .unwrap();
        let p = &c.providers[0];
        assert_eq!(p.plugin.name, "docker");
        assert!(p.hints.enabled && p.hints.default_enabled);
        assert_eq!(p.templates.len(), 1);
        assert_eq!(p.cleanup_timeout, DEFAULT_CLEANUP);
        assert_eq!(
            p.hints.default_config.to_json()["paths"][0],
            "/var/lib/docker/containers/${data.container.id}/*-json.log"
        );
    }

    #[test]
    fn errors_are_located_and_suggest() {
        let e = parse_yaml(
            "filebeat.autodiscover.providers:\n  - type: dockr\n  - type: docker\n    cleanup_timeout: soon\n    templates:\n      - condition.equls.a: b\n        config: []\n",
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("dockr") && e.contains("docker"), "{e}");
        assert!(e.contains("cleanup_timeout"), "{e}");
        assert!(e.contains("equls"), "{e}");
        assert!(e.contains("t.yml:2"), "{e}");
    }

    #[test]
    fn default_config_switched_off() {
        let c = parse_yaml(
            "filebeat.autodiscover.providers:\n  - type: docker\n    hints.enabled: true\n    hints.default_config.enabled: false\n",
        )
        .unwrap();
        assert!(!c.providers[0].hints.default_enabled);
        assert_eq!(
            c.providers[0].hints.default_config.to_json()["type"],
            "container"
        );
        // Settings written go over the provider's: its `type` stays, the `paths` are the user's.
        let c = parse_yaml(
            "filebeat.autodiscover.providers:\n  - type: docker\n    hints.enabled: true\n    hints.default_config:\n      enabled: false\n      paths: ['/logs/${data.container.id}/*.log']\n",
        )
        .unwrap();
        let d = c.providers[0].hints.default_config.to_json();
        assert!(!c.providers[0].hints.default_enabled);
        assert_eq!(d["type"], "container", "{d}");
        assert_eq!(
            d["paths"],
            serde_json::json!(["/logs/${data.container.id}/*.log"])
        );
        assert!(d.get("enabled").is_none(), "{d}");
    }
}
