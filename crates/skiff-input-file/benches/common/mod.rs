//! What the in-process benchmarks share: a filestream input on a memory queue whose output
//! discards (and so acknowledges) everything.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use skiff_event::Event;
use skiff_pipeline::queue::memory::{MemoryQueue, MemoryQueueConfig};
use skiff_pipeline::{
    BuildContext, InputCommon, InputContext, Outcome, Output, OutputSet, OutputSettings, Publisher,
    Queue,
};

struct Discard;

#[async_trait]
impl Output for Discard {
    async fn send(&mut self, events: &[Event]) -> Result<Outcome, skiff_pipeline::Failure> {
        std::hint::black_box(events.len());
        Ok(Outcome::delivered())
    }
    fn describe(&self) -> String {
        "discard".into()
    }
}

/// A running input; its metrics are in `ctx.metrics`.
pub struct Running {
    pub ctx: BuildContext,
    queue: Arc<dyn Queue>,
    workers: tokio::task::JoinSet<()>,
    cancel: tokio_util::sync::CancellationToken,
    input: tokio::task::JoinHandle<Result<(), skiff_pipeline::Failure>>,
}

/// Starts filestream input `id` configured by `yaml` (with `path.data` = `data`) on a memory
/// queue with `queue`, and one discarding output worker with `output`. Call inside a runtime.
pub fn start(
    data: &Path,
    id: &str,
    yaml: &str,
    queue: MemoryQueueConfig,
    output: OutputSettings,
) -> Running {
    let metrics = skiff_metrics::Registry::new();
    let mut ctx = BuildContext::standalone("b", "0", &metrics);
    ctx.paths.data = data.to_path_buf();
    let node = skiff_config::parse_str(yaml, None).unwrap();
    let common = InputCommon {
        kind: "filestream".into(),
        id: Some(id.into()),
        ..InputCommon::default()
    };
    let input = (skiff_input_file::FILESTREAM.build)(&node, &common, &ctx).unwrap();
    let queue: Arc<dyn Queue> = Arc::new(MemoryQueue::new(queue, &metrics, &ctx.budget));
    let mut workers = tokio::task::JoinSet::new();
    skiff_pipeline::worker::spawn(
        &mut workers,
        queue.clone(),
        OutputSet {
            clients: vec![Box::new(Discard)],
            settings: output,
        },
        None,
        &metrics,
    );
    let cancel = tokio_util::sync::CancellationToken::new();
    let ictx = InputContext {
        id: id.into(),
        publisher: Publisher::new(queue.clone(), Vec::new(), &metrics),
        shutdown: cancel.clone(),
        build: ctx.clone(),
        shared: Arc::new(ctx.shared_fields(&common, "filestream", "filebeat")),
    };
    let input = tokio::spawn(async move { input.run(ictx).await });
    Running {
        ctx,
        queue,
        workers,
        cancel,
        input,
    }
}

impl Running {
    /// A metric's value (0 when not reported yet).
    pub fn metric(&self, def: &'static skiff_metrics::Def) -> f64 {
        self.ctx.metrics.value(def).unwrap_or(0.0)
    }

    /// Stops the input (its registry saved), then the output.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        (&mut self.input).await.unwrap().unwrap();
        self.queue.close();
        while self.workers.join_next().await.is_some() {}
    }
}
