//! `rate_limit`: drops events above a rate, per group of field values (libbeat's, with its
//! token-bucket algorithm).
//!
//! ```yaml
//! - rate_limit:
//!     limit: "400/s"                  # N per s, m or h
//!     fields: [cloudfoundry.org.name] # one bucket per value; default: one bucket
//! ```
//!
//! Each bucket holds up to `N × burst_multiplier` tokens (`N` of the limit `N/unit`), starts full, refills at the
//! limit's rate, and an event takes one token or is dropped. A dropped event is acknowledged as
//! handled (dropping on purpose is not a loss). Buckets are kept for at most [`MAX_BUCKETS`]
//! groups; past that, full (idle) buckets are forgotten first, and if all are busy the oldest
//! half is, so hostile field values cannot grow memory without bound.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use serde::Deserialize;
use skiff_config::{ConfigErrors, Node};
use skiff_event::Event;
use skiff_pipeline::{BuildContext, Processor, Verdict};

use crate::fields::OneOrMany;
use crate::{error_at, plugin};

plugin!(RATE_LIMIT, "rate_limit", build);

/// The most groups tracked at once.
pub const MAX_BUCKETS: usize = 10_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBucket {
    /// `burst_multiplier`: bucket size as a multiple of the limit. Default 1.
    #[serde(default = "one")]
    burst_multiplier: f64,
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Algorithm {
    token_bucket: Option<TokenBucket>,
}

/// `rate_limit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `limit`: `N/s`, `N/m` or `N/h`. Required.
    limit: String,
    /// `fields`: fields whose values pick the bucket. Default: one bucket for all.
    #[serde(default)]
    fields: Option<OneOrMany>,
    /// `algorithm`: `token_bucket` (the only one). Default token_bucket.
    #[serde(default)]
    algorithm: Option<Algorithm>,
}

/// Tokens per second and bucket size.
#[derive(Debug, Clone, Copy)]
struct Rate {
    per_sec: f64,
    capacity: f64,
}

/// `N/unit` as (N, seconds per unit).
fn parse_limit(s: &str) -> Result<(f64, f64), String> {
    let (n, unit) = s
        .split_once('/')
        .ok_or_else(|| format!("limit `{s}` is not like `100/s`"))?;
    let n: f64 = n
        .trim()
        .parse()
        .map_err(|_| format!("limit `{s}`: `{n}` is not a number"))?;
    let secs = match unit.trim() {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("limit `{s}`: unit `{other}` is not s, m or h")),
    };
    if !(n > 0.0 && n.is_finite()) {
        return Err(format!("limit `{s}` must be positive"));
    }
    Ok((n, secs))
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of all groups.
struct Buckets {
    rate: Rate,
    map: HashMap<String, Bucket>,
}

impl Buckets {
    /// Whether the group may pass one event at `now`.
    fn allow(&mut self, key: &str, now: Instant) -> bool {
        if !self.map.contains_key(key) && self.map.len() >= MAX_BUCKETS {
            self.evict(now);
        }
        let rate = self.rate;
        let b = self.map.entry(key.to_owned()).or_insert(Bucket {
            tokens: rate.capacity,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate.per_sec).min(rate.capacity);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn evict(&mut self, now: Instant) {
        let rate = self.rate;
        self.map.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate.per_sec
                < rate.capacity
        });
        if self.map.len() >= MAX_BUCKETS {
            let mut ages: Vec<Instant> = self.map.values().map(|b| b.at).collect();
            ages.sort();
            let cut = ages[ages.len() / 2];
            self.map.retain(|_, b| b.at > cut);
        }
    }
}

struct RateLimit {
    fields: Vec<String>,
    buckets: Mutex<Buckets>,
}

fn build(node: &Node, _ctx: &BuildContext) -> Result<Box<dyn Processor>, ConfigErrors> {
    let cfg: Config = node.deserialize()?;
    let (n, secs) =
        parse_limit(&cfg.limit).map_err(|e| error_at(node.get("limit").unwrap_or(node), e))?;
    let burst = cfg
        .algorithm
        .and_then(|a| a.token_bucket)
        .map_or(1.0, |t| t.burst_multiplier);
    if !(burst >= 1.0 && burst.is_finite()) {
        return Err(error_at(node, "burst_multiplier must be at least 1").into());
    }
    let mut fields = cfg.fields.map(OneOrMany::into_vec).unwrap_or_default();
    fields.sort();
    Ok(Box::new(RateLimit {
        fields,
        buckets: Mutex::new(Buckets {
            rate: Rate {
                per_sec: n / secs,
                capacity: (n * burst).max(1.0),
            },
            map: HashMap::new(),
        }),
    }))
}

impl RateLimit {
    fn key(&self, event: &Event) -> String {
        let mut key = String::new();
        for f in &self.fields {
            key.push_str(f);
            key.push('=');
            if let Some(v) = event.get(f) {
                key.push_str(&v.to_text());
            }
            key.push('\u{1}');
        }
        key
    }
}

impl Processor for RateLimit {
    fn process(&self, event: &mut Event) -> Verdict {
        let key = self.key(event);
        let allowed = match self.buckets.lock() {
            Ok(mut b) => b.allow(&key, Instant::now()),
            Err(_) => true,
        };
        if allowed {
            Verdict::Keep
        } else {
            Verdict::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::{Buckets, MAX_BUCKETS, Rate, parse_limit};
    use crate::testing::*;
    use serde_json::json;
    use std::collections::HashMap;
    use std::time::Duration;
    use std::time::Instant;

    #[test]
    fn limits_parse() {
        assert_eq!(parse_limit("10000/m").unwrap(), (10000.0, 60.0));
        assert_eq!(parse_limit("400/s").unwrap(), (400.0, 1.0));
        for bad in ["10", "x/s", "10/d", "0/s", "-1/s"] {
            assert!(parse_limit(bad).is_err(), "{bad}");
        }
        assert!(build("processors: [{rate_limit: {limit: 10/d}}]").is_err());
    }

    /// The bucket on a clock the test moves: a full burst, then one event per 1/rate.
    #[test]
    fn token_bucket() {
        let t0 = Instant::now();
        let mut b = Buckets {
            rate: Rate {
                per_sec: 2.0,
                capacity: 2.0,
            },
            map: HashMap::new(),
        };
        assert!(b.allow("k", t0));
        assert!(b.allow("k", t0));
        assert!(!b.allow("k", t0), "burst used up");
        assert!(b.allow("other", t0), "another group has its own bucket");
        assert!(!b.allow("k", t0 + Duration::from_millis(400)));
        assert!(b.allow("k", t0 + Duration::from_millis(500)));
        assert!(b.allow("k", t0 + Duration::from_secs(10)));
        assert!(b.allow("k", t0 + Duration::from_secs(10)));
        assert!(
            !b.allow("k", t0 + Duration::from_secs(10)),
            "refill stops at the bucket size"
        );
        // Many groups: memory stays bounded.
        for i in 0..(MAX_BUCKETS * 2) {
            b.allow(&i.to_string(), t0 + Duration::from_secs(20));
        }
        assert!(b.map.len() <= MAX_BUCKETS);
    }

    /// Filebeat's documentation examples, through the processor (a limit far below the test's
    /// speed, so the second event of a group is always over it).
    #[test]
    fn doc_examples() {
        let p = build("processors:\n- rate_limit:\n    limit: \"1/h\"\n").unwrap();
        assert!(run(&p, event("a")).is_some());
        assert!(run(&p, event("b")).is_none());
        let p = build("processors:\n- rate_limit:\n    fields:\n    - cloudfoundry.org.name\n    limit: \"1/h\"\n").unwrap();
        let org = |name: &str| {
            let mut e = event("m");
            e.insert("cloudfoundry.org.name", json!(name));
            e
        };
        assert!(run(&p, org("acme")).is_some());
        assert!(run(&p, org("other")).is_some());
        assert!(run(&p, org("acme")).is_none());
        let p = build("processors: [{rate_limit: {limit: 1/h, algorithm: {token_bucket: {burst_multiplier: 3}}}}]").unwrap();
        assert_eq!((0..5).filter(|_| run(&p, event("m")).is_some()).count(), 3);
    }
}
