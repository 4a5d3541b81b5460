//! A `tansu` Kafka-protocol broker of the test's own, and a consumer to read back what arrived.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use skiff_event::{Event, Map, Value};
use skiff_metrics::Registry;
use skiff_pipeline::{BuildContext, OutputSet};

/// Where `tansu` is: on PATH or in ~/.cargo/bin (see scripts/ensure-tansu.sh).
pub fn tansu_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("tansu"))
            .find(|f| f.is_file())
    });
    on_path.or_else(|| {
        let home = std::env::var_os("HOME")?;
        let f = PathBuf::from(home).join(".cargo/bin/tansu");
        f.is_file().then_some(f)
    })
}

/// The broker, or `None` (test skipped loudly) when tansu is missing and not required.
pub fn broker(storage: Storage) -> Option<Broker> {
    match tansu_binary() {
        Some(bin) => Some(Broker::start(bin, storage)),
        None if std::env::var_os("SKIFF_REQUIRE_KAFKA").is_some() => {
            panic!(
                "SKIFF_REQUIRE_KAFKA is set but `tansu` is not installed: run scripts/ensure-tansu.sh"
            )
        }
        None => {
            // Straight to stderr: libtest captures eprintln! of passing tests.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED: the Kafka broker `tansu` is not installed (run scripts/ensure-tansu.sh; \
                 set SKIFF_REQUIRE_KAFKA=1 to make this a failure) ***\n"
            );
            None
        }
    }
}

/// Where the broker keeps its data.
#[derive(Clone, Copy, PartialEq)]
pub enum Storage {
    /// Lost when the broker stops.
    Memory,
    /// A SQLite file in the broker's directory: survives a restart.
    Sqlite,
}

/// A tansu broker on a free port, in a temp dir (it reads ./.env), killed on drop.
pub struct Broker {
    bin: PathBuf,
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    storage: Storage,
    /// Extra `tansu broker` arguments for the next start (`--authentication`).
    pub extra: Vec<String>,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Broker {
    fn start(bin: PathBuf, storage: Storage) -> Broker {
        let mut b = Broker {
            bin,
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            storage,
            extra: Vec::new(),
        };
        b.spawn();
        b
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let engine = match self.storage {
            Storage::Memory => "memory://tansu/".to_owned(),
            Storage::Sqlite => "sqlite://tansu.db".to_owned(),
        };
        let log = std::fs::File::create(self.dir.path().join("broker.log")).unwrap();
        let child = Command::new(&self.bin)
            .current_dir(self.dir.path())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", &engine])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
    }

    /// Stops the broker and waits until its port is free again.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpListener::bind(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "port {} not freed", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        let out = Command::new(&self.bin)
            .current_dir(self.dir.path())
            .args([
                "topic",
                "create",
                name,
                "--partitions",
                &partitions.to_string(),
            ])
            .args(["--broker", &format!("tcp://127.0.0.1:{}", self.port)])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "topic create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Creates a SCRAM user (`scram256` or `scram512`).
    pub fn create_user(&self, name: &str, password: &str, mechanism: &str) {
        let out = Command::new(&self.bin)
            .current_dir(self.dir.path())
            .args(["user", "create", name, password, "--mechanism", mechanism])
            .args(["--broker", &format!("tcp://127.0.0.1:{}", self.port)])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "user create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn consume(&self, topic: &str, partitions: i32, want: usize) -> Vec<Record> {
        self.consume_with(topic, partitions, want, &[])
    }

    /// Reads every record of `topic` from the beginning until `want` arrived (or a 60 s
    /// liveness bound passes), then a little longer to catch extras.
    pub fn consume_with(
        &self,
        topic: &str,
        partitions: i32,
        want: usize,
        props: &[(&str, &str)],
    ) -> Vec<Record> {
        let mut cc = ClientConfig::new();
        cc.set("bootstrap.servers", self.addr())
            .set("group.id", "skiff-test")
            .set("enable.auto.commit", "false");
        for (k, v) in props {
            cc.set(*k, *v);
        }
        let c: BaseConsumer = cc.create().unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .unwrap();
        }
        c.assign(&tpl).unwrap();
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut extra_until: Option<Instant> = None;
        loop {
            let now = Instant::now();
            if now > deadline || extra_until.is_some_and(|t| now > t) {
                break;
            }
            if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
                out.push(Record {
                    partition: m.partition(),
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    value: serde_json::from_slice(m.payload().unwrap_or_default()).unwrap(),
                });
            }
            if out.len() >= want && extra_until.is_none() {
                extra_until = Some(Instant::now() + Duration::from_millis(500));
            }
        }
        out
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One consumed record.
pub struct Record {
    pub partition: i32,
    pub key: Option<String>,
    pub value: Value,
}

pub fn ctx(reg: &Registry) -> BuildContext {
    BuildContext::standalone("t", "9.9.9", reg)
}

pub fn build(yaml: &str) -> OutputSet {
    let node = skiff_config::parse_str(yaml, None).unwrap();
    let reg = Registry::new();
    (skiff_output_kafka::PLUGIN.build)(&node, &ctx(&reg)).unwrap()
}

/// `n` events of about `size` bytes each, numbered in `n` and `log.offset`.
pub fn events(n: usize, size: usize) -> Vec<Event> {
    let mut m = Map::new();
    m.insert("host".into(), serde_json::json!({"name": "web-1"}));
    m.insert("@metadata".into(), serde_json::json!({"beat": "filebeat"}));
    let sh = Arc::new(m);
    (0..n)
        .map(|i| {
            let mut msg = format!("line {i} \"q\" ü ");
            while msg.len() < size {
                msg.push_str("abcdefghij");
            }
            msg.truncate(size);
            let mut e = Event::new(sh.clone(), msg);
            e.offset = Some(i as u64);
            e.insert("n", Value::from(i));
            e.insert(
                "fields.app",
                Value::from(if i % 2 == 0 { "web" } else { "db" }),
            );
            e
        })
        .collect()
}

/// Every event 0..count exactly once, with its fields intact.
pub fn assert_exactly_once(recs: &[Record], sent: &[Event]) {
    let mut seen = vec![0u32; sent.len()];
    for r in recs {
        let n = r.value["n"].as_u64().unwrap() as usize;
        let e = &sent[n];
        assert_eq!(r.value["message"].as_str(), e.message.as_deref());
        assert_eq!(r.value["log"]["offset"], n as u64);
        assert_eq!(r.value["host"]["name"], "web-1");
        assert_eq!(r.value["@metadata"]["beat"], "filebeat");
        seen[n] += 1;
    }
    let missing: Vec<usize> = (0..sent.len()).filter(|&i| seen[i] == 0).collect();
    let dups: Vec<usize> = (0..sent.len()).filter(|&i| seen[i] > 1).collect();
    assert!(
        missing.is_empty(),
        "{} missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(
        dups.is_empty(),
        "{} duplicated, e.g. {:?}",
        dups.len(),
        &dups[..dups.len().min(10)]
    );
}
