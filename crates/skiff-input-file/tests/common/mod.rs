//! A file input running on a real memory queue, with an output that collects what it gets.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;
use skiff_config::{Node, NodeValue};
use skiff_event::{Event, Map};
use skiff_pipeline::queue::memory::{FlushConfig, MemoryQueue, MemoryQueueConfig};
use skiff_pipeline::{
    BuildContext, InputCommon, Outcome, Output, OutputSet, OutputSettings, Queue,
};
use skiff_topology::{Drain, InputSpec, State, Topology};

pub fn ctx(data: &Path) -> BuildContext {
    let mut ctx = BuildContext::standalone("h", "0.0.0", &skiff_metrics::Registry::new());
    ctx.paths.data = data.to_path_buf();
    ctx
}

/// The output: records every event it is sent (as JSON); can be paused (fails every send).
#[derive(Clone, Default)]
pub struct Collect {
    pub events: Arc<Mutex<Vec<Value>>>,
    pub paused: Arc<AtomicBool>,
}

#[async_trait]
impl Output for Collect {
    async fn send(&mut self, events: &[Event]) -> Result<Outcome, skiff_pipeline::Failure> {
        if self.paused.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            return Err(skiff_pipeline::Failure::new(
                skiff_pipeline::FailureKind::Connect,
                "paused",
            ));
        }
        let mut g = self.events.lock().unwrap();
        for e in events {
            g.push(e.to_value(false));
        }
        Ok(Outcome::delivered())
    }
    fn describe(&self) -> String {
        "collect".into()
    }
}

/// Splits an input's YAML into the common settings and the input's own, as the binary does.
pub fn split(yaml: &str) -> (Node, InputCommon) {
    let root = skiff_config::parse_str(yaml, Some("test.yml")).unwrap();
    let mut rest = root.clone();
    let mut common_entries = Vec::new();
    for key in InputCommon::KEYS {
        if let Some(n) = rest.remove(key) {
            common_entries.push(((*key).to_owned(), n));
        }
    }
    let common_node = Node::new(NodeValue::Map(common_entries), root.mark.clone());
    let common: InputCommon = common_node.deserialize().unwrap();
    (rest, common)
}

/// An input in a real pipeline ([`Topology`]): memory queue, one collecting output worker.
pub struct Running {
    pub out: Collect,
    pub ctx: BuildContext,
    /// The input's id (its health is `input/<id>`).
    pub id: String,
    pub pipeline: skiff_topology::Running,
}

/// Builds and runs an input from YAML (`$DIR` is replaced by `logs`), collecting its events.
pub fn start(yaml: &str, logs: &Path, data: &Path) -> Running {
    start_with(yaml, logs, data, Collect::default())
}

pub fn start_with(yaml: &str, logs: &Path, data: &Path, out: Collect) -> Running {
    start_opts(yaml, logs, data, out, Duration::from_secs(5))
}

pub fn start_opts(
    yaml: &str,
    logs: &Path,
    data: &Path,
    out: Collect,
    shutdown_timeout: Duration,
) -> Running {
    let yaml = yaml.replace("$DIR", logs.to_str().unwrap());
    let (node, common) = split(&yaml);
    let ctx = ctx(data);
    let plugin = if common.kind == "log" {
        &skiff_input_file::LOG
    } else {
        &skiff_input_file::FILESTREAM
    };
    let id = common.id.clone().unwrap_or_else(|| "log-0".into());
    let input = InputSpec::from_plugin(id.clone(), plugin, node, common, &ctx)
        .unwrap_or_else(|e| panic!("{e}"));
    let qcfg = MemoryQueueConfig {
        events: 512,
        flush: FlushConfig {
            min_events: 1,
            timeout: skiff_config::Duration(Duration::ZERO),
        },
        ..MemoryQueueConfig::default()
    };
    let queue: Arc<dyn Queue> = Arc::new(MemoryQueue::new(qcfg, &ctx.metrics, &ctx.budget));
    let output = OutputSet {
        clients: vec![Box::new(out.clone())],
        settings: OutputSettings {
            bulk_max_size: 256,
            backoff_init: Duration::from_millis(10),
            backoff_max: Duration::from_millis(20),
            ..OutputSettings::default()
        },
    };
    let pipeline = Topology::builder(ctx.clone())
        .queue(queue, false)
        .output("collect", output)
        .input(input)
        .shutdown_timeout(shutdown_timeout)
        .build()
        .start_sync();
    Running {
        out,
        ctx,
        id,
        pipeline,
    }
}

impl Running {
    /// Stops the input, then drops whatever the output still holds (it was never delivered).
    pub async fn stop_abort(self) -> Vec<Value> {
        self.stop_with(Drain::For(Duration::ZERO)).await
    }

    /// Stops the input (state saved), then the output once it has sent everything.
    pub async fn stop(self) -> Vec<Value> {
        self.stop_with(Drain::Fully).await
    }

    /// Stops in the topology's order; panics if the input did not stop cleanly or had failed
    /// (and was restarted) at any point: the tests expect an input that never fails.
    async fn stop_with(self, drain: Drain) -> Vec<Value> {
        let health = self.pipeline.health();
        let interrupt = async move {
            if drain == Drain::Fully {
                std::future::pending::<()>().await
            }
        };
        let report = self.pipeline.stop(drain, interrupt).await;
        assert!(
            !report.inputs_aborted,
            "the input did not stop within shutdown_timeout"
        );
        let h = health.get(&format!("input/{}", self.id)).unwrap();
        assert!(
            h.restarts == 0
                && h.last_error.is_none()
                && matches!(h.state, State::Stopped | State::Ended),
            "the input failed: {h:?}"
        );
        self.out.events.lock().unwrap().clone()
    }

    pub fn events(&self) -> Vec<Value> {
        self.out.events.lock().unwrap().clone()
    }

    pub fn messages(&self) -> Vec<String> {
        self.events()
            .iter()
            .map(|e| e["message"].as_str().unwrap_or("").to_owned())
            .collect()
    }

    /// Waits (up to 30 s, a safety net, not a timing assertion) until `f` holds.
    pub async fn wait_for(&self, what: &str, f: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if f(&self.events()) {
                return;
            }
            if Instant::now() > deadline {
                let ev = self.events();
                panic!(
                    "timed out waiting for {what}; got {} events, last: {:?}",
                    ev.len(),
                    ev.last()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn wait_count(&self, n: usize) {
        self.wait_for(&format!("{n} events"), |e| e.len() >= n)
            .await
    }

    pub fn status(&self) -> Value {
        self.ctx
            .status
            .snapshot()
            .into_values()
            .next()
            .unwrap_or(Value::Null)
    }

    /// Waits until the status says `f` for the file at `path`.
    pub async fn wait_status(&self, path: &Path, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        let p = path.to_string_lossy().into_owned();
        loop {
            let st = self.status();
            if let Some(file) = st["files"]
                .as_array()
                .and_then(|a| a.iter().find(|f| f["path"] == p.as_str()))
                && f(file)
            {
                return file.clone();
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what} of {p}; status: {st}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

pub fn append(path: &Path, data: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(data).unwrap();
}

pub fn numbered(prefix: &str, from: usize, to: usize) -> String {
    let mut s = String::new();
    for i in from..to {
        s.push_str(&format!("{prefix} {i:06}\n"));
    }
    s
}

/// The `n` of messages `<prefix> <n>`.
pub fn numbers(events: &[Value], prefix: &str) -> Vec<usize> {
    events
        .iter()
        .filter_map(|e| e["message"].as_str())
        .filter_map(|m| m.strip_prefix(prefix))
        .filter_map(|m| m.trim().parse().ok())
        .collect()
}

/// Fast settings for tests: short scan and backoff intervals.
pub const FAST: &str = "prospector.scanner.check_interval: 100ms\nbackoff.init: 20ms\nbackoff.max: 50ms\nclose.on_state_change.check_interval: 50ms\n";

pub fn path_of(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

pub fn map() -> Map {
    Map::new()
}

/// Waits (30 s at most, a safety net) until the registry file, read as `skiff registry list`
/// reads it, says `f` for every one of `n` files.
pub async fn wait_registry(
    data: &std::path::Path,
    n: usize,
    what: &str,
    f: impl Fn(&skiff_input_file::FileStatus) -> bool,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let reg = skiff_input_file::list_registry(data).unwrap();
        if reg.len() == n && reg.iter().all(&f) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for the registry to say {what}: {reg:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
