//! What the live-capture tests share: checks that the tools and servers they drive exist (a
//! missing one fails the test with its name, never skips it), free ports, and a capture on `lo`
//! running on its own thread while the test drives real clients.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Map, Value};
use skiff_input_packet::capture::live;
use skiff_input_packet::config;
use skiff_input_packet::engine::Engine;
use skiff_input_packet::testing::flatten;
use skiff_metrics::Registry;
use skiff_pipeline::BuildContext;
use tokio_util::sync::CancellationToken;

/// Fails the test unless `tool` is on the PATH.
pub fn need(tool: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "{tool} is missing: run scripts/ensure-test-deps");
}

/// Fails the test unless something listens on 127.0.0.1:`port`.
pub fn need_server(port: u16, what: &str) {
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_ok(),
        "{what} is not listening on 127.0.0.1:{port}"
    );
}

/// A TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

type CaptureThread =
    std::thread::JoinHandle<(Result<(), skiff_pipeline::Failure>, Vec<skiff_event::Event>)>;

/// A live capture on the first interface of `yaml`'s `packetbeat` section, running on its own
/// thread while the test drives clients.
pub struct Capture {
    stop: CancellationToken,
    thread: CaptureThread,
}

impl Capture {
    /// Starts capturing and gives libpcap time to attach before traffic starts.
    pub fn start(yaml: &str) -> Self {
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
        let thread = std::thread::spawn(move || {
            let mut all = Vec::new();
            let res = live::capture(&mut engine, &iface, &reg, &stop2, |b| {
                all.extend(b);
                true
            });
            (res, all)
        });
        std::thread::sleep(Duration::from_millis(700));
        Capture { stop, thread }
    }

    /// Waits for the last packets, stops and returns the events flattened.
    pub fn finish(self) -> Vec<Map<String, Value>> {
        std::thread::sleep(Duration::from_millis(1500));
        self.stop.cancel();
        let (res, events) = self.thread.join().unwrap();
        res.unwrap();
        events.iter().map(|e| flatten(&e.to_value(true))).collect()
    }
}

/// Captures with `yaml`'s protocols while `traffic` runs; the events, flattened.
pub fn capture_while(yaml: &str, traffic: impl FnOnce()) -> Vec<Map<String, Value>> {
    let capture = Capture::start(yaml);
    traffic();
    capture.finish()
}
