//! The monitoring endpoint (`http.*`): the Beats' `GET /` and `GET /stats`, plus
//! `GET /metrics` (Prometheus), `GET /inputs/` (per-file progress) and `GET /health` (every
//! component's state and restarts; 503 once one has failed for good).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use skiff_metrics::Registry as Metrics;
use skiff_pipeline::{AgentInfo, StatusBoard};
use skiff_topology::Health;
use tokio_util::sync::CancellationToken;

/// What the endpoint reports.
#[derive(Clone)]
pub struct Sources {
    /// `GET /`.
    pub agent: Arc<AgentInfo>,
    /// `GET /stats`, `GET /metrics`.
    pub metrics: Metrics,
    /// `GET /inputs/`.
    pub status: StatusBoard,
    /// `GET /health`.
    pub health: Health,
}

type Ctx = Sources;

type Params = Query<HashMap<String, String>>;

fn json_response(v: Value, q: &Params) -> Response {
    let body = if q.0.contains_key("pretty") {
        serde_json::to_string_pretty(&v).unwrap_or_default()
    } else {
        v.to_string()
    };
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body + "\n",
    )
        .into_response()
}

async fn root(State(c): State<Ctx>, q: Params) -> Response {
    let a = &c.agent;
    json_response(
        json!({
            "beat": "skiff", "hostname": a.hostname, "name": a.name, "uuid": a.id,
            "ephemeral_id": a.ephemeral_id, "version": a.version,
            "binary_arch": std::env::consts::ARCH,
        }),
        &q,
    )
}

async fn stats(State(c): State<Ctx>, q: Params) -> Response {
    json_response(c.metrics.json(), &q)
}

async fn prometheus(State(c): State<Ctx>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        c.metrics.prometheus(),
    )
        .into_response()
}

async fn inputs(State(c): State<Ctx>, q: Params) -> Response {
    let snapshot: serde_json::Map<String, Value> = c.status.snapshot().into_iter().collect();
    json_response(Value::Object(snapshot), &q)
}

async fn health(State(c): State<Ctx>, q: Params) -> Response {
    let mut r = json_response(c.health.json(), &q);
    if !c.health.ok() {
        *r.status_mut() = axum::http::StatusCode::SERVICE_UNAVAILABLE;
    }
    r
}

/// Binds the endpoint (failing now, with a hint, if the port is taken) and serves it until
/// `stop` is cancelled.
pub async fn serve(
    host: &str,
    port: u16,
    sources: Sources,
    stop: CancellationToken,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind((host, port)).await.with_context(|| {
        format!("cannot listen on http.host {host} http.port {port}: another process may use it; set http.port, or http.enabled: false")
    })?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/", get(root))
        .route("/stats", get(stats))
        .route("/metrics", get(prometheus))
        .route("/inputs", get(inputs))
        .route("/inputs/", get(inputs))
        .route("/health", get(health))
        .with_state(sources);
    let handle = tokio::spawn(async move {
        let server = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await });
        if let Err(e) = server.await {
            tracing::error!(error = %e, "the monitoring endpoint stopped");
        }
    });
    tracing::info!(address = %addr, "monitoring endpoint listening (/, /stats, /metrics, /inputs/, /health)");
    Ok((addr, handle))
}
