//! The `ssl.*` settings, as the Beats spell them.

use serde::Deserialize;

/// How a peer's certificate is checked (`ssl.verification_mode`).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum VerificationMode {
    /// The chain must lead to a trusted CA and the host name (or IP) must be in the
    /// certificate's subject alternative names. The default.
    #[default]
    Full,
    /// As `full`. (In Beats `strict` also refuses certificates without SANs; rustls never falls
    /// back to the common name, so `full` already behaves that way.)
    Strict,
    /// The chain must lead to a trusted CA; the host name is not checked.
    Certificate,
    /// Nothing is checked (the handshake's signatures still are): for tests only, the
    /// connection is open to interception.
    None,
}

/// Whether a TLS server asks its clients for a certificate (`ssl.client_authentication`).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// Clients are not asked for a certificate.
    None,
    /// A certificate is asked for and checked when given; clients without one are accepted.
    Optional,
    /// Clients must present a certificate signed by one of `certificate_authorities`.
    Required,
}

/// The client side `ssl.*` block of an output (`output.elasticsearch.ssl`, ...).
///
/// Certificates and keys are file paths or inline PEM text (a value containing
/// `-----BEGIN`), as in Beats.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SslConfig {
    /// enabled: use TLS. Default: true when an `ssl` block is present (for Elasticsearch an
    /// `https://` host also turns it on).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// certificate_authorities: CA certificates (paths or inline PEM) that are trusted to sign
    /// the server's certificate. Default: none, which means the operating system's trust store.
    /// When set, the system store is not used (as in Beats).
    #[serde(default)]
    pub certificate_authorities: Vec<String>,
    /// certificate: the client certificate (path or PEM) for servers that require one.
    /// Default: none.
    #[serde(default)]
    pub certificate: Option<String>,
    /// key: the client certificate's private key (path or PEM; PKCS#8, PKCS#1 or SEC1).
    /// Default: none.
    #[serde(default)]
    pub key: Option<String>,
    /// key_passphrase: the passphrase of an encrypted PKCS#8 `key`. Default: none.
    #[serde(default)]
    pub key_passphrase: Option<String>,
    /// verification_mode: `full`, `strict`, `certificate` or `none`. Default: `full`.
    #[serde(default)]
    pub verification_mode: VerificationMode,
    /// supported_protocols: `TLSv1.2`, `TLSv1.3` (`TLSv1.0`/`TLSv1.1` are accepted and ignored
    /// with a warning: rustls does not implement them). Default: TLS 1.2 and 1.3.
    #[serde(default)]
    pub supported_protocols: Vec<String>,
    /// cipher_suites: allowed suites by their Beats names (`ECDHE-RSA-AES-128-GCM-SHA256`) or
    /// IANA names. As in Go (and Beats), when the list names no TLS 1.3 suite all TLS 1.3
    /// suites stay enabled. Default: every suite rustls offers (AEAD suites only).
    #[serde(default)]
    pub cipher_suites: Vec<String>,
    /// ca_trusted_fingerprint: SHA-256 (hex, `:` separators allowed) of a CA certificate; when
    /// the server presents a certificate with it in its chain, that certificate is trusted as a
    /// CA. Default: none.
    #[serde(default)]
    pub ca_trusted_fingerprint: Option<String>,
    /// ca_sha256: pins, each the base64 SHA-256 of a certificate's public key (SPKI); when set,
    /// one certificate of the verified chain must match one pin. Default: none.
    #[serde(default)]
    pub ca_sha256: Vec<String>,
    /// renegotiation: accepted for compatibility; rustls never renegotiates (Beats `never`).
    /// Default: `never`.
    #[serde(default)]
    pub renegotiation: Option<String>,
}

impl SslConfig {
    /// Whether TLS is on: `enabled`, or true when the block is there without it.
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }
}

/// The server side `ssl.*` block of an input (`lumberjack`, `http_endpoint`, ...).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SslServerConfig {
    /// enabled: serve TLS. Default: true when an `ssl` block is present.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// certificate: the server certificate chain (path or PEM). Required.
    #[serde(default)]
    pub certificate: Option<String>,
    /// key: the server's private key (path or PEM). Required.
    #[serde(default)]
    pub key: Option<String>,
    /// key_passphrase: the passphrase of an encrypted PKCS#8 `key`. Default: none.
    #[serde(default)]
    pub key_passphrase: Option<String>,
    /// certificate_authorities: CAs that sign client certificates. Default: none.
    #[serde(default)]
    pub certificate_authorities: Vec<String>,
    /// client_authentication: `none`, `optional` or `required`. Default: `required` when
    /// `certificate_authorities` is set, `none` otherwise (as in Beats).
    #[serde(default)]
    pub client_authentication: Option<ClientAuth>,
    /// verification_mode: accepted for compatibility; client certificates are always checked
    /// against `certificate_authorities` (a client certificate names no host to check).
    /// Default: `full`.
    #[serde(default)]
    pub verification_mode: VerificationMode,
    /// supported_protocols: as for clients. Default: TLS 1.2 and 1.3.
    #[serde(default)]
    pub supported_protocols: Vec<String>,
    /// cipher_suites: as for clients. Default: every suite rustls offers.
    #[serde(default)]
    pub cipher_suites: Vec<String>,
    /// renegotiation: accepted for compatibility; ignored. Default: `never`.
    #[serde(default)]
    pub renegotiation: Option<String>,
}

impl SslServerConfig {
    /// Whether TLS is on: `enabled`, or true when the block is there without it.
    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }

    /// The effective `client_authentication`.
    pub fn client_auth(&self) -> ClientAuth {
        self.client_authentication
            .unwrap_or(if self.certificate_authorities.is_empty() {
                ClientAuth::None
            } else {
                ClientAuth::Required
            })
    }
}
