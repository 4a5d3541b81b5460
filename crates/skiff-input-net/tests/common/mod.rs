//! Test harness: a real pipeline (memory queue -> output worker -> a collecting output that can
//! be held "down"), network inputs built from YAML as the configuration would build them, and
//! the real clients (`logger`, `socat`, Python) the tests drive them with.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use skiff_config::Duration as ConfDuration;
use skiff_event::{Event, Value};
use skiff_metrics::Registry;
use skiff_pipeline::queue::memory::{FlushConfig, MemoryQueue, MemoryQueueConfig};
use skiff_pipeline::{
    Budget, BuildContext, InputCommon, InputContext, InputPlugin, Outcome, Output, OutputSet,
    OutputSettings, Queue,
};
use skiff_topology::{Running, Topology};
use tokio_util::sync::CancellationToken;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Fails (never skips) when a client the test needs is missing.
pub fn need(tool: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "`{tool}` is not installed: run scripts/ensure-test-deps (as root)"
    );
}

/// Runs a shell command line (a real client), asserting it succeeded.
pub async fn sh(cmd: &str) {
    let cmd = cmd.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("sh").arg("-c").arg(&cmd).output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "client failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a Python program (a real client), asserting it succeeded.
pub async fn python(program: &str) {
    need("python3");
    let program = program.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg("-c")
            .arg(&program)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "python client failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The final destination: records every event it is sent and acknowledges it.
pub struct Collector {
    pub seen: Arc<Mutex<Vec<Value>>>,
    /// Every send waits until it holds `true` (an output that is down).
    pub gate: tokio::sync::watch::Receiver<bool>,
}

#[async_trait]
impl Output for Collector {
    async fn send(&mut self, events: &[Event]) -> Result<Outcome, skiff_pipeline::Failure> {
        let _ = self.gate.wait_for(|open| *open).await;
        let mut s = self.seen.lock().unwrap();
        for e in events {
            s.push(e.to_value(false));
        }
        Ok(Outcome::delivered())
    }
    fn describe(&self) -> String {
        "collector".into()
    }
}

/// A pipeline with a small queue (`queue_events`) drained into a [`Collector`].
pub struct Pipeline {
    pub seen: Arc<Mutex<Vec<Value>>>,
    pub queue: Arc<dyn Queue>,
    pub ctx: BuildContext,
    pub running: Running,
    /// Set to `false` to hold the output down, `true` to let it deliver.
    pub gate: tokio::sync::watch::Sender<bool>,
}

impl Pipeline {
    pub fn new(queue_events: usize, open: bool) -> Self {
        let ctx = BuildContext::standalone("receiver", "9.9.9", &Registry::new());
        let cfg = MemoryQueueConfig {
            events: queue_events,
            flush: FlushConfig {
                min_events: 1,
                timeout: ConfDuration(Duration::ZERO),
            },
            ..Default::default()
        };
        let queue: Arc<dyn Queue> = Arc::new(MemoryQueue::new(
            cfg,
            &ctx.metrics,
            &Budget::new(ctx.metrics.clone()),
        ));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (gate, rx) = tokio::sync::watch::channel(open);
        let out = OutputSet {
            clients: vec![Box::new(Collector {
                seen: seen.clone(),
                gate: rx,
            })],
            settings: OutputSettings {
                bulk_max_size: 64,
                backoff_init: Duration::from_millis(10),
                backoff_max: Duration::from_millis(50),
                ..Default::default()
            },
        };
        let running = Topology::builder(ctx.clone())
            .queue(queue.clone(), false)
            .output("collector", out)
            .build()
            .start_sync();
        Pipeline {
            seen,
            queue,
            ctx,
            running,
            gate,
        }
    }

    /// Builds `plugin` from `yaml` as the configuration would and runs it; returns its stop
    /// token.
    pub fn start(&self, plugin: &InputPlugin, yaml: &str) -> CancellationToken {
        let node = skiff_config::parse_str(yaml, None).unwrap();
        let common = InputCommon {
            kind: plugin.name.into(),
            ..Default::default()
        };
        let input = (plugin.build)(&node, &common, &self.ctx)
            .map_err(|e| e.to_string())
            .unwrap();
        let shared = self
            .ctx
            .shared_fields(&common, plugin.name, plugin.agent_type);
        let shutdown = CancellationToken::new();
        let ictx = InputContext {
            id: "in".into(),
            publisher: self.running.publisher(),
            shutdown: shutdown.clone(),
            build: self.ctx.clone(),
            shared: Arc::new(shared),
        };
        tokio::spawn(async move {
            if let Err(e) = input.run(ictx).await {
                panic!("input failed: {e}");
            }
        });
        shutdown
    }

    /// Waits until `n` events arrived (60s at most), returns them.
    pub async fn wait_for(&self, n: usize) -> Vec<Value> {
        for _ in 0..6000 {
            if self.seen.lock().unwrap().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let seen = self.seen.lock().unwrap().clone();
        assert!(
            seen.len() >= n,
            "{} of {n} events arrived: {:?}",
            seen.len(),
            seen.iter().take(5).collect::<Vec<_>>()
        );
        seen
    }

    /// The messages that arrived, in order.
    pub fn messages(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|v| v["message"].as_str().unwrap_or("").to_owned())
            .collect()
    }

    /// A counter's value with labels.
    pub fn counter(
        &self,
        def: &'static skiff_metrics::Def,
        labels: &[(&'static str, &str)],
    ) -> u64 {
        self.ctx.metrics.counter_with(def, labels).get()
    }
}

/// Waits until something listens on TCP `port`.
pub async fn wait_tcp(port: u16) {
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("nothing listens on {port}");
}

/// Waits until the socket file exists.
pub async fn wait_path(p: &std::path::Path) {
    for _ in 0..500 {
        if p.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} never appeared", p.display());
}

/// Waits until the input's status says it listens (for UDP, where connecting proves nothing).
pub async fn wait_status(p: &Pipeline) {
    for _ in 0..500 {
        if p.ctx.status.snapshot().contains_key("in") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the input never started");
}

/// A CA and a server certificate for 127.0.0.1/localhost, written to `dir`: (ca, cert, key).
pub fn certs(dir: &std::path::Path) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Distinct names: with rcgen's default name on both, the leaf looks self-signed.
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "skiff test ca");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
    let w = |name: &str, pem: String| {
        let p = dir.join(name);
        std::fs::write(&p, pem).unwrap();
        p.display().to_string()
    };
    (
        w("ca.pem", ca_cert.pem()),
        w("cert.pem", cert.pem()),
        w("key.pem", key.serialize_pem()),
    )
}
