//! The server certificate check behind `verification_mode`, `ca_trusted_fingerprint` and
//! `ca_sha256`.
//!
//! rustls's own WebPKI verifier does the work; this wrapper decides which of its verdicts to
//! accept. WebPKI checks the chain (issuer, validity dates) before the host name, so a
//! "not valid for name" error means the chain was already good: `certificate` mode can accept it.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

use crate::VerificationMode;

/// A server certificate verifier configured from `ssl.*`.
#[derive(Debug)]
pub(crate) struct Verifier {
    pub(crate) mode: VerificationMode,
    /// The trusted roots (configured CAs or the system's).
    pub(crate) roots: Arc<RootCertStore>,
    /// The WebPKI verifier over `roots` (None when there are no roots at all).
    pub(crate) webpki: Option<Arc<WebPkiServerVerifier>>,
    /// `ca_trusted_fingerprint`, decoded.
    pub(crate) fingerprint: Option<[u8; 32]>,
    /// `ca_sha256` pins, as base64 text.
    pub(crate) pins: Vec<String>,
    pub(crate) provider: Arc<CryptoProvider>,
}

impl Verifier {
    /// A WebPKI verifier that also trusts the chain certificate matching the fingerprint.
    fn with_fingerprint(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Option<Arc<WebPkiServerVerifier>> {
        let want = self.fingerprint?;
        let ca = std::iter::once(end_entity)
            .chain(intermediates)
            .find(|c| Sha256::digest(c.as_ref()).as_slice() == want)?;
        let mut roots = (*self.roots).clone();
        if roots.add(ca.clone().into_owned()).is_err() {
            return None;
        }
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .ok()
    }

    fn check_pins(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<(), Error> {
        if self.pins.is_empty() {
            return Ok(());
        }
        for c in std::iter::once(end_entity).chain(intermediates) {
            if let Ok((_, cert)) = x509_parser::parse_x509_certificate(c.as_ref()) {
                let spki = cert.tbs_certificate.subject_pki.raw;
                let pin = base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    Sha256::digest(spki),
                );
                if self.pins.iter().any(|p| p == &pin) {
                    return Ok(());
                }
            }
        }
        Err(Error::General(
            "no certificate in the server's chain matches ssl.ca_sha256".into(),
        ))
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if self.mode == VerificationMode::None {
            return Ok(ServerCertVerified::assertion());
        }
        let webpki = self
            .with_fingerprint(end_entity, intermediates)
            .or_else(|| self.webpki.clone())
            .ok_or(Error::InvalidCertificate(CertificateError::UnknownIssuer))?;
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Ok(v) => {
                self.check_pins(end_entity, intermediates)?;
                Ok(v)
            }
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if self.mode == VerificationMode::Certificate => {
                self.check_pins(end_entity, intermediates)?;
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Decodes `ca_trusted_fingerprint`: 64 hex digits, `:` and spaces ignored.
pub(crate) fn parse_fingerprint(s: &str) -> Option<[u8; 32]> {
    let hex: Vec<u8> = s
        .bytes()
        .filter(|b| *b != b':' && !b.is_ascii_whitespace())
        .collect();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}
