//! Hints: a container's `co.elastic.logs/*` labels (or a pod's annotations) turned into input
//! settings, as Filebeat's logs hints builder does
//! (<https://www.elastic.co/guide/en/beats/filebeat/current/configuration-autodiscover-hints.html>):
//!
//! | hint | effect |
//! |---|---|
//! | `enabled` | `false`: nothing for this container; `true`: an input even when `hints.default_config.enabled` is false |
//! | `module`, `fileset`, `fileset.stdout`, `fileset.stderr` | one input per enabled fileset, its stream only, parsed by the module (`module_pipeline`) |
//! | `multiline.*`, `json.*` | the input's `multiline` / `json` settings |
//! | `include_lines`, `exclude_lines` | comma-separated patterns |
//! | `processors.<n>.<name>.<key>`, `processors.<name>.<key>` | the input's processors, in `n` order |
//! | `raw` | the input settings as JSON, used as given |
//!
//! Everything starts from `hints.default_config` (or the provider's default: the container's
//! log file read with the `container` input), with `${data.*}` filled in.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// What the hints of one container ask for.
#[derive(Debug, PartialEq)]
pub enum Hinted {
    /// No input for this container (`enabled: false`, or no hint and the default disabled).
    Nothing,
    /// These input settings (JSON, `${data.*}` already filled in the default config).
    Inputs(Vec<Value>),
}

/// Turns `hints` into input settings. `default`: the default config with variables filled;
/// `default_enabled`: `hints.default_config.enabled`.
pub fn build(
    hints: &[(String, String)],
    default: &Map<String, Value>,
    default_enabled: bool,
) -> Result<Hinted, String> {
    let get = |k: &str| hints.iter().find(|(h, _)| h == k).map(|(_, v)| v.as_str());
    match get("enabled").map(str::trim) {
        Some("false") => return Ok(Hinted::Nothing),
        Some("true") => {}
        _ if !default_enabled => return Ok(Hinted::Nothing),
        _ => {}
    }
    if let Some(raw) = get("raw") {
        let v: Value = serde_json::from_str(raw)
            .map_err(|e| format!("the `raw` hint is not JSON input settings: {e}"))?;
        return match v {
            Value::Array(items) => Ok(Hinted::Inputs(items)),
            Value::Object(_) => Ok(Hinted::Inputs(vec![v])),
            _ => Err("the `raw` hint is a JSON map (or list of maps) of input settings".into()),
        };
    }
    let mut base = default.clone();
    base.remove("enabled");
    for prefix in ["multiline", "json"] {
        let section = sub_map(hints, &format!("{prefix}."));
        if !section.is_empty() {
            base.insert(prefix.into(), Value::Object(section));
        }
    }
    for key in ["include_lines", "exclude_lines"] {
        if let Some(v) = get(key) {
            let list: Vec<Value> = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(Value::from)
                .collect();
            base.insert(key.into(), Value::Array(list));
        }
    }
    let processors = processors(hints);
    if !processors.is_empty() {
        let mut all = base
            .get("processors")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        all.extend(processors);
        base.insert("processors".into(), Value::Array(all));
    }
    let Some(module) = get("module") else {
        return Ok(Hinted::Inputs(vec![Value::Object(base)]));
    };
    let Some(m) = skiff_modules::MODULES.iter().find(|m| m.name == module) else {
        return Err(format!(
            "the `module` hint names `{module}`, which skiff does not have (it has {})",
            skiff_modules::module_names().join(", ")
        ));
    };
    // Filebeat's rule: `fileset` sends every stream to one fileset, `fileset.stdout` /
    // `fileset.stderr` one stream each; with neither, every fileset reads every stream.
    let mut chosen: Vec<(&str, &str)> = Vec::new();
    for (hint, stream) in [
        ("fileset", "all"),
        ("fileset.stdout", "stdout"),
        ("fileset.stderr", "stderr"),
    ] {
        if let Some(fs) = get(hint) {
            match m.filesets.iter().find(|(f, _)| *f == fs) {
                Some((f, _)) => chosen.push((f, stream)),
                None => {
                    let names: Vec<&str> = m.filesets.iter().map(|(f, _)| *f).collect();
                    return Err(format!(
                        "the `{hint}` hint names `{fs}`; module `{module}` has {}",
                        names.join(", ")
                    ));
                }
            }
        }
    }
    if chosen.is_empty() {
        // Every fileset the module enables by default (nginx `ingress_controller` reads the
        // same file as `access` and runs only when named).
        chosen = m
            .filesets
            .iter()
            .filter(|(f, _)| skiff_modules::fileset(module, f).is_ok_and(|d| d.enabled))
            .map(|(f, _)| (*f, "all"))
            .collect();
    }
    let mut inputs = Vec::new();
    for (fs, stream) in chosen {
        let def = skiff_modules::fileset(module, fs).map_err(|e| e.to_string())?;
        let mut input = base.clone();
        for (k, v) in &def.input {
            input.entry(k.clone()).or_insert_with(|| v.clone());
        }
        if stream != "all" {
            input.insert("stream".into(), Value::from(stream));
        }
        let mut procs = vec![json!({"module_pipeline": {"module": module, "fileset": fs}})];
        if let Some(Value::Array(p)) = input.get("processors") {
            procs.extend(p.iter().cloned());
        }
        input.insert("processors".into(), Value::Array(procs));
        inputs.push(Value::Object(input));
    }
    Ok(Hinted::Inputs(inputs))
}

/// The hints under `prefix` as a map (`multiline.pattern` -> `{pattern: ...}`), values typed
/// when they read as JSON scalars (`negate: "false"` is the boolean).
fn sub_map(hints: &[(String, String)], prefix: &str) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in hints {
        if let Some(rest) = k.strip_prefix(prefix) {
            skiff_modules::doc::insert(&mut out, rest, typed(v));
        }
    }
    out
}

/// `"true"` -> true, `"5"` -> 5, anything else the string.
fn typed(v: &str) -> Value {
    match serde_json::from_str::<Value>(v) {
        Ok(j @ (Value::Bool(_) | Value::Number(_))) => j,
        _ => Value::from(v),
    }
}

/// `processors.1.dissect.tokenizer: x` and `processors.add_tags.tags: y`: one processor per
/// index (or per name without one), in index order; a value that is JSON is taken as JSON.
fn processors(hints: &[(String, String)]) -> Vec<Value> {
    let mut by_index: BTreeMap<(u64, String), Map<String, Value>> = BTreeMap::new();
    for (k, v) in hints {
        let Some(rest) = k.strip_prefix("processors.") else {
            continue;
        };
        let (index, rest) = match rest.split_once('.') {
            Some((n, r)) if n.parse::<u64>().is_ok() => (n.parse::<u64>().unwrap_or(0), r),
            _ => (u64::MAX, rest),
        };
        let (name, key) = rest.split_once('.').unwrap_or((rest, ""));
        let cfg = by_index.entry((index, name.to_owned())).or_default();
        let value = serde_json::from_str::<Value>(v).unwrap_or_else(|_| Value::from(v.as_str()));
        if key.is_empty() {
            if let Value::Object(m) = value {
                cfg.extend(m);
            }
        } else {
            skiff_modules::doc::insert(cfg, key, value);
        }
    }
    by_index
        .into_iter()
        .map(|((_, name), cfg)| json!({ name: cfg }))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn default() -> Map<String, Value> {
        json!({"type": "container", "paths": ["/d/abc/*-json.log"]})
            .as_object()
            .unwrap()
            .clone()
    }

    fn inputs(hints: &[(&str, &str)], on: bool) -> Vec<Value> {
        match build(&h(hints), &default(), on).unwrap() {
            Hinted::Inputs(i) => i,
            Hinted::Nothing => Vec::new(),
        }
    }

    #[test]
    fn enabled_and_the_default() {
        assert_eq!(inputs(&[], true), vec![Value::Object(default())]);
        assert!(inputs(&[], false).is_empty());
        assert!(inputs(&[("enabled", "false")], true).is_empty());
        assert_eq!(inputs(&[("enabled", "true")], false).len(), 1);
    }

    #[test]
    fn multiline_json_lines_and_processors() {
        let i = inputs(
            &[
                ("multiline.pattern", "^\\["),
                ("multiline.negate", "true"),
                ("multiline.match", "after"),
                ("json.keys_under_root", "true"),
                ("exclude_lines", "^DEBUG, ^TRACE"),
                ("processors.2.add_tags.tags", "second"),
                ("processors.1.dissect.tokenizer", "%{a} %{b}"),
            ],
            true,
        );
        let i = &i[0];
        assert_eq!(i["multiline"]["pattern"], "^\\[");
        assert_eq!(i["multiline"]["negate"], true);
        assert_eq!(i["json"]["keys_under_root"], true);
        assert_eq!(i["exclude_lines"], json!(["^DEBUG", "^TRACE"]));
        assert_eq!(i["processors"][0]["dissect"]["tokenizer"], "%{a} %{b}");
        assert_eq!(i["processors"][1]["add_tags"]["tags"], "second");
    }

    #[test]
    fn module_and_filesets_per_stream() {
        let all = inputs(&[("module", "nginx")], true);
        assert_eq!(all.len(), 2, "{all:?}");
        let per = inputs(
            &[
                ("module", "nginx"),
                ("fileset.stdout", "access"),
                ("fileset.stderr", "error"),
            ],
            true,
        );
        assert_eq!(per.len(), 2);
        assert_eq!(per[0]["stream"], "stdout");
        assert_eq!(
            per[0]["processors"][0]["module_pipeline"],
            json!({"module": "nginx", "fileset": "access"})
        );
        assert_eq!(per[1]["stream"], "stderr");
        assert!(
            build(
                &h(&[("module", "nginx"), ("fileset", "nope")]),
                &default(),
                true
            )
            .is_err()
        );
        assert!(build(&h(&[("module", "nope")]), &default(), true).is_err());
    }

    #[test]
    fn raw_replaces_everything() {
        let i = inputs(&[("raw", r#"[{"type":"container","paths":["/x"]}]"#)], true);
        assert_eq!(i, vec![json!({"type": "container", "paths": ["/x"]})]);
    }
}
