//! The file input: Filebeat's `filestream` (and the old `log` input, mapped onto it).
//!
//! # Where this sits
//!
//! It is the first stage of the pipeline for log files: it finds files (`paths` globs, change
//! notifications plus a periodic scan), reads each one as a stream of lines, runs them through
//! the `parsers` (`skiff-parsers`), and publishes one [`Event`](skiff_event::Event) per message
//! into the queue. Every event carries an acknowledgement token for the byte offset just past
//! it; the registry records a file's offset only once everything before it is acknowledged, so
//! a crash at any moment loses nothing and repeats at most what was in flight.
//!
//! # Modules
//!
//! * `config`: the settings (Filebeat's names and defaults) and the `log` -> `filestream` map.
//! * `container`: the `container` input's settings -> `filestream` with the container parser.
//! * `prospector`: discovery, file identity bookkeeping, reader scheduling (`harvester_limit`),
//!   registry writes, cleaning, deleting.
//! * `harvester`: one reader per open file: lines -> parsers -> events; truncation and
//!   replaced-content detection; close conditions.
//! * `lines`: the streaming line splitter, bounded by `message_max_bytes`.
//! * `copytruncate`: a new file that is a rotated copy of a known one continues from the
//!   known one's offset.
//! * `identity`: device + inode + a growing head fingerprint (see `docs/file-identity.md`).
//! * `registry`: the crash-safe append-only state file and its compaction (public, for tools
//!   and benchmarks that read registry files).
//! * `state`: a known file's shared state, its acknowledgement stream, and the commit set the
//!   ack path pushes a file's key into when its acknowledged offset moves.
//! * `status`: per-file progress for `GET /inputs/` and `skiff registry list`.
//! * `watch`: inotify through the `notify` crate.
//! * `writer`: the thread that writes and fsyncs the registry, off the runtime.

mod config;
mod container;
mod copytruncate;
mod harvester;
mod identity;
mod lines;
mod prospector;
pub mod registry;
mod state;
mod status;
mod watch;
mod writer;

#[cfg(test)]
mod offset_model;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use async_trait::async_trait;
use regex::RegexSet;
use skiff_config::{ConfigError, ConfigErrors, Node};
use skiff_metrics::names;
use skiff_pipeline::{
    BuildContext, Failure, FailureKind, Input, InputCommon, InputContext, InputPlugin, supervise,
};

pub use config::FilestreamConfig;
pub use identity::{FileKey, Fingerprint};
pub use lines::{LineReader, RawLine, Terminator};
pub use state::Phase;
pub use status::{FileStatus, list_registry};

/// `type: filestream`.
pub static FILESTREAM: InputPlugin = InputPlugin {
    name: "filestream",
    agent_type: "filebeat",
    build: build_filestream,
};

/// `type: log`: the deprecated Filebeat input, mapped onto filestream with a warning.
pub static LOG: InputPlugin = InputPlugin {
    name: "log",
    agent_type: "filebeat",
    build: build_log,
};

/// `type: container`: container runtimes' log files (Docker `json-file`, CRI), read as
/// filestream with the `container` parser and Filebeat's defaults (see `container.rs`).
pub static CONTAINER: InputPlugin = InputPlugin {
    name: "container",
    agent_type: "filebeat",
    build: build_container,
};

/// A built file input.
pub struct FileInput {
    state_id: String,
    cfg: FilestreamConfig,
    parsers: Option<Node>,
    term: Terminator,
    encoding: &'static encoding_rs::Encoding,
    include_lines: Option<RegexSet>,
    exclude_lines: Option<RegexSet>,
    exclude_files: Option<RegexSet>,
    include_files: Option<RegexSet>,
}

fn err(node: &Node, msg: impl Into<String>) -> ConfigError {
    ConfigError::new(node.path.clone(), node.mark.clone(), msg)
}

fn build_filestream(
    node: &Node,
    common: &InputCommon,
    ctx: &BuildContext,
) -> Result<Box<dyn Input>, ConfigErrors> {
    let Some(id) = common.id.clone().filter(|s| !s.trim().is_empty()) else {
        return Err(err(
            node,
            "a filestream input needs an `id` (unique across inputs): it keys the input's saved offsets, e.g. `id: nginx-access`",
        )
        .into());
    };
    build(node, id, ctx)
}

fn build_log(
    node: &Node,
    common: &InputCommon,
    ctx: &BuildContext,
) -> Result<Box<dyn Input>, ConfigErrors> {
    tracing::warn!(
        config = %node.path,
        "the `log` input is deprecated; it runs as `filestream` with its settings mapped (json and multiline become parsers). Switch to `type: filestream` with an `id`"
    );
    let mapped = config::map_log_input(node)?;
    let id = match common.id.clone().filter(|s| !s.trim().is_empty()) {
        Some(id) => id,
        None => {
            // A stable id from the paths, so the state survives reordering the inputs.
            let mut paths: Vec<String> = mapped
                .get("paths")
                .map(|p| p.items().iter().map(|n| format!("{:?}", n.value)).collect())
                .unwrap_or_default();
            paths.sort();
            let fp = Fingerprint::of(paths.join("\n").as_bytes());
            format!("log-{:016x}", fp.hash)
        }
    };
    build(&mapped, id, ctx)
}

fn build_container(
    node: &Node,
    common: &InputCommon,
    ctx: &BuildContext,
) -> Result<Box<dyn Input>, ConfigErrors> {
    let mapped = container::map_container_input(node)?;
    let id = common
        .id
        .clone()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| stable_id("container", &mapped));
    build(&mapped, id, ctx)
}

/// An id made from the `paths` of a mapped input, so that its state survives reordering the
/// inputs.
fn stable_id(prefix: &str, mapped: &Node) -> String {
    let mut paths: Vec<String> = mapped
        .get("paths")
        .map(|p| match &p.value {
            skiff_config::NodeValue::Seq(items) => {
                items.iter().map(|n| format!("{:?}", n.value)).collect()
            }
            other => vec![format!("{other:?}")],
        })
        .unwrap_or_default();
    paths.sort();
    let fp = Fingerprint::of(paths.join("\n").as_bytes());
    format!("{prefix}-{:016x}", fp.hash)
}

fn regex_set(
    node: &Node,
    key: &str,
    pats: &[String],
    errors: &mut Vec<ConfigError>,
) -> Option<RegexSet> {
    if pats.is_empty() {
        return None;
    }
    match RegexSet::new(pats) {
        Ok(r) => Some(r),
        Err(e) => {
            let at = node.get(key).unwrap_or(node);
            errors.push(err(at, format!("invalid regular expression: {e}")));
            None
        }
    }
}

fn build(node: &Node, id: String, ctx: &BuildContext) -> Result<Box<dyn Input>, ConfigErrors> {
    let mut node = node.clone();
    let parsers = node.remove("parsers");
    let cfg: FilestreamConfig = node.deserialize()?;
    let mut errors = Vec::new();
    if cfg.paths.is_empty() {
        errors.push(err(
            &node,
            "`paths` is required: a list of glob patterns, e.g. `paths: [/var/log/*.log]`",
        ));
    }
    for (i, p) in cfg.paths.iter().enumerate() {
        if let Err(e) = glob::Pattern::new(p) {
            let at = node.get(&format!("paths.{i}")).unwrap_or(&node);
            errors.push(err(at, format!("invalid glob pattern {p:?}: {e}")));
        }
    }
    let mut exclude = cfg.exclude_files.clone();
    exclude.extend(cfg.prospector.scanner.exclude_files.iter().cloned());
    let mut include = cfg.include_files.clone();
    include.extend(cfg.prospector.scanner.include_files.iter().cloned());
    let exclude_files = regex_set(&node, "exclude_files", &exclude, &mut errors);
    let include_files = regex_set(&node, "include_files", &include, &mut errors);
    let include_lines = regex_set(&node, "include_lines", &cfg.include_lines, &mut errors);
    let exclude_lines = regex_set(&node, "exclude_lines", &cfg.exclude_lines, &mut errors);
    let encoding = config::encoding(&cfg.encoding);
    if encoding.is_none() {
        let at = node.get("encoding").unwrap_or(&node);
        errors.push(err(at, format!("unknown encoding `{}`; use utf-8, plain, latin1, utf-16le, utf-16be or another WHATWG encoding label", cfg.encoding)));
    }
    let enc = encoding.unwrap_or(encoding_rs::UTF_8);
    let term = match config::terminator(enc, &cfg.line_terminator) {
        Ok(t) => Some(t),
        Err(m) => {
            errors.push(err(node.get("line_terminator").unwrap_or(&node), m));
            None
        }
    };
    if cfg.message_max_bytes.0 == 0 || cfg.message_max_bytes.0 > (1 << 30) {
        errors.push(err(
            node.get("message_max_bytes").unwrap_or(&node),
            "message_max_bytes must be between 1 byte and 1GiB",
        ));
    }
    if cfg.buffer_size.0 == 0 || cfg.buffer_size.0 > (64 << 20) {
        errors.push(err(
            node.get("buffer_size").unwrap_or(&node),
            "buffer_size must be between 1 byte and 64MiB",
        ));
    }
    if let Some(ci) = cfg.clean_inactive.and_then(|c| c.get()) {
        let min = cfg.ignore_older.0 + cfg.prospector.scanner.check_interval.0;
        if cfg.ignore_older.0.is_zero() || ci <= min {
            errors.push(err(
                node.get("clean_inactive").unwrap_or(&node),
                format!(
                    "clean_inactive must be greater than ignore_older + prospector.scanner.check_interval ({}s), and ignore_older must be set; otherwise a file whose state was cleaned is read again from the start",
                    min.as_secs()
                ),
            ));
        }
    }
    if let Some(v) = cfg.ignore_inactive.as_deref()
        && v != "since_first_start"
        && v != "since_last_start"
    {
        errors.push(err(
            node.get("ignore_inactive").unwrap_or(&node),
            format!("unknown ignore_inactive `{v}`; use since_first_start or since_last_start"),
        ));
    }
    if let Err(m) = config::file_identity(cfg.file_identity.as_ref()) {
        errors.push(err(node.get("file_identity").unwrap_or(&node), m));
    }
    if let Err(m) = config::copytruncate_suffix(cfg.rotation.as_ref()) {
        errors.push(err(node.get("rotation").unwrap_or(&node), m));
    }
    if let Err(e) =
        skiff_parsers::ParserChain::build(parsers.as_ref(), ctx, cfg.message_max_bytes.0 as usize)
    {
        errors.extend(e.0);
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let Some(term) = term else {
        return Err(err(&node, "line_terminator").into());
    };
    Ok(Box::new(FileInput {
        state_id: id,
        cfg,
        parsers,
        term,
        encoding: enc,
        include_lines,
        exclude_lines,
        exclude_files,
        include_files,
    }))
}

/// The soft limit on open files, so that readers never exhaust it (`/proc/self/limits`).
fn fd_budget() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(3)
                        .and_then(|v| v.parse::<usize>().ok())
                })
        })
        .unwrap_or(1024);
    (soft * 3 / 4).saturating_sub(64).max(16)
}

#[async_trait]
impl Input for FileInput {
    async fn run(self: Box<Self>, ctx: InputContext) -> Result<(), Failure> {
        let this = *self;
        let cfg = &this.cfg;
        let m = &ctx.build.metrics;
        let id: Arc<str> = Arc::from(this.state_id.as_str());
        // Reading (and maybe rewriting) the registry is blocking work: 100k entries take a while.
        let (store, loaded) = {
            let (data, sid) = (ctx.build.paths.data.clone(), this.state_id.clone());
            tokio::task::spawn_blocking(move || registry::Store::open(&data, &sid))
                .await
                .map_err(|e| {
                    Failure::new(
                        FailureKind::Other,
                        format!(
                            "loading the registry failed: {}",
                            supervise::join_error_message(e)
                        ),
                    )
                })??
        };
        m.counter(&names::REGISTRY_DAMAGED)
            .add(loaded.damaged as u64);
        let created = store.created;
        let writer = writer::Writer::spawn(store, &this.state_id)
            .map_err(|e| Failure::io("cannot start the registry writer thread", &e))?;
        let max = cfg.message_max_bytes.0 as usize;
        let chunk = cfg.buffer_size.0 as usize;
        let fds = fd_budget();
        let limit = match cfg.harvester_limit {
            0 => fds,
            n => n.min(fds),
        };
        if cfg.harvester_limit == 0 || cfg.harvester_limit > fds {
            tracing::debug!(input = %id, limit, "reader limit set from the open-files limit");
        }
        let stage = ctx.build.budget.stage(
            "input.file.readers",
            ((max + chunk) as u64).saturating_mul(limit as u64),
        );
        let settings = harvester::Settings {
            term: this.term.clone(),
            encoding: this.encoding,
            max,
            chunk,
            include: this.include_lines.clone(),
            exclude: this.exclude_lines.clone(),
            line_flush: Some(cfg.line_flush_timeout.0).filter(|d| !d.is_zero()),
            inactive: cfg.close.on_state_change.inactive.0,
            close_renamed: cfg.close.on_state_change.renamed,
            close_removed: cfg.close.on_state_change.removed,
            close_eof: cfg.close.reader.on_eof,
            after_interval: Some(cfg.close.reader.after_interval.0).filter(|d| !d.is_zero()),
            backoff_init: cfg.backoff.init.0.max(std::time::Duration::from_millis(1)),
            backoff_max: cfg.backoff.max.0.max(cfg.backoff.init.0),
            parsers: this.parsers.clone(),
            build: ctx.build.clone(),
        };
        let hctx = Arc::new(harvester::Ctx {
            settings: Arc::new(settings),
            publisher: ctx.publisher.clone(),
            cancel: ctx.shutdown.clone(),
            base_shared: ctx.shared.clone(),
            waiting: Arc::new(AtomicUsize::new(0)),
            stage,
            events: m.counter_with(&names::INPUT_EVENTS, &[("input", &this.state_id)]),
            bytes: m.counter_with(&names::INPUT_BYTES, &[("input", &this.state_id)]),
            truncated: m.counter(&names::FILES_TRUNCATED_LINES),
            input_id: id.clone(),
            notified: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            slot_wanted: tokio::sync::Notify::new(),
            copies: copytruncate::Copies::new(true, copytruncate::link(cfg)),
        });
        let table: prospector::FileTable = Arc::new(std::sync::Mutex::new(HashMap::new()));
        {
            let table = table.clone();
            let sid = this.state_id.clone();
            ctx.build
                .status
                .register(&ctx.id, move || status::document(&sid, &table));
        }
        let scan = prospector::Scan {
            patterns: cfg.paths.clone(),
            recursive_glob: cfg.prospector.scanner.recursive_glob,
            exclude: this.exclude_files.clone(),
            include: this.include_files.clone(),
            symlinks: cfg.prospector.scanner.symlinks,
            check_interval: cfg
                .prospector
                .scanner
                .check_interval
                .0
                .max(std::time::Duration::from_millis(10)),
            ignore_older: Some(cfg.ignore_older.0).filter(|d| !d.is_zero()),
            ignore_inactive: cfg.ignore_inactive.clone(),
            tail_files: cfg.tail_files,
            clean_inactive: cfg.clean_inactive.and_then(|c| c.get()),
            clean_removed: cfg.clean_removed,
            harvester_limit: limit,
            delete: cfg.delete.enabled.then_some(cfg.delete.grace_period.0),
            registry_flush: cfg.registry.flush.0,
        };
        let meters = prospector::Meters {
            open: m.gauge(&names::FILES_OPEN),
            running: m.gauge(&names::FILES_RUNNING),
            started: m.counter(&names::FILES_STARTED),
            closed: m.counter(&names::FILES_CLOSED),
            known: m.gauge(&names::FILES_KNOWN),
            unacked: m.gauge(&names::FILES_UNACKED_BYTES),
            writes: m.counter(&names::REGISTRAR_WRITES),
            write_failures: m.counter(&names::REGISTRAR_WRITE_FAILURES),
            reader_restarts: m.counter(&names::FILES_READER_RESTARTS),
        };
        tracing::info!(input = %id, paths = ?cfg.paths, known_files = loaded.entries.len(), "file input started");
        let p = prospector::Prospector::new(
            id,
            scan,
            hctx,
            (writer, created),
            loaded.entries,
            table,
            meters,
            ctx.publisher.shutdown_timeout(),
        );
        Ok(p.run().await?)
    }

    fn replays_unacked(&self) -> bool {
        // Unacknowledged lines are read again from the saved offset at the next start.
        true
    }
}
