//! The `output.elasticsearch` settings, with the Beats 8 names and defaults.

use std::collections::BTreeMap;

use serde::Deserialize;
use skiff_config::Duration;
use skiff_tls::SslConfig;

/// `output.elasticsearch.*`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EsConfig {
    /// enabled: accepted for compatibility (a disabled output is not built by the binary).
    /// Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// hosts: `es1`, `es1:9200`, `http://es1:9200/prefix`, `https://es1`. The port defaults to
    /// 9200, the scheme to `protocol`. Required.
    pub hosts: Vec<String>,
    /// protocol: `http` or `https`, for hosts written without a scheme. Default `http` (`https`
    /// when an `ssl` block is enabled).
    #[serde(default)]
    pub protocol: Option<String>,
    /// path: a path prefix added before every API path (behind a proxy). Default none.
    #[serde(default)]
    pub path: Option<String>,
    /// headers: HTTP headers added to every request (an `Authorization: Bearer ...` header works
    /// for token auth). Default none.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// parameters: URL parameters added to every bulk request. Default none.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// worker (or `workers`): clients per host. Default 1.
    #[serde(default = "one", alias = "workers")]
    pub worker: usize,
    /// loadbalance: send to all hosts at once; false uses one host and fails over. Default true.
    #[serde(default = "yes")]
    pub loadbalance: bool,
    /// bulk_max_size: events per `_bulk` request. Default 1600.
    #[serde(default = "bulk_max_size")]
    pub bulk_max_size: usize,
    /// compression_level: gzip level of request bodies, 0 (off) to 9. Default 1.
    #[serde(default = "one_u32")]
    pub compression_level: u32,
    /// timeout: for one HTTP request (connect, send, response). Default 90s.
    #[serde(default = "timeout")]
    pub timeout: Duration,
    /// max_retries: attempts per batch before its events are dropped; -1 retries forever. Default
    /// -1 (Filebeat ignores this setting and always retries; so do we unless it is set).
    #[serde(default = "forever")]
    pub max_retries: i64,
    /// backoff.init / backoff.max: the wait after a failure, doubling up to max. Default 1s / 60s.
    #[serde(default)]
    pub backoff: Backoff,
    /// username: for HTTP basic auth. Default none.
    #[serde(default)]
    pub username: Option<String>,
    /// password: for HTTP basic auth. Default none.
    #[serde(default)]
    pub password: Option<String>,
    /// api_key: `id:api_key` as returned by the create API key API (sent as
    /// `Authorization: ApiKey base64(id:api_key)`); an already encoded key is sent as is.
    /// Default none.
    #[serde(default)]
    pub api_key: Option<String>,
    /// ssl: TLS settings (see skiff-tls). Default: TLS only for `https` hosts, system CAs.
    #[serde(default)]
    pub ssl: Option<SslConfig>,
    /// index: the index or data stream, a format string. Default
    /// `%{[@metadata.beat]}-%{[agent.version]}`: `filebeat-<version>` for log events,
    /// `packetbeat-<version>` for network events, `metricbeat-<version>` for metrics (data
    /// streams, as in the Beats 8).
    #[serde(default)]
    pub index: Option<String>,
    /// indices: rules `{index, mappings, default, when}`; the first that matches picks the index.
    /// Default none.
    #[serde(default)]
    pub indices: Vec<RuleConfig>,
    /// pipeline: the ingest pipeline, a format string. Default none.
    #[serde(default)]
    pub pipeline: Option<String>,
    /// pipelines: rules like `indices`, with `pipeline` instead of `index`. Default none.
    #[serde(default)]
    pub pipelines: Vec<RuleConfig>,
    /// escape_html: accepted for compatibility (skiff never escapes HTML). Default false.
    #[serde(default)]
    pub escape_html: bool,
    /// allow_older_versions: accepted; skiff speaks the 7.x/8.x bulk API either way. Default true.
    #[serde(default = "yes")]
    pub allow_older_versions: bool,
    /// proxy_url: an HTTP proxy for every request. Default none.
    #[serde(default)]
    pub proxy_url: Option<String>,
    /// proxy_disable: ignore proxy environment variables. Default false.
    #[serde(default)]
    pub proxy_disable: bool,
    /// preset: accepted for compatibility (`balanced`, `custom`, ...); explicit settings apply.
    /// Default none.
    #[serde(default)]
    pub preset: Option<String>,
}

/// `backoff.*`: shared by every output (`init` 1s, `max` 60s).
pub use skiff_pipeline::BackoffConfig as Backoff;

/// One `indices` / `pipelines` rule.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// index: the name, a format string (in `indices`).
    #[serde(default)]
    pub index: Option<String>,
    /// pipeline: the name, a format string (in `pipelines`).
    #[serde(default)]
    pub pipeline: Option<String>,
    /// mappings: the rendered name is looked up here and replaced by the value. Default none.
    #[serde(default)]
    pub mappings: BTreeMap<String, String>,
    /// default: used when the rendered name has no mapping, or cannot be rendered (a field is
    /// missing). Default none (the rule does not apply).
    #[serde(default)]
    pub default: Option<String>,
    /// when: the condition (`equals`, `contains`, `regexp`, `has_fields`, `range`, `and`, `or`,
    /// `not`), as for processors. Default: always. Compiled from the configuration node by
    /// [`crate::select::Routing::new`], so that its errors carry their key path.
    #[serde(default)]
    pub when: Option<serde_json::Value>,
}

fn yes() -> bool {
    true
}
fn one() -> usize {
    1
}
fn one_u32() -> u32 {
    1
}
fn bulk_max_size() -> usize {
    1600
}
fn timeout() -> Duration {
    Duration(std::time::Duration::from_secs(90))
}
fn forever() -> i64 {
    -1
}
/// The default `index`.
/// (`filebeat` stands for the event's `@metadata.beat`; an event without one is Filebeat's.)
pub const DEFAULT_INDEX: &str = "filebeat-%{[agent.version]}";

/// One Elasticsearch endpoint: the URL every API path is appended to.
#[derive(Clone, Debug, PartialEq)]
pub struct Host {
    /// `http://es1:9200/prefix` (no trailing slash).
    pub base: String,
    /// `es1` (no brackets for IPv6), for TLS names and messages.
    pub name: String,
    /// The port.
    pub port: u16,
    /// Whether it is https.
    pub tls: bool,
}

/// Parses a `hosts` entry as Beats does: scheme from the entry or `protocol`, port 9200 unless
/// given, path from the entry then `path`.
pub fn parse_host(entry: &str, protocol: &str, path: Option<&str>) -> Result<Host, String> {
    let entry = entry.trim();
    if entry.is_empty() {
        return Err("empty host".into());
    }
    let (scheme, rest) = match entry.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => (protocol.to_ascii_lowercase(), entry),
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "`{entry}`: the scheme must be http or https, not `{scheme}`"
        ));
    }
    let (authority, url_path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (name, port) = if let Some(stripped) = authority.strip_prefix('[') {
        let end = stripped
            .find(']')
            .ok_or_else(|| format!("`{entry}`: unclosed `[` in an IPv6 address"))?;
        let after = &stripped[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(format!("`{entry}`: expected `:port` after `]`")),
        };
        (stripped[..end].to_owned(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (authority.to_owned(), None),
        }
    };
    if name.is_empty() {
        return Err(format!("`{entry}`: no host name"));
    }
    let port: u16 = match port {
        None => 9200,
        Some(p) => p
            .parse()
            .map_err(|_| format!("`{entry}`: `{p}` is not a port number"))?,
    };
    let mut prefix = url_path.trim_end_matches('/').to_owned();
    if let Some(p) = path {
        let p = p.trim_matches('/');
        if !p.is_empty() {
            prefix.push('/');
            prefix.push_str(p);
        }
    }
    let host_part = if name.contains(':') {
        format!("[{name}]")
    } else {
        name.clone()
    };
    Ok(Host {
        base: format!("{scheme}://{host_part}:{port}{prefix}"),
        name,
        port,
        tls: scheme == "https",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_as_beats_reads_them() {
        let h = parse_host("es1", "http", None).unwrap();
        assert_eq!(h.base, "http://es1:9200");
        let h = parse_host("https://es1/pre/", "http", Some("/more")).unwrap();
        assert_eq!(
            (h.base.as_str(), h.tls),
            ("https://es1:9200/pre/more", true)
        );
        let h = parse_host("10.0.0.1:9201", "https", None).unwrap();
        assert_eq!(h.base, "https://10.0.0.1:9201");
        let h = parse_host("[::1]:9300", "http", None).unwrap();
        assert_eq!(
            (h.base.as_str(), h.name.as_str()),
            ("http://[::1]:9300", "::1")
        );
        assert!(parse_host("ftp://x", "http", None).is_err());
        assert!(parse_host("es1:port", "http", None).is_err());
    }
}
