//! Certificate fields: fingerprints, subject/issuer in Go's `pkix.Name` string form (what
//! Packetbeat prints), validity, and the ECS `x509` object, from `x509-parser`.

use md5::Digest;
use skiff_event::{Map, Value};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::X509Name;

use super::{Fingerprint, TlsConfig};
use crate::protocol::Transaction;

/// Name attributes Go knows, in the order `pkix.Name.String()` prints them:
/// (OID, short name, ECS field).
const ATTRS: &[(&str, &str, &str)] = &[
    ("2.5.4.5", "SERIALNUMBER", "serial_number"),
    ("2.5.4.3", "CN", "common_name"),
    ("2.5.4.11", "OU", "organizational_unit"),
    ("2.5.4.10", "O", "organization"),
    ("2.5.4.17", "POSTALCODE", "postal_code"),
    ("2.5.4.9", "STREET", "street_address"),
    ("2.5.4.7", "L", "locality"),
    ("2.5.4.8", "ST", "state_or_province"),
    ("2.5.4.6", "C", "country"),
];

/// The values of each known attribute of a name, in [`ATTRS`] order.
fn attrs(name: &X509Name<'_>) -> Vec<Vec<String>> {
    ATTRS
        .iter()
        .map(|(oid, _, _)| {
            name.iter_attributes()
                .filter(|a| a.attr_type().to_id_string() == *oid)
                .filter_map(|a| a.as_str().ok().map(str::to_owned))
                .collect()
        })
        .collect()
}

/// Go's RFC 2253-style escaping of one attribute value.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && matches!(c, ' ' | '#'))
            || (i == last && c == ' ')
        {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `CN=...,O=...,C=...` as Go prints a `pkix.Name`.
fn dn(values: &[Vec<String>]) -> String {
    ATTRS
        .iter()
        .zip(values)
        .filter(|(_, v)| !v.is_empty())
        .map(|((_, short, _), v)| {
            v.iter()
                .map(|x| format!("{short}={}", escape(x)))
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn name_object(name: &X509Name<'_>) -> Map {
    let values = attrs(name);
    let mut m = Map::new();
    for ((_, _, field), v) in ATTRS.iter().zip(&values) {
        if !v.is_empty() {
            m.insert((*field).into(), Value::from(v.join(" ")));
        }
    }
    m.insert("distinguished_name".into(), Value::from(dn(&values)));
    m
}

fn time(t: x509_parser::time::ASN1Time) -> String {
    chrono::DateTime::from_timestamp(t.timestamp(), 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

fn upper_hex(b: &[u8]) -> String {
    hex::encode_upper(b)
}

/// The ECS `x509` object of a certificate.
fn x509(cert: &X509Certificate<'_>) -> Map {
    let mut m = Map::new();
    let mut names: Vec<String> = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for g in &san.value.general_names {
            match g {
                GeneralName::DNSName(s) | GeneralName::RFC822Name(s) => names.push((*s).into()),
                GeneralName::IPAddress(b) => {
                    if let Ok(a) = <[u8; 4]>::try_from(*b) {
                        names.push(std::net::Ipv4Addr::from(a).to_string());
                    } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                        names.push(std::net::Ipv6Addr::from(a).to_string());
                    }
                }
                _ => {}
            }
        }
    }
    if !names.is_empty() {
        m.insert("alternative_names".into(), Value::from(names));
    }
    m.insert("issuer".into(), Value::Object(name_object(cert.issuer())));
    m.insert("subject".into(), Value::Object(name_object(cert.subject())));
    m.insert("not_before".into(), time(cert.validity().not_before).into());
    m.insert("not_after".into(), time(cert.validity().not_after).into());
    let spki = cert.public_key();
    let (algo, size) = match spki.parsed() {
        Ok(PublicKey::RSA(k)) => (Some("RSA"), Some(k.key_size())),
        Ok(PublicKey::EC(k)) => (Some("ECDSA"), Some(k.key_size())),
        Ok(PublicKey::DSA(_)) => (Some("DSA"), None),
        _ => match spki.algorithm.algorithm.to_id_string().as_str() {
            "1.3.101.112" => (Some("Ed25519"), None),
            _ => (None, None),
        },
    };
    if let Some(a) = algo {
        m.insert("public_key_algorithm".into(), a.into());
    }
    if let Some(s) = size {
        m.insert("public_key_size".into(), s.into());
    }
    m.insert("serial_number".into(), cert.serial.to_string().into());
    let sig = match cert.signature_algorithm.algorithm.to_id_string().as_str() {
        "1.2.840.113549.1.1.5" => "SHA1-RSA",
        "1.2.840.113549.1.1.11" => "SHA256-RSA",
        "1.2.840.113549.1.1.12" => "SHA384-RSA",
        "1.2.840.113549.1.1.13" => "SHA512-RSA",
        "1.2.840.113549.1.1.10" => "SHA256-RSAPSS",
        "1.2.840.10045.4.1" => "ECDSA-SHA1",
        "1.2.840.10045.4.3.2" => "ECDSA-SHA256",
        "1.2.840.10045.4.3.3" => "ECDSA-SHA384",
        "1.2.840.10045.4.3.4" => "ECDSA-SHA512",
        "1.3.101.112" => "Ed25519",
        _ => "",
    };
    if !sig.is_empty() {
        m.insert("signature_algorithm".into(), sig.into());
    }
    m.insert("version_number".into(), (cert.version().0 + 1).into());
    m
}

/// The `tls.detailed.*_certificate_chain` entries: the x509 object of every certificate
/// after the leaf.
pub fn chain(certs: &[Vec<u8>]) -> Vec<Value> {
    certs
        .iter()
        .skip(1)
        .filter_map(|der| x509_parser::parse_x509_certificate(der).ok())
        .map(|(_, c)| Value::Object(x509(&c)))
        .collect()
}

/// The `tls.<who>.*` certificate fields of the leaf certificate of `certs`.
pub fn fields(tx: &mut Transaction, cfg: &TlsConfig, who: &str, certs: &[Vec<u8>]) {
    let Some(leaf) = certs.first() else {
        return;
    };
    for f in &cfg.fingerprints {
        let (name, hash) = match f {
            Fingerprint::Md5 => ("md5", upper_hex(&md5::Md5::digest(leaf))),
            Fingerprint::Sha1 => ("sha1", upper_hex(&sha1::Sha1::digest(leaf))),
            Fingerprint::Sha256 => ("sha256", upper_hex(&sha2::Sha256::digest(leaf))),
        };
        tx.set(&format!("tls.{who}.hash.{name}"), hash);
    }
    if let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf) {
        tx.set(&format!("tls.{who}.subject"), dn(&attrs(cert.subject())));
        tx.set(&format!("tls.{who}.issuer"), dn(&attrs(cert.issuer())));
        tx.set(
            &format!("tls.{who}.not_before"),
            time(cert.validity().not_before),
        );
        tx.set(
            &format!("tls.{who}.not_after"),
            time(cert.validity().not_after),
        );
        if cfg.send_certificates && cfg.include_detailed_fields {
            tx.set(&format!("tls.{who}.x509"), Value::Object(x509(&cert)));
        }
    }
    if cfg.include_raw_certificates {
        let pems: Vec<String> = certs
            .iter()
            .map(|der| {
                let p = pem::Pem::new("CERTIFICATE", der.clone());
                pem::encode_config(
                    &p,
                    pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
                )
            })
            .collect();
        tx.set(&format!("tls.{who}.certificate_chain"), pems);
    }
}
