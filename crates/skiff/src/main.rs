//! The `skiff` binary: command line, configuration, the table of components, the
//! HTTP monitoring endpoint, and orderly shutdown.
//!
//! Where things are:
//! * `cli`: the command line (Beats' flags: `-c`, `-E`, `-e`, `-d`, `--path.*`).
//! * `settings`: the top level of the configuration and the embedded default (`default.yml`).
//! * `registry`: the table of every input, processor and output (one line each).
//! * `run`: builds the topology (crate `skiff-topology`) from the configuration and the
//!   registry, runs it, and chooses the exit code.
//! * `http`: `/`, `/stats`, `/metrics`, `/inputs/`, `/health`.
//! * `logging`: skiff's own logs and the periodic metrics line.
//! * `agent`: `agent.id` persistence and process metrics.
//! * `reload`: inputs added, changed and removed while running (`filebeat.config.inputs`,
//!   SIGHUP).
//! * `commands`: `test config`, `test output`, `export config|template`, `registry list`.
//! * `keystore`: `keystore create|add|list|remove`, `${KEY}` from the keystore, masking.
//! * `about`: `version` and the component list at the end of `--help`.

mod about;
mod agent;
mod cli;
mod cloud_id;
mod commands;
mod extras;
mod http;
mod keystore;
mod logging;
mod modules;
mod registry;
mod reload;
mod run;
mod settings;
mod test_modules;

fn main() {
    let cli = about::parse();
    let code = match commands::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("skiff: {e:#}");
            1
        }
    };
    std::process::exit(code);
}
