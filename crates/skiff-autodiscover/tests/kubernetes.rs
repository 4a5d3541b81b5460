//! The `kubernetes` provider through the [`Provider`] trait (the stream of [`Change`]s the
//! runner reads), against the stand-in API server (`skiff_kubernetes::stand_in`, written from
//! the Kubernetes API documentation's list and watch: no cluster runs on the test machines).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{Value, json};
use skiff_autodiscover::kubernetes::KubernetesProvider;
use skiff_autodiscover::{Change, Provider};
use skiff_kubernetes::Backoff;
use skiff_kubernetes::stand_in::ApiServer;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A pod with one container `app`, running (with an id) or still being created.
fn pod(ns: &str, name: &str, node: &str, cid: Option<&str>) -> Value {
    let status = match cid {
        Some(id) => json!({"phase": "Running", "podIP": "10.3.0.2", "containerStatuses": [
            {"name": "app", "image": "nginx:1.25", "containerID": format!("containerd://{id}"),
             "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}}}]}),
        None => json!({"phase": "Pending", "containerStatuses": [
            {"name": "app", "image": "nginx:1.25", "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
    };
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}"),
                     "labels": {"app": name},
                     "annotations": {"co.elastic.logs/module": "nginx", "co.elastic.logs.app/fileset.stderr": "error"}},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "nginx:1.25"}]},
        "status": status})
}

/// The next change, failing the test after a generous wait.
async fn next(rx: &mut mpsc::Receiver<Change>) -> Change {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("no change within 20s")
        .expect("the provider stopped")
}

fn short(c: &Change) -> String {
    match c {
        Change::Start(d) => format!("+{}", d.id),
        Change::Stop { id } => format!("-{id}"),
    }
}

async fn watches(api: &ApiServer, n: usize) {
    for _ in 0..400 {
        if api.watches() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("expected {n} open watches, have {}", api.watches());
}

fn run(
    yaml: &str,
) -> (
    mpsc::Receiver<Change>,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let node = skiff_config::parse_str(yaml, Some("filebeat.yml")).unwrap();
    let provider = KubernetesProvider::from_config(&node)
        .unwrap()
        .with_backoff(Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(200),
        });
    assert_eq!(provider.name(), "kubernetes");
    let (tx, rx) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    let task = tokio::spawn(async move {
        Box::new(provider).run(tx, c).await.unwrap();
    });
    (rx, cancel, task)
}

#[tokio::test]
async fn pods_start_run_and_stop_through_list_watch_and_relist() {
    let api = ApiServer::start(Some("sa-token")).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = api.kubeconfig(dir.path()).unwrap();
    api.apply(pod("web", "old", "node-a", Some("c-old")));
    api.apply(pod("web", "far", "node-b", Some("c-far")));
    // add_resource_metadata (on by default): the namespace's labels; the node is unknown to
    // the API server (404), so only its name.
    api.put_namespace("web", json!({"env": "prod"}));
    let (mut rx, cancel, task) = run(&format!(
        "type: kubernetes\nnode: node-a\nkube_config: {}\nhints.enabled: true\n",
        cfg.display()
    ));
    // What runs at start.
    let c = next(&mut rx).await;
    let Change::Start(d) = &c else {
        panic!("{c:?}")
    };
    assert_eq!(d.id, "c-old");
    assert_eq!(d.data["kubernetes"]["pod"]["name"], "old");
    assert_eq!(d.data["kubernetes"]["container"]["id"], "c-old");
    assert_eq!(d.meta["kubernetes"]["namespace"], "web");
    assert_eq!(
        d.meta["kubernetes"]["namespace_labels"],
        json!({"env": "prod"})
    );
    assert_eq!(d.meta["kubernetes"]["namespace_uid"], "ns-uid-web");
    assert_eq!(d.data["kubernetes"]["node"], json!({"name": "node-a"}));
    assert_eq!(
        d.hints,
        [
            ("fileset.stderr".to_string(), "error".to_string()),
            ("module".into(), "nginx".into())
        ]
    );
    watches(&api, 1).await;

    // Added while pending: nothing yet; modified to running: started; deleted: stopped.
    api.apply(pod("web", "new", "node-a", None));
    api.apply(pod("web", "new", "node-a", Some("c-new")));
    assert_eq!(short(&next(&mut rx).await), "+c-new");
    api.delete("web", "old");
    assert_eq!(short(&next(&mut rx).await), "-c-old");

    // The API server goes away; meanwhile `new` is deleted, `late` starts, and the history is
    // compacted: after the outage the watch gets 410, the pods are listed again, and the
    // difference is reported.
    api.outage(true);
    api.delete("web", "new");
    api.apply(pod("web", "late", "node-a", Some("c-late")));
    api.compact();
    let before = api.requests().len();
    while api.requests().len() < before + 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    api.outage(false);
    let mut got = vec![short(&next(&mut rx).await), short(&next(&mut rx).await)];
    got.sort();
    assert_eq!(got, ["+c-late", "-c-new"]);
    let lists = api
        .requests()
        .iter()
        .filter(|r| r.contains("/pods?") && !r.contains("watch=true"))
        .count();
    assert_eq!(lists, 2, "{:?}", api.requests());

    // Cancelling ends the provider.
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("the provider did not stop")
        .unwrap();
}

#[tokio::test]
async fn namespace_scope_sees_only_its_namespace() {
    let api = ApiServer::start(None).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = api.kubeconfig(dir.path()).unwrap();
    api.apply(pod("team-a", "a1", "node-a", Some("a1")));
    api.apply(pod("team-b", "b1", "node-b", Some("b1")));
    let (mut rx, cancel, _task) = run(&format!(
        "type: kubernetes\nscope: cluster\nnamespace: team-b\nkube_config: {}\n",
        cfg.display()
    ));
    assert_eq!(short(&next(&mut rx).await), "+b1");
    watches(&api, 1).await;
    api.apply(pod("team-a", "a2", "node-a", Some("a2")));
    api.apply(pod("team-b", "b2", "node-a", Some("b2")));
    assert_eq!(short(&next(&mut rx).await), "+b2");
    assert!(api.requests()[0].starts_with("/api/v1/namespaces/team-b/pods?"));
    cancel.cancel();
}

#[tokio::test]
async fn no_cluster_is_an_error_naming_what_is_missing() {
    let node = skiff_config::parse_str("kube_config: /nonexistent/kubeconfig\n", None).unwrap();
    let provider = KubernetesProvider::from_config(&node).unwrap();
    let (tx, _rx) = mpsc::channel(1);
    let e = Box::new(provider)
        .run(tx, CancellationToken::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/kubeconfig"), "{e}");
}
