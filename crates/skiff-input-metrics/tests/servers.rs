//! Modules against real servers started by the tests on free ports: redis-server (with a
//! password), nats-server (with its monitoring port), memcached and nginx (stub_status).
//! Fields present, typed and plausible; a wrong password's `error.message`; a down host.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};

use common::{fetch, free_port, get, num, start};

fn redis_cmd(port: u16, cmd: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(cmd.as_bytes()).unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn redis_info_keyspace_and_a_wrong_password() {
    let port = free_port();
    let _srv = start(
        "redis-server",
        &[
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--requirepass",
            "s3cret",
            "--save",
            "",
            "--dir",
            "{dir}",
        ],
        port,
    );
    let set = redis_cmd(port, "AUTH s3cret\r\nSET k v\r\nEXPIRE k 1000\r\n");
    assert!(set.contains("+OK"), "{set}");
    let base =
        format!("module: redis\nmetricsets: [info, keyspace]\nhosts: ['127.0.0.1:{port}']\n");
    let events = fetch(&format!("{base}password: s3cret\n")).await;
    assert_eq!(events.len(), 2, "{events:?}");
    let info = events
        .iter()
        .find(|e| get(e, "metricset.name") == "info")
        .unwrap();
    assert!(info.get("error").is_none(), "{info:?}");
    assert!(num(info, "redis.info.clients.connected") >= 1.0);
    assert_eq!(num(info, "redis.info.server.tcp_port"), f64::from(port));
    assert!(
        get(info, "service.version")
            .as_str()
            .unwrap()
            .chars()
            .next()
            .unwrap()
            .is_ascii_digit()
    );
    assert!(num(info, "process.pid") > 0.0);
    assert!(num(info, "redis.info.memory.used.value") > 0.0);
    assert_eq!(get(info, "redis.info.replication.role"), "master");
    assert_eq!(get(info, "redis.info.persistence.loading"), false);
    assert!(num(info, "redis.info.stats.commands_processed") >= 3.0);
    assert!(num(info, "redis.info.commandstats.set.calls") >= 1.0);
    assert_eq!(num(info, "redis.info.slowlog.count"), 0.0);
    assert_eq!(
        get(info, "service.address").as_str().unwrap(),
        format!("127.0.0.1:{port}")
    );
    let ks = events
        .iter()
        .find(|e| get(e, "metricset.name") == "keyspace")
        .unwrap();
    assert_eq!(get(ks, "redis.keyspace.id"), "db0");
    assert_eq!(num(ks, "redis.keyspace.keys"), 1.0);
    assert_eq!(num(ks, "redis.keyspace.expires"), 1.0);

    let wrong = fetch(&format!("{base}password: nope\n")).await;
    for e in &wrong {
        let msg = get(e, "error.message").as_str().unwrap();
        assert!(
            msg.contains("authentication failed") && msg.contains(&port.to_string()),
            "{msg}"
        );
    }
    let none = fetch(&base).await;
    let msg = get(&none[0], "error.message").as_str().unwrap();
    assert!(msg.contains("NOAUTH") && msg.contains("password"), "{msg}");
    // redis:// URLs carry the password.
    let url = fetch(&format!(
        "module: redis\nmetricsets: [info]\nhosts: ['redis://:s3cret@127.0.0.1:{port}']\n"
    ))
    .await;
    assert!(url[0].get("error").is_none(), "{:?}", url[0]);
}

#[tokio::test]
async fn nats_monitoring_endpoints() {
    let (port, mon) = (free_port(), free_port());
    let _srv = start(
        "nats-server",
        &[
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-m",
            &mon.to_string(),
            "-js",
            "-sd",
            "{dir}",
        ],
        mon,
    );
    // A client connection, so that connz has one (the client port may open after the
    // monitoring port).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut c = loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(c) => break c,
            Err(e) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "nats client port: {e}"
                );
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    };
    let mut buf = [0u8; 2048];
    let _ = c.read(&mut buf).unwrap();
    c.write_all(b"CONNECT {\"name\":\"skiff-test\",\"verbose\":false}\r\nSUB foo 1\r\nPING\r\n")
        .unwrap();
    let _ = c.read(&mut buf).unwrap();
    let events = fetch(&format!(
        "module: nats\nmetricsets: [stats, connections, connection, routes, subscriptions, jetstream]\nhosts: ['127.0.0.1:{mon}']\njetstream.stats.enabled: true\n"
    ))
    .await;
    for e in &events {
        assert!(e.get("error").is_none(), "{e:?}");
        if get(e, "metricset.name") == "subscriptions" {
            continue; // /subsz names no server
        }
        assert!(get(e, "nats.server.id").is_string());
        assert!(get(e, "nats.server.time").as_str().unwrap().ends_with('Z'));
    }
    let by = |m: &str| {
        events
            .iter()
            .find(|e| get(e, "metricset.name") == m)
            .unwrap_or_else(|| panic!("{m}: {events:?}"))
    };
    let stats = by("stats");
    assert!(num(stats, "nats.stats.uptime") >= 0.0);
    assert!(num(stats, "nats.stats.mem.bytes") > 0.0);
    assert!(num(stats, "nats.stats.total_connections") >= 1.0);
    assert!(num(stats, "nats.stats.in.messages") >= 0.0);
    assert_eq!(num(by("connections"), "nats.connections.total"), 1.0);
    let conn = by("connection");
    assert_eq!(get(conn, "nats.connection.name"), "skiff-test");
    assert_eq!(num(conn, "nats.connection.subscriptions"), 1.0);
    assert_eq!(num(by("routes"), "nats.routes.total"), 0.0);
    assert!(num(by("subscriptions"), "nats.subscriptions.total") >= 1.0);
    let js = by("jetstream");
    assert_eq!(get(js, "nats.jetstream.category"), "stats");
    assert!(num(js, "nats.jetstream.stats.config.max_memory") > 0.0);
}

#[tokio::test]
async fn memcached_stats() {
    let port = free_port();
    let _srv = start(
        "memcached",
        &[
            "-l",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "0",
            "-u",
            "root",
        ],
        port,
    );
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"set a 0 0 1\r\nx\r\nget a\r\nget b\r\n")
        .unwrap();
    let mut buf = [0u8; 256];
    let _ = c.read(&mut buf).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let events = fetch(&format!("module: memcached\nhosts: ['127.0.0.1:{port}']\n")).await;
    let e = &events[0];
    assert!(e.get("error").is_none(), "{e:?}");
    assert!(num(e, "memcached.stats.pid") > 0.0);
    assert_eq!(num(e, "memcached.stats.cmd.set"), 1.0);
    assert!(num(e, "memcached.stats.get.hits") >= 1.0);
    assert!(num(e, "memcached.stats.get.misses") >= 1.0);
    assert_eq!(num(e, "memcached.stats.items.current"), 1.0);
    assert!(num(e, "memcached.stats.bytes.limit") > 0.0);
    assert!(num(e, "memcached.stats.connections.current") >= 1.0);
}

#[tokio::test]
async fn nginx_stub_status_counts_requests_between_fetches() {
    let port = free_port();
    let conf = format!(
        "daemon off; pid {{dir}}/nginx.pid; error_log {{dir}}/error.log; events {{}}\n\
         http {{ access_log off; client_body_temp_path {{dir}}; proxy_temp_path {{dir}}; fastcgi_temp_path {{dir}}; uwsgi_temp_path {{dir}}; scgi_temp_path {{dir}};\n\
         server {{ listen 127.0.0.1:{port}; location /nginx_status {{ stub_status; }} }} }}\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let conf = conf.replace("{dir}", &dir.path().display().to_string());
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let _srv = start(
        "nginx",
        &[
            "-c",
            path.to_str().unwrap(),
            "-p",
            dir.path().to_str().unwrap(),
        ],
        port,
    );
    let yaml = format!(
        "module: nginx\nhosts: ['http://127.0.0.1:{port}']\nserver_status_path: /nginx_status\n"
    );
    let mut block = common::block(&yaml);
    let first = block.fetch_all_once().await;
    let e = &first[0];
    assert!(e.get("error").is_none(), "{e:?}");
    assert!(num(e, "nginx.stubstatus.active") >= 1.0);
    assert_eq!(
        num(e, "nginx.stubstatus.current"),
        num(e, "nginx.stubstatus.requests")
    );
    assert_eq!(num(e, "nginx.stubstatus.dropped"), 0.0);
    assert_eq!(
        get(e, "nginx.stubstatus.hostname").as_str().unwrap(),
        format!("127.0.0.1:{port}")
    );
    let second = block.fetch_all_once().await;
    // One request (the first fetch) since... plus this one.
    let cur = num(&second[0], "nginx.stubstatus.current");
    assert!((1.0..=2.0).contains(&cur), "{cur}");
    // A wrong path is an error event, not a parse of the 404 page.
    let bad = fetch(&format!(
        "module: nginx\nhosts: ['http://127.0.0.1:{port}']\n"
    ))
    .await;
    let msg = get(&bad[0], "error.message").as_str().unwrap();
    assert!(msg.contains("404"), "{msg}");
}

#[tokio::test]
async fn apache_status_from_a_real_apache2() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let conf = format!(
        "ServerRoot {d}\nDefaultRuntimeDir {d}\nListen 127.0.0.1:{port}\nPidFile {d}/httpd.pid\nErrorLog {d}/error.log\nServerName localhost\n\
         LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so\n\
         LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so\n\
         LoadModule status_module /usr/lib/apache2/modules/mod_status.so\n\
         User nobody\nGroup nogroup\nExtendedStatus On\n\
         <Location /server-status>\n  SetHandler server-status\n  Require all granted\n</Location>\n"
    );
    let path = dir.path().join("httpd.conf");
    std::fs::write(&path, conf).unwrap();
    let _srv = start(
        "apache2",
        &["-f", path.to_str().unwrap(), "-DFOREGROUND"],
        port,
    );
    let mut block = common::block(&format!(
        "module: apache\nhosts: ['http://127.0.0.1:{port}']\n"
    ));
    let first = block.fetch_all_once().await;
    let e = &first[0];
    assert!(e.get("error").is_none(), "{e:?}");
    assert_eq!(
        get(e, "apache.status.hostname").as_str().unwrap(),
        format!("127.0.0.1:{port}")
    );
    assert!(num(e, "apache.status.workers.idle") >= 1.0);
    assert!(
        num(e, "apache.status.workers.busy") >= 1.0,
        "the status request itself"
    );
    assert!(num(e, "apache.status.uptime.server_uptime") >= 0.0);
    assert!(num(e, "apache.status.load.1") >= 0.0);
    assert!(num(e, "apache.status.connections.async.writing") >= 0.0);
    let sb = get(e, "apache.status.scoreboard").as_object().unwrap();
    let sum: f64 = sb
        .iter()
        .filter(|(k, _)| *k != "total")
        .map(|(_, v)| v.as_f64().unwrap())
        .sum();
    assert_eq!(sum, num(e, "apache.status.scoreboard.total"));
    assert!(num(e, "apache.status.scoreboard.sending_reply") >= 1.0);
    let second = block.fetch_all_once().await;
    assert!(
        num(&second[0], "apache.status.total_accesses") >= 1.0,
        "the first fetch was counted"
    );
}

#[tokio::test]
async fn prometheus_collector_scrapes_a_real_prometheus() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!("global: {{scrape_interval: 1s}}\nscrape_configs: [{{job_name: self, static_configs: [{{targets: ['127.0.0.1:{port}']}}]}}]\n"),
    )
    .unwrap();
    let _srv = start(
        "prometheus",
        &[
            &format!("--config.file={}", cfg.display()),
            "--storage.tsdb.path={dir}/data",
            &format!("--web.listen-address=127.0.0.1:{port}"),
        ],
        port,
    );
    // Prometheus listens before it serves /metrics fully; retry briefly.
    let yaml = format!(
        "module: prometheus\nhosts: ['127.0.0.1:{port}']\nmetrics_count: true\nmetrics_filters:\n  include: ['^go_', '^prometheus_tsdb_compaction_duration']\n  exclude: ['^go_memstats_']\n"
    );
    let mut events = Vec::new();
    for _ in 0..50 {
        events = fetch(&yaml).await;
        if events.len() > 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(events.len() > 3, "{events:?}");
    let mut saw_bucket = false;
    let mut saw_quantile = false;
    for e in &events {
        assert!(e.get("error").is_none(), "{e:?}");
        assert_eq!(get(e, "prometheus.labels.job"), "prometheus");
        assert_eq!(
            get(e, "prometheus.labels.instance").as_str().unwrap(),
            format!("127.0.0.1:{port}")
        );
        let metrics = get(e, "prometheus.metrics").as_object().unwrap();
        assert_eq!(num(e, "metrics_count"), metrics.len() as f64);
        for (name, v) in metrics {
            assert!(
                name == "up"
                    || (name.starts_with("go_") && !name.starts_with("go_memstats_"))
                    || name.starts_with("prometheus_tsdb_compaction_duration"),
                "filtered out: {name}"
            );
            assert!(v.as_f64().unwrap().is_finite());
        }
        let labels = get(e, "prometheus.labels").as_object().unwrap();
        saw_bucket |= labels.contains_key("le") && metrics.keys().any(|k| k.ends_with("_bucket"));
        saw_quantile |= labels.contains_key("quantile");
    }
    assert!(saw_bucket, "histogram buckets keyed by le");
    assert!(
        saw_quantile,
        "summary quantiles keyed by quantile (go_gc_duration_seconds)"
    );
    let base = events
        .iter()
        .find(|e| get(e, "prometheus.labels").as_object().unwrap().len() == 2)
        .unwrap();
    assert_eq!(num(base, "prometheus.metrics.up"), 1.0);
    assert!(num(base, "prometheus.metrics.go_goroutines") > 0.0);

    // query: a scalar at once; the `up` series once Prometheus scraped itself.
    let q = format!(
        "module: prometheus\nmetricsets: [query]\nhosts: ['127.0.0.1:{port}']\nqueries:\n  - {{name: two, params: {{query: '1+1'}}}}\n  - {{name: up, params: {{query: 'up'}}}}\n  - {{name: bad, params: {{query: 'up{{'}}}}\n"
    );
    let mut got = Vec::new();
    for _ in 0..100 {
        got = fetch(&q).await;
        if got.iter().any(|e| {
            e.get("prometheus")
                .is_some_and(|p| p["query"].get("up").is_some())
        }) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let two = got
        .iter()
        .find(|e| {
            e.get("prometheus")
                .is_some_and(|p| p["query"].get("two").is_some())
        })
        .unwrap();
    assert_eq!(num(two, "prometheus.query.two"), 2.0);
    assert_eq!(get(two, "event.dataset"), "prometheus.query");
    let up = got
        .iter()
        .find(|e| {
            e.get("prometheus")
                .is_some_and(|p| p["query"].get("up").is_some())
        })
        .unwrap();
    assert_eq!(num(up, "prometheus.query.up"), 1.0);
    assert_eq!(get(up, "prometheus.labels.job"), "self");
    let bad = got.iter().find(|e| e.contains_key("error")).unwrap();
    assert!(
        get(bad, "error.message").as_str().unwrap().contains("400"),
        "{bad:?}"
    );

    // A host that is down: up 0 plus the error.
    let down = fetch(&format!(
        "module: prometheus\nhosts: ['127.0.0.1:{}']\n",
        common::closed_port()
    ))
    .await;
    assert_eq!(down.len(), 2);
    assert!(
        down.iter()
            .any(|e| e.get("prometheus").is_some_and(|p| p["metrics"]["up"] == 0))
    );
    assert!(down.iter().any(|e| {
        e.get("error")
            .and_then(|x| x.get("message"))
            .and_then(|m| m.as_str())
            .is_some_and(|m| m.contains("unable to decode"))
    }));
}
