//! The `lumberjack` / `beats` input's settings (Filebeat's `lumberjack` input names, with
//! Logstash's `host`/`port` accepted too).

use serde::Deserialize;
use skiff_config::{ByteSize, ConfigError, Duration, Node};
use skiff_tls::SslServerConfig;

/// `type: lumberjack` settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// `listen_address` (or `host`): `address:port` to listen on; the port is 5044 (or `port`)
    /// when left out. Default `127.0.0.1:5044` (only local clients: set `0.0.0.0:5044` to accept
    /// other machines).
    #[serde(default = "default_listen", alias = "host")]
    pub listen_address: String,
    /// `port`: the port when `listen_address` has none (Logstash's beats input spells the
    /// address as `host` and `port`). Default 5044.
    #[serde(default)]
    pub port: Option<u16>,
    /// `versions`: protocol versions accepted, `v1` and/or `v2`. Default both.
    #[serde(default = "default_versions")]
    pub versions: Vec<String>,
    /// `ssl.*`: server TLS (`certificate`, `key`, `certificate_authorities`,
    /// `client_authentication`). Default: plain TCP.
    #[serde(default)]
    pub ssl: Option<SslServerConfig>,
    /// `max_message_size`: the largest event (one data frame) accepted. Default 10MiB.
    #[serde(default = "ten_mib")]
    pub max_message_size: ByteSize,
    /// `max_batch_size`: the largest compressed frame, compressed or decompressed (Beats send a
    /// whole window as one). Default 64MiB.
    #[serde(default = "sixty_four_mib")]
    pub max_batch_size: ByteSize,
    /// `max_connections`: clients served at once; a client connecting beyond it is closed at
    /// once (logged, counted in `skiff.input.lumberjack.connections.refused`) and retries later,
    /// as Beats do. 0 = no limit. Default 1024 (raise the open-files limit with it).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// `max_window_size`: the most events of one connection received and not yet acknowledged
    /// to its client. A client announcing a larger window (or `W 4294967295`) gets partial ACKs
    /// as our outputs deliver, and the connection stops reading at this many. Default 16384.
    #[serde(default = "default_max_window_size")]
    pub max_window_size: u32,
    /// `max_pending_bytes`: the memory limit of the input (the `input.lumberjack` stage): read
    /// buffers and events received but not yet acknowledged to their clients, summed over its
    /// connections. A connection stops reading while the stage is at the limit. Default 256MiB.
    #[serde(default = "default_max_pending_bytes")]
    pub max_pending_bytes: ByteSize,
    /// `handshake_timeout` (alias Logstash's `ssl_handshake_timeout`): how long a new
    /// connection has to finish its TLS handshake and send its first whole frame. Default 10s.
    #[serde(
        default = "skiff_config::seconds::<10>",
        alias = "ssl_handshake_timeout"
    )]
    pub handshake_timeout: Duration,
    /// `keepalive`: while a window waits for our outputs, repeat the last ACK this often so
    /// the client does not time out. Default 3s.
    #[serde(default = "skiff_config::seconds::<3>")]
    pub keepalive: Duration,
    /// `timeout`: how long a client may pause in the middle of a window, and how long writing
    /// an ACK may wait for a client that does not read them (write timeout). Default 30s.
    #[serde(default = "skiff_config::seconds::<30>")]
    pub timeout: Duration,
    /// `client_inactivity_timeout`: close a connection that sends nothing for this long while
    /// nothing of it is pending. 0 = never. Default 60s (as Logstash).
    #[serde(default = "skiff_config::seconds::<60>")]
    pub client_inactivity_timeout: Duration,
}

fn default_listen() -> String {
    "127.0.0.1:5044".into()
}
fn default_versions() -> Vec<String> {
    vec!["v1".into(), "v2".into()]
}
fn ten_mib() -> ByteSize {
    ByteSize(10 << 20)
}
fn sixty_four_mib() -> ByteSize {
    ByteSize(64 << 20)
}
fn default_max_connections() -> usize {
    1024
}
fn default_max_window_size() -> u32 {
    16384
}
fn default_max_pending_bytes() -> ByteSize {
    ByteSize(256 << 20)
}

impl InputConfig {
    /// The address to bind.
    pub fn bind_address(&self) -> String {
        let a = self.listen_address.trim();
        let port = self.port.unwrap_or(crate::output::config::DEFAULT_PORT);
        let has_port = if let Some(rest) = a.strip_prefix('[') {
            rest.contains("]:")
        } else {
            a.matches(':').count() == 1
        };
        if has_port {
            a.to_owned()
        } else if a.contains(':') && !a.starts_with('[') {
            format!("[{a}]:{port}")
        } else {
            format!("{a}:{port}")
        }
    }

    /// Whether `v1` data frames are accepted.
    pub fn accepts_v1(&self) -> bool {
        self.versions.iter().any(|v| v.eq_ignore_ascii_case("v1"))
    }
}

/// Checks what serde cannot.
pub fn validate(cfg: &InputConfig, node: &Node) -> Vec<ConfigError> {
    let mut errs = Vec::new();
    let at = |key: &str, msg: String| {
        let n = node.get(key).unwrap_or(node);
        ConfigError::new(n.path().to_owned(), n.mark.clone(), msg)
    };
    for v in &cfg.versions {
        if !v.eq_ignore_ascii_case("v1") && !v.eq_ignore_ascii_case("v2") {
            errs.push(at(
                "versions",
                format!("unknown protocol version {v:?}: use v1 and/or v2"),
            ));
        }
    }
    if cfg.max_message_size.0 == 0 || cfg.max_message_size.0 > u64::from(u32::MAX) {
        errs.push(at(
            "max_message_size",
            "must be between 1 byte and 4GiB".into(),
        ));
    }
    if cfg.max_batch_size.0 == 0 || cfg.max_batch_size.0 > u64::from(u32::MAX) {
        errs.push(at(
            "max_batch_size",
            "must be between 1 byte and 4GiB".into(),
        ));
    }
    if cfg.max_window_size == 0 {
        errs.push(at(
            "max_window_size",
            "must be at least 1 (the events a connection may have unacknowledged)".into(),
        ));
    }
    if cfg.max_pending_bytes.0 < 64 << 10 {
        errs.push(at(
            "max_pending_bytes",
            "must be at least 64KiB (one read buffer)".into(),
        ));
    }
    if cfg.handshake_timeout.0.is_zero() {
        errs.push(at("handshake_timeout", "must be more than 0".into()));
    }
    if cfg.keepalive.0.is_zero() || cfg.timeout.0.is_zero() {
        errs.push(at(
            "keepalive",
            "keepalive and timeout must be more than 0".into(),
        ));
    }
    if let Some(ssl) = &cfg.ssl
        && ssl.is_enabled()
        && let Err(e) = skiff_tls::server_config(ssl)
    {
        errs.push(at("ssl", e.to_string()));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(yaml: &str) -> InputConfig {
        skiff_config::parse_str(yaml, None)
            .unwrap()
            .deserialize()
            .unwrap()
    }

    #[test]
    fn addresses() {
        assert_eq!(cfg("{}").bind_address(), "127.0.0.1:5044");
        assert_eq!(
            cfg("host: 0.0.0.0\nport: 5045").bind_address(),
            "0.0.0.0:5045"
        );
        assert_eq!(
            cfg("listen_address: 'localhost:6000'").bind_address(),
            "localhost:6000"
        );
        assert_eq!(cfg("host: '::1'").bind_address(), "[::1]:5044");
        assert_eq!(cfg("host: '[::1]:7'").bind_address(), "[::1]:7");
    }

    #[test]
    fn bad_values_are_reported() {
        let node = skiff_config::parse_str("versions: [v3]\nmax_message_size: 0", None).unwrap();
        let c: InputConfig = node.deserialize().unwrap();
        let errs = validate(&c, &node);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].to_string().contains("v3"));
        let node =
            skiff_config::parse_str("max_window_size: 0\nmax_pending_bytes: 1KiB", None).unwrap();
        let errs = validate(&node.deserialize().unwrap(), &node);
        assert_eq!(errs.len(), 2, "{errs:?}");
    }

    #[test]
    fn defaults_bound_a_public_listener() {
        let c = cfg("{}");
        assert_eq!(c.max_connections, 1024);
        assert_eq!(c.max_window_size, 16384);
        assert_eq!(c.max_pending_bytes.0, 256 << 20);
        assert_eq!(c.handshake_timeout.0.as_secs(), 10);
        assert_eq!(c.client_inactivity_timeout.0.as_secs(), 60);
        assert_eq!(
            cfg("ssl_handshake_timeout: 2s")
                .handshake_timeout
                .0
                .as_secs(),
            2
        );
    }
}
