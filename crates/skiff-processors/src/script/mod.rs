//! `script`: runs JavaScript on each event, with Filebeat's event API (`process(event)`,
//! `event.Get/Put/Rename/Delete/Tag/AppendTo/Cancel`, `register(params)`, `test()`).
//!
//! ```yaml
//! - script:
//!     lang: javascript
//!     params: {threshold: 15}
//!     source: |
//!       var params = {threshold: 42};
//!       function register(p) { params = p; }
//!       function process(event) {
//!         if (event.Get("severity") < params.threshold) event.Cancel();
//!       }
//!     timeout: 100ms
//! ```
//!
//! ## The engine: QuickJS through `rquickjs`
//!
//! Chosen over `boa_engine` (pure Rust) for three reasons. Speed: QuickJS is a mature bytecode
//! interpreter with a compact object model; Boa's own published comparisons place it well
//! behind QuickJS on the usual benchmark suites, and a script runs once per event. Build cost on
//! this 2-core machine: `rquickjs` adds one C library compiled by the `cc` crate, with
//! pre-generated bindings (no bindgen, no libclang) — three small crates in `Cargo.lock`;
//! `boa_engine` brings dozens of crates (ICU4X for `Intl`, its parser, GC and string crates).
//! Boa was not built here to compare, to spare the shared machine. Safety: the script sees only
//! the ECMAScript built-ins — QuickJS's `std`/`os` modules (files, processes, sockets) are in
//! `quickjs-libc`, which `rquickjs` does not build — and no module loader is installed, so
//! `import`/`require` fail; each engine has a memory limit (64 MiB) and a stack limit, and
//! `timeout` is enforced by QuickJS's interrupt handler, which the interpreter polls while it
//! runs, so an endless loop ends with an exception (tested). The cost: C code in the process
//! (QuickJS is fuzzed by OSS-Fuzz) and a C compiler at build time (`cc`, already needed by
//! other crates of the workspace).
//!
//! ## How an event crosses over
//!
//! The event (with `@timestamp` and `@metadata`) goes to the script as JSON and the event API
//! is JavaScript over that object ([`prelude.js`](prelude.js)), so `Get`/`Put` never cross the
//! language boundary; the result comes back as JSON and only the top-level fields that changed
//! are written to the event, so fields shared by a source's events stay shared when untouched.
//!
//! Engines are not thread-safe to share, so the processor keeps a pool of them (each with the
//! script loaded and `register` called): a call takes one, or builds one when all are busy;
//! at most `max_cached_sessions` are kept (default 4, as Filebeat).
//!
//! An exception, a timeout, or a `process` that is missing tags the event with
//! `tag_on_exception` (default `_js_exception`) and records the error in `error.message`; the
//! event is kept unchanged. `event.Cancel()` drops the event.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rquickjs::{CatchResultExt, Context, Function, Runtime};
use serde::Deserialize;
use skiff_config::{ConfigErrors, Node};
use skiff_event::{Event, Map, Value};
use skiff_pipeline::{BuildContext, Processor, Verdict};

use crate::fields::OneOrMany;
use crate::{add_tag, error_at, plugin, set_error};

plugin!(SCRIPT, "script", build);

const PRELUDE: &str = include_str!("prelude.js");
/// Memory one engine may use (the event's JSON included).
const MEMORY_LIMIT: usize = 64 << 20;
/// Native stack one engine may use (deep recursion ends in an exception, not a crash).
const STACK_LIMIT: usize = 512 << 10;

/// `script`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `lang`: `javascript` (or `js`). Required.
    lang: String,
    /// `id`: a name for this processor in messages. Default none.
    #[serde(default)]
    id: Option<String>,
    /// `tag`: same as `id` (older Filebeat name). Default none.
    #[serde(default)]
    tag: Option<String>,
    /// `source`: inline JavaScript. One of `source`, `file`, `files` is required.
    #[serde(default)]
    source: Option<String>,
    /// `file`: a script file, relative to `path.config`; globs are expanded.
    #[serde(default)]
    file: Option<String>,
    /// `files`: script files, concatenated in order; relative and globbed as `file`.
    #[serde(default)]
    files: Option<OneOrMany>,
    /// `params`: passed to the script's `register(params)`. Default none.
    #[serde(default)]
    params: Option<Map>,
    /// `tag_on_exception`: the tag an event gets when the script throws. Default `_js_exception`.
    #[serde(default = "js_exception")]
    tag_on_exception: String,
    /// `timeout`: the longest one `process` call may run. Default: no limit.
    #[serde(default)]
    timeout: Option<skiff_config::Duration>,
    /// `max_cached_sessions`: engines kept for reuse. Default 4.
    #[serde(default = "four")]
    max_cached_sessions: usize,
}

fn js_exception() -> String {
    "_js_exception".into()
}
fn four() -> usize {
    4
}

/// One loaded script: a runtime, its context, and the deadline its interrupt handler checks.
struct Engine {
    // Field order matters: the context must go before its runtime.
    ctx: Context,
    _rt: Runtime,
    /// Milliseconds since `epoch` after which the running call is interrupted; 0: none.
    deadline: Arc<AtomicU64>,
}

/// What every engine is built from.
struct Program {
    source: String,
    params: Option<String>,
    name: String,
    epoch: Instant,
}

impl Program {
    /// A new engine with the prelude and script evaluated and `register` called. With `test`,
    /// also runs the script's `test()` when it has one.
    fn engine(&self, test: bool) -> Result<Engine, String> {
        let rt = Runtime::new().map_err(|e| format!("cannot start the JavaScript engine: {e}"))?;
        rt.set_memory_limit(MEMORY_LIMIT);
        rt.set_max_stack_size(STACK_LIMIT);
        let deadline = Arc::new(AtomicU64::new(0));
        let (d, epoch) = (deadline.clone(), self.epoch);
        rt.set_interrupt_handler(Some(Box::new(move || {
            let at = d.load(Ordering::Relaxed);
            at != 0 && epoch.elapsed().as_millis() as u64 >= at
        })));
        let ctx =
            Context::full(&rt).map_err(|e| format!("cannot start the JavaScript engine: {e}"))?;
        let name = self.name.clone();
        ctx.with(|ctx| -> Result<(), String> {
            let log = Function::new(ctx.clone(), move |level: String, msg: String| {
                match level.as_str() {
                    "error" => tracing::error!(processor = %name, "{msg}"),
                    "warn" => tracing::warn!(processor = %name, "{msg}"),
                    "debug" => tracing::debug!(processor = %name, "{msg}"),
                    _ => tracing::info!(processor = %name, "{msg}"),
                }
            })
            .map_err(|e| e.to_string())?;
            ctx.globals()
                .set("__skiff_log", log)
                .map_err(|e| e.to_string())?;
            ctx.eval::<(), _>(PRELUDE)
                .catch(&ctx)
                .map_err(|e| format!("prelude: {e}"))?;
            ctx.eval::<(), _>(self.source.as_str())
                .catch(&ctx)
                .map_err(|e| format!("the script does not load: {e}"))?;
            let globals = ctx.globals();
            let has = |f: &str| globals.get::<_, Function>(f).is_ok();
            if !has("process") {
                return Err("the script defines no `process(event)` function".into());
            }
            match (&self.params, has("register")) {
                (Some(p), true) => {
                    let parse: Function = ctx
                        .globals()
                        .get::<_, rquickjs::Object>("JSON")
                        .and_then(|j| j.get("parse"))
                        .map_err(|e| e.to_string())?;
                    let obj: rquickjs::Value = parse
                        .call((p.as_str(),))
                        .catch(&ctx)
                        .map_err(|e| e.to_string())?;
                    let register: Function = globals.get("register").map_err(|e| e.to_string())?;
                    register
                        .call::<_, ()>((obj,))
                        .catch(&ctx)
                        .map_err(|e| format!("register(params) failed: {e}"))?;
                }
                (Some(_), false) => {
                    return Err(
                        "`params` are set but the script defines no `register(params)` function"
                            .into(),
                    );
                }
                (None, true) => {
                    let register: Function = globals.get("register").map_err(|e| e.to_string())?;
                    register
                        .call::<_, ()>((
                            rquickjs::Object::new(ctx.clone()).map_err(|e| e.to_string())?,
                        ))
                        .catch(&ctx)
                        .map_err(|e| format!("register(params) failed: {e}"))?;
                }
                (None, false) => {}
            }
            if test && has("test") {
                let t: Function = globals.get("test").map_err(|e| e.to_string())?;
                t.call::<_, ()>(())
                    .catch(&ctx)
                    .map_err(|e| format!("the script's test() failed: {e}"))?;
            }
            Ok(())
        })?;
        Ok(Engine {
            ctx,
            _rt: rt,
            deadline,
        })
    }
}

struct Script {
    program: Program,
    pool: Mutex<Vec<Engine>>,
    max_cached: usize,
    timeout: Option<Duration>,
    tag_on_exception: String,
}

/// Reads the files of `file`/`files`, relative to `base`, globs expanded (sorted per pattern).
fn read_files(patterns: &[String], base: &Path) -> Result<String, String> {
    let mut out = String::new();
    for pat in patterns {
        let full: PathBuf = if Path::new(pat).is_absolute() {
            PathBuf::from(pat)
        } else {
            base.join(pat)
        };
        let text = full.to_string_lossy().into_owned();
        let mut paths: Vec<PathBuf> = glob::glob(&text)
            .map_err(|e| format!("bad file pattern `{pat}`: {e}"))?
            .filter_map(Result::ok)
            .collect();
        paths.sort();
        if paths.is_empty() {
            return Err(format!("no script file matches `{text}`"));
        }
        for p in paths {
            let s = std::fs::read_to_string(&p)
                .map_err(|e| format!("cannot read `{}`: {e}", p.display()))?;
            out.push_str(&s);
            out.push('\n');
        }
    }
    Ok(out)
}

fn build(node: &Node, ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    let cfg: Config = node.deserialize()?;
    if !matches!(cfg.lang.as_str(), "javascript" | "js") {
        return Err(error_at(
            node.get("lang").unwrap_or(node),
            format!("lang `{}` is not supported; use `javascript`", cfg.lang),
        )
        .into());
    }
    let mut patterns: Vec<String> = cfg.file.into_iter().collect();
    if let Some(f) = cfg.files {
        patterns.extend(f.into_vec());
    }
    let source = match (cfg.source, patterns.is_empty()) {
        (Some(s), true) => s,
        (None, false) => read_files(&patterns, &ctx.paths.config)
            .map_err(|e| error_at(node.get("file").or(node.get("files")).unwrap_or(node), e))?,
        (Some(_), false) => {
            return Err(error_at(node, "set either `source` or `file`/`files`, not both").into());
        }
        (None, true) => {
            return Err(error_at(node, "the script needs `source`, `file` or `files`").into());
        }
    };
    let name = match cfg.id.or(cfg.tag) {
        Some(id) => format!("script {id}"),
        None => "script".into(),
    };
    let params = cfg.params.map(|p| Value::Object(p).to_string());
    let program = Program {
        source,
        params,
        name,
        epoch: Instant::now(),
    };
    let first = program
        .engine(true)
        .map_err(|e| error_at(node, format!("{}: {e}", program.name)))?;
    Ok(Box::new(Script {
        program,
        pool: Mutex::new(vec![first]),
        max_cached: cfg.max_cached_sessions.max(1),
        timeout: cfg.timeout.map(|d| d.0),
        tag_on_exception: cfg.tag_on_exception,
    }))
}

/// What a call of `process` returned.
enum Outcome {
    Cancelled,
    Fields(String),
}

impl Script {
    fn take(&self) -> Result<Engine, String> {
        let pooled = self.pool.lock().ok().and_then(|mut p| p.pop());
        match pooled {
            Some(e) => Ok(e),
            None => self.program.engine(false),
        }
    }

    fn give_back(&self, e: Engine) {
        if let Ok(mut p) = self.pool.lock()
            && p.len() < self.max_cached
        {
            p.push(e);
        }
    }

    fn call(&self, engine: &Engine, json: &str) -> Result<Outcome, String> {
        let deadline = self.timeout.map_or(0, |t| {
            (self.program.epoch.elapsed() + t).as_millis().max(1) as u64
        });
        engine.deadline.store(deadline, Ordering::Relaxed);
        let result = engine.ctx.with(|ctx| {
            let f: Function = ctx
                .globals()
                .get("__skiff_process")
                .map_err(|e| e.to_string())?;
            let r: Option<String> = f.call((json,)).catch(&ctx).map_err(|e| {
                let s = e.to_string();
                if s.contains("interrupted") {
                    format!("timed out after {:?}", self.timeout.unwrap_or_default())
                } else {
                    s
                }
            })?;
            Ok(match r {
                None => Outcome::Cancelled,
                Some(s) => Outcome::Fields(s),
            })
        });
        engine.deadline.store(0, Ordering::Relaxed);
        result
    }
}

/// Writes the top-level fields that the script changed, added or removed.
fn apply(event: &mut Event, before: &Map, after: Map) {
    for k in before.keys() {
        if !after.contains_key(k) {
            match k.as_str() {
                "@timestamp" => {}
                "@metadata" => event.meta.clear(),
                "log" => {
                    event.offset = None;
                    event.remove(k);
                }
                _ => {
                    event.remove(k);
                }
            }
        }
    }
    for (k, v) in after {
        if before.get(&k) == Some(&v) {
            continue;
        }
        match k.as_str() {
            "@timestamp" => {
                if let Value::String(s) = &v
                    && let Some(t) = skiff_event::Timestamp::parse(s)
                {
                    event.timestamp = t;
                }
            }
            "@metadata" => {
                if let Value::Object(m) = v {
                    event.meta = m;
                }
            }
            _ => {
                if k == "log" {
                    event.offset = None;
                }
                event.remove(&k);
                event.insert(&k, v);
            }
        }
    }
}

impl Processor for Script {
    fn process(&self, event: &mut Event) -> Verdict {
        let before = match event.to_value(true) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let json = Value::Object(before.clone()).to_string();
        let outcome = self.take().and_then(|engine| {
            let r = self.call(&engine, &json);
            // An engine that timed out may be in the middle of anything: not reused.
            if r.as_ref().is_ok() {
                self.give_back(engine);
            }
            r
        });
        match outcome {
            Ok(Outcome::Cancelled) => Verdict::Drop,
            Ok(Outcome::Fields(s)) => {
                match serde_json::from_str::<Value>(&s) {
                    Ok(Value::Object(after)) => apply(event, &before, after),
                    _ => set_error(
                        event,
                        format!(
                            "{}: process left the event in a form that cannot be read back",
                            self.program.name
                        ),
                    ),
                }
                Verdict::Keep
            }
            Err(e) => {
                if !self.tag_on_exception.is_empty() {
                    add_tag(event, "tags", &self.tag_on_exception);
                }
                set_error(
                    event,
                    format!("{}: failed in process function: {e}", self.program.name),
                );
                Verdict::Keep
            }
        }
    }
}

#[cfg(test)]
mod tests;
