//! The keystore from the command line: create/add/list/remove with values from stdin, and a
//! round trip where `password: ${ES_PWD}` comes from the keystore and events reach a
//! password-protected Elasticsearch. The secret must then appear in no log line, no `export
//! config` output and no monitoring endpoint.
//!
//! Elasticsearch cannot run on this machine: the peer is the documented stand-in in
//! `../shared/tools/es-standin` (Python, started here on a free port with `--user/--password`,
//! so a request without the right Basic credentials gets 401 as from a secured cluster).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod es_standin;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::{Sandbox, free_port, http_get, skiff, wait_with_timeout};
use es_standin::{EsStandIn, stored_messages};

const SECRET: &str = "Tr0ub4dor&3-not-in-any-log";

/// `skiff keystore <args> --path.data <dir>/data`, `stdin` fed, waited for.
fn keystore(sb: &Sandbox, args: &[&str], stdin: &str) -> Output {
    let mut child = skiff()
        .arg("keystore")
        .args(args)
        .arg("--path.data")
        .arg(sb.path().join("data"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    wait_with_timeout(child, Duration::from_secs(60))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn create_add_list_remove_from_stdin_without_echo() {
    let sb = Sandbox::new();
    let o = keystore(&sb, &["add", "ES_PWD", "--stdin"], "x\n");
    assert!(!o.status.success());
    assert!(text(&o).contains("skiff keystore create"), "{}", text(&o));

    let o = keystore(&sb, &["create"], "");
    assert!(o.status.success(), "{}", text(&o));
    let file = sb.path().join("data/skiff.keystore");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "keystore must be readable by its owner only");
    let o = keystore(&sb, &["create"], "");
    assert!(!o.status.success(), "create over an existing keystore");
    assert!(text(&o).contains("--force"), "{}", text(&o));

    let o = keystore(&sb, &["add", "ES_PWD", "--stdin"], &format!("{SECRET}\n"));
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains(SECRET), "value echoed: {}", text(&o));
    let o = keystore(&sb, &["add", "ES_PWD", "--stdin"], "other\n");
    assert!(
        !o.status.success(),
        "add over an existing key without --force"
    );
    let o = keystore(&sb, &["add", "API_KEY", "--stdin"], "id:key");
    assert!(o.status.success(), "{}", text(&o));
    let o = keystore(&sb, &["add", "EMPTY", "--stdin"], "\n");
    assert!(!o.status.success(), "an empty value is refused");
    let o = keystore(&sb, &["add", "bad key", "--stdin"], "v");
    assert!(!o.status.success(), "a key ${{...}} cannot name is refused");

    let on_disk = std::fs::read(&file).unwrap();
    assert!(
        !on_disk
            .windows(SECRET.len())
            .any(|w| w == SECRET.as_bytes()),
        "the secret is stored in clear text"
    );

    let o = keystore(&sb, &["list"], "");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "API_KEY\nES_PWD\n");

    let o = keystore(&sb, &["remove", "API_KEY", "NOPE"], "");
    assert!(!o.status.success(), "removing a missing key is an error");
    let o = keystore(&sb, &["list"], "");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "API_KEY\nES_PWD\n",
        "a failed remove changes nothing"
    );
    let o = keystore(&sb, &["remove", "API_KEY"], "");
    assert!(o.status.success(), "{}", text(&o));
    let o = keystore(&sb, &["add", "ES_PWD", "--stdin", "--force"], "new\r\n");
    assert!(o.status.success(), "{}", text(&o));
    let o = keystore(&sb, &["list"], "");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "ES_PWD\n");

    // A passphrase protects the file: without it, nothing can be read.
    let o = skiff()
        .args(["keystore", "list", "--path.data"])
        .arg(sb.path().join("data"))
        .env("SKIFF_KEYSTORE_PASSPHRASE", "wrong")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("cannot be decrypted"), "{}", text(&o));
}

#[test]
fn keystore_secret_reaches_a_secured_elasticsearch_and_no_log_export_or_stats() {
    let sb = Sandbox::new();
    let dump = sb.path().join("es-dump");
    std::fs::create_dir_all(&dump).unwrap();
    let es = EsStandIn::start(&dump, "elastic", SECRET);

    assert!(keystore(&sb, &["create"], "").status.success());
    let o = keystore(&sb, &["add", "ES_PWD", "--stdin"], SECRET);
    assert!(o.status.success(), "{}", text(&o));

    let port = free_port();
    let config = sb.write(
        "skiff.yml",
        &format!(
            "inputs:\n  - type: stdin\n\
             output.elasticsearch:\n  hosts: ['{url}']\n  username: elastic\n  password: '${{ES_PWD}}'\n\
             http: {{enabled: true, host: 127.0.0.1, port: {port}}}\n\
             path.data: $DIR/data\npath.logs: $DIR/logs\n\
             logging.metrics.period: 1s\n",
            url = es.url
        ),
    );

    // `export config`: the reference is resolved, and the value masked.
    let o = sb
        .cmd(&config, &["export", "config"])
        .env("ES_PWD", "from-the-environment")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let exported = String::from_utf8_lossy(&o.stdout);
    assert!(!exported.contains(SECRET), "secret in export:\n{exported}");
    assert!(
        !exported.contains("from-the-environment"),
        "the keystore must win over the environment:\n{exported}"
    );
    assert!(exported.contains("\"password\": \"xxxxx\""), "{exported}");

    // The run: an environment variable of the same name is set to a wrong password; the
    // keystore wins, as in Beats, so the stand-in accepts the requests.
    let mut child = sb
        .cmd(&config, &["-d", "*"])
        .env("ES_PWD", "from-the-environment")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(b"first line\nsecond line\n").unwrap();
    input.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while stored_messages(&dump).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "events did not reach the secured stand-in"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(stored_messages(&dump), ["first line", "second line"]);
    // Let a periodic metrics line be logged too.
    std::thread::sleep(Duration::from_millis(1500));
    let mut served = String::new();
    for path in ["/", "/stats", "/metrics", "/inputs/", "/health"] {
        let body = http_get(port, path).unwrap_or_else(|| panic!("GET {path} failed"));
        served.push_str(&body);
    }
    assert!(
        !served.contains(SECRET),
        "secret served by the monitoring endpoint"
    );
    drop(input);
    let out = wait_with_timeout(child, Duration::from_secs(60));
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.lines().count() > 3, "expected debug logging:\n{log}");
    assert!(!log.contains(SECRET), "secret in the log:\n{log}");
    let basic = base64(format!("elastic:{SECRET}").as_bytes());
    assert!(
        !log.contains(&basic),
        "Basic credentials in the log:\n{log}"
    );
    for e in walk(sb.path()) {
        if e.starts_with(&dump) || e.ends_with("skiff.keystore") {
            continue;
        }
        let bytes = std::fs::read(&e).unwrap();
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "secret written to {}",
            e.display()
        );
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Standard base64 (the form of an HTTP Basic credential), to look for it in logs.
fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
