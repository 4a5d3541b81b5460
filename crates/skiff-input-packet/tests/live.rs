//! Live capture on `lo` with real clients and servers: Python's http.server answering curl
//! (two requests on one kept-alive connection), ping, and dnsmasq answering dig over UDP and
//! TCP. Needs root (or CAP_NET_RAW), libpcap, python3, curl, ping, dnsmasq and dig
//! (scripts/ensure-test-deps installs them); a missing one fails the test with its name.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

use skiff_input_packet::capture::live;
use skiff_input_packet::config;
use skiff_input_packet::engine::Engine;
use skiff_input_packet::testing::flatten;
use skiff_metrics::Registry;
use skiff_pipeline::BuildContext;
use tokio_util::sync::CancellationToken;

fn need(tool: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "{tool} is missing: run scripts/ensure-test-deps");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn http_and_ping_on_loopback_become_transactions() {
    for t in ["python3", "curl", "ping"] {
        need(t);
    }
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hello.txt"),
        "hello from skiff's live test\n",
    )
    .unwrap();
    let mut server = Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until it listens.
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    let yaml = format!(
        "packetbeat.interfaces.device: lo\npacketbeat.protocols:\n- {{type: http, ports: [{port}]}}\n- {{type: icmp}}\n"
    );
    let evs = capture_while(&yaml, || {
        let url = format!("http://127.0.0.1:{port}/hello.txt");
        let missing = format!("http://127.0.0.1:{port}/missing");
        let curl = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-o",
                "/dev/null",
                "--http1.1",
                &url,
                &missing,
            ])
            .status()
            .unwrap();
        assert!(curl.success());
        let ping = Command::new("ping")
            .args(["-c", "2", "-i", "0.2", "127.0.0.1"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(ping.success());
    });
    let _ = server.kill();
    let _ = server.wait();
    let http: Vec<_> = evs.iter().filter(|e| e["type"] == "http").collect();
    assert_eq!(http.len(), 2, "{evs:#?}");
    assert_eq!(http[0]["url.path"], "/hello.txt");
    assert_eq!(http[0]["http.response.status_code"], 200);
    assert_eq!(http[0]["http.response.body.bytes"], 29);
    assert_eq!(http[1]["http.response.status_code"], 404);
    assert_eq!(http[1]["status"], "Error");
    assert_eq!(http[0]["server.port"], port);
    let icmp: Vec<_> = evs.iter().filter(|e| e["type"] == "icmp").collect();
    assert_eq!(icmp.len(), 2, "{evs:#?}");
    assert!(
        icmp.iter()
            .all(|e| e["status"] == "OK" && e["icmp.response.type"] == 0)
    );
}

/// Captures on `lo` with `yaml`'s protocols while `traffic` runs; the events, flattened.
fn capture_while(
    yaml: &str,
    traffic: impl FnOnce(),
) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let root = skiff_config::parse_str(yaml, Some("live.yml")).unwrap();
    let cfg = config::parse(
        root.get("packetbeat").unwrap(),
        &skiff_input_packet::protocols::names(),
    )
    .unwrap();
    let reg = Registry::new();
    let ctx = BuildContext::standalone("live", "8.0.0", &reg);
    let mut engine = Engine::new(&cfg, &ctx).unwrap();
    let iface = cfg.interfaces[0].clone();
    let stop = CancellationToken::new();
    let stop2 = stop.clone();
    let capture = std::thread::spawn(move || {
        let mut all = Vec::new();
        let res = live::capture(&mut engine, &iface, &reg, &stop2, |b| {
            all.extend(b);
            true
        });
        (res, all)
    });
    std::thread::sleep(Duration::from_millis(700));
    traffic();
    std::thread::sleep(Duration::from_millis(1200));
    stop.cancel();
    let (res, events) = capture.join().unwrap();
    res.unwrap();
    events.iter().map(|e| flatten(&e.to_value(true))).collect()
}

#[test]
fn dig_against_dnsmasq_over_udp_and_tcp() {
    for t in ["dnsmasq", "dig"] {
        need(t);
    }
    let port = free_port();
    let mut server = Command::new("dnsmasq")
        .args([
            "--no-daemon",
            "--no-resolv",
            "--no-hosts",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            &format!("--port={port}"),
            "--address=/skiff.test/10.1.2.3",
            "--user=root",
            "--pid-file",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let yaml = format!(
        "packetbeat.interfaces.device: lo\npacketbeat.protocols:\n- {{type: dns, ports: [{port}]}}\n"
    );
    let evs = capture_while(&yaml, || {
        for tcp in [false, true] {
            let mut c = Command::new("dig");
            c.args([
                "@127.0.0.1",
                "-p",
                &port.to_string(),
                "www.skiff.test",
                "A",
                "+tries=1",
                "+time=2",
            ]);
            if tcp {
                c.arg("+tcp");
            }
            let out = c.output().unwrap();
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("10.1.2.3"),
                "{out:?}"
            );
        }
    });
    let _ = server.kill();
    let _ = server.wait();
    let dns: Vec<_> = evs.iter().filter(|e| e["type"] == "dns").collect();
    assert_eq!(dns.len(), 2, "{evs:#?}");
    let transports: Vec<&str> = dns
        .iter()
        .map(|e| e["network.transport"].as_str().unwrap())
        .collect();
    assert_eq!(transports, ["udp", "tcp"]);
    for e in dns {
        assert_eq!(e["query"], "class IN, type A, www.skiff.test");
        assert_eq!(e["dns.resolved_ip"], serde_json::json!(["10.1.2.3"]));
        assert_eq!(e["status"], "OK");
        assert_eq!(e["server.port"], port);
    }
}

#[test]
fn an_invalid_filter_is_refused() {
    assert!(live::check_filter("tcp port 80 or icmp").is_ok());
    assert!(live::check_filter("tcp prot 80").is_err());
}
