//! Who is shipping: the agent's identity (`agent.*`, `host.name`) and process metrics.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use skiff_metrics::{Registry, names};
use skiff_pipeline::AgentInfo;

/// skiff's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Reads (or creates, on first start) `path.data/meta.json` holding `agent.id`, so the id
/// survives restarts as the Beats' does.
pub fn identity(name: Option<&str>, data: &Path) -> anyhow::Result<Arc<AgentInfo>> {
    let hostname = gethostname::gethostname().to_string_lossy().into_owned();
    let meta = data.join("meta.json");
    let id = match std::fs::read(&meta) {
        Ok(bytes) => serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("uuid").and_then(|u| u.as_str()).map(str::to_owned))
            .with_context(|| {
                format!(
                    "{} is damaged: delete it to give this agent a new agent.id",
                    meta.display()
                )
            })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data)
                .with_context(|| format!("cannot create path.data {}", data.display()))?;
            let id = uuid::Uuid::new_v4().to_string();
            let body =
                serde_json::json!({"uuid": id, "first_start": skiff_event::Timestamp::now()});
            let tmp = meta.with_extension("json.new");
            std::fs::write(&tmp, body.to_string())
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            std::fs::rename(&tmp, &meta)
                .with_context(|| format!("cannot write {}", meta.display()))?;
            id
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", meta.display())),
    };
    Ok(Arc::new(AgentInfo {
        name: name.map(str::to_owned).unwrap_or_else(|| hostname.clone()),
        hostname,
        id,
        ephemeral_id: uuid::Uuid::new_v4().to_string(),
        version: VERSION.to_owned(),
    }))
}

/// Registers the process gauges (RSS, CPU time, uptime), read from `/proc` when asked.
pub fn register_process_metrics(reg: &Registry) {
    let start = Instant::now();
    reg.gauge_fn(&names::PROCESS_UPTIME_MS, move || {
        start.elapsed().as_millis() as f64
    });
    reg.gauge_fn(&names::PROCESS_RSS_BYTES, || {
        procfs::process::Process::myself()
            .and_then(|p| p.statm())
            .map(|s| (s.resident * procfs::page_size()) as f64)
            .unwrap_or(0.0)
    });
    reg.gauge_fn(&names::PROCESS_CPU_MS, || {
        procfs::process::Process::myself()
            .and_then(|p| p.stat())
            .map(|s| (s.utime + s.stime) as f64 * 1000.0 / procfs::ticks_per_second() as f64)
            .unwrap_or(0.0)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_id_survives_restarts_and_ephemeral_id_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let a = identity(None, dir.path()).unwrap();
        let b = identity(Some("n"), dir.path()).unwrap();
        assert_eq!(a.id, b.id);
        assert_ne!(a.ephemeral_id, b.ephemeral_id);
        assert_eq!(b.name, "n");
        std::fs::write(dir.path().join("meta.json"), "garbage").unwrap();
        let err = identity(None, dir.path()).unwrap_err();
        assert!(format!("{err:#}").contains("is damaged"));
    }
}
