//! What a server's certificate says (for `skiff test output`), and a TLS handshake helper.

use std::fmt;
use std::sync::Arc;

use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use x509_parser::extensions::GeneralName;

use crate::TlsError;

/// A summary of the certificate chain a server presented.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerInfo {
    /// The leaf certificate's subject (`CN=es1,O=Example`).
    pub subject: String,
    /// The leaf's issuer.
    pub issuer: String,
    /// The leaf's subject alternative names (DNS names and IP addresses).
    pub sans: Vec<String>,
    /// The leaf's `notBefore` (`2026-01-01 00:00:00 UTC`).
    pub not_before: String,
    /// The leaf's `notAfter`.
    pub not_after: String,
    /// Whole days from now until `notAfter` (negative once expired).
    pub expires_in_days: i64,
    /// SHA-256 of the leaf (hex), as `ca_trusted_fingerprint` expects for a CA.
    pub sha256: String,
    /// The subjects of the chain, leaf first.
    pub chain: Vec<String>,
}

impl fmt::Display for PeerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "subject {}, SANs [{}], expires {} (in {} days), chain: {}",
            self.subject,
            self.sans.join(", "),
            self.not_after,
            self.expires_in_days,
            self.chain.join(" <- ")
        )
    }
}

/// Summarises a presented chain (leaf first). Fails only if the leaf cannot be parsed.
pub fn describe_peer(certs: &[CertificateDer<'_>]) -> Result<PeerInfo, TlsError> {
    let leaf = certs
        .first()
        .ok_or_else(|| TlsError::Peer("no certificate".into()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| TlsError::Peer(format!("cannot parse the server certificate: {e}")))?;
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for n in &ext.value.general_names {
            match n {
                GeneralName::DNSName(d) => sans.push((*d).to_owned()),
                GeneralName::IPAddress(b) => sans.push(ip_text(b)),
                _ => {}
            }
        }
    }
    let validity = cert.validity();
    let ts = |t: &x509_parser::time::ASN1Time| {
        crate::explain::date(UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            u64::try_from(t.timestamp()).unwrap_or(0),
        )))
    };
    let now = UnixTime::now().as_secs() as i64;
    let chain = certs
        .iter()
        .map(|c| match x509_parser::parse_x509_certificate(c.as_ref()) {
            Ok((_, c)) => c.subject().to_string(),
            Err(_) => "(unparsable)".to_owned(),
        })
        .collect();
    Ok(PeerInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        sans,
        not_before: ts(&validity.not_before),
        not_after: ts(&validity.not_after),
        expires_in_days: (validity.not_after.timestamp() - now).div_euclid(86_400),
        sha256: Sha256::digest(leaf.as_ref())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        chain,
    })
}

fn ip_text(b: &[u8]) -> String {
    match b.len() {
        4 => std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string(),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            std::net::Ipv6Addr::from(a).to_string()
        }
        _ => format!("{b:?}"),
    }
}

/// The name to verify for a host (`es1.example.com` or an IP address).
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(h.to_owned())
        .map_err(|e| TlsError::Peer(format!("`{host}` is not a valid TLS server name: {e}")))
}

/// Runs a TLS handshake over `tcp` and returns the stream and what the server presented.
///
/// The error is an `io::Error` wrapping the rustls error: give it to [`crate::explain`].
pub async fn handshake(
    tcp: TcpStream,
    host: &str,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<(tokio_rustls::client::TlsStream<TcpStream>, Option<PeerInfo>)> {
    let name =
        server_name(host).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await?;
    let peer = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| describe_peer(c).ok());
    Ok((stream, peer))
}
