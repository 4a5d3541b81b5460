//! The `metricbeat.*` section of the configuration, turned into `type: metrics` inputs:
//!
//! * `metricbeat.modules`: each block becomes one input;
//! * `metricbeat.max_start_delay` (default 10s): copied into every block without its own;
//! * `metricbeat.config.modules.path`: a glob of module files (`modules.d/*.yml`), each a list
//!   of blocks; a file named `*.disabled` is skipped as in Metricbeat. Without
//!   `reload.enabled` the files are read when the configuration is loaded, and their blocks are
//!   inputs like the others. With it, the section hands the binary a [`ModuleFiles`] instead:
//!   the binary reads the folder at start and every `reload.period` through
//!   [`read_module_inputs`], and starts, stops and restarts the blocks as the files change, with
//!   the same mechanism as `filebeat.config.inputs`. Each such block gets an `id` made from its
//!   settings, so a block that did not change keeps running whatever else moves in the folder.

use std::time::Duration;

use skiff_config::{ConfigError, ConfigErrors, Mark, Node, NodeValue};

/// What the section gives the binary.
#[derive(Debug, Default)]
pub struct Section {
    /// One input item per enabled or disabled block (the topology skips disabled ones).
    pub inputs: Vec<Node>,
    /// Warnings to log (accepted but not done).
    pub warnings: Vec<String>,
    /// `metricbeat.config.modules` with `reload.enabled`: the module files the binary reads
    /// and reloads while running (their blocks are not in `inputs`).
    pub module_files: Option<ModuleFiles>,
}

/// `metricbeat.config.modules` with `reload.enabled: true`.
#[derive(Clone, Debug, PartialEq)]
pub struct ModuleFiles {
    /// `path`: the glob of module files.
    pub path: String,
    /// `reload.period` (default 10s): how often the files are read again.
    pub period: Duration,
    /// `metricbeat.max_start_delay`, copied into every block without its own.
    pub max_start_delay: Option<Node>,
}

/// The default `reload.period`, as in Metricbeat.
pub const DEFAULT_RELOAD_PERIOD: Duration = Duration::from_secs(10);

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
            let reload_period = match reload_settings(reload.as_ref()) {
                Ok(p) => p,
                Err(e) => {
                    errors.push(e);
                    None
                }
            };
            match path.as_ref().map(|p| &p.value) {
                Some(NodeValue::String(glob)) if reload_period.is_some() => {
                    out.module_files = Some(ModuleFiles {
                        path: glob.clone(),
                        period: reload_period.unwrap_or(DEFAULT_RELOAD_PERIOD),
                        max_start_delay: delay.clone(),
                    });
                }
                Some(NodeValue::String(glob)) => {
                    read_module_files(
                        glob,
                        path.as_ref().unwrap_or(&cfg),
                        &mut blocks,
                        &mut errors,
                    );
                }
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
    for b in blocks {
        if let Some(i) = block_input(b, delay.as_ref(), &mut errors) {
            out.inputs.push(i);
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// A module block as a `type: metrics` input.
fn block_input(mut b: Node, delay: Option<&Node>, errors: &mut Vec<ConfigError>) -> Option<Node> {
    let mark = b.mark.clone();
    if b.get("type").is_some() {
        errors.push(err(
            &b,
            "a module block has no `type`: write `module: <name>` only",
        ));
        return None;
    }
    b.insert("type", string_node(crate::INPUT_TYPE, &mark), &mark);
    if let Some(d) = delay
        && b.get("max_start_delay").is_none()
    {
        b.insert("max_start_delay", d.clone(), &mark);
    }
    Some(b)
}

/// `reload.enabled` and `reload.period`: the period when reloading is on.
fn reload_settings(reload: Option<&Node>) -> Result<Option<Duration>, ConfigError> {
    let Some(r) = reload else { return Ok(None) };
    for (k, n) in r.entries() {
        if k != "enabled" && k != "period" {
            return Err(err(n, format!("unknown key `reload.{k}`"))
                .with_suggestion(skiff_config::suggest(k, &["enabled", "period"])));
        }
    }
    let enabled = match r.get("enabled") {
        None => false,
        Some(n) => n.deserialize::<bool>()?,
    };
    if !enabled {
        return Ok(None);
    }
    let period = match r.get("period") {
        None => DEFAULT_RELOAD_PERIOD,
        Some(n) => {
            let d = n.deserialize::<skiff_config::Duration>()?.0;
            if d.is_zero() {
                return Err(err(n, "`reload.period` must be positive"));
            }
            d
        }
    };
    Ok(Some(period))
}

/// The blocks of the module files as they are now, as `type: metrics` inputs, each with an
/// `id` made from its settings (unless it has one): `(seen, inputs)`, where `seen` holds the
/// files' names and texts, to tell whether anything changed since the last read. Every problem
/// of every file is returned.
pub fn read_module_inputs(files: &ModuleFiles) -> (String, Result<Vec<Node>, Vec<ConfigError>>) {
    let mut errors = Vec::new();
    let mut blocks = Vec::new();
    let at = Node::new(NodeValue::String(files.path.clone()), Mark::none());
    let seen = read_module_files(&files.path, &at, &mut blocks, &mut errors);
    let mut inputs: Vec<Node> = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    for b in blocks {
        let Some(mut i) = block_input(b, files.max_start_delay.as_ref(), &mut errors) else {
            continue;
        };
        if i.get("id").is_none() {
            let id = unique_id(&format!("metrics-{}", settings_hash(&i)), &ids);
            let mark = i.mark.clone();
            i.insert("id", string_node(&id, &mark), &mark);
        }
        if let Some(NodeValue::String(id)) = i.get("id").map(|n| &n.value) {
            ids.push(id.clone());
        }
        inputs.push(i);
    }
    if errors.is_empty() {
        (seen, Ok(inputs))
    } else {
        (seen, Err(errors))
    }
}

/// `base`, or `base-2`, `base-3`... when taken (two identical blocks).
fn unique_id(base: &str, taken: &[String]) -> String {
    let mut id = base.to_owned();
    let mut n = 1;
    while taken.contains(&id) {
        n += 1;
        id = format!("{base}-{n}");
    }
    id
}

/// A short, stable hash of a block's settings (FNV-1a of its JSON: the same text in any run).
fn settings_hash(n: &Node) -> String {
    let text = n.to_json().to_string();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:012x}", h >> 16)
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

/// Reads the module files of `pattern` into `blocks`; returns their names and texts (what a
/// reload compares).
fn read_module_files(
    pattern: &str,
    at: &Node,
    blocks: &mut Vec<Node>,
    errors: &mut Vec<ConfigError>,
) -> String {
    let mut seen = String::new();
    let paths = match glob::glob(pattern) {
        Ok(p) => p,
        Err(e) => {
            errors.push(err(at, format!("`{pattern}` is not a valid glob: {e}")));
            return seen;
        }
    };
    let mut files: Vec<_> = paths.filter_map(Result::ok).collect();
    files.sort();
    for f in files {
        if f.extension().is_some_and(|e| e == "disabled") {
            continue;
        }
        let text = match read_limited(&f) {
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
        seen.push_str(&name);
        seen.push('\0');
        seen.push_str(&text);
        seen.push('\0');
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
    seen
}

/// The most bytes of one module file read (a module file is a few lines of YAML).
const MAX_MODULE_FILE: u64 = 4 << 20;

fn read_limited(file: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let f = std::fs::File::open(file).map_err(|e| e.to_string())?;
    let mut text = String::new();
    f.take(MAX_MODULE_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > MAX_MODULE_FILE {
        return Err(format!("larger than {MAX_MODULE_FILE} bytes"));
    }
    Ok(text)
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
    fn reloaded_module_files_are_handed_over_with_ids_from_their_settings() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let s = section(&format!(
            "metricbeat.max_start_delay: 0s\nmetricbeat.config.modules:\n  path: {d}/*.yml\n  reload.enabled: true\n  reload.period: 2s\n"
        ))
        .unwrap();
        assert!(s.inputs.is_empty());
        let files = s.module_files.unwrap();
        assert_eq!(files.period, Duration::from_secs(2));
        let (seen0, none) = read_module_inputs(&files);
        assert!(none.unwrap().is_empty());
        let block = "- module: redis\n  hosts: ['127.0.0.1:1']\n";
        std::fs::write(dir.path().join("a.yml"), format!("{block}{block}")).unwrap();
        std::fs::write(dir.path().join("b.yml"), "- module: nginx\n  id: mine\n").unwrap();
        let (seen1, inputs) = read_module_inputs(&files);
        assert_ne!(seen0, seen1);
        let inputs = inputs.unwrap();
        let ids: Vec<String> = inputs
            .iter()
            .map(|i| match &i.get("id").unwrap().value {
                NodeValue::String(s) => s.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(ids[0].starts_with("metrics-"), "{ids:?}");
        assert_eq!(ids[1], format!("{}-2", ids[0]));
        assert_eq!(ids[2], "mine");
        assert!(inputs[0].get("max_start_delay").is_some());
        // The same block in another file, after others: the same id.
        std::fs::write(dir.path().join("0.yml"), "- module: nginx\n").unwrap();
        let (_, again) = read_module_inputs(&files);
        let again = again.unwrap();
        assert_eq!(
            again[1].get("id").unwrap().value,
            NodeValue::String(ids[0].clone())
        );
        // A broken file is an error with its name; nothing is returned.
        std::fs::write(dir.path().join("c.yml"), "- module: [\n").unwrap();
        let (_, bad) = read_module_inputs(&files);
        let bad = bad.unwrap_err();
        assert!(
            bad.iter().any(|e| e.to_string().contains("c.yml")),
            "{bad:?}"
        );
        let e = section(&format!(
            "metricbeat.config.modules:\n  path: {d}/*.yml\n  reload.enabled: true\n  reload.perod: 2s\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("period"), "{e}");
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
