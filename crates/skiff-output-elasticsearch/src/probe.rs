//! `skiff test output` for Elasticsearch: each layer checked on its own, so a failure names the
//! layer (DNS, TCP, TLS, credentials, cluster) and what to do about it.

use std::time::{Duration, Instant};

use serde_json::Value;
use skiff_config::Node;
use skiff_pipeline::component::ProbeFuture;
use skiff_pipeline::{BuildContext, ProbeStep};
use tokio::net::TcpStream;

use crate::client::error_text;
use crate::config::Host;
use crate::{Shared, prepare};

/// Heap or disk use at or above this (percent) gets a warning.
const NEARLY_FULL: f64 = 85.0;

/// [`ProbeStep::new`] for this probe's hints, which are mostly composed messages.
fn step(
    name: impl Into<String>,
    ok: bool,
    detail: impl Into<String>,
    hint: Option<String>,
) -> ProbeStep {
    ProbeStep {
        hint,
        ..ProbeStep::new(name, ok, detail, None)
    }
}

/// The probe: every host in turn, stopping at a host's first failed step.
pub fn probe(node: &Node, _ctx: &BuildContext) -> ProbeFuture {
    let prepared = prepare(node);
    Box::pin(async move {
        let shared = match prepared {
            Ok(s) => s,
            Err(e) => {
                return vec![step(
                    "configuration",
                    false,
                    e.to_string(),
                    Some("fix output.elasticsearch as the message says".into()),
                )];
            }
        };
        let mut steps = Vec::new();
        for host in &shared.hosts {
            probe_host(&shared, host, &mut steps).await;
        }
        steps
    })
}

async fn probe_host(shared: &Shared, host: &Host, steps: &mut Vec<ProbeStep>) {
    let timeout = shared.cfg.timeout.0.min(Duration::from_secs(30));
    let target = format!("{}:{}", host.name, host.port);

    // DNS.
    let started = Instant::now();
    let addrs: Vec<_> = match tokio::time::timeout(
        timeout,
        tokio::net::lookup_host((host.name.as_str(), host.port)),
    )
    .await
    {
        Ok(Ok(a)) => a.collect(),
        Ok(Err(e)) => {
            steps.push(step(
                format!("dns {}", host.name),
                false,
                e.to_string(),
                Some(format!(
                    "check the host name `{}` and this machine's DNS settings",
                    host.name
                )),
            ));
            return;
        }
        Err(_) => {
            steps.push(step(
                format!("dns {}", host.name),
                false,
                "timed out",
                Some("check this machine's DNS servers".into()),
            ));
            return;
        }
    };
    let Some(addr) = addrs.first().copied() else {
        steps.push(step(
            format!("dns {}", host.name),
            false,
            "no address",
            Some("the name resolves to nothing".into()),
        ));
        return;
    };
    steps.push(step(
        format!("dns {}", host.name),
        true,
        format!(
            "{} in {} ms",
            addrs
                .iter()
                .map(|a| a.ip().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            started.elapsed().as_millis()
        ),
        None,
    ));

    // TCP.
    let started = Instant::now();
    let tcp = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            steps.push(step(
                format!("connect {addr}"),
                false,
                e.to_string(),
                Some(skiff_tls::explain(&e, &target)),
            ));
            return;
        }
        Err(_) => {
            steps.push(step(
                format!("connect {addr}"),
                false,
                format!("no answer within {} s", timeout.as_secs()),
                Some("a firewall may drop the packets, or the port is wrong".into()),
            ));
            return;
        }
    };
    steps.push(step(
        format!("connect {addr}"),
        true,
        format!("connected in {} ms", started.elapsed().as_millis()),
        None,
    ));

    // TLS.
    if host.tls {
        let started = Instant::now();
        match tokio::time::timeout(
            timeout,
            skiff_tls::handshake(tcp, &host.name, shared.tls.clone()),
        )
        .await
        {
            Ok(Ok((_, peer))) => {
                let (detail, hint) = match peer {
                    Some(p) => {
                        let hint = (p.expires_in_days < 30).then(|| {
                            format!(
                                "warning: the certificate expires in {} days: renew it",
                                p.expires_in_days
                            )
                        });
                        (format!("{p}; {} ms", started.elapsed().as_millis()), hint)
                    }
                    None => ("no certificate presented".to_owned(), None),
                };
                steps.push(step("tls handshake", true, detail, hint));
            }
            Ok(Err(e)) => {
                steps.push(step(
                    "tls handshake",
                    false,
                    e.to_string(),
                    Some(skiff_tls::explain(&e, &host.name)),
                ));
                return;
            }
            Err(_) => {
                steps.push(step(
                    "tls handshake",
                    false,
                    "timed out",
                    Some(
                        "the server accepted TCP but did not answer TLS: is it a TLS port?".into(),
                    ),
                ));
                return;
            }
        }
    } else {
        drop(tcp);
    }

    // Authentication and version: GET /.
    let root = match get(shared, &format!("{}/", host.base)).await {
        Ok((200, v, headers_ok)) => {
            let version = v
                .pointer("/version/number")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned();
            let cluster = v.get("cluster_name").and_then(Value::as_str).unwrap_or("?");
            steps.push(step(
                "authentication",
                true,
                format!("GET / accepted; cluster `{cluster}`"),
                None,
            ));
            let major: u32 = version
                .split('.')
                .next()
                .and_then(|m| m.parse().ok())
                .unwrap_or(0);
            let mut hint = None;
            if !headers_ok {
                hint = Some("warning: no `X-elastic-product: Elasticsearch` header: this may not be Elasticsearch".into());
            }
            steps.push(step(
                "version",
                major >= 7,
                format!("Elasticsearch {version}"),
                if major < 7 {
                    Some("skiff needs Elasticsearch 7.x or 8.x".into())
                } else {
                    hint
                },
            ));
            major >= 7
        }
        Ok((401, v, _)) => {
            steps.push(step(
                "authentication",
                false,
                format!("401: {}", error_text(v.to_string().as_bytes())),
                Some("check username/password or api_key".into()),
            ));
            false
        }
        Ok((403, v, _)) => {
            steps.push(step(
                "authentication",
                false,
                format!("403: {}", error_text(v.to_string().as_bytes())),
                Some("the user lacks the `monitor` cluster privilege (needed for this check) or is not allowed here".into()),
            ));
            false
        }
        Ok((s, v, _)) => {
            steps.push(step(
                "authentication",
                false,
                format!(
                    "GET / answered {s}: {}",
                    error_text(v.to_string().as_bytes())
                ),
                Some("check the URL and `path`".into()),
            ));
            false
        }
        Err(e) => {
            steps.push(step("authentication", false, e.clone(), Some(e)));
            false
        }
    };
    if !root {
        return;
    }

    // Cluster health.
    match get(shared, &format!("{}/_cluster/health", host.base)).await {
        Ok((200, v, _)) => {
            let status = v
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned();
            let hint = match status.as_str() {
                "green" => None,
                "yellow" => Some("warning: yellow: some replicas are not allocated (normal on a one-node cluster)".to_owned()),
                _ => Some("the cluster is red: some primary shards are missing; writes to them fail".to_owned()),
            };
            steps.push(step(
                "cluster health",
                status != "red",
                format!(
                    "{status}, {} nodes",
                    v.get("number_of_nodes").unwrap_or(&Value::Null)
                ),
                hint,
            ));
        }
        Ok((s, v, _)) => steps.push(step(
            "cluster health",
            false,
            format!("{s}: {}", error_text(v.to_string().as_bytes())),
            Some("the user needs the `monitor` cluster privilege for this check".into()),
        )),
        Err(e) => steps.push(step("cluster health", false, e, None)),
    }

    // Node resources.
    match get(shared, &format!("{}/_nodes/stats/jvm,fs", host.base)).await {
        Ok((200, v, _)) => {
            let mut warnings = Vec::new();
            let mut seen = 0;
            if let Some(nodes) = v.get("nodes").and_then(Value::as_object) {
                for (id, n) in nodes {
                    seen += 1;
                    let name = n.get("name").and_then(Value::as_str).unwrap_or(id);
                    if let Some(h) = n
                        .pointer("/jvm/mem/heap_used_percent")
                        .and_then(Value::as_f64)
                        && h >= NEARLY_FULL
                    {
                        warnings.push(format!("node {name}: heap {h:.0}% used"));
                    }
                    let total = n
                        .pointer("/fs/total/total_in_bytes")
                        .and_then(Value::as_f64);
                    let avail = n
                        .pointer("/fs/total/available_in_bytes")
                        .and_then(Value::as_f64);
                    if let (Some(t), Some(a)) = (total, avail)
                        && t > 0.0
                    {
                        let used = 100.0 * (t - a) / t;
                        if used >= NEARLY_FULL {
                            warnings.push(format!("node {name}: disk {used:.0}% used"));
                        }
                    }
                }
            }
            let hint = (!warnings.is_empty()).then(|| {
                format!(
                    "warning: {}: past the disk watermarks (85/90/95%) Elasticsearch stops allocating and then blocks writes; free space or add nodes",
                    warnings.join("; ")
                )
            });
            let detail = if warnings.is_empty() {
                format!("{seen} nodes: heap and disk below {NEARLY_FULL:.0}%")
            } else {
                format!("{seen} nodes: {}", warnings.join("; "))
            };
            steps.push(step("node resources", true, detail, hint));
        }
        Ok((s, _, _)) => steps.push(step(
            "node resources",
            true,
            format!("not checked (_nodes/stats answered {s})"),
            None,
        )),
        Err(e) => steps.push(step(
            "node resources",
            true,
            format!("not checked: {e}"),
            None,
        )),
    }
}

/// GET returning (status, JSON body or Null, whether the product header is there).
async fn get(shared: &Shared, url: &str) -> Result<(u16, Value, bool), String> {
    let resp = shared
        .http
        .get(url)
        .headers(shared.headers.clone())
        .send()
        .await
        .map_err(|e| skiff_tls::explain(&e, url))?;
    let status = resp.status().as_u16();
    let product = resp
        .headers()
        .get("x-elastic-product")
        .is_some_and(|v| v.as_bytes() == b"Elasticsearch");
    let body = crate::client::read_capped(resp, 16 << 20).await?;
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    Ok((status, v, product))
}
