//! The `journald` input: entries of the systemd journal, of this machine or of given journal
//! files and directories, as Filebeat's `type: journald`.
//!
//! Where it sits: an input of the pipeline (**input** -> processors -> queue -> output). The
//! journal is read through `journalctl -o json --follow` run as a child process: the journal
//! file format (hash tables, compression, sealing, rotation) is systemd's own and changes
//! between versions, and no maintained crate reads it without linking libsystemd. journalctl
//! is on every machine that has a journal, understands every version of it, and its JSON
//! output is documented (systemd.journal-fields(7), "Journal JSON Format").
//!
//! # Acknowledgement contract
//!
//! Every entry carries its journal cursor. An entry's event is tokened on one
//! [`AckStream`]; when the acknowledged prefix moves, the cursor of its last entry is written
//! to `<path.data>/journald/<id>.cursor` (at most once a second, and at stop). After a restart
//! (`seek: cursor`, the default) reading resumes *after* that cursor, so an entry is delivered
//! at least once: entries read but not acknowledged when skiff stopped are read again. While
//! the output is down the pipeline's queue fills and the input stops reading journalctl's
//! output; the journal itself keeps the entries (up to its own retention).
//!
//! # Events
//!
//! `message` (MESSAGE), `@timestamp` (`__REALTIME_TIMESTAMP`), and Filebeat's fields:
//! `journald.{host,process,...}` equivalents in ECS: `host.hostname` (`_HOSTNAME`),
//! `host.boot_id`, `process.pid`, `process.name` (`_COMM`), `process.executable`,
//! `process.command_line`, `user.id`, `user.group.id`, `systemd.unit`, `systemd.user_unit`,
//! `systemd.slice`, `systemd.cgroup`, `systemd.transport`, `log.syslog.priority`,
//! `log.syslog.facility.code`, `log.syslog.identifier`, `log.syslog.pid`, and every other
//! field under `journald.custom.<lowercased name>`. Binary values become text (invalid UTF-8
//! replaced).

#![deny(missing_docs)]

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use skiff_config::{ConfigError, ConfigErrors, Node, NodeValue};
use skiff_event::{AckStream, Event, Map, Timestamp, Value};
use skiff_metrics::names;
use skiff_pipeline::{Failure, FailureKind, Input, InputCommon, InputContext, InputPlugin};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// `type: journald`.
pub static PLUGIN: InputPlugin = InputPlugin {
    name: "journald",
    agent_type: "filebeat",
    build,
};

/// Where to start reading.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Seek {
    /// From the oldest entry.
    Head,
    /// From new entries only.
    Tail,
    /// After the saved cursor (the default); without one, `cursor_seek_fallback`.
    #[default]
    Cursor,
}

/// The input's settings (Filebeat's names).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournaldConfig {
    /// `paths`: journal files or directories to read. Default: this machine's journal.
    #[serde(default)]
    pub paths: Vec<String>,
    /// `seek`: `head`, `tail` or `cursor`. Default `cursor`.
    #[serde(default)]
    pub seek: Seek,
    /// `cursor_seek_fallback`: where `seek: cursor` starts without a saved cursor, `head` or
    /// `tail`. Default `head`.
    #[serde(default = "head")]
    pub cursor_seek_fallback: Seek,
    /// `units`: only entries of these systemd units (`journalctl --unit`). Default all.
    #[serde(default)]
    pub units: Vec<String>,
    /// `syslog_identifiers`: only entries with these SYSLOG_IDENTIFIERs. Default all.
    #[serde(default)]
    pub syslog_identifiers: Vec<String>,
    /// `transports`: only entries that came by these `_TRANSPORT`s (`journal`, `syslog`,
    /// `kernel`, `stdout`, ...). Default all.
    #[serde(default)]
    pub transports: Vec<String>,
    /// `include_matches`: `FIELD=value` matches (a list, or `{match: [...]}` as Filebeat 8
    /// writes it); the same field ORs, different fields AND (journalctl's rules). Default none.
    #[serde(skip)]
    pub include_matches: Vec<String>,
    /// `journalctl` (skiff): the journalctl binary. Default `journalctl` from `PATH`.
    #[serde(default = "journalctl")]
    pub journalctl: String,
    /// `max_message_size` (skiff): the longest entry (as JSON) read; longer ones are skipped
    /// and logged. Default 10MiB.
    #[serde(default = "ten_mib")]
    pub max_message_size: skiff_config::ByteSize,
}

fn head() -> Seek {
    Seek::Head
}
fn journalctl() -> String {
    "journalctl".into()
}
fn ten_mib() -> skiff_config::ByteSize {
    skiff_config::ByteSize(10 << 20)
}

fn at(node: &Node, key: &str, msg: impl Into<String>) -> ConfigError {
    let n = node.get(key).unwrap_or(node);
    ConfigError::new(n.path().to_owned(), n.mark.clone(), msg.into())
}

fn build(
    node: &Node,
    common: &InputCommon,
    _: &skiff_pipeline::BuildContext,
) -> Result<Box<dyn Input>, ConfigErrors> {
    let mut own = node.clone();
    let matches = own.remove("include_matches");
    let mut errs = Vec::new();
    let cfg: Option<JournaldConfig> = own.deserialize().map_err(|e| errs.push(e)).ok();
    let include = match matches {
        None => Vec::new(),
        Some(m) => {
            let list = match &m.value {
                NodeValue::Map(_) => m.get("match").cloned(),
                _ => Some(m.clone()),
            };
            match list.map(|l| l.deserialize::<Vec<String>>()) {
                Some(Ok(v)) => v,
                Some(Err(e)) => {
                    errs.push(e);
                    Vec::new()
                }
                None => Vec::new(),
            }
        }
    };
    for m in &include {
        if !m.contains('=') || m.starts_with('=') {
            errs.push(at(
                node,
                "include_matches",
                format!("{m:?} is not a FIELD=value match"),
            ));
        }
    }
    if let Some(c) = &cfg
        && c.cursor_seek_fallback == Seek::Cursor
    {
        errs.push(at(node, "cursor_seek_fallback", "must be head or tail"));
    }
    match cfg {
        Some(mut cfg) if errs.is_empty() => {
            cfg.include_matches = include;
            Ok(Box::new(JournaldInput {
                cfg,
                id: common.id.clone(),
            }))
        }
        _ => Err(ConfigErrors(errs)),
    }
}

/// A built journald input.
pub struct JournaldInput {
    cfg: JournaldConfig,
    /// The configured `id`: names the cursor file (the input's position otherwise).
    id: Option<String>,
}

impl JournaldInput {
    /// journalctl's arguments to start after `cursor` (or by `seek`).
    pub fn args(&self, cursor: Option<&str>) -> Vec<String> {
        let c = &self.cfg;
        let mut a: Vec<String> = ["-o", "json", "--all", "--no-pager", "--follow"]
            .map(String::from)
            .to_vec();
        for p in &c.paths {
            if Path::new(p).is_dir() {
                a.push(format!("--directory={p}"));
            } else {
                a.push(format!("--file={p}"));
            }
        }
        let seek = match (c.seek, cursor) {
            (Seek::Cursor, Some(cur)) => {
                a.push(format!("--after-cursor={cur}"));
                Seek::Head
            }
            (Seek::Cursor, None) => c.cursor_seek_fallback,
            (s, _) => s,
        };
        match seek {
            Seek::Tail => a.push("--lines=0".into()),
            _ => a.push("--no-tail".into()),
        }
        for u in &c.units {
            a.push(format!("--unit={u}"));
        }
        for i in &c.syslog_identifiers {
            a.push(format!("--identifier={i}"));
        }
        for t in &c.transports {
            a.push(format!("_TRANSPORT={t}"));
        }
        a.extend(c.include_matches.iter().cloned());
        a
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Saves `cursor` atomically (temporary file, then rename).
fn save_cursor(path: &Path, cursor: &str) -> std::io::Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let tmp = path.with_extension("cursor.tmp");
    std::fs::write(&tmp, cursor)?;
    std::fs::rename(&tmp, path)
}

#[async_trait]
impl Input for JournaldInput {
    async fn run(self: Box<Self>, ctx: InputContext) -> Result<(), Failure> {
        let id = self.id.clone().unwrap_or_else(|| ctx.id.clone());
        let file_name: String = id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let cursor_file = ctx
            .build
            .paths
            .data
            .join("journald")
            .join(format!("{file_name}.cursor"));
        let saved = std::fs::read_to_string(&cursor_file)
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        let args = self.args(saved.as_deref());
        tracing::info!(input = %ctx.id, journalctl = %self.cfg.journalctl, ?args, "journald input starting");
        let mut child = Command::new(&self.cfg.journalctl)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                Failure::io(
                    format!(
                        "journald input {}: cannot run {}",
                        ctx.id, self.cfg.journalctl
                    ),
                    &e,
                )
            })?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(Failure::new(FailureKind::Other, "journalctl without pipes"));
        };
        let errors = tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            let mut last = String::new();
            while let Ok(Some(l)) = lines.next_line().await {
                tracing::warn!("journalctl: {l}");
                last = l;
            }
            last
        });
        let stream = AckStream::new();
        let pending: Arc<Mutex<VecDeque<(u64, String)>>> = Arc::default();
        let saver = tokio::spawn(save_loop(
            stream.clone(),
            pending.clone(),
            cursor_file.clone(),
        ));
        {
            let (s, f) = (stream.clone(), cursor_file.clone());
            ctx.build.status.register(&ctx.id, move || {
                let p = s.progress();
                serde_json::json!({"type": "journald", "cursor_file": f.display().to_string(),
                    "read": p.published, "acked": p.acked})
            });
        }
        let label = [("input", ctx.id.as_str())];
        let events = ctx.build.metrics.counter_with(&names::INPUT_EVENTS, &label);
        let bytes = ctx.build.metrics.counter_with(&names::INPUT_BYTES, &label);
        let max = usize::try_from(self.cfg.max_message_size.0).unwrap_or(usize::MAX);
        let mut reader = BufReader::with_capacity(256 << 10, stdout);
        let mut line = Vec::new();
        let mut position = 0u64;
        let ended = loop {
            let got = tokio::select! {
                r = read_line(&mut reader, &mut line, max) => r,
                _ = ctx.shutdown.cancelled() => break None,
            };
            match got {
                Ok(Line::Eof) => break Some(()),
                Ok(Line::TooLong) => {
                    tracing::warn!(input = %ctx.id, max, "journald entry over max_message_size skipped");
                    continue;
                }
                Ok(Line::Full) => {}
                Err(e) => {
                    return Err(Failure::io(
                        format!("journald input {}: reading journalctl", ctx.id),
                        &e,
                    ));
                }
            }
            bytes.add(line.len() as u64);
            let Ok(entry) = serde_json::from_slice::<Map>(&line) else {
                tracing::warn!(input = %ctx.id, "journalctl wrote a line that is not a JSON object; skipped");
                continue;
            };
            let Some((ev, cursor)) = to_event(entry, &ctx.shared) else {
                continue;
            };
            position += 1;
            let mut ev = ev;
            ev.ack = Some(stream.token(position));
            lock(&pending).push_back((position, cursor));
            events.inc();
            let ok = tokio::select! {
                r = ctx.publisher.publish(ev) => r.is_ok(),
                _ = ctx.shutdown.cancelled() => false,
            };
            if !ok {
                break None;
            }
        };
        let deadline = tokio::time::Instant::now() + ctx.publisher.shutdown_timeout();
        stream.wait_all_acked(deadline).await;
        saver.abort();
        save_acked(&stream, &pending, &cursor_file);
        let _ = child.start_kill();
        if ended.is_some() {
            // journalctl ended by itself: with --follow that is an error (bad path, cursor).
            let status = child.wait().await.ok();
            let why = errors.await.unwrap_or_default();
            if !status.is_some_and(|s| s.success()) {
                return Err(Failure::new(
                    FailureKind::Other,
                    format!(
                        "journald input {}: journalctl stopped ({status:?}): {why}",
                        ctx.id
                    ),
                ));
            }
        }
        Ok(())
    }

    fn replays_unacked(&self) -> bool {
        self.cfg.seek == Seek::Cursor
    }
}

/// Writes the cursor of the last acknowledged entry, if it moved.
fn save_acked(stream: &AckStream, pending: &Mutex<VecDeque<(u64, String)>>, file: &Path) -> bool {
    let Some(acked) = stream.acked_position() else {
        return false;
    };
    let mut last = None;
    {
        let mut q = lock(pending);
        while q.front().is_some_and(|(p, _)| *p <= acked) {
            last = q.pop_front();
        }
    }
    match last {
        Some((_, cursor)) => {
            if let Err(e) = save_cursor(file, &cursor) {
                tracing::warn!(file = %file.display(), error = %e, "cannot save the journald cursor");
            }
            true
        }
        None => false,
    }
}

async fn save_loop(
    stream: Arc<AckStream>,
    pending: Arc<Mutex<VecDeque<(u64, String)>>>,
    file: PathBuf,
) {
    loop {
        save_acked(&stream, &pending, &file);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

enum Line {
    Full,
    TooLong,
    Eof,
}

/// Reads one line into `out` (without its newline), never holding more than `max` bytes.
async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    out: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Line> {
    out.clear();
    let mut too_long = false;
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if out.is_empty() && !too_long {
                Line::Eof
            } else if too_long {
                Line::TooLong
            } else {
                Line::Full
            });
        }
        let (take, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (i, true),
            None => (buf.len(), false),
        };
        if !too_long {
            if out.len() + take > max {
                too_long = true;
                out.clear();
            } else {
                out.extend_from_slice(&buf[..take]);
            }
        }
        r.consume(take + usize::from(done));
        if done {
            return Ok(if too_long { Line::TooLong } else { Line::Full });
        }
    }
}

/// A journal field's value as text: strings as they are, byte arrays (binary or non-UTF-8
/// fields) decoded, several values as an array.
fn text(v: Value) -> Value {
    match v {
        Value::Array(items) if items.iter().all(|i| i.is_u64()) => {
            let bytes: Vec<u8> = items
                .iter()
                .filter_map(|i| i.as_u64())
                .map(|b| b as u8)
                .collect();
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(text).collect()),
        other => other,
    }
}

fn number(v: &Value) -> Option<Value> {
    v.as_str()
        .and_then(|s| s.parse::<i64>().ok())
        .map(Value::from)
}

/// The event of one entry, and its cursor; `None` for an entry without a cursor.
pub fn to_event(mut entry: Map, shared: &Arc<Map>) -> Option<(Event, String)> {
    let cursor = match entry.remove("__CURSOR") {
        Some(Value::String(c)) => c,
        _ => return None,
    };
    let message = match entry.remove("MESSAGE").map(text) {
        Some(Value::String(s)) => s,
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let ts = entry
        .remove("__REALTIME_TIMESTAMP")
        .and_then(|v| v.as_str().and_then(|s| s.parse::<i64>().ok()))
        .map(|us| Timestamp(us.saturating_mul(1000)))
        .unwrap_or_else(Timestamp::now);
    let mut ev = Event::new_at(ts, shared.clone(), message);
    entry.remove("__MONOTONIC_TIMESTAMP");
    entry.remove("__SEQNUM");
    entry.remove("__SEQNUM_ID");
    // (journal field, event path, as a number)
    const MAP: &[(&str, &str, bool)] = &[
        ("_HOSTNAME", "host.hostname", false),
        ("_BOOT_ID", "host.boot_id", false),
        ("_PID", "process.pid", true),
        ("_COMM", "process.name", false),
        ("_EXE", "process.executable", false),
        ("_CMDLINE", "process.command_line", false),
        ("_UID", "user.id", false),
        ("_GID", "user.group.id", false),
        ("_SYSTEMD_UNIT", "systemd.unit", false),
        ("_SYSTEMD_USER_UNIT", "systemd.user_unit", false),
        ("_SYSTEMD_SLICE", "systemd.slice", false),
        ("_SYSTEMD_CGROUP", "systemd.cgroup", false),
        ("_TRANSPORT", "systemd.transport", false),
        ("PRIORITY", "log.syslog.priority", true),
        ("SYSLOG_FACILITY", "log.syslog.facility.code", true),
        ("SYSLOG_IDENTIFIER", "log.syslog.identifier", false),
        ("SYSLOG_PID", "log.syslog.pid", true),
    ];
    for (field, path, numeric) in MAP {
        if let Some(v) = entry.remove(*field) {
            let v = text(v);
            let v = if *numeric { number(&v).unwrap_or(v) } else { v };
            ev.insert(path, v);
        }
    }
    if !entry.is_empty() {
        let custom: Map = entry
            .into_iter()
            .map(|(k, v)| (k.trim_start_matches('_').to_ascii_lowercase(), text(v)))
            .collect();
        ev.insert("journald.custom", Value::Object(custom));
    }
    Some((ev, cursor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entry_fields() {
        let e = json!({"__CURSOR": "c1", "__REALTIME_TIMESTAMP": "1733480000000000", "MESSAGE": "hi",
            "PRIORITY": "4", "_PID": "42", "_SYSTEMD_UNIT": "a.service", "_HOSTNAME": "box",
            "MY_FIELD": [104, 105], "CODE_LINE": "7"});
        let (ev, cursor) = to_event(e.as_object().unwrap().clone(), &Arc::new(Map::new())).unwrap();
        assert_eq!(cursor, "c1");
        let v = ev.to_value(false);
        assert_eq!(v["@timestamp"], "2024-12-06T10:13:20.000Z");
        assert_eq!(v["message"], "hi");
        assert_eq!(v["log"]["syslog"]["priority"], 4);
        assert_eq!(v["process"]["pid"], 42);
        assert_eq!(v["systemd"]["unit"], "a.service");
        assert_eq!(v["host"]["hostname"], "box");
        assert_eq!(
            v["journald"]["custom"],
            json!({"my_field": "hi", "code_line": "7"})
        );
    }

    #[test]
    fn arguments() {
        let n = skiff_config::parse_str("paths: [/nonexistent/x.journal]\nunits: [a.service]\ninclude_matches.match: ['_UID=0']", None).unwrap();
        let mut own = n.clone();
        own.remove("include_matches");
        let mut cfg: JournaldConfig = own.deserialize().unwrap();
        cfg.include_matches = vec!["_UID=0".into()];
        let i = JournaldInput { cfg, id: None };
        let a = i.args(None);
        assert!(a.contains(&"--file=/nonexistent/x.journal".to_string()));
        assert!(a.contains(&"--no-tail".to_string()));
        assert!(a.contains(&"--unit=a.service".to_string()));
        assert!(a.contains(&"_UID=0".to_string()));
        let a = i.args(Some("s=1"));
        assert!(a.contains(&"--after-cursor=s=1".to_string()));
    }

    #[tokio::test]
    async fn long_lines_are_skipped_without_holding_them() {
        let data: &[u8] = b"short\nthis one is far too long\nok\nlast";
        let mut r = BufReader::with_capacity(4, data);
        let mut line = Vec::new();
        let mut got = Vec::new();
        loop {
            match read_line(&mut r, &mut line, 8).await.unwrap() {
                Line::Eof => break,
                Line::TooLong => got.push("<long>".to_string()),
                Line::Full => got.push(String::from_utf8(line.clone()).unwrap()),
            }
        }
        assert_eq!(got, ["short", "<long>", "ok", "last"]);
    }
}
