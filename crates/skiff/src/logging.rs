//! skiff's own logs: `tracing`, to stderr (`-e`) or to daily-rotated files under `path.logs`,
//! plain text or JSON lines, plus the Beats' periodic "Non-zero metrics" line.

use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value};
use skiff_metrics::{Kind, Registry, names};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use crate::settings::LoggingConfig;

/// Keeps the log file writer alive (dropping it flushes).
pub struct Guard(#[allow(dead_code)] Option<tracing_appender::non_blocking::WorkerGuard>);

/// The filter for `logging.level`, `logging.selectors` and `-d`; `RUST_LOG` wins when set.
pub fn filter(cfg: &LoggingConfig, debug: Option<&str>) -> EnvFilter {
    if let Ok(f) = EnvFilter::try_from_env("RUST_LOG") {
        return f;
    }
    let level = match cfg.level.to_ascii_lowercase().as_str() {
        "critical" | "error" => "error",
        "warning" | "warn" => "warn",
        "debug" => "debug",
        "trace" => "trace",
        _ => "info",
    };
    let mut directives = vec![level.to_owned()];
    let selectors = cfg
        .selectors
        .iter()
        .map(String::as_str)
        .chain(debug.into_iter().flat_map(|d| d.split(',')));
    for s in selectors.map(str::trim).filter(|s| !s.is_empty()) {
        if s == "*" {
            directives.push("debug".into());
        } else {
            let target = s.replace('-', "_");
            directives.push(format!("{target}=debug"));
            directives.push(format!("skiff_{target}=debug"));
        }
    }
    EnvFilter::try_new(directives.join(",")).unwrap_or_else(|_| EnvFilter::new(level))
}

/// Installs the global subscriber. Errors only if the log directory cannot be created.
pub fn init(
    cfg: &LoggingConfig,
    to_stderr: bool,
    debug: Option<&str>,
    logs: &Path,
) -> anyhow::Result<Guard> {
    let filter = filter(cfg, debug);
    let (writer, guard, json) = if to_stderr || cfg.to_stderr || !cfg.to_files {
        (BoxMakeWriter::new(std::io::stderr), None, cfg.json)
    } else {
        let dir = cfg.files.path.clone().unwrap_or_else(|| logs.to_path_buf());
        std::fs::create_dir_all(&dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot create the log directory {}: {e} (set path.logs or use -e)",
                dir.display()
            )
        })?;
        let appender = tracing_appender::rolling::Builder::new()
            .rotation(tracing_appender::rolling::Rotation::DAILY)
            .filename_prefix(&cfg.files.name)
            .filename_suffix("ndjson")
            .max_log_files(cfg.files.keepfiles.max(1))
            .build(&dir)
            .map_err(|e| anyhow::anyhow!("cannot open a log file in {}: {e}", dir.display()))?;
        let (nb, guard) = tracing_appender::non_blocking(appender);
        (BoxMakeWriter::new(nb), Some(guard), true)
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(true);
    let result = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    // Already initialised (tests): keep the existing subscriber.
    let _ = result;
    Ok(Guard(guard))
}

/// Logs "Non-zero metrics in the last <period>" every period, with the counters' increases
/// and the gauges' current values, as the Beats do.
pub async fn metrics_loop(
    reg: Registry,
    period: Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut last = flatten(&reg.json());
    let mut tick = tokio::time::interval(period);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let now = flatten(&reg.json());
        let delta = nonzero_delta(&last, &now);
        if !delta.is_empty() {
            let m = Value::Object(delta);
            tracing::info!(target: "skiff::monitoring", monitoring = %m, "Non-zero metrics in the last {}s", period.as_secs());
        }
        last = now;
    }
}

fn flatten(v: &Value) -> Vec<(String, f64)> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<(String, f64)>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&p, v, out);
                }
            }
            Value::Number(n) => out.push((prefix.to_owned(), n.as_f64().unwrap_or(0.0))),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", v, &mut out);
    out
}

fn nonzero_delta(last: &[(String, f64)], now: &[(String, f64)]) -> Map<String, Value> {
    let is_counter = |name: &str| {
        names::ALL
            .iter()
            .any(|d| d.name == name && d.kind == Kind::Counter)
    };
    let mut out = Map::new();
    for (k, v) in now {
        if k.starts_with("skiff.by_label") {
            continue;
        }
        let value = if is_counter(k) {
            v - last.iter().find(|(n, _)| n == k).map_or(0.0, |(_, x)| *x)
        } else {
            *v
        };
        if value != 0.0 {
            out.insert(k.clone(), serde_json::json!(value));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_report_increase_and_gauges_their_value() {
        let reg = Registry::new();
        let c = reg.counter(&names::OUTPUT_EVENTS_ACKED);
        let g = reg.gauge(&names::QUEUE_FILLED_EVENTS);
        c.add(5);
        let a = flatten(&reg.json());
        c.add(3);
        g.set(7);
        let d = nonzero_delta(&a, &flatten(&reg.json()));
        assert_eq!(d["libbeat.output.events.acked"], 3.0);
        assert_eq!(d["libbeat.pipeline.queue.filled.events"], 7.0);
        let d = nonzero_delta(&flatten(&reg.json()), &flatten(&reg.json()));
        assert!(!d.contains_key("libbeat.output.events.acked"));
    }

    #[test]
    fn selectors_become_directives() {
        let cfg = LoggingConfig {
            level: "warning".into(),
            ..Default::default()
        };
        let f = filter(&cfg, Some("input-file")).to_string();
        assert!(
            f.contains("warn") && f.contains("skiff_input_file=debug"),
            "{f}"
        );
    }
}
