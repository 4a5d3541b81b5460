//! What can go wrong sending to Logstash, by class, so that the worker logs and counts "tls"
//! apart from "connect" apart from "protocol" ([`skiff_pipeline::FailureKind`]). The wire
//! codec's own [`ProtocolError`](crate::protocol::ProtocolError) says what is wrong with a
//! frame; this says what became of a window, and the one `From` impl is the only place a class
//! becomes a [`Failure`].

use skiff_pipeline::{Failure, FailureKind};

/// A failed window exchange with one Logstash host. The connection is dropped after any of
/// them; the events not acknowledged are sent again (all of them after a `Protocol` error).
#[derive(Debug, thiserror::Error)]
pub enum LogstashError {
    /// The server could not be reached, or closed or broke the connection.
    #[error("{0}")]
    Connect(String),
    /// The TLS handshake failed.
    #[error("{0}")]
    Tls(String),
    /// No ACK, or no room to write, in time.
    #[error("{0}")]
    Timeout(String),
    /// A local I/O error on the socket that is neither of the above.
    #[error("{0}")]
    Io(String),
    /// The reply is not an ACK within the window that was sent.
    #[error("{0}")]
    Protocol(String),
    /// The client's own window accounting broke off (a bug, not the server's doing).
    #[error("{0}")]
    Internal(String),
}

impl LogstashError {
    /// An I/O error, classed as [`FailureKind::of_io`] does, with `message` saying what failed.
    pub fn io(e: &std::io::Error, message: String) -> LogstashError {
        match FailureKind::of_io(e) {
            FailureKind::Connect => LogstashError::Connect(message),
            FailureKind::Timeout => LogstashError::Timeout(message),
            _ => LogstashError::Io(message),
        }
    }

    /// The class of this error.
    pub fn kind(&self) -> FailureKind {
        match self {
            LogstashError::Connect(_) => FailureKind::Connect,
            LogstashError::Tls(_) => FailureKind::Tls,
            LogstashError::Timeout(_) => FailureKind::Timeout,
            LogstashError::Io(_) => FailureKind::Io,
            LogstashError::Protocol(_) => FailureKind::Protocol,
            LogstashError::Internal(_) => FailureKind::Other,
        }
    }
}

impl From<LogstashError> for Failure {
    fn from(e: LogstashError) -> Failure {
        Failure::new(e.kind(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error, ErrorKind};

    #[test]
    fn io_errors_keep_their_class_and_message() {
        let cases = [
            (ErrorKind::ConnectionReset, FailureKind::Connect),
            (ErrorKind::TimedOut, FailureKind::Timeout),
            (ErrorKind::PermissionDenied, FailureKind::Io),
        ];
        for (k, kind) in cases {
            let f = Failure::from(LogstashError::io(&Error::from(k), format!("{k:?}")));
            assert_eq!((f.kind, f.message), (kind, format!("{k:?}")));
        }
        let f = Failure::from(LogstashError::Protocol("ACK 9 of 3".into()));
        assert_eq!(f.kind, FailureKind::Protocol);
    }
}
