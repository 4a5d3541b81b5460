//! A module block (`- module: golang ...`): the keys every module has, validated here, and the
//! module's own keys handed to it.
//!
//! Validation goes raw -> checked in two steps: the block's common keys deserialize strictly
//! (a typo is an error with file:line and a suggestion), then the module, metricset names and
//! hosts are checked against the module's table, and every fetcher is built (its own keys
//! deserialized by the module), collecting every problem before reporting.

use std::time::Duration;

use serde::Deserialize;
use skiff_config::{ConfigError, ConfigErrors, Node, NodeValue};

use crate::host::HostSpec;
use crate::http::{HttpOptions, HttpSettings};
use crate::modules::{MODULES, find};
use crate::{FetchContext, Fetcher};

/// The default `period`: 10 s, as Metricbeat.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(10);
/// The default `max_start_delay`: 10 s, as Metricbeat's `metricbeat.max_start_delay`.
pub const DEFAULT_MAX_START_DELAY: Duration = Duration::from_secs(10);

/// The keys every module block has (besides `enabled`, `fields`, `fields_under_root`, `tags`,
/// `index`, `pipeline`, `keep_null` and `processors`, which the topology handles as for every
/// input).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockConfig {
    /// `module`: the module's name. Required.
    pub module: String,
    /// `metricsets`: the metricsets to run. Default: the module's default metricsets (an error
    /// for a module without defaults).
    #[serde(default)]
    pub metricsets: Option<Vec<String>>,
    /// `period`: how often each metricset of each host is fetched. Default 10s.
    #[serde(default)]
    pub period: Option<skiff_config::Duration>,
    /// `hosts`: the services to ask. Default: the module's default hosts (none for `system`).
    #[serde(default)]
    pub hosts: Option<Vec<String>>,
    /// `timeout`: bound on one fetch. Default: `period`.
    #[serde(default)]
    pub timeout: Option<skiff_config::Duration>,
    /// `username`: credentials for the service (credentials in a host URL win). Default: none.
    #[serde(default)]
    pub username: Option<String>,
    /// `password`. Default: none.
    #[serde(default)]
    pub password: Option<String>,
    /// `max_start_delay`: the start-up jitter bound (each fetcher first waits a random time
    /// below it). Default: `metricbeat.max_start_delay`, itself 10s; `0s` disables it.
    #[serde(default)]
    pub max_start_delay: Option<skiff_config::Duration>,
    /// `service.name`: stamped on events. Default: none.
    #[serde(default)]
    pub service: Option<ServiceConfig>,
}

/// `service.*` of a block.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// `service.name`. Default: none.
    #[serde(default)]
    pub name: Option<String>,
}

const COMMON_KEYS: &[&str] = &[
    "module",
    "metricsets",
    "period",
    "hosts",
    "timeout",
    "username",
    "password",
    "max_start_delay",
    "service",
];
const HTTP_KEYS: &[&str] = &[
    "ssl",
    "headers",
    "bearer_token_file",
    "query",
    "connect_timeout",
];

/// A validated block: one fetcher per metricset and host.
pub struct Block {
    /// The module's name.
    pub module: &'static str,
    /// `service.name`, if set.
    pub service_name: Option<String>,
    /// Start-up jitter bound.
    pub max_start_delay: Duration,
    /// Every fetcher, with its context.
    pub fetchers: Vec<(FetchContext, Box<dyn Fetcher>)>,
    /// Where the fetchers count (`skiff.metrics.*`): the agent's registry once built as an
    /// input, a private one otherwise.
    pub metrics: skiff_metrics::Registry,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block")
            .field("module", &self.module)
            .field("fetchers", &self.fetchers.len())
            .finish()
    }
}

fn err(at: &Node, msg: impl Into<String>) -> ConfigError {
    ConfigError::new(at.path.clone(), at.mark.clone(), msg)
}

fn take(node: &Node, keys: &[&str]) -> (Node, Node) {
    let mut rest = node.clone();
    let mut taken = Vec::new();
    for k in keys {
        if let Some(n) = rest.remove(k) {
            taken.push(((*k).to_owned(), n));
        }
    }
    let mut t = Node::new(NodeValue::Map(taken), node.mark.clone());
    t.path = node.path.clone();
    (t, rest)
}

/// A module's "unknown key" error with no suggestion of its own may be a misspelt common key
/// (`hsts` for `hosts`): suggest one of those.
fn suggest_common(e: ConfigError, block: &Node) -> ConfigError {
    if e.suggestion.is_some() || !e.message.starts_with("unknown key") {
        return e;
    }
    let prefix = if block.path.is_empty() {
        String::new()
    } else {
        format!("{}.", block.path)
    };
    let key = e.path.strip_prefix(&prefix).unwrap_or(&e.path).to_owned();
    if key.contains('.') {
        return e;
    }
    let known: Vec<&str> = COMMON_KEYS
        .iter()
        .chain(HTTP_KEYS)
        .chain(skiff_pipeline::InputCommon::KEYS)
        .copied()
        .collect();
    let s = skiff_config::suggest(&key, &known);
    e.with_suggestion(s)
}

impl Block {
    /// Validates a block (the input's own keys: `type`, `enabled`, `fields`, ... removed).
    pub fn from_node(node: &Node) -> Result<Block, ConfigErrors> {
        let (common, rest) = take(node, COMMON_KEYS);
        let (http, own) = take(&rest, HTTP_KEYS);
        let mut errors = Vec::new();
        let cfg: BlockConfig = match common.deserialize() {
            Ok(c) => c,
            Err(e) => {
                errors.push(e);
                let http: Result<HttpOptions, _> = http.deserialize();
                errors.extend(http.err());
                return Err(ConfigErrors(errors));
            }
        };
        let http: HttpOptions = match http.deserialize() {
            Ok(h) => h,
            Err(e) => {
                errors.push(e);
                HttpOptions::default()
            }
        };
        let at = |k: &str| node.get(k).unwrap_or(node);
        let Some(module) = find(&cfg.module) else {
            let names: Vec<&str> = MODULES.iter().map(|m| m.name()).collect();
            errors.push(
                err(
                    at("module"),
                    format!(
                        "unknown module `{}` (skiff has: {})",
                        cfg.module,
                        names.join(", ")
                    ),
                )
                .with_suggestion(skiff_config::suggest(&cfg.module, &names)),
            );
            return Err(ConfigErrors(errors));
        };
        let metricsets: Vec<String> = match &cfg.metricsets {
            Some(m) if !m.is_empty() => m.clone(),
            _ if !module.default_metricsets().is_empty() => module
                .default_metricsets()
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            _ => {
                errors.push(err(
                    node,
                    format!(
                        "module `{}` has no default metricsets: list them in `metricsets` (one or more of: {})",
                        module.name(),
                        module.metricsets().join(", ")
                    ),
                ));
                Vec::new()
            }
        };
        for m in &metricsets {
            if !module.metricsets().contains(&m.as_str()) {
                errors.push(
                    err(
                        at("metricsets"),
                        format!(
                            "module `{}` has no metricset `{m}` (it has: {})",
                            module.name(),
                            module.metricsets().join(", ")
                        ),
                    )
                    .with_suggestion(skiff_config::suggest(m, module.metricsets())),
                );
            }
        }
        let period = cfg.period.map_or(DEFAULT_PERIOD, |d| d.0);
        if period.is_zero() {
            errors.push(err(at("period"), "`period` must be positive, like `10s`"));
        }
        let timeout = cfg.timeout.map_or(period, |d| d.0);
        let hosts: Vec<Option<HostSpec>> = match &cfg.hosts {
            Some(h) if !h.is_empty() => h.iter().map(|h| Some(HostSpec::new(h))).collect(),
            _ if module.default_hosts().is_empty() => vec![None],
            _ => module
                .default_hosts()
                .iter()
                .map(|h| Some(HostSpec::new(h)))
                .collect(),
        };
        let mut seen = std::collections::HashSet::new();
        for h in hosts.iter().flatten() {
            if !seen.insert(h.raw.as_str()) {
                errors.push(err(
                    at("hosts"),
                    format!("host `{}` is listed twice in `hosts`", h.raw),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let http = HttpSettings::new(http);
        let mut fetchers = Vec::new();
        let mut seen_errors = std::collections::HashSet::new();
        for metricset in &metricsets {
            for host in &hosts {
                let ctx = FetchContext {
                    module: module.name(),
                    metricset: metricset.clone(),
                    host: host.clone(),
                    period,
                    timeout,
                    username: cfg.username.clone(),
                    password: cfg.password.clone(),
                    http: http.clone(),
                };
                match module.build(metricset, &ctx, &own) {
                    Ok(f) => fetchers.push((ctx, f)),
                    Err(e) => {
                        // The same own-key problem shows once, not once per host.
                        for e in e.0.into_iter().map(|e| suggest_common(e, node)) {
                            if seen_errors.insert(e.to_string()) {
                                errors.push(e);
                            }
                        }
                    }
                }
            }
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Ok(Block {
            module: module.name(),
            service_name: cfg.service.and_then(|s| s.name),
            max_start_delay: cfg.max_start_delay.map_or(DEFAULT_MAX_START_DELAY, |d| d.0),
            fetchers,
            metrics: skiff_metrics::Registry::new(),
        })
    }
}
