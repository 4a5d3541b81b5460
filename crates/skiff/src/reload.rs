//! Inputs added, changed and removed while skiff runs: the files of `filebeat.config.inputs`
//! (read at start, and every `reload.period` when `reload.enabled`), and the main file's inputs
//! on SIGHUP.
//!
//! What a reload does (docs/configuration.md, "Reloading"):
//!
//! * Every input of the new set is built first, as a check. If one fails, the whole reload is
//!   refused and logged: the running inputs stay as they are (a file saved half-edited must not
//!   stop inputs), and the next period tries again once the files change.
//! * Inputs are keyed by id. An input whose settings did not change keeps running, untouched.
//!   A removed input is stopped; a changed one is stopped and then started again with its new
//!   settings. Stopping waits (up to [`STOP_WAIT`]) for the input's events to be acknowledged and
//!   its state saved, so the new one resumes from the old one's last acknowledged line: nothing
//!   is lost or read twice while the output keeps up. If it does not within [`STOP_WAIT`], the
//!   unacknowledged lines are read again (at-least-once, never lost).
//! * On SIGHUP the main file is read again. Its inputs are reloaded as above; a change anywhere
//!   else (output, queue, global processors, logging, http, paths) is logged as needing a
//!   restart and not applied: those parts hold connections, files and queued events.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use skiff_config::{ConfigError, Mark, Node, NodeValue};
use skiff_metrics::names;
use skiff_pipeline::BuildContext;
use skiff_topology::{Running, input_from_config};

use crate::registry;
use crate::settings::InputFiles;

/// How long an input stopped by a reload waits for its events to be acknowledged before it
/// saves its state (or the pipeline's `shutdown_timeout`, if longer).
pub const STOP_WAIT: Duration = Duration::from_secs(30);

/// The most bytes of one input file read (an input file is a few lines of YAML).
const MAX_INPUT_FILE: u64 = 4 << 20;

/// The inputs of one source (the main file, or the input files), by id, with the settings each
/// was started with.
#[derive(Debug, Default)]
pub struct Managed {
    running: BTreeMap<String, serde_json::Value>,
    /// Index offset for ids made up for inputs without an `id` (`<type>-<index>`), so that
    /// the two sources do not make up the same ones.
    index_base: usize,
}

/// What one reload did.
#[derive(Debug, Default, PartialEq)]
pub struct Applied {
    /// Inputs started that did not run before.
    pub started: Vec<String>,
    /// Inputs stopped for good.
    pub stopped: Vec<String>,
    /// Inputs stopped and started again with new settings.
    pub restarted: Vec<String>,
    /// Configuration warnings of the new set.
    pub warnings: Vec<ConfigError>,
}

impl Applied {
    /// Whether the reload changed nothing.
    pub fn is_empty(&self) -> bool {
        self.started.is_empty() && self.stopped.is_empty() && self.restarted.is_empty()
    }
}

impl Managed {
    /// A source whose made-up ids start at `index_base`.
    pub fn new(index_base: usize) -> Managed {
        Managed {
            running: BTreeMap::new(),
            index_base,
        }
    }

    /// Records inputs started with the topology (the main file's, at start): checked by building
    /// them, their ids taken from the build.
    pub fn adopt(&mut self, items: &[Node], ctx: &BuildContext) {
        let ((), _) = skiff_config::collect(false, || {
            for (i, item) in items.iter().enumerate() {
                let id = match input_from_config(self.index_base + i, item, &registry::PLUGINS, ctx)
                {
                    Ok(Some(spec)) => spec.id().to_owned(),
                    Ok(None) => continue,
                    // It was built a moment ago for the topology; an input that holds something
                    // from its build (it should not: inputs open sockets and files in `run`)
                    // keeps the id the topology gave it.
                    Err(_) => match (item.get("id"), item.get("type")) {
                        (
                            Some(Node {
                                value: NodeValue::String(id),
                                ..
                            }),
                            _,
                        ) => id.clone(),
                        (
                            _,
                            Some(Node {
                                value: NodeValue::String(t),
                                ..
                            }),
                        ) => {
                            format!("{t}-{}", self.index_base + i)
                        }
                        _ => continue,
                    },
                };
                self.running.insert(id, item.to_json());
            }
        });
    }

    /// Makes the running inputs of this source those of `items`. `others`: the ids of the
    /// inputs of the other sources (an id used there is an error here). On any problem nothing
    /// is changed and every problem is returned.
    pub async fn apply(
        &mut self,
        running: &mut Running,
        items: &[Node],
        ctx: &BuildContext,
        strict: bool,
    ) -> Result<Applied, Vec<ConfigError>> {
        let mine: Vec<String> = self.running.keys().cloned().collect();
        let others: Vec<String> = running
            .input_ids()
            .into_iter()
            .filter(|id| !mine.contains(id))
            .collect();
        // Check: build every input of the new set (and throw it away).
        let (checked, diag) = skiff_config::collect(strict, || {
            let mut errors = Vec::new();
            let mut wanted: BTreeMap<String, (usize, serde_json::Value)> = BTreeMap::new();
            for (i, item) in items.iter().enumerate() {
                match input_from_config(self.index_base + i, item, &registry::PLUGINS, ctx) {
                    Ok(None) => {}
                    Ok(Some(spec)) => {
                        let id = spec.id().to_owned();
                        if others.contains(&id) || wanted.contains_key(&id) {
                            errors.push(skiff_topology::error_at(
                                item,
                                format!("input id `{id}` is already used by another input: every input needs its own `id`"),
                            ));
                        }
                        wanted.insert(id, (i, item.to_json()));
                    }
                    Err(e) => errors.extend(e),
                }
            }
            (wanted, errors)
        });
        let (wanted, mut errors) = checked;
        errors.extend(diag.errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut applied = Applied {
            warnings: diag.warnings,
            ..Applied::default()
        };
        // Stop what is gone or changed, and wait until each has saved its state.
        let old = std::mem::take(&mut self.running);
        for (id, settings) in &old {
            match wanted.get(id) {
                Some((_, new)) if new == settings => {
                    self.running.insert(id.clone(), settings.clone());
                }
                Some(_) => {
                    running.remove_input(id).await;
                    applied.restarted.push(id.clone());
                }
                None => {
                    running.remove_input(id).await;
                    applied.stopped.push(id.clone());
                }
            }
        }
        // Start what is new or changed, built again now that the old one's state is saved.
        for (id, (i, settings)) in wanted {
            if self.running.contains_key(&id) {
                continue;
            }
            let built = skiff_config::collect(strict, || {
                input_from_config(self.index_base + i, &items[i], &registry::PLUGINS, ctx)
            })
            .0;
            let spec = match built {
                Ok(Some(spec)) => spec.stop_wait(STOP_WAIT.max(running.shutdown_timeout())),
                Ok(None) => continue,
                Err(e) => {
                    errors.extend(e);
                    continue;
                }
            };
            match running.add_input(spec) {
                Ok(()) => {
                    if !applied.restarted.contains(&id) {
                        applied.started.push(id.clone());
                    }
                    self.running.insert(id, settings);
                }
                Err(e) => errors.push(ConfigError::new(
                    items[i].path.clone(),
                    items[i].mark.clone(),
                    e.to_string(),
                )),
            }
        }
        if errors.is_empty() {
            Ok(applied)
        } else {
            Err(errors)
        }
    }
}

/// The files `cfg.path` matches (relative to `config_dir`), in name order.
pub fn input_file_paths(cfg: &InputFiles, config_dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let pattern = if Path::new(&cfg.path).is_absolute() {
        PathBuf::from(&cfg.path)
    } else {
        config_dir.join(&cfg.path)
    };
    let text = pattern.display().to_string();
    let entries = glob::glob(&text).map_err(|e| {
        ConfigError::new(
            "filebeat.config.inputs.path",
            Mark::none(),
            format!("invalid pattern {text:?}: {e}"),
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// The input files as they are now: each file's text, for change detection, and the input
/// items of all of them in file order (with `${...}` expanded), or every problem found.
pub fn read_input_files(
    cfg: &InputFiles,
    paths: &skiff_pipeline::Paths,
) -> (String, Result<Vec<Node>, Vec<ConfigError>>) {
    let files = match input_file_paths(cfg, &paths.config) {
        Ok(f) => f,
        Err(e) => return (String::new(), Err(vec![e])),
    };
    let mut seen = String::new();
    let mut items = Vec::new();
    let mut errors = Vec::new();
    let lookup = |name: &str| -> Option<String> {
        let p = match name {
            "path.home" => &paths.home,
            "path.config" => &paths.config,
            "path.data" => &paths.data,
            "path.logs" => &paths.logs,
            _ => return std::env::var(name).ok(),
        };
        Some(p.display().to_string())
    };
    for file in files {
        let name = file.display().to_string();
        let text = match read_limited(&file) {
            Ok(t) => t,
            Err(e) => {
                errors.push(ConfigError::new("", file_mark(&name), e));
                continue;
            }
        };
        seen.push_str(&name);
        seen.push('\0');
        seen.push_str(&text);
        seen.push('\0');
        let mut list = match skiff_config::parse_list_str(&text, Some(&name)) {
            Ok(l) => l,
            Err(e) => {
                errors.extend(e);
                continue;
            }
        };
        if let Err(e) = skiff_config::expand_env(&mut list, &lookup) {
            errors.extend(e);
            continue;
        }
        if let NodeValue::Seq(list_items) = list.value {
            items.extend(list_items);
        }
    }
    let result = if errors.is_empty() {
        Ok(items)
    } else {
        Err(errors)
    };
    (seen, result)
}

fn file_mark(name: &str) -> Mark {
    Mark {
        file: Some(std::sync::Arc::from(name)),
        line: 0,
        column: 0,
    }
}

fn read_limited(file: &Path) -> Result<String, String> {
    use std::io::Read;
    let f = std::fs::File::open(file).map_err(|e| format!("cannot read the input file: {e}"))?;
    let mut text = String::new();
    f.take(MAX_INPUT_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read the input file: {e}"))?;
    if text.len() as u64 > MAX_INPUT_FILE {
        return Err(format!(
            "the input file is larger than {MAX_INPUT_FILE} bytes"
        ));
    }
    Ok(text)
}

/// Counts a reload's result and its inputs, and logs it.
pub fn record(ctx: &BuildContext, source: &str, result: &Result<Applied, Vec<ConfigError>>) {
    let m = &ctx.metrics;
    match result {
        Ok(a) if a.is_empty() => {
            m.counter_with(&names::CONFIG_RELOADS, &[("result", "unchanged")])
                .inc();
        }
        Ok(a) => {
            m.counter_with(&names::CONFIG_RELOADS, &[("result", "applied")])
                .inc();
            for (action, ids) in [
                ("started", &a.started),
                ("stopped", &a.stopped),
                ("restarted", &a.restarted),
            ] {
                m.counter_with(&names::CONFIG_RELOAD_INPUTS, &[("action", action)])
                    .add(ids.len() as u64);
            }
            tracing::info!(source, started = ?a.started, stopped = ?a.stopped, restarted = ?a.restarted, "inputs reloaded");
        }
        Err(errors) => {
            m.counter_with(&names::CONFIG_RELOADS, &[("result", "failed")])
                .inc();
            for e in errors {
                tracing::error!(source, "{e}");
            }
            tracing::error!(
                source,
                problems = errors.len(),
                "the reload was refused; the running inputs are unchanged"
            );
        }
    }
    if let Ok(a) = result {
        for w in &a.warnings {
            tracing::warn!(source, "{w}");
        }
    }
}
