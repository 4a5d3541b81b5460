#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::pattern::{Pattern, Trim};
use crate::testing::*;
use serde_json::{Value, json};

fn dissect(tok: &str, msg: &str) -> Result<Value, String> {
    let p = Pattern::parse(tok).map_err(|e| e.0)?;
    let pairs = p.dissect(msg, &Trim::default()).map_err(|e| e.0)?;
    Ok(Value::Object(pairs.into_iter().collect()))
}

/// The cases of libbeat's `dissect_tests.json` (and the Logstash dissect documentation they
/// come from): tokenizer, text, expected keys (`None`: must fail).
#[test]
fn libbeat_cases() {
    let cases: &[(&str, &str, Option<Value>)] = &[
        (
            r#"level=%{level} ts=%{timestamp} caller=%{caller} msg="%{message}""#,
            r#"level=info ts=2018-06-27T17:19:13.036579993Z caller=main.go:222 msg="Starting OK" version="(version=2.3.1)"}"#,
            Some(
                json!({"level": "info", "timestamp": "2018-06-27T17:19:13.036579993Z", "caller": "main.go:222", "message": "Starting OK"}),
            ),
        ),
        (
            "%{day}-%{month}-%{year} %{hour} %{severity} [%{thread_id}] %{origin} %{message}",
            "18-Apr-2018 06:53:20.411 INFO [http-nio-8080-exec-1] org.apache.Http11Processor.service Error parsing\n at x(y.java:1)",
            Some(
                json!({"day": "18", "month": "Apr", "year": "2018", "hour": "06:53:20.411", "severity": "INFO",
                "thread_id": "http-nio-8080-exec-1", "origin": "org.apache.Http11Processor.service",
                "message": "Error parsing\n at x(y.java:1)"}),
            ),
        ),
        ("/var/log/%{key}.log", "foobar", None),
        ("/var/log/%{key}.log", "/var/log/foobar", None),
        ("%{key}", "foobar", Some(json!({"key": "foobar"}))),
        (
            "%{key1} %{key2}",
            "foo bar",
            Some(json!({"key1": "foo", "key2": "bar"})),
        ),
        (
            "/var/%{key}/log",
            "/var/foobar/log",
            Some(json!({"key": "foobar"})),
        ),
        (
            "/var/%{key}",
            "/var/foobar/log",
            Some(json!({"key": "foobar/log"})),
        ),
        (
            "/var/%{key}/log/%{key1}",
            "/var/foobar/log/apache",
            Some(json!({"key": "foobar", "key1": "apache"})),
        ),
        (
            "/var/%{key}/log/%{key1}.log",
            "/var/foobar/log/apache.log",
            Some(json!({"key": "foobar", "key1": "apache"})),
        ),
        (
            "%{+key/3} %{+key/1} %{+key/2}",
            "1 2 3",
            Some(json!({"key": "2 3 1"})),
        ),
        (
            "%{key}-%{+key}-%{+key}",
            "1-2-3",
            Some(json!({"key": "1-2-3"})),
        ),
        (
            "%{key} %{&key}",
            "hello world",
            Some(json!({"key": "hello", "hello": "world"})),
        ),
        ("%{} %{key}", "hello world", Some(json!({"key": "world"}))),
        (
            "%{?key} %{&key}",
            "hello world",
            Some(json!({"hello": "world"})),
        ),
        (
            "%{*key} %{&key}",
            "hello world",
            Some(json!({"hello": "world"})),
        ),
        (
            "%{name},%{addr1},%{addr2},%{addr3},%{city},%{zip}",
            "Jane Doe,4321 Fifth Avenue,,,New York,87432",
            Some(
                json!({"name": "Jane Doe", "addr1": "4321 Fifth Avenue", "addr2": "", "addr3": "", "city": "New York", "zip": "87432"}),
            ),
        ),
        (
            "%{id} %{function->} %{server}",
            "00000043 ViewReceive     machine-321",
            Some(json!({"id": "00000043", "function": "ViewReceive", "server": "machine-321"})),
        ),
        (
            "%{id} %{function} %{server->} ",
            "00000043 ViewReceive machine-321    ",
            Some(json!({"id": "00000043", "function": "ViewReceive", "server": "machine-321"})),
        ),
        (
            "%{id->} %{function} %{server}",
            "00000043    ViewReceive machine-321",
            Some(json!({"id": "00000043", "function": "ViewReceive", "server": "machine-321"})),
        ),
        (
            "{%{a}}{%{b}} %{rest}",
            "{c}{d} anything",
            Some(json!({"a": "c", "b": "d", "rest": "anything"})),
        ),
        // Fixed lengths.
        (
            "%{a#3}%{b#2}%{c}",
            "abcdefg",
            Some(json!({"a": "abc", "b": "de", "c": "fg"})),
        ),
        ("%{a#3}", "abcd", None),
        // Types; a value that does not convert stays a string.
        (
            "%{a|integer} %{b|long} %{c|boolean} %{d|ip} %{e|double} %{f|integer}",
            "0x1F 9000000000 true ::1 1.5 x",
            Some(
                json!({"a": 31, "b": 9_000_000_000i64, "c": true, "d": "::1", "e": 1.5, "f": "x"}),
            ),
        ),
        ("%{?k} %{&k|integer}", "n 42", Some(json!({"n": 42}))),
        ("x", "x", None),
    ];
    for (tok, msg, want) in cases {
        let got = dissect(tok, msg);
        match want {
            Some(w) => assert_eq!(got.as_ref().ok(), Some(w), "{tok} on {msg}: {got:?}"),
            None => assert!(got.is_err(), "{tok} on {msg} should fail: {got:?}"),
        }
    }
}

#[test]
fn bad_tokenizers_are_refused_at_load() {
    for (tok, why) in [
        ("no fields", "has no `%{key}` field"),
        ("%{a|nope}", "unknown type"),
        ("%{a|}", "type is missing"),
        ("%{+&a}", "cannot be combined"),
        ("%{&a}", "needs a field naming the key"),
        ("%{+}", "key is empty"),
    ] {
        let yaml = format!("processors: [{{dissect: {{tokenizer: '{tok}'}}}}]");
        let e = build(&yaml).err().unwrap().to_string();
        assert!(e.contains(why), "{tok}: {e}");
        assert!(e.contains("t.yml:1"), "{tok}: {e}");
    }
}

/// The example of Filebeat's documentation of `dissect`.
#[test]
fn filebeat_doc_example() {
    let p = build(
        r#"
processors:
  - dissect:
      tokenizer: '"%{service.pid|integer} - %{service.name} - %{service.status}"'
      field: "message"
      target_prefix: ""
"#,
    )
    .unwrap();
    for (msg, pid, name, status) in [
        (
            r#""321 - App01 - WebServer is starting""#,
            321,
            "App01",
            "WebServer is starting",
        ),
        (
            r#""789 - App02 - Database is refreshing tables""#,
            789,
            "App02",
            "Database is refreshing tables",
        ),
    ] {
        let v = json(&run(&p, event(msg)).unwrap());
        assert_eq!(
            v["service"],
            json!({"pid": pid, "name": name, "status": status}),
            "{v}"
        );
        assert!(v.get("error").is_none());
    }
}

#[test]
fn processor_options() {
    // Default prefix `dissect`, default field `message`.
    let p = build("processors: [{dissect: {tokenizer: '%{a} %{b}'}}]").unwrap();
    let v = json(&run(&p, event("x y")).unwrap());
    assert_eq!(v["dissect"], json!({"a": "x", "b": "y"}));

    // No match: unchanged, flagged, error recorded; ignore_failure keeps the flag only.
    let v = json(&run(&p, event("xy")).unwrap());
    assert!(v.get("dissect").is_none());
    assert_eq!(v["log"]["flags"], json!(["dissect_parsing_error"]));
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("dissect: could not find delimiter"),
        "{v}"
    );
    let p =
        build("processors: [{dissect: {tokenizer: '%{a} %{b}', ignore_failure: true}}]").unwrap();
    let v = json(&run(&p, event("xy")).unwrap());
    assert_eq!(v["log"]["flags"], json!(["dissect_parsing_error"]));
    assert!(v.get("error").is_none(), "{v}");

    // Another field; a missing or non-string one is an error.
    let p = build("processors: [{dissect: {tokenizer: '/var/log/%{name}.log', field: log.file.path, target_prefix: f}}]").unwrap();
    assert_eq!(json(&run(&p, event("m")).unwrap())["f"]["name"], "a");
    let p = build("processors: [{dissect: {tokenizer: '%{a}', field: nope}}]").unwrap();
    assert_eq!(
        json(&run(&p, event("m")).unwrap())["error"]["message"],
        "dissect: no field `nope`"
    );
    let p = build("processors: [{dissect: {tokenizer: '%{a}', field: log.offset}}]").unwrap();
    assert_eq!(
        json(&run(&p, event("m")).unwrap())["error"]["message"],
        "dissect: field `log.offset` is not a string"
    );

    // An existing key: error and nothing written, unless overwrite_keys.
    let p = build("processors: [{dissect: {tokenizer: '%{new} %{host.name}', target_prefix: ''}}]")
        .unwrap();
    let v = json(&run(&p, event("a b")).unwrap());
    assert_eq!(v["host"]["name"], "web-1");
    assert!(v.get("new").is_none());
    assert_eq!(
        v["error"]["message"],
        "dissect: cannot override existing key `host.name`"
    );
    let p = build("processors: [{dissect: {tokenizer: '%{new} %{host.name}', target_prefix: '', overwrite_keys: true}}]").unwrap();
    let v = json(&run(&p, event("a b")).unwrap());
    assert_eq!(
        (v["new"].clone(), v["host"]["name"].clone()),
        (json!("a"), json!("b"))
    );

    // Trimming.
    for (mode, chars, want) in [
        ("none", " ", json!({"a": "  x ", "b": " y."})),
        ("left", " ", json!({"a": "x ", "b": "y."})),
        ("right", " .", json!({"a": "  x", "b": " y"})),
        ("all", " .", json!({"a": "x", "b": "y"})),
    ] {
        let p = build(&format!(
            "processors: [{{dissect: {{tokenizer: '%{{a}}|%{{b}}', trim_values: {mode}, trim_chars: '{chars}'}}}}]"
        ))
        .unwrap();
        assert_eq!(
            json(&run(&p, event("  x | y.")).unwrap())["dissect"],
            want,
            "{mode}"
        );
    }
    assert!(build("processors: [{dissect: {tokenizer: '%{a}', trim_values: both}}]").is_err());
}

mod fuzz {
    use super::super::pattern::{Pattern, Trim};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Any tokenizer and any text: an error or a result, never a panic.
        #[test]
        fn never_panics(tok in "([a-z ,.|/#>&*+?{}%-]|%\\{[a-z+&*?/#0-9|>-]{0,8}\\}){0,8}",
                        msg in "\\PC{0,40}", all in any::<bool>()) {
            if let Ok(p) = Pattern::parse(&tok) {
                let trim = Trim { left: all, right: all, chars: vec![' ', 'é'] };
                let _ = p.dissect(&msg, &trim);
            }
        }
    }
}
