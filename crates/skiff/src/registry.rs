//! The registry: every input, processor and output skiff knows, one line each.
//!
//! To add a component, implement its trait in its own crate or module and add its descriptor
//! here. A test checks the table (unique names).

use skiff_pipeline::{InputPlugin, OutputPlugin, ProcessorPlugin};
use skiff_topology::Plugins;

/// Every input type.
pub const INPUTS: &[&InputPlugin] = &[
    &skiff_input_stdin::PLUGIN,
    &skiff_input_file::FILESTREAM,
    &skiff_input_file::LOG,
    &skiff_input_file::CONTAINER,
    &skiff_lumberjack::INPUT,
    &skiff_lumberjack::BEATS_INPUT,
    &skiff_input_packet::PLUGIN,
    &skiff_input_net::TCP,
    &skiff_input_net::UDP,
    &skiff_input_net::UNIX,
    &skiff_input_net::SYSLOG,
    &skiff_input_mqtt::PLUGIN,
    &skiff_input_http::PLUGIN,
    &skiff_input_journald::PLUGIN,
    &skiff_input_kafka::PLUGIN,
    &skiff_input_metrics::PLUGIN,
];

/// Every output type.
pub const OUTPUTS: &[&OutputPlugin] = &[
    &skiff_output_local::CONSOLE,
    &skiff_output_local::FILE,
    &skiff_output_local::DISCARD,
    &skiff_output_redis::PLUGIN,
    &skiff_output_kafka::PLUGIN,
    &skiff_output_elasticsearch::PLUGIN,
    &skiff_lumberjack::OUTPUT,
];

/// Processors that live outside skiff-processors (in crates that depend on it), looked up
/// before its own table.
pub const EXTRA_PROCESSORS: &[&ProcessorPlugin] = &[&skiff_autodiscover::docker_metadata::PLUGIN];

/// Builds a `processors` list from skiff-processors' table and [`EXTRA_PROCESSORS`].
fn build_processors(
    node: Option<&skiff_config::Node>,
    ctx: &skiff_pipeline::BuildContext,
) -> Result<Vec<std::sync::Arc<dyn skiff_pipeline::Processor>>, skiff_config::ConfigErrors> {
    skiff_processors::build_list_with(node, ctx, EXTRA_PROCESSORS)
}

/// The table the topology builds from.
pub const PLUGINS: Plugins = Plugins {
    inputs: INPUTS,
    outputs: OUTPUTS,
    processors: build_processors,
};

/// Every processor type.
// `build_processors` resolves processor names in this same table (after EXTRA_PROCESSORS).
#[cfg_attr(not(test), allow(dead_code))]
pub const PROCESSORS: &[&ProcessorPlugin] = skiff_processors::ALL;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = INPUTS.iter().map(|p| p.name).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len(), "duplicate input type");
        let mut names: Vec<&str> = OUTPUTS.iter().map(|p| p.name).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len(), "duplicate output type");
        let mut names: Vec<&str> = PROCESSORS.iter().map(|p| p.name).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len(), "duplicate processor");
    }
}
