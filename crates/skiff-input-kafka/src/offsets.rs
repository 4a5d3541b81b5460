//! Which offsets may be committed: one [`AckStream`] per assigned partition, and the step that
//! turns a stream's acknowledged watermark into a stored offset.
//!
//! Why it is built this way: librdkafka commits what the application *stored*
//! (`enable.auto.offset.store: false`), every second, at a rebalance and at close. The input
//! stores a partition's offset only from its stream's watermark, which moves over the contiguous
//! prefix of events the output acknowledged; so a commit never covers an event not delivered.
//! A partition taken away by a rebalance loses its stream (its *generation* ends): late acks of
//! that generation store nothing, and whoever gets the partition reads again from the last
//! commit (at least once).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use skiff_event::AckStream;
use tokio::sync::Notify;

/// A partition: topic and number.
pub type Key = (String, i32);

/// One partition of the current assignment.
pub struct Partition {
    /// Its acknowledgement stream: positions are "the next offset to read".
    pub stream: Arc<AckStream>,
    /// Which assignment of this partition the stream belongs to.
    generation: u64,
}

/// The partitions being read and the ones whose watermark moved; shared between the reading
/// task, the acknowledgement hooks and the task that stores offsets.
#[derive(Default)]
pub struct Offsets {
    parts: Mutex<HashMap<Key, Partition>>,
    dirty: Mutex<HashSet<(Key, u64)>>,
    generation: AtomicU64,
    /// Woken when a watermark moved.
    pub moved: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is one insert/remove/clone: a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Offsets {
    /// The stream of `key`, opened (as a new generation) when the partition has none.
    pub fn stream(self: &Arc<Self>, key: &Key) -> Arc<AckStream> {
        let mut parts = lock(&self.parts);
        if let Some(p) = parts.get(key) {
            return p.stream.clone();
        }
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let weak = Arc::downgrade(self);
        let hook_key = key.clone();
        let stream = AckStream::with_on_advance(move || {
            if let Some(me) = weak.upgrade() {
                lock(&me.dirty).insert((hook_key.clone(), generation));
                me.moved.notify_one();
            }
        });
        parts.insert(
            key.clone(),
            Partition {
                stream: stream.clone(),
                generation,
            },
        );
        stream
    }

    /// Ends the generation of `key` (revoked): its later acks store nothing.
    pub fn revoke(&self, key: &Key) {
        lock(&self.parts).remove(key);
    }

    /// The offsets to store now: for each partition whose watermark moved in its current
    /// generation, the next offset to read.
    pub fn take_moved(&self) -> Vec<(Key, i64)> {
        let dirty: Vec<(Key, u64)> = lock(&self.dirty).drain().collect();
        let parts = lock(&self.parts);
        dirty
            .into_iter()
            .filter_map(|(key, generation)| {
                let p = parts.get(&key).filter(|p| p.generation == generation)?;
                let pos = i64::try_from(p.stream.acked_position()?).ok()?;
                Some((key, pos))
            })
            .collect()
    }

    /// Every current stream (for the shutdown wait and the status document).
    pub fn streams(&self) -> Vec<(Key, Arc<AckStream>)> {
        lock(&self.parts)
            .iter()
            .map(|(k, p)| (k.clone(), p.stream.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_acknowledged_prefix_of_the_current_generation_is_stored() {
        let o = Arc::new(Offsets::default());
        let k: Key = ("t".into(), 0);
        let s = o.stream(&k);
        let t10 = s.token(11);
        let t11 = s.token(12);
        let t12 = s.token(13);
        assert!(o.take_moved().is_empty());
        t11.ack();
        assert!(o.take_moved().is_empty(), "a gap holds the watermark back");
        t10.ack();
        assert_eq!(o.take_moved(), vec![(k.clone(), 12)]);
        // Revoked: the late ack of the old generation stores nothing.
        o.revoke(&k);
        t12.ack();
        assert!(o.take_moved().is_empty());
        // Assigned again: a new stream.
        let s2 = o.stream(&k);
        assert!(!Arc::ptr_eq(&s, &s2));
        s2.token(21).ack();
        assert_eq!(o.take_moved(), vec![(k, 21)]);
    }
}
