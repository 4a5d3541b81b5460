//! The configuration tree: [`Node`], [`NodeValue`] and [`Mark`].

use std::fmt;
use std::sync::Arc;

/// Where a value came from.
///
/// `line` and `column` are 1-based. `line == 0` means the value did not come
/// from a position in a file: a `-E` override (then `file` is `"-E"`), a value
/// created by dotted-key expansion of a flag, or a built-in default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Mark {
    /// The file name, if the value came from a file (or `"-E"` for overrides).
    pub file: Option<Arc<str>>,
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// 1-based column, 0 when unknown.
    pub column: usize,
}

impl Mark {
    /// A mark that points nowhere (line 0, no file).
    pub fn none() -> Self {
        Self::default()
    }

    /// A mark for a `-E key=value` override.
    pub fn override_flag() -> Self {
        Mark {
            file: Some(Arc::from("-E")),
            line: 0,
            column: 0,
        }
    }
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.as_deref().unwrap_or("<config>");
        if self.line == 0 {
            write!(f, "{file}")
        } else {
            write!(f, "{file}:{}:{}", self.line, self.column)
        }
    }
}

/// The value part of a [`Node`].
#[derive(Clone, Debug, PartialEq)]
pub enum NodeValue {
    /// `~`, `null` or an empty value.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer that fits in `i64`.
    Int(i64),
    /// A floating point number.
    Float(f64),
    /// Any other scalar (and every quoted scalar).
    String(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in file order. Keys are unique and never contain `.` after
    /// normalisation.
    Map(Vec<(String, Node)>),
}

impl NodeValue {
    /// A short description for error messages ("a map", "the string \"x\"").
    pub fn describe(&self) -> String {
        match self {
            NodeValue::Null => "an empty value".to_string(),
            NodeValue::Bool(b) => format!("the boolean `{b}`"),
            NodeValue::Int(i) => format!("the number {i}"),
            NodeValue::Float(x) => format!("the number {x}"),
            NodeValue::String(s) => format!("the string {s:?}"),
            NodeValue::Seq(_) => "a list".to_string(),
            NodeValue::Map(_) => "a map".to_string(),
        }
    }
}

/// A YAML value with where it came from and where it sits in the tree.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The value.
    pub value: NodeValue,
    /// Where the value was written.
    pub mark: Mark,
    /// The full dotted key path from the root (`""` for the root,
    /// `filebeat.inputs.0.paths` for a nested value). Kept up to date by
    /// [`crate::parse_str`], [`crate::load`] and the mutating helpers here;
    /// call [`Node::fix_paths`] after building or moving nodes by hand.
    pub path: String,
}

impl Default for Node {
    fn default() -> Self {
        Node::new(NodeValue::Null, Mark::none())
    }
}

impl Node {
    /// A node with an empty path (fix it with [`Node::fix_paths`] once placed).
    pub fn new(value: NodeValue, mark: Mark) -> Self {
        Node {
            value,
            mark,
            path: String::new(),
        }
    }

    /// An empty map.
    pub fn empty_map() -> Self {
        Node::new(NodeValue::Map(Vec::new()), Mark::none())
    }

    /// The full dotted key path of this node from the root.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Look up a value by dotted path (`"output.file.path"`). Numeric
    /// segments index into sequences (`"filebeat.inputs.0.paths"`). The empty
    /// path returns `self`.
    pub fn get(&self, dotted_path: &str) -> Option<&Node> {
        let mut cur = self;
        for seg in split_path(dotted_path) {
            cur = cur.child(seg)?;
        }
        Some(cur)
    }

    /// Mutable variant of [`Node::get`].
    pub fn get_mut(&mut self, dotted_path: &str) -> Option<&mut Node> {
        let mut cur = self;
        for seg in split_path(dotted_path) {
            cur = cur.child_mut(seg)?;
        }
        Some(cur)
    }

    /// Remove and return the value at `key`: a top-level key of this map, or
    /// a dotted path to a nested key.
    pub fn remove(&mut self, key: &str) -> Option<Node> {
        let (parent, last) = match key.rsplit_once('.') {
            Some((parent, last)) => (self.get_mut(parent)?, last),
            None => (self, key),
        };
        match &mut parent.value {
            NodeValue::Map(entries) => {
                let idx = entries.iter().position(|(k, _)| k == last)?;
                Some(entries.remove(idx).1)
            }
            NodeValue::Seq(items) => {
                let idx: usize = last.parse().ok()?;
                (idx < items.len()).then(|| items.remove(idx))
            }
            _ => None,
        }
    }

    /// The keys of a map, in file order (nothing for other values).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        let entries: &[(String, Node)] = match &self.value {
            NodeValue::Map(entries) => entries,
            _ => &[],
        };
        entries.iter().map(|(k, _)| k.as_str())
    }

    /// The entries of a map (empty for other values).
    pub fn entries(&self) -> &[(String, Node)] {
        match &self.value {
            NodeValue::Map(entries) => entries,
            _ => &[],
        }
    }

    /// The items of a sequence (empty for other values).
    pub fn items(&self) -> &[Node] {
        match &self.value {
            NodeValue::Seq(items) => items,
            _ => &[],
        }
    }

    /// Beats' notion of an enabled section: a map (or an empty value) that
    /// does not say `enabled: false`. A bare `false` is disabled too.
    pub fn is_enabled(&self) -> bool {
        match &self.value {
            NodeValue::Map(_) => match self.get("enabled").map(|n| &n.value) {
                Some(NodeValue::Bool(b)) => *b,
                Some(NodeValue::String(s)) => !s.eq_ignore_ascii_case("false"),
                _ => true,
            },
            NodeValue::Bool(b) => *b,
            _ => true,
        }
    }

    /// Set `dotted_path` to `value`, creating intermediate maps (marked with
    /// `mark`) as needed. Existing maps along the way are kept; a scalar in
    /// the way is replaced by a map. Numeric segments index existing
    /// sequences. Paths of the inserted subtree are fixed.
    pub fn insert(&mut self, dotted_path: &str, value: Node, mark: &Mark) {
        let segs: Vec<&str> = split_path(dotted_path).collect();
        let Some((last, parents)) = segs.split_last() else {
            let path = std::mem::take(&mut self.path);
            *self = value;
            self.fix_paths(&path);
            return;
        };
        let mut cur = self;
        for seg in parents {
            cur = cur.child_or_create(seg, mark);
        }
        let base = cur.path.clone();
        let slot = cur.child_or_create(last, mark);
        *slot = value;
        slot.fix_paths(&join_path(&base, last));
    }

    /// Recompute `path` for this node and everything below it, taking `path`
    /// as this node's own path.
    pub fn fix_paths(&mut self, path: &str) {
        self.path = path.to_string();
        match &mut self.value {
            NodeValue::Map(entries) => {
                for (k, v) in entries {
                    v.fix_paths(&join_path(path, k));
                }
            }
            NodeValue::Seq(items) => {
                for (i, v) in items.iter_mut().enumerate() {
                    v.fix_paths(&join_path(path, &i.to_string()));
                }
            }
            _ => {}
        }
    }

    /// Convert to JSON (for `skiff export config`). Non-finite floats become
    /// `null`.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.value {
            NodeValue::Null => Value::Null,
            NodeValue::Bool(b) => Value::Bool(*b),
            NodeValue::Int(i) => Value::from(*i),
            NodeValue::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            NodeValue::String(s) => Value::String(s.clone()),
            NodeValue::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeValue::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    fn child(&self, seg: &str) -> Option<&Node> {
        match &self.value {
            NodeValue::Map(entries) => entries.iter().find(|(k, _)| k == seg).map(|(_, v)| v),
            NodeValue::Seq(items) => items.get(seg.parse::<usize>().ok()?),
            _ => None,
        }
    }

    fn child_mut(&mut self, seg: &str) -> Option<&mut Node> {
        match &mut self.value {
            NodeValue::Map(entries) => entries.iter_mut().find(|(k, _)| k == seg).map(|(_, v)| v),
            NodeValue::Seq(items) => items.get_mut(seg.parse::<usize>().ok()?),
            _ => None,
        }
    }

    fn child_or_create(&mut self, seg: &str, mark: &Mark) -> &mut Node {
        let child_path = join_path(&self.path, seg);
        let in_seq = match (&self.value, seg.parse::<usize>()) {
            (NodeValue::Seq(items), Ok(idx)) => idx < items.len(),
            _ => false,
        };
        if !in_seq && !matches!(self.value, NodeValue::Map(_)) {
            self.value = NodeValue::Map(Vec::new());
        }
        match &mut self.value {
            NodeValue::Seq(items) => {
                // `in_seq` checked that `seg` is an index in range.
                let idx = seg.parse::<usize>().unwrap_or(0);
                &mut items[idx]
            }
            NodeValue::Map(entries) => {
                let idx = match entries.iter().position(|(k, _)| k == seg) {
                    Some(idx) => idx,
                    None => {
                        let mut node = Node::new(NodeValue::Map(Vec::new()), mark.clone());
                        node.path = child_path;
                        entries.push((seg.to_string(), node));
                        entries.len() - 1
                    }
                };
                &mut entries[idx].1
            }
            _ => unreachable!("child_or_create: the value was just made a map"),
        }
    }
}

impl serde::Serialize for Node {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match &self.value {
            NodeValue::Null => s.serialize_unit(),
            NodeValue::Bool(b) => s.serialize_bool(*b),
            NodeValue::Int(i) => s.serialize_i64(*i),
            NodeValue::Float(f) => s.serialize_f64(*f),
            NodeValue::String(v) => s.serialize_str(v),
            NodeValue::Seq(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            NodeValue::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// Split a dotted path into its segments; the empty path has none.
pub(crate) fn split_path(path: &str) -> impl Iterator<Item = &str> {
    path.split('.').filter(|s| !s.is_empty())
}

/// `base` + `.` + `seg`, without a leading dot for the root.
pub(crate) fn join_path(base: &str, seg: &str) -> String {
    if base.is_empty() {
        seg.to_string()
    } else {
        format!("{base}.{seg}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Node {
        Node::new(NodeValue::String(v.into()), Mark::none())
    }

    #[test]
    fn get_insert_remove() {
        let mut root = Node::empty_map();
        root.insert("output.file.path", s("/tmp"), &Mark::none());
        assert_eq!(root.get("output.file.path").unwrap().value, s("/tmp").value);
        assert_eq!(
            root.get("output.file.path").unwrap().path,
            "output.file.path"
        );
        assert_eq!(root.keys().collect::<Vec<_>>(), vec!["output"]);
        assert!(root.get("output.nope").is_none());
        let removed = root.remove("output.file.path").unwrap();
        assert_eq!(removed.value, NodeValue::String("/tmp".into()));
        assert!(root.get("output.file.path").is_none());
        assert!(root.remove("output").is_some());
        assert_eq!(root.keys().count(), 0);
    }

    #[test]
    fn seq_index_paths() {
        let mut root = Node::empty_map();
        let list = Node::new(NodeValue::Seq(vec![s("a"), s("b")]), Mark::none());
        root.insert("tags", list, &Mark::none());
        assert_eq!(root.get("tags.1").unwrap().path, "tags.1");
        root.insert("tags.0", s("z"), &Mark::none());
        assert_eq!(
            root.get("tags.0").unwrap().value,
            NodeValue::String("z".into())
        );
    }

    #[test]
    fn enabled() {
        let mut root = Node::empty_map();
        assert!(root.is_enabled());
        root.insert(
            "enabled",
            Node::new(NodeValue::Bool(false), Mark::none()),
            &Mark::none(),
        );
        assert!(!root.is_enabled());
        assert!(Node::default().is_enabled());
    }

    #[test]
    fn json_export() {
        let mut root = Node::empty_map();
        root.insert(
            "a.b",
            Node::new(NodeValue::Int(3), Mark::none()),
            &Mark::none(),
        );
        root.insert(
            "f",
            Node::new(NodeValue::Float(f64::NAN), Mark::none()),
            &Mark::none(),
        );
        assert_eq!(
            root.to_json(),
            serde_json::json!({"a": {"b": 3}, "f": null})
        );
    }
}
