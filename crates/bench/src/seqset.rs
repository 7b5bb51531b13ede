//! What one receiver saw of its room's `seq`s, for the loss, duplicate and
//! order checks of `fanout` and `ramp`.
//!
//! The contract promises every member of a room that room's messages in
//! `seq` order with no gaps. A receiver records each broadcast's `seq` in a
//! bitmap starting at `base` (the first `seq` it can expect), which tells
//! at once whether a `seq` is a repeat (duplicate) and whether it arrived
//! after a higher one (out of order). Loss is only known at the end, against
//! what the room's senders were acked: [`SeqSet::missing_from`] counts the
//! acked `seq`s the receiver never got.
//!
//! A bitmap rather than a set: a step of a minute at 1,000 messages a second
//! per room is 60,000 bits (7.5 KiB) per receiver, and each insert is an
//! index and a mask.

/// Bits a set may span past its base; a `seq` further than that is counted
/// as [`Seen::TooFar`] rather than growing the bitmap without bound.
pub const MAX_SPAN: u64 = 1 << 24;

/// The outcome of recording one `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// First time, and higher than every `seq` before it.
    InOrder,
    /// First time, but a higher `seq` arrived earlier.
    OutOfOrder,
    /// Already recorded.
    Duplicate,
    /// Below the base: a late message of an earlier measurement.
    Stale,
    /// Implausibly far above the base.
    TooFar,
}

/// The `seq`s one receiver got, from `base` on.
#[derive(Debug, Clone, Default)]
pub struct SeqSet {
    base: u64,
    bits: Vec<u64>,
    max: Option<u64>,
    count: u64,
}

impl SeqSet {
    /// An empty set expecting `seq`s from `base` on.
    pub fn new(base: u64) -> SeqSet {
        SeqSet {
            base,
            ..SeqSet::default()
        }
    }

    /// Records `seq`.
    pub fn insert(&mut self, seq: u64) -> Seen {
        let Some(offset) = seq.checked_sub(self.base) else {
            return Seen::Stale;
        };
        if offset >= MAX_SPAN {
            return Seen::TooFar;
        }
        let (word, bit) = ((offset / 64) as usize, 1u64 << (offset % 64));
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        if self.bits[word] & bit != 0 {
            return Seen::Duplicate;
        }
        self.bits[word] |= bit;
        self.count += 1;
        match self.max {
            Some(max) if seq < max => Seen::OutOfOrder,
            _ => {
                self.max = Some(seq);
                Seen::InOrder
            }
        }
    }

    /// Whether `seq` was recorded.
    pub fn contains(&self, seq: u64) -> bool {
        let Some(offset) = seq.checked_sub(self.base) else {
            return false;
        };
        let word = (offset / 64) as usize;
        self.bits
            .get(word)
            .is_some_and(|w| w & (1u64 << (offset % 64)) != 0)
    }

    /// Distinct `seq`s recorded.
    pub fn len(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// How many of `expected` were never recorded.
    pub fn missing_from(&self, expected: &[u64]) -> u64 {
        expected.iter().filter(|&&s| !self.contains(s)).count() as u64
    }

    /// An empty set for the next measurement: it expects `seq`s above every
    /// one seen so far, so a late message of this measurement shows as
    /// [`Seen::Stale`] there.
    pub fn successor(&self) -> SeqSet {
        SeqSet::new(self.max.map_or(self.base, |m| m + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_seqs_are_in_order() {
        let mut s = SeqSet::new(5);
        for seq in 5..200 {
            assert_eq!(s.insert(seq), Seen::InOrder);
        }
        assert_eq!(s.len(), 195);
        assert_eq!(s.missing_from(&(5..200).collect::<Vec<_>>()), 0);
    }

    #[test]
    fn repeats_late_arrivals_and_strays_are_told_apart() {
        let mut s = SeqSet::new(10);
        assert_eq!(s.insert(10), Seen::InOrder);
        assert_eq!(s.insert(12), Seen::InOrder); // a gap, so far
        assert_eq!(s.insert(11), Seen::OutOfOrder); // the gap filled late
        assert_eq!(s.insert(12), Seen::Duplicate);
        assert_eq!(s.insert(9), Seen::Stale);
        assert_eq!(s.insert(10 + MAX_SPAN), Seen::TooFar);
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn loss_is_counted_against_the_acked_seqs() {
        let mut s = SeqSet::new(1);
        for seq in [1, 2, 4, 6] {
            s.insert(seq);
        }
        assert_eq!(s.missing_from(&[1, 2, 3, 4, 5, 6, 7]), 3);
        assert!(!s.contains(0));
        assert!(!s.contains(1_000_000));
    }

    #[test]
    fn successor_starts_after_the_highest_seen() {
        let mut s = SeqSet::new(1);
        assert_eq!(s.successor().base, 1, "nothing seen: same base");
        s.insert(1);
        s.insert(3);
        let mut next = s.successor();
        assert_eq!(next.insert(3), Seen::Stale);
        assert_eq!(next.insert(4), Seen::InOrder);
        assert!(next.successor().is_empty());
    }
}
