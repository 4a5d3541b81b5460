//! Turning `ssl.*` settings into rustls client and server configurations.

use std::sync::{Arc, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{CipherSuite, RootCertStore, SupportedProtocolVersion};

use crate::verify::{Verifier, parse_fingerprint};
use crate::{ClientAuth, SslConfig, SslServerConfig, TlsError, pem};

/// Cipher suite names: Beats (Go) spelling, then rustls's suite.
const SUITES: &[(&str, CipherSuite)] = &[
    (
        "ECDHE-ECDSA-AES-128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES-256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-AES-128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-AES-256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    // Beats' own table spells it this way.
    (
        "ECDHE-RSA-CHACHA20-POLY1205",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS-AES-128-GCM-SHA256",
        CipherSuite::TLS13_AES_128_GCM_SHA256,
    ),
    (
        "TLS-AES-256-GCM-SHA384",
        CipherSuite::TLS13_AES_256_GCM_SHA384,
    ),
    (
        "TLS-CHACHA20-POLY1305-SHA256",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    ),
];

fn suite_by_name(name: &str) -> Option<CipherSuite> {
    let n = name.trim();
    SUITES
        .iter()
        .find(|(b, s)| b.eq_ignore_ascii_case(n) || format!("{s:?}").eq_ignore_ascii_case(n))
        .map(|(_, s)| *s)
}

fn is_tls13(s: CipherSuite) -> bool {
    format!("{s:?}").starts_with("TLS13_")
}

/// The ring provider, restricted to `cipher_suites`.
fn provider(cipher_suites: &[String]) -> Result<Arc<CryptoProvider>, TlsError> {
    let mut p = rustls::crypto::ring::default_provider();
    if cipher_suites.is_empty() {
        return Ok(Arc::new(p));
    }
    let mut wanted = Vec::new();
    for name in cipher_suites {
        match suite_by_name(name) {
            Some(s) => wanted.push(s),
            None => {
                return Err(TlsError::Setting {
                    key: "cipher_suites",
                    message: format!(
                        "`{name}` is not a supported cipher suite (rustls offers only AEAD \
                         suites): use one of {}",
                        SUITES
                            .iter()
                            .map(|(b, _)| *b)
                            .filter(|b| !b.ends_with("1205"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
        }
    }
    // Go (so Beats) applies cipher_suites to TLS 1.2 only; keep that unless TLS 1.3 names are
    // listed.
    let restrict13 = wanted.iter().any(|s| is_tls13(*s));
    p.cipher_suites.retain(|cs| {
        let s = cs.suite();
        wanted.contains(&s) || (!restrict13 && is_tls13(s))
    });
    Ok(Arc::new(p))
}

fn versions(protocols: &[String]) -> Result<Vec<&'static SupportedProtocolVersion>, TlsError> {
    if protocols.is_empty() {
        return Ok(vec![&rustls::version::TLS13, &rustls::version::TLS12]);
    }
    let mut out = Vec::new();
    for p in protocols {
        match p.trim().to_ascii_lowercase().as_str() {
            "tlsv1.3" => out.push(&rustls::version::TLS13),
            "tlsv1.2" => out.push(&rustls::version::TLS12),
            "tlsv1.0" | "tlsv1.1" | "sslv3" => {
                tracing::warn!(protocol = %p, "ssl.supported_protocols: protocol not supported by rustls; ignored")
            }
            _ => {
                return Err(TlsError::Setting {
                    key: "supported_protocols",
                    message: format!("`{p}` is not a TLS version: use TLSv1.2 and/or TLSv1.3"),
                });
            }
        }
    }
    if out.is_empty() {
        return Err(TlsError::Setting {
            key: "supported_protocols",
            message: "none of the listed protocols is supported: add TLSv1.2 or TLSv1.3".into(),
        });
    }
    Ok(out)
}

/// The operating system's trust store, loaded once.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut store = RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "cannot read part of the system trust store");
            }
            let (added, ignored) = store.add_parsable_certificates(found.certs);
            tracing::debug!(added, ignored, "loaded the system trust store");
            Arc::new(store)
        })
        .clone()
}

fn roots(cas: &[String], key: &'static str) -> Result<Arc<RootCertStore>, TlsError> {
    if cas.is_empty() {
        return Ok(system_roots());
    }
    let mut store = RootCertStore::empty();
    for ca in cas {
        for c in pem::certs(key, ca)? {
            store.add(c).map_err(|e| TlsError::Setting {
                key,
                message: format!("a certificate in {} is not a usable CA: {e}", shorten(ca)),
            })?;
        }
    }
    Ok(Arc::new(store))
}

fn shorten(v: &str) -> String {
    if v.contains("-----BEGIN") {
        "the inline PEM".into()
    } else {
        v.to_owned()
    }
}

/// A rustls client configuration from an output's `ssl.*` block.
///
/// ALPN is left empty; callers that need it (HTTP/2) set it on a clone.
pub fn client_config(cfg: &SslConfig) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = provider(&cfg.cipher_suites)?;
    let versions = versions(&cfg.supported_protocols)?;
    let roots = roots(&cfg.certificate_authorities, "certificate_authorities")?;
    let fingerprint = match &cfg.ca_trusted_fingerprint {
        None => None,
        Some(f) => Some(parse_fingerprint(f).ok_or_else(|| TlsError::Setting {
            key: "ca_trusted_fingerprint",
            message: format!(
                "`{f}` is not a SHA-256 fingerprint: write 64 hex digits (as printed by \
                 `openssl x509 -fingerprint -sha256 -noout -in ca.crt`)"
            ),
        })?),
    };
    let webpki = if roots.is_empty() {
        None
    } else {
        Some(
            WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .map_err(|e| TlsError::Setting {
                    key: "certificate_authorities",
                    message: e.to_string(),
                })?,
        )
    };
    let verifier = Arc::new(Verifier {
        mode: cfg.verification_mode,
        roots,
        webpki,
        fingerprint,
        pins: cfg.ca_sha256.clone(),
        provider: provider.clone(),
    });
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| TlsError::Setting {
            key: "supported_protocols",
            message: format!("{e} (do the cipher_suites fit the protocols?)"),
        })?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (&cfg.certificate, &cfg.key) {
        (Some(cert), Some(key)) => {
            let chain = pem::certs("certificate", cert)?;
            let key = pem::private_key("key", key, cfg.key_passphrase.as_deref())?;
            let leaf = chain.first().cloned();
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| cert_key_error(leaf.as_ref(), e))?
        }
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => {
            return Err(TlsError::Setting {
                key: "key",
                message: "ssl.certificate is set without ssl.key: set both or neither".into(),
            });
        }
        (None, Some(_)) => {
            return Err(TlsError::Setting {
                key: "certificate",
                message: "ssl.key is set without ssl.certificate: set both or neither".into(),
            });
        }
    };
    Ok(Arc::new(config))
}

/// A rustls server configuration from an input's `ssl.*` block.
pub fn server_config(cfg: &SslServerConfig) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = provider(&cfg.cipher_suites)?;
    let versions = versions(&cfg.supported_protocols)?;
    let (Some(cert), Some(key)) = (&cfg.certificate, &cfg.key) else {
        return Err(TlsError::Setting {
            key: "certificate",
            message: "a TLS server needs ssl.certificate and ssl.key".into(),
        });
    };
    let chain = pem::certs("certificate", cert)?;
    let key = pem::private_key("key", key, cfg.key_passphrase.as_deref())?;
    let auth = cfg.client_auth();
    let verifier = if auth == ClientAuth::None {
        WebPkiClientVerifier::no_client_auth()
    } else {
        if cfg.certificate_authorities.is_empty() {
            return Err(TlsError::Setting {
                key: "certificate_authorities",
                message: "client_authentication needs the CAs that sign client certificates \
                          in ssl.certificate_authorities"
                    .into(),
            });
        }
        let roots = roots(&cfg.certificate_authorities, "certificate_authorities")?;
        let b = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
        let b = if auth == ClientAuth::Optional {
            b.allow_unauthenticated()
        } else {
            b
        };
        b.build().map_err(|e| TlsError::Setting {
            key: "certificate_authorities",
            message: e.to_string(),
        })?
    };
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| TlsError::Setting {
            key: "supported_protocols",
            message: e.to_string(),
        })?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key)
        .map_err(|e| cert_key_error(chain.first(), e))?;
    Ok(Arc::new(config))
}

/// The error of a certificate and key rustls refused together. rustls (webpki) reads only
/// X.509 v3 certificates; Go's crypto/tls, and so Filebeat, also takes v1 ones (what
/// `openssl x509 -req` makes without `-extfile`). Saying "the key does not fit" then sends the
/// user after the wrong problem.
fn cert_key_error(
    leaf: Option<&rustls_pki_types::CertificateDer<'_>>,
    e: rustls::Error,
) -> TlsError {
    let version = leaf
        .and_then(|c| x509_parser::parse_x509_certificate(c.as_ref()).ok())
        .map(|(_, cert)| cert.version().0);
    match version {
        Some(v) if v < 2 => TlsError::Setting {
            key: "certificate",
            message: format!(
                "ssl.certificate is an X.509 v{} certificate; skiff's TLS (rustls) accepts only \
                 v3 certificates (Filebeat's Go TLS also took v1). Issue it again as v3, e.g. \
                 `openssl x509 -req ... -extfile <(printf 'basicConstraints=CA:FALSE\\n\
                 extendedKeyUsage=clientAuth,serverAuth')` ({e})",
                v + 1
            ),
        },
        _ => TlsError::Setting {
            key: "key",
            message: format!("the key does not fit ssl.certificate: {e}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_names_map_both_spellings() {
        assert_eq!(
            suite_by_name("ECDHE-RSA-AES-128-GCM-SHA256"),
            Some(CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)
        );
        assert_eq!(
            suite_by_name("tls_ecdhe_rsa_with_aes_128_gcm_sha256"),
            Some(CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)
        );
        assert!(suite_by_name("ECDHE-RSA-AES-128-CBC-SHA").is_none());
        let p = provider(&["ECDHE-RSA-AES-128-GCM-SHA256".into()]).unwrap();
        // The one TLS 1.2 suite plus all three TLS 1.3 suites (Go semantics).
        assert_eq!(p.cipher_suites.len(), 4);
        let err = provider(&["RC4".into()]).unwrap_err().to_string();
        assert!(
            err.contains("RC4") && err.contains("ECDHE-RSA-AES-128-GCM-SHA256"),
            "{err}"
        );
    }

    #[test]
    fn protocols() {
        assert_eq!(
            versions(&["TLSv1.1".into(), "TLSv1.2".into()])
                .unwrap()
                .len(),
            1
        );
        assert!(versions(&["TLSv1.1".into()]).is_err());
        assert!(versions(&["TLS9".into()]).is_err());
    }
}
