//! Helpers of the live tests (haproxy, remote_write, rabbitmq, zookeeper).
//!
//! Comparing a live event with a metricset's example event from the corpus
//! (`shared/corpus/metricbeat-modules/<module>/<metricset>/data*.json`): every field the example
//! has under `<module>.<metricset>` must be in the live event with the same JSON type (number,
//! string, boolean, array). Values are not compared: the example comes from another machine.
//! Example files mix nested objects and dotted keys (`"in.bytes"`); both are read as paths.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// The example event `file` of `module/metricset`.
pub fn example(module: &str, metricset: &str, file: &str) -> Value {
    let p: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/metricbeat-modules")
        .join(module)
        .join(metricset)
        .join(file);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap()
}

/// Every leaf of `v` as (dotted path, type name); empty objects are skipped.
pub fn leaves(v: &Value) -> Vec<(String, &'static str)> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<(String, &'static str)>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&p, v, out);
                }
            }
            other => out.push((prefix.to_owned(), kind(other))),
        }
    }
    let mut out = Vec::new();
    walk("", v, &mut out);
    out
}

/// The JSON type of a value.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The event's leaves as a map from dotted path to type.
fn event_leaves(event: &Map<String, Value>) -> std::collections::BTreeMap<String, &'static str> {
    leaves(&Value::Object(event.clone())).into_iter().collect()
}

/// Checks that every field of `example` under `prefix` (`haproxy.info`) is in `event` with the
/// same type. `renamed` maps example paths (relative to `prefix`) to where skiff publishes them
/// (absolute: `pid` -> `process.pid`); `absent` lists example fields the live server does not
/// have, each with why. Returns the number of fields checked.
pub fn assert_typed_like(
    event: &Map<String, Value>,
    example: &Value,
    prefix: &str,
    renamed: &[(&str, &str)],
    absent: &[(&str, &str)],
) -> usize {
    let sub = prefix
        .split('.')
        .try_fold(example, |v, k| v.get(k))
        .unwrap_or_else(|| panic!("the example has no `{prefix}`"));
    let got = event_leaves(event);
    let mut problems = Vec::new();
    let mut checked = 0;
    for (path, want) in leaves(sub) {
        if absent.iter().any(|(p, _)| *p == path) {
            continue;
        }
        let at = renamed
            .iter()
            .find(|(from, _)| *from == path)
            .map_or_else(|| format!("{prefix}.{path}"), |(_, to)| (*to).to_owned());
        match got.get(&at) {
            Some(k) if *k == want => checked += 1,
            Some(k) => problems.push(format!("{at}: {k}, the example has {want}")),
            None => problems.push(format!("{at}: missing ({want} in the example)")),
        }
    }
    assert!(
        problems.is_empty(),
        "fields unlike the example:\n  {}\nevent: {}",
        problems.join("\n  "),
        Value::Object(event.clone())
    );
    assert!(checked > 0, "nothing compared under {prefix}");
    checked
}

/// A plain HTTP client (reqwest is built without a default TLS provider here: the one
/// skiff-tls configures).
pub fn http_client() -> reqwest::Client {
    let tls = skiff_tls::client_config(&skiff_tls::SslConfig::default()).unwrap();
    reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .build()
        .unwrap()
}

/// Starts `program` with `args` in a process group of its own (so that dropping the returned
/// server stops it and its children), output discarded.
pub fn spawn(program: &Path, args: &[&std::ffi::OsStr]) -> crate::common::Server {
    use std::os::unix::process::CommandExt;
    let child = std::process::Command::new(program)
        .args(args)
        .process_group(0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    crate::common::Server {
        child,
        dir: tempfile::tempdir().unwrap(),
    }
}
