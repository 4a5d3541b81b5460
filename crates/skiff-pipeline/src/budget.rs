//! The memory budget.
//!
//! Filebeat's memory is `queue.mem.events x max_message_bytes` in the worst case, which is how a
//! 4096-event queue of 10 MB lines becomes 40 GB. skiff accounts every buffer that holds event
//! data in *bytes*, against a limit the user sets, per stage: the memory queue, the disk queue's
//! read- and write-ahead, the file readers' line and multiline buffers, the outputs' encoded
//! batches. Each stage enforces its own limit (by waiting, by cutting a line, by splitting a
//! batch) and reports what it holds, so `/stats` and `/metrics` show where memory is, and
//! `docs/memory.md` can give the worst case as a sum of configured limits.

use std::sync::{Arc, Mutex};

use skiff_metrics::{Gauge, Registry, names};

/// The accounted stages of one process.
#[derive(Clone, Default)]
pub struct Budget {
    registry: Registry,
    stages: Arc<Mutex<Vec<Stage>>>,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.snapshot()).finish()
    }
}

/// One accounted stage: what it holds and its limit.
#[derive(Clone, Debug)]
pub struct Stage {
    name: String,
    used: Gauge,
    limit: u64,
}

impl Stage {
    /// Accounts `n` more bytes.
    pub fn add(&self, n: usize) {
        self.used.add(n as i64)
    }
    /// Releases `n` bytes.
    pub fn sub(&self, n: usize) {
        self.used.sub(n as i64)
    }
    /// Bytes accounted now.
    pub fn used(&self) -> u64 {
        self.used.get().max(0) as u64
    }
    /// The stage's limit in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }
    /// The stage's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Budget {
    /// A budget reporting into `registry`.
    pub fn new(registry: Registry) -> Self {
        Budget {
            registry,
            stages: Arc::default(),
        }
    }

    /// The stage `name` with `limit` bytes (the same stage, and the same accounting, if it
    /// exists; several readers of one kind share one stage).
    pub fn stage(&self, name: &str, limit: u64) -> Stage {
        let mut stages = self.stages.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = stages.iter().find(|s| s.name == name) {
            return s.clone();
        }
        let used = self
            .registry
            .gauge_with(&names::MEMORY_ACCOUNTED, &[("stage", name)]);
        self.registry
            .gauge_with(&names::MEMORY_LIMIT, &[("stage", name)])
            .set(limit.min(i64::MAX as u64) as i64);
        let s = Stage {
            name: name.to_owned(),
            used,
            limit,
        };
        stages.push(s.clone());
        s
    }

    /// `(stage, used, limit)` for every stage.
    pub fn snapshot(&self) -> Vec<(String, u64, u64)> {
        let stages = self.stages.lock().unwrap_or_else(|p| p.into_inner());
        stages
            .iter()
            .map(|s| (s.name.clone(), s.used(), s.limit))
            .collect()
    }

    /// The sum of every stage's limit: the configured worst case.
    pub fn total_limit(&self) -> u64 {
        self.snapshot()
            .iter()
            .map(|s| s.2)
            .fold(0u64, u64::saturating_add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_shared_by_name_and_reported() {
        let reg = Registry::new();
        let b = Budget::new(reg.clone());
        let a1 = b.stage("queue.mem", 100);
        let a2 = b.stage("queue.mem", 999);
        a1.add(40);
        a2.add(2);
        a1.sub(10);
        assert_eq!(a2.used(), 32);
        assert_eq!(a2.limit(), 100);
        b.stage("reader", 50);
        assert_eq!(b.total_limit(), 150);
        assert!(
            reg.prometheus()
                .contains("skiff_memory_accounted_bytes{stage=\"queue.mem\"} 32")
        );
    }
}
