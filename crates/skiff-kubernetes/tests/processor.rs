//! `add_kubernetes_metadata` against the stand-in API server (`skiff_kubernetes::stand_in`,
//! written from the Kubernetes API documentation: no cluster runs on the test machines): events
//! from a container's log file get its pod's fields, once the node's pods are listed; a
//! deleted pod's fields go after `cleanup_timeout`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use skiff_event::Event;
use skiff_kubernetes::stand_in::ApiServer;
use skiff_pipeline::{BuildContext, Processor};

const CID: &str = "4b1f0c9e8d7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c";

fn pod(name: &str, node: &str, cid: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"),
                     "labels": {"app": name, "app.kubernetes.io/part-of": "shop"},
                     "annotations": {"team": "blue"}},
        "spec": {"nodeName": node, "containers": [{"name": "web", "image": "nginx:1.25"}]},
        "status": {"phase": "Running", "podIP": "10.2.0.4", "containerStatuses": [
            {"name": "web", "image": "docker.io/library/nginx:1.25", "containerID": format!("containerd://{cid}"),
             "state": {"running": {}}}]}})
}

fn build(yaml: &str) -> Box<dyn Processor> {
    let node = skiff_config::parse_str(yaml, Some("t.yml")).unwrap();
    let ctx = BuildContext::standalone("h", "0", &skiff_metrics::Registry::new());
    skiff_kubernetes::processor::build(&node, &ctx).unwrap()
}

fn event(path: &str) -> Event {
    let mut e = Event::new(Arc::new(Default::default()), "GET /".into());
    e.insert("log.file.path", Value::String(path.into()));
    e
}

/// Processes `event(path)` until the result satisfies `done` (the index is filled by a watch
/// running beside): fails after 20s.
async fn until(p: &dyn Processor, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..400 {
        let mut e = event(path);
        p.process(&mut e);
        let v = Value::Object(e.fields.clone());
        if done(&v) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the processor never gave the expected fields for {path}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_a_containers_log_get_its_pods_fields() {
    let api = ApiServer::start(Some("tok")).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = api.kubeconfig(dir.path()).unwrap();
    api.apply(pod("checkout", "node-7", CID));
    api.apply(pod("other", "node-8", "ffff"));
    api.put_namespace("shop", json!({"team": "payments"}));
    api.put_node("node-7", json!({"topology.kubernetes.io/zone": "z1"}));
    let p = build(&format!(
        "host: node-7\nkube_config: {}\ncleanup_timeout: 0s\ninclude_annotations: [team]\nmatchers:\n- logs_path: {{logs_path: /var/log/containers/}}\n",
        cfg.display()
    ));
    let path = format!("/var/log/containers/checkout_shop_web-{CID}.log");
    let v = until(&*p, &path, |v| v.get("kubernetes").is_some()).await;
    assert_eq!(
        v,
        json!({
            "log": {"file": {"path": path}},
            "kubernetes": {
                "pod": {"name": "checkout", "uid": "uid-checkout", "ip": "10.2.0.4"},
                "namespace": "shop",
                "namespace_uid": "ns-uid-shop",
                "namespace_labels": {"team": "payments"},
                "node": {"name": "node-7", "uid": "node-uid-node-7", "labels": {"topology_kubernetes_io/zone": "z1"}},
                "labels": {"app": "checkout", "app_kubernetes_io/part-of": "shop"},
                "annotations": {"team": "blue"},
                "container": {"name": "web"}
            },
            "container": {"id": CID, "runtime": "containerd", "image": {"name": "nginx:1.25"}}
        })
    );
    // The node selector was used: the other node's pod is not indexed.
    let mut e = event("/var/log/containers/other_shop_web-ffff.log");
    p.process(&mut e);
    assert!(e.fields.get("kubernetes").is_none());
    assert!(api.requests()[0].contains("spec.nodeName%3Dnode-7"));
    // A file that names no container gets nothing.
    let mut e = event("/var/log/syslog");
    p.process(&mut e);
    assert!(e.fields.get("kubernetes").is_none());

    // A new pod is indexed through the watch; a deleted one is forgotten (cleanup_timeout 0s:
    // at the next change).
    api.apply(pod("cart", "node-7", "c0ffee"));
    until(&*p, "/var/log/containers/cart_shop_web-c0ffee.log", |v| {
        v["kubernetes"]["pod"]["name"] == "cart"
    })
    .await;
    api.delete("shop", "checkout");
    api.apply(pod("cart2", "node-7", "beef"));
    until(&*p, "/var/log/containers/cart2_shop_web-beef.log", |v| {
        v.get("kubernetes").is_some()
    })
    .await;
    until(&*p, &path, |v| v.get("kubernetes").is_none()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_matcher_reads_docker_paths_and_pod_uid_matchers() {
    let api = ApiServer::start(None).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = api.kubeconfig(dir.path()).unwrap();
    api.apply(pod("checkout", "node-7", CID));
    // Defaults: the `container` indexer and the `logs_path` matcher on Docker's folder.
    api.put_namespace("shop", json!({"team": "payments"}));
    let p = build(&format!(
        "node: node-7\nkube_config: {}\nadd_resource_metadata: {{namespace.enabled: false}}\n",
        cfg.display()
    ));
    let v = until(
        &*p,
        &format!("/var/lib/docker/containers/{CID}/{CID}-json.log"),
        |v| v.get("kubernetes").is_some(),
    )
    .await;
    assert_eq!(v["container"]["id"], CID);
    // By default no annotation is added; the namespace's labels are off here.
    assert!(v["kubernetes"].get("annotations").is_none());
    assert!(v["kubernetes"].get("namespace_labels").is_none());

    // Pod logs (`/var/log/pods/<ns>_<name>_<uid>/`) with the pod_uid indexer.
    let p = build(&format!(
        "node: node-7\nkube_config: {}\nindexers: [{{pod_uid: {{}}}}]\nmatchers: [{{logs_path: {{logs_path: /var/log/pods/, resource_type: pod}}}}]\n",
        cfg.display()
    ));
    let v = until(
        &*p,
        "/var/log/pods/shop_checkout_uid-checkout/web/0.log",
        |v| v.get("kubernetes").is_some(),
    )
    .await;
    assert_eq!(v["kubernetes"]["pod"]["name"], "checkout");
    assert!(v.get("container").is_none());
}

#[test]
fn bad_settings_are_located_errors() {
    let ctx = BuildContext::standalone("h", "0", &skiff_metrics::Registry::new());
    let err = |yaml: &str| {
        let node = skiff_config::parse_str(yaml, Some("t.yml")).unwrap();
        match skiff_kubernetes::processor::build(&node, &ctx) {
            Ok(_) => panic!("{yaml} was accepted"),
            Err(e) => e.to_string(),
        }
    };
    let e = err("scope: galaxy\n");
    assert!(e.contains("t.yml:1") && e.contains("galaxy"), "{e}");
    let e = err("indexers: [{pod_nam: {}}]\n");
    assert!(e.contains("unknown indexer `pod_nam`"), "{e}");
    let e = err("matcher: []\n");
    assert!(e.contains("matcher"), "{e}");
}
