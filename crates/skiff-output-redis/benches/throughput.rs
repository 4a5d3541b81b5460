//! Redis output throughput: generated 256-byte events through the output client into a local
//! `redis-server` list. Prints one JSON line.
//!
//! `cargo bench -p skiff-output-redis --bench throughput` (env: EVENTS, WORKERS).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use skiff_event::{Event, Map, Value};
use skiff_metrics::Registry;
use skiff_pipeline::BuildContext;

fn main() {
    let n: usize = std::env::var("EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500_000);
    let workers: usize = std::env::var("WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let mut server = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let reg = Registry::new();
    let ctx = BuildContext::standalone("b", "0", &reg);
    let node = skiff_config::parse_str(
        &format!("hosts: ['127.0.0.1:{port}']\nkey: bench\nworker: {workers}"),
        None,
    )
    .unwrap();
    let out = (skiff_output_redis::PLUGIN.build)(&node, &ctx).unwrap();
    let mut shared = Map::new();
    shared.insert("host".into(), serde_json::json!({"name": "web-1"}));
    let shared = Arc::new(shared);
    let evs: Vec<Event> = (0..n)
        .map(|i| {
            let mut msg = format!("line {i} ");
            while msg.len() < 256 {
                msg.push_str("abcdefghij");
            }
            msg.truncate(256);
            let mut e = Event::new(shared.clone(), msg);
            e.offset = Some(i as u64 * 257);
            e.insert("n", Value::from(i));
            e
        })
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let batches: Vec<Vec<Event>> = evs
        .chunks(2048)
        .map(|c| c.iter().map(Event::clone_without_ack).collect())
        .collect();
    let per = batches.len().div_ceil(workers);
    let mut groups: Vec<Vec<Vec<Event>>> = Vec::new();
    let mut it = batches.into_iter();
    loop {
        let g: Vec<Vec<Event>> = it.by_ref().take(per).collect();
        if g.is_empty() {
            break;
        }
        groups.push(g);
    }
    let t0 = Instant::now();
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for (mut c, g) in out.clients.into_iter().zip(groups) {
            set.spawn(async move {
                for b in g {
                    let o = c.send(&b).await.unwrap();
                    assert!(o.retry.is_empty() && o.rejected.is_empty());
                }
            });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
    });
    let secs = t0.elapsed().as_secs_f64();
    let _ = server.kill();
    let _ = server.wait();
    println!(
        "{}",
        serde_json::json!({
            "bench": "redis_output_list", "workers": workers, "events": n, "event_message_bytes": 256,
            "seconds": (secs * 1000.0).round() / 1000.0,
            "events_per_sec": (n as f64 / secs).round(),
            "input_mb_per_sec": ((n as f64 * 256.0 / secs / 1e6) * 100.0).round() / 100.0,
        })
    );
}
