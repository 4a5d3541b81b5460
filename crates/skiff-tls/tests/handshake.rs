//! Real TLS handshakes against a rustls server on 127.0.0.1, with certificates made in the test
//! by rcgen: each failure must produce its own plain message from `skiff_tls::explain`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use skiff_tls::{ClientAuth, SslConfig, SslServerConfig, VerificationMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(rcgen::DnType::CommonName, name.to_owned());
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    Ca { cert, key }
}

/// A leaf signed by `ca`, for `names`; `expired` puts its validity in the past.
fn leaf(ca: &Ca, names: &[&str], expired: bool) -> (String, String) {
    let mut p =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(
        rcgen::DnType::CommonName,
        names.first().copied().unwrap_or("client"),
    );
    if expired {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    // The chain includes the CA, so that ca_trusted_fingerprint can find it.
    (
        format!("{}{}", cert.pem(), ca.cert.pem()),
        key.serialize_pem(),
    )
}

/// Starts a TLS server that greets each client with "hi"; returns its port.
async fn server(cfg: SslServerConfig) -> u16 {
    let config = skiff_tls::server_config(&cfg).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut s) = acceptor.accept(tcp).await {
                    let _ = s.write_all(b"hi").await;
                    let _ = s.flush().await;
                    let mut b = [0u8; 1];
                    let _ = s.read(&mut b).await;
                }
            });
        }
    });
    port
}

fn server_cfg(chain: String, key: String) -> SslServerConfig {
    SslServerConfig {
        certificate: Some(chain),
        key: Some(key),
        ..Default::default()
    }
}

/// Connects and reads the greeting; on failure returns `explain`'s text.
async fn connect(port: u16, cfg: &SslConfig) -> Result<skiff_tls::PeerInfo, String> {
    let config = skiff_tls::client_config(cfg).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut s, peer) = skiff_tls::handshake(tcp, "127.0.0.1", Arc::clone(&config))
        .await
        .map_err(|e| skiff_tls::explain(&e, "127.0.0.1"))?;
    // With TLS 1.3 a refused client certificate shows up on the first read.
    let mut buf = [0u8; 2];
    s.read_exact(&mut buf)
        .await
        .map_err(|e| skiff_tls::explain(&e, "127.0.0.1"))?;
    assert_eq!(&buf, b"hi");
    Ok(peer.unwrap())
}

fn trusting(ca: &Ca) -> SslConfig {
    SslConfig {
        certificate_authorities: vec![ca.cert.pem()],
        ..Default::default()
    }
}

#[tokio::test]
async fn valid_certificate_connects_and_is_described() {
    let ca = ca("Test CA");
    let (chain, key) = leaf(&ca, &["localhost", "127.0.0.1"], false);
    let port = server(server_cfg(chain, key)).await;
    let peer = connect(port, &trusting(&ca)).await.unwrap();
    assert_eq!(peer.sans, vec!["localhost", "127.0.0.1"]);
    assert!(peer.subject.contains("CN=localhost"), "{peer}");
    assert_eq!(peer.chain.len(), 2);
    assert!(peer.chain[1].contains("Test CA"));
    assert!(peer.expires_in_days > 0);
}

#[tokio::test]
async fn wrong_host_name_is_explained_and_certificate_mode_accepts_it() {
    let ca = ca("Test CA");
    let (chain, key) = leaf(&ca, &["192.168.1.57", "es1.example"], false);
    let port = server(server_cfg(chain, key)).await;
    let err = connect(port, &trusting(&ca)).await.unwrap_err();
    assert_eq!(
        err,
        "the server certificate is valid for 192.168.1.57, es1.example, not 127.0.0.1: connect \
         by a name in its SAN, or set ssl.verification_mode: certificate"
    );
    let mut cfg = trusting(&ca);
    cfg.verification_mode = VerificationMode::Certificate;
    connect(port, &cfg).await.unwrap();
    // `strict` checks names like `full`.
    cfg.verification_mode = VerificationMode::Strict;
    assert!(connect(port, &cfg).await.is_err());
}

#[tokio::test]
async fn unknown_ca_is_explained_and_a_fingerprint_trusts_it() {
    let real = ca("Real CA");
    let other = ca("Other CA");
    let (chain, key) = leaf(&real, &["127.0.0.1"], false);
    let port = server(server_cfg(chain, key)).await;
    let err = connect(port, &trusting(&other)).await.unwrap_err();
    assert!(
        err.starts_with("the server certificate is signed by an unknown authority: add its CA to ssl.certificate_authorities"),
        "{err}"
    );
    // Certificate mode still checks the chain.
    let mut cfg = trusting(&other);
    cfg.verification_mode = VerificationMode::Certificate;
    assert!(
        connect(port, &cfg)
            .await
            .unwrap_err()
            .contains("unknown authority")
    );
    // Pinning the real CA by its SHA-256 makes the chain trusted.
    let fp: String = {
        use sha2::Digest;
        sha2::Sha256::digest(real.cert.der())
            .iter()
            .map(|b| format!("{b:02X}:"))
            .collect()
    };
    let mut cfg = trusting(&other);
    cfg.ca_trusted_fingerprint = Some(fp.trim_end_matches(':').to_owned());
    connect(port, &cfg).await.unwrap();
    cfg.ca_trusted_fingerprint = Some("ab".repeat(32));
    assert!(connect(port, &cfg).await.is_err());
}

#[tokio::test]
async fn expired_certificate_is_explained_with_its_date() {
    let ca = ca("Test CA");
    let (chain, key) = leaf(&ca, &["127.0.0.1"], true);
    let port = server(server_cfg(chain, key)).await;
    let err = connect(port, &trusting(&ca)).await.unwrap_err();
    assert!(
        err.starts_with("the server certificate expired on 2021-01-01 00:00:00 UTC (it is now "),
        "{err}"
    );
}

#[tokio::test]
async fn mode_none_accepts_wrong_host_unknown_ca_and_expired() {
    let real = ca("Real CA");
    let (chain, key) = leaf(&real, &["elsewhere.example"], true);
    let port = server(server_cfg(chain, key)).await;
    let cfg = SslConfig {
        certificate_authorities: vec![ca("Other CA").cert.pem()],
        verification_mode: VerificationMode::None,
        ..Default::default()
    };
    connect(port, &cfg).await.unwrap();
}

#[tokio::test]
async fn client_certificate_required_and_missing() {
    let ca = ca("Test CA");
    let (chain, key) = leaf(&ca, &["127.0.0.1"], false);
    let mut scfg = server_cfg(chain, key);
    scfg.certificate_authorities = vec![ca.cert.pem()];
    assert_eq!(scfg.client_auth(), ClientAuth::Required);
    let port = server(scfg.clone()).await;
    let err = connect(port, &trusting(&ca)).await.unwrap_err();
    assert_eq!(
        err,
        "the server requires a client certificate: set ssl.certificate and ssl.key"
    );
    // With TLS 1.2 the server refuses during the handshake; the message is the same.
    let mut cfg12 = trusting(&ca);
    cfg12.supported_protocols = vec!["TLSv1.2".into()];
    let err = connect(port, &cfg12).await.unwrap_err();
    assert!(err.contains("client certificate"), "{err}");

    let (cchain, ckey) = leaf(&ca, &["client"], false);
    let mut cfg = trusting(&ca);
    cfg.certificate = Some(cchain);
    cfg.key = Some(ckey);
    connect(port, &cfg).await.unwrap();

    // A client certificate from another CA is refused with its own message.
    let stranger = self::ca("Stranger CA");
    let (schain, skey) = leaf(&stranger, &["client"], false);
    cfg.certificate = Some(schain);
    cfg.key = Some(skey);
    let err = connect(port, &cfg).await.unwrap_err();
    assert!(
        err.starts_with("the server refused our client certificate"),
        "{err}"
    );

    // Optional: no certificate is fine.
    scfg.client_authentication = Some(ClientAuth::Optional);
    let port = server(scfg).await;
    connect(port, &trusting(&ca)).await.unwrap();
}

#[tokio::test]
async fn plain_text_server_is_explained() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut b = [0u8; 512];
        let _ = s.read(&mut b).await;
        let _ = s
            .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            .await;
    });
    let ca = ca("Test CA");
    let err = connect(port, &trusting(&ca)).await.unwrap_err();
    assert!(err.contains("does not speak TLS on this port"), "{err}");
}

#[tokio::test]
async fn refused_connection_is_explained() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let e = TcpStream::connect(("127.0.0.1", port)).await.unwrap_err();
    let msg = skiff_tls::explain(&e, "127.0.0.1:9200");
    assert!(
        msg.starts_with("connection to 127.0.0.1:9200 refused"),
        "{msg}"
    );
}

#[tokio::test]
async fn encrypted_pkcs8_key_with_passphrase() {
    use pkcs8::der::{Decode, pem::LineEnding};
    let ca = ca("Test CA");
    let (chain, key_pem) = leaf(&ca, &["127.0.0.1"], false);
    let der = rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let info = pkcs8::PrivateKeyInfo::from_der(der.secret_der()).unwrap();
    let params = pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(
        2048,
        b"saltsaltsaltsalt",
        &[7u8; 16],
    )
    .unwrap();
    let enc = info
        .encrypt_with_params(params, b"s3cret")
        .unwrap()
        .to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
        .unwrap();
    let mut scfg = server_cfg(chain.clone(), enc.to_string());
    let err = skiff_tls::server_config(&scfg).unwrap_err().to_string();
    assert!(err.contains("set ssl.key_passphrase"), "{err}");
    scfg.key_passphrase = Some("wrong".into());
    let err = skiff_tls::server_config(&scfg).unwrap_err().to_string();
    assert!(err.contains("check ssl.key_passphrase"), "{err}");
    scfg.key_passphrase = Some("s3cret".into());
    let port = server(scfg).await;
    connect(port, &trusting(&ca)).await.unwrap();
}

use rustls_pki_types::pem::PemObject;

#[test]
fn settings_from_yaml_and_their_errors() {
    let node = skiff_config::parse_str(
        "verification_mode: certificate\nsupported_protocols: [TLSv1.2]\ncertificate_authorities: [/nonexistent/ca.pem]\n",
        None,
    )
    .unwrap();
    let cfg: SslConfig = node.deserialize().unwrap();
    assert_eq!(cfg.verification_mode, VerificationMode::Certificate);
    let err = skiff_tls::client_config(&cfg).unwrap_err().to_string();
    assert!(
        err.starts_with("ssl.certificate_authorities: cannot read /nonexistent/ca.pem"),
        "{err}"
    );
    let node = skiff_config::parse_str("verification_mod: none\n", None).unwrap();
    assert!(node.deserialize::<SslConfig>().is_err());
    let node = skiff_config::parse_str("verification_mode: sometimes\n", None).unwrap();
    assert!(node.deserialize::<SslConfig>().is_err());
    let bad = SslConfig {
        ca_trusted_fingerprint: Some("xyz".into()),
        ..Default::default()
    };
    let err = skiff_tls::client_config(&bad).unwrap_err().to_string();
    assert!(
        err.contains("ca_trusted_fingerprint") && err.contains("64 hex digits"),
        "{err}"
    );
    let half = SslConfig {
        certificate: Some("/x".into()),
        ..Default::default()
    };
    assert!(
        skiff_tls::client_config(&half)
            .unwrap_err()
            .to_string()
            .contains("without ssl.key")
    );
}
