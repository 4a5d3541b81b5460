//! `add_process_metadata`: facts about a process whose PID an event carries (libbeat's), read
//! from `/proc` with the `procfs` crate.
//!
//! ```yaml
//! - add_process_metadata:
//!     match_pids: [process.pid]
//! ```
//!
//! The first field of `match_pids` that holds a PID of a running process wins; the event gets
//! `process.name`, `process.title`, `process.executable`, `process.args`, `process.pid`,
//! `process.parent.pid`, `process.start` and `process.owner.{id,name}` (under `target`), and
//! `container.id` when the process runs in a container. Existing fields are kept unless
//! `overwrite_keys`. A PID that is not running (or a field that is missing) adds nothing and is
//! no error, as libbeat's `ignore_missing: true` default. Lookups are cached per PID for
//! 30 seconds, at most [`CACHE_MAX`] PIDs, so a busy source does not read `/proc` per event.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;
use skiff_config::{ConfigErrors, Node};
use skiff_event::{Event, Map, Value};
use skiff_pipeline::{BuildContext, Processor, Verdict};

use crate::fields::{OneOrMany, leaves};
use crate::{error_at, plugin, set_error, yes};

plugin!(ADD_PROCESS_METADATA, "add_process_metadata", build);

/// The most PIDs cached.
pub const CACHE_MAX: usize = 4096;
const TTL: Duration = Duration::from_secs(30);

/// `add_process_metadata`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `match_pids`: fields that may hold the PID, tried in order. Required.
    match_pids: OneOrMany,
    /// `target`: prefix of the added fields. Default `""` (the root).
    #[serde(default)]
    target: String,
    /// `include_fields`: only these of the added fields (`process.name`, ...). Default all.
    #[serde(default)]
    include_fields: Option<OneOrMany>,
    /// `overwrite_keys`: replace fields the event has. Default false.
    #[serde(default)]
    overwrite_keys: bool,
    /// `ignore_missing`: no error when no `match_pids` field is there. Default true.
    #[serde(default = "yes")]
    ignore_missing: bool,
    /// `restricted_fields`: accepted; environment variables are never added. Default false.
    #[serde(default)]
    #[allow(dead_code)]
    restricted_fields: bool,
    /// `host_path`: the root under which `/proc` is read. Default `/`.
    #[serde(default = "slash")]
    host_path: String,
    /// `cgroup_prefixes`: accepted for compatibility; the container id is found in any cgroup
    /// path.
    #[serde(default)]
    #[allow(dead_code)]
    cgroup_prefixes: Option<OneOrMany>,
}

fn slash() -> String {
    "/".into()
}

struct ProcessMetadata {
    pids: Vec<String>,
    target: String,
    include: Vec<String>,
    overwrite: bool,
    ignore_missing: bool,
    proc_root: std::path::PathBuf,
    cache: Mutex<HashMap<i32, (Instant, Option<Map>)>>,
}

fn build(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    let cfg: Config = node.deserialize()?;
    let pids = cfg.match_pids.into_vec();
    if pids.is_empty() {
        return Err(error_at(
            node,
            "`match_pids` needs at least one field, like `process.pid`",
        )
        .into());
    }
    Ok(Box::new(ProcessMetadata {
        pids,
        target: cfg.target,
        include: cfg
            .include_fields
            .map(OneOrMany::into_vec)
            .unwrap_or_default(),
        overwrite: cfg.overwrite_keys,
        ignore_missing: cfg.ignore_missing,
        proc_root: std::path::Path::new(&cfg.host_path).join("proc"),
        cache: Mutex::new(HashMap::new()),
    }))
}

/// The user name of a uid, from `/etc/passwd`.
fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id = f.nth(1)?;
        (id.parse::<u32>().ok()? == uid).then(|| name.to_owned())
    })
}

/// A 64-hex-digit container id in the process's cgroup paths.
fn container_id(cgroup: &str) -> Option<String> {
    cgroup.lines().find_map(|l| {
        l.split(['/', '-', '.', ':'])
            .find(|w| w.len() == 64 && w.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_owned)
    })
}

/// What `/proc/<pid>` tells, as `{process: {...}, container: {...}}`; `None` if not running.
fn read_process(root: &std::path::Path, pid: i32) -> Option<Map> {
    let p = procfs::process::Process::new_with_root(root.join(pid.to_string())).ok()?;
    let stat = p.stat().ok()?;
    let mut proc = Map::new();
    proc.insert("pid".into(), Value::from(pid));
    proc.insert("name".into(), Value::String(stat.comm.clone()));
    let mut parent = Map::new();
    parent.insert("pid".into(), Value::from(stat.ppid));
    proc.insert("parent".into(), Value::Object(parent));
    if let Ok(args) = p.cmdline()
        && !args.is_empty()
    {
        proc.insert("title".into(), Value::String(args.join(" ")));
        proc.insert(
            "args".into(),
            Value::Array(args.into_iter().map(Value::String).collect()),
        );
    }
    if let Ok(exe) = p.exe() {
        proc.insert(
            "executable".into(),
            Value::String(exe.to_string_lossy().into_owned()),
        );
    }
    if let Ok(boot) = procfs::boot_time_secs() {
        let ticks = procfs::ticks_per_second().max(1);
        let ms = boot as i64 * 1000 + (stat.starttime * 1000 / ticks) as i64;
        let ts = skiff_event::Timestamp(ms.saturating_mul(1_000_000));
        proc.insert("start".into(), Value::String(ts.to_rfc3339_millis()));
    }
    if let Ok(uid) = p.uid() {
        let mut owner = Map::new();
        owner.insert("id".into(), Value::String(uid.to_string()));
        if let Some(n) = user_name(uid) {
            owner.insert("name".into(), Value::String(n));
        }
        proc.insert("owner".into(), Value::Object(owner));
    }
    let mut out = Map::new();
    out.insert("process".into(), Value::Object(proc));
    if let Some(id) = std::fs::read_to_string(root.join(pid.to_string()).join("cgroup"))
        .ok()
        .as_deref()
        .and_then(container_id)
    {
        let mut c = Map::new();
        c.insert("id".into(), Value::String(id));
        out.insert("container".into(), Value::Object(c));
    }
    Some(out)
}

impl ProcessMetadata {
    fn lookup(&self, pid: i32) -> Option<Map> {
        let now = Instant::now();
        if let Ok(c) = self.cache.lock()
            && let Some((at, v)) = c.get(&pid)
            && now.duration_since(*at) < TTL
        {
            return v.clone();
        }
        let v = read_process(&self.proc_root, pid);
        if let Ok(mut c) = self.cache.lock() {
            if c.len() >= CACHE_MAX {
                c.retain(|_, (at, _)| now.duration_since(*at) < TTL);
                if c.len() >= CACHE_MAX {
                    c.clear();
                }
            }
            c.insert(pid, (now, v.clone()));
        }
        v
    }
}

impl Processor for ProcessMetadata {
    fn process(&self, event: &mut Event) -> Verdict {
        let pid = self.pids.iter().find_map(|f| {
            let v = event.get(f)?.to_value();
            match v {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            }
            .and_then(|n| i32::try_from(n).ok())
            .filter(|n| *n > 0)
        });
        let Some(pid) = pid else {
            if !self.ignore_missing {
                set_error(
                    event,
                    format!(
                        "add_process_metadata: none of the fields {} holds a PID",
                        self.pids.join(", ")
                    ),
                );
            }
            return Verdict::Keep;
        };
        let Some(info) = self.lookup(pid) else {
            return Verdict::Keep;
        };
        let mut flat = Vec::new();
        leaves(&self.target, &info, &mut flat);
        for (path, v) in flat {
            let rel = path
                .strip_prefix(&format!("{}.", self.target))
                .unwrap_or(&path);
            if !self.include.is_empty()
                && !self
                    .include
                    .iter()
                    .any(|i| rel == i || rel.starts_with(&format!("{i}.")))
            {
                continue;
            }
            if self.overwrite || event.get(&path).is_none() {
                event.insert(&path, v);
            }
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use crate::testing::*;
    use serde_json::json;

    /// Filebeat's documentation example, on a real child process.
    #[test]
    fn real_process() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        // Until the child has exec'd `sleep`, /proc shows the forked test process.
        let cmdline = format!("/proc/{}/cmdline", child.id());
        for _ in 0..500 {
            if std::fs::read(&cmdline).is_ok_and(|c| c.starts_with(b"sleep\0")) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let p = build("processors:\n  - add_process_metadata:\n      match_pids: [process.pid]\n")
            .unwrap();
        let mut ev = event("m");
        ev.insert("process.pid", json!(child.id()));
        let v = json(&run(&p, ev).unwrap());
        child.kill().unwrap();
        let _ = child.wait();
        let pr = &v["process"];
        assert_eq!(pr["name"], "sleep");
        assert_eq!(pr["args"], json!(["sleep", "30"]));
        assert_eq!(pr["title"], "sleep 30");
        assert!(
            pr["executable"].as_str().unwrap().ends_with("sleep"),
            "{pr}"
        );
        assert_eq!(pr["parent"]["pid"], std::process::id());
        let uid = std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_owned();
        assert_eq!(pr["owner"]["id"], uid);
        let start = skiff_event::Timestamp::parse(pr["start"].as_str().unwrap()).unwrap();
        let age = skiff_event::Timestamp::now().0 - start.0;
        assert!(
            (-2_000_000_000..60_000_000_000).contains(&age),
            "started {age} ns ago"
        );

        // Target, include_fields, a PID in a string, the second field of match_pids.
        let p = build("processors: [{add_process_metadata: {match_pids: [nope, pid], target: t, include_fields: [process.name]}}]").unwrap();
        let mut ev = event("m");
        ev.insert("pid", json!(std::process::id().to_string()));
        let v = json(&run(&p, ev).unwrap());
        assert_eq!(
            v["t"]["process"]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["name"]
        );
        // Not running, missing: nothing, no error unless ignore_missing: false.
        let p = build("processors: [{add_process_metadata: {match_pids: [process.pid]}}]").unwrap();
        let mut ev = event("m");
        ev.insert("process.pid", json!(i32::MAX));
        let v = json(&run(&p, ev).unwrap());
        assert!(v["process"].get("name").is_none() && v.get("error").is_none());
        let p = build("processors: [{add_process_metadata: {match_pids: [process.pid], ignore_missing: false}}]").unwrap();
        assert!(
            json(&run(&p, event("m")).unwrap())["error"]["message"]
                .as_str()
                .unwrap()
                .contains("holds a PID")
        );
    }

    #[test]
    fn container_ids() {
        let id = "2fb1ae4a3c5d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f";
        assert_eq!(
            super::container_id(&format!("0::/system.slice/docker-{id}.scope")).as_deref(),
            Some(id)
        );
        assert_eq!(
            super::container_id(&format!("12:cpu:/kubepods/burstable/pod1/{id}")).as_deref(),
            Some(id)
        );
        assert_eq!(super::container_id("0::/user.slice/session-2.scope"), None);
    }
}
