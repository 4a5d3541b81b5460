#![allow(clippy::unwrap_used, clippy::expect_used)]
use crate::testing::*;
use serde_json::json;

fn script(body: &str, extra: &str) -> String {
    let indented: String = body.lines().map(|l| format!("        {l}\n")).collect();
    format!("processors:\n  - script:\n      lang: javascript\n{extra}      source: |\n{indented}")
}

/// The examples of Filebeat's documentation of the `script` processor.
#[test]
fn filebeat_doc_examples() {
    // Tag.
    let p = build(&script(
        "function process(event) {\n    event.Tag(\"js\");\n}",
        "      id: my_filter\n",
    ))
    .unwrap();
    assert_eq!(
        json(&run(&p, event("m")).unwrap())["tags"],
        json!(["t1", "js"])
    );
    // params + register + Cancel.
    let src = "var params = {threshold: 42};\nfunction register(scriptParams) {\n    params = scriptParams;\n}\nfunction process(event) {\n    if (event.Get(\"severity\") < params.threshold) {\n        event.Cancel();\n    }\n}";
    let p = build(&script(src, "      params:\n        threshold: 15\n")).unwrap();
    for (sev, kept) in [(10, false), (15, true), (20, true)] {
        let mut ev = event("m");
        ev.insert("severity", json!(sev));
        assert_eq!(run(&p, ev).is_some(), kept, "severity {sev}");
    }
    // test() runs at load; a failing one refuses the configuration.
    let src = "function process(event) {\n    if (event.Get(\"event.code\") === 1102) {\n        event.Put(\"event.action\", \"cleared\");\n    }\n}\nfunction test() {\n    var event = new Event({event: {code: 1102}});\n    process(event);\n    if (event.Get(\"event.action\") !== \"cleared\") {\n        throw \"expected event.action === cleared\";\n    }\n}";
    let p = build(&script(src, "")).unwrap();
    let mut ev = event("m");
    ev.insert("event.code", json!(1102));
    assert_eq!(json(&run(&p, ev).unwrap())["event"]["action"], "cleared");
    let bad = src.replace("\"cleared\");", "\"nope\");");
    let e = build(&script(&bad, "")).err().unwrap().to_string();
    assert!(
        e.contains("test() failed") && e.contains("expected event.action === cleared"),
        "{e}"
    );
}

/// Every method of the event API, as Filebeat's `beatevent_v0` documents it.
#[test]
fn event_api() {
    let src = r#"function process(e) {
  e.Put("r.get_msg", e.Get("message"));
  e.Put("r.get_missing", e.Get("no.such"));
  e.Put("r.get_nested", e.Get("host.name"));
  e.Put("r.put_old", e.Put("host.name", "changed"));
  e.Put("r.put_new_old", e.Put("new.deep.key", 1));
  var threw = false;
  try { e.Put("message.x", 1); } catch (err) { threw = true; }
  e.Put("r.put_through_string_throws", threw);
  e.Put("r.rename_ok", e.Rename("fields.env", "environment"));
  e.Put("r.rename_target_exists", e.Rename("input.type", "host"));
  e.Put("r.rename_missing", e.Rename("nope", "x"));
  e.Put("r.delete_ok", e.Delete("log.file.path"));
  e.Put("r.delete_missing", e.Delete("nope"));
  e.Tag("a"); e.Tag("a"); e.Tag("t1");
  e.AppendTo("error.list", "x");
  e.AppendTo("error.list", "y");
  e.AppendTo("error.list", "y");
  e.Put("r.all_is_object", typeof e.Get() === "object");
  e.Put("@metadata.pipeline", "p1");
}"#;
    let p = build(&script(src, "")).unwrap();
    let ev = run(&p, event("hello")).unwrap();
    let v = json(&ev);
    assert_eq!(
        v["r"],
        json!({
            "get_msg": "hello", "get_missing": null, "get_nested": "web-1", "put_old": "web-1",
            "put_new_old": null, "put_through_string_throws": true, "rename_ok": true,
            "rename_target_exists": false, "rename_missing": false, "delete_ok": true,
            "delete_missing": false, "all_is_object": true
        })
    );
    assert_eq!(v["host"]["name"], "changed");
    assert_eq!(v["new"]["deep"]["key"], 1);
    assert_eq!(v["environment"], "prod");
    assert!(v["fields"].get("env").is_none());
    assert!(v["log"]["file"].get("path").is_none(), "{v}");
    assert_eq!(v["log"]["offset"], 7);
    assert_eq!(v["tags"], json!(["t1", "a"]));
    assert_eq!(v["error"]["list"], json!(["x", "y"]));
    assert_eq!(v["message"], "hello");
    assert_eq!(ev.get("@metadata.pipeline").unwrap().as_str(), Some("p1"));
}

#[test]
fn untouched_shared_fields_stay_shared() {
    let p = build(&script("function process(e) { e.Put(\"x\", 1); }", "")).unwrap();
    let a = event("a");
    let shared = a.shared.clone();
    let out = run(&p, a).unwrap();
    assert!(std::sync::Arc::ptr_eq(&shared, &out.shared));
    assert_eq!(json(&out)["x"], 1);
    assert_eq!(json(&out)["message"], "a");
}

#[test]
fn exceptions_and_timeouts_tag_the_event() {
    let p = build(&script(
        "function process(e) { e.Put(\"half\", 1); throw new Error(\"boom\"); }",
        "",
    ))
    .unwrap();
    let v = json(&run(&p, event("m")).unwrap());
    assert_eq!(v["tags"], json!(["t1", "_js_exception"]));
    assert!(
        v.get("half").is_none(),
        "changes of a failed call are not kept: {v}"
    );
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("script: failed in process function") && msg.contains("boom"),
        "{msg}"
    );

    // An endless loop is interrupted by the timeout, and the processor still works after it.
    let p = build(&script(
        "function process(e) { if (e.Get(\"message\") === \"loop\") { while (true) {} } e.Tag(\"ok\"); }",
        "      timeout: 50ms\n      tag_on_exception: js_timeout\n      id: looper\n",
    ))
    .unwrap();
    let v = json(&run(&p, event("loop")).unwrap());
    assert_eq!(v["tags"], json!(["t1", "js_timeout"]));
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("script looper: failed in process function: timed out"),
        "{msg}"
    );
    let v = json(&run(&p, event("fine")).unwrap());
    assert_eq!(v["tags"], json!(["t1", "ok"]));

    // Runaway memory and recursion end in an exception, not a crash.
    let p = build(&script(
        "function f(n) { return f(n + 1) + 1; }\nfunction process(e) { if (e.Get(\"message\") === \"deep\") f(0); else { var a = []; while (true) a.push(\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\" + a.length); } }",
        "",
    ))
    .unwrap();
    for m in ["deep", "big"] {
        let v = json(&run(&p, event(m)).unwrap());
        assert_eq!(v["tags"], json!(["t1", "_js_exception"]), "{m}: {v}");
    }
}

#[test]
fn no_file_or_network_access() {
    // No std/os modules, no require, no module loader: the names are simply not there.
    let src = "function process(e) {\n  e.Put(\"types\", [typeof require, typeof std, typeof os, typeof fetch, typeof XMLHttpRequest, typeof process]);\n  var imported = \"no\";\n  try { eval(\"import('os')\"); } catch (err) { imported = \"threw\"; }\n  e.Put(\"import\", imported);\n}";
    let p = build(&script(src, "")).unwrap();
    let v = json(&run(&p, event("m")).unwrap());
    assert_eq!(
        v["types"],
        json!([
            "undefined",
            "undefined",
            "undefined",
            "undefined",
            "undefined",
            "function"
        ])
    );
}

#[test]
fn files_params_and_config_errors() {
    let dir = std::env::temp_dir().join(format!("skiff-script-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("js")).unwrap();
    std::fs::write(
        dir.join("js/a.js"),
        "function helper(e) { e.Tag(\"from_a\"); }",
    )
    .unwrap();
    std::fs::write(
        dir.join("js/b.js"),
        "function process(e) { helper(e); e.Tag(\"from_b\"); }",
    )
    .unwrap();
    let mut ctx = ctx();
    ctx.paths.config = dir.clone();
    let root = skiff_config::parse_str(
        "processors: [{script: {lang: js, file: 'js/*.js'}}]",
        Some("t.yml"),
    )
    .unwrap();
    let p = crate::build_list(root.get("processors"), &ctx).unwrap();
    assert_eq!(
        json(&run(&p, event("m")).unwrap())["tags"],
        json!(["t1", "from_a", "from_b"])
    );
    let root = skiff_config::parse_str(
        &format!(
            "processors: [{{script: {{lang: js, files: ['{}/js/a.js', js/b.js]}}}}]",
            dir.display()
        ),
        Some("t.yml"),
    )
    .unwrap();
    assert!(crate::build_list(root.get("processors"), &ctx).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();

    for (yaml, why) in [
        (
            "processors: [{script: {lang: lua, source: 'x'}}]",
            "use `javascript`",
        ),
        (
            "processors: [{script: {lang: js}}]",
            "needs `source`, `file` or `files`",
        ),
        (
            "processors: [{script: {lang: js, source: 'function nope() {}'}}]",
            "no `process(event)` function",
        ),
        (
            "processors: [{script: {lang: js, source: 'function process(e) {', id: s1}}]",
            "script s1: the script does not load",
        ),
        (
            "processors: [{script: {lang: js, source: 'function process(e) {}', params: {a: 1}}}]",
            "no `register(params)`",
        ),
        (
            "processors: [{script: {lang: js, file: /nonexistent/x.js}}]",
            "no script file matches",
        ),
    ] {
        let e = build(yaml)
            .err()
            .unwrap_or_else(|| panic!("{yaml} should fail"))
            .to_string();
        assert!(e.contains(why), "{yaml}: {e}");
    }
}

#[test]
fn pool_serves_threads_in_parallel() {
    let p = build(&script(
        "var n = 0;\nfunction process(e) { n++; e.Put(\"n\", n); }",
        "      max_cached_sessions: 2\n",
    ))
    .unwrap();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let p = p.clone();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    let v = json(&run(&p, event("m")).unwrap());
                    assert!(v["n"].as_u64().unwrap() >= 1);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}
