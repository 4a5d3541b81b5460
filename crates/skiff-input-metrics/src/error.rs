//! The crate's one error type: why a fetch failed. Its text becomes the event's `error.message`,
//! so every variant says what to check.

/// Why a fetch (or the setup of a fetcher) failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The service could not be reached (refused, reset, DNS, TLS).
    #[error("error fetching {what}: {reason}")]
    Connect {
        /// What was asked (`http://127.0.0.1:6060/debug/vars`).
        what: String,
        /// Why, in plain words.
        reason: String,
    },
    /// The service answered with an HTTP error status.
    #[error("HTTP error {status} in {url}: {body}")]
    Status {
        /// The URL asked.
        url: String,
        /// `404 Not Found`.
        status: String,
        /// The start of the body, for the reason.
        body: String,
    },
    /// The service refused the credentials.
    #[error("authentication failed at {what}: {reason}")]
    Auth {
        /// What was asked.
        what: String,
        /// The server's words.
        reason: String,
    },
    /// The answer could not be read as the metricset expects.
    #[error("cannot parse the answer of {what}: {reason}")]
    Parse {
        /// What was asked.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// The fetch took longer than `timeout`.
    #[error("timeout after {0:?} (raise `timeout` or `period`)")]
    Timeout(std::time::Duration),
    /// A local read (`/proc`, `/sys`) failed.
    #[error("{what}: {source}")]
    Io {
        /// What was read.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Anything else, in words.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// A parse error of `what` for `reason`.
    pub fn parse(what: impl Into<String>, reason: impl std::fmt::Display) -> Error {
        Error::Parse {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}
