//! The system module on this machine, cross-checked against `/proc`, `free`, `df` and `ps`
//! within tolerances (the machine keeps running between the two reads), and deltas across two
//! fetches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{get, num};
use skiff_event::Map;

fn fetch_twice(metricset: &str, extra: &str) -> (Vec<Map>, Vec<Map>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut block = common::block(&format!(
        "module: system\nmetricsets: [{metricset}]\n{extra}"
    ));
    let first = rt.block_on(block.fetch_all_once());
    std::thread::sleep(std::time::Duration::from_millis(600));
    let second = rt.block_on(block.fetch_all_once());
    for e in first.iter().chain(&second) {
        assert!(e.get("error").is_none(), "{metricset}: {e:?}");
        assert_eq!(get(e, "service.type"), "system");
        assert!(e.get("service").unwrap().get("address").is_none());
    }
    (first, second)
}

fn run(cmd: &str, args: &[&str]) -> String {
    let prog = common::need(cmd);
    let out = Command::new(prog).args(args).output().unwrap();
    assert!(out.status.success(), "{cmd} {args:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn close(a: f64, b: f64, tolerance: f64, what: &str) {
    let diff = (a - b).abs();
    let scale = a.abs().max(b.abs()).max(1.0);
    assert!(
        diff / scale <= tolerance,
        "{what}: {a} vs {b} (tolerance {tolerance})"
    );
}

#[test]
fn memory_matches_free() {
    let (_, second) = fetch_twice("memory", "");
    let e = &second[0];
    assert_eq!(get(e, "event.dataset"), "system.memory");
    let free = run("free", &["-b"]);
    let mem: Vec<f64> = free
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect();
    let (total, free_b, available) = (mem[0], mem[2], mem[5]);
    assert_eq!(
        num(e, "system.memory.total"),
        total,
        "MemTotal does not move"
    );
    close(num(e, "system.memory.free"), free_b, 0.05, "free");
    close(
        num(e, "system.memory.actual.free"),
        available,
        0.05,
        "available",
    );
    let used = num(e, "system.memory.used.bytes");
    assert_eq!(
        used,
        num(e, "system.memory.total") - num(e, "system.memory.free")
    );
    close(
        num(e, "system.memory.used.pct"),
        used / total,
        0.001,
        "used.pct",
    );
    close(
        num(e, "system.memory.actual.used.pct"),
        1.0 - num(e, "system.memory.actual.free") / total,
        0.001,
        "actual.used.pct",
    );
    let swap: Vec<f64> = free
        .lines()
        .nth(2)
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(num(e, "system.memory.swap.total"), swap[0]);
}

#[test]
fn cpu_percentages_add_up_and_follow_the_second_sample() {
    let (first, second) = fetch_twice(
        "cpu",
        "cpu.metrics: [percentages, normalized_percentages, ticks]\n",
    );
    let cores: f64 = run("nproc", &[]).trim().parse().unwrap();
    for e in [&first[0], &second[0]] {
        assert_eq!(num(e, "system.cpu.cores"), cores);
        let states = [
            "user", "system", "nice", "idle", "iowait", "irq", "softirq", "steal",
        ];
        let norm: f64 = states
            .iter()
            .map(|s| num(e, &format!("system.cpu.{s}.norm.pct")))
            .sum();
        close(norm, 1.0, 0.002, "the states' norm.pct add up to 1");
        let total = num(e, "system.cpu.total.norm.pct");
        assert!((0.0..=1.0).contains(&total));
        close(
            num(e, "system.cpu.total.pct"),
            total * cores,
            0.002,
            "pct = norm.pct x cores",
        );
        assert_eq!(
            get(e, "host.cpu.usage"),
            get(e, "system.cpu.total.norm.pct")
        );
    }
    // Ticks are the raw counters: they only grow, and /proc/stat agrees.
    let t1 = num(&first[0], "system.cpu.user.ticks");
    let t2 = num(&second[0], "system.cpu.user.ticks");
    assert!(t2 >= t1);
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let user: f64 = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        user >= t2 && user - t2 < 100.0 * cores * 5.0,
        "{user} vs {t2}"
    );
}

#[test]
fn load_matches_proc_loadavg() {
    let (_, second) = fetch_twice("load", "");
    let e = &second[0];
    let text = std::fs::read_to_string("/proc/loadavg").unwrap();
    let l: Vec<f64> = text
        .split_whitespace()
        .take(3)
        .map(|n| n.parse().unwrap())
        .collect();
    assert!((num(e, "system.load.1") - l[0]).abs() < 0.5);
    assert!((num(e, "system.load.15") - l[2]).abs() < 0.1);
    let cores = num(e, "system.load.cores");
    close(
        num(e, "system.load.norm.5"),
        num(e, "system.load.5") / cores,
        0.001,
        "norm.5",
    );
}

#[test]
fn root_filesystem_matches_df_and_fsstat_adds_up() {
    let (_, second) = fetch_twice("filesystem", "");
    let root = second
        .iter()
        .find(|e| get(e, "system.filesystem.mount_point") == "/")
        .expect("an event for /");
    let df = run("df", &["-B1", "--output=size,used,avail", "/"]);
    let v: Vec<f64> = df
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(num(root, "system.filesystem.total"), v[0], "size is fixed");
    close(
        num(root, "system.filesystem.used.bytes"),
        v[1],
        0.02,
        "used",
    );
    close(
        num(root, "system.filesystem.available"),
        v[2],
        0.05,
        "available",
    );
    let used = num(root, "system.filesystem.used.bytes");
    close(
        num(root, "system.filesystem.used.pct"),
        used / (used + num(root, "system.filesystem.available")),
        0.001,
        "used.pct = used / (used + available)",
    );
    let (_, fs) = fetch_twice("fsstat", "");
    let fs = &fs[0];
    assert_eq!(get(fs, "event.dataset"), "system.fsstat");
    assert_eq!(num(fs, "system.fsstat.count"), second.len() as f64);
    let total: f64 = second
        .iter()
        .map(|e| num(e, "system.filesystem.total"))
        .sum();
    assert_eq!(num(fs, "system.fsstat.total_size.total"), total);
}

#[test]
fn processes_match_ps() {
    let (_, second) = fetch_twice("process_summary", "");
    let e = &second[0];
    assert_eq!(get(e, "event.dataset"), "system.process.summary");
    let ps = run("ps", &["-e", "--no-headers", "-o", "stat"]);
    let total = ps.lines().count() as f64;
    assert!(
        (num(e, "system.process.summary.total") - total).abs() <= 10.0,
        "{e:?} vs {total}"
    );
    let states = [
        "running", "sleeping", "idle", "stopped", "zombie", "dead", "unknown",
    ];
    let sum: f64 = states
        .iter()
        .map(|s| num(e, &format!("system.process.summary.{s}")))
        .sum();
    assert_eq!(sum, num(e, "system.process.summary.total"));

    // Our own process, by pid: two fetches give a CPU percentage; memory as ps sees it.
    let pid = std::process::id();
    let (first, second) = fetch_twice("process", "process.include_top_n.enabled: false\n");
    let me = |evs: &[Map]| {
        evs.iter()
            .find(|e| get(e, "process.pid").as_u64() == Some(u64::from(pid)))
            .cloned()
            .expect("an event for the test process")
    };
    let (a, b) = (me(&first), me(&second));
    assert!(
        a.get("system").unwrap()["process"]["cpu"]["total"]
            .get("pct")
            .is_none(),
        "no pct on the first fetch"
    );
    let pct = num(&b, "system.process.cpu.total.pct");
    let cores: f64 = run("nproc", &[]).trim().parse().unwrap();
    assert!((0.0..=cores + 0.5).contains(&pct), "{pct}");
    close(
        num(&b, "system.process.cpu.total.norm.pct"),
        pct / cores,
        0.01,
        "norm.pct",
    );
    assert!(num(&b, "system.process.cpu.total.value") >= num(&a, "system.process.cpu.total.value"));
    let rss_kib: f64 = run("ps", &["-o", "rss=", "-p", &pid.to_string()])
        .trim()
        .parse()
        .unwrap();
    close(
        num(&b, "system.process.memory.rss.bytes"),
        rss_kib * 1024.0,
        0.3,
        "rss",
    );
    let comm = run("ps", &["-o", "comm=", "-p", &pid.to_string()]);
    assert_eq!(get(&b, "process.name").as_str().unwrap(), comm.trim());
    assert_eq!(
        num(&b, "process.ppid"),
        f64::from(std::os::unix::process::parent_id())
    );
    assert!(
        get(&b, "process.executable")
            .as_str()
            .unwrap()
            .contains("system-")
    );
    assert!(num(&b, "system.process.fd.open") >= 3.0);
    assert!(get(&b, "user.name").is_string());
    assert!(
        get(&b, "system.process.cpu.start_time")
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    // Top N: at most by_cpu + by_memory processes, and the biggest by RSS is among them.
    let (_, top) = fetch_twice(
        "process",
        "process.include_top_n: {by_cpu: 2, by_memory: 2}\n",
    );
    assert!(top.len() <= 4 && !top.is_empty(), "{}", top.len());
    let ps = run("ps", &["-e", "--no-headers", "-o", "rss=", "--sort=-rss"]);
    let biggest: f64 = ps.lines().next().unwrap().trim().parse().unwrap();
    let max_rss = top
        .iter()
        .map(|e| num(e, "system.process.memory.rss.bytes"))
        .fold(0.0, f64::max);
    close(
        max_rss,
        biggest * 1024.0,
        0.3,
        "the largest RSS is in the top N",
    );
}

#[test]
fn uptime_network_sockets_and_disks() {
    let (_, up) = fetch_twice("uptime", "");
    let proc_up: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((num(&up[0], "system.uptime.duration.ms") / 1000.0 - proc_up).abs() < 5.0);

    let (first, second) = fetch_twice("network", "interfaces: [lo]\n");
    assert_eq!(second.len(), 1);
    assert_eq!(get(&second[0], "system.network.name"), "lo");
    assert!(
        num(&second[0], "system.network.in.bytes") >= num(&first[0], "system.network.in.bytes")
    );

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (_, s) = fetch_twice("socket_summary", "");
    let s = &s[0];
    assert_eq!(get(s, "event.dataset"), "system.socket.summary");
    assert!(num(s, "system.socket.summary.tcp.all.listening") >= 1.0);
    assert!(
        num(s, "system.socket.summary.all.count") >= num(s, "system.socket.summary.tcp.all.count")
    );
    let ss = std::fs::read_to_string("/proc/net/sockstat").unwrap();
    assert!(ss.contains("TCP: inuse"));
    drop(listener);

    // Disks: every device with I/O; iostat from the second fetch on.
    let (first, second) = fetch_twice("diskio", "");
    let active = std::fs::read_to_string("/proc/diskstats")
        .unwrap()
        .lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 7 && (f[3] != "0" || f[7] != "0")
        })
        .count();
    assert_eq!(second.len(), active);
    assert!(first.iter().all(|e| {
        get(e, "system")
            .get("diskio")
            .unwrap()
            .get("iostat")
            .is_none()
    }));
    for e in &second {
        assert!(num(e, "system.diskio.iostat.busy") <= 100.0);
        assert!(num(e, "system.diskio.read.bytes") >= 0.0);
    }
}
