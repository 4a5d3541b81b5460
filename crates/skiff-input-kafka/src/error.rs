//! Why the input could not start; each becomes the input's [`Failure`] (the topology restarts
//! the input after a backoff).

use rdkafka::error::KafkaError;
use skiff_pipeline::{Failure, FailureKind};

/// A start-up failure of the kafka input.
#[derive(Debug, thiserror::Error)]
pub enum KafkaInputError {
    /// librdkafka refused the properties (a TLS file that cannot be read, ...).
    #[error("kafka input: cannot create the consumer: {0}")]
    Create(#[source] KafkaError),
    /// The subscription was refused.
    #[error("kafka input: cannot subscribe to {topics:?}: {source}")]
    Subscribe {
        /// The topics asked for.
        topics: Vec<String>,
        /// librdkafka's reason.
        #[source]
        source: KafkaError,
    },
}

impl From<KafkaInputError> for Failure {
    fn from(e: KafkaInputError) -> Failure {
        Failure::new(FailureKind::Other, e.to_string())
    }
}
