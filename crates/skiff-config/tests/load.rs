//! Whole-configuration loading: a realistic filebeat.yml, several files,
//! `-E` overrides, env expansion, and hostile input.

// Helpers outside #[test] fns panic on purpose too.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::PathBuf;

use serde::Deserialize;
use skiff_config::{LoadOptions, Node, NodeValue, load, mask_secrets, parse_str};

const FILEBEAT_YML: &str = r#"
###################### Filebeat Configuration #########################
filebeat.inputs:
  - type: filestream
    id: app-logs
    enabled: true
    paths:
      - /var/log/app/*.log
      - /var/log/app/*.json
    parsers:
      - ndjson:
          target: ""
          overwrite_keys: true
    prospector.scanner.check_interval: 10s
    fields:
      service: checkout
    fields_under_root: true

  - type: filestream
    id: syslog
    enabled: false
    paths: ["/var/log/syslog"]
    close.on_state_change.inactive: 5m

filebeat.config.modules:
  path: ${path.config}/modules.d/*.yml
  reload.enabled: false

setup.template.settings:
  index.number_of_shards: 1
setup.kibana:
  host: "localhost:5601"

processors:
  - add_host_metadata:
      when.not.contains.tags: forwarded
  - add_cloud_metadata: ~
  - drop_fields:
      fields: ["agent.ephemeral_id", "ecs.version"]
      ignore_missing: true

output.elasticsearch:
  hosts: ["https://es1:9200", "https://es2:9200"]
  username: "elastic"
  password: "${ES_PASSWORD}"
  ssl.certificate_authorities: ["/etc/ca.pem"]
  worker: 2

logging.level: info
logging.to_files: true
logging.files:
  path: /var/log/skiff
  keepfiles: 7
http.enabled: true
http.port: ${HTTP_PORT:5066}
"#;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Input {
    #[serde(rename = "type")]
    kind: String,
    id: String,
    #[serde(default = "yes")]
    enabled: bool,
    paths: Vec<String>,
    #[serde(default)]
    parsers: Vec<serde_json::Value>,
    #[serde(default)]
    prospector: Option<serde_json::Value>,
    #[serde(default)]
    close: Option<serde_json::Value>,
    #[serde(default)]
    fields: std::collections::HashMap<String, String>,
    #[serde(default)]
    fields_under_root: bool,
}

fn yes() -> bool {
    true
}

fn env(name: &str) -> Option<String> {
    match name {
        "ES_PASSWORD" => Some("s3cret".into()),
        "path.config" => Some("/etc/skiff".into()),
        _ => None,
    }
}

fn write(dir: &tempfile::TempDir, name: &str, text: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(text).unwrap();
    path
}

#[test]
fn filebeat_yml_loads_and_inputs_deserialize() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "filebeat.yml", FILEBEAT_YML.as_bytes());
    let opts = LoadOptions {
        files: vec![file],
        ..Default::default()
    };
    let root = load(&opts, &env).unwrap();

    let inputs = root.get("filebeat.inputs").unwrap();
    assert_eq!(inputs.items().len(), 2);
    let parsed: Vec<Input> = inputs
        .items()
        .iter()
        .map(|n| n.deserialize().unwrap())
        .collect();
    assert_eq!(
        parsed[0].paths,
        vec!["/var/log/app/*.log", "/var/log/app/*.json"]
    );
    assert_eq!(parsed[0].fields["service"], "checkout");
    assert_eq!(
        parsed[0].prospector,
        Some(serde_json::json!({"scanner": {"check_interval": "10s"}}))
    );
    assert!(!parsed[1].enabled);
    assert!(!inputs.items()[1].is_enabled());
    assert!(inputs.items()[0].is_enabled());

    assert_eq!(
        root.get("filebeat.config.modules.path").unwrap().value,
        NodeValue::String("/etc/skiff/modules.d/*.yml".into())
    );
    assert_eq!(root.get("http.port").unwrap().value, NodeValue::Int(5066));
    assert_eq!(
        root.get("output.elasticsearch.password").unwrap().value,
        NodeValue::String("s3cret".into())
    );
    assert_eq!(
        root.get("processors.0.add_host_metadata.when.not.contains.tags")
            .unwrap()
            .value,
        NodeValue::String("forwarded".into())
    );
    assert_eq!(
        root.get("processors.1.add_cloud_metadata").unwrap().value,
        NodeValue::Null
    );
    assert_eq!(
        root.get("setup.template.settings.index.number_of_shards")
            .unwrap()
            .value,
        NodeValue::Int(1)
    );
    let hosts = root.get("output.elasticsearch.hosts.1").unwrap();
    assert_eq!(hosts.path, "output.elasticsearch.hosts.1");
    let hosts_line = FILEBEAT_YML
        .lines()
        .position(|l| l.contains("https://es1"))
        .unwrap()
        + 1;
    assert_eq!(hosts.mark.line, hosts_line);
    assert!(hosts.mark.column > 10);
    assert_eq!(
        root.keys().collect::<Vec<_>>(),
        vec![
            "filebeat",
            "setup",
            "processors",
            "output",
            "logging",
            "http"
        ]
    );

    let mut export = root.clone();
    mask_secrets(&mut export);
    assert_eq!(
        export.to_json()["output"]["elasticsearch"]["password"],
        "xxxxx"
    );
}

#[test]
fn missing_env_is_reported_with_key() {
    let opts = LoadOptions {
        default_yaml: FILEBEAT_YML,
        ..Default::default()
    };
    let errs = load(&opts, &|_| None).unwrap_err();
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "filebeat.config.modules.path",
            "output.elasticsearch.password"
        ]
    );
    assert!(errs.0[1].message.contains("`ES_PASSWORD`"), "{errs}");
    assert_eq!(errs.0[1].mark.file.as_deref(), Some("<default config>"));
}

#[test]
fn files_merge_in_order_and_overrides_win() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(
        &dir,
        "a.yml",
        b"output.file:\n  path: /a\n  codec.json.pretty: true\ntags: [x, y]\nfilebeat.inputs:\n  - {type: log, enabled: true}\n",
    );
    let b = write(&dir, "b.yml", b"output.file.filename: out\ntags: [z]\n");
    let opts = LoadOptions {
        files: vec![a, b],
        overrides: vec![
            "output.file.path=/override".into(),
            "tags=[a,b]".into(),
            "http.port=5067".into(),
            "new.nested.key=true".into(),
            "filebeat.inputs.0.enabled=false".into(),
            "logging.level=${LEVEL:debug}".into(),
        ],
        default_yaml: "ignored: true\n",
        strict_perms: false,
        ..LoadOptions::default()
    };
    let root = load(&opts, &|_| None).unwrap();
    assert_eq!(
        root.to_json(),
        serde_json::json!({
            "output": {"file": {"path": "/override", "codec": {"json": {"pretty": true}}, "filename": "out"}},
            "tags": ["a", "b"],
            "filebeat": {"inputs": [{"type": "log", "enabled": false}]},
            "http": {"port": 5067},
            "new": {"nested": {"key": true}},
            "logging": {"level": "debug"},
        })
    );
    let p = root.get("output.file.path").unwrap();
    assert_eq!(p.mark.file.as_deref(), Some("-E"));
    assert_eq!(p.mark.line, 0);
    assert_eq!(root.get("tags.1").unwrap().path, "tags.1");
    assert_eq!(
        root.get("output.file.filename")
            .unwrap()
            .mark
            .file
            .as_deref()
            .map(|f| f.ends_with("b.yml")),
        Some(true)
    );
}

#[test]
fn all_problems_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(&dir, "bad.yml", b"a: 1\na: 2\nb.c: 1\nb:\n  c: 2\n");
    let opts = LoadOptions {
        files: vec![bad, dir.path().join("missing.yml")],
        overrides: vec!["no-equals-sign".into()],
        ..Default::default()
    };
    let errs = load(&opts, &|_| None).unwrap_err();
    assert_eq!(errs.len(), 4, "{errs}");
    let text = errs.to_string();
    assert!(
        text.contains("key `a` is set twice (at line 1 and at line 2)"),
        "{text}"
    );
    assert!(
        text.contains("key `b.c` is set twice (at line 3 and at line 5)"),
        "{text}"
    );
    assert!(text.contains("missing.yml: cannot read the file"), "{text}");
    assert!(text.contains("expected `key=value`"), "{text}");
}

#[test]
fn invalid_utf8_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(&dir, "bin.yml", b"a: 1\nb: \xff\xfe\n");
    let errs = load(
        &LoadOptions {
            files: vec![f],
            ..Default::default()
        },
        &|_| None,
    )
    .unwrap_err();
    let e = &errs.0[0];
    assert!(e.message.contains("not valid UTF-8"), "{e}");
    assert_eq!((e.mark.line, e.mark.column), (2, 4));
}

#[test]
fn hostile_input_is_refused_without_panicking() {
    // 200 levels of block nesting.
    let mut deep = String::new();
    for i in 0..200 {
        deep.push_str(&" ".repeat(i * 2));
        deep.push_str("k:\n");
    }
    let e = parse_str(&deep, None).unwrap_err();
    assert!(e.to_string().contains("nested more than 64 levels"), "{e}");

    // 200 levels of flow nesting, and far more than the scanner allows.
    for n in [200, 100_000] {
        let flow = format!("a: {}{}", "[".repeat(n), "]".repeat(n));
        assert!(parse_str(&flow, None).is_err());
    }

    // Deep dotted keys.
    let dotted = format!("{}: 1\n", vec!["k"; 200].join("."));
    let e = parse_str(&dotted, None).unwrap_err();
    assert!(e.to_string().contains("nested more than 64 levels"), "{e}");

    // Billion laughs.
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for w in names.windows(2) {
        let refs = vec![format!("*{}", w[0]); 9].join(",");
        bomb.push_str(&format!("{}: &{} [{refs}]\n", w[1], w[1]));
    }
    let e = parse_str(&bomb, None).unwrap_err();
    assert!(e.to_string().contains("alias"), "{e}");

    // Tabs, garbage, non-map documents, unknown aliases.
    let e = parse_str("a:\n\tb: 1\n", Some("t.yml")).unwrap_err();
    assert!(e.to_string().contains("tabs"), "{e}");
    assert!(e.0[0].mark.line >= 2, "{e}");
    for junk in [
        "\u{0}\u{1}\u{2}",
        "}{][",
        "a: [1, 2",
        "a: 'unterminated",
        "a: *nope",
        "just a string",
        "- 1\n- 2",
        ": : :",
        "? [a]\n: b",
        "&x a: *x",
        "a: !!binary ~~~",
        "%YAML 9.9\n---\na: 1",
    ] {
        let _ = parse_str(junk, None);
    }
    assert!(parse_str("just a string", None).is_err());
    assert!(parse_str("a: *nope", None).is_err());
}

#[test]
fn node_helpers_after_load() {
    let mut root: Node = parse_str(
        "output.console:\n  enabled: false\noutput.file: {path: x}\n",
        None,
    )
    .unwrap();
    assert!(!root.get("output.console").unwrap().is_enabled());
    assert!(root.get("output.file").unwrap().is_enabled());
    let removed = root.remove("output").unwrap();
    assert_eq!(removed.keys().collect::<Vec<_>>(), vec!["console", "file"]);
    assert!(root.get("output").is_none());
    root.get_mut("")
        .unwrap()
        .insert("a.b", Node::default(), &Default::default());
    assert_eq!(root.get("a.b").unwrap().path, "a.b");
}

#[test]
fn many_keys_cost_linear_time() {
    // 50k top-level keys and 50k dotted keys under one parent: quadratic
    // merging would take minutes here.
    let mut yaml = String::new();
    for i in 0..50_000 {
        yaml.push_str(&format!("k{i}: {i}\na.k{i}: {i}\n"));
    }
    let start = std::time::Instant::now();
    let root = parse_str(&yaml, None).unwrap();
    assert_eq!(root.keys().count(), 50_001);
    assert_eq!(root.get("a").unwrap().keys().count(), 50_000);
    assert_eq!(root.get("a.k49999").unwrap().value, NodeValue::Int(49_999));
    let mut merged = root.clone();
    skiff_config::merge(&mut merged, root);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
}
