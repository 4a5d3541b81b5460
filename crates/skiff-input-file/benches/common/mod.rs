//! What the in-process benchmarks share: a filestream input on a memory queue whose output
//! discards (and so acknowledges) everything.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use skiff_event::Event;
use skiff_pipeline::queue::memory::{MemoryQueue, MemoryQueueConfig};
use skiff_pipeline::{
    BuildContext, InputCommon, Outcome, Output, OutputSet, OutputSettings, Queue,
};
use skiff_topology::{InputSpec, Topology};

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

/// A running input in a real pipeline ([`Topology`]); its metrics are in `ctx.metrics`.
pub struct Running {
    pub ctx: BuildContext,
    id: String,
    pipeline: skiff_topology::Running,
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
    let input =
        InputSpec::from_plugin(id, &skiff_input_file::FILESTREAM, node, common, &ctx).unwrap();
    let queue: Arc<dyn Queue> = Arc::new(MemoryQueue::new(queue, &metrics, &ctx.budget));
    let pipeline = Topology::builder(ctx.clone())
        .queue(queue, false)
        .output(
            "discard",
            OutputSet {
                clients: vec![Box::new(Discard)],
                settings: output,
            },
        )
        .input(input)
        .build()
        .start_sync();
    Running {
        ctx,
        id: id.into(),
        pipeline,
    }
}

impl Running {
    /// A metric's value (0 when not reported yet).
    pub fn metric(&self, def: &'static skiff_metrics::Def) -> f64 {
        self.ctx.metrics.value(def).unwrap_or(0.0)
    }

    /// Stops the input (its registry saved), then the output once it has sent everything;
    /// panics if the input failed at any point (a benchmark of a failing input means nothing).
    pub async fn stop(self) {
        let health = self.pipeline.health();
        let report = self.pipeline.drain().await;
        assert!(!report.inputs_aborted, "the input did not stop in time");
        let h = health.get(&format!("input/{}", self.id)).unwrap();
        assert!(
            h.restarts == 0 && h.last_error.is_none(),
            "the input failed: {h:?}"
        );
    }
}
