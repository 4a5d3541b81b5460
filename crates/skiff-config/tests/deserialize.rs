//! Deserializing nodes into typed structs: lenient coercion, serde's data
//! model, and errors with full paths, marks and suggestions.

// Helpers outside #[test] fns panic on purpose too.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use skiff_config::{ByteSize, ConfigError, Duration, Node, parse_str};

fn doc(yaml: &str) -> Node {
    parse_str(yaml, Some("filebeat.yml")).unwrap()
}

fn err<T: serde::de::DeserializeOwned + std::fmt::Debug>(node: &Node) -> ConfigError {
    node.deserialize::<T>().unwrap_err()
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct FileOutput {
    path: String,
    #[serde(default)]
    filename: Option<String>,
    #[serde(default)]
    rotate_every_kb: Option<u32>,
}

#[derive(Debug, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
struct Ssl {
    enabled: bool,
    certificate_authorities: Vec<String>,
    verification_mode: Option<Verification>,
}

#[derive(Debug, Deserialize, PartialEq, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Verification {
    Full,
    Strict,
    None,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct EsOutput {
    hosts: Vec<String>,
    #[serde(default)]
    ssl: Ssl,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    timeout: Option<Duration>,
    #[serde(default)]
    bulk_max_size: Option<ByteSize>,
}

#[test]
fn typo_gets_path_line_and_suggestion() {
    let root = doc("output.file:\n  pth: /tmp/out\n");
    let e = err::<FileOutput>(root.get("output.file").unwrap());
    assert_eq!(e.path, "output.file.pth");
    assert_eq!(e.mark.line, 2);
    assert_eq!(e.mark.file.as_deref(), Some("filebeat.yml"));
    assert_eq!(e.suggestion.as_deref(), Some("path"));
    assert_eq!(e.message, "unknown key `pth`");
    assert_eq!(
        e.to_string(),
        "filebeat.yml:2:8: output.file.pth: unknown key `pth` (did you mean `path`?)"
    );
}

#[test]
fn tls_suggests_ssl() {
    let root = doc("output:\n  elasticsearch:\n    hosts: [a]\n    tls:\n      enabled: true\n");
    let e = err::<EsOutput>(root.get("output.elasticsearch").unwrap());
    assert_eq!(e.path, "output.elasticsearch.tls");
    assert_eq!(e.mark.line, 4);
    assert_eq!(e.suggestion.as_deref(), Some("ssl"));
}

#[test]
fn missing_field_points_at_parent() {
    let root = doc("output:\n  file:\n    filename: x\n");
    let e = err::<FileOutput>(root.get("output.file").unwrap());
    assert_eq!(e.path, "output.file.path");
    assert_eq!(e.message, "missing required key `path`");
    assert_eq!(e.mark.line, 2);
}

#[test]
fn wrong_types_in_plain_words() {
    let root = doc("output.elasticsearch:\n  hosts: [a]\n  port: abc\n");
    let e = err::<EsOutput>(root.get("output.elasticsearch").unwrap());
    assert_eq!(e.path, "output.elasticsearch.port");
    assert_eq!(e.message, "expected a number, found the string \"abc\"");
    assert_eq!((e.mark.line, e.mark.column), (3, 9));

    let root = doc("output.elasticsearch:\n  hosts: [a]\n  port: 70000\n");
    let e = err::<EsOutput>(root.get("output.elasticsearch").unwrap());
    assert_eq!(e.message, "value 70000 is out of range for this key (u16)");

    // A single value where a list is expected is a list of one (as in Filebeat); a map is not.
    let root = doc("output.elasticsearch:\n  hosts: http://a:9200\n");
    let ok: EsOutput = root
        .get("output.elasticsearch")
        .unwrap()
        .deserialize()
        .unwrap();
    assert_eq!(ok.hosts, vec!["http://a:9200".to_string()]);
    let root = doc("output.elasticsearch:\n  hosts: {a: 1}\n");
    let e = err::<EsOutput>(root.get("output.elasticsearch").unwrap());
    assert_eq!(e.path, "output.elasticsearch.hosts");
    assert!(e.message.starts_with("expected a list, found a map"), "{e}");

    let root = doc("output.elasticsearch:\n  hosts: [a]\n  ssl.verification_mode: fulll\n");
    let e = err::<EsOutput>(root.get("output.elasticsearch").unwrap());
    assert_eq!(e.path, "output.elasticsearch.ssl.verification_mode");
    assert_eq!(e.suggestion.as_deref(), Some("full"));
    assert!(e.message.contains("unknown value `fulll`"), "{e}");

    let root = doc("output.elasticsearch:\n  hosts: [a]\n  timeout: 10 parsecs\n");
    let e = err::<EsOutput>(root.get("output.elasticsearch").unwrap());
    assert_eq!(e.path, "output.elasticsearch.timeout");
    assert!(e.message.contains("unknown unit"), "{e}");
    assert_eq!(e.mark.line, 3);
}

#[test]
fn lenient_coercion() {
    let root = doc(concat!(
        "hosts: [9200, 'b']\n",
        "port: '5066'\n",
        "timeout: 90\n",
        "bulk_max_size: 10MiB\n",
        "ssl:\n  enabled: 'yes'\n  verification_mode: none\n",
    ));
    let es: EsOutput = root.deserialize().unwrap();
    assert_eq!(es.hosts, vec!["9200", "b"]);
    assert_eq!(es.port, Some(5066));
    assert!(es.ssl.enabled);
    assert_eq!(es.ssl.verification_mode, Some(Verification::None));
    assert_eq!(
        es.timeout,
        Some(Duration(std::time::Duration::from_secs(90)))
    );
    assert_eq!(es.bulk_max_size, Some(ByteSize(10 << 20)));
    let f: f64 = doc("x: 3\n").get("x").unwrap().deserialize().unwrap();
    assert_eq!(f, 3.0);
}

#[test]
fn sequence_items_report_index_paths() {
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Input {
        #[serde(rename = "type")]
        kind: String,
        paths: Vec<String>,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Fb {
        inputs: Vec<Input>,
    }
    let root =
        doc("filebeat.inputs:\n  - type: log\n    paths: [a]\n  - type: log\n    path: [b]\n");
    let e = err::<Fb>(root.get("filebeat").unwrap());
    assert_eq!(e.path, "filebeat.inputs.1.path");
    assert_eq!(e.mark.line, 5);
    assert_eq!(e.suggestion.as_deref(), Some("paths"));

    let root = doc("filebeat.inputs:\n  - type: log\n    paths: [a]\n  - type: log\n");
    let e = err::<Input>(root.get("filebeat.inputs.1").unwrap());
    assert_eq!(e.path, "filebeat.inputs.1.paths");
    assert_eq!(e.message, "missing required key `paths`");
    // deserialize_at: a node moved elsewhere still reports a full path.
    let moved = root.get("filebeat.inputs.1").unwrap().clone();
    let e = moved.deserialize_at::<Input>("somewhere.else").unwrap_err();
    assert_eq!(e.path, "somewhere.else.paths");
}

#[test]
fn serde_data_model() {
    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Codec {
        Json { pretty: bool },
        Format(String),
        Lines,
    }
    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(untagged)]
    enum HostOrHosts {
        One(String),
        Many(Vec<String>),
    }
    #[derive(Debug, Deserialize, PartialEq)]
    struct Port(u16);
    #[derive(Debug, Deserialize, PartialEq)]
    struct All {
        codecs: Vec<Codec>,
        h1: HostOrHosts,
        h2: HostOrHosts,
        fields: HashMap<String, serde_json::Value>,
        ordered: BTreeMap<u16, String>,
        pair: (String, i32),
        port: Port,
        nothing: Option<String>,
        unit: (),
        ch: char,
    }
    let root = doc(concat!(
        "codecs:\n  - json: {pretty: true}\n  - format: '%{[message]}'\n  - lines\n",
        "h1: a\nh2: [a, b]\n",
        "fields: {env: prod, n: 1, l: [true, 1.5, ~]}\n",
        "ordered: {2: b, 1: a}\n",
        "pair: [x, -3]\nport: 5066\nnothing:\nunit: ~\nch: c\n",
    ));
    let all: All = root.deserialize().unwrap();
    assert_eq!(
        all.codecs,
        vec![
            Codec::Json { pretty: true },
            Codec::Format("%{[message]}".into()),
            Codec::Lines
        ]
    );
    assert_eq!(all.h1, HostOrHosts::One("a".into()));
    assert_eq!(all.h2, HostOrHosts::Many(vec!["a".into(), "b".into()]));
    assert_eq!(all.fields["l"], serde_json::json!([true, 1.5, null]));
    assert_eq!(all.ordered.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(all.pair, ("x".into(), -3));
    assert_eq!(all.port, Port(5066));
    assert_eq!(all.nothing, None);

    let e = doc("pair: [x, 1, 2]\n")
        .get("pair")
        .unwrap()
        .deserialize::<(String, i32)>()
        .unwrap_err();
    assert!(e.message.contains("2 items"), "{e}");
    let e = doc("c: {json: {pretty: maybe}}\n")
        .get("c")
        .unwrap()
        .deserialize::<Codec>()
        .unwrap_err();
    assert_eq!(e.path, "c.json.pretty");
    assert!(e.message.contains("`true` or `false`"), "{e}");
    // The whole tree round-trips through serde_json::Value.
    let v: serde_json::Value = root.deserialize().unwrap();
    assert_eq!(v, root.to_json());
}

#[test]
fn secrets_are_not_echoed_in_errors() {
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Out {
        password: u32,
    }
    let node = skiff_config::parse_str("password: hunter2\n", Some("s.yml")).unwrap();
    let err = node.deserialize::<Out>().unwrap_err().to_string();
    assert!(!err.contains("hunter2"), "{err}");
    assert!(err.contains("password"), "{err}");
}
