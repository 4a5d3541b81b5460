//! The `user_agent` step's matcher against uap-core's own test cases (the `tests/test_ua.yaml`,
//! `test_os.yaml` and `test_device.yaml` of the same uap-core release as the embedded regexes,
//! as Debian's package `uap-core` installs them under /usr/share/uap-core; scripts/
//! ensure-test-deps installs it). Those files were made by uap-core's reference implementation
//! (JavaScript regexes); skiff runs the same regexes on Rust's `regex` engine in ASCII mode.
//! Every case must give the same family and version parts, so a regex that Rust reads
//! differently from the reference would show here.
//!
//! uap reads a group that matched the empty string as absent; Elasticsearch (and skiff) keep
//! it as an empty part (`Firefox/49.0` -> `49.0.`). The comparison maps empty parts to absent,
//! as the uap specification does; the step's own tests check Elasticsearch's form.

use std::path::Path;

use skiff_modules::user_agent::{Database, VersionedName};
use yaml_rust2::{Yaml, YamlLoader};

const DIR: &str = "/usr/share/uap-core/tests";

fn cases(file: &str) -> Vec<Yaml> {
    // The cases belong to one release of the regexes: the installed package must be the
    // release that is embedded.
    let installed = std::fs::read_to_string("/usr/share/uap-core/regexes.yaml")
        .unwrap_or_else(|e| panic!("uap-core's regexes.yaml: {e} (scripts/ensure-test-deps)"));
    assert!(
        installed == include_str!("../uap/regexes.yaml"),
        "the installed uap-core is not the release embedded in uap/regexes.yaml (see uap/README.md)"
    );
    let path = Path::new(DIR).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (install Debian's uap-core 0.16.0: scripts/ensure-test-deps)",
            path.display()
        )
    });
    let docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    docs.first()
        .and_then(|d| d["test_cases"].as_vec().cloned())
        .unwrap_or_else(|| panic!("{file}: no test_cases"))
}

fn text(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Integer(n) => Some(n.to_string()),
        Yaml::Real(r) => Some(r.clone()),
        _ => None,
    }
    .filter(|s| !s.is_empty())
}

/// `family` and the version parts the uap way: `Other` without a match, empty parts absent.
fn uap_form(v: &Option<VersionedName>, parts: usize) -> Vec<Option<String>> {
    let mut out = vec![Some(v.as_ref().map_or("Other".into(), |v| v.name.clone()))];
    for i in 0..parts {
        out.push(
            v.as_ref()
                .and_then(|v| v.parts[i].clone())
                .filter(|p| !p.is_empty()),
        );
    }
    out
}

/// Runs one file's cases; returns the mismatches.
fn check(
    file: &str,
    keys: &[&str],
    pick: fn(&skiff_modules::user_agent::Details) -> &Option<VersionedName>,
) -> (usize, Vec<String>) {
    let db = Database::embedded();
    let all = cases(file);
    let mut bad = Vec::new();
    for case in &all {
        let Some(ua) = case["user_agent_string"].as_str() else {
            bad.push(format!(
                "{file}: a case without user_agent_string: {case:?}"
            ));
            continue;
        };
        let want: Vec<Option<String>> = keys.iter().map(|k| text(&case[*k])).collect();
        let details = db.parse(ua);
        let got = uap_form(pick(&details), keys.len() - 1);
        if got != want {
            bad.push(format!("{file}: {ua:?}: expected {want:?}, got {got:?}"));
        }
    }
    (all.len(), bad)
}

/// Every case of one uap-core test file (at least `min` of them) parses as the file says.
fn all_match(
    file: &str,
    keys: &[&str],
    min: usize,
    pick: fn(&skiff_modules::user_agent::Details) -> &Option<VersionedName>,
) {
    let (n, bad) = check(file, keys, pick);
    assert!(n > min, "only {n} cases");
    assert!(
        bad.is_empty(),
        "{} of {n} differ:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn agents_match_uap_core_test_cases() {
    all_match(
        "test_ua.yaml",
        &["family", "major", "minor", "patch"],
        1000,
        |d| &d.agent,
    );
}

#[test]
fn operating_systems_match_uap_core_test_cases() {
    all_match(
        "test_os.yaml",
        &["family", "major", "minor", "patch", "patch_minor"],
        400,
        |d| &d.os,
    );
}

#[test]
fn devices_match_uap_core_test_cases() {
    all_match("test_device.yaml", &["family"], 10_000, |d| &d.device);
}
