//! Putting a configuration together: files (or the embedded default), then
//! `-E` overrides, then `${...}` expansion.

use std::path::PathBuf;

use crate::env::expand_env;
use crate::error::{ConfigError, ConfigErrors};
use crate::node::{Mark, Node, NodeValue};
use crate::normalize::{merge, normalize_document};
use crate::parse::parse_raw;

/// What to load.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Files given with `-c`, merged in order (later wins). May be empty.
    pub files: Vec<PathBuf>,
    /// `-E key=value` overrides, applied after the files, in order.
    pub overrides: Vec<String>,
    /// The embedded default configuration, used when `files` is empty.
    pub default_yaml: &'static str,
    /// Accepted for compatibility with Beats' `--strict.perms`; not checked
    /// here.
    pub strict_perms: bool,
    /// Values set below the files (`path.data: ${path.home}/data`): a file or
    /// `-E` setting the key wins.
    pub defaults: Vec<(String, Node)>,
    /// Values set above everything (`--path.data`): they win over the files
    /// and `-E`.
    pub forced: Vec<(String, Node)>,
}

/// Parse a YAML document and normalise dotted keys (no `${...}`
/// expansion). The top level must be a map; an empty document is an empty
/// map.
pub fn parse_str(yaml: &str, file: Option<&str>) -> Result<Node, ConfigErrors> {
    let raw = parse_raw(yaml, file)?;
    normalize_document(raw)
}

/// Parse a YAML document whose top level is a list (Filebeat's input files in
/// `filebeat.config.inputs.path`: `- type: filestream ...`), normalising the
/// dotted keys of its items. A map is read as a list of one; an empty document
/// is an empty list. Paths start at the item index (`0.paths`).
pub fn parse_list_str(yaml: &str, file: Option<&str>) -> Result<Node, ConfigErrors> {
    let raw = parse_raw(yaml, file)?;
    let raw = match raw.value {
        NodeValue::Seq(_) => raw,
        NodeValue::Null => Node::new(NodeValue::Seq(Vec::new()), raw.mark),
        _ => {
            let mark = raw.mark.clone();
            Node::new(NodeValue::Seq(vec![raw]), mark)
        }
    };
    let mut errors = Vec::new();
    let mut node = crate::normalize::normalize(raw, &mut errors);
    ConfigErrors(errors).into_result()?;
    node.fix_paths("");
    Ok(node)
}

/// Load the configuration: parse every `-c` file (or `default_yaml` when
/// there is none), merge them, apply `-E` overrides, then expand `${...}`
/// with `env`. All problems found are returned together.
pub fn load(
    opts: &LoadOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Node, ConfigErrors> {
    let mut errors = Vec::new();
    let mut root = Node::empty_map();
    for (key, value) in &opts.defaults {
        root.insert(key, value.clone(), &value.mark);
    }
    if opts.files.is_empty() {
        match parse_str(opts.default_yaml, Some("<default config>")) {
            Ok(n) => merge(&mut root, n),
            Err(e) => errors.extend(e),
        }
    }
    for path in &opts.files {
        match read_file(path).and_then(|text| parse_str(&text, Some(&path.display().to_string()))) {
            Ok(n) => merge(&mut root, n),
            Err(e) => errors.extend(e),
        }
    }
    for flag in &opts.overrides {
        match parse_override(flag) {
            Ok((key, value)) => {
                let mut overlay = Node::empty_map();
                overlay.insert(&key, value, &Mark::override_flag());
                apply_override(&mut root, &key, overlay);
            }
            Err(e) => errors.push(e),
        }
    }
    for (key, value) in &opts.forced {
        root.insert(key, value.clone(), &value.mark);
    }
    ConfigErrors(errors).into_result()?;
    root.fix_paths("");
    expand_env(&mut root, env)?;
    Ok(root)
}

/// Apply one override. A numeric segment addressing an existing list item
/// (`filebeat.inputs.0.enabled`) sets inside that item; otherwise the
/// overlay is deep-merged.
fn apply_override(root: &mut Node, key: &str, overlay: Node) {
    let mut indexes_list = key.split('.').scan(&*root, |cur, seg| {
        let next = cur.get(seg)?;
        let hit = matches!(cur.value, NodeValue::Seq(_));
        *cur = next;
        Some(hit)
    });
    if indexes_list.any(|hit| hit)
        && let Some(value) = overlay.get(key).cloned()
    {
        root.insert(key, value, &Mark::override_flag());
        return;
    }
    merge(root, overlay);
}

fn read_file(path: &std::path::Path) -> Result<String, ConfigErrors> {
    let mark = Mark {
        file: Some(path.display().to_string().into()),
        line: 0,
        column: 0,
    };
    let bytes = std::fs::read(path)
        .map_err(|e| ConfigError::new("", mark.clone(), format!("cannot read the file: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let before = &e.as_bytes()[..at];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let column = at
            - before
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |p| p + 1)
            + 1;
        ConfigError::new(
            "",
            Mark {
                line,
                column,
                ..mark
            },
            "the file is not valid UTF-8",
        )
        .into()
    })
}

/// Parse one `-E key=value` flag. The value is read as a YAML flow value:
/// `true`, `5067`, `[a, b]`, `{x: 1}`, or else a plain string.
pub(crate) fn parse_override(flag: &str) -> Result<(String, Node), ConfigError> {
    let mark = Mark::override_flag();
    let Some((key, value)) = flag.split_once('=') else {
        return Err(ConfigError::new(
            "",
            mark,
            format!("expected `key=value`, found {flag:?}"),
        ));
    };
    let key = key.trim();
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(ConfigError::new(
            key,
            mark,
            format!("invalid key in `-E {flag}`"),
        ));
    }
    let value = value.trim();
    let node = if value.is_empty() {
        Node::new(NodeValue::String(String::new()), mark.clone())
    } else {
        match parse_raw(value, Some("-E")) {
            Ok(raw) if !matches!(raw.value, NodeValue::Map(_)) || value.starts_with('{') => {
                let mut errors = Vec::new();
                let mut n = crate::normalize::normalize(raw, &mut errors);
                if let Some(e) = errors.into_iter().next() {
                    return Err(ConfigError::new(key, mark, e.message));
                }
                set_mark(&mut n, &mark);
                n
            }
            Ok(_) => Node::new(NodeValue::String(value.to_string()), mark.clone()),
            Err(e) if value.starts_with(['[', '{']) => {
                return Err(ConfigError::new(
                    key,
                    mark,
                    format!("cannot read the value of `-E {flag}`: {}", e.message),
                ));
            }
            Err(_) => Node::new(NodeValue::String(value.to_string()), mark.clone()),
        }
    };
    Ok((key.to_string(), node))
}

fn set_mark(n: &mut Node, mark: &Mark) {
    n.mark = mark.clone();
    match &mut n.value {
        NodeValue::Seq(items) => items.iter_mut().for_each(|i| set_mark(i, mark)),
        NodeValue::Map(entries) => entries.iter_mut().for_each(|(_, v)| set_mark(v, mark)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_values() {
        let (k, v) = parse_override("http.port=5067").unwrap();
        assert_eq!((k.as_str(), &v.value), ("http.port", &NodeValue::Int(5067)));
        let (_, v) = parse_override("tags=[a,b]").unwrap();
        assert_eq!(v.to_json(), serde_json::json!(["a", "b"]));
        let (_, v) = parse_override("output.elasticsearch.hosts=http://h:9200").unwrap();
        assert_eq!(v.value, NodeValue::String("http://h:9200".into()));
        let (_, v) = parse_override("a=x: y").unwrap();
        assert_eq!(v.value, NodeValue::String("x: y".into()));
        let (_, v) = parse_override("a={x: 1}").unwrap();
        assert_eq!(v.to_json(), serde_json::json!({"x": 1}));
        assert_eq!(v.mark.file.as_deref(), Some("-E"));
        assert!(parse_override("novalue").is_err());
        assert!(parse_override("a..b=1").is_err());
        assert!(parse_override("a=[unclosed").is_err());
    }
}
