//! Loading real filebeat.yml files: unknown keys as warnings (errors with `strict`), every
//! problem of a struct in one pass, single values for lists, `${data.*}` left alone, and
//! defaults below the files / forced values above them.

#![allow(clippy::unwrap_used)]

use serde::Deserialize;
use skiff_config::{ConfigError, Diagnostics, LoadOptions, Mark, Node, NodeValue, collect};

fn doc(yaml: &str) -> Node {
    skiff_config::parse_str(yaml, Some("filebeat.yml")).unwrap()
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Input {
    paths: Vec<String>,
    #[serde(default)]
    buffer_size: Option<u32>,
    #[serde(default)]
    tail_files: bool,
    #[serde(default)]
    close: Close,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Close {
    #[serde(default)]
    inactive: Option<u32>,
}

fn read<T: serde::de::DeserializeOwned>(
    node: &Node,
    strict: bool,
) -> (Result<T, ConfigError>, Diagnostics) {
    collect(strict, || node.deserialize::<T>())
}

#[test]
fn unknown_keys_are_warnings_with_place_and_suggestion() {
    let root = doc("paths: [/a]\nharvester_buffer_size: 16384\nclose:\n  inactiv: 5\n");
    let (got, diag) = read::<Input>(&root, false);
    assert_eq!(
        got.unwrap(),
        Input {
            paths: vec!["/a".into()],
            buffer_size: None,
            tail_files: false,
            close: Close::default(),
        }
    );
    let text: Vec<String> = diag.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        text,
        vec![
            "filebeat.yml:2:24: harvester_buffer_size: unknown key `harvester_buffer_size` is ignored (Filebeat ignores it too) (did you mean `buffer_size`?)",
            "filebeat.yml:4:12: close.inactiv: unknown key `inactiv` is ignored (Filebeat ignores it too) (did you mean `inactive`?)",
        ]
    );
    assert!(diag.errors.is_empty());
}

#[test]
fn strict_makes_them_errors_and_reports_all() {
    let root = doc("paths: [/a]\nharvester_buffer_size: 1\nclose:\n  inactiv: 5\n");
    let (got, diag) = read::<Input>(&root, true);
    let first = got.unwrap_err();
    assert_eq!(first.path, "harvester_buffer_size");
    assert_eq!(first.suggestion.as_deref(), Some("buffer_size"));
    assert_eq!(diag.errors.len(), 1, "{:?}", diag.errors);
    assert_eq!(diag.errors[0].path, "close.inactiv");
    assert!(diag.warnings.is_empty());
}

#[test]
fn every_problem_of_a_map_in_one_pass() {
    // Three bad values in one map and one in a nested map: all four are reported, and the
    // missing `paths` is not hidden by them.
    let root = doc("buffer_size: big\ntail_files: maybe\nclose: {inactive: soon}\nbogus: 1\n");
    let (got, diag) = read::<Input>(&root, false);
    let first = got.unwrap_err();
    let mut paths: Vec<String> = std::iter::once(first.path.clone())
        .chain(diag.errors.iter().map(|e| e.path.clone()))
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        vec!["buffer_size", "close.inactive", "paths", "tail_files"],
        "first: {first}; rest: {:?}",
        diag.errors
    );
    assert_eq!(diag.warnings.len(), 1);
    assert_eq!(diag.warnings[0].path, "bogus");
}

#[test]
fn a_removed_bad_value_does_not_also_count_as_missing() {
    let root = doc("paths: {not: a list}\n");
    let (got, diag) = read::<Input>(&root, false);
    let e = got.unwrap_err();
    assert_eq!(e.path, "paths");
    assert!(e.message.contains("expected a list"), "{e}");
    assert!(diag.errors.is_empty(), "{:?}", diag.errors);
}

#[test]
fn without_a_collector_the_library_default_is_strict() {
    let root = doc("paths: [/a]\nbogus: 1\n");
    let e = root.deserialize::<Input>().unwrap_err();
    assert_eq!(e.path, "bogus");
}

#[test]
fn single_values_are_lists_of_one() {
    let root = doc("paths: /var/log/*.log\n");
    let (got, _) = read::<Input>(&root, false);
    assert_eq!(got.unwrap().paths, vec!["/var/log/*.log".to_string()]);
    let root = doc("v: 5\n");
    let v: Vec<u16> = root.get("v").unwrap().deserialize().unwrap();
    assert_eq!(v, vec![5]);
    // A map is still not a list.
    let root = doc("v: {a: 1}\n");
    assert!(root.get("v").unwrap().deserialize::<Vec<u16>>().is_err());
}

#[test]
fn data_placeholders_are_left_for_autodiscover() {
    let mut root = doc(
        "t:\n  paths: ['/var/log/containers/*${data.kubernetes.container.id}.log']\n  x: ${data.port}\n",
    );
    skiff_config::expand_env(&mut root, &|_| None).unwrap();
    assert_eq!(
        root.get("t.paths.0").unwrap().value,
        NodeValue::String("/var/log/containers/*${data.kubernetes.container.id}.log".into())
    );
    assert_eq!(
        root.get("t.x").unwrap().value,
        NodeValue::String("${data.port}".into())
    );
    // Other unset names still fail.
    let mut root = doc("x: ${datax.port}\n");
    assert!(skiff_config::expand_env(&mut root, &|_| None).is_err());
}

#[test]
fn defaults_sit_below_the_files_and_forced_values_above() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("filebeat.yml");
    std::fs::write(
        &file,
        "path.home: /opt/fb\npath.logs: /var/log/fb\nout: ${path.config}/x\ndata: ${path.data}\nlogs: ${path.logs}\n",
    )
    .unwrap();
    let s = |v: &str| Node::new(NodeValue::String(v.into()), Mark::none());
    let opts = LoadOptions {
        files: vec![file],
        defaults: vec![
            ("path.home".into(), s(".")),
            ("path.config".into(), s("${path.home}")),
            ("path.data".into(), s("${path.home}/data")),
            ("path.logs".into(), s("${path.home}/logs")),
        ],
        forced: vec![("path.data".into(), s("/forced/data"))],
        ..LoadOptions::default()
    };
    let root = skiff_config::load(&opts, &|_| None).unwrap();
    let get = |k: &str| root.get(k).unwrap().value.clone();
    assert_eq!(get("out"), NodeValue::String("/opt/fb/x".into()));
    assert_eq!(get("data"), NodeValue::String("/forced/data".into()));
    assert_eq!(get("logs"), NodeValue::String("/var/log/fb".into()));
}

#[test]
fn input_files_are_lists() {
    let list = skiff_config::parse_list_str(
        "- type: filestream\n  id: a\n  prospector.scanner.check_interval: 1s\n",
        Some("a.yml"),
    )
    .unwrap();
    assert_eq!(
        list.get("0.prospector.scanner.check_interval")
            .unwrap()
            .path,
        "0.prospector.scanner.check_interval"
    );
    let one = skiff_config::parse_list_str("type: stdin\n", None).unwrap();
    assert_eq!(one.items().len(), 1);
    assert!(
        skiff_config::parse_list_str("", None)
            .unwrap()
            .items()
            .is_empty()
    );
}

#[test]
fn the_search_for_problems_is_bounded() {
    // 150 unknown keys and 150 bad values: the call ends, and says there were too many.
    let mut yaml = String::from("paths: [/a]\n");
    for i in 0..150 {
        yaml.push_str(&format!("unknown_{i}: 1\n"));
    }
    let root = doc(&yaml);
    let (got, diag) = read::<Input>(&root, false);
    let e = got.unwrap_err();
    assert!(e.message.contains("more than 100 problems"), "{e}");
    assert_eq!(diag.warnings.len(), skiff_config::MAX_PROBLEMS);
    let many: Vec<String> = (0..150).map(|i| format!("x{i}")).collect();
    let root = doc(&format!("v: [{}]\n", many.join(", ")));
    let (got, _) = collect(false, || root.get("v").unwrap().deserialize::<Vec<u8>>());
    // A bad list item stops the search at the first one.
    assert_eq!(got.unwrap_err().path, "v.0");
}
