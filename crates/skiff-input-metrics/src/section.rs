//! The `metricbeat.*` section of the configuration, turned into `type: metrics` inputs:
//!
//! * `metricbeat.modules`: each block becomes one input;
//! * `metricbeat.max_start_delay` (default 10s): copied into every block without its own;
//! * `metricbeat.config.modules.path`: a glob of module files (`modules.d/*.yml`), each a list
//!   of blocks, read when the configuration is loaded; a file named `*.disabled` is skipped as
//!   in Metricbeat. `reload.enabled`/`reload.period` are accepted; reloading a changed folder
//!   without a restart is not done yet (a warning says so; restart skiff or send it `SIGHUP`
//!   where the binary supports it).

use skiff_config::{ConfigError, ConfigErrors, Mark, Node, NodeValue};

/// What the section gives the binary.
#[derive(Debug, Default)]
pub struct Section {
    /// One input item per enabled or disabled block (the topology skips disabled ones).
    pub inputs: Vec<Node>,
    /// Warnings to log (accepted but not done).
    pub warnings: Vec<String>,
}

fn err(at: &Node, msg: impl Into<String>) -> ConfigError {
    ConfigError::new(at.path.clone(), at.mark.clone(), msg)
}

fn string_node(s: &str, mark: &Mark) -> Node {
    Node::new(NodeValue::String(s.to_owned()), mark.clone())
}

/// Turns the `metricbeat` node into inputs. Collects every problem.
pub fn inputs_from_section(mut section: Node) -> Result<Section, ConfigErrors> {
    let mut out = Section::default();
    let mut errors = Vec::new();
    let delay = section.remove("max_start_delay");
    let mut blocks: Vec<Node> = Vec::new();
    if let Some(m) = section.remove("modules") {
        take_blocks(m, &mut blocks, &mut errors);
    }
    if let Some(mut cfg) = section.remove("config") {
        if let Some(mut modules) = cfg.remove("modules") {
            let path = modules.remove("path");
            let reload = modules.remove("reload");
            for (k, n) in modules.entries() {
                errors.push(
                    err(n, format!("unknown key `{k}`"))
                        .with_suggestion(skiff_config::suggest(k, &["path", "reload"])),
                );
            }
            if reload
                .as_ref()
                .is_some_and(|r| r.is_enabled() && r.get("enabled").is_some())
            {
                out.warnings.push("metricbeat.config.modules.reload.enabled: module files are read at start only; restart skiff to apply changes".into());
            }
            match path.as_ref().map(|p| &p.value) {
                Some(NodeValue::String(glob)) => read_module_files(
                    glob,
                    path.as_ref().unwrap_or(&cfg),
                    &mut blocks,
                    &mut errors,
                ),
                Some(_) => errors.push(err(
                    path.as_ref().unwrap_or(&cfg),
                    "`path` must be a glob of module files, like `${path.config}/modules.d/*.yml`",
                )),
                None => {}
            }
        }
        for (k, n) in cfg.entries() {
            errors.push(
                err(n, format!("unknown key `{k}`"))
                    .with_suggestion(skiff_config::suggest(k, &["modules"])),
            );
        }
    }
    for (k, n) in section.entries() {
        errors.push(
            err(n, format!("unknown key `metricbeat.{k}`")).with_suggestion(skiff_config::suggest(
                k,
                &["modules", "config", "max_start_delay"],
            )),
        );
    }
    for mut b in blocks {
        let mark = b.mark.clone();
        if b.get("type").is_some() {
            errors.push(err(
                &b,
                "a module block has no `type`: write `module: <name>` only",
            ));
            continue;
        }
        b.insert("type", string_node(crate::INPUT_TYPE, &mark), &mark);
        if let Some(d) = &delay
            && b.get("max_start_delay").is_none()
        {
            b.insert("max_start_delay", d.clone(), &mark);
        }
        out.inputs.push(b);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ConfigErrors(errors))
    }
}

fn take_blocks(node: Node, blocks: &mut Vec<Node>, errors: &mut Vec<ConfigError>) {
    match node.value {
        NodeValue::Seq(items) => {
            for item in items {
                if matches!(item.value, NodeValue::Map(_)) {
                    blocks.push(item);
                } else {
                    errors.push(err(
                        &item,
                        "a module block must be a map (`- module: system ...`)",
                    ));
                }
            }
        }
        NodeValue::Null => {}
        _ => errors.push(err(
            &node,
            "expected a list of module blocks (`- module: system ...`)",
        )),
    }
}

fn read_module_files(
    pattern: &str,
    at: &Node,
    blocks: &mut Vec<Node>,
    errors: &mut Vec<ConfigError>,
) {
    let paths = match glob::glob(pattern) {
        Ok(p) => p,
        Err(e) => {
            errors.push(err(at, format!("`{pattern}` is not a valid glob: {e}")));
            return;
        }
    };
    let mut files: Vec<_> = paths.filter_map(Result::ok).collect();
    files.sort();
    for f in files {
        if f.extension().is_some_and(|e| e == "disabled") {
            continue;
        }
        let text = match std::fs::read_to_string(&f) {
            Ok(t) => t,
            Err(e) => {
                errors.push(err(
                    at,
                    format!("cannot read module file {}: {e}", f.display()),
                ));
                continue;
            }
        };
        let name = f.display().to_string();
        // A module file is a list, and skiff-config parses maps: put the list under a key on a
        // line of its own before the text (YAML allows the list at the key's indentation),
        // then move every mark one line back so errors point at the file's own lines.
        let wrapped = format!("{WRAP}:\n{text}");
        let parsed = skiff_config::parse_str(&wrapped, Some(&name)).and_then(|mut n| {
            skiff_config::expand_env(&mut n, &|k| std::env::var(k).ok())?;
            Ok(n)
        });
        match parsed {
            Ok(mut n) => {
                let Some(mut list) = n.remove(WRAP) else {
                    continue;
                };
                unshift(&mut list);
                list.fix_paths("");
                if let NodeValue::Seq(items) = &mut list.value {
                    for item in items.iter_mut() {
                        item.fix_paths("");
                    }
                }
                take_blocks(list, blocks, errors)
            }
            Err(e) => errors.extend(e.0.into_iter().map(|mut e| {
                e.mark.line = e.mark.line.saturating_sub(1);
                e
            })),
        }
    }
}

/// The key a module file's list is parsed under.
const WRAP: &str = "__module_file";

/// Moves every mark of `n` one line up (undoing the line [`WRAP`] added).
fn unshift(n: &mut Node) {
    n.mark.line = n.mark.line.saturating_sub(1);
    match &mut n.value {
        NodeValue::Map(entries) => entries.iter_mut().for_each(|(_, v)| unshift(v)),
        NodeValue::Seq(items) => items.iter_mut().for_each(unshift),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(yaml: &str) -> Result<Section, ConfigErrors> {
        let mut root = skiff_config::parse_str(yaml, Some("mb.yml")).unwrap();
        inputs_from_section(root.remove("metricbeat").unwrap())
    }

    #[test]
    fn blocks_and_module_files_become_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        std::fs::write(dir.path().join("a.yml"), "- module: nginx\n  hosts: [x]\n").unwrap();
        std::fs::write(dir.path().join("b.yml.disabled"), "- module: nope\n").unwrap();
        std::fs::write(
            dir.path().join("c.yml"),
            "# comment\n\n- module: redis\n  pasword: x\n",
        )
        .unwrap();
        let s = section(&format!(
            "metricbeat.max_start_delay: 0s\nmetricbeat.config.modules.path: {d}/*.yml\nmetricbeat.modules:\n- module: system\n  metricsets: [cpu]\n"
        ))
        .unwrap();
        assert_eq!(s.inputs.len(), 3);
        for i in &s.inputs {
            assert_eq!(
                i.get("type").unwrap().value,
                NodeValue::String("metrics".into())
            );
            assert!(i.get("max_start_delay").is_some());
        }
        // Marks point at the module file's own lines.
        let redis = &s.inputs[2];
        let key = redis.get("pasword").unwrap();
        assert_eq!(key.mark.line, 4, "{key:?}");
        assert!(key.mark.file.as_deref().unwrap().ends_with("c.yml"));
        assert_eq!(key.path, "pasword");
    }

    #[test]
    fn unknown_keys_and_shapes_are_errors() {
        let e = section("metricbeat.modlues: []\n").unwrap_err().to_string();
        assert!(e.contains("modules"), "{e}");
        let e = section("metricbeat.modules: {module: system}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("list"), "{e}");
        let e = section("metricbeat.modules:\n- module: system\n  type: x\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no `type`"), "{e}");
    }
}
