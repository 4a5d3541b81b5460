//! Reading certificates and keys: file paths or inline PEM, plain or encrypted PKCS#8 keys.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::TlsError;

/// The PEM text of a setting: the value itself when it is inline PEM, else the file it names.
fn text(key: &'static str, value: &str) -> Result<String, TlsError> {
    if value.contains("-----BEGIN") {
        return Ok(value.to_owned());
    }
    std::fs::read_to_string(value).map_err(|e| TlsError::Read {
        key,
        path: value.to_owned(),
        source: e,
    })
}

fn origin(value: &str) -> String {
    if value.contains("-----BEGIN") {
        "the inline PEM".to_owned()
    } else {
        value.to_owned()
    }
}

/// Every certificate in a setting's PEM (at least one).
pub(crate) fn certs(
    key: &'static str,
    value: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = text(key, value)?;
    let mut out = Vec::new();
    for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        out.push(c.map_err(|e| TlsError::Pem {
            key,
            origin: origin(value),
            detail: e.to_string(),
        })?);
    }
    if out.is_empty() {
        return Err(TlsError::Pem {
            key,
            origin: origin(value),
            detail: "no `-----BEGIN CERTIFICATE-----` block found".into(),
        });
    }
    Ok(out)
}

/// The private key of a setting, decrypted with `passphrase` when it is encrypted PKCS#8.
pub(crate) fn private_key(
    key: &'static str,
    value: &str,
    passphrase: Option<&str>,
) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = text(key, value)?;
    let bad = |detail: String| TlsError::Pem {
        key,
        origin: origin(value),
        detail,
    };
    if pem.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(bad(
            "this key is encrypted in the legacy OpenSSL format (Proc-Type: 4,ENCRYPTED), which is \
             not supported: convert it to encrypted PKCS#8 with `openssl pkcs8 -topk8 -v2 aes256 \
             -in key.pem -out key.p8.pem`"
                .into(),
        ));
    }
    if let Some(start) = pem.find("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        let Some(pass) = passphrase else {
            return Err(bad("the key is encrypted: set ssl.key_passphrase".into()));
        };
        let (_, doc) = pkcs8::der::Document::from_pem(&pem[start..])
            .map_err(|e| bad(format!("cannot parse the encrypted key: {e}")))?;
        let info = pkcs8::EncryptedPrivateKeyInfo::try_from(doc.as_bytes())
            .map_err(|e| bad(format!("cannot parse the encrypted key: {e}")))?;
        let plain = info.decrypt(pass.as_bytes()).map_err(|e| {
            bad(format!(
                "cannot decrypt the key ({e}): check ssl.key_passphrase (supported: PBES2 with \
                 PBKDF2 or scrypt and AES-CBC)"
            ))
        })?;
        return Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            plain.as_bytes().to_vec(),
        )));
    }
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| {
        bad(format!(
            "no usable private key ({e}); expected `PRIVATE KEY`, `RSA PRIVATE KEY`, \
             `EC PRIVATE KEY` or `ENCRYPTED PRIVATE KEY`"
        ))
    })
}
