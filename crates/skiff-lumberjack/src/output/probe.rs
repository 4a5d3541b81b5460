//! `skiff test output` for Logstash: DNS, TCP connect (timed), TLS handshake (the certificate
//! the server presents), and a protocol round trip.
//!
//! The round trip sends an *empty* window (`W 0`): Logstash's beats input (and skiff's
//! lumberjack input) answer it with `A 0`, so nothing is indexed. Servers built on go-lumber do
//! not answer an empty window; a silent server that keeps the connection open is reported as
//! reachable but unconfirmed rather than failed.

use std::time::{Duration, Instant};

use skiff_config::Node;
use skiff_pipeline::{BuildContext, ProbeStep};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::connect::{self, Conn};
use crate::protocol::{self, ACK_LEN};

/// Runs every step for every host.
pub async fn probe(node: Node, _ctx: BuildContext) -> Vec<ProbeStep> {
    let (_, hosts, settings) = match super::parse(&node) {
        Ok(v) => v,
        Err(e) => {
            let detail = e
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ");
            return vec![ProbeStep::new(
                "configuration",
                false,
                detail,
                Some("fix output.logstash"),
            )];
        }
    };
    let timeout = settings.timeout.min(Duration::from_secs(10));
    let mut steps = Vec::new();
    for host in &hosts {
        let addrs = match connect::resolve(host, timeout).await {
            Ok(a) => {
                let list: Vec<String> = a.iter().map(|a| a.ip().to_string()).collect();
                steps.push(ProbeStep::new(
                    format!("dns {}", host.host),
                    true,
                    list.join(", "),
                    None,
                ));
                a
            }
            Err(e) => {
                steps.push(ProbeStep::new(
                    format!("dns {}", host.host),
                    false,
                    e,
                    Some("check the host name in output.logstash.hosts and the DNS configuration"),
                ));
                continue;
            }
        };
        let (tcp, addr, took) = match connect::tcp(host, &addrs, timeout).await {
            Ok(v) => v,
            Err(e) => {
                steps.push(ProbeStep::new(
                    format!("connect {}", host.addr()),
                    false,
                    e,
                    Some("check that Logstash runs a beats input on this port and that no firewall blocks it"),
                ));
                continue;
            }
        };
        steps.push(ProbeStep::new(
            format!("connect {}", host.addr()),
            true,
            format!("{addr} in {} ms", took.as_millis()),
            None,
        ));
        let conn: Conn = match &settings.tls {
            None => Box::new(tcp),
            Some(cfg) => {
                match tokio::time::timeout(
                    timeout,
                    skiff_tls::handshake(tcp, &host.host, cfg.clone()),
                )
                .await
                {
                    Ok(Ok((s, peer))) => {
                        let detail = peer
                            .map_or_else(|| "no certificate details".to_owned(), |p| p.to_string());
                        steps.push(ProbeStep::new("tls handshake", true, detail, None));
                        Box::new(s)
                    }
                    Ok(Err(e)) => {
                        steps.push(ProbeStep::new(
                            "tls handshake",
                            false,
                            skiff_tls::explain(&e, &host.host),
                            Some("see output.logstash.ssl.*"),
                        ));
                        continue;
                    }
                    Err(_) => {
                        steps.push(ProbeStep::new(
                            "tls handshake",
                            false,
                            format!("no TLS answer within {timeout:?}"),
                            Some("is the beats input configured with ssl_enabled (Logstash) or ssl.* (skiff)?"),
                        ));
                        continue;
                    }
                }
            }
        };
        steps.push(round_trip(conn, timeout).await);
    }
    steps
}

/// Sends an empty window and waits for its ACK.
async fn round_trip(mut conn: Conn, timeout: Duration) -> ProbeStep {
    let name = "lumberjack window/ACK round trip".to_owned();
    let mut w = Vec::new();
    protocol::write_window(&mut w, 0);
    let start = Instant::now();
    if let Err(e) = async {
        conn.write_all(&w).await?;
        conn.flush().await
    }
    .await
    {
        return ProbeStep::new(name, false, format!("cannot write: {e}"), None);
    }
    let mut f = [0u8; ACK_LEN];
    match tokio::time::timeout(timeout, conn.read_exact(&mut f)).await {
        Err(_) => ProbeStep::new(
            name,
            true,
            format!(
                "the server accepted an empty window but sent no ACK within {timeout:?}: \
                 Logstash answers one at once; servers built on go-lumber never do. Not confirmed."
            ),
            Some("if this is Logstash, check its beats input and pipeline health"),
        ),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => ProbeStep::new(
            name,
            false,
            "the server closed the connection on a lumberjack window frame",
            Some("is this port a Logstash beats input? A TLS server expects output.logstash.ssl"),
        ),
        Ok(Err(e)) => ProbeStep::new(name, false, format!("read failed: {e}"), None),
        Ok(Ok(_)) => match protocol::parse_ack(&f) {
            Ok(seq) => ProbeStep::new(
                name,
                true,
                format!(
                    "ACK {seq} for an empty window in {} ms",
                    start.elapsed().as_millis()
                ),
                None,
            ),
            Err(e) => ProbeStep::new(
                name,
                false,
                format!("the reply is not a lumberjack ACK: {e}"),
                Some(
                    "this port runs another protocol (HTTP?): point output.logstash.hosts at the beats input",
                ),
            ),
        },
    }
}
