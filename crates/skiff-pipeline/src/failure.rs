//! What kind of failure happened, for every component.
//!
//! Inputs and outputs fail for reasons an operator acts on differently: a refused connection
//! (is the server up? the port right?), a TLS failure (certificates), refused credentials, a
//! server that rejected what was sent, a server that broke its own protocol, an overloaded
//! server. The worker and the supervisor log and count failures by this class
//! (`skiff.output.errors{kind}`), so "why is nothing shipped?" has a one-word answer before
//! anyone reads a message.
//!
//! A component returns a [`Failure`]: a [`FailureKind`] plus the message that says what to check.
//! Crates keep their own `thiserror` enums for their internal errors and map them into a
//! `Failure` at the trait boundary ([`Failure::new`], or `From` impls in the crate).

use std::fmt;

/// The class of a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureKind {
    /// The server could not be reached: DNS, connection refused or reset, network unreachable.
    Connect,
    /// The TLS handshake failed (certificate, host name, protocol version).
    Tls,
    /// The server refused the credentials (HTTP 401/403, Redis `NOAUTH`/`WRONGPASS`, SASL).
    Auth,
    /// The server understood the request and refused it (an HTTP 4xx other than auth and 429).
    Rejected,
    /// The server's reply is not what the protocol requires for what was sent: wrong type,
    /// wrong count, truncated, garbage. Nothing in such a reply counts as delivered.
    Protocol,
    /// The server says it is busy (HTTP 429/503, Kafka queue full, Redis `BUSY`/`OOM`).
    Overloaded,
    /// No answer in time.
    Timeout,
    /// A local I/O error (disk, file, socket setup).
    Io,
    /// A component panicked; the supervisor restarted it.
    Panic,
    /// Anything else.
    Other,
}

impl FailureKind {
    /// Every kind, in a fixed order (for metrics tables and docs).
    pub const ALL: [FailureKind; 10] = [
        FailureKind::Connect,
        FailureKind::Tls,
        FailureKind::Auth,
        FailureKind::Rejected,
        FailureKind::Protocol,
        FailureKind::Overloaded,
        FailureKind::Timeout,
        FailureKind::Io,
        FailureKind::Panic,
        FailureKind::Other,
    ];

    /// The lower-case name used in logs (`kind=protocol`) and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Connect => "connect",
            FailureKind::Tls => "tls",
            FailureKind::Auth => "auth",
            FailureKind::Rejected => "rejected",
            FailureKind::Protocol => "protocol",
            FailureKind::Overloaded => "overloaded",
            FailureKind::Timeout => "timeout",
            FailureKind::Io => "io",
            FailureKind::Panic => "panic",
            FailureKind::Other => "other",
        }
    }

    /// The class of an I/O error: connection errors are [`FailureKind::Connect`], time-outs
    /// [`FailureKind::Timeout`], the rest [`FailureKind::Io`].
    pub fn of_io(e: &std::io::Error) -> FailureKind {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::NotConnected
            | K::BrokenPipe
            | K::UnexpectedEof
            | K::AddrNotAvailable
            | K::HostUnreachable
            | K::NetworkUnreachable
            | K::NetworkDown => FailureKind::Connect,
            K::TimedOut | K::WouldBlock => FailureKind::Timeout,
            _ => FailureKind::Io,
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A classified failure: what kind, and a message that says what happened and what to check.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// The class.
    pub kind: FailureKind,
    /// What happened and what to check, as logged.
    pub message: String,
}

impl Failure {
    /// A failure of `kind` saying `message`.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
        }
    }

    /// A [`FailureKind::Protocol`] failure: the server's reply broke the protocol.
    /// Say what was expected and what came: `expected 3 replies to RPUSH, got 1`.
    pub fn protocol(message: impl Into<String>) -> Failure {
        Failure::new(FailureKind::Protocol, message)
    }

    /// A failure from an I/O error, classed by [`FailureKind::of_io`], with `context` first:
    /// `connect 127.0.0.1:6379: connection refused`.
    pub fn io(context: impl fmt::Display, e: &std::io::Error) -> Failure {
        Failure::new(FailureKind::of_io(e), format!("{context}: {e}"))
    }
}

/// Anything else becomes [`FailureKind::Other`] with its whole chain of causes as the message,
/// unless an `std::io::Error` is in the chain, which classes it.
impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        if let Some(f) = e.downcast_ref::<Failure>() {
            return Failure::new(f.kind, format!("{e:#}"));
        }
        let kind = e
            .chain()
            .find_map(|c| c.downcast_ref::<std::io::Error>())
            .map_or(FailureKind::Other, FailureKind::of_io);
        Failure::new(kind, format!("{e:#}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_in_an_anyhow_chain_classes_the_failure() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let f = Failure::from(anyhow::Error::new(io).context("connect 127.0.0.1:1"));
        assert_eq!(f.kind, FailureKind::Connect);
        assert!(
            f.message.starts_with("connect 127.0.0.1:1: "),
            "{}",
            f.message
        );
        let f = Failure::from(anyhow::anyhow!("something odd"));
        assert_eq!(f.kind, FailureKind::Other);
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = FailureKind::ALL.iter().map(|k| k.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FailureKind::ALL.len());
    }
}
