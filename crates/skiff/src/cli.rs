//! The command line, in the Beats' shape: `skiff [run] -c skiff.yml -e -E key=value`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Reads events with its inputs, runs them through processors and a queue, and ships them to
/// one output, acknowledging each read only once the output has it.
// `--help` ends with the inputs, processors and outputs of this binary (built from the
// registry in `about::command`), and `--version` with the commit and build date.
#[derive(Parser, Debug)]
#[command(name = "skiff", version = crate::about::LONG_VERSION, propagate_version = true)]
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
    /// Packet input: read packets from this pcap/pcapng file instead of capturing (as
    /// Packetbeat's `-I`).
    #[arg(short = 'I', global = true, value_name = "FILE")]
    pub pcap_file: Option<PathBuf>,
    /// With -I: replay as fast as possible, keeping the file's timestamps (Packetbeat's `-t`).
    #[arg(short = 't', global = true)]
    pub top_speed: bool,
    /// With -I: replay the file this many times (Packetbeat's `-l`).
    #[arg(short = 'l', global = true, value_name = "N")]
    pub loops: Option<u32>,
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
    /// List the network devices the packet input can capture from (index, name, addresses).
    Devices,
    /// List, enable or disable the modules of `modules.d/` (docs/modules.md).
    #[command(subcommand)]
    Modules(crate::modules::ModulesCommand),
    /// Print the version, commit and build date.
    Version,
    /// Manage the keystore: secrets that the configuration uses as `${KEY}`.
    #[command(subcommand)]
    Keystore(KeystoreCommand),
}

/// `skiff keystore ...` (the store is `<path.data>/skiff.keystore`).
#[derive(Subcommand, Debug)]
pub enum KeystoreCommand {
    /// Create an empty keystore.
    Create {
        /// Replace an existing keystore (its keys are lost).
        #[arg(long)]
        force: bool,
    },
    /// Add a key; the value is read from standard input (a prompt without echo on a
    /// terminal), never from the command line.
    Add {
        /// The key, used in the configuration as `${KEY}`.
        key: String,
        /// Read the value from standard input even when it is a terminal (all of it, one
        /// trailing newline removed).
        #[arg(long)]
        stdin: bool,
        /// Replace the value of an existing key.
        #[arg(long)]
        force: bool,
    },
    /// List the keys (never the values).
    List,
    /// Remove keys.
    Remove {
        /// The keys to remove.
        #[arg(required = true)]
        keys: Vec<String>,
    },
}

/// `skiff test ...`
#[derive(Subcommand, Debug)]
pub enum TestCommand {
    /// Validate the configuration: every problem with its file, line, key and a suggestion.
    Config,
    /// Check the configured output step by step: DNS, TCP, TLS, authentication, protocol.
    Output,
    /// Fetch once from every configured metrics module (or one module, one metricset) and
    /// print the events or the error, as `metricbeat test modules`.
    Modules {
        /// Only this module.
        module: Option<String>,
        /// Only this metricset of it.
        metricset: Option<String>,
    },
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
