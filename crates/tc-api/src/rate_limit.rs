//! The request limit: at most N requests per second per action per SecretId (5 by default, as
//! the Tencent documentation states for the billing actions), as a token bucket that refills
//! continuously. In memory, per process: each web node enforces it for the requests it serves.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct RateLimiter {
    per_second: u32,
    buckets: Mutex<Buckets>,
}

#[derive(Debug, Default)]
struct Buckets {
    by_key: HashMap<(String, String), Bucket>,
    last_sweep: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `per_second == 0` lifts the limit.
    pub fn new(per_second: u32) -> RateLimiter {
        RateLimiter { per_second, buckets: Mutex::new(Buckets::default()) }
    }

    pub fn per_second(&self) -> u32 {
        self.per_second
    }

    /// Takes one request from the bucket of `(secret_id, action)` at `now`; `false` when the
    /// bucket is empty.
    pub fn try_acquire(&self, secret_id: &str, action: &str, now: Instant) -> bool {
        if self.per_second == 0 {
            return true;
        }
        let rate = f64::from(self.per_second);
        // The map only ever holds whole buckets, so a poisoned lock is still usable.
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget idle buckets now and then so the map does not grow without bound.
        if buckets.last_sweep.is_none_or(|last| now.saturating_duration_since(last) > Duration::from_secs(60)) {
            buckets.by_key.retain(|_, bucket| now.saturating_duration_since(bucket.at) < Duration::from_secs(60));
            buckets.last_sweep = Some(now);
        }
        let bucket =
            buckets.by_key.entry((secret_id.to_owned(), action.to_owned())).or_insert(Bucket { tokens: rate, at: now });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_per_second_per_action_and_key() {
        let limiter = RateLimiter::new(5);
        let start = Instant::now();
        for _ in 0..5 {
            assert!(limiter.try_acquire("AKID1", "DescribeAccountBalance", start));
        }
        assert!(!limiter.try_acquire("AKID1", "DescribeAccountBalance", start));
        // Another action and another key have their own budget.
        assert!(limiter.try_acquire("AKID1", "DescribeRenewInstances", start));
        assert!(limiter.try_acquire("AKID2", "DescribeAccountBalance", start));
        // A fifth of a second refills one request.
        assert!(limiter.try_acquire("AKID1", "DescribeAccountBalance", start + Duration::from_millis(200)));
        assert!(!limiter.try_acquire("AKID1", "DescribeAccountBalance", start + Duration::from_millis(200)));
        // Never more than a second's worth is saved up.
        let later = start + Duration::from_secs(10);
        let granted = (0..20).filter(|_| limiter.try_acquire("AKID1", "DescribeAccountBalance", later)).count();
        assert_eq!(granted, 5);
    }

    #[test]
    fn zero_lifts_the_limit() {
        let limiter = RateLimiter::new(0);
        let now = Instant::now();
        assert!((0..1000).all(|_| limiter.try_acquire("AKID", "A", now)));
    }
}
