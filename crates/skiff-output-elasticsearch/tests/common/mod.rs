//! Test helpers: the Elasticsearch stand-in as a child process, and a pipeline (memory queue +
//! output workers + dead-letter file) to drive the output with.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use skiff_event::{AckStream, Event, Map};
use skiff_metrics::Registry;
use skiff_pipeline::dead_letter::DeadLetter;
use skiff_pipeline::queue::memory::{FlushConfig, MemoryQueue, MemoryQueueConfig};
use skiff_pipeline::{Budget, BuildContext, OutputSet, Queue};

pub const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/tools/es-standin/es_standin.py"
);

/// A running stand-in; killed on drop.
pub struct StandIn {
    child: Child,
    pub port: u16,
    pub url: String,
    pub dump: PathBuf,
}

impl StandIn {
    /// Starts the stand-in on `port` (0 = free port) with `--dump-dir dump` and `args`.
    pub fn start_at(port: u16, dump: &Path, args: &[&str]) -> StandIn {
        let mut child = Command::new("python3")
            .arg(SCRIPT)
            .args(["--port", &port.to_string(), "--dump-dir"])
            .arg(dump)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 and the es-standin script");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("es-standin listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        let port = url.rsplit(':').next().unwrap().parse().unwrap();
        StandIn {
            child,
            port,
            url,
            dump: dump.to_owned(),
        }
    }

    pub fn start(dump: &Path, args: &[&str]) -> StandIn {
        Self::start_at(0, dump, args)
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The documents that reached `name` (index or data stream), in arrival order.
    pub fn docs(&self, name: &str) -> Vec<Value> {
        docs(&self.dump, name)
    }

    pub async fn control(&self, method: &str, path: &str, body: Value) -> Value {
        let c = http();
        let url = format!("{}{path}", self.url);
        let req = match method {
            "GET" => c.get(url),
            "PUT" => c.put(url).json(&body),
            _ => c.post(url).json(&body),
        };
        req.send().await.unwrap().json().await.unwrap()
    }

    pub async fn faults(&self, f: Value) {
        self.control("POST", "/_standin/faults", f).await;
    }

    pub async fn stats(&self) -> Value {
        self.control("GET", "/_standin/stats", Value::Null).await
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A plain HTTP client for the stand-in's control API (reqwest is built without a default TLS
/// provider: give it one).
pub fn http() -> reqwest::Client {
    let tls = skiff_tls::client_config(&Default::default()).unwrap();
    reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .build()
        .unwrap()
}

/// The documents the stand-in has stored so far. It may be appending while this reads: a last
/// line without its newline is still being written and is left for the next look.
pub fn docs(dump: &Path, name: &str) -> Vec<Value> {
    match std::fs::read_to_string(dump.join(format!("{name}.ndjson"))) {
        Ok(s) => s
            .split_inclusive('\n')
            .filter(|l| l.ends_with('\n'))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The `fields.n` of each document, sorted.
pub fn numbers(docs: &[Value]) -> Vec<u64> {
    let mut v: Vec<u64> = docs
        .iter()
        .map(|d| d["fields"]["n"].as_u64().unwrap())
        .collect();
    v.sort_unstable();
    v
}

pub fn ctx(reg: &Registry) -> BuildContext {
    BuildContext::standalone("test", "8.15.0", reg)
}

pub fn build(yaml: &str, reg: &Registry) -> OutputSet {
    let node = skiff_config::parse_str(yaml, None).unwrap();
    match (skiff_output_elasticsearch::PLUGIN.build)(&node, &ctx(reg)) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

pub fn shared() -> Arc<Map> {
    let v = json!({
        "agent": {"type": "filebeat", "version": "8.15.0", "name": "test"},
        "host": {"name": "test-host"},
        "input": {"type": "filestream"},
        "log": {"file": {"path": "/var/log/app.log"}},
    });
    Arc::new(v.as_object().unwrap().clone())
}

/// Event `n`: message `line n "quoted" é`, `fields.n = n`, offset n.
pub fn event(shared: &Arc<Map>, n: u64) -> Event {
    let mut e = Event::new(shared.clone(), format!("line {n} \"quoted\" é\ttab"));
    e.offset = Some(n * 100);
    e.insert("fields.n", json!(n));
    e
}

pub struct Run {
    pub stream: Arc<AckStream>,
    pub dead_letter: tempfile::TempDir,
    pub reg: Registry,
}

impl Run {
    pub fn dead_letters(&self) -> Vec<Value> {
        match std::fs::read_to_string(self.dead_letter.path().join("dead_letter.ndjson")) {
            Ok(s) => s
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// Pushes `events` through a memory queue to the output's workers and waits until all are
/// acked or dead-lettered (the queue is closed and drained).
pub async fn run(set: OutputSet, events: Vec<Event>, reg: &Registry) -> Run {
    let cfg = MemoryQueueConfig {
        events: 100_000,
        flush: FlushConfig {
            min_events: 1,
            timeout: skiff_config::Duration(Duration::ZERO),
        },
        ..Default::default()
    };
    let q: Arc<dyn Queue> = Arc::new(MemoryQueue::new(cfg, reg, &Budget::new(reg.clone())));
    let stream = AckStream::new();
    let dir = tempfile::tempdir().unwrap();
    let dl = Arc::new(DeadLetter::new(dir.path(), 1 << 24, reg));
    // Queue everything first, so that batches are full.
    for (i, mut e) in events.into_iter().enumerate() {
        e.ack = Some(stream.token(i as u64));
        q.push(e).await.unwrap();
    }
    let running = skiff_topology::Topology::builder(skiff_pipeline::BuildContext::standalone(
        "t", "0.0.0", reg,
    ))
    .queue(q, false)
    .output("elasticsearch", set)
    .dead_letter(dl)
    .build()
    .start()
    .await;
    // No input: stopping closes the queue and the workers drain it completely.
    running
        .stop(skiff_topology::Drain::Fully, std::future::pending::<()>())
        .await;
    Run {
        stream,
        dead_letter: dir,
        reg: reg.clone(),
    }
}

/// Polls `f` every 20 ms until it is true; panics after a minute (a hang, not a timing check).
pub async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..3000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

/// What the broken stand-in answers one `_bulk` request with, given the number of documents
/// in the request.
pub type Answer = fn(docs: usize) -> Vec<u8>;

/// An HTTP response with `status`, `content_type` and `body`, closing the connection.
pub fn http_response(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// Reads one HTTP/1.1 request (headers and a `Content-Length` body); returns its body.
async fn read_request(s: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 << 10];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(buf[head_end..head_end + len].to_vec())
}

/// **A deliberately broken stand-in, not Elasticsearch.** It accepts one connection per
/// answer on `listener`, reads one uncompressed `_bulk` request and writes the answer for its
/// number of documents, then stops listening so that the real stand-in can take the port.
/// Returns the number of requests it answered.
pub async fn hostile(listener: tokio::net::TcpListener, answers: Vec<Answer>) -> usize {
    use tokio::io::AsyncWriteExt;
    let mut served = 0;
    for answer in answers {
        let (mut s, _) = listener.accept().await.unwrap();
        let Some(body) = read_request(&mut s).await else {
            continue;
        };
        served += 1;
        let docs = body.iter().filter(|b| **b == b'\n').count() / 2;
        let _ = s.write_all(&answer(docs)).await;
        let _ = s.shutdown().await;
    }
    served
}

/// `n` bulk items, each `{"create":{"status":201}}`.
pub fn created(n: usize) -> String {
    vec![r#"{"create":{"status":201}}"#; n].join(",")
}
