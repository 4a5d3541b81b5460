#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The whole pipeline without the binary, assembled by the topology: stdin input (fed from
//! memory) -> memory queue (small, so the input is held back) -> output worker -> rotating file
//! output. Every line arrives exactly once, in order, with the ECS fields, and every event is
//! acknowledged back to the input's stream.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use skiff_config::Node;
use skiff_input_stdin::{Stats, Stdin};
use skiff_metrics::{Registry, names};
use skiff_pipeline::queue::memory::{FlushConfig, MemoryQueue, MemoryQueueConfig};
use skiff_pipeline::{BuildContext, Failure, Input, InputCommon, InputContext, Queue};
use skiff_topology::{Drain, Ended, InputSpec, Topology};

/// The stdin input reading `bytes` instead of the process's standard input.
struct FromBytes {
    input: Stdin,
    bytes: Arc<Vec<u8>>,
    stats: Arc<Mutex<Option<Stats>>>,
}

#[async_trait]
impl Input for FromBytes {
    async fn run(self: Box<Self>, ctx: InputContext) -> Result<(), Failure> {
        let stats = self.input.run_with(&self.bytes[..], ctx).await?;
        *self.stats.lock().unwrap() = Some(stats);
        Ok(())
    }
}

fn ctx(data: &std::path::Path) -> BuildContext {
    let mut ctx = BuildContext::standalone("host-1", "0.1.0", &Registry::new());
    ctx.paths.data = data.to_owned();
    ctx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_once_in_order_with_ecs_fields() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx(dir.path());
    const N: usize = 20_000;
    let mut input_bytes = Vec::new();
    for i in 0..N {
        input_bytes.extend_from_slice(format!("line {i:05} {}\n", "x".repeat(i % 50)).as_bytes());
    }
    // A queue far smaller than the input: the input must wait for the output (backpressure).
    let qcfg = MemoryQueueConfig {
        events: 256,
        flush: FlushConfig {
            min_events: 64,
            timeout: skiff_config::Duration(std::time::Duration::from_millis(5)),
        },
        ..Default::default()
    };
    let queue: Arc<dyn Queue> = Arc::new(MemoryQueue::new(qcfg, &ctx.metrics, &ctx.budget));
    let yaml = format!(
        "output.file: {{path: '{}/out', rotate_every_kb: 256, number_of_files: 100, bulk_max_size: 100}}",
        dir.path().display()
    );
    let root = skiff_config::parse_str(&yaml, Some("t.yml")).unwrap();
    let out = (skiff_output_local::FILE.build)(root.get("output.file").unwrap(), &ctx).unwrap();
    let common = InputCommon {
        kind: "stdin".into(),
        tags: vec!["piped".into()],
        ..Default::default()
    };
    let shared = Arc::new(ctx.shared_fields(&common, "stdin", "filebeat"));
    let (bytes, stats) = (Arc::new(input_bytes), Arc::new(Mutex::new(None)));
    let build = {
        let (ctx, stats) = (ctx.clone(), stats.clone());
        move || {
            let input = Stdin::from_node(&Node::empty_map(), &ctx)
                .map_err(|e| Failure::new(skiff_pipeline::FailureKind::Other, e.to_string()))?
                .with_buffer_size(4096);
            Ok(Box::new(FromBytes {
                input,
                bytes: bytes.clone(),
                stats: stats.clone(),
            }) as Box<dyn Input>)
        }
    };
    let mut running = Topology::builder(ctx.clone())
        .queue(queue, false)
        .output("file", out)
        .input(InputSpec::new("stdin-0", Arc::new(build)).shared(shared))
        .build()
        .start()
        .await;
    assert_eq!(running.wait().await, Ended::InputsEnded);
    let report = running
        .stop(Drain::Fully, std::future::pending::<()>())
        .await;
    assert_eq!(report.left, 0);
    assert!(stats.lock().unwrap().as_ref().unwrap().eof);

    assert!(
        ctx.metrics.counter(&names::PIPELINE_BLOCKED).get() > 0,
        "the input never waited"
    );
    assert_eq!(
        ctx.metrics.counter(&names::OUTPUT_EVENTS_ACKED).get(),
        N as u64
    );
    let mut files: Vec<_> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(files.len() > 3, "expected rotation, got {files:?}");
    // Oldest first: by date, then number (the first file of a day has none).
    files.sort_by_key(|p| {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let stem = name.trim_end_matches(".ndjson").to_owned();
        let parts: Vec<&str> = stem.split('-').collect();
        let n: u64 = parts.get(2).map_or(0, |s| s.parse().unwrap());
        (parts[1].to_owned(), n)
    });
    let mut written = 0u64;
    let mut next = 0usize;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        written += text.len() as u64;
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let want = format!("line {next:05} {}", "x".repeat(next % 50));
            assert_eq!(v["message"], want.as_str());
            assert_eq!(v["input"]["type"], "stdin");
            assert_eq!(v["agent"]["type"], "filebeat");
            assert_eq!(v["agent"]["id"], "host-1-id");
            assert_eq!(v["host"]["name"], "host-1");
            assert_eq!(v["ecs"]["version"], "8.0.0");
            assert_eq!(v["tags"], serde_json::json!(["piped"]));
            assert_eq!(v["@metadata"]["beat"], "filebeat");
            assert!(v["@timestamp"].as_str().unwrap().ends_with('Z'));
            assert!(v["log"]["offset"].is_u64());
            next += 1;
        }
    }
    assert_eq!(next, N, "lines lost or duplicated");
    assert_eq!(
        ctx.metrics.counter(&names::OUTPUT_WRITE_BYTES).get(),
        written
    );
}
