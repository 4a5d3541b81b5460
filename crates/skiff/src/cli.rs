//! The command line, in the Beats' shape: `skiff [run] -c skiff.yml -e -E key=value`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// One agent that ships logs, network transactions and metrics.
#[derive(Parser, Debug)]
#[command(name = "skiff", version, about, propagate_version = true)]
pub struct Cli {
    /// The command (default: run).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options shared by every command.
    #[command(flatten)]
    pub global: Global,
}

/// Options every command takes.
#[derive(Args, Debug, Clone, Default)]
pub struct Global {
    /// Configuration file (repeatable; later files win). Without it, the embedded default
    /// configuration is used.
    #[arg(short = 'c', long = "c", global = true, value_name = "FILE")]
    pub config: Vec<PathBuf>,
    /// Override a setting: -E output.console.enabled=true (repeatable).
    #[arg(short = 'E', global = true, value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Log to stderr instead of the log files.
    #[arg(short = 'e', global = true)]
    pub stderr: bool,
    /// Enable debug logging for these selectors (comma separated; `*` for all).
    #[arg(short = 'd', global = true, value_name = "SELECTORS")]
    pub debug: Option<String>,
    /// `path.home`.
    #[arg(long = "path.home", global = true)]
    pub path_home: Option<PathBuf>,
    /// `path.config`.
    #[arg(long = "path.config", global = true)]
    pub path_config: Option<PathBuf>,
    /// `path.data`.
    #[arg(long = "path.data", global = true)]
    pub path_data: Option<PathBuf>,
    /// `path.logs`.
    #[arg(long = "path.logs", global = true)]
    pub path_logs: Option<PathBuf>,
    /// Keys Filebeat would ignore are errors, not warnings (also `skiff.strict: true`).
    #[arg(long = "strict", global = true)]
    pub strict: bool,
    /// Run these modules with all their filesets (comma separated), as `filebeat.modules`.
    #[arg(long = "modules", global = true, value_name = "LIST")]
    pub modules: Option<String>,
}

/// Commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the agent (the default).
    Run,
    /// Check something and exit 0 (fine) or 1 (problems listed).
    #[command(subcommand)]
    Test(TestCommand),
    /// Print something derived from the configuration.
    #[command(subcommand)]
    Export(ExportCommand),
    /// Inspect the file input's registry (what was shipped, file by file).
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// List, enable or disable the modules of `modules.d/` (docs/modules.md).
    #[command(subcommand)]
    Modules(crate::modules::ModulesCommand),
    /// Print the version.
    Version,
}

/// `skiff test ...`
#[derive(Subcommand, Debug)]
pub enum TestCommand {
    /// Validate the configuration: every problem with its file, line, key and a suggestion.
    Config,
    /// Check the configured output step by step: DNS, TCP, TLS, authentication, protocol.
    Output,
}

/// `skiff export ...`
#[derive(Subcommand, Debug)]
pub enum ExportCommand {
    /// The effective configuration (files, -E and environment applied), secrets masked.
    Config,
    /// An Elasticsearch index template for the fields skiff emits.
    Template,
}

/// `skiff registry ...`
#[derive(Subcommand, Debug)]
pub enum RegistryCommand {
    /// Every file known to the registry with its size, acknowledged offset and whether it is
    /// fully shipped (safe to delete).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}
