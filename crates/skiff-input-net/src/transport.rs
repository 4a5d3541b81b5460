//! The three transports, built from their settings and run: what the `tcp`, `udp` and `unix`
//! inputs are, and what the `syslog` input's `protocol.*` chooses.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use skiff_config::{ConfigError, Node};
use skiff_metrics::names;
use skiff_pipeline::{Failure, FailureKind, InputContext};
use tokio::net::{TcpListener, UdpSocket, UnixDatagram, UnixListener};
use tokio_rustls::TlsAcceptor;

use crate::config::{SocketType, TcpConfig, UdpConfig, UnixConfig, at};
use crate::framing::Framer;
use crate::message::ToEvent;
use crate::stream::StreamShared;
use crate::{datagram, listen};

/// A validated transport.
pub enum Transport {
    /// TCP, TLS when configured.
    Tcp(TcpConfig, Framer, Option<TlsAcceptor>),
    /// UDP, with its largest datagram.
    Udp(UdpConfig, usize),
    /// A unix socket, with the framer of its stream variant and its file mode.
    Unix(UnixConfig, Framer, Option<u32>),
}

impl Transport {
    /// Validates a `tcp` block; errors are added to `errs`.
    pub fn tcp(node: &Node, errs: &mut Vec<ConfigError>) -> Option<Transport> {
        let cfg: TcpConfig = node.deserialize().map_err(|e| errs.push(e)).ok()?;
        let framer = cfg.validate(node, errs);
        let tls = match &cfg.ssl {
            Some(ssl) if ssl.is_enabled() => match skiff_tls::server_config(ssl) {
                Ok(c) => {
                    // No TLS 1.3 session tickets: senders of these protocols never read, and
                    // a client that closes with unread tickets in its socket sends a reset,
                    // which makes our kernel discard the last messages it sent.
                    let mut c = (*c).clone();
                    c.send_tls13_tickets = 0;
                    Some(TlsAcceptor::from(Arc::new(c)))
                }
                // Reported by `validate`.
                Err(_) => None,
            },
            _ => None,
        };
        Some(Transport::Tcp(cfg, framer, tls))
    }

    /// Validates a `udp` block.
    pub fn udp(node: &Node, errs: &mut Vec<ConfigError>) -> Option<Transport> {
        let cfg: UdpConfig = node.deserialize().map_err(|e| errs.push(e)).ok()?;
        let max = cfg.validate(node, errs);
        Some(Transport::Udp(cfg, max))
    }

    /// Validates a `unix` block.
    pub fn unix(node: &Node, errs: &mut Vec<ConfigError>) -> Option<Transport> {
        let cfg: UnixConfig = node.deserialize().map_err(|e| errs.push(e)).ok()?;
        let (framer, mode) = cfg.validate(node, errs);
        if let Some(g) = &cfg.group
            && group_id(g).is_none()
        {
            errs.push(at(
                node,
                "group",
                format!("no group {g:?} on this machine (give a name from /etc/group or a number)"),
            ));
        }
        Some(Transport::Unix(cfg, framer, mode))
    }

    /// Binds and serves until shutdown. `kind` names the input in logs and the status board.
    pub async fn run(
        self,
        to_event: Arc<dyn ToEvent>,
        kind: &'static str,
        ctx: &InputContext,
    ) -> Result<(), Failure> {
        let label = [("input", ctx.id.as_str())];
        let m = &ctx.build.metrics;
        let stream_shared = |framer: Framer, timeout: std::time::Duration| StreamShared {
            publisher: ctx.publisher.clone(),
            framer,
            to_event: to_event.clone(),
            shared: ctx.shared.clone(),
            timeout,
            events: m.counter_with(&names::INPUT_EVENTS, &label),
            bytes: m.counter_with(&names::INPUT_BYTES, &label),
            too_large: m.counter_with(
                &names::NET_DROPPED,
                &[("input", ctx.id.as_str()), ("reason", "too_large")],
            ),
        };
        match self {
            Transport::Tcp(cfg, framer, tls) => {
                let addr = resolve(&cfg.host, cfg.network.as_deref(), kind, ctx).await?;
                let l = TcpListener::bind(addr)
                    .await
                    .map_err(|e| bind_failure(kind, ctx, &cfg.host, &e))?;
                let sh = stream_shared(framer, cfg.timeout.0);
                listen::run(
                    listen::Listener::Tcp(l, tls),
                    sh,
                    cfg.max_connections,
                    kind,
                    ctx,
                )
                .await;
            }
            Transport::Udp(cfg, max) => {
                let addr = resolve(&cfg.host, cfg.network.as_deref(), kind, ctx).await?;
                let s = UdpSocket::bind(addr)
                    .await
                    .map_err(|e| bind_failure(kind, ctx, &cfg.host, &e))?;
                if let Some(b) = cfg.read_buffer {
                    set_recv_buffer(&s, b.0, kind, ctx);
                }
                let sock = datagram::Socket::Udp(s);
                datagram::run(sock, max, to_event, ctx.shared.clone(), kind, ctx).await;
            }
            Transport::Unix(cfg, framer, mode) => {
                let path = Path::new(&cfg.path);
                remove_stale(path).map_err(|e| {
                    Failure::new(FailureKind::Io, format!("{kind} input {}: {e}", ctx.id))
                })?;
                let _cleanup = RemoveOnDrop(path.to_owned());
                match cfg.socket_type {
                    SocketType::Stream => {
                        let l = UnixListener::bind(path)
                            .map_err(|e| bind_failure(kind, ctx, &cfg.path, &e))?;
                        set_owner(path, mode, cfg.group.as_deref(), kind, ctx)?;
                        let sh = stream_shared(framer, cfg.timeout.0);
                        let l = listen::Listener::Unix(l, cfg.path.clone());
                        listen::run(l, sh, cfg.max_connections, kind, ctx).await;
                    }
                    SocketType::Datagram => {
                        let s = UnixDatagram::bind(path)
                            .map_err(|e| bind_failure(kind, ctx, &cfg.path, &e))?;
                        set_owner(path, mode, cfg.group.as_deref(), kind, ctx)?;
                        let max = framer.max().min(1 << 20);
                        let sock = datagram::Socket::Unix(s, cfg.path.clone());
                        datagram::run(sock, max, to_event, ctx.shared.clone(), kind, ctx).await;
                    }
                }
            }
        }
        Ok(())
    }
}

/// `host` resolved, keeping only the family `network` asks for.
async fn resolve(
    host: &str,
    network: Option<&str>,
    kind: &str,
    ctx: &InputContext,
) -> Result<SocketAddr, Failure> {
    let addrs = tokio::net::lookup_host(host).await.map_err(|e| {
        Failure::new(
            FailureKind::Connect,
            format!(
                "{kind} input {}: cannot resolve host {host:?} (write it as address:port): {e}",
                ctx.id
            ),
        )
    })?;
    let want = |a: &SocketAddr| match network.map(|n| n.chars().last()) {
        Some(Some('4')) => a.is_ipv4(),
        Some(Some('6')) => a.is_ipv6(),
        _ => true,
    };
    addrs.into_iter().find(want).ok_or_else(|| {
        Failure::new(
            FailureKind::Connect,
            format!(
                "{kind} input {}: host {host:?} has no address of network {network:?}",
                ctx.id
            ),
        )
    })
}

fn bind_failure(kind: &str, ctx: &InputContext, what: &str, e: &std::io::Error) -> Failure {
    let hint = match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            " (another process listens there: change the address, or stop it)"
        }
        std::io::ErrorKind::PermissionDenied => {
            " (ports below 1024 need root or CAP_NET_BIND_SERVICE; a socket file needs a writable directory)"
        }
        _ => "",
    };
    Failure::new(
        FailureKind::of_io(e),
        format!(
            "{kind} input {}: cannot listen on {what}: {e}{hint}",
            ctx.id
        ),
    )
}

fn set_recv_buffer(s: &UdpSocket, bytes: u64, kind: &str, ctx: &InputContext) {
    let sock = socket2::SockRef::from(s);
    let want = usize::try_from(bytes).unwrap_or(usize::MAX);
    if let Err(e) = sock.set_recv_buffer_size(want) {
        tracing::warn!(input = %ctx.id, error = %e, "{kind} input: cannot set read_buffer");
    } else if let Ok(got) = sock.recv_buffer_size()
        && got < want
    {
        // Linux caps SO_RCVBUF at net.core.rmem_max (and reports double what it grants).
        tracing::warn!(input = %ctx.id, asked = want, granted = got, "{kind} input: the system granted a smaller read_buffer (raise net.core.rmem_max)");
    }
}

/// Removes a socket file left by an earlier run; refuses to remove anything else.
fn remove_stale(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Err(_) => Ok(()),
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)
            .map_err(|e| format!("cannot remove the old socket {}: {e}", path.display())),
        Ok(_) => Err(format!(
            "{} exists and is not a socket: choose another path",
            path.display()
        )),
    }
}

/// Removes the socket file when the input stops.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn set_owner(
    path: &Path,
    mode: Option<u32>,
    group: Option<&str>,
    kind: &str,
    ctx: &InputContext,
) -> Result<(), Failure> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(g) = group {
        let gid = group_id(g);
        std::os::unix::fs::chown(path, None, gid).map_err(|e| {
            Failure::io(
                format!(
                    "{kind} input {}: cannot give {} to group {g}",
                    ctx.id,
                    path.display()
                ),
                &e,
            )
        })?;
    }
    if let Some(m) = mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(m)).map_err(|e| {
            Failure::io(
                format!(
                    "{kind} input {}: cannot set mode of {}",
                    ctx.id,
                    path.display()
                ),
                &e,
            )
        })?;
    }
    Ok(())
}

/// A group's id from its number or its name in `/etc/group`.
///
/// Read by hand: the one lookup does not justify a libc/nix dependency, and the file format
/// (`name:x:gid:members`) is fixed by POSIX tools.
fn group_id(g: &str) -> Option<u32> {
    if let Ok(n) = g.parse() {
        return Some(n);
    }
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == g).then(|| f.nth(1)?.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_by_name_and_number() {
        assert_eq!(group_id("0"), Some(0));
        assert_eq!(group_id("root"), Some(0));
        assert_eq!(group_id("no-such-group-here"), None);
    }

    #[test]
    fn only_sockets_are_removed() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("file");
        std::fs::write(&f, "x").unwrap();
        assert!(remove_stale(&f).unwrap_err().contains("not a socket"));
        let s = d.path().join("sock");
        let _l = std::os::unix::net::UnixListener::bind(&s).unwrap();
        remove_stale(&s).unwrap();
        assert!(!s.exists());
    }
}
