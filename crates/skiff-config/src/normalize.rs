//! Dotted-key normalisation and deep merging.
//!
//! Beats (go-ucfg) treats `output.file.path: x` and
//! `output: {file: {path: x}}` as the same thing, and merges the two forms
//! deeply when both appear. We do the same once, right after parsing, so
//! nothing downstream ever sees a dotted key. Setting the same full path
//! twice in one document is an error naming both places; across files and
//! `-E` flags, later values win ([`merge`]).

use std::collections::HashMap;

use crate::error::{ConfigError, ConfigErrors};
use crate::node::{Mark, Node, NodeValue, join_path};
use crate::parse::MAX_DEPTH;

/// Split dotted keys into nested maps everywhere in `node` (also inside
/// sequence items), collecting every duplicate or conflicting key.
///
/// Entries are grouped by their first key segment with a hash map, so a map
/// with many keys (or many `a.x`, `a.y`, ... keys) costs linear time, not
/// quadratic.
pub(crate) fn normalize(node: Node, errors: &mut Vec<ConfigError>) -> Node {
    normalize_at(node, "", 0, errors)
}

fn normalize_at(node: Node, path: &str, depth: usize, errors: &mut Vec<ConfigError>) -> Node {
    let Node { value, mark, .. } = node;
    if depth > MAX_DEPTH {
        errors.push(ConfigError::new(
            path,
            mark.clone(),
            format!("values are nested more than {MAX_DEPTH} levels deep"),
        ));
        return Node::new(NodeValue::Null, mark);
    }
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
        NodeValue::Map(entries) => NodeValue::Map(normalize_entries(entries, path, depth, errors)),
        other => other,
    };
    Node::new(value, mark)
}

/// One writer of a key: `rest` is the remaining dotted path (`None` when
/// the key was written whole).
type Writer = (Option<String>, Node);

fn normalize_entries(
    entries: Vec<(String, Node)>,
    path: &str,
    depth: usize,
    errors: &mut Vec<ConfigError>,
) -> Vec<(String, Node)> {
    if depth > MAX_DEPTH {
        let mark = entries
            .first()
            .map(|(_, v)| v.mark.clone())
            .unwrap_or_default();
        errors.push(ConfigError::new(
            path,
            mark,
            format!("values are nested more than {MAX_DEPTH} levels deep"),
        ));
        return Vec::new();
    }
    let mut order: Vec<String> = Vec::new();
    let mut groups: HashMap<String, Vec<Writer>> = HashMap::new();
    for (key, value) in entries {
        if key.split('.').any(str::is_empty) {
            errors.push(ConfigError::new(
                join_path(path, &key),
                value.mark.clone(),
                format!("key `{key}` has an empty part between dots"),
            ));
            continue;
        }
        let (first, rest) = match key.split_once('.') {
            Some((first, rest)) => (first.to_string(), Some(rest.to_string())),
            None => (key, None),
        };
        groups
            .entry(first.clone())
            .or_insert_with(|| {
                order.push(first);
                Vec::new()
            })
            .push((rest, value));
    }
    let mut out = Vec::with_capacity(order.len());
    for first in order {
        let Some(mut writers) = groups.remove(&first) else {
            continue;
        };
        let child_path = join_path(path, &first);
        if writers.len() == 1 && writers[0].0.is_none() {
            let (_, value) = writers.remove(0);
            out.push((first, normalize_at(value, &child_path, depth + 1, errors)));
            continue;
        }
        // Several writers, or a dotted key: the result is a map combining
        // all of them; a whole non-map value among them is a conflict.
        let conflict = writers
            .iter()
            .position(|(rest, v)| rest.is_none() && !matches!(v.value, NodeValue::Map(_)));
        if let Some(i) = conflict {
            let other = if i == 0 { 1 } else { 0 };
            let (a, b) = (&writers[other.min(i)].1.mark, &writers[other.max(i)].1.mark);
            errors.push(duplicate(&child_path, a, b));
            continue;
        }
        let mark = writers[0].1.mark.clone();
        let mut combined = Vec::new();
        for (rest, value) in writers {
            match (rest, value.value) {
                (Some(rest), v) => combined.push((rest, Node::new(v, value.mark))),
                (None, NodeValue::Map(entries)) => combined.extend(entries),
                (None, _) => {}
            }
        }
        let entries = normalize_entries(combined, &child_path, depth + 1, errors);
        out.push((first, Node::new(NodeValue::Map(entries), mark)));
    }
    out
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
            let mut index: HashMap<String, usize> = base_entries
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (k.clone(), i))
                .collect();
            for (k, v) in entries {
                match index.get(&k) {
                    Some(&i) => merge(&mut base_entries[i].1, v),
                    None => {
                        index.insert(k.clone(), base_entries.len());
                        base_entries.push((k, v));
                    }
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
