//! Reconnect delays: exponential backoff with full jitter.
//!
//! When a server restarts, every client notices at the same moment. Without
//! jitter they would all reconnect in the same millisecond, again and again;
//! "full jitter" (a uniformly random delay between zero and an exponentially
//! growing ceiling) spreads them out, and the cap keeps a long outage from
//! turning into hour-long waits.

use std::time::Duration;

use rand::Rng;

/// How the client waits between reconnect attempts (and between retries of a
/// send the server was too busy for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the first delay; each further attempt doubles it.
    pub initial: Duration,
    /// The largest ceiling.
    pub max: Duration,
    /// Give up after this many failed attempts in a row (`None`: never).
    pub max_attempts: Option<u32>,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(10),
            max_attempts: None,
        }
    }
}

impl Backoff {
    /// The ceiling for `attempt` (counting from 1):
    /// `min(max, initial × 2^(attempt−1))`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.initial.saturating_mul(1u32 << doublings).min(self.max)
    }

    /// A random delay in `0..=ceiling(attempt)`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::rng().random_range(0..=nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_up_to_the_cap() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            max_attempts: None,
        };
        let ms: Vec<u128> = (1..=6).map(|a| b.ceiling(a).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.ceiling(1000), Duration::from_secs(1));
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
    }

    #[test]
    fn delay_stays_under_the_ceiling() {
        let b = Backoff::default();
        for attempt in 1..20 {
            assert!(b.delay(attempt) <= b.ceiling(attempt));
        }
    }
}
