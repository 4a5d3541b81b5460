//! prometheus `remote_write`: the receiver run as the block's input (through a real publisher
//! and memory queue, with the test as the output that acknowledges), written to by a real
//! Prometheus (Debian's `prometheus`, installed by scripts/ensure-test-deps) that the test starts
//! with a temporary configuration scraping itself and remote-writing to skiff. Also: the answer
//! waits for the output's acknowledgement, and hostile bodies are refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod live;

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use skiff_event::{Event, Map, Value};
use skiff_input_metrics::modules::prometheus::remote_write::{
    Label, Sample, TimeSeries, WriteRequest,
};
use skiff_metrics::Registry;
use skiff_pipeline::queue::memory::{MemoryQueue, MemoryQueueConfig};
use skiff_pipeline::{BuildContext, Input, InputContext, Publisher, Queue};
use tokio_util::sync::CancellationToken;

/// A block of `yaml` running as an input, its queue, and the stop switch.
struct Running {
    queue: Arc<MemoryQueue>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn run(yaml: &str) -> Running {
    let ctx = BuildContext::standalone("h", "0.1.0", &Registry::new());
    let cfg = MemoryQueueConfig {
        events: 1 << 16,
        max_bytes: skiff_config::ByteSize(1 << 28),
        ..Default::default()
    };
    let queue = Arc::new(MemoryQueue::new(cfg, &ctx.metrics, &ctx.budget));
    let publisher = Publisher::new(queue.clone(), Vec::new(), &ctx.metrics);
    let stop = CancellationToken::new();
    let ictx = InputContext {
        id: "metrics-0".into(),
        publisher,
        shutdown: stop.clone(),
        build: ctx,
        shared: Arc::new(Map::new()),
    };
    let block = Box::new(common::block(yaml));
    let task = tokio::spawn(async move {
        block.run(ictx).await.unwrap();
    });
    Running { queue, stop, task }
}

impl Running {
    /// The next batch of events, not acknowledged yet.
    async fn next(&self, within: Duration) -> Vec<Event> {
        let got = tokio::time::timeout(within, self.queue.pop(1 << 16)).await;
        match got {
            Ok(Some(mut b)) => std::mem::take(&mut b.events),
            Ok(None) => panic!("queue closed"),
            Err(_) => panic!("no events within {within:?}"),
        }
    }

    async fn stop(self) {
        self.stop.cancel();
        self.queue.close();
        self.task.await.unwrap();
    }
}

fn body(req: &WriteRequest) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap()
}

fn label(name: &str, value: &str) -> Label {
    Label {
        name: name.into(),
        value: value.into(),
    }
}

async fn post(port: u16, body: Vec<u8>) -> reqwest::Response {
    let client = live::http_client();
    // The receiver may still be binding right after the block started.
    for _ in 0..100 {
        match client
            .post(format!("http://127.0.0.1:{port}/write"))
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .body(body.clone())
            .send()
            .await
        {
            Ok(r) => return r,
            Err(e) if e.is_connect() => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("the receiver did not listen on {port}");
}

#[tokio::test]
async fn writes_are_answered_after_the_output_acknowledged_them() {
    let port = common::free_port();
    let r = run(&format!(
        "module: prometheus\nmetricsets: [remote_write]\nhost: 127.0.0.1\nport: '{port}'\nmetrics_count: true\nmax_compressed_body_bytes: 4096\n"
    ));
    let req = WriteRequest {
        timeseries: vec![
            TimeSeries {
                labels: vec![label("__name__", "up"), label("job", "a")],
                samples: vec![
                    Sample {
                        value: 1.0,
                        timestamp: 1_700_000_000_000,
                    },
                    Sample {
                        value: f64::NAN,
                        timestamp: 1_700_000_001_000,
                    },
                ],
            },
            TimeSeries {
                labels: vec![label("__name__", "temp"), label("job", "a")],
                samples: vec![Sample {
                    value: 21.5,
                    timestamp: 1_700_000_000_000,
                }],
            },
        ],
    };
    let answer = tokio::spawn(post(port, body(&req)));
    let events = r.next(Duration::from_secs(10)).await;
    assert_eq!(events.len(), 1, "one label set, one timestamp, NaN dropped");
    let e = &events[0];
    assert_eq!(e.timestamp.as_millis(), 1_700_000_000_000);
    let f = Value::Object(e.fields.clone());
    assert_eq!(f["prometheus"]["labels"]["job"], "a");
    assert_eq!(f["prometheus"]["metrics"]["up"], 1);
    assert_eq!(f["prometheus"]["metrics"]["temp"], 21.5);
    assert_eq!(f["metrics_count"], 2);
    assert_eq!(f["event"]["dataset"], "prometheus.remote_write");
    assert_eq!(f["metricset"]["name"], "remote_write");
    assert!(f["metricset"].get("period").is_none(), "push: no period");
    assert!(f["event"].get("duration").is_none());
    assert!(f["service"].get("address").is_none());
    // The event is in the queue but not acknowledged: no answer can have been sent.
    assert!(
        !answer.is_finished(),
        "answered before the output acknowledged"
    );
    for ev in events {
        let mut ev = ev;
        ev.ack();
    }
    let resp = answer.await.unwrap();
    assert_eq!(resp.status().as_u16(), 204);

    // Bodies that are too big, not snappy, or not protobuf: refused, nothing published.
    let big = post(port, vec![0u8; 5000]).await;
    assert_eq!(big.status().as_u16(), 413);
    let not_snappy = post(port, b"hello".to_vec()).await;
    assert_eq!(not_snappy.status().as_u16(), 400);
    let junk = post(
        port,
        snap::raw::Encoder::new().compress_vec(&[0xff; 32]).unwrap(),
    )
    .await;
    assert_eq!(junk.status().as_u16(), 400);
    let get = live::http_client()
        .get(format!("http://127.0.0.1:{port}/write"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status().as_u16(), 405);
    assert!(
        tokio::time::timeout(Duration::from_millis(1), r.queue.pop(10))
            .await
            .is_err(),
        "nothing was published for refused bodies"
    );
    r.stop().await;
}

#[tokio::test]
async fn a_write_not_delivered_when_skiff_stops_is_answered_503() {
    let port = common::free_port();
    let r = run(&format!(
        "module: prometheus\nmetricsets: [remote_write]\nhost: 127.0.0.1\nport: {port}\n"
    ));
    let req = WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![label("__name__", "up")],
            samples: vec![Sample {
                value: 1.0,
                timestamp: 1_700_000_000_000,
            }],
        }],
    };
    let answer = tokio::spawn(post(port, body(&req)));
    // Queued, never acknowledged (the output is down); then skiff stops.
    let held = r.next(Duration::from_secs(10)).await;
    assert_eq!(held.len(), 1);
    r.stop.cancel();
    let resp = answer.await.unwrap();
    assert_eq!(resp.status().as_u16(), 503, "Prometheus must send it again");
    drop(held);
    r.queue.close();
    r.task.await.unwrap();
}

#[tokio::test]
async fn a_taken_port_is_an_error_event() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let r = run(&format!(
        "module: prometheus\nmetricsets: [remote_write]\nhost: 127.0.0.1\nport: {port}\n"
    ));
    let events = r.next(Duration::from_secs(10)).await;
    let f = Value::Object(events[0].fields.clone());
    let msg = f["error"]["message"].as_str().unwrap();
    assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
    r.stop().await;
    // `skiff test modules` (one fetch) says the same.
    let once = common::fetch(&format!(
        "module: prometheus\nmetricsets: [remote_write]\nhost: 127.0.0.1\nport: {port}\n"
    ))
    .await;
    let msg = common::get(&once[0], "error.message").as_str().unwrap();
    assert!(msg.contains("listening on"), "{msg}");
    drop(taken);
}

#[tokio::test]
async fn a_real_prometheus_writes_its_samples() {
    prometheus_writes_to_skiff(false).await;
}

/// The same over HTTPS: skiff serves a certificate made by `openssl` (the `ssl` block of the
/// module), Prometheus trusts it through `tls_config.ca_file`.
#[tokio::test]
async fn a_real_prometheus_writes_over_https() {
    prometheus_writes_to_skiff(true).await;
}

async fn prometheus_writes_to_skiff(tls: bool) {
    let (receiver, web) = (common::free_port(), common::free_port());
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (scheme, ssl, tls_config) = if tls {
        let out = std::process::Command::new(common::need("openssl"))
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        (
            "https",
            format!(
                "ssl: {{certificate: '{}', key: '{}'}}\n",
                cert.display(),
                key.display()
            ),
            format!(", tls_config: {{ca_file: '{}'}}", cert.display()),
        )
    } else {
        ("http", String::new(), String::new())
    };
    let r = run(&format!(
        "module: prometheus\nmetricsets: [remote_write]\nhost: 127.0.0.1\nport: {receiver}\n{ssl}"
    ));
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global: {{scrape_interval: 1s, external_labels: {{monitor: skiff-test}}}}\n\
             scrape_configs: [{{job_name: self, static_configs: [{{targets: ['127.0.0.1:{web}']}}]}}]\n\
             remote_write: [{{url: '{scheme}://127.0.0.1:{receiver}/write', queue_config: {{batch_send_deadline: 1s}}{tls_config}}}]\n"
        ),
    )
    .unwrap();
    let _srv = common::start(
        "prometheus",
        &[
            &format!("--config.file={}", cfg.display()),
            "--storage.tsdb.path={dir}/data",
            &format!("--web.listen-address=127.0.0.1:{web}"),
        ],
        web,
    );
    // Prometheus scrapes itself every second and sends what it scraped; take what arrives,
    // acknowledging it (so Prometheus gets its 204), until the `up` series has come.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut seen: Vec<Map> = Vec::new();
    let mut up = None;
    while up.is_none() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(!left.is_zero(), "no `up` sample in {} events", seen.len());
        for mut ev in r.next(left).await {
            let fields = ev.fields.clone();
            ev.ack();
            let v = Value::Object(fields.clone());
            if v["prometheus"]["metrics"].get("up").is_some() {
                up = Some(fields.clone());
            }
            seen.push(fields);
        }
    }
    let up = Value::Object(up.unwrap());
    assert_eq!(up["prometheus"]["metrics"]["up"], 1);
    assert_eq!(up["prometheus"]["labels"]["job"], "self");
    assert_eq!(up["prometheus"]["labels"]["monitor"], "skiff-test");
    assert_eq!(
        up["prometheus"]["labels"]["instance"],
        format!("127.0.0.1:{web}")
    );
    // Every event: the example event's layout (labels strings, metrics numbers) and envelope.
    let example: Value =
        serde_json::from_str(
            &std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(
                "../../../shared/corpus/metricbeat-modules/prometheus/remote_write/data.json",
            ))
            .unwrap(),
        )
        .unwrap();
    assert!(seen.len() > 10, "{}", seen.len());
    let mut metrics = 0;
    for e in &seen {
        let v = Value::Object(e.clone());
        for k in ["event", "metricset", "service"] {
            for (name, want) in example[k].as_object().unwrap() {
                assert_eq!(&v[k][name], want, "{k}.{name}");
            }
        }
        assert!(v["metricset"].get("period").is_none());
        for (_, l) in v["prometheus"]["labels"].as_object().unwrap() {
            assert!(l.is_string());
        }
        for (name, m) in v["prometheus"]["metrics"].as_object().unwrap() {
            assert!(m.as_f64().is_some_and(f64::is_finite), "{name}: {m}");
            assert!(!name.is_empty() && name != "__name__");
            metrics += 1;
        }
    }
    assert!(metrics > seen.len() / 2, "{metrics}");
    r.stop().await;
}

#[test]
fn bad_settings_are_configuration_errors() {
    let errors = |extra: &str| {
        let yaml = format!("module: prometheus\nmetricsets: [remote_write]\n{extra}");
        let node = skiff_config::parse_str(&yaml, Some("m.yml")).unwrap();
        match skiff_input_metrics::Block::from_node(&node) {
            Ok(_) => panic!("accepted: {extra}"),
            Err(e) => e.to_string(),
        }
    };
    let e = errors("port: nine\n");
    assert!(e.contains("port") && e.contains("m.yml"), "{e}");
    let e = errors("use_types: true\n");
    assert!(e.contains("use_types"), "{e}");
    let e = errors("ssl: {certificate: /nonexistent/cert.pem}\n");
    assert!(e.contains("remote_write ssl"), "{e}");
    let e = errors("hots: 1\n");
    assert!(e.contains("hots"), "{e}");
    // Metricbeat's examples quote the port.
    let node = skiff_config::parse_str(
        "module: prometheus\nmetricsets: [remote_write]\nport: '9201'\n",
        Some("m.yml"),
    )
    .unwrap();
    assert!(skiff_input_metrics::Block::from_node(&node).is_ok());
}
