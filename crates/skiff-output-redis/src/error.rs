//! What can go wrong talking to Redis, by class, so that the worker logs and counts
//! "auth" apart from "connect" apart from "protocol" ([`skiff_pipeline::FailureKind`]).

use skiff_pipeline::{Failure, FailureKind};

/// A failed exchange with one Redis server. Every variant fails the whole batch: nothing of it
/// counts as delivered, and the connection is dropped.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// The server could not be reached (or the connection broke).
    #[error("{0}")]
    Connect(String),
    /// The TLS handshake failed.
    #[error("{0}")]
    Tls(String),
    /// No answer in time.
    #[error("{0}")]
    Timeout(String),
    /// The server refused our credentials or the user's permissions.
    #[error("{0}")]
    Auth(String),
    /// The server refused a command for a reason that is not the events' fault
    /// (`SELECT` out of range).
    #[error("{0}")]
    Rejected(String),
    /// The reply is not what RESP requires for what was sent: wrong type, wrong count, a
    /// negative length, bytes that are not RESP at all.
    #[error("{0}")]
    Protocol(String),
}

impl RedisError {
    /// The class of this error.
    pub fn kind(&self) -> FailureKind {
        match self {
            RedisError::Connect(_) => FailureKind::Connect,
            RedisError::Tls(_) => FailureKind::Tls,
            RedisError::Timeout(_) => FailureKind::Timeout,
            RedisError::Auth(_) => FailureKind::Auth,
            RedisError::Rejected(_) => FailureKind::Rejected,
            RedisError::Protocol(_) => FailureKind::Protocol,
        }
    }

    /// An I/O error while talking to `addr`: a [`RedisError::Protocol`] when the reply reader
    /// refused the bytes (`InvalidData`), else a connection problem.
    pub fn io(context: &str, e: &std::io::Error) -> RedisError {
        let msg = format!("{context}: {e}");
        match e.kind() {
            std::io::ErrorKind::InvalidData => RedisError::Protocol(msg),
            std::io::ErrorKind::TimedOut => RedisError::Timeout(msg),
            _ => RedisError::Connect(msg),
        }
    }
}

impl From<RedisError> for Failure {
    fn from(e: RedisError) -> Failure {
        Failure::new(e.kind(), e.to_string())
    }
}
