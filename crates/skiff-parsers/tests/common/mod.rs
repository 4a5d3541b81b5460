//! Helpers shared by the integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::Arc;

use skiff_config::{ConfigErrors, Node};
use skiff_event::{Event, Map};
use skiff_parsers::{Message, Parser, ParserChain};
use skiff_pipeline::BuildContext;

pub fn ctx() -> BuildContext {
    BuildContext::standalone("t", "0.0.0", &skiff_metrics::Registry::new())
}

/// Parses a filebeat.yml with one input and returns its `parsers` node (kept alive by the root).
pub fn config(yaml: &str) -> Node {
    skiff_config::parse_str(yaml, Some("filebeat.yml")).unwrap()
}

/// Builds a chain from YAML of the form `parsers:\n  - ...` (under one filestream input).
pub fn try_chain(parsers_yaml: &str, max_bytes: usize) -> Result<ParserChain, ConfigErrors> {
    let mut yaml = String::from("filebeat.inputs:\n  - type: filestream\n    id: t\n");
    for line in parsers_yaml.lines() {
        yaml.push_str("    ");
        yaml.push_str(line);
        yaml.push('\n');
    }
    let root = config(&yaml);
    ParserChain::build(root.get("filebeat.inputs.0.parsers"), &ctx(), max_bytes)
}

pub fn chain(parsers_yaml: &str) -> ParserChain {
    try_chain(parsers_yaml, 10 * 1024 * 1024).unwrap()
}

/// Lines as the file input would make them: each followed by `\n` in the file.
pub fn lines(text: &[&str]) -> Vec<Message> {
    let mut off = 0u64;
    text.iter()
        .map(|l| {
            let start = off;
            off += l.len() as u64 + 1;
            Message::new((*l).to_owned(), start, off)
        })
        .collect()
}

/// Feeds every line, then finishes.
pub fn run(p: &mut impl Parser, text: &[&str]) -> Vec<Message> {
    let mut out = Vec::new();
    for m in lines(text) {
        p.feed(m, &mut out);
    }
    p.finish(&mut out);
    out
}

pub fn texts(out: &[Message]) -> Vec<String> {
    out.iter().map(|m| m.text.clone()).collect()
}

pub fn to_event(m: Message) -> Event {
    let mut ev = Event::new(Arc::new(Map::new()), String::new());
    skiff_parsers::apply_to_event(m, &mut ev);
    ev
}
