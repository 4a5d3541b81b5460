//! `skiff test config` / `export config` on the real binary: what a user sees for mistakes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Sandbox;

fn test_config(sb: &Sandbox, yaml: &str, envs: &[(&str, &str)]) -> (i32, String, String) {
    let cfg = sb.write("skiff.yml", yaml);
    let mut c = sb.cmd(&cfg, &["test", "config"]);
    for (k, v) in envs {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn typos_fail_with_path_line_and_suggestion() {
    let sb = Sandbox::new();
    let (code, _, err) = test_config(
        &sb,
        "inputs:\n  - type: stdin\noutput.file:\n  pth: /tmp/x\n",
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("output.file.pth"), "{err}");
    assert!(err.contains("skiff.yml:4"), "{err}");
    assert!(err.contains("did you mean `path`"), "{err}");
}

#[test]
fn tls_under_an_output_suggests_ssl_and_unknown_types_are_named() {
    let sb = Sandbox::new();
    let (code, _, err) = test_config(
        &sb,
        "inputs:\n  - type: stdni\noutput.logstash:\n  hosts: [\"localhost:5044\"]\n  tls: {enabled: true}\n",
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("unknown input type `stdni`") && err.contains("did you mean `stdin`"),
        "{err}"
    );
    assert!(
        err.contains("output.logstash.tls") && err.contains("did you mean `ssl`"),
        "{err}"
    );
}

#[test]
fn env_expansion_defaults_and_required_messages() {
    let sb = Sandbox::new();
    let yaml = "inputs:\n  - type: stdin\n    tags: ['${SKIFF_T_TAG:dflt}']\noutput.file:\n  path: ${SKIFF_T_OUT:?set SKIFF_T_OUT to the output directory}\n";
    let (code, _, err) = test_config(&sb, yaml, &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("set SKIFF_T_OUT to the output directory") && err.contains("output.file.path"),
        "{err}"
    );
    let (code, out, err) = test_config(&sb, yaml, &[("SKIFF_T_OUT", "/tmp/x")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Config OK"));
}

#[test]
fn a_filebeat_yml_loads() {
    let sb = Sandbox::new();
    let yaml = r#"
filebeat.inputs:
- type: filestream
  id: my-app
  enabled: true
  paths:
    - /var/log/app/*.log
  fields:
    team: ops
  fields_under_root: true
  tags: ["app"]
- type: stdin
  enabled: false

processors:
  - add_host_metadata:
      when.not.contains.tags: forwarded

queue.mem:
  events: 4096
  flush.min_events: 512
  flush.timeout: 1s

output.file:
  path: "$DIR/out"
  filename: filebeat

http.enabled: true
http.port: 5067
logging.level: info
logging.to_files: true
name: my-shipper
tags: ["dc1"]
"#;
    let (code, out, err) = test_config(&sb, yaml, &[]);
    assert_eq!(code, 0, "stdout:{out}\nstderr:{err}");
}

#[test]
fn export_config_masks_secrets() {
    let sb = Sandbox::new();
    let cfg = sb.write(
        "skiff.yml",
        "inputs: [{type: stdin}]\noutput.file: {path: /tmp/x}\nsetup.kibana.password: hunter2\n",
    );
    let out = sb.cmd(&cfg, &["export", "config"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("xxxxx"), "{text}");
}
