//! Opening a client connection: DNS, TCP (with a deadline), then TLS when configured. Each step
//! fails with a sentence that names the host and what to check.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::output::config::Host;

/// A byte stream: plain TCP or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An open connection.
pub type Conn = Box<dyn Io>;

/// Resolves `host` to its addresses.
pub async fn resolve(host: &Host, timeout: Duration) -> Result<Vec<SocketAddr>, String> {
    let lookup = tokio::net::lookup_host((host.host.as_str(), host.port));
    match tokio::time::timeout(timeout, lookup).await {
        Err(_) => Err(format!(
            "cannot resolve `{}`: no DNS answer within {timeout:?}; check the name and the DNS server",
            host.host
        )),
        Ok(Err(e)) => Err(format!(
            "cannot resolve `{}`: {e}; check the name in output.logstash.hosts",
            host.host
        )),
        Ok(Ok(addrs)) => {
            let v: Vec<SocketAddr> = addrs.collect();
            if v.is_empty() {
                Err(format!("`{}` resolves to no address", host.host))
            } else {
                Ok(v)
            }
        }
    }
}

/// Connects to the first address that answers; returns the stream, the address and the time
/// the connect took.
pub async fn tcp(
    host: &Host,
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr, Duration), String> {
    let mut last = String::new();
    for a in addrs {
        let start = Instant::now();
        match tokio::time::timeout(timeout, TcpStream::connect(a)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok((s, *a, start.elapsed()));
            }
            Ok(Err(e)) => last = describe_io(&e, &host.addr(), a),
            Err(_) => {
                last = format!(
                    "connecting to {} ({a}) timed out after {timeout:?}: a firewall may be dropping the packets, or the host is down",
                    host.addr()
                )
            }
        }
    }
    Err(last)
}

fn describe_io(e: &std::io::Error, host: &str, a: &SocketAddr) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => format!(
            "connection to {host} ({a}) refused: nothing listens on that port; is Logstash running with a beats input on port {}?",
            a.port()
        ),
        _ => format!(
            "cannot connect to {host} ({a}): {}",
            skiff_tls::explain(e, host)
        ),
    }
}

/// Opens a connection to `host`: TCP, then TLS with `tls` when given.
pub async fn connect(
    host: &Host,
    tls: Option<&Arc<skiff_tls::rustls::ClientConfig>>,
    timeout: Duration,
) -> anyhow::Result<Conn> {
    let addrs = resolve(host, timeout).await.map_err(anyhow::Error::msg)?;
    let (tcp, _, _) = tcp(host, &addrs, timeout)
        .await
        .map_err(anyhow::Error::msg)?;
    let Some(cfg) = tls else {
        return Ok(Box::new(tcp));
    };
    match tokio::time::timeout(timeout, skiff_tls::handshake(tcp, &host.host, cfg.clone())).await {
        Err(_) => anyhow::bail!(
            "TLS handshake with {} timed out after {timeout:?}: is the server's beats input configured with ssl?",
            host.addr()
        ),
        Ok(Err(e)) => anyhow::bail!(
            "TLS handshake with {} failed: {}",
            host.addr(),
            skiff_tls::explain(&e, &host.host)
        ),
        Ok(Ok((s, _))) => Ok(Box::new(s)),
    }
}
