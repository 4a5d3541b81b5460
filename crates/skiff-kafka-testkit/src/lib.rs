//! Test support, not shipped: a `tansu` Kafka-protocol broker of the test's own (on a free port,
//! in a temporary directory, killed on drop), and small rdkafka clients that feed it and read it
//! back.
//!
//! Why a crate: the kafka output's, the kafka input's and the kafka metrics module's tests all
//! need the same broker; one copy here instead of one per crate. tansu is installed by
//! scripts/ensure-tansu.sh (called by scripts/ensure-test-deps).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

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

/// One record to produce: partition, key, value, headers.
pub struct Outgoing<'a> {
    pub partition: i32,
    pub key: Option<&'a str>,
    pub value: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
}

impl Broker {
    /// Produces `records` to `topic` and waits until the broker acknowledged every one.
    pub fn produce(&self, topic: &str, records: &[Outgoing<'_>]) {
        let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", self.addr())
            .set("acks", "all")
            .set("linger.ms", "0")
            .create()
            .unwrap();
        for r in records {
            let mut headers = OwnedHeaders::new();
            for (k, v) in r.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(*v),
                });
            }
            let mut rec: BaseRecord<'_, str, str> = BaseRecord::to(topic)
                .partition(r.partition)
                .payload(r.value)
                .headers(headers);
            if let Some(k) = r.key {
                rec = rec.key(k);
            }
            p.send(rec).map_err(|(e, _)| e).unwrap();
        }
        p.flush(Duration::from_secs(60)).unwrap();
    }

    /// The offsets `group` committed for partitions `0..partitions` of `topic` (`None`: none).
    pub fn committed(&self, group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.addr())
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        let got = c.committed_offsets(tpl, Duration::from_secs(30)).unwrap();
        (0..partitions)
            .map(|p| match got.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => Some(o),
                _ => None,
            })
            .collect()
    }
}
