//! Elastic's Kubernetes manifest (`filebeat-kubernetes.yaml`: the `filebeat.yml` of its
//! ConfigMap) and an Elastic Cloud configuration, checked by the real binary's
//! `skiff test config`: `add_kubernetes_metadata` and `cloud.id`/`cloud.auth` load, and their
//! mistakes are located errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Sandbox;

/// The `filebeat.yml` of the ConfigMap in Elastic's `filebeat-kubernetes.yaml` (the variant
/// without autodiscover: every container log, with the pod's metadata), as the manifest has it.
const CONFIGMAP: &str = r#"filebeat.inputs:
- type: filestream
  id: kubernetes-container-logs
  paths:
    - /var/log/containers/*.log
  parsers:
    - container: ~
  prospector:
    scanner:
      fingerprint.enabled: true
      symlinks: true
  file_identity.fingerprint: ~
  processors:
    - add_kubernetes_metadata:
        host: ${NODE_NAME}
        matchers:
        - logs_path:
            logs_path: "/var/log/containers/"

processors:
  - add_cloud_metadata:
  - add_host_metadata:

cloud.id: ${ELASTIC_CLOUD_ID}
cloud.auth: ${ELASTIC_CLOUD_AUTH}

output.elasticsearch:
  hosts: ['${ELASTICSEARCH_HOST:elasticsearch}:${ELASTICSEARCH_PORT:9200}']
  username: ${ELASTICSEARCH_USERNAME}
  password: ${ELASTICSEARCH_PASSWORD}
"#;

/// Elastic's example cloud id (libbeat's tests).
const CLOUD_ID: &str = "staging:dXMtZWFzdC0xLmF3cy5mb3VuZC5pbyRjZWM2ZjI2MWE3NGJmMjRjZTMzYmI4ODExYjg0Mjk0ZiRjNmMyY2E2ZDA0MjI0OWFmMGNjN2Q3YTllOTYyNTc0Mw==";

fn test_config(sb: &Sandbox, yaml: &str, envs: &[(&str, &str)]) -> (i32, String) {
    let cfg = sb.write("filebeat.yml", yaml);
    let mut c = sb.cmd(&cfg, &["test", "config"]);
    // No cluster here: the processor must load without one (it warns and adds nothing).
    c.env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST");
    for (k, v) in envs {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

const MANIFEST_ENV: &[(&str, &str)] = &[
    ("NODE_NAME", "worker-1"),
    ("ELASTICSEARCH_USERNAME", "elastic"),
    ("ELASTICSEARCH_PASSWORD", "changeme"),
];

#[test]
fn elastics_kubernetes_configmap_loads() {
    let sb = Sandbox::new();
    let mut env = MANIFEST_ENV.to_vec();
    env.extend([("ELASTIC_CLOUD_ID", ""), ("ELASTIC_CLOUD_AUTH", "")]);
    let (code, out) = test_config(&sb, CONFIGMAP, &env);
    assert_eq!(code, 0, "{out}");
    // The processor is a real one now, not the "does nothing" placeholder (add_cloud_metadata
    // of the same manifest still is one, and `test config` says so).
    assert!(
        !out.contains("add_kubernetes_metadata is not supported"),
        "{out}"
    );
    assert!(
        out.contains("add_cloud_metadata is not supported by skiff yet"),
        "{out}"
    );
}

#[test]
fn the_configmap_with_a_cloud_id_sends_to_elastic_cloud() {
    let sb = Sandbox::new();
    let mut env = MANIFEST_ENV.to_vec();
    env.extend([
        ("ELASTIC_CLOUD_ID", CLOUD_ID),
        ("ELASTIC_CLOUD_AUTH", "elastic:s3cret"),
    ]);
    let (code, out) = test_config(&sb, CONFIGMAP, &env);
    assert_eq!(code, 0, "{out}");

    // A cloud id that is not one: located at the line of `cloud.id`.
    let bad = "filebeat.inputs: [{type: stdin}]\ncloud.id: \"staging:bm90LWEtY2xvdWQtaWQ=\"\n";
    let (code, out) = test_config(&sb, bad, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("filebeat.yml:2")
            && out.contains("cloud.id")
            && out.contains("at least 3 parts"),
        "{out}"
    );
    // cloud.id with another output.
    let other = format!(
        "filebeat.inputs: [{{type: stdin}}]\ncloud.id: \"{CLOUD_ID}\"\noutput.logstash.hosts: [\"localhost:5044\"]\n"
    );
    let (code, out) = test_config(&sb, &other, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("the logstash output is enabled"), "{out}");
}

#[test]
fn add_kubernetes_metadata_mistakes_are_located() {
    let sb = Sandbox::new();
    let yaml = "filebeat.inputs:\n- type: stdin\n  processors:\n  - add_kubernetes_metadata:\n      scope: galaxy\noutput.discard: {}\n";
    let (code, out) = test_config(&sb, yaml, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("filebeat.yml:5") && out.contains("galaxy"),
        "{out}"
    );
}
