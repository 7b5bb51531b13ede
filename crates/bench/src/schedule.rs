//! The fixed send schedule of one sender.
//!
//! A sender's k-th message of a step is due at `first + k × period`,
//! decided before the step starts, whatever the server or the bench do
//! meanwhile. When the sender wakes late (a busy bench, a slow timer) it
//! sends every message already due in one burst, each stamped with its own
//! due time: latency is then measured from when the message *should* have
//! left, so a stall shows up in the percentiles instead of silently lowering
//! the offered load (coordinated omission).
//!
//! Senders of a run are spread evenly over one period, so 100 rooms at 10
//! messages a second do not all send in the same millisecond.

/// Due times, µs since the run's origin.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    first: f64,
    period: f64,
    /// Nothing is due at or after this.
    end: u64,
    next: u64,
}

impl Schedule {
    /// Messages at `rate` per second from `start` to `end` (µs), for sender
    /// `index` of `senders`, which starts `index / senders` of a period
    /// after `start`.
    pub fn new(start: u64, end: u64, rate: f64, index: u64, senders: u64) -> Schedule {
        let period = if rate > 0.0 {
            1e6 / rate
        } else {
            f64::INFINITY
        };
        let phase = if period.is_finite() {
            period * index as f64 / senders.max(1) as f64
        } else {
            0.0
        };
        Schedule {
            first: start as f64 + phase,
            period,
            end,
            next: 0,
        }
    }

    fn due_time(&self, k: u64) -> Option<u64> {
        if !self.period.is_finite() {
            return None;
        }
        let t = self.first + k as f64 * self.period;
        (t < self.end as f64).then_some(t as u64)
    }

    /// When the next message is due; `None` once the schedule is done.
    pub fn next_due(&self) -> Option<u64> {
        self.due_time(self.next)
    }

    /// The due time of the next message if it is due by `now`, marking it
    /// sent.
    pub fn pop_due(&mut self, now: u64) -> Option<u64> {
        let due = self.next_due().filter(|&t| t <= now)?;
        self.next += 1;
        Some(due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_a_second_for_one_second() {
        let mut s = Schedule::new(1_000_000, 2_000_000, 10.0, 0, 1);
        assert_eq!(s.next_due(), Some(1_000_000));
        assert_eq!(s.pop_due(999_999), None, "not yet due");
        let mut due = Vec::new();
        while let Some(t) = s.pop_due(u64::MAX) {
            due.push(t);
        }
        assert_eq!(due.len(), 10);
        assert_eq!(due[1], 1_100_000);
        assert_eq!(*due.last().unwrap(), 1_900_000);
        assert_eq!(s.next_due(), None);
    }

    #[test]
    fn a_late_wakeup_sends_the_backlog_with_its_own_due_times() {
        let mut s = Schedule::new(0, 1_000_000, 100.0, 0, 1);
        let burst: Vec<u64> = std::iter::from_fn(|| s.pop_due(35_000)).collect();
        assert_eq!(burst, vec![0, 10_000, 20_000, 30_000]);
        assert_eq!(s.next_due(), Some(40_000));
    }

    #[test]
    fn nothing_is_due_at_rate_zero() {
        assert_eq!(Schedule::new(0, 1_000_000, 0.0, 0, 1).next_due(), None);
    }

    #[test]
    fn senders_are_spread_over_one_period() {
        let a = Schedule::new(0, 1_000_000, 10.0, 0, 4);
        let b = Schedule::new(0, 1_000_000, 10.0, 1, 4);
        let d = Schedule::new(0, 1_000_000, 10.0, 3, 4);
        assert_eq!(a.next_due(), Some(0));
        assert_eq!(b.next_due(), Some(25_000));
        assert_eq!(d.next_due(), Some(75_000));
    }
}
