//! YAML text to a raw [`Node`] tree, with hard limits against hostile input.
//!
//! We drive `yaml-rust2`'s event parser ourselves (instead of its `Yaml`
//! loader) to get a line/column for every value, to resolve aliases with a
//! budget (a "billion laughs" document is refused after
//! [`MAX_ALIAS_NODES`] copied nodes, not after the memory is gone), and to
//! refuse nesting deeper than [`MAX_DEPTH`] before anything recursive runs
//! over the tree. Keys are kept exactly as written here; dotted-key
//! normalisation happens in [`crate::normalize`].

use std::collections::HashMap;
use std::sync::Arc;

use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::error::ConfigError;
use crate::node::{Mark, Node, NodeValue};

/// Deepest nesting of maps and sequences accepted.
pub const MAX_DEPTH: usize = 64;
/// Most nodes that aliases (`*name`) may copy into a document in total.
pub const MAX_ALIAS_NODES: usize = 10_000;
/// Largest document accepted, in bytes.
pub const MAX_INPUT_BYTES: usize = 64 * 1024 * 1024;

enum Frame {
    Seq {
        mark: Mark,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        mark: Mark,
        anchor: usize,
        entries: Vec<(String, Node)>,
        key: Option<(String, Mark)>,
    },
}

struct Builder {
    file: Option<Arc<str>>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, (Node, usize, usize)>, // node, node count, depth
    alias_nodes: usize,
    root: Option<Node>,
}

/// Parse one YAML document into a raw tree (keys not yet split on dots).
/// An empty document gives `Null`.
pub(crate) fn parse_raw(yaml: &str, file: Option<&str>) -> Result<Node, ConfigError> {
    let file: Option<Arc<str>> = file.map(Arc::from);
    if yaml.len() > MAX_INPUT_BYTES {
        return Err(ConfigError::new(
            "",
            Mark {
                file,
                line: 0,
                column: 0,
            },
            format!(
                "the document is {} bytes; the limit is {MAX_INPUT_BYTES} bytes",
                yaml.len()
            ),
        ));
    }
    let mut b = Builder {
        file: file.clone(),
        stack: Vec::new(),
        anchors: HashMap::new(),
        alias_nodes: 0,
        root: None,
    };
    // yaml-rust2 is well tested, but a parser bug must not take the whole
    // process down: turn a panic into an ordinary error.
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| b.run(yaml)));
    match run {
        Ok(Ok(())) => Ok(b
            .root
            .take()
            .unwrap_or_else(|| Node::new(NodeValue::Null, b.mark0()))),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ConfigError::new(
            "",
            Mark {
                file,
                line: 0,
                column: 0,
            },
            "the YAML parser failed on this document",
        )),
    }
}

impl Builder {
    fn mark0(&self) -> Mark {
        Mark {
            file: self.file.clone(),
            line: 0,
            column: 0,
        }
    }

    fn mark(&self, m: &Marker) -> Mark {
        Mark {
            file: self.file.clone(),
            line: m.line(),
            column: m.col() + 1,
        }
    }

    fn err(&self, m: &Mark, msg: impl Into<String>) -> ConfigError {
        ConfigError::new("", m.clone(), msg)
    }

    fn run(&mut self, yaml: &str) -> Result<(), ConfigError> {
        let mut parser = Parser::new_from_str(yaml);
        let mut documents = 0usize;
        loop {
            let (ev, marker) = parser.next_token().map_err(|e| {
                let m = self.mark(e.marker());
                let mut msg = e.info().to_string();
                if line_has_tab(yaml, m.line) {
                    msg.push_str(" (tabs are not allowed for indentation; use spaces)");
                }
                self.err(&m, format!("invalid YAML: {msg}"))
            })?;
            let mark = self.mark(&marker);
            match ev {
                Event::StreamEnd => return Ok(()),
                Event::DocumentStart => {
                    documents += 1;
                    if documents > 1 {
                        return Err(self.err(
                            &mark,
                            "more than one YAML document (`---`) in one file is not supported",
                        ));
                    }
                }
                Event::Nothing | Event::StreamStart | Event::DocumentEnd => {}
                Event::Alias(id) => {
                    let Some((node, count, depth)) = self.anchors.get(&id) else {
                        return Err(self.err(&mark, "alias to an unknown anchor"));
                    };
                    self.alias_nodes = self.alias_nodes.saturating_add(*count);
                    if self.alias_nodes > MAX_ALIAS_NODES {
                        return Err(self.err(
                            &mark,
                            format!(
                                "aliases expand to more than {MAX_ALIAS_NODES} values; \
                                 refusing (is this an alias bomb?)"
                            ),
                        ));
                    }
                    if self.stack.len() + depth > MAX_DEPTH {
                        return Err(self.depth_error(&mark));
                    }
                    let mut node = node.clone();
                    node.mark = mark;
                    self.push(node, None)?;
                }
                Event::Scalar(text, style, anchor, tag) => {
                    let value = resolve_scalar(&text, style, tag.as_ref());
                    let node = Node::new(value, mark);
                    if anchor > 0 {
                        self.anchors.insert(anchor, (node.clone(), 1, 0));
                    }
                    self.push(node, Some(text))?;
                }
                Event::SequenceStart(anchor, _) => {
                    self.open(&mark)?;
                    let mark = self.collection_mark(mark);
                    self.stack.push(Frame::Seq {
                        mark,
                        anchor,
                        items: Vec::new(),
                    });
                }
                Event::MappingStart(anchor, _) => {
                    self.open(&mark)?;
                    let mark = self.collection_mark(mark);
                    self.stack.push(Frame::Map {
                        mark,
                        anchor,
                        entries: Vec::new(),
                        key: None,
                    });
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    let (node, anchor) = match self.stack.pop() {
                        Some(Frame::Seq {
                            mark,
                            anchor,
                            items,
                        }) => (Node::new(NodeValue::Seq(items), mark), anchor),
                        Some(Frame::Map {
                            mark,
                            anchor,
                            entries,
                            ..
                        }) => (Node::new(NodeValue::Map(entries), mark), anchor),
                        None => return Err(self.err(&mark, "unbalanced YAML structure")),
                    };
                    if anchor > 0 {
                        let (count, depth) = count_nodes(&node);
                        self.anchors.insert(anchor, (node.clone(), count, depth));
                    }
                    self.push(node, None)?;
                }
            }
        }
    }

    fn depth_error(&self, mark: &Mark) -> ConfigError {
        self.err(
            mark,
            format!("values are nested more than {MAX_DEPTH} levels deep"),
        )
    }

    fn open(&self, mark: &Mark) -> Result<(), ConfigError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.depth_error(mark));
        }
        if let Some(Frame::Map { key: None, .. }) = self.stack.last() {
            return Err(self.err(
                mark,
                "keys must be plain strings, found a map or list used as a key",
            ));
        }
        Ok(())
    }

    /// A map or list that is the value of a key is marked at the key: that is
    /// the line a person looks at.
    fn collection_mark(&self, own: Mark) -> Mark {
        match self.stack.last() {
            Some(Frame::Map {
                key: Some((_, key_mark)),
                ..
            }) => key_mark.clone(),
            _ => own,
        }
    }

    fn push(&mut self, node: Node, scalar_text: Option<String>) -> Result<(), ConfigError> {
        match self.stack.last_mut() {
            None => {
                self.root = Some(node);
                Ok(())
            }
            Some(Frame::Seq { items, .. }) => {
                items.push(node);
                Ok(())
            }
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                Some((k, _)) => {
                    entries.push((k, node));
                    Ok(())
                }
                None => {
                    let text = match (&node.value, scalar_text) {
                        (_, Some(t)) => t,
                        (NodeValue::String(s), None) => s.clone(),
                        (NodeValue::Int(i), None) => i.to_string(),
                        (NodeValue::Bool(b), None) => b.to_string(),
                        _ => {
                            let m = node.mark.clone();
                            return Err(self.err(&m, "keys must be plain strings"));
                        }
                    };
                    if text.is_empty() {
                        let m = node.mark.clone();
                        return Err(self.err(&m, "empty key"));
                    }
                    *key = Some((text, node.mark));
                    Ok(())
                }
            },
        }
    }
}

/// Count the nodes below and including `node`, and its depth.
fn count_nodes(node: &Node) -> (usize, usize) {
    match &node.value {
        NodeValue::Seq(items) => items.iter().fold((1, 1), |(c, d), n| {
            let (nc, nd) = count_nodes(n);
            (c.saturating_add(nc), d.max(nd + 1))
        }),
        NodeValue::Map(entries) => entries.iter().fold((1, 1), |(c, d), (_, n)| {
            let (nc, nd) = count_nodes(n);
            (c.saturating_add(nc), d.max(nd + 1))
        }),
        _ => (1, 0),
    }
}

fn line_has_tab(yaml: &str, line: usize) -> bool {
    let lines = yaml.lines();
    let near = lines.skip(line.saturating_sub(2)).take(3);
    near.into_iter()
        .any(|l| l.trim_end().starts_with('\t') || l.contains("\t"))
}

/// Give a scalar its type. Plain scalars follow the YAML 1.2 core schema;
/// quoted and block scalars are always strings; `!!str` forces a string.
fn resolve_scalar(text: &str, style: TScalarStyle, tag: Option<&Tag>) -> NodeValue {
    if let Some(tag) = tag
        && tag.suffix == "str"
    {
        return NodeValue::String(text.to_string());
    }
    if style != TScalarStyle::Plain {
        return NodeValue::String(text.to_string());
    }
    resolve_plain(text)
}

/// Type a plain (unquoted) scalar: null, bool, int, float or string.
pub(crate) fn resolve_plain(text: &str) -> NodeValue {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return NodeValue::Null,
        "true" | "True" | "TRUE" => return NodeValue::Bool(true),
        "false" | "False" | "FALSE" => return NodeValue::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return NodeValue::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return NodeValue::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return NodeValue::Float(f64::NAN),
        _ => {}
    }
    if let Some(i) = parse_int(text) {
        return NodeValue::Int(i);
    }
    if looks_like_float(text)
        && let Ok(f) = text.parse::<f64>()
    {
        return NodeValue::Float(f);
    }
    NodeValue::String(text.to_string())
}

fn parse_int(text: &str) -> Option<i64> {
    if let Some(hex) = text.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok();
    }
    if let Some(oct) = text.strip_prefix("0o") {
        return i64::from_str_radix(oct, 8).ok();
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Digits with a `.` or an exponent (a plain digit string is an integer).
pub(crate) fn looks_like_float(text: &str) -> bool {
    text.bytes().any(|b| b.is_ascii_digit())
        && text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'))
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_are_typed() {
        assert_eq!(resolve_plain("5066"), NodeValue::Int(5066));
        assert_eq!(resolve_plain("-3"), NodeValue::Int(-3));
        assert_eq!(resolve_plain("0x10"), NodeValue::Int(16));
        assert_eq!(resolve_plain("1.5"), NodeValue::Float(1.5));
        assert_eq!(resolve_plain("true"), NodeValue::Bool(true));
        assert_eq!(resolve_plain("~"), NodeValue::Null);
        assert_eq!(resolve_plain("inf"), NodeValue::String("inf".into()));
        assert_eq!(resolve_plain("10s"), NodeValue::String("10s".into()));
        // Too big for i64: kept as text, a u64 field can still read it.
        assert_eq!(
            resolve_plain("18446744073709551615"),
            NodeValue::String("18446744073709551615".into())
        );
    }

    #[test]
    fn quoted_stays_string_and_marks_are_one_based() {
        let n = parse_raw("a: \"5\"\nb:\n  c: 1\n", Some("f.yml")).unwrap();
        let a = n.get("a").unwrap();
        assert_eq!(a.value, NodeValue::String("5".into()));
        assert_eq!((a.mark.line, a.mark.column), (1, 4));
        // A map value is marked at its key.
        let b = n.get("b").unwrap();
        assert_eq!((b.mark.line, b.mark.column), (2, 1));
        assert_eq!(b.mark.file.as_deref(), Some("f.yml"));
    }

    #[test]
    fn aliases_are_copied() {
        let n = parse_raw("base: &b {x: 1}\nother: *b\n", None).unwrap();
        assert_eq!(n.get("other.x").unwrap().value, NodeValue::Int(1));
    }

    #[test]
    fn limits() {
        let deep = format!("{}1{}", "[".repeat(65), "]".repeat(65));
        let e = parse_raw(&deep, None).unwrap_err();
        assert!(e.message.contains("nested more than 64"), "{e}");
        let ok = format!("{}1{}", "[".repeat(63), "]".repeat(63));
        assert!(parse_raw(&ok, None).is_ok());
        let e = parse_raw("a: 1\n---\nb: 2\n", None).unwrap_err();
        assert!(e.message.contains("more than one YAML document"), "{e}");
        let e = parse_raw("[1]: x\n", None).unwrap_err();
        assert!(e.message.contains("keys must be plain strings"), "{e}");
    }
}
