//! The durability check on acked sequence numbers.
//!
//! The contract says a room's `seq`s are 1, 2, 3, … with no gaps and no
//! repeats, and an ack means the message is stored. So when every send to a
//! room has been acked, the acked `seq`s (duplicates answered with
//! `"duplicate":true` excluded) must be exactly `base+1 ..= base+n`, where
//! `n` is the number of acks and `base` the room's `seq` before the run (0 on
//! a fresh server). Any repeat means two messages got the same number; any
//! value outside that range means a gap somewhere.

use serde::Serialize;

/// How a room's acked `seq`s compare with `base+1 ..= base+n`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Coverage {
    /// Acks checked (`n`).
    pub acks: u64,
    /// Acks whose `seq` an earlier ack already had.
    pub repeated: u64,
    /// Distinct `seq`s outside `base+1 ..= base+n`.
    pub outside: u64,
    /// Numbers in `base+1 ..= base+n` no ack had.
    pub missing: u64,
}

impl Coverage {
    /// Total violations; 0 when the acks are exactly the expected range.
    pub fn violations(&self) -> u64 {
        self.repeated + self.outside + self.missing
    }

    /// Adds another room's figures.
    pub fn add(&mut self, other: &Coverage) {
        self.acks += other.acks;
        self.repeated += other.repeated;
        self.outside += other.outside;
        self.missing += other.missing;
    }
}

/// Checks one room's acked `seq`s against `base+1 ..= base+seqs.len()`.
/// Sorts `seqs` in place.
pub fn check(base: u64, seqs: &mut [u64]) -> Coverage {
    seqs.sort_unstable();
    let n = seqs.len() as u64;
    let (lo, hi) = (base + 1, base + n);
    let mut coverage = Coverage {
        acks: n,
        ..Coverage::default()
    };
    let mut inside = 0u64;
    let mut previous = None;
    for &seq in seqs.iter() {
        if previous == Some(seq) {
            coverage.repeated += 1;
            continue;
        }
        previous = Some(seq);
        if (lo..=hi).contains(&seq) {
            inside += 1;
        } else {
            coverage.outside += 1;
        }
    }
    coverage.missing = n - inside;
    coverage
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_cover_in_any_order_is_clean() {
        let mut seqs = vec![3, 1, 5, 2, 4];
        let c = check(0, &mut seqs);
        assert_eq!(c.acks, 5);
        assert_eq!(c.violations(), 0);
    }

    #[test]
    fn base_shifts_the_expected_range() {
        assert_eq!(check(100, &mut [102, 101, 103]).violations(), 0);
        let c = check(100, &mut [1, 2, 3]);
        assert_eq!((c.outside, c.missing), (3, 3));
    }

    #[test]
    fn a_repeat_is_also_a_missing_number() {
        // Two acks with seq 2: 3 acks must cover 1..=3, and 3 is missing.
        let c = check(0, &mut [1, 2, 2]);
        assert_eq!(
            c,
            Coverage {
                acks: 3,
                repeated: 1,
                outside: 0,
                missing: 1
            }
        );
    }

    #[test]
    fn a_gap_shows_as_outside_and_missing() {
        let c = check(0, &mut [1, 2, 4]);
        assert_eq!((c.repeated, c.outside, c.missing), (0, 1, 1));
        assert_eq!(c.violations(), 2);
    }

    #[test]
    fn no_acks_is_trivially_clean() {
        assert_eq!(check(7, &mut []).violations(), 0);
    }
}
