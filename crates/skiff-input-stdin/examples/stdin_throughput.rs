#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
//! Reads standard input with the stdin input into a memory queue drained (and acked) by a
//! task, on a current-thread runtime, and prints events/s: isolates the input from the rest
//! of skiff. `cargo run --release -p skiff-input-stdin --example stdin_throughput < lines.log`

use std::sync::Arc;
use std::time::Instant;

use skiff_config::Node;
use skiff_event::Map;
use skiff_input_stdin::Stdin;
use skiff_metrics::Registry;
use skiff_pipeline::queue::memory::{MemoryQueue, MemoryQueueConfig};
use skiff_pipeline::{BuildContext, InputContext, Publisher, Queue};
use tokio_util::sync::CancellationToken;

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let metrics = Registry::new();
        let ctx = BuildContext::standalone("h", "0.1.0", &metrics);
        let q = Arc::new(MemoryQueue::new(
            MemoryQueueConfig::default(),
            &ctx.metrics,
            &ctx.budget,
        ));
        let drain = {
            let q = q.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while let Some(mut b) = q.pop(2048).await {
                    for mut e in std::mem::take(&mut b.events) {
                        e.ack();
                        n += 1;
                    }
                }
                n
            })
        };
        let ictx = InputContext {
            id: "stdin".into(),
            publisher: Publisher::new(q.clone(), Vec::new(), &ctx.metrics),
            shutdown: CancellationToken::new(),
            build: ctx.clone(),
            shared: Arc::new(Map::new()),
        };
        let start = Instant::now();
        let input = Stdin::from_node(&Node::empty_map(), &ctx).unwrap();
        // The production path: `Input::run` reads standard input with its read-ahead thread.
        skiff_pipeline::Input::run(Box::new(input), ictx)
            .await
            .unwrap();
        q.close();
        let n = drain.await.unwrap();
        let s = start.elapsed().as_secs_f64();
        println!(
            "{{\"events\": {n}, \"seconds\": {s:.3}, \"events_per_s\": {:.0}}}",
            n as f64 / s
        );
    });
}
