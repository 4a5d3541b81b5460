//! Dotted-key normalisation and deep merging.
//!
//! Beats (go-ucfg) treats `output.file.path: x` and
//! `output: {file: {path: x}}` as the same thing, and merges the two forms
//! deeply when both appear. We do the same once, right after parsing, so
//! nothing downstream ever sees a dotted key. Setting the same full path
//! twice in one document is an error naming both places; across files and
//! `-E` flags, later values win ([`merge`]).

use crate::error::{ConfigError, ConfigErrors};
use crate::node::{Mark, Node, NodeValue, join_path};
use crate::parse::MAX_DEPTH;

/// Split dotted keys into nested maps everywhere in `node` (also inside
/// sequence items), collecting every duplicate or conflicting key.
pub(crate) fn normalize(node: Node, errors: &mut Vec<ConfigError>) -> Node {
    normalize_at(node, "", 0, errors)
}

fn normalize_at(node: Node, path: &str, depth: usize, errors: &mut Vec<ConfigError>) -> Node {
    let Node { value, mark, .. } = node;
    let value = match value {
        NodeValue::Seq(items) => NodeValue::Seq(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    normalize_at(item, &join_path(path, &i.to_string()), depth + 1, errors)
                })
                .collect(),
        ),
        NodeValue::Map(entries) => {
            let mut out = Node::new(NodeValue::Map(Vec::new()), mark.clone());
            for (key, value) in entries {
                let segs: Vec<&str> = key.split('.').collect();
                if segs.iter().any(|s| s.is_empty()) {
                    errors.push(ConfigError::new(
                        join_path(path, &key),
                        value.mark.clone(),
                        format!("key `{key}` has an empty part between dots"),
                    ));
                    continue;
                }
                if depth + segs.len() > MAX_DEPTH {
                    errors.push(ConfigError::new(
                        join_path(path, &key),
                        value.mark.clone(),
                        format!("values are nested more than {MAX_DEPTH} levels deep"),
                    ));
                    continue;
                }
                let full = join_path(path, &key);
                let value = normalize_at(value, &full, depth + segs.len(), errors);
                insert_dotted(&mut out, path, &segs, value, errors);
            }
            out.value
        }
        other => other,
    };
    Node::new(value, mark)
}

/// Insert `value` at `segs` below `map`, merging maps and reporting
/// scalars set twice.
fn insert_dotted(
    map: &mut Node,
    base: &str,
    segs: &[&str],
    value: Node,
    errors: &mut Vec<ConfigError>,
) {
    let Some((first, rest)) = segs.split_first() else {
        return;
    };
    let path = join_path(base, first);
    let NodeValue::Map(entries) = &mut map.value else {
        return;
    };
    let existing = entries.iter_mut().find(|(k, _)| k == first).map(|(_, v)| v);
    match (existing, rest.is_empty()) {
        (None, true) => entries.push((first.to_string(), value)),
        (None, false) => {
            let mut child = Node::new(NodeValue::Map(Vec::new()), value.mark.clone());
            insert_dotted(&mut child, &path, rest, value, errors);
            entries.push((first.to_string(), child));
        }
        (Some(existing), true) => merge_strict(existing, value, &path, errors),
        (Some(existing), false) => {
            if matches!(existing.value, NodeValue::Map(_)) {
                insert_dotted(existing, &path, rest, value, errors);
            } else {
                errors.push(duplicate(&path, &existing.mark, &value.mark));
            }
        }
    }
}

/// Merge two maps from the same document; anything else set twice is an
/// error.
fn merge_strict(existing: &mut Node, value: Node, path: &str, errors: &mut Vec<ConfigError>) {
    match value.value {
        NodeValue::Map(entries) if matches!(existing.value, NodeValue::Map(_)) => {
            for (k, v) in entries {
                insert_dotted(existing, path, &[k.as_str()], v, errors);
            }
        }
        _ => errors.push(duplicate(path, &existing.mark, &value.mark)),
    }
}

fn duplicate(path: &str, first: &Mark, second: &Mark) -> ConfigError {
    let where_ = |m: &Mark| {
        if m.line > 0 {
            format!("line {}", m.line)
        } else {
            m.to_string()
        }
    };
    ConfigError::new(
        path,
        second.clone(),
        format!(
            "key `{path}` is set twice (at {} and at {})",
            where_(first),
            where_(second)
        ),
    )
}

/// Deep-merge `overlay` into `base`: maps merge key by key, anything else
/// (scalars, sequences) is replaced by the overlay. Used for several `-c`
/// files and for `-E` flags.
pub fn merge(base: &mut Node, overlay: Node) {
    match (&mut base.value, overlay.value) {
        (NodeValue::Map(base_entries), NodeValue::Map(entries)) => {
            for (k, v) in entries {
                match base_entries.iter_mut().find(|(bk, _)| *bk == k) {
                    Some((_, existing)) => merge(existing, v),
                    None => base_entries.push((k, v)),
                }
            }
        }
        (_, value) => {
            base.value = value;
            base.mark = overlay.mark;
        }
    }
}

/// Normalise a raw parsed document; the top must be a map (or empty).
pub(crate) fn normalize_document(raw: Node) -> Result<Node, ConfigErrors> {
    let mut raw = raw;
    match raw.value {
        NodeValue::Map(_) => {}
        NodeValue::Null => raw.value = NodeValue::Map(Vec::new()),
        ref other => {
            return Err(ConfigError::new(
                "",
                raw.mark.clone(),
                format!(
                    "the configuration must be a map of keys to values, found {}",
                    other.describe()
                ),
            )
            .into());
        }
    }
    let mut errors = Vec::new();
    let mut node = normalize(raw, &mut errors);
    ConfigErrors(errors).into_result()?;
    node.fix_paths("");
    Ok(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_raw;

    fn norm(yaml: &str) -> Result<Node, ConfigErrors> {
        normalize_document(parse_raw(yaml, Some("t.yml")).map_err(ConfigErrors::from)?)
    }

    #[test]
    fn dotted_equals_nested() {
        let a = norm("output.file.path: /x\n").unwrap();
        let b = norm("output:\n  file:\n    path: /x\n").unwrap();
        assert_eq!(a.to_json(), b.to_json());
        assert_eq!(a.get("output.file.path").unwrap().path, "output.file.path");
    }

    #[test]
    fn mixing_merges_deeply() {
        let n = norm("output.file.path: /x\noutput:\n  file:\n    filename: y\n").unwrap();
        assert_eq!(
            n.to_json(),
            serde_json::json!({"output": {"file": {"path": "/x", "filename": "y"}}})
        );
    }

    #[test]
    fn duplicate_names_both_lines() {
        let e = norm("a:\n  b: 1\nc: 2\na.b: 3\n").unwrap_err();
        assert_eq!(e.len(), 1);
        let e = &e.0[0];
        assert_eq!(e.path, "a.b");
        assert!(
            e.message.contains("line 2") && e.message.contains("line 4"),
            "{e}"
        );
        // Plain duplicate keys are caught too.
        assert!(norm("x: 1\nx: 2\n").is_err());
        // Scalar in the way of a dotted key.
        assert!(norm("a: 1\na.b: 2\n").is_err());
    }

    #[test]
    fn dotted_inside_sequences() {
        let n = norm("inputs:\n  - type: log\n    parsers.ndjson.target: x\n").unwrap();
        assert_eq!(
            n.get("inputs.0.parsers.ndjson.target").unwrap().path,
            "inputs.0.parsers.ndjson.target"
        );
    }

    #[test]
    fn top_must_be_map() {
        let e = norm("- a\n- b\n").unwrap_err();
        assert!(e.0[0].message.contains("must be a map"), "{e}");
        assert_eq!(norm("").unwrap().keys().count(), 0);
        assert_eq!(norm("# only a comment\n").unwrap().keys().count(), 0);
    }

    #[test]
    fn merge_later_wins_and_lists_replace() {
        let mut a = norm("a: {x: 1, l: [1, 2]}\n").unwrap();
        let b = norm("a: {y: 2, l: [3]}\n").unwrap();
        merge(&mut a, b);
        assert_eq!(
            a.to_json(),
            serde_json::json!({"a": {"x": 1, "l": [3], "y": 2}})
        );
    }
}
