//! `skiff run`: build the [`Topology`] from the configuration, start it, run until the inputs
//! end, a component fails for good, or a signal arrives; stop it in order; choose the exit code.
//!
//! Exit codes (docs/operations.md): 0 stopped with nothing lost; 1 the configuration is invalid
//! or start-up failed; 3 a component failed and could not be restarted (the reason is the last
//! log line and on stderr); 4 events were left unacknowledged that nobody will send again
//! (stdin with a memory queue); 130 a second signal.

use std::time::Duration;

use skiff_metrics::{Registry, names};
use skiff_pipeline::{Budget, BuildContext, InputCommon, StatusBoard};
use skiff_topology::{Drain, Ended, Topology};
use tokio_util::sync::CancellationToken;

use crate::cli::Global;
use crate::settings::Parts;
use crate::{agent, http, logging, registry};

/// A component failed and could not be restarted.
pub const EXIT_FAILED: i32 = 3;
/// Events were left unacknowledged and will not be sent again.
pub const EXIT_UNACKED: i32 = 4;

/// Everything needed to build components, from the loaded configuration.
pub fn build_context(parts: &Parts, cli: &Global) -> anyhow::Result<BuildContext> {
    let paths = crate::settings::resolve_paths(&parts.settings.path, cli);
    let metrics = Registry::new();
    agent::register_process_metrics(&metrics);
    let agent = agent::identity(parts.settings.name.as_deref(), &paths.data)?;
    let s = &parts.settings;
    Ok(BuildContext {
        agent,
        paths,
        budget: Budget::new(metrics.clone()),
        metrics,
        status: StatusBoard::default(),
        global: InputCommon {
            fields: s.fields.clone(),
            fields_under_root: s.fields_under_root,
            tags: s.tags.clone(),
            ..Default::default()
        },
    })
}

/// Runs the agent. Returns the process exit code.
pub async fn run(parts: Parts, ctx: BuildContext, cli: &Global) -> anyhow::Result<i32> {
    for w in &parts.warnings {
        tracing::warn!("{w}");
    }
    let topology = match Topology::from_config(&parts.pipeline(), &registry::PLUGINS, &ctx, false) {
        Ok(t) => t,
        Err(errors) => {
            for e in errors.iter() {
                eprintln!("{e}");
            }
            eprintln!(
                "skiff: the configuration has {} problem(s); nothing was started",
                errors.len()
            );
            tracing::error!(
                problems = errors.len(),
                "invalid configuration; nothing was started"
            );
            return Ok(1);
        }
    };
    let shutdown_timeout = parts
        .settings
        .shutdown_timeout
        .map_or(Duration::ZERO, |d| d.0);
    let stop_http = CancellationToken::new();
    if parts.settings.http.enabled {
        let h = &parts.settings.http;
        http::serve(
            &h.host,
            h.port,
            http::Sources {
                agent: ctx.agent.clone(),
                metrics: ctx.metrics.clone(),
                status: ctx.status.clone(),
                health: topology.health(),
            },
            stop_http.clone(),
        )
        .await?;
    }
    // `monitoring.*`: the agent's own /stats to a monitoring cluster.
    if let Some(m) = parts.settings.monitoring.clone().filter(|m| m.enabled) {
        let (metrics, a) = (ctx.metrics.clone(), &ctx.agent);
        let beat = serde_json::json!({"name": a.name, "host": a.hostname, "type": "skiff", "uuid": a.id, "version": a.version});
        let stats = move || metrics.json();
        tokio::spawn(skiff_input_metrics::monitoring::ship(
            m,
            beat,
            stats,
            stop_http.clone(),
        ));
    }
    if parts.settings.logging.metrics.enabled {
        tokio::spawn(logging::metrics_loop(
            ctx.metrics.clone(),
            parts.settings.logging.metrics.period.0,
            stop_http.clone(),
        ));
    }
    let n_inputs = topology.input_count();
    let output_name = topology.output_name().unwrap_or_default().to_owned();
    let mut running = topology.start().await;
    tracing::info!(inputs = n_inputs, output = %output_name, version = agent::VERSION, "skiff started");

    let ended = tokio::select! {
        e = running.wait() => Some(e),
        _ = shutdown_signal() => None,
    };
    let (drain, fatal) = match ended {
        None => {
            tracing::info!(shutdown_timeout = ?shutdown_timeout, "stopping: waiting for inputs to save their state");
            exit_on_second_signal();
            (Drain::For(shutdown_timeout), None)
        }
        Some(Ended::InputsEnded) => {
            tracing::info!("every input has ended; sending what is queued");
            (Drain::Fully, None)
        }
        Some(Ended::Fatal(reason)) => {
            tracing::error!(reason = %reason, "a component failed for good; stopping");
            exit_on_second_signal();
            (Drain::For(shutdown_timeout), Some(reason))
        }
    };
    let report = running.stop(drain, shutdown_signal()).await;
    stop_http.cancel();
    let _ = cli;
    let acked = ctx.metrics.counter(&names::OUTPUT_EVENTS_ACKED).get();
    let published = ctx.metrics.counter(&names::PIPELINE_EVENTS_PUBLISHED).get();
    if let Some(reason) = fatal.or(report.output_failure.clone()) {
        tracing::error!(acked, published, unacked = report.left, reason = %reason, "skiff stopped: {reason}");
        eprintln!("skiff: stopped because a component failed: {reason}");
        return Ok(EXIT_FAILED);
    }
    if report.lost() > 0 {
        let msg = format!(
            "{} events were left unacknowledged and will not be sent again (their input cannot replay them)",
            report.lost()
        );
        tracing::error!(
            acked,
            published,
            unacked = report.left,
            "skiff stopped: {msg}"
        );
        eprintln!("skiff: {msg}");
        return Ok(EXIT_UNACKED);
    }
    if report.left > 0 {
        tracing::info!(
            acked,
            published,
            unacked = report.left,
            "skiff stopped; the unacknowledged events will be sent again after the next start"
        );
    } else {
        tracing::info!(acked, published, unacked = 0, "skiff stopped");
    }
    Ok(0)
}

/// After the first signal, a second one exits at once.
fn exit_on_second_signal() {
    tokio::spawn(async {
        shutdown_signal().await;
        eprintln!("skiff: second signal, exiting now");
        std::process::exit(130);
    });
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers we can only run until the inputs end.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
