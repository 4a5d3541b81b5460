//! The mysql module against real MariaDB servers: the one running on this machine
//! (127.0.0.1:3306, root without a password) and one the test starts on a free port and a
//! Unix socket with `performance_schema` on (the machine's has it off, as MariaDB's default).
//! Fields present with the types of the corpus' example events, values plausible, counters
//! growing across fetches, the down-host event and a wrong password's `error.message`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::example::{assert_shape, load};
use common::{Server, block, closed_port, fetch, free_port, get, need, num, start};
use mysql_async::prelude::Queryable;

/// The MariaDB server running on this machine.
const SHARED: &str = "root@tcp(127.0.0.1:3306)/";

async fn admin(url: &str, sql: &[&str]) {
    let mut c = mysql_async::Conn::from_url(url).await.unwrap_or_else(|e| {
        panic!("MariaDB at {url}: {e} (is it running? see scripts/ensure-test-deps)")
    });
    for q in sql {
        c.query_drop(*q)
            .await
            .unwrap_or_else(|e| panic!("{q}: {e}"));
    }
    c.disconnect().await.unwrap();
}

#[tokio::test]
async fn status_fields_types_and_growing_counters() {
    let mut b = block(&format!(
        "module: mysql\nmetricsets: [status]\nhosts: ['{SHARED}']\nraw: true\n"
    ));
    let first = b.fetch_all_once().await;
    // A connection of the test's own between the two fetches.
    admin("mysql://root@127.0.0.1:3306/", &["SELECT 1"]).await;
    let second = b.fetch_all_once().await;
    assert_eq!((first.len(), second.len()), (1, 1), "{first:?}");
    let (a, z) = (&first[0], &second[0]);
    assert!(a.get("error").is_none(), "{a:?}");
    let example = load("mysql", "status", "data.json");
    assert_shape(
        a,
        &example,
        "mysql",
        "status",
        &[(
            "flush_commands",
            "MariaDB 10.11 has no `Flush_commands` status variable",
        )],
    );
    assert_eq!(get(a, "event.dataset"), "mysql.status");
    assert_eq!(get(a, "service.address"), "127.0.0.1:3306");
    assert_eq!(get(a, "service.type"), "mysql");
    // Each fetch connects, and so did the test: at least two more connections.
    assert!(
        num(z, "mysql.status.connections") >= num(a, "mysql.status.connections") + 2.0,
        "{} then {}",
        num(a, "mysql.status.connections"),
        num(z, "mysql.status.connections")
    );
    assert!(num(z, "mysql.status.bytes.received") > num(a, "mysql.status.bytes.received"));
    assert!(num(a, "mysql.status.threads.connected") >= 1.0);
    assert!(num(a, "mysql.status.max_used_connections") >= 1.0);
    assert!(num(a, "mysql.status.innodb.buffer_pool.pages.total") > 0.0);
    assert!(
        get(a, "mysql.status.innodb.buffer_pool.load_status")
            .as_str()
            .unwrap()
            .contains("load")
    );
    // `raw: true`: the unmapped variables as strings; mapped ones are not repeated there.
    let uptime = get(a, "mysql.status.raw.Uptime").as_str().unwrap();
    assert!(uptime.parse::<u64>().unwrap() > 0);
    assert!(get(a, "mysql.status.raw").get("Connections").is_none());
}

#[tokio::test]
async fn galera_status_of_a_server_without_galera() {
    let events = fetch(&format!(
        "module: mysql\nmetricsets: [galera_status]\nhosts: ['{SHARED}']\n"
    ))
    .await;
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert!(e.get("error").is_none(), "{e:?}");
    // What MariaDB shows without a Galera provider, mapped as Metricbeat maps it: the
    // `wsrep_*` variables it has, `wsrep_cluster_conf_id` (2^64-1, "none") left out as
    // Metricbeat's integer conversion leaves it out.
    let g = get(e, "mysql.galera_status");
    assert_eq!(g["cluster"]["status"], "Disconnected");
    assert_eq!(g["cluster"]["size"], 0);
    assert!(g["cluster"].get("conf_id").is_none(), "{g}");
    assert_eq!(g["connected"], "OFF");
    assert_eq!(g["ready"], "OFF");
    assert_eq!(g["local"]["bf_aborts"], 0);
}

#[tokio::test]
async fn performance_schema_off_gives_no_events() {
    // The machine's server runs with `performance_schema` off (MariaDB's default): its tables
    // are empty, so there is nothing to report and nothing went wrong, as in Metricbeat.
    let events = fetch(&format!(
        "module: mysql\nmetricsets: [performance]\nhosts: ['{SHARED}']\n"
    ))
    .await;
    assert!(events.is_empty(), "{events:?}");
}

#[tokio::test]
async fn a_wrong_password_and_a_down_host() {
    let user = format!("skiff_mdb_{}", std::process::id());
    admin(
        "mysql://root@127.0.0.1:3306/",
        &[&format!(
            "CREATE OR REPLACE USER '{user}'@'%' IDENTIFIED BY 'right'"
        )],
    )
    .await;
    let ok = fetch(&format!(
        "module: mysql\nmetricsets: [status]\nhosts: ['tcp(127.0.0.1:3306)/']\nusername: {user}\npassword: right\n"
    ))
    .await;
    let wrong = fetch(&format!(
        "module: mysql\nmetricsets: [status]\nhosts: ['{user}:wrong@tcp(127.0.0.1:3306)/']\nusername: {user}\npassword: right\n"
    ))
    .await;
    admin(
        "mysql://root@127.0.0.1:3306/",
        &[&format!("DROP USER '{user}'@'%'")],
    )
    .await;
    assert!(ok[0].get("error").is_none(), "{:?}", ok[0]);
    assert!(num(&ok[0], "mysql.status.connections") > 0.0);
    // The DSN's credentials win over `username`/`password`.
    let msg = get(&wrong[0], "error.message").as_str().unwrap();
    assert!(
        msg.contains("authentication failed at mysql at 127.0.0.1:3306")
            && msg.contains("Access denied")
            && msg.contains(&user)
            && !msg.contains("wrong"),
        "{msg}"
    );
    assert_eq!(get(&wrong[0], "service.address"), "127.0.0.1:3306");

    let port = closed_port();
    let down = fetch(&format!(
        "module: mysql\nmetricsets: [status, galera_status]\nhosts: ['root@tcp(127.0.0.1:{port})/']\n"
    ))
    .await;
    assert_eq!(down.len(), 2);
    for e in &down {
        let msg = get(e, "error.message").as_str().unwrap();
        assert!(
            msg.contains(&format!("127.0.0.1:{port}")) && msg.to_lowercase().contains("refused"),
            "{msg}"
        );
        assert_eq!(get(e, "event.module"), "mysql");
    }
}

/// A MariaDB server of the test's own: `performance_schema` on, TCP on `port` and a socket.
fn own_mariadb(port: u16) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let install = std::process::Command::new(need("mariadb-install-db"))
        .args([
            "--no-defaults",
            "--user=root",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ])
        .arg(format!("--datadir={}", data.display()))
        .output()
        .unwrap();
    assert!(
        install.status.success(),
        "mariadb-install-db: {}",
        String::from_utf8_lossy(&install.stderr)
    );
    let server = start(
        "mariadbd",
        &[
            "--no-defaults",
            "--user=root",
            &format!("--datadir={}", data.display()),
            &format!("--port={port}"),
            "--bind-address=127.0.0.1",
            &format!("--socket={}/sock", dir.path().display()),
            &format!("--pid-file={}/pid", dir.path().display()),
            "--performance-schema=ON",
            "--innodb-buffer-pool-size=16M",
            "--skip-name-resolve",
        ],
        port,
    );
    (server, dir)
}

#[tokio::test]
async fn performance_events_from_a_server_with_performance_schema() {
    let port = free_port();
    let (_srv, dir) = own_mariadb(port);
    admin(
        &format!("mysql://root@127.0.0.1:{port}/"),
        &[
            "CREATE DATABASE skiff_t",
            // Statements run in a database have a `schemaname`.
            "USE skiff_t",
            "CREATE TABLE x (id INT PRIMARY KEY, v INT)",
            "INSERT INTO x VALUES (1, 10), (2, 20)",
            "SELECT v FROM x WHERE id = 1",
            "SELECT v FROM x WHERE id = 2",
        ],
    )
    .await;
    // Over the Unix socket, as `unix(path)/`.
    let sock = dir.path().join("sock");
    let events = fetch(&format!(
        "module: mysql\nmetricsets: [performance, status]\nhosts: ['root@unix({})/']\n",
        sock.display()
    ))
    .await;
    assert!(
        events.iter().all(|e| e.get("error").is_none()),
        "{events:?}"
    );
    let statements: Vec<_> = events
        .iter()
        .filter(|e| {
            get(e, "mysql")
                .get("performance")
                .and_then(|p| p.get("events_statements"))
                .is_some()
        })
        .collect();
    assert!(
        !statements.is_empty() && statements.len() <= 10,
        "{events:?}"
    );
    let example = load("mysql", "performance", "data.json");
    let in_db: Vec<_> = statements
        .iter()
        .filter(|s| {
            get(s, "mysql.performance.events_statements")
                .get("schemaname")
                .is_some_and(|n| n == "skiff_t")
        })
        .collect();
    assert!(!in_db.is_empty(), "{statements:?}");
    for s in &in_db {
        assert_shape(
            s,
            &example,
            "mysql",
            "performance",
            &[(
                "events_statements.quantile.95",
                "MariaDB has no QUANTILE_95 column (MySQL 8 has)",
            )],
        );
    }
    for s in &statements {
        assert!(num(s, "mysql.performance.events_statements.count.star") >= 1.0);
    }
    // Ordered by average wait, longest first.
    let waits: Vec<f64> = statements
        .iter()
        .map(|s| num(s, "mysql.performance.events_statements.avg.timer.wait"))
        .collect();
    assert!(waits.windows(2).all(|w| w[0] >= w[1]), "{waits:?}");
    assert!(
        in_db.iter().any(
            |s| get(s, "mysql.performance.events_statements.digest.text")
                .as_str()
                .unwrap()
                .contains("INSERT INTO `x`")
        ),
        "{in_db:?}"
    );
    let io = events
        .iter()
        .find(|e| {
            get(e, "mysql")
                .pointer("/performance/table_io_waits/object/name")
                .is_some_and(|n| n == "x")
        })
        .unwrap_or_else(|| panic!("no table_io_waits event for skiff_t.x: {events:?}"));
    assert_eq!(
        get(io, "mysql.performance.table_io_waits.object.schema"),
        "skiff_t"
    );
    assert_eq!(
        get(io, "mysql.performance.table_io_waits.index.name"),
        "PRIMARY"
    );
    assert!(num(io, "mysql.performance.table_io_waits.count.fetch") >= 2.0);
    // service.address of a socket DSN is the socket's path.
    let status = events
        .iter()
        .find(|e| get(e, "metricset.name") == "status")
        .unwrap();
    assert_eq!(
        get(status, "service.address").as_str().unwrap(),
        sock.display().to_string()
    );
}

#[tokio::test]
async fn tls_asked_of_a_server_without_tls_is_a_clear_error() {
    // The machine's MariaDB has TLS off (`have_ssl: DISABLED`): a block with `ssl.*` must not
    // fall back to plain text silently.
    let events = fetch(&format!(
        "module: mysql\nmetricsets: [status]\nhosts: ['{SHARED}']\nssl.verification_mode: none\n"
    ))
    .await;
    let msg = get(&events[0], "error.message").as_str().unwrap();
    assert!(
        msg.contains("127.0.0.1:3306") && msg.contains("asked for SSL but server does not have"),
        "{msg}"
    );
}
