//! `dns`: DNS lookups of event fields (Filebeat's): reverse (`type: reverse` or `PTR`, an IP
//! address to its host name) and forward (`A`, `AAAA`, `TXT`, a name to its addresses or
//! texts).
//!
//! ```yaml
//! - dns:
//!     type: reverse
//!     fields: {source.ip: source.domain, destination.ip: destination.domain}
//!     nameservers: ['192.0.2.1']      # default: those of /etc/resolv.conf
//!     timeout: 500ms                  # per nameserver
//!     tag_on_failure: [_dns_reverse_lookup_failed]
//! ```
//!
//! As Filebeat: a PTR answer is written as a string, the others as a list of strings;
//! `action: append` (default) adds to a target that exists, `replace` overwrites it; a source
//! field that is missing or not a string is skipped silently; a failed lookup adds the
//! `tag_on_failure` tags (once per event) and writes nothing. Answers are cached for their TTL
//! (at least `success_cache.min_ttl`), failures for `failure_cache.ttl` ([`cache`]).
//!
//! How it keeps the pipeline going: a cache hit is answered on the spot; a miss is looked up on
//! the resolver thread ([`resolver`]) and waited for at most `timeout` per nameserver, the
//! waiting input's Tokio worker handing its other tasks over meanwhile. So a slow nameserver
//! slows the input whose events miss the cache, by at most the timeout per distinct value, as
//! in Filebeat, and never the other inputs.
//!
//! `transport: tls` is DNS over TLS (port 853 by default); the server certificate is checked
//! against the system's trust store, or the CAs of `ssl.certificate_authorities` (a skiff
//! addition, the `ssl.*` client settings of skiff-tls).

pub mod cache;
pub mod resolver;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use skiff_config::{ConfigError, ConfigErrors, Node};
use skiff_event::{Event, Map, Value};
use skiff_pipeline::{BuildContext, Processor, Verdict};

use crate::{add_tag, error_at, plugin};
use cache::TtlCache;
use resolver::{Answer, LookupError, Lookups, QueryType, Setup};

plugin!(DNS, "dns", build);

/// `success_cache` / `failure_cache`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CacheConfig {
    /// `capacity.initial` (1000) and `capacity.max` (10000).
    #[serde(default)]
    capacity: Capacity,
    /// `min_ttl`: the least time an answer is kept. Default 1m.
    #[serde(default)]
    min_ttl: Option<skiff_config::Duration>,
    /// `ttl`: the time a failure is kept. Default 1m.
    #[serde(default)]
    ttl: Option<skiff_config::Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Capacity {
    #[serde(default = "initial_capacity")]
    initial: usize,
    #[serde(default = "max_capacity")]
    max: usize,
}

impl Default for Capacity {
    fn default() -> Self {
        Capacity {
            initial: initial_capacity(),
            max: max_capacity(),
        }
    }
}

fn initial_capacity() -> usize {
    1000
}
fn max_capacity() -> usize {
    10_000
}

/// The largest cache skiff accepts (entries): a bound on memory whatever the configuration.
const CACHE_LIMIT: usize = 10_000_000;

/// `dns`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `type`: reverse, PTR, A, AAAA or TXT. Required.
    #[serde(rename = "type")]
    kind: String,
    /// `fields`: source field -> target field. Required.
    fields: Map,
    /// `action`: append (default) or replace.
    #[serde(default)]
    action: Option<String>,
    /// `nameservers`: `ip` or `ip:port`. Default: /etc/resolv.conf's.
    #[serde(default)]
    nameservers: Vec<String>,
    /// `timeout`: per nameserver. Default 500ms.
    #[serde(default)]
    timeout: Option<skiff_config::Duration>,
    /// `tag_on_failure`: tags added when a lookup fails. Default none.
    #[serde(default)]
    tag_on_failure: Vec<String>,
    /// `transport`: udp (default) or tls.
    #[serde(default)]
    transport: Option<String>,
    /// `success_cache`.
    #[serde(default)]
    success_cache: CacheConfig,
    /// `failure_cache`.
    #[serde(default)]
    failure_cache: CacheConfig,
    /// `ssl` (skiff): the TLS client settings for `transport: tls`.
    #[serde(default)]
    ssl: Option<skiff_tls::SslConfig>,
}

struct Dns {
    kind: QueryType,
    replace: bool,
    fields: Vec<(String, String)>,
    tags: Vec<String>,
    lookups: Lookups,
    success: TtlCache<Arc<[String]>>,
    failure: TtlCache<String>,
    min_ttl: Duration,
    failure_ttl: Duration,
}

fn build(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    let cfg: Config = node.deserialize()?;
    let at = |key: &str, msg: String| error_at(node.get(key).unwrap_or(node), msg);
    let mut errs: Vec<ConfigError> = Vec::new();
    let kind = QueryType::parse(&cfg.kind);
    if kind.is_none() {
        errs.push(at(
            "type",
            format!(
                "unknown dns query type `{}`: use reverse (or PTR), A, AAAA or TXT",
                cfg.kind
            ),
        ));
    }
    let replace = match cfg
        .action
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("" | "append") => false,
        Some("replace") => true,
        Some(other) => {
            errs.push(at(
                "action",
                format!("invalid dns field action `{other}`: use append or replace"),
            ));
            false
        }
    };
    let tls = match cfg
        .transport
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("udp") => false,
        Some("tls") => true,
        Some(other) => {
            errs.push(at(
                "transport",
                format!("invalid dns transport `{other}`: use udp or tls"),
            ));
            false
        }
    };
    let mut fields = Vec::new();
    let mut leaves = Vec::new();
    crate::fields::leaves("", &cfg.fields, &mut leaves);
    for (source, target) in leaves {
        match target {
            Value::String(t) if !t.is_empty() => fields.push((source, t)),
            other => errs.push(at(
                "fields",
                format!("the target field for the dns lookup of `{source}` must be a field name, found {other}"),
            )),
        }
    }
    if fields.is_empty() && cfg.fields.is_empty() {
        errs.push(at(
            "fields",
            "give at least one source: target pair, e.g. `source.ip: source.domain`".into(),
        ));
    }
    let port = if tls { 853 } else { 53 };
    let mut servers = Vec::new();
    for ns in &cfg.nameservers {
        match nameserver(ns, port) {
            Some(a) => servers.push(a),
            None => errs.push(at(
                "nameservers",
                format!(
                    "`{ns}` is not an IP address or ip:port (write [v6]:port for IPv6 with a port)"
                ),
            )),
        }
    }
    if cfg.nameservers.is_empty() {
        match resolver::system_nameservers() {
            Ok(ips) if !ips.is_empty() => {
                servers.extend(ips.into_iter().map(|ip| SocketAddr::new(ip, port)));
            }
            Ok(_) => errs.push(at(
                "nameservers",
                "/etc/resolv.conf lists no nameserver: give `nameservers`".into(),
            )),
            Err(e) => errs.push(at("nameservers", format!("{e}: give `nameservers`"))),
        }
    }
    let timeout = cfg.timeout.map_or(Duration::from_millis(500), |d| d.0);
    if timeout.is_zero() {
        errs.push(at("timeout", "must be more than 0".into()));
    }
    let min_ttl = cfg
        .success_cache
        .min_ttl
        .map_or(Duration::from_secs(60), |d| d.0);
    let failure_ttl = cfg
        .failure_cache
        .ttl
        .map_or(Duration::from_secs(60), |d| d.0);
    if min_ttl.is_zero() {
        errs.push(at(
            "success_cache",
            "success_cache.min_ttl must be > 0".into(),
        ));
    }
    if failure_ttl.is_zero() {
        errs.push(at("failure_cache", "failure_cache.ttl must be > 0".into()));
    }
    for (name, c) in [
        ("success_cache", &cfg.success_cache),
        ("failure_cache", &cfg.failure_cache),
    ] {
        if c.capacity.max == 0 || c.capacity.max > CACHE_LIMIT {
            errs.push(at(
                name,
                format!("{name}.capacity.max must be between 1 and {CACHE_LIMIT}"),
            ));
        } else if c.capacity.initial > c.capacity.max {
            errs.push(at(
                name,
                format!("{name}.capacity.max must be >= {name}.capacity.initial"),
            ));
        }
    }
    let tls_config = match (tls, cfg.ssl.as_ref()) {
        (false, Some(_)) => {
            errs.push(at(
                "ssl",
                "`ssl` is for `transport: tls`; remove it or set the transport".into(),
            ));
            None
        }
        (false, None) => None,
        (true, ssl) => match skiff_tls::client_config(&ssl.cloned().unwrap_or_default()) {
            Ok(c) => Some(c),
            Err(e) => {
                errs.push(at("ssl", e.to_string()));
                None
            }
        },
    };
    let (Some(kind), true) = (kind, errs.is_empty()) else {
        return Err(ConfigErrors(errs));
    };
    let setup = Setup {
        servers,
        tls: tls_config,
        timeout,
    };
    let lookups = Lookups::start(&setup, kind).map_err(|e| {
        ConfigErrors(vec![error_at(
            node,
            format!("cannot start the DNS resolver thread: {e}"),
        )])
    })?;
    Ok(Box::new(Dns {
        kind,
        replace,
        fields,
        tags: cfg.tag_on_failure,
        lookups,
        success: TtlCache::new(
            cfg.success_cache.capacity.initial,
            cfg.success_cache.capacity.max,
        ),
        failure: TtlCache::new(
            cfg.failure_cache.capacity.initial,
            cfg.failure_cache.capacity.max,
        ),
        min_ttl,
        failure_ttl,
    }))
}

/// `ip` or `ip:port` (`[v6]:port`).
fn nameserver(s: &str, default_port: u16) -> Option<SocketAddr> {
    let s = s.trim();
    s.parse::<SocketAddr>().ok().or_else(|| {
        s.trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, default_port))
    })
}

impl Dns {
    /// The values for `value`: from the caches, else from the nameservers (and cached).
    fn resolve(&self, value: &str) -> Result<Arc<[String]>, String> {
        let now = Instant::now();
        if let Some(hit) = self.success.get(value, now) {
            return Ok(hit);
        }
        if let Some(failed) = self.failure.get(value, now) {
            return Err(failed);
        }
        match self.lookups.lookup(value) {
            Ok(Answer { values, ttl }) => {
                self.success
                    .put(value, values.clone(), ttl.max(self.min_ttl), Instant::now());
                Ok(values)
            }
            Err(e @ LookupError::Unavailable(_)) => Err(e.to_string()),
            Err(e) => {
                let msg = e.to_string();
                self.failure
                    .put(value, msg.clone(), self.failure_ttl, Instant::now());
                Err(msg)
            }
        }
    }

    /// Writes the result at `target` by `action`.
    fn set(&self, event: &mut Event, target: &str, values: &[String]) {
        let new: Vec<Value> = if self.kind == QueryType::Ptr {
            values
                .first()
                .cloned()
                .map(Value::String)
                .into_iter()
                .collect()
        } else {
            values.iter().cloned().map(Value::String).collect()
        };
        let scalar = self.kind == QueryType::Ptr;
        let old = if self.replace {
            None
        } else {
            event.get(target).map(|f| f.to_value())
        };
        let value = match old {
            None | Some(Value::Null) if scalar => new.into_iter().next().unwrap_or(Value::Null),
            None | Some(Value::Null) => Value::Array(new),
            Some(Value::Array(mut a)) => {
                a.extend(new);
                Value::Array(a)
            }
            Some(s @ Value::String(_)) => {
                let mut a = vec![s];
                a.extend(new);
                Value::Array(a)
            }
            // Filebeat appends only to strings and string lists; anything else is replaced.
            Some(_) if scalar => new.into_iter().next().unwrap_or(Value::Null),
            Some(_) => Value::Array(new),
        };
        event.insert(target, value);
    }
}

impl Processor for Dns {
    fn process(&self, event: &mut Event) -> Verdict {
        let mut failed = false;
        for (source, target) in &self.fields {
            // A missing or non-string source is not a failure (Filebeat's rule).
            let Some(value) = event
                .get(source)
                .and_then(|f| f.as_str().map(str::to_owned))
            else {
                continue;
            };
            match self.resolve(&value) {
                Ok(values) => self.set(event, target, &values),
                Err(e) => {
                    tracing::debug!(field = %source, value = %value, error = %e, "dns lookup failed");
                    failed = true;
                }
            }
        }
        if failed {
            for t in &self.tags {
                add_tag(event, "tags", t);
            }
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::testing::*;

    #[test]
    fn configuration_problems_are_reported_together() {
        let e = build(
            "processors:\n  - dns:\n      type: MX\n      action: merge\n      transport: tcp\n      fields: {source.ip: 1}\n      nameservers: [not-an-ip]\n      success_cache.capacity: {initial: 10, max: 5}\n      failure_cache.ttl: 0s\n",
        )
        .err()
        .unwrap();
        let text = e.to_string();
        for want in [
            "unknown dns query type `MX`",
            "invalid dns field action `merge`",
            "invalid dns transport `tcp`",
            "target field for the dns lookup of `source.ip`",
            "`not-an-ip` is not an IP address",
            "success_cache.capacity.max must be >= success_cache.capacity.initial",
            "failure_cache.ttl must be > 0",
        ] {
            assert!(text.contains(want), "{want} missing in {text}");
        }
        assert!(
            build("processors: [{dns: {type: reverse, fields: {a: b}, nameservers: ['127.0.0.1'], ssl: {verification_mode: none}}}]")
                .err()
                .unwrap()
                .to_string()
                .contains("`ssl` is for `transport: tls`")
        );
    }

    #[test]
    fn nameserver_forms() {
        use super::nameserver;
        assert_eq!(
            nameserver("192.0.2.1", 53).unwrap().to_string(),
            "192.0.2.1:53"
        );
        assert_eq!(
            nameserver("192.0.2.1:5353", 53).unwrap().to_string(),
            "192.0.2.1:5353"
        );
        assert_eq!(nameserver("::1", 853).unwrap().to_string(), "[::1]:853");
        assert_eq!(
            nameserver("[2001:db8::1]:54", 53).unwrap().to_string(),
            "[2001:db8::1]:54"
        );
        assert!(nameserver("dns.example", 53).is_none());
    }
}
