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
};

/// `output.file`.
pub static FILE: OutputPlugin = OutputPlugin {
    name: "file",
    build: file::build,
    probe: None,
};

/// `output.discard`.
pub static DISCARD: OutputPlugin = OutputPlugin {
    name: "discard",
    build: discard::build,
    probe: None,
};

fn yes() -> bool {
    true
}

fn default_bulk_max_size() -> usize {
    2048
}
