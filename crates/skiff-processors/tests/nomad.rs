//! `add_nomad_metadata` against a stand-in of a Nomad agent's HTTP API. No Nomad agent can run
//! on this machine, so the stand-in below answers the endpoints the processor uses, with the
//! JSON shapes of Nomad's API documentation (`GET /v1/agent/self`, `/v1/nodes`,
//! `/v1/node/:node_id/allocations`, `/v1/allocations`, `/v1/allocation/:alloc_id`; field names
//! in PascalCase, `namespace`/`region` query parameters, the `X-Nomad-Token` header), and
//! records every request. Filebeat's documentation examples run as written, with `address`
//! pointed at the stand-in.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{build, run};
use serde_json::{Value, json};

const NODE_ID: &str = "f7476465-4d6e-c0de-26d0-e383c49be941";
const ALLOC: &str = "a8198d79-cfdb-6593-a999-1e9adabcba2e";
const OTHER: &str = "5456bd7a-9fc0-c0dd-6131-cbee77f57577";

/// An allocation as Nomad's API documentation shows it (the fields a client gets, trimmed).
fn allocation(id: &str, name: &str, status: &str, modify: u64) -> Value {
    json!({
        "ID": id, "EvalID": "5456bd7a-9fc0-c0dd-6131-cbee77f57577", "Name": name,
        "Namespace": "default", "NodeID": NODE_ID, "NodeName": "client-1", "JobID": "example",
        "TaskGroup": "cache", "DesiredStatus": "run", "ClientStatus": status,
        "CreateIndex": 9, "ModifyIndex": modify,
        "Job": {
            "Region": "global", "Namespace": "default", "ID": "example", "Name": "example",
            "Type": "service", "Priority": 50, "Datacenters": ["dc1", "dc2"],
            "TaskGroups": [{"Name": "cache", "Count": 1, "Tasks": [{"Name": "redis", "Driver": "docker"}]}]
        },
        "TaskStates": {"redis": {"State": "running", "Failed": false}}
    })
}

/// The stub of `/v1/allocations` (no `Job`).
fn stub(a: &Value) -> Value {
    let mut s = a.clone();
    let o = s.as_object_mut().unwrap();
    o.remove("Job");
    o.insert("JobType".into(), json!("service"));
    s
}

/// A request the stand-in received: its target and its `X-Nomad-Token`.
type Request = (String, Option<String>);

/// The stand-in agent. `allocs` can be changed while it runs; `requests` are the request
/// lines and tokens it received.
struct Agent {
    port: u16,
    allocs: Arc<Mutex<Vec<Value>>>,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Agent {
    fn start() -> Agent {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let allocs = Arc::new(Mutex::new(vec![allocation(
            ALLOC,
            "example.cache[0]",
            "running",
            12,
        )]));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (a, r) = (allocs.clone(), requests.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut token = None;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':')
                        && k.eq_ignore_ascii_case("x-nomad-token")
                    {
                        token = Some(v.trim().to_owned());
                    }
                }
                let target = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                r.lock().unwrap().push((target.clone(), token));
                let path = target.split('?').next().unwrap_or("");
                let list = a.lock().unwrap().clone();
                let body = match path {
                    "/v1/agent/self" => Some(json!({
                        "config": {"NodeName": "client-1", "Region": "global", "Datacenter": "dc1"},
                        "member": {"Name": "client-1.global", "Addr": "127.0.0.1", "Port": 4648}
                    })),
                    "/v1/nodes" => Some(json!([
                        {"ID": "0e1a2b3c-0000-0000-0000-000000000000", "Name": "client-2", "Datacenter": "dc2", "Status": "ready"},
                        {"ID": NODE_ID, "Name": "client-1", "Datacenter": "dc1", "Status": "ready"}
                    ])),
                    p if p == format!("/v1/node/{NODE_ID}/allocations") => Some(Value::Array(list)),
                    "/v1/allocations" => Some(Value::Array(list.iter().map(stub).collect())),
                    p => p
                        .strip_prefix("/v1/allocation/")
                        .and_then(|id| list.iter().find(|x| x["ID"] == id).cloned()),
                };
                let (status, body) = match body {
                    Some(b) => ("200 OK", b.to_string()),
                    None => ("404 Not Found", "not found".to_owned()),
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Agent {
            port,
            allocs,
            requests,
        }
    }

    fn paths(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Waits until the agent has been asked `n` more times than now for a target `pred`
    /// accepts. A processor's refresh publishes what it read before it asks again, so two
    /// more requests of one processor mean it has published at least one new answer.
    fn wait_for_more(&self, pred: impl Fn(&str) -> bool, n: usize) {
        let count = || self.paths().iter().filter(|p| pred(p)).count();
        let start = count();
        for _ in 0..400 {
            if count() >= start + n {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("the processor never asked again");
    }
}

fn expected(task: Option<&str>) -> Value {
    let mut v = json!({
        "allocation": {"id": ALLOC, "name": "example.cache[0]", "status": "running"},
        "job": {"name": "example", "type": "service"},
        "namespace": "default",
        "datacenter": ["dc1", "dc2"],
        "region": "global",
    });
    if let Some(t) = task {
        v["task"] = json!({"name": t});
    }
    v
}

/// Filebeat's first example (`add_nomad_metadata: ~`, here with `address`): the local node's
/// allocations, matched by the allocation ID in the log path.
#[test]
fn doc_default_example_matches_the_log_path() {
    let agent = Agent::start();
    let p = build(&format!(
        "processors:\n  - add_nomad_metadata:\n      address: http://127.0.0.1:{}\n",
        agent.port
    ));
    let v = run(
        &p,
        json!({"log.file.path": format!("/var/lib/nomad/alloc/{ALLOC}/alloc/logs/redis.stdout.0")}),
    );
    assert_eq!(v["nomad"], expected(Some("redis")), "{v}");
    let paths = agent.paths();
    for want in [
        "/v1/agent/self".to_owned(),
        "/v1/nodes".to_owned(),
        format!("/v1/node/{NODE_ID}/allocations"),
    ] {
        assert!(
            paths.iter().any(|p| p.starts_with(&want)),
            "{want} not asked: {paths:?}"
        );
    }
    // Another allocation's path, or no path: the event is left alone.
    let v = run(
        &p,
        json!({"log.file.path": format!("/var/lib/nomad/alloc/{OTHER}/alloc/logs/redis.stdout.0")}),
    );
    assert!(v.get("nomad").is_none(), "{v}");
    assert!(run(&p, json!({"x": 1})).get("nomad").is_none());
}

/// Filebeat's `scope: global` example with the `fields` matcher example, a namespace and an
/// ACL token: every allocation of the cluster, then each in full.
#[test]
fn doc_global_scope_with_the_fields_matcher() {
    let agent = Agent::start();
    let p = build(&format!(
        "processors:
- add_nomad_metadata:
    address: http://127.0.0.1:{}
    scope: global
    namespace: default
    secret_id: s3cr3t
    default_indexers.enabled: false
    default_matchers.enabled: false
    indexers:
      - allocation_uuid:
    matchers:
      - fields:
          lookup_fields: ['host.name', 'fields.nomad_alloc_uuid']
",
        agent.port
    ));
    let v = run(&p, json!({"fields.nomad_alloc_uuid": ALLOC}));
    assert_eq!(v["nomad"], expected(None), "{v}");
    let reqs = agent.requests.lock().unwrap().clone();
    assert!(
        reqs.iter()
            .any(|(p, _)| p.starts_with("/v1/allocations?") && p.contains("namespace=default")),
        "{reqs:?}"
    );
    assert!(
        reqs.iter()
            .any(|(p, _)| p.starts_with(&format!("/v1/allocation/{ALLOC}")))
    );
    assert!(
        reqs.iter().all(|(_, t)| t.as_deref() == Some("s3cr3t")),
        "{reqs:?}"
    );
    assert!(!reqs.iter().any(|(p, _)| p.starts_with("/v1/agent/self")));
}

/// Filebeat's `field_format` example: the `allocation_name` indexer (`<namespace>/<name>`)
/// and a key made of two fields.
#[test]
fn doc_field_format_example() {
    let agent = Agent::start();
    let p = build(&format!(
        "processors:
- add_nomad_metadata:
    address: http://127.0.0.1:{}
    default_indexers.enabled: false
    default_matchers.enabled: false
    indexers:
      - allocation_name:
    matchers:
      - field_format:
          format: '%{{[labels.nomad_namespace]}}/%{{[fields.nomad_alloc_name]}}'
",
        agent.port
    ));
    let v = run(
        &p,
        json!({"labels.nomad_namespace": "default", "fields.nomad_alloc_name": "example.cache[0]"}),
    );
    assert_eq!(v["nomad"], expected(None), "{v}");
    let v = run(&p, json!({"labels.nomad_namespace": "default"}));
    assert!(
        v.get("nomad").is_none(),
        "a missing field makes no key: {v}"
    );
}

/// Filebeat's `logs_path` example: logs under another data directory.
#[test]
fn doc_logs_path_example() {
    let agent = Agent::start();
    let p = build(&format!(
        "processors:
- add_nomad_metadata:
    address: http://127.0.0.1:{}
    default_indexers.enabled: false
    default_matchers.enabled: false
    indexers:
      - allocation_uuid:
    matchers:
      - logs_path:
          logs_path: '/var/lib/NomadClient001'
",
        agent.port
    ));
    let v = run(
        &p,
        json!({"log.file.path": format!("/var/lib/NomadClient001/alloc/{ALLOC}/alloc/logs/redis.stderr.0")}),
    );
    assert_eq!(v["nomad"], expected(Some("redis")), "{v}");
    let v = run(
        &p,
        json!({"log.file.path": format!("/var/lib/nomad/alloc/{ALLOC}/alloc/logs/redis.stderr.0")}),
    );
    assert!(v.get("nomad").is_none(), "{v}");
}

/// Changes are picked up at the next refresh; a removed allocation is kept for
/// `cleanup_timeout`, then dropped.
#[test]
fn refreshes_and_cleanup() {
    let agent = Agent::start();
    // The two processors differ by `namespace`, so their requests can be told apart.
    let cfg = |cleanup: &str, ns: &str| {
        format!(
            "processors:\n  - add_nomad_metadata:\n      address: http://127.0.0.1:{}\n      refresh_interval: 100ms\n      cleanup_timeout: {cleanup}\n{ns}",
            agent.port
        )
    };
    let keep = build(&cfg("1h", "      namespace: default\n"));
    let drop_soon = build(&cfg("0s", ""));
    let listing = format!("/v1/node/{NODE_ID}/allocations");
    let of_keep = |p: &str| p.starts_with(&listing) && p.contains("namespace=default");
    let of_drop = |p: &str| p.starts_with(&listing) && !p.contains("namespace=");
    let path =
        json!({"log.file.path": format!("/var/lib/nomad/alloc/{ALLOC}/alloc/logs/redis.stdout.0")});
    assert_eq!(
        run(&keep, path.clone())["nomad"]["allocation"]["status"],
        "running"
    );
    assert_eq!(
        run(&drop_soon, path.clone())["nomad"]["allocation"]["status"],
        "running"
    );
    // The allocation completes: the status changes at the next refresh.
    *agent.allocs.lock().unwrap() = vec![allocation(ALLOC, "example.cache[0]", "complete", 13)];
    agent.wait_for_more(of_keep, 2);
    assert_eq!(
        run(&keep, path.clone())["nomad"]["allocation"]["status"],
        "complete"
    );
    // It is garbage-collected by Nomad: gone from the API.
    agent.allocs.lock().unwrap().clear();
    agent.wait_for_more(of_keep, 2);
    agent.wait_for_more(of_drop, 2);
    assert_eq!(
        run(&keep, path.clone())["nomad"]["allocation"]["status"],
        "complete"
    );
    assert!(run(&drop_soon, path).get("nomad").is_none());
}
