//! The latency stamp carried in each message text.
//!
//! The bench is both the sender and every receiver, so end-to-end latency
//! needs no clock on the server: the sender writes, into the text, the
//! instant the message was *scheduled* to be sent, in microseconds since the
//! run's shared origin `Instant`; a receiver subtracts it from the instant
//! it read the broadcast. Using the scheduled rather than the actual send
//! time keeps a stalled sender from hiding the stall (coordinated omission):
//! a message that went out late counts as late.
//!
//! Format: `<sender>:<counter>:<micros>`, then a space and filler up to the
//! requested text length. Parsing reads only the leading digits and never
//! allocates.

use std::fmt::Write as _;

/// What a message text says about its own sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Index of the sending connection among all senders.
    pub sender: u32,
    /// The sender's own count of messages (its send `ref`).
    pub counter: u64,
    /// Scheduled send time, µs since the run's origin.
    pub micros: u64,
}

/// Filler after the stamp: plain ASCII, so its JSON is the text itself.
const FILLER: &[u8] =
    b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor. ";

impl Stamp {
    /// Appends the text for this stamp, padded with filler to `len` bytes
    /// (or just the stamp, when that is already longer).
    pub fn write_text(&self, len: usize, out: &mut String) {
        let start = out.len();
        // Writing into a String cannot fail.
        let _ = write!(out, "{}:{}:{}", self.sender, self.counter, self.micros);
        let mut filler = std::iter::once(b' ').chain(FILLER.iter().copied().cycle());
        while out.len() - start < len {
            out.push(char::from(filler.next().unwrap_or(b' ')));
        }
    }

    /// Reads the stamp at the start of `text`; `None` when it is not one of
    /// the bench's texts.
    pub fn parse(text: &[u8]) -> Option<Stamp> {
        let (sender, rest) = leading_number(text)?;
        let rest = rest.strip_prefix(b":")?;
        let (counter, rest) = leading_number(rest)?;
        let rest = rest.strip_prefix(b":")?;
        let (micros, rest) = leading_number(rest)?;
        if !(rest.is_empty() || rest[0] == b' ') {
            return None;
        }
        Some(Stamp {
            sender: u32::try_from(sender).ok()?,
            counter,
            micros,
        })
    }
}

/// The decimal number at the start of `bytes` and what follows it; `None`
/// without a digit or on overflow.
fn leading_number(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 20 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in &bytes[..digits] {
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some((n, &bytes[digits..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_stamps_parse_back() {
        let stamp = Stamp {
            sender: 42,
            counter: 7,
            micros: 123_456_789,
        };
        for len in [0usize, 10, 64, 300] {
            let mut text = String::new();
            stamp.write_text(len, &mut text);
            assert!(text.len() >= len);
            assert!(text.is_ascii());
            assert_eq!(Stamp::parse(text.as_bytes()), Some(stamp), "{text}");
        }
        let mut text = String::new();
        stamp.write_text(64, &mut text);
        assert_eq!(text.len(), 64);
        assert!(text.starts_with("42:7:123456789 Lorem"));
    }

    #[test]
    fn foreign_texts_are_not_stamps() {
        for text in [
            "",
            "hello",
            "1:2",
            "1:2:",
            "1:2:3x",
            ":2:3",
            "1:2:99999999999999999999999",
            "99999999999:1:1",
        ] {
            assert_eq!(Stamp::parse(text.as_bytes()), None, "{text}");
        }
        assert_eq!(
            Stamp::parse(b"1:2:3"),
            Some(Stamp {
                sender: 1,
                counter: 2,
                micros: 3
            })
        );
    }
}
