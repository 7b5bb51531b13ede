//! Token buckets for per-connection rate limits.

use std::time::{Duration, Instant};

/// Allows `rate` events a second on average and bursts of up to `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: f64, burst: f64) -> Self {
        TokenBucket::starting_at(rate, burst, Instant::now())
    }

    /// A full bucket as of `now`.
    pub fn starting_at(rate: f64, burst: f64, now: Instant) -> Self {
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Whether the bucket will have refilled to its burst by `now`: it then
    /// holds nothing a fresh bucket would not, so a keyed map may drop it.
    pub fn is_full_at(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.rate >= self.burst
    }

    /// Takes one token if available.
    pub fn try_take(&mut self) -> bool {
        self.try_take_at(Instant::now())
    }

    /// Takes one token, borrowing it when none is left; returns whether
    /// the bucket is still out of debt. A borrowed token is repaid from the
    /// refill before the bucket allows anything again, so a caller that
    /// waits [`TokenBucket::until_repaid`] after each `false` holds to the
    /// rate.
    pub fn take_or_borrow(&mut self) -> bool {
        self.refill(Instant::now());
        self.tokens -= 1.0;
        self.tokens >= 0.0
    }

    /// How long until borrowed tokens are repaid.
    pub fn until_repaid(&self) -> Duration {
        self.until_repaid_at(Instant::now())
    }

    fn until_repaid_at(&self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        let tokens = self.tokens + elapsed * self.rate;
        if tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-tokens / self.rate)
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
    }

    /// [`TokenBucket::try_take`] with the clock given.
    pub fn try_take_at(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
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
    fn allows_a_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(20.0, 40.0);
        bucket.last = start;
        let taken = (0..100).filter(|_| bucket.try_take_at(start)).count();
        assert_eq!(taken, 40);
        // Half a second later, ten more.
        let later = start + Duration::from_millis(500);
        let taken = (0..100).filter(|_| bucket.try_take_at(later)).count();
        assert_eq!(taken, 10);
    }

    #[test]
    fn a_borrowed_token_is_repaid_before_the_next() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 1.0);
        bucket.last = start;
        bucket.refill(start);
        bucket.tokens -= 1.0;
        assert_eq!(bucket.until_repaid_at(start), Duration::ZERO);
        // A second take borrows: 100 ms at 10 a second to repay it.
        bucket.tokens -= 1.0;
        assert_eq!(bucket.until_repaid_at(start).as_millis(), 100);
        assert_eq!(
            bucket.until_repaid_at(start + Duration::from_millis(100)),
            Duration::ZERO
        );
    }
}
