//! Live capture.

use skiff_pipeline::{Failure, FailureKind, InputContext};

use crate::config::PacketbeatConfig;
use crate::engine::Engine;

/// Captures from the configured device until shutdown.
pub async fn run(cfg: PacketbeatConfig, engine: Engine, ctx: InputContext) -> Result<(), Failure> {
    let _ = (engine, ctx);
    let dev = cfg
        .interfaces
        .first()
        .map_or("any".to_owned(), |i| i.device.clone());
    Err(Failure::new(
        FailureKind::Other,
        format!(
            "live capture on {dev} is not available in this build: read a capture file with -I FILE (or packetbeat.interfaces.file)"
        ),
    ))
}
