//! The pod watch against the stand-in API server (`skiff_kubernetes::stand_in`, written from
//! the Kubernetes API documentation: no cluster runs on the test machines): list then watch with
//! the list's resourceVersion, resume after a lost connection, list again on `410 Gone`, node
//! and namespace selection, bearer token, HTTPS with the cluster CA (kubeconfig and the
//! in-cluster service account).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{Value, json};
use skiff_kubernetes::stand_in::ApiServer;
use skiff_kubernetes::{Backoff, PodEvent, PodQuery, Target, watch_pods};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A pod as the API server shows it: `running` containers have an id and a running state.
pub fn pod(ns: &str, name: &str, node: &str, cid: Option<&str>) -> Value {
    let status = match cid {
        Some(id) => json!({"phase": "Running", "podIP": "10.1.0.9", "containerStatuses": [
            {"name": "app", "image": "busybox:1", "containerID": format!("containerd://{id}"),
             "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}}}]}),
        None => json!({"phase": "Pending", "containerStatuses": [
            {"name": "app", "image": "busybox:1", "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
    };
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{ns}-{name}"), "labels": {"app": name}},
           "spec": {"nodeName": node, "containers": [{"name": "app", "image": "busybox:1"}]},
           "status": status})
}

/// The next event, failing the test after a generous wait (a hang is a failure, not a skip).
async fn next(rx: &mut mpsc::Receiver<PodEvent>) -> PodEvent {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("no pod event within 20s")
        .expect("the watcher stopped")
}

fn names(ev: &PodEvent) -> Vec<String> {
    match ev {
        PodEvent::Synced(pods) => pods.iter().map(|p| p.key()).collect(),
        PodEvent::Applied(p) | PodEvent::Deleted(p) => vec![p.key()],
    }
}

/// Waits until the stand-in has `n` watches open.
async fn watches(api: &ApiServer, n: usize) {
    for _ in 0..400 {
        if api.watches() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "expected {n} open watches, have {}; requests: {:?}",
        api.watches(),
        api.requests()
    );
}

fn start(
    api: &ApiServer,
    dir: &std::path::Path,
    query: PodQuery,
) -> (mpsc::Receiver<PodEvent>, CancellationToken) {
    let target = Target {
        kube_config: Some(api.kubeconfig(dir).unwrap()),
        query,
        backoff: Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(200),
        },
    };
    let client = target.client().unwrap();
    let (tx, rx) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move { watch_pods(&client, &target.query, target.backoff, &tx, &c).await });
    (rx, cancel)
}

#[tokio::test]
async fn list_watch_resume_and_relist_on_410() {
    let api = ApiServer::start(Some("s3cret")).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    api.apply(pod("default", "a", "node-1", Some("aaa")));
    api.apply(pod("default", "elsewhere", "node-2", Some("bbb")));
    let (mut rx, cancel) = start(
        &api,
        dir.path(),
        PodQuery {
            namespace: None,
            node: Some("node-1".into()),
        },
    );
    // The list: only node-1's pods.
    let ev = next(&mut rx).await;
    assert!(matches!(ev, PodEvent::Synced(_)), "{ev:?}");
    assert_eq!(names(&ev), ["default/a"]);
    watches(&api, 1).await;
    let reqs = api.requests();
    assert!(reqs[0].starts_with("/api/v1/pods?"), "{reqs:?}");
    assert!(
        reqs[0].contains("fieldSelector=spec.nodeName%3Dnode-1"),
        "{reqs:?}"
    );
    assert!(
        reqs[1].contains("watch=true") && reqs[1].contains("resourceVersion=2"),
        "{reqs:?}"
    );

    // Added pending, modified to running, another node's pod never seen, deleted.
    api.apply(pod("default", "b", "node-1", None));
    api.apply(pod("default", "c", "node-2", None));
    api.apply(pod("default", "b", "node-1", Some("bbb1")));
    let ev = next(&mut rx).await;
    let PodEvent::Applied(p) = &ev else {
        panic!("{ev:?}")
    };
    assert_eq!((p.key().as_str(), p.containers().len()), ("default/b", 0));
    let ev = next(&mut rx).await;
    let PodEvent::Applied(p) = &ev else {
        panic!("{ev:?}")
    };
    assert_eq!(p.containers()[0].id, "bbb1");
    assert_eq!(p.metadata.resource_version, "5");
    api.delete("default", "a");
    let ev = next(&mut rx).await;
    assert!(
        matches!(ev, PodEvent::Deleted(_)) && names(&ev) == ["default/a"],
        "{ev:?}"
    );

    // A lost connection: the watch resumes from the last version, without a new list, and
    // what happened meanwhile comes through.
    api.disconnect();
    api.apply(pod("default", "d", "node-1", Some("ddd")));
    let ev = next(&mut rx).await;
    assert_eq!(names(&ev), ["default/d"]);
    assert!(matches!(ev, PodEvent::Applied(_)));
    let lists = |api: &ApiServer| {
        api.requests()
            .iter()
            .filter(|r| !r.contains("watch=true"))
            .count()
    };
    assert_eq!(lists(&api), 1);
    assert!(
        api.requests()
            .iter()
            .any(|r| r.contains("resourceVersion=6")),
        "{:?}",
        api.requests()
    );

    // An outage (503s, retried with backoff) during which pods change and the history is
    // compacted: the resumed watch gets 410 and the pods are listed again; the new list is the
    // whole state (d deleted, e added meanwhile).
    watches(&api, 1).await;
    api.outage(true);
    api.delete("default", "d");
    api.apply(pod("default", "e", "node-1", Some("eee")));
    api.compact();
    let during = api.requests().len();
    while api.requests().len() < during + 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    api.outage(false);
    let ev = next(&mut rx).await;
    assert!(matches!(ev, PodEvent::Synced(_)), "{ev:?}");
    assert_eq!(names(&ev), ["default/b", "default/e"]);
    assert_eq!(lists(&api), 2);

    // A bookmark moves the version on without an event.
    watches(&api, 1).await;
    api.bookmark();
    api.apply(pod("default", "f", "node-1", Some("fff")));
    assert_eq!(names(&next(&mut rx).await), ["default/f"]);
    cancel.cancel();
}

#[tokio::test]
async fn namespace_scope_and_cluster_scope() {
    let api = ApiServer::start(None).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    api.apply(pod("team-a", "x", "node-1", Some("x1")));
    api.apply(pod("team-b", "y", "node-2", Some("y1")));
    let (mut rx, cancel) = start(
        &api,
        dir.path(),
        PodQuery {
            namespace: Some("team-b".into()),
            node: None,
        },
    );
    assert_eq!(names(&next(&mut rx).await), ["team-b/y"]);
    assert!(api.requests()[0].starts_with("/api/v1/namespaces/team-b/pods?"));
    assert!(!api.requests()[0].contains("fieldSelector"));
    watches(&api, 1).await;
    api.apply(pod("team-a", "z", "node-1", Some("z1")));
    api.apply(pod("team-b", "w", "node-1", Some("w1")));
    assert_eq!(names(&next(&mut rx).await), ["team-b/w"]);
    cancel.cancel();

    // Cluster scope: every namespace, every node.
    let (mut rx, cancel) = start(&api, dir.path(), PodQuery::default());
    assert_eq!(
        names(&next(&mut rx).await),
        ["team-a/x", "team-a/z", "team-b/w", "team-b/y"]
    );
    cancel.cancel();
}

#[tokio::test]
async fn a_wrong_token_is_refused_with_the_servers_reason() {
    let api = ApiServer::start(Some("right")).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = api.kubeconfig(dir.path()).unwrap();
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("right", "wrong");
    std::fs::write(&cfg, text).unwrap();
    let target = Target {
        kube_config: Some(cfg),
        ..Target::default()
    };
    let e = target
        .client()
        .unwrap()
        .get("/api/v1/pods", &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("401") && e.contains("Unauthorized"), "{e}");
}

/// A CA and a server certificate for 127.0.0.1 signed by it (chain PEM, key PEM, CA PEM).
fn certificates() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "kubernetes-ca");
    let ca_key = KeyPair::generate().unwrap();
    let ca = p.self_signed(&ca_key).unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &ca, &ca_key).unwrap();
    (cert.pem(), key.serialize_pem(), ca.pem())
}

#[tokio::test]
async fn https_with_the_clusters_ca_from_kubeconfig_and_the_service_account() {
    let (chain, key, ca) = certificates();
    let tls = skiff_tls::SslServerConfig {
        certificate: Some(chain),
        key: Some(key),
        ..Default::default()
    };
    let api = ApiServer::start_tls(Some("sa-token"), &tls).await.unwrap();
    api.apply(pod("kube-system", "dns", "node-1", Some("d1")));
    let dir = tempfile::tempdir().unwrap();
    let list = |target: Target| async move {
        target
            .client()?
            .get("/api/v1/pods", &[])
            .await
            .map(|v| v["items"].as_array().map_or(0, Vec::len))
    };

    // kubeconfig with certificate-authority-data.
    let cfg = api.kubeconfig_with_ca(dir.path(), Some(&ca)).unwrap();
    let target = Target {
        kube_config: Some(cfg),
        ..Target::default()
    };
    assert_eq!(list(target).await.unwrap(), 1);

    // Without the CA the server is not trusted.
    let cfg = api.kubeconfig(dir.path()).unwrap();
    let target = Target {
        kube_config: Some(cfg),
        ..Target::default()
    };
    let e = list(target).await.unwrap_err().to_string();
    assert!(e.to_lowercase().contains("certificate"), "{e}");

    // In a pod: the service account's token and CA files, the service's host and port.
    let account = dir.path().join("serviceaccount");
    std::fs::create_dir(&account).unwrap();
    std::fs::write(account.join("token"), "sa-token\n").unwrap();
    std::fs::write(account.join("ca.crt"), &ca).unwrap();
    let port = api.url().rsplit(':').next().unwrap().to_string();
    let conn =
        skiff_kubernetes::connection::in_cluster(Some("127.0.0.1"), Some(&port), &account).unwrap();
    assert_eq!(conn.server, format!("https://127.0.0.1:{port}"));
    let client = skiff_kubernetes::Client::new(conn, Duration::from_secs(10)).unwrap();
    let v = client.get("/api/v1/pods", &[]).await.unwrap();
    assert_eq!(v["items"][0]["metadata"]["name"], "dns");
    // The token file is read at each request: a rotated token is used at once.
    std::fs::write(account.join("token"), "rotated\n").unwrap();
    let e = client
        .get("/api/v1/pods", &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("401"), "{e}");
}
