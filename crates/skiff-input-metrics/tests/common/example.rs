//! Comparing an event with the corpus' example event of its metricset
//! (`shared/corpus/metricbeat-modules/<module>/<metricset>/data*.json`): every field of the
//! example under `<module>.<metricset>` must be in the event with the same JSON type (number,
//! string, bool, list, object). Values differ (the example comes from another server); names,
//! nesting and types must not.

use std::path::Path;

use serde_json::Value;
use skiff_event::Map;

/// The example event `<module>/<metricset>/<file>` of the corpus.
pub fn load(module: &str, metricset: &str, file: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/metricbeat-modules")
        .join(module)
        .join(metricset)
        .join(file);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

fn leaves(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                leaves(&format!("{prefix}.{k}"), v, out);
            }
        }
        _ => out.push((prefix.to_owned(), v.clone())),
    }
}

/// Asserts that `event` has every field of `example` under `<module>.<metricset>` with its
/// type, except the dotted paths in `absent` (each with why this server does not have it),
/// which must then really be absent (so the list cannot go stale).
pub fn assert_shape(
    event: &Map,
    example: &Value,
    module: &str,
    metricset: &str,
    absent: &[(&str, &str)],
) {
    let root = format!("{module}.{metricset}");
    let mut want = Vec::new();
    let sub = root
        .split('.')
        .try_fold(example, |v, k| v.get(k))
        .unwrap_or_else(|| panic!("the example has no `{root}`"));
    leaves(&root, sub, &mut want);
    assert!(!want.is_empty());
    let event = Value::Object(event.clone());
    let mut problems = Vec::new();
    for (path, ex) in &want {
        let got = path.split('.').try_fold(&event, |v, k| v.get(k));
        let exempt = absent.iter().find(|(p, _)| format!("{root}.{p}") == *path);
        match (got, exempt) {
            (None, Some(_)) => {}
            (Some(g), Some((_, why))) => {
                problems.push(format!("{path} is listed as absent ({why}) but is {g}"))
            }
            (None, None) => problems.push(format!("{path} missing (example: {ex})")),
            (Some(g), None) if kind(g) != kind(ex) => problems.push(format!(
                "{path} is a {} ({g}), the example's a {} ({ex})",
                kind(g),
                kind(ex)
            )),
            _ => {}
        }
    }
    assert!(
        problems.is_empty(),
        "{}\nevent: {event}",
        problems.join("\n")
    );
}
