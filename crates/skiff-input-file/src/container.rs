//! `type: container`: Filebeat's container input, which reads the log files container runtimes
//! write (Docker's `json-file`, CRI's text format) and turns each into the message it carries.
//!
//! In Filebeat it is the `log` input with its Docker JSON reader switched on; here it is the
//! same file input, its settings mapped the way the `log` input's are
//! ([`map_log_input`](crate::config::map_log_input): `close_inactive`, `json`, `multiline` ...),
//! with the `container` parser of `skiff-parsers` put in front of any other parser. Filebeat's
//! defaults:
//!
//! | key | default |
//! |---|---|
//! | `paths` | `[/var/log/containers/*.log]` (Kubernetes' links to the pods' log files) |
//! | `stream` | `all` (`stdout`, `stderr`: only that stream) |
//! | `format` | `auto` (`docker`, `cri`) |
//! | `prospector.scanner.symlinks` (`symlinks`) | `true`: `/var/log/containers/*.log` are links |
//! | `id` | `container-<hash of paths>`, stable across restarts and reorderings |

use skiff_config::{ConfigErrors, Node, NodeValue};

use crate::config::map_log_input;

/// Where Kubernetes links every container's log file.
pub const DEFAULT_PATH: &str = "/var/log/containers/*.log";

/// The container input's settings as file input (filestream) settings.
pub fn map_container_input(node: &Node) -> Result<Node, ConfigErrors> {
    let mut rest = node.clone();
    let mut parser = Node::new(NodeValue::Map(Vec::new()), node.mark.clone());
    for key in ["stream", "format"] {
        if let Some(v) = rest.remove(key) {
            let mark = v.mark.clone();
            parser.insert(key, v, &mark);
        }
    }
    let symlinks = rest.remove("symlinks");
    let mut out = map_log_input(&rest)?;
    let mark = node.mark.clone();
    if out.get("paths").is_none() {
        let path = Node::new(NodeValue::String(DEFAULT_PATH.into()), mark.clone());
        out.insert(
            "paths",
            Node::new(NodeValue::Seq(vec![path]), mark.clone()),
            &mark,
        );
    }
    if out.get("prospector.scanner.symlinks").is_none() {
        let value = symlinks.unwrap_or_else(|| Node::new(NodeValue::Bool(true), mark.clone()));
        out.insert("prospector.scanner.symlinks", value, &mark);
    }
    let mut item = Node::new(NodeValue::Map(Vec::new()), mark.clone());
    item.insert("container", parser, &mark);
    let mut parsers = vec![item];
    if let Some(p) = out.remove("parsers") {
        match p.value {
            NodeValue::Seq(items) => parsers.extend(items),
            NodeValue::Null => {}
            _ => parsers.push(p),
        }
    }
    out.insert(
        "parsers",
        Node::new(NodeValue::Seq(parsers), mark.clone()),
        &mark,
    );
    out.fix_paths(&node.path);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(yaml: &str) -> serde_json::Value {
        let n = skiff_config::parse_str(yaml, Some("t.yml")).unwrap();
        map_container_input(&n).unwrap().to_json()
    }

    #[test]
    fn filebeat_defaults() {
        let j = mapped("{}");
        assert_eq!(j["paths"], serde_json::json!([DEFAULT_PATH]));
        assert_eq!(j["prospector"]["scanner"]["symlinks"], true);
        assert_eq!(j["parsers"], serde_json::json!([{"container": {}}]));
    }

    #[test]
    fn stream_format_and_log_settings_are_mapped() {
        let j = mapped(
            "paths: /x/*.log\nstream: stderr\nformat: cri\nsymlinks: false\nclose_inactive: 1m\nmultiline: {pattern: '^ ', match: after, negate: false}\n",
        );
        assert_eq!(j["paths"], "/x/*.log");
        assert_eq!(j["prospector"]["scanner"]["symlinks"], false);
        assert_eq!(j["close"]["on_state_change"]["inactive"], "1m");
        // The container parser first, then the log input's multiline.
        assert_eq!(
            j["parsers"][0],
            serde_json::json!({"container": {"stream": "stderr", "format": "cri"}})
        );
        assert_eq!(j["parsers"][1]["multiline"]["match"], "after");
    }
}
