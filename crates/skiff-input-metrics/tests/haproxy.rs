//! The haproxy module against a real HAProxy (Debian's `haproxy`, installed by
//! scripts/ensure-test-deps) that the test starts on free ports from a temporary directory:
//! a stats socket at a path and on TCP, a stats page with a password, and a frontend in front
//! of a backend server (a small HTTP responder in the test). Requests made with curl through
//! the frontend must be counted; fields are typed like Metricbeat's example events; a host that
//! is down, `info` over HTTP and a wrong password are error events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod live;

use std::io::{Read, Write};
use std::net::TcpListener;

use common::{fetch, free_port, get, num, start};
use serde_json::Value;

/// A backend server: answers every request `200 hello`, one connection at a time.
fn backend() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut buf = [0u8; 4096];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            let _ = c.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
            );
        }
    });
    port
}

struct Haproxy {
    _srv: common::Server,
    /// Holds the socket and the configuration; removed after the server stopped.
    _dir: tempfile::TempDir,
    socket: String,
    stats_tcp: u16,
    page: u16,
    front: u16,
}

fn haproxy() -> Haproxy {
    let (stats_tcp, page, front) = (free_port(), free_port(), free_port());
    let back = backend();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("haproxy.sock").display().to_string();
    let conf = format!(
        "global\n  stats socket {socket} mode 600 level user\n  stats socket 127.0.0.1:{stats_tcp} level user\n\
         defaults\n  mode http\n  timeout connect 2s\n  timeout client 5s\n  timeout server 5s\n\
         frontend web\n  bind 127.0.0.1:{front}\n  default_backend app\n\
         backend app\n  server s1 127.0.0.1:{back}\n\
         listen stats\n  bind 127.0.0.1:{page}\n  stats enable\n  stats uri /haproxy?stats\n  stats auth admin:s3cret\n"
    );
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, conf).unwrap();
    let srv = start("haproxy", &["-db", "-f", path.to_str().unwrap()], stats_tcp);
    Haproxy {
        _srv: srv,
        _dir: dir,
        socket,
        stats_tcp,
        page,
        front,
    }
}

fn curl(port: u16, n: usize) {
    let curl = common::need("curl");
    for _ in 0..n {
        let out = std::process::Command::new(&curl)
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("http://127.0.0.1:{port}/"))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{out:?}");
    }
}

fn row<'a>(
    events: &'a [serde_json::Map<String, Value>],
    proxy: &str,
    service: &str,
) -> &'a serde_json::Map<String, Value> {
    events
        .iter()
        .find(|e| {
            get(e, "haproxy.stat.proxy.name") == proxy
                && get(e, "haproxy.stat.service_name") == service
        })
        .unwrap_or_else(|| panic!("no {proxy}/{service} row in {events:?}"))
}

#[tokio::test]
async fn info_and_stat_from_the_socket_and_the_stats_page() {
    let h = haproxy();
    curl(h.front, 5);

    // info, over the Unix socket and over TCP.
    for host in [
        format!("unix://{}", h.socket),
        format!("tcp://{}", h.stats_tcp_addr()),
    ] {
        let events = fetch(&format!(
            "module: haproxy\nmetricsets: [info]\nhosts: ['{host}']\n"
        ))
        .await;
        assert_eq!(events.len(), 1, "{events:?}");
        let e = &events[0];
        assert!(e.get("error").is_none(), "{e:?}");
        assert_eq!(get(e, "event.dataset"), "haproxy.info");
        assert!(num(e, "process.pid") > 0.0);
        assert!(
            get(e, "haproxy.info").get("pid").is_none(),
            "pid is an alias"
        );
        assert!(num(e, "haproxy.info.requests.total") >= 5.0);
        assert!(num(e, "haproxy.info.connection.total") >= 5.0);
        assert!(num(e, "haproxy.info.uptime.sec") >= 0.0);
        let idle = num(e, "haproxy.info.idle.pct");
        assert!((0.0..=1.0).contains(&idle), "idle.pct is a ratio: {idle}");
        assert!(num(e, "haproxy.info.ulimit_n") > 0.0);
        live::assert_typed_like(
            e,
            &live::example("haproxy", "info", "data.json"),
            "haproxy.info",
            &[("pid", "process.pid")],
            &[
                (
                    "zlib_mem_usage.max",
                    "Debian's HAProxy compresses with libslz, not zlib",
                ),
                (
                    "zlib_mem_usage.value",
                    "Debian's HAProxy compresses with libslz, not zlib",
                ),
            ],
        );
        let address = get(e, "service.address").as_str().unwrap();
        assert!(
            address == h.socket || address == h.stats_tcp_addr(),
            "{address}"
        );
    }

    // stat over the socket: every row, typed like the example (a frontend row).
    let events = fetch(&format!(
        "module: haproxy\nmetricsets: [stat]\nhosts: ['unix://{}']\n",
        h.socket
    ))
    .await;
    assert!(
        events.iter().all(|e| e.get("error").is_none()),
        "{events:?}"
    );
    let front = row(&events, "web", "FRONTEND");
    assert_eq!(num(front, "haproxy.stat.component_type"), 0.0);
    assert_eq!(get(front, "haproxy.stat.status"), "OPEN");
    assert!(num(front, "haproxy.stat.request.total") >= 5.0);
    assert!(num(front, "haproxy.stat.response.http.2xx") >= 5.0);
    live::assert_typed_like(
        front,
        &live::example("haproxy", "stat", "data.json"),
        "haproxy.stat",
        &[("process_id", "process.pid")],
        &[],
    );
    let back = row(&events, "app", "BACKEND");
    assert_eq!(num(back, "haproxy.stat.component_type"), 1.0);
    assert!(num(back, "haproxy.stat.session.total") >= 5.0);
    let server = row(&events, "app", "s1");
    assert_eq!(num(server, "haproxy.stat.component_type"), 2.0);
    assert!(num(server, "haproxy.stat.server.id") >= 1.0);
    assert!(num(server, "haproxy.stat.session.total") >= 5.0);
    assert_eq!(get(server, "haproxy.stat.proxy.mode"), "http");
    // The stats listener is a frontend and a backend of its own.
    let listen = row(&events, "stats", "FRONTEND");
    assert_eq!(num(listen, "haproxy.stat.component_type"), 0.0);
    for e in &events {
        let t = num(e, "haproxy.stat.component_type") as i64;
        let name = skiff_input_metrics::modules::haproxy::component_type_name(t).unwrap();
        let svc = get(e, "haproxy.stat.service_name").as_str().unwrap();
        match name {
            "frontend" => assert_eq!(svc, "FRONTEND"),
            "backend" => assert_eq!(svc, "BACKEND"),
            _ => assert!(svc != "FRONTEND" && svc != "BACKEND", "{svc}"),
        }
        assert!(num(e, "process.pid") > 0.0);
    }

    // stat from the stats page (`;csv` appended), with the password; the same rows.
    let page = fetch(&format!(
        "module: haproxy\nmetricsets: [stat]\nhosts: ['http://127.0.0.1:{}/haproxy?stats']\nusername: admin\npassword: s3cret\n",
        h.page
    ))
    .await;
    assert!(page.iter().all(|e| e.get("error").is_none()), "{page:?}");
    assert_eq!(page.len(), events.len());
    let web = row(&page, "web", "FRONTEND");
    assert!(num(web, "haproxy.stat.request.total") >= 5.0);
    assert_eq!(
        get(web, "service.address").as_str().unwrap(),
        format!("127.0.0.1:{}", h.page)
    );

    // A wrong password, and info over the page: error events that say why.
    let wrong = fetch(&format!(
        "module: haproxy\nhosts: ['http://admin:nope@127.0.0.1:{}/haproxy?stats']\n",
        h.page
    ))
    .await;
    assert_eq!(wrong.len(), 2, "{wrong:?}");
    let msgs: Vec<&str> = wrong
        .iter()
        .map(|e| get(e, "error.message").as_str().unwrap())
        .collect();
    assert!(
        msgs.iter().any(|m| m.contains("authentication failed")),
        "{msgs:?}"
    );
    assert!(msgs.iter().any(|m| m.contains("stats socket")), "{msgs:?}");
}

#[tokio::test]
async fn requests_are_counted_between_fetches() {
    let h = haproxy();
    let yaml = format!(
        "module: haproxy\nmetricsets: [stat]\nhosts: ['tcp://{}']\n",
        h.stats_tcp_addr()
    );
    let before = fetch(&yaml).await;
    let b = num(
        row(&before, "web", "FRONTEND"),
        "haproxy.stat.request.total",
    );
    curl(h.front, 3);
    let after = fetch(&yaml).await;
    let a = num(row(&after, "web", "FRONTEND"), "haproxy.stat.request.total");
    assert_eq!(a - b, 3.0, "{b} -> {a}");
    let s = num(row(&after, "app", "s1"), "haproxy.stat.response.http.2xx");
    assert_eq!(s, 3.0);
}

#[tokio::test]
async fn a_host_that_is_down_is_an_error_event() {
    let closed = common::closed_port();
    for host in [
        format!("tcp://127.0.0.1:{closed}"),
        "unix:///nonexistent/haproxy.sock".to_owned(),
        format!("http://127.0.0.1:{closed}/haproxy?stats"),
    ] {
        let events = fetch(&format!("module: haproxy\nhosts: ['{host}']\n")).await;
        assert_eq!(events.len(), 2, "{host}: {events:?}");
        for e in &events {
            let msg = get(e, "error.message").as_str().unwrap();
            assert!(!msg.is_empty());
            assert_eq!(get(e, "event.module"), "haproxy");
            if get(e, "metricset.name") == "stat" {
                assert!(msg.contains("error fetching"), "{host}: {msg}");
            }
        }
    }
}

impl Haproxy {
    fn stats_tcp_addr(&self) -> String {
        format!("127.0.0.1:{}", self.stats_tcp)
    }
}
