//! `skiff test modules [module [metricset]]`: builds every configured metrics module block,
//! fetches each metricset of each host once and prints the events or the error, as
//! `metricbeat test modules`. Exit code 1 when a block does not build or a fetch failed.

use skiff_config::NodeValue;
use skiff_pipeline::InputCommon;

use crate::settings::Parts;

/// Runs the command on the loaded configuration.
pub async fn run(parts: &Parts, filter: (Option<&str>, Option<&str>)) -> anyhow::Result<i32> {
    let (want_module, want_set) = filter;
    let mut failed = false;
    let mut any = false;
    // Module files reloaded while running (`metricbeat.config.modules.reload.enabled`) are
    // not among the inputs: read them as a run would at start.
    let mut inputs = parts.inputs.clone();
    if let Some(files) = &parts.metric_files {
        match skiff_input_metrics::section::read_module_inputs(files).1 {
            Ok(items) => inputs.extend(items),
            Err(errors) => {
                failed = true;
                for e in errors {
                    eprintln!("{e}");
                }
            }
        }
    }
    for input in &inputs {
        let is_metrics = matches!(
            input.get("type").map(|n| &n.value),
            Some(NodeValue::String(t)) if t == skiff_input_metrics::INPUT_TYPE
        );
        if !is_metrics || !input.is_enabled() {
            continue;
        }
        let module = match input.get("module").map(|n| &n.value) {
            Some(NodeValue::String(m)) => m.clone(),
            _ => String::new(),
        };
        if want_module.is_some_and(|w| w != module) {
            continue;
        }
        any = true;
        let mut own = input.clone();
        for k in InputCommon::KEYS {
            own.remove(k);
        }
        println!("{module}...");
        let mut block = match skiff_input_metrics::Block::from_node(&own) {
            Ok(b) => b,
            Err(e) => {
                failed = true;
                for e in e.iter() {
                    println!("  ERROR {e}");
                }
                continue;
            }
        };
        if let Some(set) = want_set {
            block.fetchers.retain(|(ctx, _)| ctx.metricset == set);
        }
        for f in block.fetch_each_once().await {
            let host = f
                .host
                .as_deref()
                .map(|h| format!(" ({h})"))
                .unwrap_or_default();
            match skiff_input_metrics::error_of(&f.events) {
                Some(err) => {
                    failed = true;
                    println!("  {}{host}...ERROR {err}", f.metricset);
                }
                None => {
                    println!("  {}{host}...OK", f.metricset);
                    for e in &f.events {
                        let text = serde_json::to_string_pretty(e)?;
                        println!("    result:");
                        for line in text.lines() {
                            println!("    {line}");
                        }
                    }
                }
            }
        }
    }
    if !any {
        eprintln!("no metrics module is configured (metricbeat.modules)");
        return Ok(1);
    }
    Ok(if failed { 1 } else { 0 })
}
