//! The commands: `run` (default), `test config|output`, `export config|template`,
//! `registry list`, `version`.

use skiff_config::ConfigErrors;

use crate::cli::{Cli, Command, ExportCommand, Global, RegistryCommand, TestCommand};
use crate::settings::{self, Parts};
use crate::{logging, registry, run};

/// Runs the command; returns the exit code.
pub fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    let g = cli.global;
    match cli.command.unwrap_or(Command::Run) {
        Command::Devices => {
            for (i, name, desc, addrs) in skiff_input_packet::capture::live::devices()? {
                println!("{i}: {name} ({desc}) ({})", addrs.join(", "));
            }
            Ok(0)
        }
        Command::Version => {
            println!(
                "skiff version {} ({}), Beats-compatible configuration, ECS {}",
                crate::agent::VERSION,
                std::env::consts::ARCH,
                skiff_event::ECS_VERSION
            );
            Ok(0)
        }
        Command::Run => {
            let Some(parts) = load_parts(&g) else {
                return Ok(1);
            };
            let paths = settings::resolve_paths(&parts.settings.path, &g);
            let _guard = logging::init(
                &parts.settings.logging,
                g.stderr,
                g.debug.as_deref(),
                &paths.logs,
            )?;
            // A panic anywhere is logged with the component that panicked.
            skiff_pipeline::supervise::install_panic_hook(false);
            let ctx = run::build_context(&parts, &g)?;
            runtime(parts.settings.max_procs)?.block_on(run::run(parts, ctx, &g))
        }
        Command::Test(TestCommand::Config) => {
            let Some(parts) = load_parts(&g) else {
                return Ok(1);
            };
            let ctx = run::build_context(&parts, &g)?;
            let result = runtime(Some(1))?.block_on(async {
                skiff_topology::Topology::from_config(
                    &parts.pipeline(),
                    &registry::PLUGINS,
                    &ctx,
                    true,
                )
                .map(|_| ())
            });
            match result {
                Ok(()) => {
                    println!("Config OK");
                    Ok(0)
                }
                Err(e) => {
                    print_errors(&e);
                    Ok(1)
                }
            }
        }
        Command::Test(TestCommand::Output) => {
            let Some(parts) = load_parts(&g) else {
                return Ok(1);
            };
            let ctx = run::build_context(&parts, &g)?;
            let Some((name, node)) = parts.output.clone() else {
                eprintln!("no output is configured");
                return Ok(1);
            };
            let Some(plugin) = registry::OUTPUTS.iter().find(|p| p.name == name) else {
                eprintln!("unknown output `{name}`");
                return Ok(1);
            };
            let Some(probe) = plugin.probe else {
                println!("output.{name}: nothing to test (no network connection)");
                return Ok(0);
            };
            let steps = runtime(Some(1))?.block_on(probe(&node, &ctx));
            let mut ok = true;
            for s in &steps {
                ok &= s.ok;
                println!(
                    "{:<40} {} {}",
                    s.name,
                    if s.ok { "OK  " } else { "FAIL" },
                    s.detail
                );
                if let (false, Some(h)) = (s.ok, &s.hint) {
                    println!("{:<40}      hint: {h}", "");
                }
            }
            Ok(if ok { 0 } else { 1 })
        }
        Command::Export(ExportCommand::Config) => {
            let mut root = match settings::load(&g) {
                Ok(r) => r,
                Err(e) => {
                    print_errors(&e);
                    return Ok(1);
                }
            };
            skiff_config::mask_secrets(&mut root);
            // JSON is YAML: the output can be fed back with -c.
            println!("{}", serde_json::to_string_pretty(&root.to_json())?);
            Ok(0)
        }
        Command::Export(ExportCommand::Template) => crate::extras::export_template(),
        Command::Registry(RegistryCommand::List { json }) => {
            let Some(parts) = load_parts(&g) else {
                return Ok(1);
            };
            let paths = settings::resolve_paths(&parts.settings.path, &g);
            crate::extras::registry_list(&paths.data, json)
        }
    }
}

fn load_parts(g: &Global) -> Option<Parts> {
    match settings::load(g).and_then(settings::split) {
        Ok(p) => Some(p),
        Err(e) => {
            print_errors(&e);
            None
        }
    }
}

fn print_errors(errors: &ConfigErrors) {
    for e in errors.iter() {
        eprintln!("{e}");
    }
    eprintln!("skiff: the configuration has {} problem(s)", errors.len());
}

fn runtime(threads: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads.filter(|n| *n > 0) {
        b.worker_threads(n);
    }
    Ok(b.enable_all().thread_name("skiff").build()?)
}
