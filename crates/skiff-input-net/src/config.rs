//! The settings of the `tcp`, `udp` and `unix` inputs, with Filebeat's names and defaults. The
//! `syslog` input takes the same blocks under `protocol.tcp`, `protocol.udp`, `protocol.unix`.

use serde::Deserialize;
use skiff_config::{ByteSize, ConfigError, Duration, Node};
use skiff_tls::SslServerConfig;

use crate::framing::{Framer, FramingKind};

/// `type: tcp` (and the syslog input's `protocol.tcp`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpConfig {
    /// `host`: `address:port` to listen on. Required (Filebeat has no default either).
    pub host: String,
    /// `network`: `tcp`, `tcp4` or `tcp6`. Default `tcp` (whatever `host` resolves to).
    #[serde(default)]
    pub network: Option<String>,
    /// `max_message_size`: the longest message; a longer one closes its connection (logged,
    /// counted as dropped `too_large`). Default 20MiB.
    #[serde(default = "twenty_mib")]
    pub max_message_size: ByteSize,
    /// `framing`: `delimiter` or `rfc6587` (octet counting, else non-transparent). Default
    /// `delimiter`.
    #[serde(default)]
    pub framing: FramingKind,
    /// `line_delimiter`: what ends a message. Default `"\n"` (a `\r` before it is removed).
    #[serde(default = "newline")]
    pub line_delimiter: String,
    /// `max_connections`: clients served at once; further clients wait in the listen backlog
    /// until one leaves (as Filebeat's limited listener). 0 = no limit. Default 0.
    #[serde(default)]
    pub max_connections: usize,
    /// `timeout`: close a connection that sends nothing for this long. Default 300s.
    #[serde(default = "five_minutes")]
    pub timeout: Duration,
    /// `ssl.*`: serve TLS (`certificate`, `key`, `certificate_authorities`,
    /// `client_authentication`). Default: plain TCP.
    #[serde(default)]
    pub ssl: Option<SslServerConfig>,
}

/// `type: udp` (and the syslog input's `protocol.udp`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdpConfig {
    /// `host`: `address:port` to listen on. Required.
    pub host: String,
    /// `network`: `udp`, `udp4` or `udp6`. Default `udp`.
    #[serde(default)]
    pub network: Option<String>,
    /// `max_message_size`: the longest datagram; longer ones are dropped and counted
    /// (`too_large`). Default 10KiB.
    #[serde(default = "ten_kib")]
    pub max_message_size: ByteSize,
    /// `read_buffer`: the socket's receive buffer (`SO_RCVBUF`). Default: the system's.
    #[serde(default)]
    pub read_buffer: Option<ByteSize>,
    /// `timeout`: accepted for compatibility (a UDP socket has no connection to time out).
    /// Default 300s.
    #[serde(default = "five_minutes")]
    pub timeout: Duration,
}

/// `socket_type` of a unix input.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SocketType {
    /// A stream socket: connections, framed like TCP. The default.
    #[default]
    Stream,
    /// A datagram socket: one message per datagram, like UDP.
    Datagram,
}

/// `type: unix` (and the syslog input's `protocol.unix`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnixConfig {
    /// `path`: the socket file. Required. A stale socket file there is removed at start; any
    /// other kind of file is an error.
    pub path: String,
    /// `socket_type`: `stream` or `datagram`. Default `stream`.
    #[serde(default)]
    pub socket_type: SocketType,
    /// `group`: the group owning the socket file (name or number). Default: skiff's.
    #[serde(default)]
    pub group: Option<String>,
    /// `mode`: the socket file's permissions, in octal (`"0660"`). Default: by the umask.
    #[serde(default)]
    pub mode: Option<String>,
    /// `max_message_size`: the longest message. Default 20MiB.
    #[serde(default = "twenty_mib")]
    pub max_message_size: ByteSize,
    /// `framing` (stream sockets). Default `delimiter`.
    #[serde(default)]
    pub framing: FramingKind,
    /// `line_delimiter` (stream sockets). Default `"\n"`.
    #[serde(default = "newline")]
    pub line_delimiter: String,
    /// `max_connections` (stream sockets). 0 = no limit. Default 0.
    #[serde(default)]
    pub max_connections: usize,
    /// `timeout` (stream sockets): idle time before a connection is closed. Default 300s.
    #[serde(default = "five_minutes")]
    pub timeout: Duration,
}

fn twenty_mib() -> ByteSize {
    ByteSize(20 << 20)
}
fn ten_kib() -> ByteSize {
    ByteSize(10 << 10)
}
fn newline() -> String {
    "\n".into()
}
fn five_minutes() -> Duration {
    Duration(std::time::Duration::from_secs(300))
}

/// The largest `max_message_size` (the read buffer of a connection is as large).
const MAX_MESSAGE_LIMIT: u64 = 1 << 30;

/// An error at `key` of `node` (or at `node` when the key is absent).
pub(crate) fn at(node: &Node, key: &str, msg: impl Into<String>) -> ConfigError {
    let n = node.get(key).unwrap_or(node);
    ConfigError::new(n.path().to_owned(), n.mark.clone(), msg.into())
}

fn check_size(node: &Node, v: ByteSize, errs: &mut Vec<ConfigError>) -> usize {
    if v.0 == 0 || v.0 > MAX_MESSAGE_LIMIT {
        errs.push(at(
            node,
            "max_message_size",
            "must be between 1 byte and 1GiB",
        ));
        return 1;
    }
    usize::try_from(v.0).unwrap_or(usize::MAX)
}

fn check_delimiter(node: &Node, d: &str, errs: &mut Vec<ConfigError>) {
    if d.is_empty() {
        errs.push(at(
            node,
            "line_delimiter",
            "must not be empty (the default is \"\\n\")",
        ));
    }
}

fn check_network(node: &Node, net: Option<&str>, allowed: [&str; 3], errs: &mut Vec<ConfigError>) {
    if let Some(n) = net
        && !allowed.contains(&n)
    {
        errs.push(at(
            node,
            "network",
            format!("unknown network {n:?}: use one of {allowed:?}"),
        ));
    }
}

impl TcpConfig {
    /// Checks what serde cannot; returns the framer.
    pub fn validate(&self, node: &Node, errs: &mut Vec<ConfigError>) -> Framer {
        let max = check_size(node, self.max_message_size, errs);
        check_delimiter(node, &self.line_delimiter, errs);
        check_network(node, self.network.as_deref(), ["tcp", "tcp4", "tcp6"], errs);
        if self.timeout.0.is_zero() {
            errs.push(at(node, "timeout", "must be more than 0"));
        }
        if let Some(ssl) = &self.ssl
            && ssl.is_enabled()
            && let Err(e) = skiff_tls::server_config(ssl)
        {
            errs.push(at(node, "ssl", e.to_string()));
        }
        Framer::new(self.framing, self.line_delimiter.as_bytes(), max)
    }
}

impl UdpConfig {
    /// Checks what serde cannot; returns the largest datagram.
    pub fn validate(&self, node: &Node, errs: &mut Vec<ConfigError>) -> usize {
        check_network(node, self.network.as_deref(), ["udp", "udp4", "udp6"], errs);
        if let Some(b) = self.read_buffer
            && (b.0 == 0 || b.0 > MAX_MESSAGE_LIMIT)
        {
            errs.push(at(node, "read_buffer", "must be between 1 byte and 1GiB"));
        }
        // A datagram is at most 64KiB; a larger limit is allowed but cannot matter.
        check_size(node, self.max_message_size, errs).min(65_535)
    }
}

impl UnixConfig {
    /// Checks what serde cannot; returns the framer and the mode.
    pub fn validate(&self, node: &Node, errs: &mut Vec<ConfigError>) -> (Framer, Option<u32>) {
        let max = check_size(node, self.max_message_size, errs);
        check_delimiter(node, &self.line_delimiter, errs);
        if self.path.is_empty() {
            errs.push(at(node, "path", "must name the socket file"));
        }
        if self.timeout.0.is_zero() {
            errs.push(at(node, "timeout", "must be more than 0"));
        }
        let mode = self.mode.as_deref().and_then(|m| {
            match u32::from_str_radix(m.trim_start_matches("0o"), 8) {
                Ok(v) if v <= 0o7777 => Some(v),
                _ => {
                    errs.push(at(
                        node,
                        "mode",
                        format!("{m:?} is not an octal file mode: write it like \"0660\""),
                    ));
                    None
                }
            }
        });
        (
            Framer::new(self.framing, self.line_delimiter.as_bytes(), max),
            mode,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(yaml: &str) -> Node {
        skiff_config::parse_str(yaml, None).unwrap()
    }

    #[test]
    fn filebeat_defaults() {
        let c: TcpConfig = node("host: 'localhost:9000'").deserialize().unwrap();
        assert_eq!(c.max_message_size.0, 20 << 20);
        assert_eq!(c.framing, FramingKind::Delimiter);
        assert_eq!(c.line_delimiter, "\n");
        assert_eq!(c.max_connections, 0);
        assert_eq!(c.timeout.0.as_secs(), 300);
        let c: UdpConfig = node("host: 'localhost:9000'").deserialize().unwrap();
        assert_eq!(c.max_message_size.0, 10 << 10);
        let c: UnixConfig = node("path: /tmp/x.sock").deserialize().unwrap();
        assert_eq!(c.socket_type, SocketType::Stream);
        assert_eq!(c.max_message_size.0, 20 << 20);
    }

    #[test]
    fn bad_values_are_all_reported() {
        let n = node("path: /x\nmode: '999'\nline_delimiter: ''\nmax_message_size: 0");
        let c: UnixConfig = n.deserialize().unwrap();
        let mut errs = Vec::new();
        c.validate(&n, &mut errs);
        assert_eq!(errs.len(), 3, "{errs:?}");
        let n = node("host: ':1'\nnetwork: udp5");
        let c: UdpConfig = n.deserialize().unwrap();
        let mut errs = Vec::new();
        c.validate(&n, &mut errs);
        assert!(errs[0].to_string().contains("udp5"), "{errs:?}");
    }
}
