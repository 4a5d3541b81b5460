//! Each fileset against logs written by the real software, started here on free ports with
//! its logs in a temporary folder: HAProxy, nginx, Apache httpd, Redis, PostgreSQL (stderr and
//! csvlog), MariaDB (error log and slow log), OpenSSH's sshd, `su` and `login` (the auth
//! fileset, through PAM and syslog), and `logger` for syslog. The test makes requests,
//! reads the log, runs it through the fileset as the input would (multiline included), and
//! checks that every event parsed (no `error.message`), carries the fileset's main fields,
//! and that those fields have the types of the module's field list (`fields.yml`).
//!
//! The programs come from Debian packages (scripts/ensure-test-deps installs them); a missing
//! one fails the test, it does not skip it. HAProxy and `logger` log over syslog: the test
//! receives the datagrams and writes each as a syslog daemon writes its file (the `<PRI>`
//! prefix dropped), which is what the filesets read.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Map, Value, json};
use support::{Guard, Ty, check, field, free_port, parse_log, tool, wait_for, with};

/// One HTTP/1.0 request; the status line's code.
fn http_get(port: u16, path: &str, agent: &str) -> u16 {
    let mut s = wait_for(10, "the server to accept", || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    });
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: localhost\r\nUser-Agent: {agent}\r\nReferer: http://example.com/\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {out:?}"))
}

/// Syslog datagrams, as a syslog daemon writes them to its file: the `<PRI>` prefix dropped.
fn syslog_lines(sock: &UdpSocket, n: usize) -> String {
    sock.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut text = String::new();
    let mut buf = vec![0u8; 65536];
    for i in 0..n {
        let len = sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("syslog datagram {i} of {n}: {e}"));
        let msg = String::from_utf8_lossy(&buf[..len]).into_owned();
        let msg = msg.trim_end_matches('\n');
        let body = msg
            .strip_prefix('<')
            .and_then(|r| r.split_once('>'))
            .map_or(msg, |(_, rest)| rest);
        text.push_str(body);
        text.push('\n');
    }
    text
}

/// A backend that answers every request with 200 and `ok`.
fn backend() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    port
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Starts a web server whose document root is `dir/www` (with an `index.html`) and whose
/// access log is `dir/access.log`, makes a 200 and a 404 request, and runs the two access
/// log lines through `module`'s access fileset, checking the fields every access event has.
fn two_requests(
    dir: &Path,
    port: u16,
    mut server: Command,
    module: &str,
) -> (Guard, Vec<Map<String, Value>>) {
    let guard = Guard(server.stderr(Stdio::null()).spawn().unwrap());
    assert_eq!(http_get(port, "/index.html", "Mozilla/5.0 skiff"), 200);
    assert_eq!(http_get(port, "/missing.png", "curl/8.0"), 404);
    let access = wait_for(10, "two access log lines", || {
        let t = std::fs::read_to_string(dir.join("access.log")).ok()?;
        (t.lines().count() >= 2).then_some(t)
    });
    let docs = parse_log(module, "access", &access);
    check(
        &docs,
        &[
            "@timestamp",
            "source.address",
            "http.request.method",
            "url.original",
            "http.response.status_code",
            "http.response.body.bytes",
            "user_agent.original",
        ],
        &[
            ("source.ip", Ty::Ip),
            ("source.address", Ty::Keyword),
            ("http.response.status_code", Ty::Long),
            ("http.response.body.bytes", Ty::Long),
            ("http.version", Ty::Keyword),
            ("@timestamp", Ty::Date),
        ],
    );
    // The user_agent step on the agent the server logged.
    let curl = docs
        .iter()
        .find(|d| field(d, "user_agent.original") == "curl/8.0")
        .unwrap_or_else(|| panic!("no document with curl's agent: {docs:?}"));
    assert_eq!(field(curl, "user_agent.name"), "curl");
    assert_eq!(field(curl, "user_agent.version"), "8.0");
    assert_eq!(field(curl, "user_agent.device.name"), "Other");
    (guard, docs)
}

/// The error log event about `/missing.png`.
fn missing_file(docs: &[Map<String, Value>]) -> &Map<String, Value> {
    docs.iter()
        .find(|d| {
            field(d, "message")
                .as_str()
                .is_some_and(|m| m.contains("missing.png"))
        })
        .unwrap_or_else(|| panic!("no event for the missing file in {docs:#?}"))
}

#[test]
fn haproxy_http_log() {
    let dir = tempfile::tempdir().unwrap();
    let logs = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (front, back) = (free_port(), backend());
    let cfg = dir.path().join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n  log 127.0.0.1:{} local0\n  log-send-hostname skiffhost\n\
             defaults\n  mode http\n  log global\n  option httplog\n  timeout connect 5s\n  timeout client 5s\n  timeout server 5s\n\
             frontend web\n  bind 127.0.0.1:{front}\n  use_backend down if {{ path_beg /down }}\n  default_backend app\n\
             backend app\n  server app1 127.0.0.1:{back}\n\
             backend down\n",
            logs.local_addr().unwrap().port()
        ),
    )
    .unwrap();
    let _haproxy = Guard(
        Command::new(tool("haproxy"))
            .args(["-db", "-f"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert_eq!(http_get(front, "/", "curl/8.0"), 200);
    assert_eq!(http_get(front, "/down/x?y=1", "curl/8.0"), 503);
    let docs = parse_log("haproxy", "log", &syslog_lines(&logs, 2));
    check(
        &docs,
        &[
            "@timestamp",
            "source.ip",
            "source.port",
            "http.response.status_code",
            "haproxy.frontend_name",
            "haproxy.backend_name",
            "haproxy.server_name",
            "event.duration",
            "http.request.method",
            "url.original",
            "process.pid",
        ],
        &[
            ("source.ip", Ty::Ip),
            ("source.port", Ty::Long),
            ("process.pid", Ty::Long),
            ("http.response.status_code", Ty::Long),
            ("http.response.bytes", Ty::Long),
            ("haproxy.bytes_read", Ty::Long),
            ("haproxy.total_waiting_time_ms", Ty::Long),
            ("haproxy.connections.active", Ty::Long),
            ("haproxy.backend_queue", Ty::Long),
            ("event.duration", Ty::Long),
            ("haproxy.termination_state", Ty::Keyword),
            ("@timestamp", Ty::Date),
        ],
    );
    let ok = with(&docs, "http.response.status_code", &json!(200));
    assert_eq!(ok.len(), 1);
    assert_eq!(field(ok[0], "haproxy.server_name"), "app1");
    assert_eq!(field(ok[0], "event.outcome"), "success");
    let down = with(&docs, "http.response.status_code", &json!(503));
    assert_eq!(field(down[0], "haproxy.server_name"), "<NOSRV>");
    assert_eq!(field(down[0], "url.original"), "/down/x?y=1");
    assert_eq!(field(down[0], "event.outcome"), "failure");
}

#[test]
fn nginx_access_and_error_logs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let port = free_port();
    std::fs::create_dir(dir.path().join("www")).unwrap();
    std::fs::write(dir.path().join("www/index.html"), "hi").unwrap();
    let cfg = dir.path().join("nginx.conf");
    std::fs::write(
        &cfg,
        format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log {d}/access.log combined;\n  client_body_temp_path {d}/tmp;\n  proxy_temp_path {d}/tmp;\n  fastcgi_temp_path {d}/tmp;\n\
               server {{ listen 127.0.0.1:{port}; root {d}/www; }}\n}}\n"
        ),
    )
    .unwrap();
    let mut nginx = Command::new(tool("nginx"));
    nginx.arg("-c").arg(&cfg);
    let (_nginx, docs) = two_requests(dir.path(), port, nginx, "nginx");
    assert_eq!(field(&docs[0], "user_agent.original"), "Mozilla/5.0 skiff");
    assert_eq!(
        field(&docs[0], "http.request.referrer"),
        "http://example.com/"
    );
    assert_eq!(field(&docs[1], "event.outcome"), "failure");

    let errors = read(&dir.path().join("error.log"));
    let docs = parse_log("nginx", "error", &errors);
    check(
        &docs,
        &["@timestamp", "log.level", "process.pid", "message"],
        &[
            ("process.pid", Ty::Long),
            ("process.thread.id", Ty::Long),
            ("nginx.error.connection_id", Ty::Long),
            ("@timestamp", Ty::Date),
        ],
    );
    assert_eq!(field(missing_file(&docs), "log.level"), "error");
}

#[test]
fn apache_access_and_error_logs() {
    let dir = tempfile::tempdir().unwrap();
    // httpd serves as www-data: the folder must be readable.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let d = dir.path().display();
    let port = free_port();
    std::fs::create_dir(dir.path().join("www")).unwrap();
    std::fs::write(dir.path().join("www/index.html"), "hi").unwrap();
    let m = "/usr/lib/apache2/modules";
    let cfg = dir.path().join("httpd.conf");
    std::fs::write(
        &cfg,
        format!(
            "ServerRoot {d}\nServerName localhost\nListen 127.0.0.1:{port}\nPidFile {d}/httpd.pid\n\
             LoadModule mpm_prefork_module {m}/mod_mpm_prefork.so\nLoadModule authz_core_module {m}/mod_authz_core.so\n\
             User www-data\nGroup www-data\nDocumentRoot {d}/www\nLogLevel info\nErrorLog {d}/error.log\n\
             LogFormat \"%h %l %u %t \\\"%r\\\" %>s %O \\\"%{{Referer}}i\\\" \\\"%{{User-Agent}}i\\\"\" combined\n\
             CustomLog {d}/access.log combined\n"
        ),
    )
    .unwrap();
    let mut httpd = Command::new(tool("apache2"));
    httpd.args(["-X", "-f"]).arg(&cfg);
    let (_httpd, docs) = two_requests(dir.path(), port, httpd, "apache");
    assert_eq!(field(&docs[1], "http.response.status_code"), 404);

    let errors = read(&dir.path().join("error.log"));
    let docs = parse_log("apache", "error", &errors);
    check(
        &docs,
        &["@timestamp", "log.level", "message"],
        &[
            ("process.pid", Ty::Long),
            ("source.ip", Ty::Ip),
            ("source.port", Ty::CoercedLong),
            ("@timestamp", Ty::Date),
        ],
    );
    missing_file(&docs);
}

#[test]
fn redis_server_log() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = dir.path().join("redis-server.log");
    let server = Guard(
        Command::new(tool("redis-server"))
            .args(["--bind", "127.0.0.1", "--save", ""])
            .arg("--port")
            .arg(port.to_string())
            .arg("--logfile")
            .arg(&log)
            .arg("--dir")
            .arg(dir.path())
            .spawn()
            .unwrap(),
    );
    wait_for(15, "redis to be ready", || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|t| t.contains("Ready to accept connections"))
    });
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"SHUTDOWN NOSAVE\r\n").unwrap();
    let mut server = server;
    let _ = server.0.wait();
    let docs = parse_log("redis", "log", &read(&log));
    check(
        &docs,
        &[
            "@timestamp",
            "log.level",
            "message",
            "process.pid",
            "redis.log.role",
        ],
        &[
            ("process.pid", Ty::Long),
            ("redis.log.role", Ty::Keyword),
            ("@timestamp", Ty::Date),
        ],
    );
    assert!(docs.iter().any(|d| field(d, "redis.log.role") == "master"));
    assert!(docs.iter().any(|d| {
        field(d, "log.level") == "warning"
            && field(d, "message")
                .as_str()
                .is_some_and(|m| m.contains("shutdown"))
    }));
}

/// Runs a command as the `postgres` user (PostgreSQL refuses to run as root).
fn as_postgres(prog: &str) -> Command {
    let mut c = Command::new(tool("setpriv"));
    c.args([
        "--reuid=postgres",
        "--regid=postgres",
        "--init-groups",
        "--reset-env",
    ])
    .arg(tool(prog));
    c
}

#[test]
fn postgresql_stderr_and_csv_logs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let st = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(d)
        .status()
        .unwrap();
    assert!(st.success());
    let st = as_postgres("initdb")
        .args(["-A", "trust", "-U", "postgres", "-D"])
        .arg(d.join("data"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "initdb failed");
    let port = free_port().to_string();
    let _pg = Guard(
        as_postgres("postgres")
            .arg("-D")
            .arg(d.join("data"))
            .args(["-p", &port, "-c", "listen_addresses=127.0.0.1", "-k"])
            .arg(d)
            .args([
                "-c",
                "logging_collector=on",
                "-c",
                "log_destination=stderr,csvlog",
                "-c",
                &format!("log_directory={}", d.join("log").display()),
                "-c",
                "log_filename=postgresql-16-main.log",
                "-c",
                "log_line_prefix=%m [%p] %q%u@%d ",
                "-c",
                "log_min_duration_statement=0",
                "-c",
                "log_connections=on",
                "-c",
                "log_disconnections=on",
            ])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(30, "postgres to accept connections", || {
        Command::new(tool("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &port])
            .stdout(Stdio::null())
            .status()
            .ok()
            .filter(|s| s.success())
    });
    let out = Command::new(tool("psql"))
        .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres"])
        .args(["-c", "SELECT 1;", "-c", "SELECT *\n  FROM no_such_table;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!out.success(), "the query of a missing table should fail");
    let stderr_log = d.join("log/postgresql-16-main.log");
    let csv_log = d.join("log/postgresql-16-main.csv");
    let (text, csv) = wait_for(15, "the disconnection in both logs", || {
        let t = std::fs::read_to_string(&stderr_log).ok()?;
        let c = std::fs::read_to_string(&csv_log).ok()?;
        (t.contains("disconnection") && c.contains("disconnection")).then_some((t, c))
    });
    let types = [
        ("process.pid", Ty::Long),
        ("event.duration", Ty::Long),
        ("postgresql.log.client_port", Ty::Long),
        ("postgresql.log.transaction_id", Ty::Long),
        ("postgresql.log.session_start_time", Ty::Date),
        ("@timestamp", Ty::Date),
    ];
    let docs = parse_log("postgresql", "log", &text);
    check(&docs, &["@timestamp", "log.level", "process.pid"], &types);
    let dur = docs
        .iter()
        .find(|d| d.contains_key("event.duration"))
        .unwrap_or_else(|| panic!("no duration event in {docs:#?}"));
    assert_eq!(field(dur, "user.name"), "postgres");
    assert_eq!(field(dur, "postgresql.log.database"), "postgres");
    assert!(
        docs.iter()
            .any(|d| d.get("log.level") == Some(&json!("ERROR"))
                && d.get("message")
                    .and_then(Value::as_str)
                    .is_some_and(|m| m.contains("no_such_table"))),
        "no ERROR event in {docs:#?}"
    );

    // csvlog: process.pid stays text there, as in Filebeat's CSV pipeline.
    let types = [
        ("process.pid", Ty::CoercedLong),
        ("event.duration", Ty::Long),
        ("postgresql.log.client_port", Ty::Long),
        ("postgresql.log.transaction_id", Ty::Long),
        ("postgresql.log.session_start_time", Ty::Date),
        ("@timestamp", Ty::Date),
    ];
    let docs = parse_log("postgresql", "log", &csv);
    check(
        &docs,
        &[
            "@timestamp",
            "log.level",
            "process.pid",
            "postgresql.log.sql_state_code",
        ],
        &types,
    );
    let error = with(&docs, "postgresql.log.sql_state_code", &json!("42P01"));
    assert_eq!(error.len(), 1, "{docs:#?}");
    assert_eq!(field(error[0], "event.type"), &json!(["error"]));
    assert_eq!(
        field(error[0], "postgresql.log.query"),
        "SELECT *\n  FROM no_such_table;"
    );
    assert!(
        docs.iter()
            .any(|d| field(d, "postgresql.log.client_addr") == "127.0.0.1")
    );
}

#[test]
fn mariadb_error_and_slow_logs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let st = Command::new(tool("mariadb-install-db"))
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .args([
            "--user=root",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "mariadb-install-db failed");
    let port = free_port().to_string();
    let mut server = Guard(
        Command::new(tool("mariadbd"))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", d.join("sock").display()))
            .arg(format!("--log-error={}", d.join("error.log").display()))
            .arg(format!(
                "--slow-query-log-file={}",
                d.join("slow.log").display()
            ))
            .args([
                "--user=root",
                "--bind-address=127.0.0.1",
                &format!("--port={port}"),
                "--slow-query-log=1",
                "--long-query-time=0",
                "--log-slow-verbosity=query_plan",
                "--skip-log-bin",
            ])
            .spawn()
            .unwrap(),
    );
    let client = || {
        let mut c = Command::new(tool("mariadb"));
        c.args(["-h", "127.0.0.1", "-P", &port, "-u", "root"]);
        c
    };
    wait_for(60, "mariadb to accept connections", || {
        client()
            .args(["-e", "SELECT 1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()
            .filter(|s| s.success())
    });
    let st = client()
        .args([
            "-e",
            "SELECT SLEEP(0.01);\nSELECT COUNT(*)\n  FROM mysql.user;",
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    // A clean shutdown writes its notes to the error log.
    let _ = Command::new("kill").arg(server.0.id().to_string()).status();
    let _ = server.0.wait();

    let docs = parse_log("mysql", "error", &read(&d.join("error.log")));
    check(
        &docs,
        &["@timestamp", "log.level", "message"],
        &[("mysql.thread_id", Ty::Long), ("@timestamp", Ty::Date)],
    );
    assert!(docs.iter().any(|d| {
        field(d, "message")
            .as_str()
            .is_some_and(|m| m.contains("ready for connections"))
    }));

    let docs = parse_log("mysql", "slowlog", &read(&d.join("slow.log")));
    check(
        &docs,
        &[
            "@timestamp",
            "user.name",
            "event.duration",
            "mysql.slowlog.query",
            "mysql.slowlog.rows_sent",
            "mysql.thread_id",
        ],
        &[
            ("event.duration", Ty::Long),
            ("mysql.thread_id", Ty::Long),
            ("mysql.slowlog.lock_time.sec", Ty::Float),
            ("mysql.slowlog.rows_sent", Ty::Long),
            ("mysql.slowlog.rows_examined", Ty::Long),
            ("mysql.slowlog.rows_affected", Ty::Long),
            ("mysql.slowlog.query_cache_hit", Ty::Bool),
            ("mysql.slowlog.full_scan", Ty::Bool),
            ("mysql.slowlog.filesort", Ty::Bool),
            ("source.ip", Ty::Ip),
            ("@timestamp", Ty::Date),
        ],
    );
    let count = docs
        .iter()
        .find(|d| {
            field(d, "mysql.slowlog.query")
                .as_str()
                .is_some_and(|q| q.contains("COUNT(*)"))
        })
        .unwrap_or_else(|| panic!("no slow log event of the COUNT query in {docs:#?}"));
    assert_eq!(
        field(count, "mysql.slowlog.query"),
        "SELECT COUNT(*)\n  FROM mysql.user;"
    );
    assert_eq!(field(count, "user.name"), "root");
    // MariaDB writes `Schema:` with no name before `QC_hit:`; neither is taken for the other.
    assert_eq!(field(count, "mysql.slowlog.query_cache_hit"), false);
    assert!(!count.contains_key("mysql.slowlog.schema"), "{count:#?}");
}

#[test]
fn syslog_from_logger() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port().to_string();
    let st = Command::new(tool("logger"))
        .args([
            "--udp",
            "--server",
            "127.0.0.1",
            "--port",
            &port,
            "--rfc3164",
        ])
        .args(["-t", "skifftest", "--id=4242", "hello from logger"])
        .status()
        .unwrap();
    assert!(st.success());
    let docs = parse_log("system", "syslog", &syslog_lines(&sock, 1));
    check(
        &docs,
        &[
            "@timestamp",
            "host.hostname",
            "process.name",
            "process.pid",
            "message",
        ],
        &[("process.pid", Ty::Long), ("@timestamp", Ty::Date)],
    );
    assert_eq!(field(&docs[0], "process.name"), "skifftest");
    assert_eq!(field(&docs[0], "process.pid"), 4242);
    assert_eq!(field(&docs[0], "message"), "hello from logger");
}

/// Collects what programs run by [`with_dev_log`] send to syslog, as rsyslog writes it to
/// `/var/log/auth.log`: glibc's `syslog(3)` sends `<PRI>Mmm dd hh:mm:ss tag[pid]: text` over
/// `/dev/log` without a host name; the daemon drops `<PRI>` and puts its host name after the
/// time stamp. It reads from the start, on a thread: a datagram socket queues only
/// `net.unix.max_dgram_qlen` (10) messages, and senders block until they are read.
fn dev_log_collector(
    sock: std::os::unix::net::UnixDatagram,
) -> std::sync::Arc<std::sync::Mutex<String>> {
    let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let out = text.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok(len) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..len]).into_owned();
            let body = msg
                .strip_prefix('<')
                .and_then(|r| r.split_once('>'))
                .map_or(msg.as_str(), |(_, rest)| rest);
            let (stamp, rest) = body.split_at_checked(15).unwrap_or(("", body));
            out.lock()
                .unwrap()
                .push_str(&format!("{stamp} skifftest{rest}\n"));
        }
    });
    text
}

/// `prog args` in a mount namespace of its own whose `/dev/log` is `sock`: an overlay on
/// `/dev` (the real device nodes stay usable) with one symbolic link added, and terminals of
/// its own (`login` needs one), so the program's `syslog(3)` messages reach the test and
/// nothing of the machine's `/dev` changes.
fn with_dev_log(dir: &Path, sock: &Path, prog: &Path, args: &[&str]) -> Command {
    for d in ["up", "work"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let script = format!(
        "mount -t overlay overlay -o lowerdir=/dev,upperdir={up},workdir={work} /dev \
         && mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts \
         && ln -sf pts/ptmx /dev/ptmx && ln -s {sock} /dev/log && exec \"$@\"",
        up = dir.join("up").display(),
        work = dir.join("work").display(),
        sock = sock.display(),
    );
    let mut cmd = Command::new(tool("unshare"));
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
        "sh",
    ])
    .arg(prog)
    .args(args);
    cmd
}

/// The auth fileset against what a real OpenSSH server, `su` and `login` log through PAM and
/// syslog: a public-key login, a wrong password, an unknown user, a `su` session and a
/// `login` session. Needs root (sshd and the mount namespace), as the CI has.
#[test]
fn system_auth_from_sshd_su_and_login() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let d = p.display();
    let sock_path = p.join("log.sock");
    let syslog = dev_log_collector(std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap());
    let keygen = |name: &str| {
        let st = Command::new(tool("ssh-keygen"))
            .args(["-q", "-t", "ed25519", "-N", ""])
            .arg("-f")
            .arg(p.join(name))
            .status()
            .unwrap();
        assert!(st.success(), "ssh-keygen {name}");
    };
    keygen("host_key");
    keygen("id");
    std::fs::copy(p.join("id.pub"), p.join("authorized_keys")).unwrap();
    let port = free_port();
    std::fs::write(
        p.join("sshd_config"),
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n\
             AuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\nUsePAM yes\n\
             StrictModes no\nPermitRootLogin prohibit-password\nPasswordAuthentication yes\n\
             KbdInteractiveAuthentication no\nSyslogFacility AUTH\nLogLevel INFO\n"
        ),
    )
    .unwrap();
    // sshd's privilege separation directory (made by its systemd unit on a normal system).
    std::fs::create_dir_all("/run/sshd").unwrap();
    let ns = p.join("ns");
    let _sshd = Guard(
        with_dev_log(
            &ns,
            &sock_path,
            &tool("sshd"),
            &["-D", "-f", &format!("{d}/sshd_config")],
        )
        .spawn()
        .unwrap(),
    );
    wait_for(15, "sshd listening", || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    });
    std::fs::write(p.join("askpass"), "#!/bin/sh\necho not-the-password\n").unwrap();
    std::fs::set_permissions(
        p.join("askpass"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let ssh = |user: &str, extra: &[&str]| {
        Command::new(tool("ssh"))
            .args(["-p", &port.to_string(), "-o", "StrictHostKeyChecking=no"])
            .args(["-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"])
            .args(extra)
            .arg(format!("{user}@127.0.0.1"))
            .arg("true")
            .env("SSH_ASKPASS", p.join("askpass"))
            .env("SSH_ASKPASS_REQUIRE", "force")
            .stdin(Stdio::null())
            .status()
            .unwrap()
    };
    let key = format!("{d}/id");
    assert!(ssh("root", &["-i", &key, "-o", "BatchMode=yes"]).success());
    assert!(
        !ssh(
            "nobody",
            &[
                "-o",
                "PubkeyAuthentication=no",
                "-o",
                "NumberOfPasswordPrompts=1"
            ]
        )
        .success()
    );
    assert!(!ssh("nosuchuser", &["-i", &key, "-o", "BatchMode=yes"]).success());
    let st = with_dev_log(
        &p.join("ns-su"),
        &sock_path,
        &tool("su"),
        &["-s", "/bin/sh", "-c", "true", "nobody"],
    )
    .status()
    .unwrap();
    assert!(st.success(), "su");
    // `login -f` (root logging a user in without a password) on a terminal of its own.
    let st = with_dev_log(
        &p.join("ns-login"),
        &sock_path,
        &tool("script"),
        &["-qec", "login -f nobody", "/dev/null"],
    )
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .status()
    .unwrap();
    let _ = st; // nobody's shell refuses the session; what matters is what login logged.
    let wanted = [
        "Accepted publickey for root",
        "Failed password for nobody",
        "Invalid user nosuchuser",
        "pam_unix(su:session): session opened",
        "pam_unix(login:session): session opened",
    ];
    let log = wait_for(20, "the five kinds of auth messages", || {
        let t = syslog.lock().unwrap().clone();
        wanted.iter().all(|w| t.contains(w)).then_some(t)
    });
    let docs = parse_log("system", "auth", &log);
    check(
        &docs,
        &[
            "@timestamp",
            "host.hostname",
            "process.name",
            "process.pid",
            "message",
        ],
        &[
            ("process.pid", Ty::Long),
            ("source.port", Ty::Long),
            ("source.ip", Ty::Ip),
            ("@timestamp", Ty::Date),
        ],
    );
    let one = |event: &str, user: &str| {
        let found: Vec<_> = with(&docs, "system.auth.ssh.event", &json!(event))
            .into_iter()
            .filter(|d| d.get("user.name") == Some(&json!(user)))
            .collect();
        assert_eq!(found.len(), 1, "{event} for {user} in:\n{log}");
        found[0]
    };
    let accepted = one("Accepted", "root");
    assert_eq!(field(accepted, "system.auth.ssh.method"), "publickey");
    assert_eq!(field(accepted, "source.ip"), "127.0.0.1");
    assert_eq!(field(accepted, "event.outcome"), "success");
    assert!(
        field(accepted, "system.auth.ssh.signature")
            .as_str()
            .is_some_and(|s| s.starts_with("ED25519 SHA256:")),
        "{accepted:#?}"
    );
    let failed = one("Failed", "nobody");
    assert_eq!(field(failed, "system.auth.ssh.method"), "password");
    assert_eq!(field(failed, "event.outcome"), "failure");
    let invalid = one("Invalid", "nosuchuser");
    assert_eq!(field(invalid, "event.outcome"), "failure");
    assert_eq!(field(invalid, "event.category"), &json!(["authentication"]));
    for prog in ["su", "login"] {
        assert!(
            docs.iter().any(|d| field(d, "process.name") == prog
                && field(d, "message").as_str().is_some_and(
                    |m| m.starts_with(&format!("pam_unix({prog}:session): session opened"))
                )),
            "no {prog} session in:\n{log}"
        );
    }
}
