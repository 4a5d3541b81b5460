//! Filebeat modules in the binary: `filebeat.modules`, `filebeat.config.modules` (a
//! `modules.d/` folder), `--modules`, and `skiff modules list|enable|disable`. The work is in
//! `skiff_modules`; this file only joins it to the settings and the command line.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::Value;
use skiff_config::{Node, NodeValue};

use crate::cli::Global;

/// `skiff modules ...`
#[derive(Subcommand, Debug)]
pub enum ModulesCommand {
    /// List the modules of `modules.d/`, enabled and disabled.
    List,
    /// Enable modules (`<name>.yml.disabled` -> `<name>.yml`).
    Enable {
        /// Module names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Disable modules (`<name>.yml` -> `<name>.yml.disabled`).
    Disable {
        /// Module names.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// The `modules.d/` folder: the folder of `filebeat.config.modules.path` (a glob such as
/// `${path.config}/modules.d/*.yml`), else `<path.config>/modules.d`.
fn modules_dir(root: &Node) -> PathBuf {
    let text = |k: &str| match root.get(k).map(|n| &n.value) {
        Some(NodeValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    match text("filebeat.config.modules.path") {
        Some(p) => glob_dir(&p),
        None => PathBuf::from(text("path.config").unwrap_or_else(|| ".".into())).join("modules.d"),
    }
}

fn glob_dir(path: &str) -> PathBuf {
    let p = PathBuf::from(path);
    if p.file_name()
        .is_some_and(|f| f.to_string_lossy().contains('*'))
    {
        p.parent().map(PathBuf::from).unwrap_or_default()
    } else {
        p
    }
}

/// Runs `skiff modules ...`.
pub fn command(g: &Global, cmd: ModulesCommand) -> anyhow::Result<i32> {
    let root = crate::settings::load(g).map_err(|e| anyhow::anyhow!("{e}"))?;
    let dir = modules_dir(&root);
    match cmd {
        ModulesCommand::List => {
            let files = skiff_modules::config::list_dir(&dir)?;
            for (title, on) in [("Enabled:", true), ("Disabled:", false)] {
                println!("{title}");
                for f in files.iter().filter(|f| f.enabled == on) {
                    println!("{}", f.name);
                }
                println!();
            }
        }
        ModulesCommand::Enable { names } => set(&dir, &names, true)?,
        ModulesCommand::Disable { names } => set(&dir, &names, false)?,
    }
    Ok(0)
}

fn set(dir: &std::path::Path, names: &[String], on: bool) -> anyhow::Result<()> {
    let word = if on { "Enabled" } else { "Disabled" };
    for n in names {
        if skiff_modules::config::set_enabled(dir, n, on)? {
            println!("{word} {n}");
        } else {
            println!("Module {n} is already {}", word.to_lowercase());
        }
    }
    Ok(())
}

/// `--modules a,b`: appends `{module: a}`, `{module: b}` to `filebeat.modules`.
pub fn add_flag(root: &mut Node, list: &str) {
    let text = serde_json::to_string(&skiff_modules::config::from_flag(list)).unwrap_or_default();
    let Ok(new) = skiff_config::parse_list_str(&text, Some("--modules")) else {
        return;
    };
    let mut items = match root.get("filebeat.modules").map(|n| &n.value) {
        Some(NodeValue::Seq(old)) => old.clone(),
        Some(NodeValue::Map(_)) => root.get("filebeat.modules").cloned().into_iter().collect(),
        _ => Vec::new(),
    };
    items.extend(new.items().iter().cloned());
    let mark = new.mark.clone();
    root.insert(
        "filebeat.modules",
        Node::new(NodeValue::Seq(items), mark.clone()),
        &mark,
    );
}

/// The inputs the modules ask for: `filebeat.modules` entries (with `--modules`) and the
/// enabled files of `filebeat.config.modules` (unless `enabled: false`), as input nodes.
pub fn inputs(listed: Option<&Value>, files: Option<&Value>) -> Result<Vec<Node>, String> {
    let mut entries: Vec<Value> = match listed {
        Some(Value::Array(a)) => a.clone(),
        Some(Value::Null) | None => Vec::new(),
        Some(other) => vec![other.clone()],
    };
    if let Some(cfg) = files
        && cfg.get("enabled").and_then(Value::as_bool) != Some(false)
    {
        let path = cfg
            .get("path")
            .and_then(Value::as_str)
            .ok_or("filebeat.config.modules needs `path`, like `${path.config}/modules.d/*.yml`")?;
        entries
            .extend(skiff_modules::config::load_dir(&glob_dir(path)).map_err(|e| e.to_string())?);
    }
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let made = skiff_modules::config::expand(&entries, skiff_modules::config::this_os())
        .map_err(|e| e.to_string())?;
    let text = serde_json::to_string(&made).map_err(|e| e.to_string())?;
    let list =
        skiff_config::parse_list_str(&text, Some("filebeat.modules")).map_err(|e| e.to_string())?;
    Ok(list.items().to_vec())
}

/// `filebeat.config.modules` with `reload.enabled`: the enabled files of the `modules.d/`
/// folder, as the text they were read from (to tell a change) and the inputs they ask for.
/// Errors refuse the reload (the running inputs stay), as for `filebeat.config.inputs`.
pub fn read_files(
    cfg: &crate::settings::InputFiles,
) -> (String, Result<Vec<Node>, Vec<skiff_config::ConfigError>>) {
    let dir = glob_dir(&cfg.path);
    let mark = skiff_config::Mark {
        file: Some(std::sync::Arc::from(dir.display().to_string())),
        line: 0,
        column: 0,
    };
    let err = |e: String| {
        vec![skiff_config::ConfigError::new(
            "filebeat.config.modules",
            mark.clone(),
            e,
        )]
    };
    let mut seen = String::new();
    match skiff_modules::config::list_dir(&dir) {
        Ok(files) => {
            for f in files.iter().filter(|f| f.enabled) {
                let path = dir.join(format!("{}.yml", f.name));
                seen.push_str(&f.name);
                seen.push('\0');
                seen.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
                seen.push('\0');
            }
        }
        Err(e) => return (String::new(), Err(err(e.to_string()))),
    }
    let files = serde_json::json!({"path": cfg.path});
    (seen, inputs(None, Some(&files)).map_err(err))
}
