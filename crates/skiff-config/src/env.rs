//! `${VAR}` expansion in string values, like go-ucfg.
//!
//! Syntax: `${NAME}`, `${NAME:default}` (the default may be empty, contain
//! `:` or another `${...}`), `${NAME:?message}` (fail with `message`), and
//! `$${` for a literal `${`. `NAME` is first looked up as a dotted key of
//! the configuration itself (so `${path.home}/data` works as in Beats), then
//! through the `env` function. A value that was exactly one `${...}` is
//! re-typed after expansion: `true`/`false` become booleans, numbers become
//! numbers and `[a, b]` becomes a list, so `port: ${PORT:5066}` is an
//! integer. `${data.*}` (autodiscover template variables) is left as written.

use crate::error::{ConfigError, ConfigErrors};
use crate::node::{Node, NodeValue};

/// How deep `${a}` -> `${b}` -> ... references may go (stops cycles).
const MAX_REF_DEPTH: usize = 16;
/// Longest string an expansion may produce.
const MAX_EXPANDED_LEN: usize = 1024 * 1024;

/// Expand `${...}` in every string value of `node` (keys are left alone).
/// All problems are reported together.
pub fn expand_env(
    node: &mut Node,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigErrors> {
    let snapshot = node.clone();
    let ctx = Ctx {
        root: &snapshot,
        env,
    };
    let mut errors = Vec::new();
    walk(node, &ctx, &mut errors);
    ConfigErrors(errors).into_result()
}

struct Ctx<'a> {
    root: &'a Node,
    env: &'a dyn Fn(&str) -> Option<String>,
}

fn walk(node: &mut Node, ctx: &Ctx<'_>, errors: &mut Vec<ConfigError>) {
    match &mut node.value {
        NodeValue::Map(entries) => entries.iter_mut().for_each(|(_, v)| walk(v, ctx, errors)),
        NodeValue::Seq(items) => items.iter_mut().for_each(|v| walk(v, ctx, errors)),
        NodeValue::String(s) if s.contains("${") => match expand_str(s, ctx, 0) {
            Ok(out) => {
                let whole = is_single_reference(s);
                node.value = if whole {
                    retype(out, node)
                } else {
                    NodeValue::String(out)
                };
            }
            Err(msg) => errors.push(ConfigError::new(node.path.clone(), node.mark.clone(), msg)),
        },
        _ => {}
    }
}

/// Is `s` exactly one `${...}` and nothing else?
fn is_single_reference(s: &str) -> bool {
    s.starts_with("${") && find_close(s, 2) == Some(s.len() - 1)
}

/// Index of the `}` closing a `${` whose body starts at `from`.
fn find_close(s: &str, from: usize) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut depth = 0usize;
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 2;
                continue;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

/// Expand every reference in `s`. The error is a plain message.
fn expand_str(s: &str, ctx: &Ctx<'_>, depth: usize) -> Result<String, String> {
    if depth > MAX_REF_DEPTH {
        return Err(format!(
            "`${{...}}` references nest more than {MAX_REF_DEPTH} deep (is there a cycle?)"
        ));
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if tail.starts_with("${") {
            let close = find_close(tail, 2)
                .ok_or_else(|| format!("`${{` without a closing `}}` in {s:?}"))?;
            out.push_str(&resolve(&tail[2..close], ctx, depth)?);
            rest = &tail[close + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
        if out.len() > MAX_EXPANDED_LEN {
            return Err(format!(
                "expanding `${{...}}` gives more than {MAX_EXPANDED_LEN} bytes"
            ));
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Resolve the body of one `${...}`.
fn resolve(body: &str, ctx: &Ctx<'_>, depth: usize) -> Result<String, String> {
    let (name, op) = match body.split_once(':') {
        Some((name, rest)) => (name.trim(), Some(rest)),
        None => (body.trim(), None),
    };
    if name.is_empty() {
        return Err("`${}` needs a variable name".to_string());
    }
    if let Some(v) = lookup(name, ctx, depth)? {
        return Ok(v);
    }
    // `${data.*}` belongs to autodiscover templates, filled in per container
    // when the template is applied: not ours to expand.
    if name.starts_with("data.") && op.is_none() {
        return Ok(format!("${{{body}}}"));
    }
    match op {
        None => Err(format!(
            "environment variable `{name}` is not set (write `${{{name}:default}}` to give a default)"
        )),
        Some(msg) if msg.starts_with('?') => {
            let msg = msg[1..].trim();
            if msg.is_empty() {
                Err(format!("environment variable `{name}` must be set"))
            } else {
                Err(msg.to_string())
            }
        }
        Some(default) => expand_str(default, ctx, depth + 1),
    }
}

fn lookup(name: &str, ctx: &Ctx<'_>, depth: usize) -> Result<Option<String>, String> {
    if let Some(node) = ctx.root.get(name) {
        let text = match &node.value {
            NodeValue::String(s) if s.contains("${") => Some(expand_str(s, ctx, depth + 1)?),
            NodeValue::String(s) => Some(s.clone()),
            NodeValue::Int(i) => Some(i.to_string()),
            NodeValue::Float(f) => Some(f.to_string()),
            NodeValue::Bool(b) => Some(b.to_string()),
            _ => None,
        };
        if text.is_some() {
            return Ok(text);
        }
    }
    Ok((ctx.env)(name))
}

/// go-ucfg re-typing of a value that was one whole reference.
fn retype(text: String, node: &Node) -> NodeValue {
    match text.as_str() {
        "true" => return NodeValue::Bool(true),
        "false" => return NodeValue::Bool(false),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        // Keep "007" and "+5" as written: only re-type exact round trips.
        if i.to_string() == text {
            return NodeValue::Int(i);
        }
    }
    if crate::parse::looks_like_float(&text)
        && let Ok(f) = text.parse::<f64>()
    {
        return NodeValue::Float(f);
    }
    let trimmed = text.trim();
    if trimmed.starts_with('[')
        && trimmed.ends_with(']')
        && let Ok(mut parsed) = crate::parse::parse_raw(trimmed, None)
        && matches!(parsed.value, NodeValue::Seq(_))
    {
        set_marks(&mut parsed, node);
        parsed.fix_paths(&node.path);
        return parsed.value;
    }
    NodeValue::String(text)
}

fn set_marks(n: &mut Node, from: &Node) {
    n.mark = from.mark.clone();
    if let NodeValue::Seq(items) = &mut n.value {
        items.iter_mut().for_each(|i| set_marks(i, from));
    }
    if let NodeValue::Map(entries) = &mut n.value {
        entries.iter_mut().for_each(|(_, v)| set_marks(v, from));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_str;

    fn env(name: &str) -> Option<String> {
        match name {
            "X" => Some("ex".into()),
            "PORT" => Some("9200".into()),
            "FLAG" => Some("true".into()),
            "LIST" => Some("[a, b]".into()),
            "ZERO" => Some("007".into()),
            _ => None,
        }
    }

    fn expand(yaml: &str) -> Result<Node, ConfigErrors> {
        let mut n = parse_str(yaml, Some("t.yml"))?;
        expand_env(&mut n, &env)?;
        Ok(n)
    }

    fn val(n: &Node, path: &str) -> NodeValue {
        n.get(path).unwrap().value.clone()
    }

    #[test]
    fn forms() {
        let n = expand(concat!(
            "a: ${X}\n",
            "b: ${MISSING:def}\n",
            "c: ${MISSING:}\n",
            "d: ${MISSING:http://h:9200}\n",
            "e: $${X}\n",
            "f: pre-${X}-${X}-post\n",
            "g: ${MISSING:${X}}\n",
            "h: cost $5\n",
        ))
        .unwrap();
        assert_eq!(val(&n, "a"), NodeValue::String("ex".into()));
        assert_eq!(val(&n, "b"), NodeValue::String("def".into()));
        assert_eq!(val(&n, "c"), NodeValue::String("".into()));
        assert_eq!(val(&n, "d"), NodeValue::String("http://h:9200".into()));
        assert_eq!(val(&n, "e"), NodeValue::String("${X}".into()));
        assert_eq!(val(&n, "f"), NodeValue::String("pre-ex-ex-post".into()));
        assert_eq!(val(&n, "g"), NodeValue::String("ex".into()));
        assert_eq!(val(&n, "h"), NodeValue::String("cost $5".into()));
    }

    #[test]
    fn retyping() {
        let n = expand("port: ${PORT}\nd: ${NOPE:5066}\nflag: ${FLAG}\nl: ${LIST}\nz: ${ZERO}\nmix: p${PORT}\nf: ${NOPE:1.5}\n").unwrap();
        assert_eq!(val(&n, "port"), NodeValue::Int(9200));
        assert_eq!(val(&n, "d"), NodeValue::Int(5066));
        assert_eq!(val(&n, "flag"), NodeValue::Bool(true));
        assert_eq!(val(&n, "z"), NodeValue::String("007".into()));
        assert_eq!(val(&n, "mix"), NodeValue::String("p9200".into()));
        assert_eq!(val(&n, "f"), NodeValue::Float(1.5));
        assert_eq!(n.get("l.1").unwrap().value, NodeValue::String("b".into()));
        assert_eq!(n.get("l.1").unwrap().path, "l.1");
    }

    #[test]
    fn errors_name_key_and_variable() {
        let e = expand("output:\n  es:\n    password: ${PW:?must set PW}\n    user: ${NOPE}\n")
            .unwrap_err();
        assert_eq!(e.len(), 2);
        assert_eq!(e.0[0].path, "output.es.password");
        assert_eq!(e.0[0].message, "must set PW");
        assert_eq!(e.0[0].mark.line, 3);
        assert_eq!(e.0[1].path, "output.es.user");
        assert!(e.0[1].message.contains("`NOPE`"), "{}", e.0[1]);
        let e = expand("a: ${X\n").unwrap_err();
        assert!(e.0[0].message.contains("closing"), "{e}");
    }

    #[test]
    fn config_references_and_cycles() {
        let n = expand("path.home: /opt/skiff\npath.data: ${path.home}/data\n").unwrap();
        assert_eq!(
            val(&n, "path.data"),
            NodeValue::String("/opt/skiff/data".into())
        );
        let e = expand("a: ${b}\nb: ${a}\n").unwrap_err();
        assert!(e.0[0].message.contains("cycle"), "{e}");
    }
}
