//! What can go wrong producing to Kafka, by class, so that the worker logs and counts "auth"
//! apart from "connect" apart from "overloaded" ([`skiff_pipeline::FailureKind`]). librdkafka
//! reports failures as error codes; [`KafkaOutputError::produce`] sorts them here, in one
//! place, and the one `From` impl is the only place a class becomes a [`Failure`].

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use skiff_pipeline::{Failure, FailureKind};

/// A failed delivery that is not the event's fault (those are rejected per event, see
/// `permanent` in the client): the events are retried.
#[derive(Debug, thiserror::Error)]
pub enum KafkaOutputError {
    /// No broker could be reached, or the connection broke.
    #[error("{0}")]
    Connect(String),
    /// The TLS handshake with a broker failed.
    #[error("{0}")]
    Tls(String),
    /// The brokers refused our credentials (SASL) or the user's permissions.
    #[error("{0}")]
    Auth(String),
    /// No broker acknowledged in time.
    #[error("{0}")]
    Timeout(String),
    /// The brokers are busy: the local queue is full, too few in-sync replicas, a quota.
    #[error("{0}")]
    Overloaded(String),
    /// A broker says our messages are malformed.
    #[error("{0}")]
    Protocol(String),
    /// Anything else librdkafka reports.
    #[error("{0}")]
    Other(String),
}

impl KafkaOutputError {
    /// The produce error `e`, with `message` (what happened, what to check), by its class.
    pub fn produce(e: &KafkaError, message: String) -> KafkaOutputError {
        use RDKafkaErrorCode::*;
        match crate::client::code_of(e) {
            Some(MessageTimedOut | RequestTimedOut) => KafkaOutputError::Timeout(message),
            Some(
                QueueFull
                | NotEnoughReplicas
                | NotEnoughReplicasAfterAppend
                | ThrottlingQuotaExceeded,
            ) => KafkaOutputError::Overloaded(message),
            Some(
                SaslAuthenticationFailed
                | Authentication
                | TopicAuthorizationFailed
                | ClusterAuthorizationFailed,
            ) => KafkaOutputError::Auth(message),
            Some(SSL) => KafkaOutputError::Tls(message),
            Some(
                BrokerTransportFailure
                | AllBrokersDown
                | NetworkException
                | Resolve
                | BrokerNotAvailable,
            ) => KafkaOutputError::Connect(message),
            Some(InvalidMessage | BadMessage | BadCompression) => {
                KafkaOutputError::Protocol(message)
            }
            _ => KafkaOutputError::Other(message),
        }
    }

    /// The class of this error.
    pub fn kind(&self) -> FailureKind {
        match self {
            KafkaOutputError::Connect(_) => FailureKind::Connect,
            KafkaOutputError::Tls(_) => FailureKind::Tls,
            KafkaOutputError::Auth(_) => FailureKind::Auth,
            KafkaOutputError::Timeout(_) => FailureKind::Timeout,
            KafkaOutputError::Overloaded(_) => FailureKind::Overloaded,
            KafkaOutputError::Protocol(_) => FailureKind::Protocol,
            KafkaOutputError::Other(_) => FailureKind::Other,
        }
    }
}

impl From<KafkaOutputError> for Failure {
    fn from(e: KafkaOutputError) -> Failure {
        Failure::new(e.kind(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn produce_errors_are_classed_by_their_code() {
        let cases = [
            (RDKafkaErrorCode::MessageTimedOut, FailureKind::Timeout),
            (RDKafkaErrorCode::QueueFull, FailureKind::Overloaded),
            (
                RDKafkaErrorCode::SaslAuthenticationFailed,
                FailureKind::Auth,
            ),
            (RDKafkaErrorCode::SSL, FailureKind::Tls),
            (RDKafkaErrorCode::AllBrokersDown, FailureKind::Connect),
            (RDKafkaErrorCode::BadMessage, FailureKind::Protocol),
            (RDKafkaErrorCode::Unknown, FailureKind::Other),
        ];
        for (code, kind) in cases {
            let e = KafkaError::MessageProduction(code);
            let f = Failure::from(KafkaOutputError::produce(&e, format!("said {code:?}")));
            assert_eq!((f.kind, f.message), (kind, format!("said {code:?}")));
        }
    }
}
