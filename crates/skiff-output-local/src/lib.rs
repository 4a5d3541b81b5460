//! skiff's local outputs: where events go when they do not leave the machine.
//!
//! * [`console`]: one event per line on standard output, as Filebeat's `output.console`
//!   (NDJSON with `@metadata`, `pretty`, or a `codec.format.string` template).
//! * [`file`]: NDJSON files in a directory, rotated by size and pruned to a number of files,
//!   named as Filebeat 8 names them (`skiff-20260102.ndjson`, `skiff-20260102-1.ndjson`, ...).
//! * [`discard`]: accepts and acknowledges everything, writes nothing: measures the rest of the
//!   pipeline in benchmarks.
//!
//! They sit at the end of the pipeline (input -> processors -> queue -> **output**): the output
//! worker hands each client a batch, and a batch counts as delivered (its events are acked back
//! to their inputs, which may then commit offsets) only once it has been written and flushed.
//! [`codec`] is the encoding shared by console and file (`codec.json.*`, `codec.format.*`).

pub mod codec;
pub mod console;
pub mod discard;
pub mod file;
mod rotate;

use skiff_pipeline::OutputPlugin;

/// `output.console`.
pub static CONSOLE: OutputPlugin = OutputPlugin {
    name: "console",
    build: console::build,
    probe: None,
    setup: None,
};

/// `output.file`.
pub static FILE: OutputPlugin = OutputPlugin {
    name: "file",
    build: file::build,
    probe: None,
    setup: None,
};

/// `output.discard`.
pub static DISCARD: OutputPlugin = OutputPlugin {
    name: "discard",
    build: discard::build,
    probe: None,
    setup: None,
};

/// `backoff.*`: the wait between retries of a failed batch.
#[derive(Clone, Copy, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    /// `init`: the first wait, doubled at each retry. Default 1s.
    #[serde(default = "backoff_init")]
    pub init: skiff_config::Duration,
    /// `max`: the longest wait. Default 60s.
    #[serde(default = "backoff_max")]
    pub max: skiff_config::Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            init: backoff_init(),
            max: backoff_max(),
        }
    }
}

fn backoff_init() -> skiff_config::Duration {
    skiff_config::Duration(std::time::Duration::from_secs(1))
}

fn backoff_max() -> skiff_config::Duration {
    skiff_config::Duration(std::time::Duration::from_secs(60))
}

fn default_max_retries() -> i64 {
    -1
}

/// The worker settings of a single-writer output.
fn settings(
    bulk_max_size: usize,
    max_retries: i64,
    backoff: Backoff,
) -> skiff_pipeline::OutputSettings {
    skiff_pipeline::OutputSettings {
        bulk_max_size: bulk_max_size.max(1),
        max_retries,
        backoff_init: backoff.init.0,
        backoff_max: backoff.max.0.max(backoff.init.0),
        loadbalance: false,
    }
}

fn yes() -> bool {
    true
}

fn default_bulk_max_size() -> usize {
    2048
}
