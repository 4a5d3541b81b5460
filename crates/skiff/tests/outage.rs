//! An output outage: filestream -> disk queue -> Redis, with the Redis server down at the start
//! and started later, while lines are written at a steady rate. Afterwards every line has arrived,
//! in order; during the outage the backlog grows on disk while RSS stays flat.
//! Redis is the real server (Debian's `redis-server`), started by the test on a free port.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Sandbox, free_port, http_get};
use serde_json::Value;

struct Redis(Child);
impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis(port: u16) -> Redis {
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server (scripts/ensure-test-deps installs it)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Redis(child)
}

/// A minimal RESP client: enough for LLEN and LRANGE in a test.
fn redis_cmd(port: u16, args: &[&str]) -> Vec<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let read_bulk = |r: &mut BufReader<TcpStream>| {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        let n: usize = h[1..].trim().parse().unwrap();
        let mut buf = vec![0u8; n + 2];
        std::io::Read::read_exact(r, &mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    match line.as_bytes()[0] {
        b':' | b'+' => vec![line[1..].trim().to_owned()],
        b'*' => {
            let n: usize = line[1..].trim().parse().unwrap();
            (0..n).map(|_| read_bulk(&mut r)).collect()
        }
        _ => panic!("redis said {line}"),
    }
}

#[test]
fn an_outage_is_absorbed_on_disk_and_nothing_is_lost() {
    let sb = Sandbox::new();
    let (redis_port, http_port) = (free_port(), free_port());
    let cfg = sb.write(
        "skiff.yml",
        &format!(
            r#"
inputs:
  - type: filestream
    id: outage
    paths: ["$DIR/app.log"]
    prospector.scanner.check_interval: 200ms
queue.disk: {{path: "$DIR/diskq", max_size: 1GiB}}
output.redis:
  hosts: ["127.0.0.1:{redis_port}"]
  key: outage
  backoff: {{init: 100ms, max: 500ms}}
http: {{enabled: true, port: {http_port}}}
"#
        ),
    );
    let mut skiff = sb
        .cmd(&cfg, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let total = 40_000u64;
    let log = sb.path().join("app.log");
    let writer = std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        for n in 0..total {
            writeln!(f, "outage line {n:08} {}", "z".repeat(200)).unwrap();
            if n % 400 == 399 {
                std::thread::sleep(Duration::from_millis(40)); // ~10 000 lines/s
            }
        }
    });

    // Outage: sample RSS and the disk backlog for ~3 s with no Redis.
    let mut samples = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        if let Some(body) = http_get(http_port, "/stats") {
            let v: Value = serde_json::from_str(&body).unwrap();
            samples.push((
                v["beat"]["memstats"]["rss"].as_u64().unwrap_or(0),
                v["skiff"]["queue"]["disk"]["bytes"].as_u64().unwrap_or(0),
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _redis = start_redis(redis_port);
    writer.join().unwrap();

    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let n: u64 = redis_cmd(redis_port, &["LLEN", "outage"])[0]
            .parse()
            .unwrap();
        if n >= total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {n} of {total} events arrived"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = Command::new("kill").arg(skiff.id().to_string()).status();
    let _ = skiff.wait();

    let items = redis_cmd(redis_port, &["LRANGE", "outage", "0", "-1"]);
    let mut seen = Vec::with_capacity(items.len());
    for it in &items {
        let v: Value = serde_json::from_str(it).unwrap();
        let n: u64 = v["message"]
            .as_str()
            .unwrap()
            .split(' ')
            .nth(2)
            .unwrap()
            .parse()
            .unwrap();
        seen.push(n);
    }
    // In order, each at least once (a retried batch may repeat, never reorder what came first).
    let mut first: Vec<u64> = Vec::new();
    for n in seen {
        if first.last().is_none_or(|l| n > *l) {
            first.push(n);
        }
    }
    assert_eq!(first, (0..total).collect::<Vec<_>>());

    assert!(samples.len() >= 5, "too few samples: {samples:?}");
    let (rss_first, disk_first) = samples[1];
    let (rss_last, disk_last) = *samples.last().unwrap();
    assert!(
        disk_last > disk_first,
        "the disk queue did not grow during the outage: {samples:?}"
    );
    assert!(
        rss_last <= rss_first + (16 << 20),
        "RSS grew from {rss_first} to {rss_last} during the outage: {samples:?}"
    );
}
