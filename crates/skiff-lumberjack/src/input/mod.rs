//! The `lumberjack` input (alias `beats`): a Lumberjack v2 server that receives events from
//! Beats, Elastic Agent, Logstash's lumberjack output or other skiff agents.
//!
//! Each accepted connection (plain TCP or TLS, with optional client-certificate checks) is
//! served by [`conn::serve`]: events are published as they arrive, and a window is ACKed to
//! the sender only once our own outputs acknowledged every event of it. So the chain
//! skiff -> skiff -> Elasticsearch is at-least-once end to end: a sender keeps (and resends)
//! whatever the aggregator has not delivered.
//!
//! Received events keep the sender's fields (`agent`, `host`, `log`, ...); see
//! [`event::received_shared`].

pub mod acks;
pub mod config;
pub mod conn;
pub mod event;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use skiff_config::{ConfigError, ConfigErrors, Node};
use skiff_metrics::names;
use skiff_pipeline::{
    BuildContext, Failure, FailureKind, Input, InputCommon, InputContext, InputPlugin,
};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::protocol::Limits;
use config::InputConfig;
use conn::{ClosedCounters, End, Reason, Shared};

/// `type: lumberjack`.
pub static INPUT: InputPlugin = InputPlugin {
    name: "lumberjack",
    agent_type: "filebeat",
    build,
};

/// `type: beats`: the same input under the name Logstash and Elastic Agent use.
pub static BEATS_INPUT: InputPlugin = InputPlugin {
    name: "beats",
    agent_type: "filebeat",
    build,
};

fn build(
    node: &Node,
    _common: &InputCommon,
    _ctx: &BuildContext,
) -> Result<Box<dyn Input>, ConfigErrors> {
    let cfg: InputConfig = node.deserialize()?;
    let errs = config::validate(&cfg, node);
    if !errs.is_empty() {
        return Err(ConfigErrors(errs));
    }
    let tls = match &cfg.ssl {
        Some(ssl) if ssl.is_enabled() => match skiff_tls::server_config(ssl) {
            Ok(c) => Some(tokio_rustls::TlsAcceptor::from(c)),
            Err(e) => {
                let n = node.get("ssl").unwrap_or(node);
                return Err(ConfigError::new(n.path(), n.mark.clone(), e.to_string()).into());
            }
        },
        _ => None,
    };
    Ok(Box::new(LumberjackInput { cfg, tls }))
}

/// A built lumberjack input.
pub struct LumberjackInput {
    cfg: InputConfig,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

#[async_trait]
impl Input for LumberjackInput {
    async fn run(self: Box<Self>, ctx: InputContext) -> Result<(), Failure> {
        let addr = self.cfg.bind_address();
        let listener = TcpListener::bind(&addr).await.map_err(|e| {
            Failure::new(
                FailureKind::of_io(&e),
                format!(
                    "lumberjack input {}: cannot listen on {addr}: {e}{}",
                    ctx.id,
                    if e.kind() == std::io::ErrorKind::AddrInUse {
                        " (another process, maybe Logstash, uses that port: change listen_address)"
                    } else {
                        ""
                    }
                ),
            )
        })?;
        Ok(run_listener(listener, *self, ctx).await?)
    }

    fn replays_unacked(&self) -> bool {
        // A Lumberjack client resends every event of a window it has no ACK for.
        true
    }
}

impl LumberjackInput {
    /// Serves on an already bound listener (tests bind port 0 and read the port first).
    pub async fn serve(self, listener: TcpListener, ctx: InputContext) -> anyhow::Result<()> {
        run_listener(listener, self, ctx).await
    }
}

async fn run_listener(
    listener: TcpListener,
    input: LumberjackInput,
    ctx: InputContext,
) -> anyhow::Result<()> {
    let LumberjackInput { cfg, tls } = input;
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let label = [("input", ctx.id.as_str())];
    let (fields, tags) = event::received_shared(&ctx.shared, "lumberjack");
    let sh = Arc::new(Shared {
        publisher: ctx.publisher.clone(),
        fields,
        tags,
        limits: Limits {
            max_payload: usize::try_from(cfg.max_message_size.0).unwrap_or(usize::MAX),
            max_decompressed: usize::try_from(cfg.max_batch_size.0).unwrap_or(usize::MAX),
        },
        accept_v1: cfg.accepts_v1(),
        keepalive: cfg.keepalive.0,
        timeout: cfg.timeout.0,
        inactivity: cfg.client_inactivity_timeout.0,
        handshake: cfg.handshake_timeout.0,
        max_window: u64::from(cfg.max_window_size),
        events: ctx.build.metrics.counter_with(&names::INPUT_EVENTS, &label),
        bytes: ctx.build.metrics.counter_with(&names::INPUT_BYTES, &label),
        pauses: ctx
            .build
            .metrics
            .counter_with(&names::LUMBERJACK_PAUSES, &label),
        closed: ClosedCounters(Reason::ALL.map(|r| {
            ctx.build.metrics.counter_with(
                &names::LUMBERJACK_CLOSED,
                &[("input", ctx.id.as_str()), ("reason", r.label())],
            )
        })),
        id: ctx.id.clone(),
        mem: ctx
            .build
            .budget
            .stage("input.lumberjack", cfg.max_pending_bytes.0),
        released: tokio::sync::Notify::new(),
    });
    let refused = ctx
        .build
        .metrics
        .counter_with(&names::LUMBERJACK_REFUSED, &label);
    let mut last_refusal_log: Option<std::time::Instant> = None;
    let mut refused_since_log = 0u64;
    let open = Arc::new(AtomicU64::new(0));
    let total = Arc::new(AtomicU64::new(0));
    {
        let (open, total, local, tls_on) =
            (open.clone(), total.clone(), local.clone(), tls.is_some());
        ctx.build.status.register(&ctx.id, move || {
            serde_json::json!({
                "type": "lumberjack", "listen": local, "tls": tls_on,
                "connections": open.load(Ordering::Relaxed),
                "connections_total": total.load(Ordering::Relaxed),
            })
        });
    }
    let limit = (cfg.max_connections > 0)
        .then(|| Arc::new(tokio::sync::Semaphore::new(cfg.max_connections)));
    tracing::info!(input = %ctx.id, listen = %local, tls = tls.is_some(), max_connections = cfg.max_connections, "lumberjack input listening");
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = ctx.shutdown.cancelled() => break,
        };
        // Reap finished connection tasks so the set does not grow (a panic was logged by the
        // panic hook with the connection's name; this says it ended the connection).
        while let Some(r) = conns.try_join_next() {
            if let Err(e) = r {
                tracing::error!(input = %ctx.id, "lumberjack connection task failed: {}", skiff_pipeline::supervise::join_error_message(e));
            }
        }
        let (tcp, peer) = match accepted {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(input = %ctx.id, error = %e, "accept failed; retrying in 1s");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        let permit = match &limit {
            None => None,
            Some(s) => match s.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    // Closed at once rather than left in the backlog: the client sees the
                    // refusal, backs off and retries (Beats do), and the clients already
                    // served keep their share. One log line per 10s, every refusal counted.
                    drop(tcp);
                    refused.inc();
                    refused_since_log += 1;
                    if last_refusal_log.is_none_or(|t| t.elapsed().as_secs() >= 10) {
                        tracing::warn!(input = %ctx.id, peer = %peer, max_connections = cfg.max_connections, refused = refused_since_log, "lumberjack connection refused: max_connections clients are connected already (raise max_connections, or spread the clients over more inputs)");
                        last_refusal_log = Some(std::time::Instant::now());
                        refused_since_log = 0;
                    }
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let (sh, tls, shutdown, open, id) = (
            sh.clone(),
            tls.clone(),
            ctx.shutdown.clone(),
            open.clone(),
            ctx.id.clone(),
        );
        total.fetch_add(1, Ordering::Relaxed);
        // Counted here, with the permit taken, so `connections` never reads below the slots
        // in use; both are given back when the task ends, panics or is aborted.
        let slot = Slot::take(open, permit);
        let name = format!("input/{}: lumberjack client {peer}", ctx.id);
        conns.spawn(skiff_pipeline::supervise::named(name, async move {
            let _slot = slot;
            // The TLS handshake and the first frame share one deadline.
            let first_frame = tokio::time::Instant::now() + sh.handshake;
            let end = match tls {
                None => conn::serve(tcp, peer, sh.clone(), shutdown, first_frame).await,
                Some(acc) => match tokio::time::timeout_at(first_frame, acc.accept(tcp)).await {
                    Ok(Ok(s)) => conn::serve(s, peer, sh.clone(), shutdown, first_frame).await,
                    Ok(Err(e)) => End::Error {
                        reason: Reason::ProtocolError,
                        why: format!("TLS handshake failed: {}", tls_reason(&e)),
                    },
                    Err(_) => End::Error {
                        reason: Reason::HandshakeTimeout,
                        why: format!(
                            "TLS handshake not finished within {:?} (handshake_timeout)",
                            sh.handshake
                        ),
                    },
                },
            };
            match end {
                End::Error { reason, why } => {
                    sh.closed.inc(reason);
                    if reason == Reason::IdleTimeout {
                        tracing::info!(input = %id, peer = %peer, reason = reason.label(), "lumberjack connection closed: {why}");
                    } else {
                        tracing::warn!(input = %id, peer = %peer, reason = reason.label(), "lumberjack connection closed: {why}");
                    }
                }
                End::Closed => tracing::debug!(input = %id, peer = %peer, "lumberjack client disconnected"),
                End::Shutdown => {}
            }
        }));
    }
    tracing::info!(input = %ctx.id, "lumberjack input stopping");
    // Connections watch the same shutdown token; each waits up to shutdown_timeout for its ACKs.
    while conns.join_next().await.is_some() {}
    Ok(())
}

/// One connection's place: its `max_connections` permit and its count in `connections`.
struct Slot {
    open: Arc<AtomicU64>,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Slot {
    fn take(open: Arc<AtomicU64>, permit: Option<tokio::sync::OwnedSemaphorePermit>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Slot {
            open,
            _permit: permit,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a TLS client was refused, in words.
fn tls_reason(e: &std::io::Error) -> String {
    use skiff_tls::rustls::Error as T;
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<T>());
    match inner {
        Some(T::NoCertificatesPresented) => {
            "the client presented no certificate, and ssl.client_authentication is required: give the client ssl.certificate and ssl.key signed by one of ssl.certificate_authorities".into()
        }
        Some(T::InvalidCertificate(c)) => format!(
            "the client certificate was refused ({c:?}): it must be signed by one of ssl.certificate_authorities and be valid now"
        ),
        Some(T::InvalidMessage(_)) | Some(T::InappropriateMessage { .. }) => {
            "the client did not speak TLS (is its ssl setting off?)".into()
        }
        Some(other) => other.to_string(),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_clients_are_explained() {
        use skiff_tls::rustls::Error as T;
        let e = std::io::Error::new(std::io::ErrorKind::InvalidData, T::NoCertificatesPresented);
        let why = tls_reason(&e);
        assert!(
            why.contains("no certificate") && why.contains("client_authentication is required"),
            "{why}"
        );
        let e = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            T::InvalidCertificate(skiff_tls::rustls::CertificateError::UnknownIssuer),
        );
        assert!(tls_reason(&e).contains("certificate_authorities"));
    }
}
