//! Latency histograms and their percentile summary.
//!
//! Each connection task records into its own [`Histogram`] (no sharing, no
//! locks); the scenario merges them once every task has finished. Values are
//! microseconds, with 3 significant digits, up to a minute: anything slower
//! is recorded as a minute rather than dropped, so it still shows in `max`.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Largest latency recorded exactly, µs.
pub const MAX_MICROS: u64 = 60_000_000;

/// A histogram for latencies in microseconds.
pub fn latency_histogram() -> Histogram<u64> {
    // Bounds are constants that hdrhistogram accepts (1 <= low, high >= 2*low,
    // sigfig <= 5); failing here would be a programming error.
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds")
}

/// Records `micros`, clamped into the histogram's range.
pub fn record(h: &mut Histogram<u64>, micros: u64) {
    h.saturating_record(micros.clamp(1, MAX_MICROS));
}

/// Merges `from` into `into`.
pub fn merge(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    // Both come from `latency_histogram`, so the ranges match and `add`
    // cannot fail; saturate rather than lose the samples if it ever did.
    if into.add(from).is_err() {
        for v in from.iter_recorded() {
            into.saturating_record_n(v.value_iterated_to(), v.count_at_value());
        }
    }
}

/// Percentiles of a latency distribution, microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl LatencySummary {
    pub fn of(h: &Histogram<u64>) -> LatencySummary {
        if h.is_empty() {
            return LatencySummary {
                count: 0,
                min: 0,
                mean: 0.0,
                p50: 0,
                p90: 0,
                p99: 0,
                p999: 0,
                max: 0,
            };
        }
        LatencySummary {
            count: h.len(),
            min: h.min(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }

    /// One table row: `p50 ... max` with readable units.
    pub fn row(&self) -> String {
        format!(
            "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            micros(self.p50),
            micros(self.p90),
            micros(self.p99),
            micros(self.p999),
            micros(self.max)
        )
    }
}

/// `1234` µs as `1.23 ms`, and so on: a table shows magnitudes at a glance.
pub fn micros(us: u64) -> String {
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.2} ms", us as f64 / 1e3)
    } else {
        format!("{:.2} s", us as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_one_to_a_thousand() {
        let mut h = latency_histogram();
        for v in 1..=1000 {
            record(&mut h, v);
        }
        let s = LatencySummary::of(&h);
        assert_eq!(s.count, 1000);
        assert_eq!(s.min, 1);
        assert_eq!(s.p50, 500);
        assert_eq!(s.p90, 900);
        assert_eq!(s.p99, 990);
        assert_eq!(s.p999, 999);
        assert_eq!(s.max, 1000);
        assert!((s.mean - 500.5).abs() < 0.5);
    }

    #[test]
    fn merged_histograms_count_everything_and_outliers_saturate() {
        let mut a = latency_histogram();
        let mut b = latency_histogram();
        record(&mut a, 0); // clamped up to 1 µs
        record(&mut b, u64::MAX); // clamped down to a minute
        merge(&mut a, &b);
        let s = LatencySummary::of(&a);
        assert_eq!(s.count, 2);
        assert_eq!(s.min, 1);
        assert!(s.max >= MAX_MICROS && s.max <= MAX_MICROS + MAX_MICROS / 1000);
    }

    #[test]
    fn empty_histogram_is_all_zero() {
        assert_eq!(LatencySummary::of(&latency_histogram()).count, 0);
    }

    #[test]
    fn micros_are_human() {
        assert_eq!(micros(999), "999 µs");
        assert_eq!(micros(1234), "1.23 ms");
        assert_eq!(micros(2_500_000), "2.50 s");
    }
}
