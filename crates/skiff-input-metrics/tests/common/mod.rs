//! Helpers shared by the metrics tests: building a block from YAML, fetching once, finding a
//! program the test needs (failing loudly when it is missing).
#![allow(clippy::unwrap_used, clippy::expect_used)]
// Each test file uses a part of the helpers.
#![allow(dead_code)]

pub mod example;

use std::path::PathBuf;

use skiff_event::{Map, Value};
use skiff_input_metrics::Block;

/// A block from YAML (a map, as one item of `metricbeat.modules`).
pub fn block(yaml: &str) -> Block {
    let node = skiff_config::parse_str(yaml, Some("test.yml")).expect("yaml");
    match Block::from_node(&node) {
        Ok(b) => b,
        Err(e) => panic!("block does not build: {e}"),
    }
}

/// Fetches every metricset of `yaml` once.
pub async fn fetch(yaml: &str) -> Vec<Map> {
    block(yaml).fetch_all_once().await
}

/// A field by dotted path.
pub fn get<'a>(m: &'a Map, path: &str) -> &'a Value {
    let mut parts = path.split('.');
    let first = parts.next().unwrap_or_default();
    let mut cur = m
        .get(first)
        .unwrap_or_else(|| panic!("no `{path}` in {m:?}"));
    for p in parts {
        cur = cur
            .get(p)
            .unwrap_or_else(|| panic!("no `{path}` (at `{p}`) in {}", Value::Object(m.clone())));
    }
    cur
}

/// A number field.
pub fn num(m: &Map, path: &str) -> f64 {
    get(m, path)
        .as_f64()
        .unwrap_or_else(|| panic!("`{path}` is not a number: {}", get(m, path)))
}

/// A program on PATH, or a failure naming the script that installs it.
pub fn need(program: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = PathBuf::from(dir).join(program);
        if p.is_file() {
            return p;
        }
    }
    for dir in ["/usr/sbin", "/usr/lib/go/bin"] {
        let p = PathBuf::from(dir).join(program);
        if p.is_file() {
            return p;
        }
    }
    panic!("`{program}` is not installed: run scripts/ensure-test-deps (as root)");
}

/// A port nobody listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A free loopback port (bound, then released for the server the test starts).
pub fn free_port() -> u16 {
    closed_port()
}

/// A server process the test started; killed when dropped.
pub struct Server {
    /// The process.
    pub child: std::process::Child,
    /// Its temporary directory.
    pub dir: tempfile::TempDir,
}

impl Drop for Server {
    /// The server runs in a process group of its own: SIGTERM to the group (via `kill`, no
    /// unsafe code) takes worker processes (apache2, nginx) down too; SIGKILL after 3 s.
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let signal = |sig: &str| {
            let _ = std::process::Command::new("kill")
                .args([sig, "--", &group])
                .status();
        };
        signal("-TERM");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        signal("-KILL");
        let _ = self.child.wait();
    }
}

/// Starts `program` with `args` (`{dir}` replaced by a fresh temporary directory) and waits
/// until `port` on 127.0.0.1 accepts connections (10 s at most).
pub fn start(program: &str, args: &[&str], port: u16) -> Server {
    let path = need(program);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let args: Vec<String> = args.iter().map(|a| a.replace("{dir}", &d)).collect();
    use std::os::unix::process::CommandExt;
    let child = std::process::Command::new(path)
        .args(&args)
        .process_group(0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let server = Server { child, dir };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{program} did not listen on {port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    server
}
