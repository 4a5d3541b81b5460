//! Every case of `shared/corpus/pcaps/EXPECTATIONS.md` for the protocols skiff has, driven by
//! the data in `tests/corpus.yaml`: one test per case (one `case!` line each), all run by the
//! same harness, which replicates the upstream one (top-speed replay with file timestamps,
//! the baseline configuration of EXPECTATIONS.md section 0, golden files compared after
//! dropping the host-dependent keys).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use serde_json::{Map, Value};
use skiff_input_packet::testing;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/pcaps")
}

fn cases() -> Map<String, Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus.yaml");
    let text = std::fs::read_to_string(path).expect("tests/corpus.yaml");
    let node = skiff_config::parse_str(&text, Some("corpus.yaml")).expect("corpus.yaml parses");
    match node.to_json() {
        Value::Object(m) => m,
        other => panic!("corpus.yaml: expected a map, found {other}"),
    }
}

/// EXPECTATIONS.md section 0, restricted to the protocols skiff has (the others are issue 13).
fn baseline() -> Map<String, Value> {
    let json = serde_json::json!({
        "icmp": {},
        "dns": {"ports": [53]},
        "http": {"ports": [80]},
        "tls": {"ports": [443]},
        // issue 13
        "mysql": {"ports": [3306]},
        "pgsql": {"ports": [5432]},
        "redis": {"ports": [6379]},
        "mongodb": {"ports": [27017]},
        "memcache": {"ports": [11211], "udptransactiontimeout": "10ms"},
        "cassandra": {"ports": [9042]},
        "thrift": {"ports": [9090]},
        "amqp": {"ports": [5672]},
        "nfs": {"ports": [2049]},
        "sip": {"ports": [5060]},
        "dhcpv4": {"ports": [67, 68]},
    });
    let Value::Object(m) = json else {
        unreachable!()
    };
    m
}

fn config(case: &Map<String, Value>) -> String {
    let mut protos = baseline();
    let set = case
        .get("set")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (name, opts) in &set {
        if name == "flows" {
            continue;
        }
        let entry = protos
            .entry(name.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if let (Value::Object(e), Value::Object(o)) = (entry, opts) {
            for (k, v) in o {
                e.insert(k.clone(), v.clone());
            }
        }
    }
    let list: Vec<Value> = protos
        .into_iter()
        .map(|(name, opts)| {
            let mut m = opts.as_object().cloned().unwrap_or_default();
            m.insert("type".into(), Value::from(name));
            Value::Object(m)
        })
        .collect();
    let mut pb = serde_json::json!({"protocols": list});
    if let Some(f) = set.get("flows") {
        pb["flows"] = f.clone();
    }
    // JSON is YAML.
    serde_json::json!({ "packetbeat": pb }).to_string()
}

/// The expected fields as dotted keys (the YAML loader nests dotted keys); an object whose
/// key starts with `$` is a matcher, kept whole.
fn expected(v: &Value) -> Vec<(String, Value)> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
        match v {
            Value::Object(m) if !m.keys().any(|k| k.starts_with('$')) && !m.is_empty() => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            other => out.push((prefix.to_owned(), other.clone())),
        }
    }
    let mut out = Vec::new();
    if v.as_object().is_some_and(|m| !m.is_empty()) {
        walk("", v, &mut out);
    }
    out
}

fn check(key: &str, want: &Value, event: &Map<String, Value>, what: &str) -> Result<(), String> {
    let got = event.get(key);
    let fail = |why: String| Err(format!("{what}: `{key}`: {why} (got {got:?})"));
    if let Value::Object(m) = want
        && let Some((op, arg)) = m.iter().next()
        && op.starts_with('$')
    {
        let len = |v: &Value| match v {
            Value::String(s) => Some(s.chars().count() as u64),
            Value::Array(a) => Some(a.len() as u64),
            _ => None,
        };
        let num = |v: &Value| v.as_f64();
        let ok = match op.as_str() {
            "$present" => got.is_some() == arg.as_bool().unwrap_or(true),
            "$contains" => got
                .and_then(Value::as_str)
                .zip(arg.as_str())
                .is_some_and(|(g, a)| g.contains(a)),
            "$len" => {
                let (lo, hi) = (
                    arg[0].as_u64().unwrap_or(0),
                    arg[1].as_u64().unwrap_or(u64::MAX),
                );
                got.and_then(len).is_some_and(|n| n >= lo && n <= hi)
            }
            // A map flattened into `key.*` entries: how many.
            "$keys" => {
                Some(
                    event
                        .keys()
                        .filter(|k| k.starts_with(&format!("{key}.")))
                        .count() as u64,
                ) == arg.as_u64()
            }
            "$gt" => got.and_then(num).zip(num(arg)).is_some_and(|(g, a)| g > a),
            "$ge" => got.and_then(num).zip(num(arg)).is_some_and(|(g, a)| g >= a),
            other => return fail(format!("unknown matcher {other}")),
        };
        return if ok {
            Ok(())
        } else {
            fail(format!("does not match {want}"))
        };
    }
    if got == Some(want) {
        Ok(())
    } else {
        fail(format!("expected {want}"))
    }
}

/// Keys the upstream harness drops before comparing with a golden file.
const HOST_KEYS: &[&str] = &[
    "@metadata.version",
    "agent.ephemeral_id",
    "agent.hostname",
    "agent.id",
    "agent.type",
    "agent.version",
    "agent.name",
    "ecs.version",
    "event.start",
    "event.end",
    "host.name",
    "@timestamp",
    "network.direction",
];

fn golden(file: &str, got: &[Map<String, Value>]) -> Result<(), String> {
    let path = corpus().join("_golden_upstream").join(file);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let want: Vec<Map<String, Value>> =
        serde_json::from_str(&text).map_err(|e| format!("{file}: {e}"))?;
    let strip = |m: &Map<String, Value>| {
        let mut m = m.clone();
        for k in HOST_KEYS {
            m.remove(*k);
        }
        m
    };
    let got: Vec<Map<String, Value>> = got.iter().map(strip).collect();
    if got.len() != want.len() {
        return Err(format!(
            "{file}: {} events, expected {}",
            got.len(),
            want.len()
        ));
    }
    for w in want.iter().map(strip) {
        if !got.contains(&w) {
            let closest = got
                .iter()
                .max_by_key(|g| w.iter().filter(|(k, v)| g.get(*k) == Some(*v)).count());
            let diff: Vec<String> = w
                .iter()
                .filter(|(k, v)| closest.and_then(|g| g.get(*k)) != Some(*v))
                .map(|(k, v)| format!("{k}: want {v}, got {:?}", closest.and_then(|g| g.get(k))))
                .chain(closest.into_iter().flat_map(|g| {
                    g.keys()
                        .filter(|k| !w.contains_key(*k))
                        .map(|k| format!("{k}: not expected"))
                        .collect::<Vec<_>>()
                }))
                .collect();
            return Err(format!(
                "{file}: no event matches; closest differs in:\n  {}",
                diff.join("\n  ")
            ));
        }
    }
    Ok(())
}

fn run(id: &str) {
    let all = cases();
    let case = all
        .get(id)
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("case {id} is not in corpus.yaml"));
    let pcap = corpus().join(case["pcap"].as_str().expect("pcap"));
    assert!(
        pcap.exists(),
        "{id}: {} is missing: the shared corpus must be beside the repository",
        pcap.display()
    );
    let cfg = config(case);
    let mut got = testing::events(&pcap, &cfg).unwrap_or_else(|e| panic!("{id}: {e}\n{cfg}"));
    if let Some(only) = case.get("only").and_then(Value::as_array) {
        got.retain(|e| e.get("type").is_some_and(|t| only.contains(t)));
    }
    let mut problems = Vec::new();
    if let Some(n) = case.get("count").and_then(Value::as_u64)
        && got.len() as u64 != n
    {
        problems.push(format!("{} events, expected {n}", got.len()));
    }
    if let Some(all) = case.get("all") {
        for (k, want) in expected(all) {
            let (k, want) = (&k, &want);
            if let Some(counts) = want.get("$count").and_then(Value::as_object) {
                for (value, n) in counts {
                    let have = got
                        .iter()
                        .filter(|e| e.get(k).and_then(Value::as_str) == Some(value.as_str()))
                        .count();
                    if Some(have as u64) != n.as_u64() {
                        problems.push(format!("`{k}` = {value} on {have} events, expected {n}"));
                    }
                }
                continue;
            }
            for (i, e) in got.iter().enumerate() {
                if let Err(p) = check(k, want, e, &format!("event {i}")) {
                    problems.push(p);
                }
            }
        }
    }
    if let Some(Value::Array(evs)) = case.get("events") {
        for (i, want) in evs.iter().enumerate() {
            let Some(e) = got.get(i) else {
                problems.push(format!("event {i} is missing"));
                continue;
            };
            for (k, w) in expected(want) {
                if let Err(p) = check(&k, &w, e, &format!("event {i}")) {
                    problems.push(p);
                }
            }
        }
    }
    if let Some(Value::Array(keys)) = case.get("absent") {
        for (i, e) in got.iter().enumerate() {
            for k in keys.iter().filter_map(Value::as_str) {
                if e.contains_key(k) {
                    problems.push(format!("event {i}: `{k}` should be absent, is {}", e[k]));
                }
            }
        }
    }
    if let Some(Value::Object(per)) = case.get("absent_in") {
        for (i, keys) in per {
            let e = i.parse::<usize>().ok().and_then(|i| got.get(i));
            for k in keys
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if e.is_some_and(|e| e.contains_key(k)) {
                    problems.push(format!("event {i}: `{k}` should be absent"));
                }
            }
        }
    }
    if let Some(g) = case.get("golden").and_then(Value::as_str)
        && let Err(p) = golden(g, &got)
    {
        problems.push(p);
    }
    assert!(
        problems.is_empty(),
        "{id} ({}):\n  {}\nconfig: {cfg}",
        case["pcap"],
        problems.join("\n  ")
    );
}

macro_rules! case {
    ($($name:ident => $id:literal),* $(,)?) => {
        $(#[test] fn $name() { run($id); })*

        /// Every case in corpus.yaml has its test line (and no line names a missing case).
        #[test]
        fn every_case_has_a_test() {
            let mut listed = vec![$($id),*];
            listed.sort_unstable();
            let mut data: Vec<String> = cases().keys().cloned().collect();
            data.sort_unstable();
            assert_eq!(listed, data);
        }
    };
}

case! {
    h1_minitwit => "H1",
    h2_basic_auth_golden => "H2",
    h4_wsgi => "H4",
    h4_send_request_response => "H4-send",
    h4_include_body => "H4-body",
    h4_send_all_headers => "H4-all-headers",
    h4_split_cookie => "H4-split-cookie",
    h4_tags => "H4-tags",
    h5_wsgi_drum => "H5",
    h7_real_ip => "H7",
    h8_x_forwarded_for => "H8",
    h10_hide_secret_get => "H10",
    h11_post_form => "H11",
    h11_send_headers => "H11-headers",
    h11_send_all_headers => "H11-all-headers",
    h11_include_body => "H11-body",
    h13_post_json => "H13",
    h14_max_message_size => "H14",
    h16_vlan => "H16",
    h17_unmatched => "H17",
    h19_100_continue => "H19",
    d1_google => "D1",
    d2_nxdomain => "D2",
    d2_include_authorities => "D2-authorities",
    d4_ns => "D4",
    d5_txt => "D5",
    d5_send_request_response => "D5-send",
    d7_tcp_axfr => "D7",
    d8_edns_ds => "D8",
    i1_icmp4_ping => "I1",
    i2_two_pings => "I2",
    i4_icmp6_ping => "I4",
    i5_icmp6_over_vlan => "I5",
    f1_tcp_flow => "F1",
    f2_udp_flow => "F2",
    f4_icmp6_vlan_flow => "F4",
    f5_qinq_flow => "F5",
    f8_community_id => "F8",
    // tls (EXPECTATIONS.md section 12 and the upstream golden files)
    s1_http2_ssl => "S1",
    s2_tls_sample2 => "S2",
    s2_include_ja3s => "S2-ja3s",
    s4_not_detailed => "S4",
    s5_no_certs_raw => "S5",
    s7_tls13 => "S7",
    s_golden_established => "S-golden-established",
    s_golden_not_detailed => "S-golden-not-detailed",
    s_golden_no_certs => "S-golden-no-certs",
    s_golden_all_options => "S-golden-all-options",
    s_golden_tls13 => "S-golden-tls13",
    s_golden_non_established => "S-golden-non-established",
    // issue 13
    m1_whitespaces => "M1",
    m2_int_string_operations => "M2",
    m4_long => "M4",
    m5_affected_rows => "M5",
    m7_gap => "M7",
    m8_prepare_statement => "M8",
    m10_connection => "M10",
    m_err_database_not_selected => "M-err",
    m_long_result => "M-long-result",
    m_windows_lineending => "M-crlf",
    p1_request_response => "P1",
    p2_insert => "P2",
    p3_insert_error => "P3",
    p4_rt => "P4",
    p5_extended_query => "P5",
    p6_long_result => "P6",
    r1_session => "R1",
    r2_one_transaction => "R2",
    r2_send_request_response => "R2-send",
    g1_find => "G1",
    g2_one_row => "G2",
    g2_send_request_response => "G2-send",
    g4_inserts => "G4",
    g5_session => "G5",
    g7_reply_request_reply => "G7",
    g8_op_msg => "G8",
    g10_use_db => "G10",
    g10_create_collection => "G10-create",
    g_insert_duplicate_key => "G-dupkey",
    g_more_rows => "G-more-rows",
    g_invalid_opcode => "G-invalid-opcode",
    mc1_bin_tcp_single_load_store => "MC1",
    mc2_bin_tcp_multi_store_load => "MC2",
    mc3_bin_tcp_counter_ops => "MC3",
    mc4_bin_tcp_delete => "MC4",
    mc5_bin_tcp_stats => "MC5",
    mc6_bin_udp => "MC6",
    mc7_text_tcp_multi_store_load => "MC7",
    mc8_text_tcp_counter_ops => "MC8-counter",
    mc8_text_tcp_delete => "MC8-delete",
    mc8_text_tcp_stats => "MC8-stats",
    mc9_text_tcp_single_load_store => "MC9",
    mc10_text_udp_single_store => "MC10-single",
    mc10_text_udp_counter_ops => "MC10-counter",
    mc10_text_udp_delete => "MC10-delete",
    mc10_text_udp_multi_store => "MC10-multi",
    mc_maxvalues => "MC-maxvalues",
    c1_create_keyspace => "C1",
    c2_create_table => "C2",
    c3_insert => "C3",
    c4_select => "C4",
    c5_create_index => "C5",
    c6_trace_err => "C6",
    c7_select_via_index => "C7",
    c8_mixed_frame => "C8",
    c8_ignored_ops => "C8-ignored",
    c9_compressed => "C9",
    t1_tutorial => "T1",
    t1_send_request_response => "T1-send",
    t2_framed => "T2",
    t3_ipv6 => "T3",
    t4_integration_without_idl => "T4",
    t1_with_idl => "T1-idl",
    a1_publish => "A1",
    a2_emit_receive => "A2",
    a3_channel_error => "A3",
    n1_nfs_v3 => "N1",
    n2_nfs_v4 => "N2",
    n3_nfs4_close => "N3",
    n4_layoutstats => "N4",
    n5_clone => "N5",
    sip1_calls => "SIP1",
    sip2_authenticated_register => "SIP2",
    sip3_tcp => "SIP3",
    dh1_dhcp => "DH1",
}
