//! The per-identity rate limit on signing: a token bucket per SPIFFE id.
//!
//! Each identity may sign `burst` certificates at once and `rate` a second
//! after that. A workload renews once per half lifetime, so the limit only
//! bites on a caller that loops (a bug, or an attacker holding one token);
//! it keeps one identity from starving the others of the CA's CPU.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::SpiffeId;

/// How many identities are tracked before full buckets are forgotten.
const TRACKED: usize = 65_536;

#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<SpiffeId, Bucket>>,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `rate` signatures a second per identity, `burst` at once.
    pub fn new(rate: f64, burst: u32) -> Self {
        RateLimiter {
            rate: rate.max(0.0),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token from `id`'s bucket at `now`; `false` if it is empty.
    pub fn allow(&self, id: &SpiffeId, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= TRACKED && !buckets.contains_key(id) {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| b.refilled(now, rate, burst) < burst);
        }
        let bucket = buckets.entry(id.clone()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        bucket.tokens = bucket.refilled(now, self.rate, self.burst);
        bucket.at = bucket.at.max(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Bucket {
    fn refilled(&self, now: Instant, rate: f64, burst: f64) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * rate).min(burst)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_then_the_rate_per_identity() {
        let limiter = RateLimiter::new(2.0, 3);
        let a = SpiffeId::new("ns", "a");
        let b = SpiffeId::new("ns", "b");
        let t0 = Instant::now();
        assert!((0..3).all(|_| limiter.allow(&a, t0)));
        assert!(!limiter.allow(&a, t0));
        // Another identity has its own bucket.
        assert!(limiter.allow(&b, t0));
        // Half a second at 2/s refills one.
        let t1 = t0 + Duration::from_millis(500);
        assert!(limiter.allow(&a, t1));
        assert!(!limiter.allow(&a, t1));
        // Never more than the burst, however long the wait.
        let t2 = t1 + Duration::from_secs(3600);
        assert_eq!((0..10).filter(|_| limiter.allow(&a, t2)).count(), 3);
    }
}
