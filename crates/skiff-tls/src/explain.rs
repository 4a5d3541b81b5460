//! Plain-language explanations of connection failures.
//!
//! A failed TLS connection reaches the user through several layers (HTTP client, hyper, tokio,
//! rustls); the root cause is at the bottom of the error's `source()` chain. [`explain`] walks
//! it, finds the rustls or I/O error and says what it means and what to change.

use std::error::Error as StdError;
use std::io;

use rustls::{AlertDescription, CertificateError, Error as TlsErr, InvalidMessage};
use rustls_pki_types::UnixTime;

/// Explains why connecting to `host` failed, in words an operator can act on.
///
/// Falls back to the error chain's own text (`a: b: c`) when the cause is not recognised.
pub fn explain(err: &(dyn StdError + 'static), host: &str) -> String {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(s) = examine(e, host, 0) {
            return s;
        }
        cur = e.source();
    }
    chain_text(err)
}

/// Explains `e` itself if it is (or wraps) a rustls or I/O error.
///
/// `io::Error` hides what it wraps from `source()` (its `source()` is the wrapped error's
/// source), and hyper wraps tokio-rustls's `io::Error(InvalidData, rustls::Error)` in another
/// `io::Error`: wrapped errors are opened here, recursively.
fn examine(e: &(dyn StdError + 'static), host: &str, depth: u8) -> Option<String> {
    if depth > 4 {
        return None;
    }
    if let Some(t) = e.downcast_ref::<TlsErr>() {
        return explain_tls(t, host);
    }
    if let Some(ioe) = e.downcast_ref::<io::Error>() {
        if let Some(inner) = ioe.get_ref() {
            let inner: &(dyn StdError + 'static) = inner;
            if let Some(s) = examine(inner, host, depth + 1) {
                return Some(s);
            }
        }
        return explain_io(ioe, host);
    }
    None
}

fn chain_text(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

/// A date for messages: `2024-05-01 12:00:00 UTC`.
pub(crate) fn date(t: UnixTime) -> String {
    let secs = i64::try_from(t.as_secs()).unwrap_or(i64::MAX);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(d) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            d.year(),
            u8::from(d.month()),
            d.day(),
            d.hour(),
            d.minute(),
            d.second()
        ),
        Err(_) => format!("{secs} (unix time)"),
    }
}

fn explain_tls(e: &TlsErr, host: &str) -> Option<String> {
    let s = match e {
        TlsErr::InvalidCertificate(c) => match c {
            CertificateError::NotValidForNameContext { presented, .. } => format!(
                "the server certificate is valid for {}, not {host}: connect by a name in its \
                 SAN, or set ssl.verification_mode: certificate",
                if presented.is_empty() {
                    "no name at all (it has no subject alternative names)".to_owned()
                } else {
                    presented
                        .iter()
                        .map(|n| plain_name(n))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
            CertificateError::NotValidForName => format!(
                "the server certificate is not valid for {host}: connect by a name in its SAN, \
                 or set ssl.verification_mode: certificate"
            ),
            CertificateError::UnknownIssuer => "the server certificate is signed by an unknown \
                 authority: add its CA to ssl.certificate_authorities (or trust it with \
                 ssl.ca_trusted_fingerprint)"
                .to_owned(),
            CertificateError::ExpiredContext { time, not_after } => format!(
                "the server certificate expired on {} (it is now {}): renew the server's \
                 certificate (or check this machine's clock)",
                date(*not_after),
                date(*time)
            ),
            CertificateError::Expired => "the server certificate has expired: renew the \
                 server's certificate (or check this machine's clock)"
                .to_owned(),
            CertificateError::NotValidYetContext { time, not_before } => format!(
                "the server certificate is not valid before {} (it is now {}): check this \
                 machine's clock",
                date(*not_before),
                date(*time)
            ),
            CertificateError::NotValidYet => {
                "the server certificate is not valid yet: check this machine's clock".to_owned()
            }
            CertificateError::Revoked => "the server certificate has been revoked".to_owned(),
            CertificateError::BadSignature => "the server certificate's signature is invalid: \
                 its chain does not match ssl.certificate_authorities"
                .to_owned(),
            CertificateError::BadEncoding => {
                "the server sent a certificate that cannot be parsed".to_owned()
            }
            other => format!("the server certificate was refused: {other:?}"),
        },
        TlsErr::AlertReceived(a) => match a {
            AlertDescription::CertificateRequired => "the server requires a client \
                 certificate: set ssl.certificate and ssl.key"
                .to_owned(),
            AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::DecryptError => "the server refused our client certificate: \
                 check that ssl.certificate is signed by a CA the server trusts and not expired"
                .to_owned(),
            AlertDescription::CertificateExpired => {
                "the server says our client certificate has expired: renew ssl.certificate"
                    .to_owned()
            }
            AlertDescription::HandshakeFailure => "the server aborted the TLS handshake: it may \
                 require a client certificate (ssl.certificate and ssl.key), or share no \
                 protocol or cipher with ssl.supported_protocols / ssl.cipher_suites"
                .to_owned(),
            AlertDescription::ProtocolVersion => "the server does not accept the TLS versions \
                 in ssl.supported_protocols"
                .to_owned(),
            other => format!("the server aborted the TLS handshake with alert {other:?}"),
        },
        TlsErr::InvalidMessage(InvalidMessage::InvalidContentType) | TlsErr::InvalidMessage(_) => {
            format!(
                "{host} does not speak TLS on this port (it sent something that is not TLS): use \
             http:// (or turn ssl off), or connect to the TLS port"
            )
        }
        TlsErr::NoCertificatesPresented => "the client presented no certificate, and this \
             server requires one (ssl.client_authentication: required)"
            .to_owned(),
        TlsErr::PeerIncompatible(p) => format!(
            "the server and ssl.supported_protocols / ssl.cipher_suites have nothing in common: \
             {p:?}"
        ),
        TlsErr::General(g) => format!("TLS failed: {g}"),
        _ => return None,
    };
    Some(s)
}

/// `DnsName("es1")` / `IpAddress(10.0.0.1)` (how rustls lists presented names) to `es1`.
fn plain_name(n: &str) -> &str {
    match (n.find('('), n.ends_with(')')) {
        (Some(i), true) => n[i + 1..n.len() - 1].trim_matches('"'),
        _ => n,
    }
}

fn explain_io(e: &io::Error, host: &str) -> Option<String> {
    let text = e.to_string();
    let s = match e.kind() {
        io::ErrorKind::ConnectionRefused => format!(
            "connection to {host} refused: nothing listens on that port (is the server running, \
             is the port right?)"
        ),
        io::ErrorKind::TimedOut => format!(
            "connecting to {host} timed out: a firewall may drop the packets, or the server is \
             overloaded (raise `timeout` if it is slow)"
        ),
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => format!(
            "{host} reset the connection: the server closed it (restarting, overloaded, or it \
             expects TLS where we speak plain text or the reverse)"
        ),
        io::ErrorKind::UnexpectedEof => format!(
            "{host} closed the connection unexpectedly (during a TLS handshake this usually \
             means it expects plain text, or refused our certificate)"
        ),
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            format!("{host} is unreachable: check the route and the address")
        }
        io::ErrorKind::AddrNotAvailable => {
            format!("cannot connect to {host}: the address is not available on this machine")
        }
        _ if text.contains("failed to lookup address")
            || text.contains("Name or service not known")
            || text.contains("nodename nor servname") =>
        {
            format!("cannot resolve {host}: check the host name and DNS ({text})")
        }
        _ => return None,
    };
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_io_errors_are_opened() {
        let e = io::Error::other(io::Error::new(
            io::ErrorKind::InvalidData,
            TlsErr::InvalidCertificate(CertificateError::UnknownIssuer),
        ));
        let s = explain(&e, "h");
        assert!(s.contains("unknown authority"), "{s}");
    }
}
