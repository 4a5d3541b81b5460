//! SQL replay benchmark (issue 13): a capture of real MySQL and PostgreSQL traffic, made by
//! this benchmark against the servers of this machine, through the analyzer on one thread.
//!
//! `cargo bench -p skiff-input-packet --bench sql_replay [-- QUERIES]` captures on `lo` (root
//! or CAP_NET_RAW; libpcap) while `mysqlslap` (MariaDB on 3306) and `pgbench` (PostgreSQL on
//! 5432, simple and extended protocol) each run QUERIES small queries, writes the capture to
//! a pcap file, then times, in the same run:
//! 1. the baseline: reading the file and decoding every frame (no analysis);
//! 2. the full replay (`-t`) with the mysql and pgsql protocols.
//!
//! It prints packets, transactions, transactions/s, the ratio of (2) to (1) and the peak RSS
//! (VmHWM). Results and the command: docs/performance.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use skiff_input_packet::testing;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Captures `lo` (MySQL and PostgreSQL ports) into `path` while `work` runs.
fn capture(path: &std::path::Path, work: impl FnOnce()) -> u64 {
    let mut cap = pcap::Capture::from_device("lo")
        .unwrap()
        .immediate_mode(true)
        .buffer_size(64 << 20)
        .timeout(100)
        .open()
        .expect("capturing on lo needs root or CAP_NET_RAW")
        // A blocking read may never return on an idle interface: poll instead.
        .setnonblock()
        .unwrap();
    cap.filter("tcp port 3306 or tcp port 5432", true).unwrap();
    let mut save = cap.savefile(path).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let t = std::thread::spawn(move || {
        let mut n = 0u64;
        loop {
            match cap.next_packet() {
                Ok(p) => {
                    save.write(&p);
                    n += 1;
                }
                Err(pcap::Error::TimeoutExpired) => {
                    if stop2.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Err(e) => panic!("capture: {e}"),
            }
        }
        save.flush().unwrap();
        let drops = cap.stats().map(|s| s.dropped).unwrap_or(0);
        assert_eq!(
            drops, 0,
            "the kernel dropped packets: the capture is incomplete"
        );
        n
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    work();
    std::thread::sleep(std::time::Duration::from_millis(800));
    stop.store(true, Ordering::Relaxed);
    t.join().unwrap()
}

fn main() {
    let queries: u32 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sql.pcap");
    let script = dir.path().join("pg.sql");
    std::fs::write(&script, "SELECT 1 AS one, 'skiff' AS name;\n").unwrap();
    let per_client = (queries / 4).max(1).to_string();
    let packets = capture(&path, || {
        let ok = Command::new("mysqlslap")
            .args([
                "-h",
                "127.0.0.1",
                "-u",
                "root",
                "--concurrency=4",
                "--iterations=1",
                &format!("--number-of-queries={}", queries),
                "--query=SELECT 1 AS one, 'skiff' AS name",
                "--create-schema=mysql",
            ])
            .output()
            .expect("mysqlslap")
            .status
            .success();
        assert!(ok, "mysqlslap failed");
        for mode in ["simple", "extended"] {
            let ok = Command::new("pgbench")
                .env("PGSSLMODE", "disable")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-n",
                    "-c",
                    "4",
                    "-M",
                    mode,
                ])
                .args(["-t", &per_client, "-f"])
                .arg(&script)
                .arg("postgres")
                .output()
                .expect("pgbench")
                .status
                .success();
            assert!(ok, "pgbench -M {mode} failed");
        }
    });
    let bytes = std::fs::metadata(&path).unwrap().len();

    // The capture's buffers are gone: measure the peak of what follows only.
    let _ = std::fs::write("/proc/self/clear_refs", "5");

    // 1. Baseline: read and decode only.
    let t0 = Instant::now();
    let decoded = testing::decode_only(&path).unwrap();
    let base = t0.elapsed().as_secs_f64();

    // 2. The full replay.
    let yaml =
        "packetbeat.protocols:\n- {type: mysql, ports: [3306]}\n- {type: pgsql, ports: [5432]}\n";
    let (mut mysql, mut pgsql) = (0u64, 0u64);
    let t1 = Instant::now();
    testing::replay(&path, yaml, |b| {
        for e in &b {
            match e.fields.get("type").and_then(|t| t.as_str()) {
                Some("mysql") => mysql += 1,
                Some("pgsql") => pgsql += 1,
                _ => {}
            }
        }
    })
    .unwrap();
    let full = t1.elapsed().as_secs_f64();
    let txs = mysql + pgsql;
    assert!(
        mysql >= u64::from(queries) && pgsql >= 2 * u64::from(queries / 4) * 4,
        "expected every query as an event: mysql {mysql}, pgsql {pgsql}"
    );
    println!(
        "{{\"queries_per_tool\": {queries}, \"packets\": {packets}, \"decoded\": {decoded}, \"file_bytes\": {bytes}, \
\"mysql_transactions\": {mysql}, \"pgsql_transactions\": {pgsql}, \"decode_only_s\": {base:.3}, \"replay_s\": {full:.3}, \
\"transactions_per_s\": {:.0}, \"replay_over_decode\": {:.2}, \"peak_rss_mib\": {:.1}}}",
        txs as f64 / full,
        full / base,
        peak_rss_kib() as f64 / 1024.0
    );
}
