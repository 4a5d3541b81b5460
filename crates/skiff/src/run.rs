//! `skiff run`: start everything, run until the inputs end or a signal arrives, stop in order.
//!
//! Stopping: the first SIGINT/SIGTERM asks the inputs to stop reading; each waits up to
//! `shutdown_timeout` for its events to be acknowledged and saves its state; the queue is closed
//! and the outputs drain it for up to `shutdown_timeout`. Whatever is still unacknowledged then
//! is sent again after the next start (at-least-once). A second signal exits at once. When every
//! input ends by itself (stdin at EOF), the queue is drained completely before skiff exits.

use std::sync::Arc;
use std::time::Duration;

use skiff_metrics::{Registry, names};
use skiff_pipeline::{
    Budget, BuildContext, InputCommon, InputContext, Publisher, StatusBoard, worker,
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cli::Global;
use crate::settings::Parts;
use crate::{agent, http, logging, wiring};

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
    let built = match wiring::build(&parts, &ctx, false) {
        Ok(b) => b,
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
            ctx.agent.clone(),
            ctx.metrics.clone(),
            ctx.status.clone(),
            stop_http.clone(),
        )
        .await?;
    }
    if parts.settings.logging.metrics.enabled {
        tokio::spawn(logging::metrics_loop(
            ctx.metrics.clone(),
            parts.settings.logging.metrics.period.0,
            stop_http.clone(),
        ));
    }

    if let Some((name, node)) = parts.output.as_ref().filter(|(n, _)| n == "elasticsearch") {
        let t = parts.setup.template.clone().unwrap_or_default();
        let ilm = parts.setup.ilm.clone().unwrap_or_default();
        let install =
            skiff_output_elasticsearch::template::install_template(node, agent::VERSION, &t, &ilm);
        match tokio::time::timeout(Duration::from_secs(30), install).await {
            Ok(Ok(msg)) => tracing::info!(output = %name, "{msg}"),
            Ok(Err(e)) => {
                tracing::warn!(output = %name, error = %format!("{e:#}"), "could not install the index template; events are sent anyway")
            }
            Err(_) => {
                tracing::warn!(output = %name, "installing the index template timed out; events are sent anyway")
            }
        }
    }
    let queue = built.queue.clone();
    {
        let q = queue.clone();
        ctx.metrics
            .gauge_fn(&names::PIPELINE_EVENTS_ACTIVE, move || {
                q.stats().events as f64
            });
    }
    let (output_name, output) = built.output;
    let mut outputs = JoinSet::new();
    worker::spawn(
        &mut outputs,
        queue.clone(),
        output,
        built.dead_letter.clone(),
        &ctx.metrics,
    );

    let publisher = Publisher::new(queue.clone(), built.processors, &ctx.metrics)
        .with_shutdown_timeout(shutdown_timeout);
    let stop_inputs = CancellationToken::new();
    let mut inputs = JoinSet::new();
    let n_inputs = built.inputs.len();
    for b in built.inputs {
        let ictx = InputContext {
            id: b.id.clone(),
            publisher: publisher.with_input_processors(b.processors),
            shutdown: stop_inputs.clone(),
            build: ctx.clone(),
            shared: b.shared,
        };
        let id = b.id;
        let input = b.input;
        inputs.spawn(async move {
            if let Err(e) = input.run(ictx).await {
                tracing::error!(input = %id, error = %format!("{e:#}"), "input stopped with an error");
            }
        });
    }
    drop(publisher);
    tracing::info!(inputs = n_inputs, output = %output_name, version = agent::VERSION, "skiff started");

    let signalled = tokio::select! {
        _ = async { while inputs.join_next().await.is_some() {} } => false,
        _ = shutdown_signal() => true,
    };
    if signalled {
        tracing::info!(shutdown_timeout = ?shutdown_timeout, "stopping: waiting for inputs to save their state");
        tokio::spawn(async {
            shutdown_signal().await;
            eprintln!("skiff: second signal, exiting now");
            std::process::exit(130);
        });
        stop_inputs.cancel();
        let grace = shutdown_timeout + Duration::from_secs(5);
        if tokio::time::timeout(grace, async { while inputs.join_next().await.is_some() {} })
            .await
            .is_err()
        {
            tracing::warn!(
                "inputs did not stop in time; their unacknowledged events will be sent again after a restart"
            );
            inputs.abort_all();
        }
        queue.close();
        if tokio::time::timeout(shutdown_timeout, async {
            while outputs.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            let left = queue.stats().events;
            tracing::info!(
                events = left,
                "shutdown_timeout reached; unacknowledged events will be sent again after a restart"
            );
            outputs.abort_all();
        }
    } else {
        tracing::info!("every input has ended; sending what is queued");
        queue.close();
        tokio::select! {
            _ = async { while outputs.join_next().await.is_some() {} } => {}
            _ = shutdown_signal() => {
                tracing::warn!(events = queue.stats().events, "stopped before the queue was drained");
                outputs.abort_all();
            }
        }
    }
    stop_http.cancel();
    let _ = cli;
    tracing::info!(
        acked = ctx.metrics.counter(&names::OUTPUT_EVENTS_ACKED).get(),
        published = ctx.metrics.counter(&names::PIPELINE_EVENTS_PUBLISHED).get(),
        "skiff stopped"
    );
    Ok(0)
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

/// Keeps `Arc` in scope for doc links.
#[allow(dead_code)]
type _A = Arc<()>;
