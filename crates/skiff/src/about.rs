//! What this binary is: `skiff version`, `--version`, and the end of `--help`, which lists the
//! inputs, processors and outputs from the registry, so the help cannot claim a component the
//! binary does not have (or miss one it has).

use clap::{CommandFactory, FromArgMatches};

use crate::cli::Cli;
use crate::registry;

/// The version, commit and build date (set by `build.rs`).
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("SKIFF_BUILD_COMMIT"),
    ", built ",
    env!("SKIFF_BUILD_DATE"),
    ")"
);

/// The commit skiff was built from ("unknown" when built outside a git checkout).
pub const COMMIT: &str = env!("SKIFF_BUILD_COMMIT");
/// When it was built (RFC 3339, UTC).
pub const BUILD_DATE: &str = env!("SKIFF_BUILD_DATE");

/// `skiff version`.
pub fn print_version() {
    println!(
        "skiff version {} ({}), commit {COMMIT}, built {BUILD_DATE}, Beats-compatible configuration, ECS {}",
        crate::agent::VERSION,
        std::env::consts::ARCH,
        skiff_event::ECS_VERSION
    );
}

/// The help's closing text: what this binary can read, change and write.
pub fn components() -> String {
    fn line(title: &str, mut names: Vec<&str>) -> String {
        names.sort_unstable();
        format!("  {title:<12}{}\n", names.join(", "))
    }
    let mut s =
        String::from("Components in this binary (the `type:` of inputs, `output.<name>`):\n");
    s += &line("inputs:", registry::INPUTS.iter().map(|p| p.name).collect());
    s += &line(
        "processors:",
        registry::PROCESSORS.iter().map(|p| p.name).collect(),
    );
    s += &line(
        "outputs:",
        registry::OUTPUTS.iter().map(|p| p.name).collect(),
    );
    s += "\nWithout a command skiff runs. Without -c it uses its embedded default configuration.\n";
    s += "Documentation: README.md and docs/ in the source; packaged: /usr/share/doc/skiff.";
    s
}

/// Parses the command line with the component list in `--help`.
pub fn parse() -> Cli {
    let matches = Cli::command().after_help(components()).get_matches();
    match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    }
}
