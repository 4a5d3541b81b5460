//! The `skiff` binary: command line, configuration, wiring, HTTP API.

mod registry;

fn main() {
    let _ = (registry::INPUTS, registry::OUTPUTS, registry::PROCESSORS);
}
