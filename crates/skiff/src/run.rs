//! `skiff run`: build the [`Topology`] from the configuration, start it, run until the inputs
//! end, a component fails for good, or a signal arrives; stop it in order; choose the exit code.
//!
//! Exit codes (docs/operations.md): 0 stopped with nothing lost; 1 the configuration is invalid
//! or start-up failed; 3 a component failed and could not be restarted (the reason is the last
//! log line and on stderr); 4 events were left unacknowledged that nobody will send again
//! (stdin with a memory queue); 130 a second signal.

use std::time::Duration;

use skiff_config::{ConfigError, ConfigErrors, Node};
use skiff_metrics::{Registry, names};
use skiff_pipeline::{Budget, BuildContext, InputCommon, StatusBoard};
use skiff_topology::{Drain, Ended, Topology};
use tokio_util::sync::CancellationToken;

use crate::cli::Global;
use crate::reload::Managed;
use crate::settings::Parts;
use crate::{agent, http, logging, registry, settings};

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
    // Before any module pipeline is compiled: their geoip steps open the databases once.
    skiff_modules::geoip::set_dirs(s.geoip.paths.iter().map(|d| paths.config.join(d)).collect());
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

/// Runs the agent. Returns the process exit code. `warnings`: the configuration's warnings
/// found so far (loading and splitting it).
pub async fn run(
    parts: Parts,
    ctx: BuildContext,
    cli: &Global,
    warnings: Vec<ConfigError>,
) -> anyhow::Result<i32> {
    for w in &parts.warnings {
        tracing::warn!("{w}");
    }
    let strict = cli.strict || parts.strict;
    let (built, diag) = skiff_config::collect(strict, || {
        Topology::from_config(&parts.pipeline(), &registry::PLUGINS, &ctx, false)
    });
    let mut warnings = warnings;
    warnings.extend(diag.warnings);
    let built = match built {
        Err(mut e) => {
            e.0.extend(diag.errors);
            Err(e)
        }
        Ok(_) if !diag.errors.is_empty() => Err(ConfigErrors(diag.errors)),
        Ok(t) => Ok(t),
    };
    for w in &warnings {
        tracing::warn!("configuration: {w}");
    }
    // Loud: when the log goes to files, the warnings are on the terminal too.
    if !cli.stderr && !parts.settings.logging.to_stderr {
        for w in &warnings {
            eprintln!("skiff: warning: {w}");
        }
    }
    // Located warnings and ignored sections, as `skiff test config` counts them.
    let warning_count = ctx.metrics.gauge(&names::CONFIG_WARNINGS);
    warning_count.set((warnings.len() + parts.warnings.len()) as i64);
    let topology = match built {
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

    let mut reloader = Reloader::new(
        &parts,
        &ctx,
        cli,
        strict,
        warnings.len() + parts.warnings.len(),
    );
    if parts.input_files.is_some() || parts.module_files.is_some() {
        running.keep_alive(true);
        reloader.reload_files(&mut running, &ctx).await;
    }
    if parts.metric_files.is_some() {
        running.keep_alive(true);
        reloader.reload_metric_modules(&mut running, &ctx).await;
    }
    let mut autodiscover = start_autodiscover(&parts, &ctx, &mut running);
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut tick = reloader.period().map(tokio::time::interval);
    let mut metric_tick = reloader.metrics_period().map(tokio::time::interval);
    let ended = loop {
        tokio::select! {
            e = running.wait() => break Some(e),
            _ = &mut shutdown => break None,
            step = async { match autodiscover.as_mut() { Some(a) => a.next().await, None => std::future::pending().await } } => {
                if let Some(a) = autodiscover.as_mut() {
                    a.apply(step, &mut running).await;
                }
            }
            _ = async { match tick.as_mut() { Some(t) => t.tick().await, None => std::future::pending().await } } => {
                reloader.reload_files(&mut running, &ctx).await;
            }
            _ = async { match metric_tick.as_mut() { Some(t) => t.tick().await, None => std::future::pending().await } } => {
                reloader.reload_metric_modules(&mut running, &ctx).await;
            }
            _ = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                tracing::info!("SIGHUP: reading the configuration again");
                reloader.reload_main(&mut running, &ctx).await;
                reloader.reload_files(&mut running, &ctx).await;
                reloader.reload_metric_modules(&mut running, &ctx).await;
            }
        }
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
    if let Some(a) = &autodiscover {
        a.shutdown();
    }
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

/// Starts `filebeat.autodiscover`'s providers (docs/autodiscover.md): the inputs they start
/// are added to `running` by the main loop. With a provider, skiff runs on with no input.
fn start_autodiscover(
    parts: &Parts,
    ctx: &BuildContext,
    running: &mut skiff_topology::Running,
) -> Option<skiff_autodiscover::runner::Runner> {
    let node = parts.autodiscover.as_ref()?;
    // Checked when the configuration was split; an error here cannot happen but is logged.
    let cfg = match skiff_autodiscover::config::parse(node) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("filebeat.autodiscover: {e}");
            return None;
        }
    };
    running.keep_alive(true);
    let stop_wait = crate::reload::STOP_WAIT.max(running.shutdown_timeout());
    let names: Vec<&str> = cfg.providers.iter().map(|p| p.plugin.name).collect();
    tracing::info!(providers = ?names, "autodiscover started");
    Some(skiff_autodiscover::runner::Runner::start(
        cfg,
        registry::PLUGINS,
        ctx.clone(),
        stop_wait,
    ))
}

/// Index offset of the ids made up for input files' inputs without an `id`.
const FILE_INDEX_BASE: usize = 10_000;

/// Index offset for the inputs of reloaded `modules.d/` files (they all have ids,
/// `module-<module>-<fileset>`; this only keeps the sources apart).
const MODULE_INDEX_BASE: usize = 20_000;

/// Index offset for the module files' blocks (they get ids from their settings; this keeps
/// the index apart all the same).
const METRIC_INDEX_BASE: usize = 30_000;

/// The reload state of a running skiff: the main file's inputs and the input files' inputs,
/// each a [`Managed`] source.
struct Reloader {
    cli: Global,
    strict: bool,
    main: Managed,
    files: Managed,
    input_files: Option<settings::InputFiles>,
    /// The input files' names and texts at the last reload (nothing to do when unchanged).
    files_seen: Option<String>,
    /// `filebeat.config.modules` with `reload.enabled`: the modules.d/ files' inputs.
    modules: Managed,
    module_files: Option<settings::InputFiles>,
    /// The enabled modules.d/ files' names and texts at the last reload.
    modules_seen: Option<String>,
    /// The main file's parts other than inputs, as JSON, to tell what changed on SIGHUP.
    main_rest: serde_json::Value,
    main_warnings: usize,
    files_warnings: usize,
    /// The blocks of `metricbeat.config.modules` when reloaded.
    metric_modules: Managed,
    metric_files: Option<skiff_input_metrics::section::ModuleFiles>,
    /// The module files' names and texts at the last reload.
    metrics_seen: Option<String>,
}

impl Reloader {
    fn new(parts: &Parts, ctx: &BuildContext, cli: &Global, strict: bool, warnings: usize) -> Self {
        let mut main = Managed::new(0);
        main.adopt(&parts.inputs, ctx);
        Reloader {
            cli: cli.clone(),
            strict,
            main,
            files: Managed::new(FILE_INDEX_BASE),
            input_files: parts.input_files.clone(),
            files_seen: None,
            modules: Managed::new(MODULE_INDEX_BASE),
            module_files: parts.module_files.clone(),
            modules_seen: None,
            main_rest: rest_of(parts),
            main_warnings: warnings,
            files_warnings: 0,
            metric_modules: Managed::new(METRIC_INDEX_BASE),
            metric_files: parts.metric_files.clone(),
            metrics_seen: None,
        }
    }

    /// `metricbeat.config.modules.reload.period`, when the module files are reloaded.
    fn metrics_period(&self) -> Option<Duration> {
        self.metric_files
            .as_ref()
            .map(|f| f.period.max(Duration::from_millis(100)))
    }

    /// Reads the module files and applies their blocks if the files changed since the last
    /// time: the same mechanism as the input files (blocks keyed by id, a changed block
    /// restarted, a bad file refusing the whole reload).
    async fn reload_metric_modules(
        &mut self,
        running: &mut skiff_topology::Running,
        ctx: &BuildContext,
    ) {
        let Some(files) = self.metric_files.clone() else {
            return;
        };
        let (seen, items) = skiff_input_metrics::section::read_module_inputs(&files);
        if self.metrics_seen.as_deref() == Some(seen.as_str()) {
            ctx.metrics
                .counter_with(&names::CONFIG_RELOADS, &[("result", "unchanged")])
                .inc();
            return;
        }
        self.metrics_seen = Some(seen);
        let result = match items {
            Ok(items) => {
                self.metric_modules
                    .apply(running, &items, ctx, self.strict)
                    .await
            }
            Err(e) => Err(e),
        };
        crate::reload::record(ctx, "metricbeat.config.modules", &result);
    }

    /// `reload.period` when the input files or the module files are reloaded (the shorter).
    fn period(&self) -> Option<Duration> {
        [&self.input_files, &self.module_files]
            .into_iter()
            .flatten()
            .filter(|f| f.reload.enabled)
            .map(|f| f.reload.period.0.max(Duration::from_millis(100)))
            .min()
    }

    fn count_warnings(&self, ctx: &BuildContext) {
        ctx.metrics
            .gauge(&names::CONFIG_WARNINGS)
            .set((self.main_warnings + self.files_warnings) as i64);
    }

    /// Reads the modules.d/ files (when reloaded) and applies them if they changed.
    async fn reload_modules(&mut self, running: &mut skiff_topology::Running, ctx: &BuildContext) {
        let Some(cfg) = self.module_files.clone() else {
            return;
        };
        let (seen, items) = crate::modules::read_files(&cfg);
        if self.modules_seen.as_deref() == Some(seen.as_str()) {
            return;
        }
        self.modules_seen = Some(seen);
        let result = match items {
            Ok(items) => self.modules.apply(running, &items, ctx, self.strict).await,
            Err(e) => Err(e),
        };
        crate::reload::record(ctx, "filebeat.config.modules", &result);
    }

    /// Reads the input files and applies them if they changed since the last time (and the
    /// module files, when they are reloaded).
    async fn reload_files(&mut self, running: &mut skiff_topology::Running, ctx: &BuildContext) {
        self.reload_modules(running, ctx).await;
        let Some(cfg) = self.input_files.clone() else {
            return;
        };
        let (seen, items) = crate::reload::read_input_files(&cfg, &ctx.paths);
        if self.files_seen.as_deref() == Some(seen.as_str()) {
            ctx.metrics
                .counter_with(&names::CONFIG_RELOADS, &[("result", "unchanged")])
                .inc();
            return;
        }
        self.files_seen = Some(seen);
        let result = match items {
            Ok(items) => self.files.apply(running, &items, ctx, self.strict).await,
            Err(e) => Err(e),
        };
        if let Ok(a) = &result {
            self.files_warnings = a.warnings.len();
            self.count_warnings(ctx);
        }
        crate::reload::record(ctx, "filebeat.config.inputs", &result);
    }

    /// Reads the main file again: its inputs are applied; other changes need a restart.
    async fn reload_main(&mut self, running: &mut skiff_topology::Running, ctx: &BuildContext) {
        let loaded = settings::load(&self.cli);
        let (parts, mut errors, warnings) = match loaded {
            Ok(root) => {
                let ((parts, errors), diag) =
                    skiff_config::collect(self.strict, || settings::split_all(root));
                let mut errors = errors;
                errors.extend(diag.errors);
                // A SIGHUP that leaves nothing to run is refused like a start would be.
                errors.extend(parts.nothing_to_run());
                (Some(parts), errors, diag.warnings)
            }
            Err(e) => (None, e.0, Vec::new()),
        };
        let Some(parts) = parts.filter(|_| errors.is_empty()) else {
            let result: Result<crate::reload::Applied, Vec<ConfigError>> =
                Err(std::mem::take(&mut errors));
            crate::reload::record(ctx, "SIGHUP", &result);
            return;
        };
        let rest = rest_of(&parts);
        if rest != self.main_rest {
            tracing::warn!(
                "SIGHUP: settings other than the inputs changed (output, queue, processors, logging, http, paths, ...); they apply after a restart of skiff"
            );
        }
        if parts.input_files.as_ref().map(|f| &f.path) != self.input_files.as_ref().map(|f| &f.path)
        {
            tracing::warn!(
                "SIGHUP: filebeat.config.inputs changed; it applies after a restart of skiff"
            );
        }
        if parts.metric_files != self.metric_files {
            tracing::warn!(
                "SIGHUP: metricbeat.config.modules changed (path, reload); it applies after a restart of skiff"
            );
        }
        let mut result = self
            .main
            .apply(running, &parts.inputs, ctx, self.strict)
            .await;
        if let Ok(a) = &mut result {
            a.warnings.extend(warnings);
            self.main_warnings = a.warnings.len();
            self.count_warnings(ctx);
        }
        crate::reload::record(ctx, "SIGHUP", &result);
    }
}

/// Everything of the main file but its inputs, to compare across a SIGHUP.
fn rest_of(parts: &Parts) -> serde_json::Value {
    let json = |n: &Option<Node>| n.as_ref().map(Node::to_json);
    let named = |n: &Option<(String, Node)>| n.as_ref().map(|(k, v)| (k.clone(), v.to_json()));
    serde_json::json!({
        "processors": json(&parts.processors),
        "setup": json(&parts.setup),
        "output": named(&parts.output),
        "queue": named(&parts.queue),
        "autodiscover": json(&parts.autodiscover),
        "settings": format!("{:?}", parts.settings),
    })
}
