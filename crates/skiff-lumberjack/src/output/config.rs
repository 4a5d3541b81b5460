//! `output.logstash` settings, with the Beats names and defaults.

use serde::Deserialize;
use skiff_config::{ConfigError, Duration, Node};
use skiff_tls::SslConfig;

/// The port of a host written without one (the beats input's default).
pub const DEFAULT_PORT: u16 = 5044;

/// `output.logstash.*`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogstashConfig {
    /// `enabled`: default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `hosts`: `host:port` of Logstash beats inputs (or skiff lumberjack inputs); the port is
    /// 5044 when left out. Required.
    pub hosts: Vec<String>,
    /// `port`: the port for hosts written without one. Default 5044.
    #[serde(default = "default_port")]
    pub port: u16,
    /// `index`: sets `@metadata.beat` (the root of the index name Logstash's elasticsearch
    /// output uses by default). Default: the Beat name the input stamped (`filebeat`).
    #[serde(default)]
    pub index: Option<String>,
    /// `loadbalance`: send to all hosts at once (true) or use one and fail over (false, default).
    #[serde(default)]
    pub loadbalance: bool,
    /// `worker` (`workers`): connections per host. Default 1.
    #[serde(default = "one", alias = "workers")]
    pub worker: usize,
    /// `bulk_max_size`: the most events in one batch (and one window). Default 2048.
    #[serde(default = "bulk")]
    pub bulk_max_size: usize,
    /// `slow_start`: start with a window of 10 events and grow it by half on every fully
    /// acknowledged batch up to `bulk_max_size`; halve it on an error. Default false.
    #[serde(default)]
    pub slow_start: bool,
    /// `pipelining`: windows in flight on one connection. With 2 or more, a batch of 512
    /// events or more is sent as that many windows (so Logstash works on the first while the
    /// next is encoded and sent), and `slow_start` windows are sent without waiting for each
    /// ACK. Batches are not overlapped (the pipeline hands a client one batch at a time):
    /// raise `worker` for that. 0 = one window at a time. Default 2.
    #[serde(default = "two")]
    pub pipelining: usize,
    /// `ttl`: close and reopen a connection this long after it was opened (so a load balancer
    /// in front of Logstash can rebalance); checked between batches. 0 = never. Default 0.
    #[serde(default)]
    pub ttl: Duration,
    /// `compression_level`: zlib level 0 (off) to 9. Default 3.
    #[serde(default = "three")]
    pub compression_level: u32,
    /// `timeout`: for connecting, for writing a window and for each ACK (or keep-alive ACK)
    /// to arrive. Default 30s.
    #[serde(default = "skiff_config::seconds::<30>")]
    pub timeout: Duration,
    /// `max_retries`: attempts per batch; negative retries forever. Default -1 (skiff never
    /// drops; Beats defaults to 3, which Filebeat ignores anyway).
    #[serde(default = "forever")]
    pub max_retries: i64,
    /// `backoff.*`: waits between retries after a connection error.
    #[serde(default)]
    pub backoff: Backoff,
    /// `escape_html`: escape `<`, `>` and `&` in strings, as Go's encoder does. Default false.
    #[serde(default)]
    pub escape_html: bool,
    /// `ssl.*`: TLS (see `skiff-tls`). Default: no TLS.
    #[serde(default)]
    pub ssl: Option<SslConfig>,
    /// `proxy_url`: a SOCKS5 proxy. Not supported: an error when set.
    #[serde(default)]
    pub proxy_url: Option<String>,
    /// `proxy_use_local_resolver`: accepted for compatibility (no proxy support).
    #[serde(default)]
    pub proxy_use_local_resolver: Option<bool>,
    /// `codec`: not available for this output in Beats either; refused when set.
    #[serde(default)]
    pub codec: Option<serde_json::Value>,
}

/// `backoff.*`: shared by every output (`init` 1s, `max` 60s).
pub use skiff_pipeline::BackoffConfig as Backoff;

fn yes() -> bool {
    true
}
fn one() -> usize {
    1
}
fn two() -> usize {
    2
}
fn three() -> u32 {
    3
}
fn bulk() -> usize {
    2048
}
fn forever() -> i64 {
    -1
}
fn default_port() -> u16 {
    DEFAULT_PORT
}
/// One `hosts` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    /// Name or address (no brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl Host {
    /// `host:port` (IPv6 in brackets), for connecting and for messages.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Parses `host`, `host:port`, `[v6]:port` (a `tcp://` prefix is tolerated).
pub fn parse_host(s: &str, default_port: u16) -> Result<Host, String> {
    let t = s.trim();
    let t = t.strip_prefix("tcp://").unwrap_or(t);
    if t.contains("://") {
        return Err(format!(
            "{s:?}: Logstash hosts are host:port (like `logstash:5044`), not URLs"
        ));
    }
    let (host, port) = if let Some(rest) = t.strip_prefix('[') {
        let Some((h, after)) = rest.split_once(']') else {
            return Err(format!("{s:?}: missing `]` after an IPv6 address"));
        };
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(format!("{s:?}: unexpected text after `]`")),
        };
        (h.to_owned(), port)
    } else if t.matches(':').count() > 1 {
        // A bare IPv6 address.
        (t.to_owned(), None)
    } else {
        match t.split_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (t.to_owned(), None),
        }
    };
    if host.is_empty() {
        return Err(format!("{s:?}: the host name is empty"));
    }
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{s:?}: the port {p:?} is not a number from 1 to 65535"))?,
    };
    Ok(Host { host, port })
}

/// Checks what serde cannot; every problem is reported.
pub fn validate(cfg: &LogstashConfig, node: &Node) -> Vec<ConfigError> {
    let mut errs = Vec::new();
    let at = |key: &str, msg: String| {
        let n = node.get(key).unwrap_or(node);
        ConfigError::new(n.path().to_owned(), n.mark.clone(), msg)
    };
    if cfg.hosts.is_empty() {
        errs.push(at(
            "hosts",
            "list at least one Logstash host, like `hosts: [\"logstash:5044\"]`".into(),
        ));
    }
    for h in &cfg.hosts {
        if let Err(e) = parse_host(h, cfg.port) {
            errs.push(at("hosts", e));
        }
    }
    if cfg.compression_level > 9 {
        errs.push(at(
            "compression_level",
            format!(
                "{} is not a zlib level: use 0 (off) to 9",
                cfg.compression_level
            ),
        ));
    }
    if cfg.bulk_max_size == 0 {
        errs.push(at("bulk_max_size", "must be at least 1".into()));
    }
    if cfg.worker == 0 {
        errs.push(at("worker", "must be at least 1".into()));
    }
    if cfg.timeout.0.is_zero() {
        errs.push(at("timeout", "must be more than 0 (default 30s)".into()));
    }
    if cfg.proxy_url.is_some() {
        errs.push(at(
            "proxy_url",
            "SOCKS5 proxies are not supported by skiff yet: remove proxy_url and connect directly"
                .into(),
        ));
    }
    if cfg.codec.is_some() {
        errs.push(at(
            "codec",
            "the logstash output always sends JSON (as in Beats): remove codec".into(),
        ));
    }
    if let Some(ssl) = &cfg.ssl
        && ssl.is_enabled()
        && let Err(e) = skiff_tls::client_config(ssl)
    {
        errs.push(at("ssl", e.to_string()));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let h = parse_host("ls1", 5044).unwrap();
        assert_eq!(h.addr(), "ls1:5044");
        assert_eq!(parse_host("ls1:5045", 5044).unwrap().port, 5045);
        assert_eq!(parse_host("[::1]:5000", 5044).unwrap().addr(), "[::1]:5000");
        assert_eq!(parse_host("::1", 5044).unwrap().port, 5044);
        assert!(
            parse_host("http://x:1", 5044)
                .unwrap_err()
                .contains("not URLs")
        );
        assert!(parse_host("x:0", 5044).is_err());
        assert!(
            parse_host("x:abc", 5044)
                .unwrap_err()
                .contains("1 to 65535")
        );
    }

    #[test]
    fn defaults_match_beats() {
        let node = skiff_config::parse_str("hosts: [a]", None).unwrap();
        let c: LogstashConfig = node.deserialize().unwrap();
        assert_eq!(c.bulk_max_size, 2048);
        assert_eq!(c.compression_level, 3);
        assert_eq!(c.pipelining, 2);
        assert_eq!(c.timeout.0, std::time::Duration::from_secs(30));
        assert!(!c.loadbalance && !c.slow_start && !c.escape_html);
        assert!(validate(&c, &node).is_empty());
        let node = skiff_config::parse_str("hosts: []\ncompression_level: 12", None).unwrap();
        let c: LogstashConfig = node.deserialize().unwrap();
        let errs = validate(&c, &node);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[1].to_string().contains("compression_level"),
            "{}",
            errs[1]
        );
    }
}
