//! Choosing a partition the way Beats does, so that switching from Filebeat keeps each key on
//! the partition it was on.
//!
//! Beats (through Sarama) hashes with 32-bit FNV-1a and maps the hash with
//! `abs(int32(hash) % partitions)`. librdkafka's own `fnv1a` partitioner takes the hash as
//! unsigned, which lands differently for half the keys, so skiff picks the partition itself
//! from the topic's partition count.

use std::sync::atomic::{AtomicU64, Ordering};

use skiff_event::Event;

use crate::config::Partitioning;

/// 32-bit FNV-1a.
pub fn fnv1a(parts: &[&[u8]]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for p in parts {
        for &b in *p {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    h
}

/// Sarama's mapping of a hash to a partition.
pub fn hash_to_partition(hash: u32, partitions: i32) -> i32 {
    if partitions <= 0 {
        return 0;
    }
    let p = (hash as i32) % partitions;
    if p < 0 { -p } else { p }
}

/// Picks partitions for one output client.
pub struct Partitioner {
    mode: Partitioning,
    counter: AtomicU64,
    seed: AtomicU64,
}

impl Partitioner {
    /// A partitioner for `mode`.
    pub fn new(mode: Partitioning) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9, |d| d.as_nanos() as u64);
        Partitioner {
            mode,
            counter: AtomicU64::new(0),
            seed: AtomicU64::new(seed | 1),
        }
    }

    /// The partition of `ev` (with message key `key`) in a topic of `partitions` partitions.
    pub fn pick(&self, ev: &Event, key: Option<&str>, partitions: i32) -> i32 {
        if partitions <= 1 {
            return 0;
        }
        match &self.mode {
            Partitioning::Random => self.random(partitions),
            Partitioning::RoundRobin(group) => {
                let n = self.counter.fetch_add(1, Ordering::Relaxed) / (*group as u64);
                (n % partitions as u64) as i32
            }
            Partitioning::Hash { fields, random } => {
                let hash = if fields.is_empty() {
                    key.map(|k| fnv1a(&[k.as_bytes()]))
                } else {
                    let values: Vec<String> = fields
                        .iter()
                        .filter_map(|f| ev.get(f).map(|v| v.to_text()))
                        .collect();
                    (!values.is_empty()).then(|| {
                        let parts: Vec<&[u8]> = values.iter().map(|s| s.as_bytes()).collect();
                        fnv1a(&parts)
                    })
                };
                match hash {
                    Some(h) => hash_to_partition(h, partitions),
                    None if *random => self.random(partitions),
                    None => 0,
                }
            }
        }
    }

    /// xorshift: good enough to spread events, no dependency.
    fn random(&self, partitions: i32) -> i32 {
        let mut x = self.seed.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.seed.store(x, Ordering::Relaxed);
        (x % partitions as u64) as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn fnv1a_known_values() {
        // Reference values of 32-bit FNV-1a.
        assert_eq!(fnv1a(&[b""]), 0x811c_9dc5);
        assert_eq!(fnv1a(&[b"a"]), 0xe40c_292c);
        assert_eq!(fnv1a(&[b"foobar"]), 0xbf9c_f968);
    }

    #[test]
    fn sarama_mapping_takes_the_absolute_value() {
        // 0xbf9cf968 is negative as i32: -1080231576 % 7 = -4 -> 4.
        assert_eq!(hash_to_partition(0xbf9c_f968, 7), 4);
        assert_eq!(hash_to_partition(0xe40c_292c, 1), 0);
    }

    #[test]
    fn modes() {
        let ev = Event::new(Arc::new(Default::default()), "m".into());
        let rr = Partitioner::new(Partitioning::RoundRobin(2));
        let got: Vec<i32> = (0..6).map(|_| rr.pick(&ev, None, 3)).collect();
        assert_eq!(got, vec![0, 0, 1, 1, 2, 2]);
        let h = Partitioner::new(Partitioning::Hash {
            fields: vec![],
            random: false,
        });
        assert_eq!(h.pick(&ev, Some("foobar"), 7), 4);
        assert_eq!(h.pick(&ev, None, 7), 0);
        let f = Partitioner::new(Partitioning::Hash {
            fields: vec!["message".into()],
            random: false,
        });
        assert_eq!(f.pick(&ev, None, 7), hash_to_partition(fnv1a(&[b"m"]), 7));
        let r = Partitioner::new(Partitioning::Random);
        assert!(
            (0..100)
                .map(|_| r.pick(&ev, None, 4))
                .all(|p| (0..4).contains(&p))
        );
    }
}
