//! Live capture through libpcap (the `pcap` crate).
//!
//! On Linux libpcap captures through the memory-mapped TPACKET_V3 ring, so `type: af_packet`
//! and `type: pcap` are the same capture here; `buffer_size_mb` sizes the ring. The filter is
//! `bpf_filter` when given, else the one Packetbeat generates from the protocols' ports
//! ([`Engine::bpf_filter`]). The kernel's drop counters are read every second into
//! `packetbeat.capture.kernel_dropped` / `interface_dropped`.

use std::time::Instant;

use skiff_event::{Event, Timestamp};
use skiff_metrics::{Registry, names};
use skiff_pipeline::{Failure, FailureKind};
use tokio_util::sync::CancellationToken;

use crate::config::InterfaceConfig;
use crate::decode::{Decoder, LinkType, Skip};
use crate::engine::Engine;
use crate::error::PacketError;

/// Events per batch handed to the pipeline.
const BATCH: usize = 512;

/// A capture device: index (from 1, as `skiff devices` prints it), name, description,
/// addresses.
pub type DeviceInfo = (usize, String, String, Vec<String>);

/// Every capture device.
pub fn devices() -> Result<Vec<DeviceInfo>, PacketError> {
    let list = pcap::Device::list().map_err(|e| PacketError::Capture {
        device: "(list)".into(),
        reason: e.to_string(),
    })?;
    Ok(list
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let addrs = d.addresses.iter().map(|a| a.addr.to_string()).collect();
            (i + 1, d.name, d.desc.unwrap_or_default(), addrs)
        })
        .collect())
}

/// The device name of `device`: a name, `any`, or an index from [`devices`].
fn resolve(device: &str) -> Result<String, PacketError> {
    let Ok(index) = device.parse::<usize>() else {
        return Ok(device.to_owned());
    };
    devices()?
        .into_iter()
        .find(|d| d.0 == index)
        .map(|d| d.1)
        .ok_or_else(|| PacketError::Capture {
            device: device.to_owned(),
            reason: "no device with this index (see `skiff devices`)".into(),
        })
}

/// Checks that a BPF filter compiles (`skiff test config` exits 1 on an invalid one).
pub fn check_filter(filter: &str) -> Result<(), String> {
    let cap = pcap::Capture::dead(pcap::Linktype(1)).map_err(|e| e.to_string())?;
    cap.compile(filter, true)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn capture_err(device: &str, e: impl std::fmt::Display) -> Failure {
    let reason = e.to_string();
    let hint = if reason.contains("ermission") || reason.contains("not permitted") {
        " (capturing needs root or CAP_NET_RAW and CAP_NET_ADMIN)"
    } else {
        ""
    };
    Failure::new(
        FailureKind::Io,
        PacketError::Capture {
            device: device.to_owned(),
            reason: format!("{reason}{hint}"),
        }
        .to_string(),
    )
}

/// Captures from `iface` until `stop`, sending event batches with `send`. Runs on a blocking
/// thread.
pub fn capture(
    engine: &mut Engine,
    iface: &InterfaceConfig,
    metrics: &Registry,
    stop: &CancellationToken,
    mut send: impl FnMut(Vec<Event>) -> bool,
) -> Result<(), Failure> {
    let device = resolve(&iface.device).map_err(|e| capture_err(&iface.device, e))?;
    let filter = iface
        .bpf_filter
        .clone()
        .or_else(|| engine.bpf_filter(iface.with_vlans));
    let buffer = i32::try_from(u64::from(iface.buffer_size_mb) << 20).unwrap_or(i32::MAX);
    let mut cap = pcap::Capture::from_device(device.as_str())
        .map_err(|e| capture_err(&device, e))?
        .snaplen(i32::try_from(iface.snaplen).unwrap_or(65535))
        .promisc(device != "any")
        .timeout(500)
        .buffer_size(buffer)
        .immediate_mode(true)
        .open()
        .and_then(|c| c.setnonblock())
        .map_err(|e| capture_err(&device, e))?;
    if let Some(f) = &filter {
        cap.filter(f, true)
            .map_err(|e| capture_err(&device, format!("BPF filter `{f}`: {e}")))?;
    }
    let dlt = cap.get_datalink().0;
    let link = u32::try_from(dlt)
        .ok()
        .and_then(LinkType::from_dlt)
        .ok_or_else(|| capture_err(&device, PacketError::LinkType(dlt as u32)))?;
    tracing::info!(device = %device, filter = ?filter, "packet capture started");
    let kernel_dropped = metrics.gauge(&names::PACKET_KERNEL_DROPPED);
    let if_dropped = metrics.gauge(&names::PACKET_IF_DROPPED);
    let mut decoder = Decoder::new(link);
    let mut out = Vec::with_capacity(BATCH);
    let mut last_flush = Instant::now();
    while !stop.is_cancelled() {
        let clock = Timestamp::now();
        match cap.next_packet() {
            Ok(p) => {
                let ts = Timestamp(
                    p.header.ts.tv_sec.saturating_mul(1_000_000_000) + p.header.ts.tv_usec * 1000,
                );
                match decoder.decode(ts, p.data) {
                    Ok(pkt) => engine.packet(&pkt, clock, &mut out),
                    Err(Skip::Malformed) => engine.malformed(),
                    Err(_) => engine.skipped(),
                }
            }
            // Non-blocking: nothing to read now. A short sleep keeps an idle capture cheap
            // and lets shutdown and the clock be checked.
            Err(pcap::Error::TimeoutExpired) => {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            Err(e) => return Err(capture_err(&device, e)),
        }
        if last_flush.elapsed().as_millis() >= 200 || out.len() >= BATCH {
            last_flush = Instant::now();
            engine.tick(clock, &mut out);
            if let Ok(s) = cap.stats() {
                kernel_dropped.set(i64::from(s.dropped));
                if_dropped.set(i64::from(s.if_dropped));
            }
            if !out.is_empty() && !send(std::mem::take(&mut out)) {
                return Ok(());
            }
        }
    }
    engine.finish(Timestamp::now(), &mut out);
    if !out.is_empty() {
        send(out);
    }
    Ok(())
}
