//! What can go wrong sending to Elasticsearch, by class, so that the worker logs and counts
//! "auth" apart from "connect" apart from "protocol" ([`skiff_pipeline::FailureKind`]). The
//! message of each variant says what happened and what to check; the one `From` impl below is
//! the only place a class becomes a [`Failure`].

use skiff_pipeline::{Failure, FailureKind};

/// A failed bulk request (or setup step). Every variant fails the part of the batch not yet
/// answered: nothing of it counts as delivered.
#[derive(Debug, thiserror::Error)]
pub enum EsError {
    /// The server could not be reached, or the connection broke while reading the answer.
    #[error("{0}")]
    Connect(String),
    /// No answer in time.
    #[error("{0}")]
    Timeout(String),
    /// The server refused our credentials or their privileges (401, 403).
    #[error("{0}")]
    Auth(String),
    /// The server says it is busy or unavailable (429, 502, 503, 504).
    #[error("{0}")]
    Overloaded(String),
    /// The server understood the request and refused it (404 and other 4xx).
    #[error("{0}")]
    Rejected(String),
    /// The server failed the request for a reason of its own (other 5xx).
    #[error("{0}")]
    Server(String),
    /// The answer is not what `_bulk` requires for what was sent: a status other than 200, or
    /// a body without one item per document, in order, each with a status.
    #[error("{0}")]
    Protocol(String),
    /// The `setup.*` settings could not be read.
    #[error("{0}")]
    Setup(String),
}

impl EsError {
    /// The class of this error.
    pub fn kind(&self) -> FailureKind {
        match self {
            EsError::Connect(_) => FailureKind::Connect,
            EsError::Timeout(_) => FailureKind::Timeout,
            EsError::Auth(_) => FailureKind::Auth,
            EsError::Overloaded(_) => FailureKind::Overloaded,
            EsError::Rejected(_) => FailureKind::Rejected,
            EsError::Server(_) | EsError::Setup(_) => FailureKind::Other,
            EsError::Protocol(_) => FailureKind::Protocol,
        }
    }
}

impl From<EsError> for Failure {
    fn from(e: EsError) -> Failure {
        Failure::new(e.kind(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_variant_keeps_its_message_under_its_class() {
        let cases = [
            (EsError::Connect("a".into()), FailureKind::Connect),
            (EsError::Timeout("b".into()), FailureKind::Timeout),
            (EsError::Auth("c".into()), FailureKind::Auth),
            (EsError::Overloaded("d".into()), FailureKind::Overloaded),
            (EsError::Rejected("e".into()), FailureKind::Rejected),
            (EsError::Server("f".into()), FailureKind::Other),
            (EsError::Protocol("g".into()), FailureKind::Protocol),
            (EsError::Setup("h".into()), FailureKind::Other),
        ];
        for (e, kind) in cases {
            let msg = e.to_string();
            let f = Failure::from(e);
            assert_eq!((f.kind, f.message), (kind, msg));
        }
    }
}
