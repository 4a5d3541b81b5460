//! Stream listeners (TCP with optional TLS, unix stream sockets): accept within
//! `max_connections`, serve each connection in a task of its own ([`crate::stream::serve`]).
//!
//! `max_connections` works as Filebeat's limited listener: at the limit we stop *accepting*,
//! so further clients wait in the kernel's listen backlog (and their data in their own
//! buffers) until a connection ends. Nobody is refused and nothing is lost; a client that
//! gives up waiting sees a connect timeout.

use std::sync::Arc;
use std::time::Duration;

use skiff_metrics::{Gauge, names};
use skiff_pipeline::InputContext;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::message::with_source;
use crate::stream::{End, StreamShared, serve};

/// How long a TLS client has to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound stream listener.
pub enum Listener {
    /// TCP, with TLS when an acceptor is given.
    Tcp(TcpListener, Option<TlsAcceptor>),
    /// A unix stream socket; the path is the `log.source.address` of its events.
    Unix(UnixListener, String),
}

impl Listener {
    /// The address it listens on, for logs and the status board.
    pub fn local(&self) -> String {
        match self {
            Listener::Tcp(l, _) => l.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            Listener::Unix(_, p) => p.clone(),
        }
    }
}

/// Serves until shutdown, then waits for the connection tasks to end.
pub async fn run(
    listener: Listener,
    sh: StreamShared,
    max_connections: usize,
    kind: &'static str,
    ctx: &InputContext,
) {
    let sh = Arc::new(sh);
    let local = listener.local();
    let open = ctx
        .build
        .metrics
        .gauge_with(&names::NET_CONNECTIONS, &[("input", ctx.id.as_str())]);
    {
        let (open, local) = (open.clone(), local.clone());
        let tls = matches!(&listener, Listener::Tcp(_, Some(_)));
        ctx.build.status.register(&ctx.id, move || {
            serde_json::json!({"type": kind, "listen": local, "tls": tls, "connections": open.get()})
        });
    }
    tracing::info!(input = %ctx.id, listen = %local, max_connections, "{kind} input listening");
    let limit = (max_connections > 0).then(|| Arc::new(Semaphore::new(max_connections)));
    let mut conns = JoinSet::new();
    loop {
        let permit = match &limit {
            None => None,
            Some(s) => tokio::select! {
                p = s.clone().acquire_owned() => p.ok(),
                _ = ctx.shutdown.cancelled() => break,
            },
        };
        while let Some(r) = conns.try_join_next() {
            if let Err(e) = r {
                tracing::error!(input = %ctx.id, "{kind} connection task failed: {}", skiff_pipeline::supervise::join_error_message(e));
            }
        }
        let accepted = tokio::select! {
            a = accept(&listener) => a,
            _ = ctx.shutdown.cancelled() => break,
        };
        let (conn, peer) = match accepted {
            Ok(v) => v,
            Err(e) => {
                // EMFILE and friends: wait rather than spin.
                tracing::warn!(input = %ctx.id, error = %e, "accept failed; retrying in 1s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let (sh, shutdown, id) = (sh.clone(), ctx.shutdown.clone(), ctx.id.clone());
        let slot = Slot::take(open.clone(), permit);
        let name = format!("input/{id}: {kind} client {peer}");
        conns.spawn(skiff_pipeline::supervise::named(name, async move {
            let _slot = slot;
            let shared = with_source(&sh.shared, &peer);
            let end = match conn {
                Conn::Tcp(tcp, None) => serve(tcp, shared, &sh, &shutdown).await,
                Conn::Tcp(tcp, Some(acc)) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acc.accept(tcp)).await {
                        Ok(Ok(tls)) => serve(tls, shared, &sh, &shutdown).await,
                        Ok(Err(e)) => End::Io(e),
                        Err(_) => End::Idle,
                    }
                }
                Conn::Unix(s) => serve(s, shared, &sh, &shutdown).await,
            };
            log_end(&id, &peer, kind, &end);
        }));
    }
    drop(listener);
    tracing::info!(input = %ctx.id, "{kind} input stopping");
    while conns.join_next().await.is_some() {}
}

fn log_end(id: &str, peer: &str, kind: &str, end: &End) {
    match end {
        End::Closed | End::Shutdown => {
            tracing::debug!(input = %id, peer = %peer, "{kind} connection closed")
        }
        End::Idle => {
            tracing::info!(input = %id, peer = %peer, "{kind} connection closed: idle for `timeout` (or no TLS handshake within 10s)")
        }
        End::Framing(e) => {
            tracing::warn!(input = %id, peer = %peer, "{kind} connection closed: {e}")
        }
        End::Io(e) => tracing::warn!(input = %id, peer = %peer, "{kind} connection failed: {e}"),
    }
}

/// An accepted connection, before TLS.
enum Conn {
    Tcp(tokio::net::TcpStream, Option<TlsAcceptor>),
    Unix(tokio::net::UnixStream),
}

async fn accept(l: &Listener) -> std::io::Result<(Conn, String)> {
    match l {
        Listener::Tcp(l, tls) => {
            let (s, peer) = l.accept().await?;
            let _ = s.set_nodelay(true);
            Ok((Conn::Tcp(s, tls.clone()), peer.to_string()))
        }
        Listener::Unix(l, path) => {
            let (s, _) = l.accept().await?;
            Ok((Conn::Unix(s), path.clone()))
        }
    }
}

/// One connection's place: its permit and its count in the connections gauge.
struct Slot {
    open: Gauge,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Slot {
    fn take(open: Gauge, permit: Option<tokio::sync::OwnedSemaphorePermit>) -> Self {
        open.add(1);
        Slot {
            open,
            _permit: permit,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.sub(1);
    }
}
