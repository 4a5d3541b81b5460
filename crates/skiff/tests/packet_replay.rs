//! The packet input on the real binary: Packetbeat's own short `packetbeat.yml` passes
//! `skiff test config`, and `-I FILE -t` replays a capture to the file output and exits once
//! everything is written, beside a file input in the same configuration.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Sandbox, wait_with_timeout};

fn corpus(name: &str) -> String {
    format!(
        "{}/../../../shared/corpus/pcaps/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The layout of Packetbeat's reference `packetbeat.yml` (interfaces, protocols list, flows,
/// output), as shipped.
const PACKETBEAT_YML: &str = r#"
packetbeat.interfaces.device: any
packetbeat.interfaces.poll_default_route: 1m
packetbeat.interfaces.internal_networks:
  - private
packetbeat.flows:
  timeout: 30s
  period: 10s
packetbeat.protocols:
- type: icmp
  enabled: true
- type: dns
  ports: [53]
- type: http
  ports: [80, 8080, 8000, 5000, 8002]
setup.template.settings:
  index.number_of_shards: 1
setup.kibana:
output.file:
  path: "$DIR/out"
  filename: events
processors:
  - add_host_metadata: ~
"#;

#[test]
fn packetbeats_own_config_passes_test_config() {
    let sb = Sandbox::new();
    let cfg = sb.write("packetbeat.yml", PACKETBEAT_YML);
    let out = sb.cmd(&cfg, &["test", "config"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    for (yaml, line, words) in [
        (
            "packetbeat.protocols:\n- type: htp\n  ports: [80]\noutput.console: {}\n",
            "bad.yml:2",
            ["`htp`", "`http`"],
        ),
        (
            "packetbeat.protocols:\n- type: dns\n  ports: [53]\n  include_authorties: true\noutput.console: {}\n",
            "bad.yml:4",
            ["include_authorties", "include_authorities"],
        ),
        (
            "packetbeat.interfaces:\n  device: lo\n  bpf_filter: \"tcp prot 80\"\npacketbeat.protocols: [{type: http}]\noutput.console: {}\n",
            "bad.yml:3",
            ["invalid BPF filter", "tcp prot 80"],
        ),
    ] {
        let bad = sb.write("bad.yml", yaml);
        // Unknown keys are located warnings by default, as Packetbeat ignores them
        // (docs/configuration.md, "Loading"); --strict makes every case here an error.
        let out = sb
            .cmd(&bad, &["test", "config", "--strict"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(line), "{err}");
        for w in words {
            assert!(err.contains(w), "{w}: {err}");
        }
    }
    let typo = sb.write(
        "typo.yml",
        "packetbeat.protocols:\n- type: dns\n  ports: [53]\n  include_authorties: true\noutput.console: {}\n",
    );
    let out = sb.cmd(&typo, &["test", "config"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("warning: ")
            && err.contains("typo.yml:4")
            && err.contains("did you mean `include_authorities`"),
        "{err}"
    );
}

#[test]
fn a_capture_replays_to_the_output_and_skiff_exits() {
    let sb = Sandbox::new();
    let cfg = sb.write(
        "skiff.yml",
        "filebeat.inputs:\n- {type: stdin}\npacketbeat.protocols:\n- {type: http, ports: [80]}\n- {type: dns, ports: [53]}\noutput.file: {path: \"$DIR/out\", filename: events}\n",
    );
    let pcap = corpus("http_basicauth.pcap");
    let child = sb
        .cmd(&cfg, &["-I", &pcap, "-t"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_with_timeout(child, std::time::Duration::from_secs(60));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let lines = sb.read_lines("out", "events");
    let events: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(types.len(), 2, "{lines:?}");
    assert!(
        types.contains(&"http") && types.contains(&"dns"),
        "{types:?}"
    );
    for e in &events {
        assert_eq!(e["agent"]["type"], "packetbeat");
        assert!(e.get("input").is_none(), "{e}");
    }
    let http = events.iter().find(|e| e["type"] == "http").unwrap();
    assert_eq!(http["user"]["name"], "simplesimon");
    assert_eq!(
        http["@timestamp"].as_str().unwrap().get(..10),
        Some("2015-02-18")
    );
}
