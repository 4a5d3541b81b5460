//! Supervision of inputs: every input runs in a task of its own, named for the panic hook
//! (`input/<id>`); a panic or an error return is counted by its kind, and the input is built
//! again from its configuration and restarted after a backoff. More than `max_restarts`
//! restarts within `restart_window`, or a build error at a restart, make the failure final: the
//! reason goes to the topology, which stops skiff with it (exit code 3 in the binary).
//!
//! The restart resumes from the input's saved state (a file input's registry offsets), so
//! events acknowledged before the failure are not read again, and the ones not acknowledged are
//! (at-least-once).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use skiff_metrics::names;
use skiff_pipeline::{
    BuildContext, Failure, FailureKind, InputContext, Publisher, fault, supervise,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::topology::InputSpec;
use crate::{Health, State, SupervisionConfig};

/// The fault point that makes an input's task panic as it starts (tests).
pub const PANIC_POINT: &str = "input.run.panic";

/// What a supervisor needs besides the input.
pub(crate) struct InputEnv {
    pub publisher: Publisher,
    pub stop: CancellationToken,
    pub ctx: BuildContext,
    pub health: Health,
    pub fatal: mpsc::UnboundedSender<String>,
    pub policy: SupervisionConfig,
}

/// Aborts the input's task if its supervisor is dropped (aborted at stop), so no input keeps
/// running unsupervised.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs and restarts one input until it ends, skiff stops, or it cannot be restarted.
pub(crate) async fn run(mut spec: InputSpec, env: InputEnv) {
    let id = spec.id.clone();
    let component = format!("input/{id}");
    let metrics = &env.ctx.metrics;
    let restarts = metrics.counter_with(&names::INPUT_RESTARTS, &[("input", &id)]);
    let publisher = env.publisher.with_input_processors(spec.processors.clone());
    let init = env.policy.backoff.init.0.max(Duration::from_millis(1));
    let max = env.policy.backoff.max.0.max(init);
    let window = env.policy.restart_window.0;
    let mut backoff = init;
    let mut recent: VecDeque<Instant> = VecDeque::new();
    loop {
        let input = match spec.first.take() {
            Some(i) => i,
            None => match (spec.rebuild)() {
                Ok(i) => i,
                Err(f) => {
                    let reason = format!("input {id} cannot be restarted: {f}");
                    env.health.failed(&component, State::Failed, reason.clone());
                    let _ = env.fatal.send(reason);
                    return;
                }
            },
        };
        let ictx = InputContext {
            id: id.clone(),
            publisher: publisher.clone(),
            shutdown: env.stop.clone(),
            build: env.ctx.clone(),
            shared: spec.shared.clone(),
        };
        env.health.set(&component, State::Running);
        let started = Instant::now();
        let task = tokio::spawn(supervise::named(component.clone(), async move {
            fault::panic_point(PANIC_POINT);
            input.run(ictx).await
        }));
        let _guard = AbortOnDrop(task.abort_handle());
        let failure = match task.await {
            Ok(Ok(())) => {
                if env.stop.is_cancelled() {
                    env.health.set(&component, State::Stopped);
                } else {
                    tracing::info!(input = %id, "input ended");
                    env.health.set(&component, State::Ended);
                }
                return;
            }
            Ok(Err(f)) => f,
            Err(e) if e.is_panic() => {
                Failure::new(FailureKind::Panic, supervise::join_error_message(e))
            }
            Err(e) => Failure::new(FailureKind::Other, supervise::join_error_message(e)),
        };
        metrics
            .counter_with(
                &names::INPUT_FAILURES,
                &[("input", &id), ("kind", failure.kind.as_str())],
            )
            .inc();
        let last = format!("{}: {}", failure.kind, failure.message);
        if env.stop.is_cancelled() {
            tracing::error!(input = %id, kind = %failure.kind, error = %failure.message, "input failed while stopping");
            env.health.failed(&component, State::Stopped, last);
            return;
        }
        let now = Instant::now();
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            recent.pop_front();
        }
        if recent.len() >= env.policy.max_restarts as usize {
            let reason = format!(
                "input {id} failed {} times within {window:?} and is not restarted again; last failure ({}): {}",
                recent.len() + 1,
                failure.kind,
                failure.message
            );
            tracing::error!(input = %id, kind = %failure.kind, "{reason}");
            env.health.failed(&component, State::Failed, reason.clone());
            let _ = env.fatal.send(reason);
            return;
        }
        if started.elapsed() > max {
            // It ran well for a while: this is a new failure, not a crash loop.
            backoff = init;
        }
        tracing::error!(input = %id, kind = %failure.kind, error = %failure.message, retry_in = ?backoff, "input failed; restarting it");
        env.health.failed(&component, State::Restarting, last);
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = env.stop.cancelled() => {
                env.health.set(&component, State::Stopped);
                return;
            }
        }
        backoff = (backoff * 2).min(max);
        recent.push_back(Instant::now());
        restarts.inc();
        env.health.restarted(&component);
        tracing::warn!(input = %id, restarts = recent.len(), "input restarted");
    }
}
