//! The postgresql module against real PostgreSQL 15 servers: the one running on this machine
//! (127.0.0.1:5432, trust authentication) and one the test starts on a free port with password
//! (SCRAM) authentication and `pg_stat_statements` preloaded (the machine's server does not
//! preload it, and trust authentication accepts any password). Fields present with the types of
//! the corpus' example events, values plausible, counters growing across fetches, the
//! down-host event, a wrong password's `error.message`, and the clear error of `statement`
//! where the extension is not loaded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::example::{assert_shape, load};
use common::{Server, block, closed_port, fetch, free_port, get, need, num, start};

/// The PostgreSQL server running on this machine.
const SHARED: &str = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable";

/// A client of the test's own (kept open while the test needs it).
async fn client(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url}: {e} (is it running?)"));
    tokio::spawn(conn);
    c
}

#[tokio::test]
async fn activity_of_clients_and_background_processes() {
    let me = client(&format!("{SHARED}&application_name=skiff-mdb-test")).await;
    // A query, so that the connection has a `query_start`; then it is idle.
    me.batch_execute("SELECT 1").await.unwrap();
    let events = fetch(&format!(
        "module: postgresql\nmetricsets: [activity]\nhosts: ['{SHARED}']\n"
    ))
    .await;
    assert!(
        events.iter().all(|e| e.get("error").is_none()),
        "{events:?}"
    );
    let mine = events
        .iter()
        .find(|e| {
            get(e, "postgresql.activity")
                .get("application_name")
                .is_some_and(|a| a == "skiff-mdb-test")
        })
        .unwrap_or_else(|| panic!("the test's own connection is not there: {events:?}"));
    let example = load("postgresql", "activity", "data.json");
    assert_shape(
        mine,
        &example,
        "postgresql",
        "activity",
        &[
            (
                "waiting",
                "PostgreSQL 9.6 replaced the `waiting` column by `wait_event`",
            ),
            ("client.hostname", "NULL unless `log_hostname` is on"),
            ("transaction_start", "NULL for an idle connection"),
        ],
    );
    assert_eq!(get(mine, "postgresql.activity.database.name"), "postgres");
    assert_eq!(get(mine, "postgresql.activity.user.name"), "postgres");
    assert_eq!(get(mine, "postgresql.activity.client.address"), "127.0.0.1");
    assert_eq!(get(mine, "postgresql.activity.state"), "idle");
    assert!(num(mine, "postgresql.activity.pid") > 0.0);
    assert!(
        get(mine, "postgresql.activity.backend_start")
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert_eq!(get(mine, "service.address"), "127.0.0.1:5432");
    // skiff's own backend runs the query.
    assert!(events.iter().any(|e| {
        get(e, "postgresql.activity")
            .get("query")
            .is_some_and(|q| q == "SELECT * FROM pg_stat_activity")
            && get(e, "postgresql.activity.state") == "active"
    }));
    // Background processes have no database: the backend fields only.
    let example = load("postgresql", "activity", "data_backend.json");
    let bg = events
        .iter()
        .find(|e| {
            get(e, "postgresql.activity")
                .get("backend_type")
                .is_some_and(|t| t == "checkpointer")
        })
        .unwrap_or_else(|| panic!("no checkpointer: {events:?}"));
    assert_shape(bg, &example, "postgresql", "activity", &[]);
    assert!(get(bg, "postgresql.activity").get("database").is_none());
    drop(me);
}

#[tokio::test]
async fn database_counters_grow_and_bgwriter() {
    let mut b = block(&format!(
        "module: postgresql\nmetricsets: [database, bgwriter]\nhosts: ['{SHARED}']\n"
    ));
    let first = b.fetch_all_once().await;
    let second = b.fetch_all_once().await;
    let db = |events: &[skiff_event::Map]| {
        events
            .iter()
            .find(|e| {
                get(e, "metricset.name") == "database"
                    && get(e, "postgresql.database")
                        .get("name")
                        .is_some_and(|n| n == "postgres")
            })
            .cloned()
            .unwrap_or_else(|| panic!("no `postgres` database event: {events:?}"))
    };
    let (a, z) = (db(&first), db(&second));
    let example = load("postgresql", "database", "data.json");
    assert_shape(&a, &example, "postgresql", "database", &[]);
    assert!(num(&a, "postgresql.database.oid") > 0.0);
    assert!(num(&a, "postgresql.database.number_of_backends") >= 1.0);
    // Every fetch runs a transaction in that database.
    assert!(
        num(&z, "postgresql.database.transactions.commit")
            > num(&a, "postgresql.database.transactions.commit")
    );
    assert!(num(&a, "postgresql.database.blocks.hit") > 0.0);
    // template1 and the shared-objects row are there too.
    assert!(first.iter().any(|e| {
        get(e, "metricset.name") == "database"
            && get(e, "postgresql.database")
                .get("name")
                .is_some_and(|n| n == "template1")
    }));

    let bg: Vec<_> = first
        .iter()
        .filter(|e| get(e, "metricset.name") == "bgwriter")
        .collect();
    assert_eq!(bg.len(), 1, "{first:?}");
    let example = load("postgresql", "bgwriter", "data.json");
    assert_shape(bg[0], &example, "postgresql", "bgwriter", &[]);
    assert!(num(bg[0], "postgresql.bgwriter.buffers.allocated") > 0.0);
    assert!(num(bg[0], "postgresql.bgwriter.checkpoints.scheduled") >= 0.0);
    assert!(
        get(bg[0], "postgresql.bgwriter.stats_reset")
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
}

#[tokio::test]
async fn statement_without_the_extension_loaded_is_a_clear_error() {
    // The extension can be created on the machine's server, but it is not in
    // `shared_preload_libraries`: the view errors, and the event says what to do. The test
    // works in a database of its own and drops it.
    let name = format!("skiff_mdb_{}", std::process::id());
    let admin = client(SHARED).await;
    // One statement per call: DROP and CREATE DATABASE cannot run in a transaction.
    for sql in [
        format!("DROP DATABASE IF EXISTS {name}"),
        format!("CREATE DATABASE {name}"),
    ] {
        admin.batch_execute(&sql).await.unwrap();
    }
    let db_url = SHARED.replace("/postgres?", &format!("/{name}?"));
    let c = client(&db_url).await;
    c.batch_execute("CREATE EXTENSION pg_stat_statements")
        .await
        .unwrap();
    drop(c);
    let events = fetch(&format!(
        "module: postgresql\nmetricsets: [statement]\nhosts: ['{db_url}']\n"
    ))
    .await;
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    let msg = get(&events[0], "error.message").as_str().unwrap();
    assert!(
        msg.contains("pg_stat_statements")
            && msg.contains("shared_preload_libraries")
            && msg.contains("CREATE EXTENSION"),
        "{msg}"
    );
    // Without the extension created at all: the same advice.
    let events = fetch(&format!(
        "module: postgresql\nmetricsets: [statement]\nhosts: ['{SHARED}']\n"
    ))
    .await;
    let msg = get(&events[0], "error.message").as_str().unwrap();
    assert!(msg.contains("shared_preload_libraries"), "{msg}");
}

/// A PostgreSQL 15 server of the test's own, with SCRAM passwords (user `postgres`, password
/// `s3cret`) and `pg_stat_statements` preloaded. PostgreSQL refuses to run as root: when the
/// tests run as root, `initdb` and `postgres` run as the `postgres` user (through `setpriv`).
fn own_postgres(port: u16) -> (Server, tempfile::TempDir) {
    let bin = std::path::Path::new("/usr/lib/postgresql/15/bin");
    assert!(
        bin.join("initdb").is_file(),
        "PostgreSQL 15 server binaries missing: run scripts/ensure-test-deps"
    );
    let dir = tempfile::tempdir().unwrap();
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .unwrap()
        .stdout
        == b"0\n";
    let as_postgres = |program: &std::path::Path| -> Vec<String> {
        if root {
            vec![
                need("setpriv").display().to_string(),
                "--reuid=postgres".into(),
                "--regid=postgres".into(),
                "--init-groups".into(),
                program.display().to_string(),
            ]
        } else {
            vec![program.display().to_string()]
        }
    };
    std::fs::write(dir.path().join("pw"), "s3cret\n").unwrap();
    if root {
        for p in [dir.path().to_path_buf(), dir.path().join("pw")] {
            let ok = std::process::Command::new("chown")
                .arg("postgres:postgres")
                .arg(&p)
                .status()
                .unwrap();
            assert!(ok.success(), "chown {}", p.display());
        }
    }
    let initdb = as_postgres(&bin.join("initdb"));
    let out = std::process::Command::new(&initdb[0])
        .args(&initdb[1..])
        .args(["-U", "postgres", "--auth=scram-sha-256", "-D"])
        .arg(dir.path().join("data"))
        .arg(format!("--pwfile={}", dir.path().join("pw").display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let postgres = as_postgres(&bin.join("postgres"));
    let mut args: Vec<String> = postgres[1..].to_vec();
    args.extend([
        "-D".into(),
        dir.path().join("data").display().to_string(),
        "-p".into(),
        port.to_string(),
        "-k".into(),
        dir.path().display().to_string(),
        "-c".into(),
        "listen_addresses=127.0.0.1".into(),
        "-c".into(),
        "shared_preload_libraries=pg_stat_statements".into(),
        "-c".into(),
        "fsync=off".into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = start(&postgres[0], &args, port);
    (server, dir)
}

#[tokio::test]
async fn statements_and_a_wrong_password_on_a_server_with_passwords() {
    let port = free_port();
    let (_srv, _dir) = own_postgres(port);
    let url = format!("postgres://127.0.0.1:{port}/postgres?sslmode=disable");
    // The server may accept connections before it accepts logins.
    let c = {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            match tokio_postgres::connect(
                &format!("postgres://postgres:s3cret@127.0.0.1:{port}/postgres"),
                tokio_postgres::NoTls,
            )
            .await
            {
                Ok((c, conn)) => {
                    tokio::spawn(conn);
                    break c;
                }
                Err(e) => {
                    assert!(std::time::Instant::now() < deadline, "own postgres: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    };
    c.batch_execute("CREATE EXTENSION pg_stat_statements; CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2), (3); SELECT * FROM t")
        .await
        .unwrap();
    let events = fetch(&format!(
        "module: postgresql\nmetricsets: [statement]\nhosts: ['{url}']\nusername: postgres\npassword: s3cret\n"
    ))
    .await;
    assert!(
        events.iter().all(|e| e.get("error").is_none()),
        "{events:?}"
    );
    let example = load("postgresql", "statement", "data.json");
    for e in &events {
        assert_shape(e, &example, "postgresql", "statement", &[]);
    }
    let insert = events
        .iter()
        .find(|e| {
            get(e, "postgresql.statement.query.text")
                .as_str()
                .unwrap()
                .starts_with("INSERT INTO t VALUES")
        })
        .unwrap_or_else(|| panic!("no INSERT statement: {events:?}"));
    assert_eq!(num(insert, "postgresql.statement.query.calls"), 1.0);
    assert_eq!(num(insert, "postgresql.statement.query.rows"), 3.0);
    assert!(num(insert, "postgresql.statement.query.time.total.ms") > 0.0);
    assert!(num(insert, "postgresql.statement.database.oid") > 0.0);

    // A wrong password, in the URL (it wins over `password`) and in `password`.
    for host in [
        format!("postgres://postgres:nope@127.0.0.1:{port}/postgres?sslmode=disable"),
        url.clone(),
    ] {
        let events = fetch(&format!(
            "module: postgresql\nmetricsets: [database]\nhosts: ['{host}']\nusername: postgres\npassword: {}\n",
            if host.contains("nope") {
                "s3cret"
            } else {
                "wrong"
            }
        ))
        .await;
        let msg = get(&events[0], "error.message").as_str().unwrap();
        assert!(
            msg.contains(&format!(
                "authentication failed at postgresql at 127.0.0.1:{port}"
            )) && msg.contains("password authentication failed for user \"postgres\""),
            "{msg}"
        );
    }
    // No password at all.
    let events = fetch(&format!(
        "module: postgresql\nmetricsets: [bgwriter]\nhosts: ['postgres://postgres@127.0.0.1:{port}/postgres?sslmode=disable']\n"
    ))
    .await;
    let msg = get(&events[0], "error.message").as_str().unwrap();
    assert!(
        msg.contains(&format!(
            "authentication failed at postgresql at 127.0.0.1:{port}"
        )) && msg.contains("none is configured"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_down_host() {
    let port = closed_port();
    let events = fetch(&format!(
        "module: postgresql\nmetricsets: [activity, database]\nhosts: ['postgres://postgres@127.0.0.1:{port}/?sslmode=disable']\n"
    ))
    .await;
    assert_eq!(events.len(), 2);
    for e in &events {
        let msg = get(e, "error.message").as_str().unwrap();
        assert!(
            msg.contains(&format!("127.0.0.1:{port}")) && msg.to_lowercase().contains("refused"),
            "{msg}"
        );
        assert_eq!(
            get(e, "service.address"),
            format!("127.0.0.1:{port}").as_str()
        );
    }
}

#[tokio::test]
async fn tls_with_the_machine_servers_snakeoil_certificate() {
    // The machine's PostgreSQL serves TLS with Debian's self-signed "snakeoil" certificate.
    // `ssl.verification_mode: none` encrypts without checking it; `full` (the default of an
    // `ssl` block) and libpq's `sslmode=verify-full` refuse it, and say why.
    let base = "module: postgresql\nmetricsets: [bgwriter]\n";
    let url = "postgres://postgres@127.0.0.1:5432/postgres";
    let ok = fetch(&format!(
        "{base}hosts: ['{url}']\nssl.verification_mode: none\n"
    ))
    .await;
    assert!(ok[0].get("error").is_none(), "{:?}", ok[0]);
    for cfg in [
        format!("{base}hosts: ['{url}']\nssl.verification_mode: full\n"),
        format!("{base}hosts: ['{url}?sslmode=verify-full']\n"),
    ] {
        let bad = fetch(&cfg).await;
        let msg = get(&bad[0], "error.message").as_str().unwrap();
        assert!(
            msg.contains("127.0.0.1:5432") && msg.to_lowercase().contains("certificate"),
            "{cfg}: {msg}"
        );
    }
}
