//! Throughput of the Elasticsearch output (not a test: numbers only).
//!
//! `cargo bench -p skiff-output-elasticsearch --bench bulk [-- EVENTS]`
//!
//! 1. encode: `_bulk` NDJSON + gzip level 1 of realistic access-log events, one thread: the
//!    output's CPU cost per byte of input.
//! 2. end to end: the same events through a memory queue and the output workers to the
//!    Elasticsearch stand-in in `--fast` mode (a Python process on the same 2 cores), with the
//!    CPU time this process used, so MB/s per core of skiff can be told apart from the
//!    stand-in's limit.
//!
//! "Input" is the log lines as they are in the file (message + newline).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use skiff_event::{AckStream, Event, Map};
use skiff_metrics::Registry;
use skiff_pipeline::queue::memory::{FlushConfig, MemoryQueue, MemoryQueueConfig};
use skiff_pipeline::{Budget, BuildContext, Queue};

fn shared() -> Arc<Map> {
    let v = json!({
        "agent": {"type": "filebeat", "version": "8.15.0", "name": "bench", "id": "4c1f6b3e-0000-4000-8000-000000000001", "ephemeral_id": "4c1f6b3e-0000-4000-8000-000000000002"},
        "host": {"name": "web-01"},
        "ecs": {"version": "8.0.0"},
        "input": {"type": "filestream"},
        "log": {"file": {"path": "/var/log/nginx/access.log"}},
    });
    Arc::new(v.as_object().unwrap().clone())
}

fn events(n: usize) -> (Vec<Event>, u64) {
    let s = shared();
    let mut input = 0u64;
    let out = (0..n)
        .map(|i| {
            let line = format!(
                "10.0.{}.{} - - [22/Nov/2026:03:{:02}:{:02} +0000] \"GET /api/v1/items/{i}?page={} HTTP/1.1\" {} {} \"-\" \"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\"",
                i % 256,
                (i / 256) % 256,
                (i / 60) % 60,
                i % 60,
                i % 17,
                if i % 13 == 0 { 404 } else { 200 },
                1000 + i % 5000
            );
            input += line.len() as u64 + 1;
            let mut e = Event::new(s.clone(), line);
            e.offset = Some(input);
            e
        })
        .collect();
    (out, input)
}

fn cpu_seconds() -> f64 {
    // utime + stime of this process, in clock ticks (100 per second on Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|r| r.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

fn mb(b: u64, secs: f64) -> f64 {
    b as f64 / 1e6 / secs
}

fn encode_only(n: usize) {
    let (evs, input) = events(n);
    let node =
        skiff_config::parse_str("hosts: [\"http://127.0.0.1:9\"]\nindex: bench\n", None).unwrap();
    let cfg: skiff_output_elasticsearch::EsConfig = node.deserialize().unwrap();
    let mut routing = skiff_output_elasticsearch::select::Routing::new(&cfg, &node).unwrap();
    let mut body = skiff_output_elasticsearch::bulk::Body::default();
    let mut cache = skiff_event::fastjson::SharedCache::default();
    let mut wire = Vec::new();
    let (mut ndjson, mut gz) = (0u64, 0u64);
    let cpu0 = cpu_seconds();
    let t = Instant::now();
    let mut gzip_time = Duration::ZERO;
    for chunk in evs.chunks(1600) {
        skiff_output_elasticsearch::bulk::encode(chunk, &mut routing, &mut cache, &mut body);
        let g = Instant::now();
        skiff_output_elasticsearch::bulk::gzip(&body.ndjson, 1, &mut wire);
        gzip_time += g.elapsed();
        ndjson += body.ndjson.len() as u64;
        gz += wire.len() as u64;
    }
    let secs = t.elapsed().as_secs_f64();
    let cpu = (cpu_seconds() - cpu0).max(0.01);
    // The event encoder alone (skiff-event), for comparison.
    let t2 = Instant::now();
    let mut buf = Vec::with_capacity(1 << 20);
    for chunk in evs.chunks(1600) {
        buf.clear();
        for e in chunk {
            skiff_event::json::encode(e, &mut buf, false);
            buf.push(b'\n');
        }
    }
    println!(
        "  skiff_event::json::encode alone: {:.2} s",
        t2.elapsed().as_secs_f64()
    );
    println!(
        "  of which gzip: {:.2} s, encode: {:.2} s",
        gzip_time.as_secs_f64(),
        secs - gzip_time.as_secs_f64()
    );
    println!(
        "encode+gzip(1), 1 thread: {n} events, input {:.1} MB, ndjson {:.1} MB, gzip {:.1} MB: {:.0} MB/s of input wall-clock, {:.0} MB/s of input per core ({:.0} MB/s ndjson), {:.0} k events/s per core",
        input as f64 / 1e6,
        ndjson as f64 / 1e6,
        gz as f64 / 1e6,
        mb(input, secs),
        mb(input, cpu),
        mb(ndjson, cpu),
        n as f64 / cpu / 1e3
    );
}

async fn end_to_end(n: usize, workers: usize) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/tools/es-standin/es_standin.py"
    );
    let mut child = Command::new("python3")
        .args([script, "--port", "0", "--fast"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 and the stand-in");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .trim_start_matches("es-standin listening on ")
        .to_owned();

    let reg = Registry::new();
    let ctx = BuildContext::standalone("bench", "8.15.0", &reg);
    let yaml =
        format!("hosts: [\"{url}\"]\nindex: bench\ncompression_level: 1\nworker: {workers}\n");
    let node = skiff_config::parse_str(&yaml, None).unwrap();
    let set = (skiff_output_elasticsearch::PLUGIN.build)(&node, &ctx).unwrap();
    let (evs, input) = events(n);
    let q: Arc<dyn Queue> = Arc::new(MemoryQueue::new(
        MemoryQueueConfig {
            events: n + 1,
            max_bytes: skiff_config::ByteSize(8 << 30),
            flush: FlushConfig {
                min_events: 1600,
                timeout: skiff_config::Duration(Duration::from_millis(10)),
            },
            ..Default::default()
        },
        &reg,
        &Budget::new(reg.clone()),
    ));
    let stream = AckStream::new();
    for (i, mut e) in evs.into_iter().enumerate() {
        e.ack = Some(stream.token(i as u64));
        q.push(e).await.unwrap();
    }
    q.close();
    let cpu0 = cpu_seconds();
    let t = Instant::now();
    // The queue is closed: draining ends when the workers have sent everything.
    skiff_topology::Topology::builder(ctx)
        .queue(q, false)
        .output("elasticsearch", set)
        .build()
        .start()
        .await
        .drain()
        .await;
    let secs = t.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    assert_eq!(stream.progress().acked, n as u64);
    let wire = reg.counter(&skiff_metrics::names::OUTPUT_WRITE_BYTES).get();
    println!(
        "end to end, {workers} worker(s), stand-in --fast: {n} events, {:.1} MB input, {:.1} MB on the wire, {secs:.2} s wall, {cpu:.2} s skiff CPU: {:.0} MB/s of input wall-clock, {:.0} MB/s of input per skiff core",
        input as f64 / 1e6,
        wire as f64 / 1e6,
        mb(input, secs),
        mb(input, cpu.max(0.01))
    );
    let _ = child.kill();
    let _ = child.wait();
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(300_000);
    encode_only(n);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(end_to_end(n, 1));
    rt.block_on(end_to_end(n, 2));
}
