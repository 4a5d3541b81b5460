//! The `udp` input against real clients (`socat`, Python): datagrams in, sender address, the
//! size limit, and what happens while the output is down: drops, all of them counted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use skiff_metrics::names;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagrams_from_socat_and_the_size_limit() {
    need("socat");
    let p = Pipeline::new(1024, true);
    let port = free_udp_port();
    let _stop = p.start(
        &skiff_input_net::UDP,
        &format!("host: '127.0.0.1:{port}'\nmax_message_size: 16"),
    );
    wait_status(&p).await;
    sh(&format!(
        "printf 'one datagram' | socat -u - UDP-SENDTO:127.0.0.1:{port}"
    ))
    .await;
    sh(&format!(
        "printf 'this one is longer than sixteen bytes' | socat -u - UDP-SENDTO:127.0.0.1:{port}"
    ))
    .await;
    sh(&format!(
        "printf 'two' | socat -u - UDP-SENDTO:127.0.0.1:{port}"
    ))
    .await;
    let seen = p.wait_for(2).await;
    assert_eq!(p.messages(), ["one datagram", "two"]);
    assert!(
        seen[0]["log"]["source"]["address"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert_eq!(seen[0]["input"]["type"], "udp");
    assert_eq!(
        p.counter(
            &names::NET_DROPPED,
            &[("input", "in"), ("reason", "too_large")]
        ),
        1
    );
}

/// UDP cannot push back. With the output down, datagrams beyond the queue and the input's hold
/// are dropped; every datagram sent is either delivered later or counted as dropped (by us or
/// by the kernel), none disappears without a count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_down_drops_are_counted_exactly() {
    let p = Pipeline::new(64, false);
    let port = free_udp_port();
    let _stop = p.start(
        &skiff_input_net::UDP,
        &format!("host: '127.0.0.1:{port}'\nread_buffer: 64KiB"),
    );
    wait_status(&p).await;
    let sent = 20_000;
    python(&format!(
        r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range({sent}):
    s.sendto(b"dgram-%06d" % i, ("127.0.0.1", {port}))
"#
    ))
    .await;
    // The kernel's drop count is sampled every second.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let received = p.counter(&names::INPUT_EVENTS, &[("input", "in")]);
    let full = p.counter(
        &names::NET_DROPPED,
        &[("input", "in"), ("reason", "pipeline_full")],
    );
    let kernel = p.counter(&names::UDP_KERNEL_DROPS, &[("input", "in")]);
    assert!(
        full > 0,
        "nothing was dropped by the input: {received} received"
    );
    assert_eq!(
        received + kernel,
        sent,
        "received {received}, kernel drops {kernel}"
    );
    // The drops are visible in the status document too.
    let status = p.ctx.status.snapshot();
    assert_eq!(status["in"]["dropped"]["pipeline_full"], full);
    p.gate.send(true).unwrap();
    let delivered = (received - full) as usize;
    p.wait_for(delivered).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(p.seen.lock().unwrap().len(), delivered);
    // What was kept arrives in order.
    let msgs = p.messages();
    assert!(msgs.windows(2).all(|w| w[0] < w[1]), "out of order");
}
