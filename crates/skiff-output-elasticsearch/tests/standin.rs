//! The Elasticsearch output against `shared/tools/es-standin` (started by each test on a free
//! port).
//!
//! The stand-in is NOT Elasticsearch: it is a Python implementation of the documented wire
//! format of the Elasticsearch 8 REST API (bulk items and their errors, dynamic-mapping
//! conflicts, data streams and index templates, gzip, basic/API-key auth, TLS, fault injection).
//! Passing here means skiff speaks the documented protocol; it is not proof against a real
//! cluster. Documents that arrive are read back from its `--dump-dir`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::*;
use serde_json::json;
use skiff_metrics::{Registry, names};
use skiff_output_elasticsearch::index_template;

fn yaml(url: &str, extra: &str) -> String {
    format!(
        "hosts: [\"{url}\"]\nbulk_max_size: 100\nbackoff.init: 10ms\nbackoff.max: 50ms\n{extra}"
    )
}

#[tokio::test]
async fn events_arrive_exactly_once_with_fields_intact_into_a_data_stream() {
    let dir = tempfile::tempdir().unwrap();
    let es = StandIn::start(dir.path(), &[]);
    // The template `skiff export template` prints makes `filebeat-8.15.0` a data stream.
    let r = es
        .control(
            "PUT",
            "/_index_template/filebeat-8.15.0",
            index_template("8.15.0"),
        )
        .await;
    assert_eq!(r["acknowledged"], json!(true), "{r}");
    let bytes_before = es.stats().await["bytes_in"].as_u64().unwrap();
    let reg = Registry::new();
    let set = build(&yaml(&es.url, ""), &reg);
    let s = shared();
    let run = run(set, (0..1000).map(|n| event(&s, n)).collect(), &reg).await;
    assert_eq!(run.stream.progress().acked, 1000);
    assert!(run.dead_letters().is_empty());

    let docs = es.docs("filebeat-8.15.0");
    assert_eq!(numbers(&docs), (0..1000).collect::<Vec<_>>());
    let d = docs.iter().find(|d| d["fields"]["n"] == json!(7)).unwrap();
    assert_eq!(d["message"], json!("line 7 \"quoted\" é\ttab"));
    assert_eq!(d["log"]["offset"], json!(700));
    assert_eq!(d["log"]["file"]["path"], json!("/var/log/app.log"));
    assert_eq!(d["agent"]["version"], json!("8.15.0"));
    assert!(d.get("@metadata").is_none());
    assert!(d["@timestamp"].as_str().unwrap().ends_with('Z'));
    // It is a data stream (which only accepts `create`), not a plain index.
    let ds = es
        .control("GET", "/_data_stream/filebeat-8.15.0", json!(null))
        .await;
    assert_eq!(
        ds["data_streams"][0]["name"],
        json!("filebeat-8.15.0"),
        "{ds}"
    );
    let stats = es.stats().await;
    assert_eq!(stats["items_ok"], json!(1000), "{stats}");
    // Metrics: what went on the wire is counted.
    assert_eq!(
        reg.counter(&names::OUTPUT_WRITE_BYTES).get(),
        stats["bytes_in"].as_u64().unwrap() - bytes_before
    );
}

#[tokio::test]
async fn index_ops_into_a_data_stream_are_refused_by_the_server() {
    // Guards the choice of `create`: an `index` op (`@metadata.op_type: index`) into a data
    // stream is rejected per item, and the output dead-letters it with the reason.
    let dir = tempfile::tempdir().unwrap();
    let es = StandIn::start(dir.path(), &[]);
    let reg = Registry::new();
    let set = build(&yaml(&es.url, "index: logs-app-default\n"), &reg);
    let s = shared();
    let mut e = event(&s, 1);
    e.insert("@metadata.op_type", json!("index"));
    let run = run(set, vec![event(&s, 0), e], &reg).await;
    assert_eq!(run.stream.progress().acked, 2);
    assert_eq!(numbers(&es.docs("logs-app-default")), vec![0]);
    let dl = run.dead_letters();
    assert_eq!(dl.len(), 1);
    assert!(
        dl[0]["reason"]
            .as_str()
            .unwrap()
            .contains("only write ops with an op_type of create"),
        "{}",
        dl[0]
    );
}

#[tokio::test]
async fn per_item_429s_are_retried_until_all_arrive_once() {
    let dir = tempfile::tempdir().unwrap();
    let es = StandIn::start(dir.path(), &["--reject-rate", "0.3", "--seed", "7"]);
    let reg = Registry::new();
    let set = build(&yaml(&es.url, "index: retry-test\n"), &reg);
    let s = shared();
    let run = run(set, (0..500).map(|n| event(&s, n)).collect(), &reg).await;
    assert_eq!(run.stream.progress().acked, 500);
    assert_eq!(
        numbers(&es.docs("retry-test")),
        (0..500).collect::<Vec<_>>()
    );
    let stats = es.stats().await;
    assert!(stats["rejected"].as_u64().unwrap() > 50, "{stats}");
    assert!(reg.counter(&names::OUTPUT_RETRIES).get() > 0);
    assert!(run.dead_letters().is_empty());
}

#[tokio::test]
async fn mapping_conflicts_are_dead_lettered_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let es = StandIn::start(dir.path(), &[]);
    let reg = Registry::new();
    let set = build(&yaml(&es.url, "index: conflict-test\n"), &reg);
    let s = shared();
    let mut events: Vec<_> = (0..5).map(|n| event(&s, n)).collect();
    events[3].insert("fields.code", json!(12));
    events[4].insert("fields.code", json!("not a number"));
    let run = run(set, events, &reg).await;
    assert_eq!(run.stream.progress().acked, 5);
    assert_eq!(numbers(&es.docs("conflict-test")), vec![0, 1, 2, 3]);
    let dl = run.dead_letters();
    assert_eq!(dl.len(), 1, "{dl:?}");
    let reason = dl[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("status 400, document_parsing_exception: [1:")
            && reason.contains("failed to parse field [fields.code] of type [long]"),
        "{reason}"
    );
    assert_eq!(dl[0]["event"]["fields"]["n"], json!(4));
    assert_eq!(reg.counter(&names::OUTPUT_DEAD_LETTERED).get(), 1);
}

#[tokio::test]
async fn gzip_on_the_wire_and_off() {
    let dir = tempfile::tempdir().unwrap();
    let es = StandIn::start(dir.path(), &[]);
    let s = shared();
    for (level, compressed) in [(1, true), (0, false)] {
        es.control("POST", "/_standin/reset", json!({})).await;
        let reg = Registry::new();
        let set = build(
            &yaml(
                &es.url,
                &format!("index: gz-{level}\ncompression_level: {level}\n"),
            ),
            &reg,
        );
        run(set, (0..300).map(|n| event(&s, n)).collect(), &reg).await;
        assert_eq!(es.docs(&format!("gz-{level}")).len(), 300);
        let st = es.stats().await;
        let (wire, plain) = (
            st["bytes_in"].as_u64().unwrap(),
            st["bytes_in_decompressed"].as_u64().unwrap(),
        );
        if compressed {
            assert!(
                wire * 3 < plain,
                "level {level}: wire {wire}, plain {plain}"
            );
        } else {
            assert_eq!(wire, plain);
        }
    }
}

#[tokio::test]
async fn basic_and_api_key_auth_and_wrong_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let es = StandIn::start(
        dir.path(),
        &[
            "--user",
            "elastic",
            "--password",
            "changeme",
            "--api-key",
            "myid:mykey",
        ],
    );
    let s = shared();
    for (i, auth) in [
        "username: elastic\npassword: changeme\n",
        "api_key: myid:mykey\n",
        // Already encoded (base64 of myid:mykey), as some users paste it.
        "api_key: bXlpZDpteWtleQ==\n",
        "headers:\n  Authorization: ApiKey bXlpZDpteWtleQ==\n",
    ]
    .iter()
    .enumerate()
    {
        let reg = Registry::new();
        let set = build(&yaml(&es.url, &format!("index: auth-{i}\n{auth}")), &reg);
        run(set, (0..10).map(|n| event(&s, n)).collect(), &reg).await;
        assert_eq!(es.docs(&format!("auth-{i}")).len(), 10, "{auth}");
    }
    for (auth, expect) in [
        (
            "username: elastic\npassword: wrong\n",
            "unable to authenticate user [elastic]",
        ),
        ("", "missing authentication credentials"),
    ] {
        let reg = Registry::new();
        let mut set = build(&yaml(&es.url, auth), &reg);
        let err = set.clients[0].send(&[event(&s, 0)]).await.unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("refused our credentials (401 security_exception: ")
                && msg.contains(expect)
                && msg.contains("check username/password or api_key"),
            "{msg}"
        );
    }
}

#[tokio::test]
async fn two_hosts_one_down() {
    let dir = tempfile::tempdir().unwrap();
    let es = StandIn::start(dir.path(), &[]);
    // A port with nothing behind it.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let s = shared();

    // Failover (loadbalance: false): everything goes to the live host.
    let reg = Registry::new();
    let cfg = format!(
        "hosts: [\"http://127.0.0.1:{dead_port}\", \"{}\"]\nloadbalance: false\nindex: failover\nbulk_max_size: 50\nbackoff.init: 10ms\nbackoff.max: 50ms\n",
        es.url
    );
    let run1 = run(
        build(&cfg, &reg),
        (0..400).map(|n| event(&s, n)).collect(),
        &reg,
    )
    .await;
    assert_eq!(run1.stream.progress().acked, 400);
    assert_eq!(numbers(&es.docs("failover")), (0..400).collect::<Vec<_>>());

    // Load balancing: the live host takes what it can; the batch held by the dead host's worker
    // is retried until that host comes back, then delivered. Nothing is lost or doubled.
    let reg = Registry::new();
    let cfg = format!(
        "hosts: [\"http://127.0.0.1:{dead_port}\", \"{}\"]\nindex: balanced\nbulk_max_size: 50\nbackoff.init: 10ms\nbackoff.max: 50ms\n",
        es.url
    );
    let set = build(&cfg, &reg);
    let events: Vec<_> = (0..400).map(|n| event(&s, n)).collect();
    let reg2 = reg.clone();
    let handle = tokio::spawn(async move { run(set, events, &reg2).await });
    let dump = es.dump.clone();
    wait_until("the live host to take 350 events", || {
        docs(&dump, "balanced").len() >= 350
    })
    .await;
    assert!(reg.counter(&names::OUTPUT_WRITE_ERRORS).get() > 0);
    let dir2 = tempfile::tempdir().unwrap();
    let revived = StandIn::start_at(dead_port, dir2.path(), &[]);
    let run2 = handle.await.unwrap();
    assert_eq!(run2.stream.progress().acked, 400);
    let mut all = es.docs("balanced");
    all.extend(revived.docs("balanced"));
    assert_eq!(numbers(&all), (0..400).collect::<Vec<_>>());
}

#[tokio::test]
async fn server_stopped_mid_stream_and_restarted_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut es = StandIn::start(dir.path(), &[]);
    // Slow the server so that the stop lands mid-stream.
    es.faults(json!({"delay_ms": 30})).await;
    let port = es.port;
    let reg = Registry::new();
    let set = build(&yaml(&es.url, "index: restart-test\ntimeout: 5s\n"), &reg);
    let s = shared();
    let events: Vec<_> = (0..3000).map(|n| event(&s, n)).collect();
    let reg2 = reg.clone();
    let handle = tokio::spawn(async move { run(set, events, &reg2).await });
    let dump = es.dump.clone();
    wait_until("some events to arrive", || {
        docs(&dump, "restart-test").len() >= 500
    })
    .await;
    es.stop();
    let before = docs(&dump, "restart-test").len();
    assert!(before < 3000, "the stop came too late to test anything");
    // Down for a moment: sends fail and are retried.
    let errors_before = reg.counter(&names::OUTPUT_WRITE_ERRORS).get();
    let r = reg.clone();
    wait_until("a failed send while the server is down", || {
        r.counter(&names::OUTPUT_WRITE_ERRORS).get() > errors_before
    })
    .await;
    let _es2 = StandIn::start_at(port, dir.path(), &[]);
    let run = handle.await.unwrap();
    assert_eq!(run.stream.progress().acked, 3000);
    let mut got = numbers(&docs(dir.path(), "restart-test"));
    got.dedup();
    // Every event is there (a request the server took just before it stopped may arrive twice:
    // at least once).
    assert_eq!(got, (0..3000).collect::<Vec<_>>());
    assert!(run.dead_letters().is_empty());
}

#[tokio::test]
async fn too_large_requests_are_split_and_a_too_large_event_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let es = StandIn::start(dir.path(), &["--max-content-length", "20000"]);
    let reg = Registry::new();
    let set = build(
        &yaml(&es.url, "index: split-test\ncompression_level: 0\n"),
        &reg,
    );
    let s = shared();
    let mut events: Vec<_> = (0..100).map(|n| event(&s, n)).collect();
    events[50].insert("fields.big", json!("x".repeat(30_000)));
    let run = run(set, events, &reg).await;
    assert_eq!(run.stream.progress().acked, 100);
    let mut want: Vec<u64> = (0..100).collect();
    want.remove(50);
    assert_eq!(numbers(&es.docs("split-test")), want);
    let dl = run.dead_letters();
    assert_eq!(dl.len(), 1);
    assert!(
        dl[0]["reason"].as_str().unwrap().contains("413"),
        "{}",
        dl[0]
    );
    assert_eq!(dl[0]["event"]["fields"]["n"], json!(50));
}

#[tokio::test]
async fn whole_request_failures_are_retried() {
    let dir = tempfile::tempdir().unwrap();
    let es = StandIn::start(dir.path(), &[]);
    let s = shared();
    // Two 503s (the stand-in's default status for `fail_next_n_requests`), then service.
    es.faults(json!({"fail_next_n_requests": 2})).await;
    let reg = Registry::new();
    let set = build(&yaml(&es.url, "index: whole-test\n"), &reg);
    let run1 = run(set, (0..50).map(|n| event(&s, n)).collect(), &reg).await;
    assert_eq!(run1.stream.progress().acked, 50);
    assert_eq!(numbers(&es.docs("whole-test")), (0..50).collect::<Vec<_>>());
    assert_eq!(reg.counter(&names::OUTPUT_RETRIES).get(), 2);
    let st = es.stats().await;
    assert_eq!(st["responses"]["503"], json!(2), "{st}");

    // Whole-request 429s until the cluster recovers.
    es.faults(json!({"whole_request_status": 429})).await;
    let reg = Registry::new();
    let set = build(&yaml(&es.url, "index: whole-429\n"), &reg);
    let reg2 = reg.clone();
    let events = (0..50).map(|n| event(&s, n)).collect();
    let handle = tokio::spawn(async move { run(set, events, &reg2).await });
    let r = reg.clone();
    wait_until("two 429s", || {
        r.counter(&names::OUTPUT_WRITE_ERRORS).get() >= 2
    })
    .await;
    es.faults(json!({"whole_request_status": 0})).await;
    let run2 = handle.await.unwrap();
    assert_eq!(run2.stream.progress().acked, 50);
    assert_eq!(numbers(&es.docs("whole-429")), (0..50).collect::<Vec<_>>());
    assert!(es.stats().await["responses"]["429"].as_u64().unwrap() >= 2);
}

#[tokio::test]
async fn indices_rules_pipelines_and_input_index() {
    let dir = tempfile::tempdir().unwrap();
    let es = StandIn::start(dir.path(), &[]);
    es.control(
        "PUT",
        "/_ingest/pipeline/errors-pipe",
        json!({"processors": [{"set": {"field": "x", "value": 1}}]}),
    )
    .await;
    let reg = Registry::new();
    let extra = r#"index: "default-%{[agent.version]}"
indices:
  - index: "errors-%{[agent.version]}"
    when.contains:
      message: "line 1"
  - index: "mapped"
    mappings:
      web: web-logs
    default: other-logs
    when.has_fields: ["fields.kind"]
pipelines:
  - pipeline: errors-pipe
    when.regexp:
      message: "^line 1"
"#;
    let set = build(&yaml(&es.url, extra), &reg);
    let s = shared();
    let mut events: Vec<_> = (0..4).map(|n| event(&s, n)).collect();
    events[2].insert("fields.kind", json!("web"));
    // An input's `index` setting wins over everything (it arrives as @metadata.raw_index).
    events[3].insert("@metadata.raw_index", json!("From-Input-%{[agent.type]}"));
    let run = run(set, events, &reg).await;
    assert!(run.dead_letters().is_empty(), "{:?}", run.dead_letters());
    let by: BTreeMap<&str, Vec<u64>> = [
        ("errors-8.15.0", numbers(&es.docs("errors-8.15.0"))),
        ("default-8.15.0", numbers(&es.docs("default-8.15.0"))),
        ("other-logs", numbers(&es.docs("other-logs"))),
        (
            "from-input-filebeat",
            numbers(&es.docs("from-input-filebeat")),
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(by["errors-8.15.0"], vec![1]);
    assert_eq!(by["default-8.15.0"], vec![0]);
    // `mapped` renders to "mapped", not in `mappings`: the rule's default applies.
    assert_eq!(by["other-logs"], vec![2]);
    assert_eq!(by["from-input-filebeat"], vec![3]);
    // The pipeline was named in the bulk request (the stand-in checks that it exists).
    let st = es.stats().await;
    assert_eq!(st["items_ok"], json!(4), "{st}");
}

#[tokio::test]
async fn a_missing_pipeline_is_a_rejection_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let es = StandIn::start(dir.path(), &[]);
    let reg = Registry::new();
    let set = build(&yaml(&es.url, "index: p\npipeline: nope\n"), &reg);
    let run = run(set, vec![event(&shared(), 0)], &reg).await;
    let dl = run.dead_letters();
    assert!(
        dl[0]["reason"]
            .as_str()
            .unwrap()
            .contains("pipeline with id [nope] does not exist"),
        "{dl:?}"
    );
}
