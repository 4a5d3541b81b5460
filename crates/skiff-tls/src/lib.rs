//! TLS for skiff: rustls configured from the Beats `ssl.*` settings, and errors that say what to
//! fix.
//!
//! Every network output (Elasticsearch, Logstash, Kafka, Redis) and every network input
//! (Lumberjack) takes an `ssl` block with the keys Beats users already have in their
//! `filebeat.yml`. This crate is the one place those keys are understood:
//!
//! * [`SslConfig`] / [`SslServerConfig`]: the settings (serde, unknown keys refused, defaults
//!   documented per field).
//! * [`client_config`] / [`server_config`]: a ready `rustls` configuration. Crypto is *ring*
//!   (small and quick to build); the trust store is the configured CAs, else the system's.
//!   `verification_mode`, `ca_trusted_fingerprint` and `ca_sha256` are implemented by one
//!   verifier wrapping rustls's WebPKI verifier (module `verify`).
//! * [`explain`]: the root cause of a failed connection (found at the bottom of the error
//!   chain: HTTP client → hyper → I/O → rustls) as one sentence with the fix, e.g. "the server
//!   certificate is valid for 192.168.1.57, not 192.168.1.249: connect by a name in its SAN, or
//!   set ssl.verification_mode: certificate".
//! * [`describe_peer`] / [`handshake`]: the presented certificate (subject, SANs, expiry, chain)
//!   for `skiff test output`.
//!
//! ```
//! let cfg: skiff_tls::SslConfig = serde_json::from_str(
//!     r#"{"verification_mode": "certificate", "supported_protocols": ["TLSv1.3"]}"#,
//! ).unwrap();
//! let client = skiff_tls::client_config(&cfg).unwrap();
//! assert!(client.client_auth_cert_resolver.has_certs() == false);
//! ```

mod config;
mod configure;
mod explain;
mod peer;
mod pem;
mod verify;

pub use config::{ClientAuth, SslConfig, SslServerConfig, VerificationMode};
pub use configure::{client_config, server_config};
pub use explain::explain;
pub use peer::{PeerInfo, describe_peer, handshake, server_name};

/// The rustls version this crate configures (so users need not depend on it separately).
pub use rustls;

/// What is wrong with an `ssl.*` block, or with what a peer presented.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file cannot be read.
    #[error("ssl.{key}: cannot read {path}: {source}")]
    Read {
        /// The setting.
        key: &'static str,
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A certificate or key is not usable PEM.
    #[error("ssl.{key}: {origin}: {detail}")]
    Pem {
        /// The setting.
        key: &'static str,
        /// The file, or "the inline PEM".
        origin: String,
        /// What is wrong and what to do.
        detail: String,
    },
    /// A setting has a value that cannot be used.
    #[error("ssl.{key}: {message}")]
    Setting {
        /// The setting.
        key: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
    /// A peer's certificate or name cannot be used.
    #[error("{0}")]
    Peer(String),
}
