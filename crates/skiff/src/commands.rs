//! The commands: `run` (default), `test config|output`, `export config|template`,
//! `registry list`, `version`, `keystore ...`.

use skiff_config::{ConfigError, ConfigErrors};

use crate::cli::{Cli, Command, ExportCommand, Global, RegistryCommand, TestCommand};
use crate::settings::{self, Parts};
use crate::{logging, registry, run};

/// Runs the command; returns the exit code.
pub fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    let g = cli.global;
    // Keys Filebeat ignores are warnings (reported where the configuration is read; an input
    // built again at a restart does not report them again). `--strict` makes them errors.
    skiff_config::diag::set_tolerant(!g.strict);
    match cli.command.unwrap_or(Command::Run) {
        Command::Devices => {
            for (i, name, desc, addrs) in skiff_input_packet::capture::live::devices()? {
                println!("{i}: {name} ({desc}) ({})", addrs.join(", "));
            }
            Ok(0)
        }
        Command::Version => {
            crate::about::print_version();
            Ok(0)
        }
        Command::Keystore(cmd) => crate::keystore::run(cmd, &g),
        Command::Run => {
            let (parts, warnings) = match load_for_run(&g) {
                Ok(p) => p,
                Err(e) => {
                    print_errors(&e);
                    return Ok(1);
                }
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
            runtime(parts.settings.max_procs)?.block_on(run::run(parts, ctx, &g, warnings))
        }
        Command::Test(TestCommand::Config) => test_config(&g),
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
        Command::Test(TestCommand::Modules { module, metricset }) => {
            let Some(parts) = load_parts(&g) else {
                return Ok(1);
            };
            let filter = (module.as_deref(), metricset.as_deref());
            runtime(Some(1))?.block_on(crate::test_modules::run(&parts, filter))
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
            crate::keystore::mask_used(&mut root);
            // JSON is YAML: the output can be fed back with -c.
            println!("{}", serde_json::to_string_pretty(&root.to_json())?);
            Ok(0)
        }
        Command::Export(ExportCommand::Template) => crate::extras::export_template(),
        Command::Modules(cmd) => crate::modules::command(&g, cmd),
        Command::Registry(RegistryCommand::List { json }) => {
            let Some(parts) = load_parts(&g) else {
                return Ok(1);
            };
            let paths = settings::resolve_paths(&parts.settings.path, &g);
            crate::extras::registry_list(&paths.data, json)
        }
    }
}

/// Loads the configuration for `run`: every problem of the agent-wide part (the components
/// are checked when the topology is built), "nothing to run", and the warnings so far.
fn load_for_run(g: &Global) -> Result<(Parts, Vec<ConfigError>), ConfigErrors> {
    let root = settings::load(g)?;
    let strict = g.strict || settings::strict_in(&root);
    let ((parts, mut errors), diag) = skiff_config::collect(strict, || settings::split_all(root));
    errors.extend(diag.errors);
    errors.extend(parts.nothing_to_run());
    if errors.is_empty() {
        Ok((parts, diag.warnings))
    } else {
        print_warnings(&diag.warnings, &parts.warnings);
        Err(ConfigErrors(errors))
    }
}

/// `skiff test config`: every problem and every warning of the whole configuration (the
/// agent-wide part, each component, the input files of `filebeat.config.inputs`) in one run.
fn test_config(g: &Global) -> anyhow::Result<i32> {
    let root = match settings::load(g) {
        Ok(r) => r,
        Err(e) => {
            print_errors(&e);
            return Ok(1);
        }
    };
    let strict = g.strict || settings::strict_in(&root);
    let rt = runtime(Some(1))?;
    let (checked, diag) = skiff_config::collect(strict, || -> anyhow::Result<_> {
        let (parts, mut errors) = settings::split_all(root);
        errors.extend(parts.nothing_to_run());
        let ctx = run::build_context(&parts, g)?;
        let mut pipeline = parts.pipeline();
        if let Some(files) = &parts.input_files {
            match crate::reload::read_input_files(files, &ctx.paths).1 {
                Ok(items) => pipeline.inputs.extend(items),
                Err(e) => errors.extend(e),
            }
        }
        if let Some(files) = &parts.metric_files {
            match skiff_input_metrics::section::read_module_inputs(files).1 {
                Ok(items) => pipeline.inputs.extend(items),
                Err(e) => errors.extend(e),
            }
        }
        let built = rt.block_on(async {
            skiff_topology::Topology::from_config(&pipeline, &registry::PLUGINS, &ctx, true)
                .map(|_| ())
        });
        if let Err(e) = built {
            errors.extend(e.0);
        }
        Ok((parts.warnings, errors))
    });
    let (notes, mut errors) = checked?;
    for e in diag.errors {
        if !errors.contains(&e) {
            errors.push(e);
        }
    }
    // In file order: the way a person fixes them.
    let place = |e: &ConfigError| (e.mark.file.clone(), e.mark.line, e.mark.column);
    errors.sort_by_key(place);
    let mut warnings = diag.warnings;
    warnings.sort_by_key(place);
    print_warnings(&warnings, &notes);
    let diag = skiff_config::Diagnostics {
        warnings,
        errors: Vec::new(),
    };
    if errors.is_empty() {
        match diag.warnings.len() + notes.len() {
            0 => println!("Config OK"),
            n => println!("Config OK ({n} warning(s))"),
        }
        Ok(0)
    } else {
        print_errors(&ConfigErrors(errors));
        Ok(1)
    }
}

/// Warnings with a place (`file:line: key: ...`) and without (ignored sections).
fn print_warnings(located: &[ConfigError], notes: &[String]) {
    for w in located {
        eprintln!("warning: {w}");
    }
    for n in notes {
        eprintln!("warning: {n}");
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
