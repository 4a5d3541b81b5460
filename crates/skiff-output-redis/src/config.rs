//! `output.redis` settings, as Filebeat reads them.

use serde::Deserialize;
use skiff_config::{ConfigError, Duration, Node};

/// `output.redis.*`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `enabled`: default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `hosts`: `host`, `host:port` (port 6379 by default), `redis://[user:password@]host:port[/db]`
    /// or `rediss://...` (TLS). Required.
    pub hosts: Vec<String>,
    /// `port`: the port for hosts written without one (deprecated in Beats). Default 6379.
    #[serde(default = "default_port")]
    pub port: u16,
    /// `key`: the list or channel name, a format string. Default `filebeat` (as Beats). Read by
    /// the selector from the node.
    #[serde(default)]
    pub key: Option<String>,
    /// `index`: the old name of `key`.
    #[serde(default)]
    pub index: Option<String>,
    /// `keys`: rules tried before `key` (`key`, `when`, `mappings`, `default`). Read by the
    /// selector from the node.
    #[serde(default)]
    pub keys: Option<serde_json::Value>,
    /// `datatype`: `list` (RPUSH, default) or `channel` (PUBLISH).
    #[serde(default)]
    pub datatype: DataType,
    /// `db`: the database number (SELECT). Default 0.
    #[serde(default)]
    pub db: u32,
    /// `username`: for Redis 6 ACLs (`AUTH username password`). Default none.
    #[serde(default)]
    pub username: Option<String>,
    /// `password`: `AUTH` password. Default none.
    #[serde(default)]
    pub password: Option<String>,
    /// `loadbalance`: spread batches over all hosts (true, default) or use one and fail over.
    #[serde(default = "yes")]
    pub loadbalance: bool,
    /// `worker`: connections per host. Default 1.
    #[serde(default = "one", alias = "workers")]
    pub worker: usize,
    /// `bulk_max_size`: events per batch (one pipelined round trip). Default 2048.
    #[serde(default = "bulk")]
    pub bulk_max_size: usize,
    /// `timeout`: for connecting and for each round trip. Default 5s.
    #[serde(default = "skiff_config::seconds::<5>")]
    pub timeout: Duration,
    /// `backoff.*`: waits between retries.
    #[serde(default)]
    pub backoff: Backoff,
    /// `max_retries`: attempts per batch; negative retries forever. Default -1 (skiff: never
    /// drop; Beats defaults to 3).
    #[serde(default = "forever")]
    pub max_retries: i64,
    /// `ssl.*`: TLS (rustls, through the shared `skiff-tls` settings). On when the block is
    /// present (unless `ssl.enabled: false`) or a host is `rediss://`. Default off.
    #[serde(default)]
    pub ssl: Option<skiff_tls::SslConfig>,
    /// `codec`: only `codec.json` (the default) is supported.
    #[serde(default)]
    pub codec: Option<serde_json::Value>,
    /// `proxy_url`: SOCKS5 proxy (not supported: an error when set).
    #[serde(default)]
    pub proxy_url: Option<String>,
}

/// `backoff.*`: shared by every output (`init` 1s, `max` 60s).
pub use skiff_pipeline::BackoffConfig as Backoff;

/// `datatype`.
#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    /// `list`: `RPUSH key event...`.
    #[default]
    List,
    /// `channel`: `PUBLISH key event`.
    Channel,
}

impl DataType {
    /// The command that carries events.
    pub fn verb(self) -> &'static str {
        match self {
            DataType::List => "RPUSH",
            DataType::Channel => "PUBLISH",
        }
    }
}

fn yes() -> bool {
    true
}
fn one() -> usize {
    1
}
fn bulk() -> usize {
    2048
}
fn forever() -> i64 {
    -1
}
fn default_port() -> u16 {
    6379
}
/// One parsed entry of `hosts`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    /// Host name or address (without brackets for IPv6).
    pub host: String,
    /// Port.
    pub port: u16,
    /// `rediss://`.
    pub tls: bool,
    /// User from the URL.
    pub username: Option<String>,
    /// Password from the URL.
    pub password: Option<String>,
    /// Database from the URL path.
    pub db: Option<u32>,
}

impl Host {
    /// `host:port`, for connecting and for messages.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Parses one `hosts` entry.
pub fn parse_host(s: &str, default_port: u16) -> Result<Host, String> {
    let (tls, rest) = if let Some(r) = s.strip_prefix("rediss://") {
        (true, r)
    } else if let Some(r) = s.strip_prefix("redis://") {
        (false, r)
    } else if s.contains("://") {
        return Err(format!(
            "{s:?}: only redis:// and rediss:// URLs (or host:port) are Redis hosts"
        ));
    } else {
        (false, s)
    };
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((a, r)) => (Some(a), r),
        None => (None, rest),
    };
    let (hostport, path) = match rest.split_once('/') {
        Some((h, p)) => (h, p),
        None => (rest, ""),
    };
    let db = match path.trim_end_matches('/') {
        "" => None,
        p => Some(
            p.parse::<u32>()
                .map_err(|_| format!("{s:?}: the URL path must be a database number, not {p:?}"))?,
        ),
    };
    let (host, port) = split_host_port(hostport)
        .map_err(|e| format!("{s:?}: {e}; write host:port like `localhost:6379`"))?;
    let port = port.unwrap_or(default_port);
    if host.is_empty() {
        return Err(format!("{s:?}: the host name is empty"));
    }
    let (username, password) = match auth {
        None => (None, None),
        Some(a) => match a.split_once(':') {
            Some((u, p)) => ((!u.is_empty()).then(|| u.to_owned()), Some(p.to_owned())),
            None => (None, Some(a.to_owned())),
        },
    };
    Ok(Host {
        host,
        port,
        tls,
        username,
        password,
        db,
    })
}

fn split_host_port(s: &str) -> Result<(String, Option<u16>), String> {
    if let Some(r) = s.strip_prefix('[') {
        let (h, after) = r.split_once(']').ok_or("unclosed `[` in IPv6 address")?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().map_err(|_| format!("bad port {p:?}"))?),
            None if after.is_empty() => None,
            None => return Err(format!("unexpected {after:?} after the address")),
        };
        return Ok((h.to_owned(), port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => {
            let port = p.parse().map_err(|_| format!("bad port {p:?}"))?;
            Ok((h.to_owned(), Some(port)))
        }
        // A bare IPv6 address.
        Some(_) => Ok((s.to_owned(), None)),
        None => Ok((s.to_owned(), None)),
    }
}

/// Checks what serde cannot: ranges, and settings we accept but cannot honour yet.
pub fn validate(cfg: &RedisConfig, node: &Node) -> Vec<ConfigError> {
    let mut errs = Vec::new();
    let at = |key: &str| {
        let n = node.get(key).unwrap_or(node);
        (format!("{}.{key}", node.path()), n.mark.clone())
    };
    let mut err = |key: &str, msg: String| {
        let (p, m) = at(key);
        errs.push(ConfigError::new(p, m, msg));
    };
    if cfg.hosts.is_empty() {
        err(
            "hosts",
            "list at least one Redis server, like `localhost:6379`".into(),
        );
    }
    for (i, h) in cfg.hosts.iter().enumerate() {
        match parse_host(h, cfg.port) {
            Ok(_) => {}
            Err(e) => err(&format!("hosts.{i}"), e),
        }
    }
    if cfg.worker == 0 {
        err("worker", "must be at least 1".into());
    }
    if cfg.bulk_max_size == 0 {
        err("bulk_max_size", "must be at least 1".into());
    }
    if cfg.timeout.0.is_zero() {
        err("timeout", "must be more than 0s".into());
    }
    if cfg.backoff.init.0.is_zero() || cfg.backoff.max.0 < cfg.backoff.init.0 {
        err(
            "backoff",
            "backoff.init must be more than 0s and at most backoff.max".into(),
        );
    }
    if let Some(c) = &cfg.codec
        && (c.get("json").is_none() || c.as_object().is_some_and(|o| o.len() != 1))
    {
        err(
            "codec",
            "only `codec.json` is supported by the redis output (events are sent as ECS JSON)"
                .into(),
        );
    }
    if cfg.proxy_url.is_some() {
        err(
            "proxy_url",
            "SOCKS5 proxies are not supported by skiff's redis output; connect directly".into(),
        );
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let h = parse_host("localhost", 6379).unwrap();
        assert_eq!((h.host.as_str(), h.port, h.tls), ("localhost", 6379, false));
        let h = parse_host("10.0.0.1:6380", 6379).unwrap();
        assert_eq!(h.addr(), "10.0.0.1:6380");
        let h = parse_host("redis://u:p%w@r1:7000/3", 6379).unwrap();
        assert_eq!(
            (h.username.as_deref(), h.password.as_deref(), h.db, h.port),
            (Some("u"), Some("p%w"), Some(3), 7000)
        );
        let h = parse_host("redis://:secret@r1", 6379).unwrap();
        assert_eq!((h.username, h.password.as_deref()), (None, Some("secret")));
        assert!(parse_host("rediss://r1:6380", 6379).unwrap().tls);
        assert_eq!(parse_host("[::1]:7000", 6379).unwrap().addr(), "[::1]:7000");
        assert!(parse_host("http://x", 6379).is_err());
        assert!(parse_host("r1:port", 6379).is_err());
        assert!(parse_host("redis://r1/db", 6379).is_err());
    }
}
